"""The OpenAPI 3.1 description of the data-sharing API (``GET /openapi.json``).

Request bodies are the pydantic models the handlers validate with (``model_json_schema``), so
the description cannot drift from what the server accepts; responses are described by hand
below, tight enough for schemathesis to check that answers conform.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from hub import __version__
from hub.errors import ERROR_CODES
from hub.sharing.catalog import CatalogResource
from hub.sharing.subscriptions import SubscriptionIn
from hub.sharing.workflow import AcceptIn, ApplicationIn, DecisionIn, ReasonIn, SupplementIn

__all__ = ["openapi_document"]

_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}
_STRS = {"type": "array", "items": _STR}

_PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": _STR,
        "title": _STR,
        "status": {"type": "integer"},
        "code": {"type": "string", "enum": sorted(ERROR_CODES)},
        "detail": _STR,
        "field": _STR,
        "instance": _STR,
    },
}

_EVENT = {
    "type": "object",
    "required": ["at", "actor", "action", "state", "reason", "details"],
    "properties": {
        "at": _TIME,
        "actor": _STR,
        "action": _STR,
        "state": _STR,
        "reason": _STR,
        "details": {"type": "object"},
    },
}

_APPLICATION = {
    "type": "object",
    "required": ["id", "state", "resource", "dataset", "provider", "fields", "methods"],
    "properties": {
        "id": _STR,
        "state": {
            "type": "string",
            "enum": [
                "submitted",
                "accepted",
                "info_requested",
                "approved",
                "rejected",
                "withdrawn",
            ],
        },
        "resource": _STR,
        "dataset": _STR,
        "provider": _STR,
        "requester_department": _STR,
        "applicant": _STR,
        "fields": _STRS,
        "purpose": _STR,
        "legal_basis": _STR,
        "row_filter": _NSTR,
        "valid_from": _TIME,
        "valid_until": _TIME,
        "requests_per_day": {"type": "integer"},
        "records_per_day": {"type": "integer"},
        "methods": _STRS,
        "reveal": _STRS,
        "created_at": _TIME,
        "updated_at": _TIME,
        "due_at": _TIME,
        "grant_id": _NSTR,
        "events": {"type": "array", "items": _EVENT},
    },
}

_GRANT = {
    "type": "object",
    "required": ["id", "state", "dataset", "fields", "methods", "valid_until"],
    "properties": {
        "id": _STR,
        "state": {"type": "string", "enum": ["active", "expired", "revoked"]},
        "application_id": _STR,
        "resource": _STR,
        "dataset": _STR,
        "dataset_version": _STR,
        "provider": _STR,
        "holder_department": _STR,
        "holder": _STR,
        "fields": _STRS,
        "row_filter": _NSTR,
        "masked": _STRS,
        "valid_from": _TIME,
        "valid_until": _TIME,
        "requests_per_day": {"type": "integer"},
        "records_per_day": {"type": "integer"},
        "methods": _STRS,
        "revoked_at": _TIME,
        "revoked_by": _NSTR,
        "revoke_reason": _NSTR,
        "subscriptions_stopped": {"type": "integer"},
    },
}

_SUBSCRIPTION = {
    "type": "object",
    "required": ["id", "state", "dataset", "grant_id", "url"],
    "properties": {
        "id": _STR,
        "state": {"type": "string", "enum": ["active", "cancelled", "revoked"]},
        "dataset": _STR,
        "grant_id": _STR,
        "url": _STR,
        "target": _STR,
        "holder_department": _STR,
        "secret": {
            "type": "string",
            "description": "the webhook HMAC secret: in the create answer only (shown once)",
        },
    },
}


def _list_of(ref: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": ref}},
            "count": {"type": "integer"},
        },
    }


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


_ERRORS = {
    str(code): {
        "description": "problem document (RFC 9457)",
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }
    for code in (400, 401, 403, 404, 405, 409, 413, 429)
}
_ERRORS["429"]["headers"] = {
    "Retry-After": {
        "description": "seconds until the quota's next day begins (local midnight)",
        "schema": {"type": "integer", "minimum": 1},
    }
}
for _code in ("502", "503"):
    _ERRORS[_code] = {
        "description": "a proxied resource's provider is unreachable (503 E_UNREACHABLE) or "
        "answered off the contract (502 E_SOURCE); the store is unavailable (503 E_STORE)",
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def _op(
    summary: str,
    ok: dict[str, Any],
    *,
    status: str = "200",
    body: str | None = None,
    params: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {status: {"description": "OK", "content": _json_content(ok)}, **_ERRORS},
    }
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": _json_content({"$ref": f"#/components/schemas/{body}"}),
        }
    if params:
        op["parameters"] = params
    return op


def _q(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or _STR,
    }


def _p(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _STR}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _schema(model: Any) -> dict[str, Any]:
    doc: dict[str, Any] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return doc


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (built once)."""
    schemas: dict[str, Any] = {
        "Problem": _PROBLEM,
        "Application": _APPLICATION,
        "Grant": _GRANT,
        "Subscription": _SUBSCRIPTION,
        "CatalogResource": {"type": "object", "required": ["code", "name", "share_type"]},
    }
    for name, model in (
        ("AcceptIn", AcceptIn),
        ("ApplicationIn", ApplicationIn),
        ("DecisionIn", DecisionIn),
        ("ReasonIn", ReasonIn),
        ("SupplementIn", SupplementIn),
        ("SubscriptionIn", SubscriptionIn),
        ("CatalogResourceFull", CatalogResource),
    ):
        doc = _schema(model)
        for sub, sub_doc in doc.pop("$defs", {}).items():
            schemas[sub] = sub_doc
        schemas[name] = doc
    app_id = [_p("id")]
    data_params = [
        _p("dataset"),
        _q("fields", "comma-separated granted fields (default: all granted)"),
        _q("filter", "row filter expression (hub.sharing.filterlang)"),
        _q("grant", "a grant id, when several are in force"),
    ]
    paths: dict[str, Any] = {
        "/v1/catalog": {
            "get": _op(
                "Catalog resources the caller may see (政务信息资源目录)",
                _list_of("#/components/schemas/CatalogResource"),
                params=[
                    _q("q", "search text"),
                    _q("provider", "provider department (name or code)"),
                    _q(
                        "share_type",
                        "share type",
                        {"type": "string", "enum": ["unconditional", "conditional", "not_shared"]},
                    ),
                    _q(
                        "method",
                        "share method",
                        {"type": "string", "enum": ["query", "subscription", "download"]},
                    ),
                ],
            )
        },
        "/v1/catalog/{code}": {
            "get": _op("One catalog resource", _ref("CatalogResource"), params=[_p("code")])
        },
        "/v1/applications": {
            "post": _op(
                "File an application (申请)",
                _ref("Application"),
                status="201",
                body="ApplicationIn",
            ),
            "get": _op(
                "The department's applications",
                _list_of("#/components/schemas/Application"),
                params=[
                    _q(
                        "side",
                        "requester or provider",
                        {"type": "string", "enum": ["requester", "provider"]},
                    ),
                    _q("state", "only this state"),
                ],
            ),
        },
        "/v1/applications/overdue": {
            "get": _op(
                "Open applications past the deadline (ops)",
                _list_of("#/components/schemas/Application"),
            )
        },
        "/v1/applications/{id}": {
            "get": _op("An application with its history", _ref("Application"), params=app_id)
        },
        "/v1/applications/{id}/accept": {
            "post": _op(
                "受理: accept for handling", _ref("Application"), body="AcceptIn", params=app_id
            )
        },
        "/v1/applications/{id}/request-info": {
            "post": _op(
                "Ask for more information", _ref("Application"), body="ReasonIn", params=app_id
            )
        },
        "/v1/applications/{id}/supplement": {
            "post": _op(
                "Supplement (补充材料)", _ref("Application"), body="SupplementIn", params=app_id
            )
        },
        "/v1/applications/{id}/approve": {
            "post": _op(
                "Approve, possibly narrowing", _ref("Application"), body="DecisionIn", params=app_id
            )
        },
        "/v1/applications/{id}/reject": {
            "post": _op("Reject with a reason", _ref("Application"), body="ReasonIn", params=app_id)
        },
        "/v1/applications/{id}/withdraw": {
            "post": _op("Withdraw (requester)", _ref("Application"), body="ReasonIn", params=app_id)
        },
        "/v1/grants": {
            "get": _op("Grants the caller may see", _list_of("#/components/schemas/Grant"))
        },
        "/v1/grants/{id}": {"get": _op("One grant", _ref("Grant"), params=app_id)},
        "/v1/grants/{id}/revoke": {
            "post": _op("Revoke a grant", _ref("Grant"), body="ReasonIn", params=app_id)
        },
        "/v1/data/{dataset}": {
            "get": _op(
                "A page of the granted slice",
                {
                    "type": "object",
                    "required": ["dataset", "grant_id", "items", "next_cursor", "count"],
                    "properties": {
                        "dataset": _STR,
                        "grant_id": _STR,
                        "fields": _STRS,
                        "count": {"type": "integer"},
                        "items": {"type": "array", "items": {"type": "object"}},
                        "next_cursor": _NSTR,
                    },
                },
                params=[
                    *data_params,
                    _q("sort", "sort keys, '-' for descending"),
                    _q("cursor", "the next_cursor of the previous page"),
                    _q(
                        "limit",
                        "records per page",
                        {"type": "integer", "minimum": 1, "maximum": 1000},
                    ),
                ],
            )
        },
        "/v1/data/{dataset}/export": {
            "get": {
                "summary": "Bulk download of the granted slice (streamed)",
                "security": [{"bearer": []}],
                "parameters": [
                    *data_params,
                    _q("format", "csv or jsonl", {"type": "string", "enum": ["csv", "jsonl"]}),
                    _q(
                        "csv_formula_guard",
                        "CSV only, default true: a text cell beginning with = + - @ tab or CR "
                        "gets a leading ' (spreadsheet formula injection)",
                        {"type": "boolean"},
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "the records; the manifest is linked in the Link header",
                        "content": {
                            "text/csv": {"schema": {"type": "string"}},
                            "application/x-ndjson": {"schema": {"type": "string"}},
                        },
                    },
                    **_ERRORS,
                },
            }
        },
        "/v1/exports/{id}/manifest": {
            "get": _op(
                "An export's manifest (count, SHA-256, grant id)",
                {
                    "type": "object",
                    "required": ["count", "sha256", "grant_id"],
                    "properties": {
                        "count": {"type": "integer"},
                        "sha256": _STR,
                        "grant_id": _STR,
                        "csv_formula_guard": {"type": "boolean"},
                    },
                },
                params=app_id,
            )
        },
        "/v1/subscriptions": {
            "post": _op(
                "Subscribe a webhook", _ref("Subscription"), status="201", body="SubscriptionIn"
            ),
            "get": _op("The caller's subscriptions", _list_of("#/components/schemas/Subscription")),
        },
        "/v1/subscriptions/{id}": {
            "get": _op("One subscription", _ref("Subscription"), params=app_id),
            "delete": _op("Cancel a subscription", _ref("Subscription"), params=app_id),
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jghub data sharing API (数据共享)",
            "version": __version__,
            "description": "Catalog, application → review → grant, governed query, export and "
            "subscription. See docs/sharing.md.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
