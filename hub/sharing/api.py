"""The data-sharing HTTP API (数据共享): catalog, applications, reviews, grants, governed data,
exports and subscriptions. Every route needs a bearer token (the ``security:`` section) and is
checked against :data:`security.roles.POLICY` with the department in scope; errors are RFC 9457
problem documents like the rest of the API. The OpenAPI description is ``GET /openapi.json``.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import hdrs, web
from pydantic import BaseModel, ValidationError

from hub.errors import BadParameter, BadRequest, ForbiddenError, NotFound, TooLargeError
from hub.sharing.access import grant_quota, grant_scope
from hub.sharing.catalog import CatalogResource, ShareType
from hub.sharing.enforce import MAX_PAGE, plan_query
from hub.sharing.export import EXPORT_FORMATS, stream_export
from hub.sharing.subscriptions import SubscriptionIn, subscription_view
from hub.sharing.workflow import (
    AcceptIn,
    ApplicationIn,
    DecisionIn,
    ReasonIn,
    SupplementIn,
    application_view,
    grant_view,
)

__all__ = ["SHARING_KEY", "setup_routes"]

SHARING_KEY: web.AppKey[Any] = web.AppKey("sharing", object)
#: the authenticated caller of a request (for the audit entry of a refusal)
_PRINCIPAL: web.RequestKey[Any] = web.RequestKey("sharing.principal", object)
_MAX_BODY = 256 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _svc(request: web.Request) -> Any:
    return request.app[SHARING_KEY]


async def _principal(request: web.Request) -> Any:
    return await _svc(request).principal(request.headers.get(hdrs.AUTHORIZATION))


def _denials(handler: Handler) -> Handler:
    """Refusals by the role policy go to the audit log (``access.denied``), as in hub.api."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ForbiddenError as err:
            svc = _svc(request)
            principal = request.get(_PRINCIPAL)
            await svc.hub.guard.record(
                "access.denied",
                principal,
                object=f"{request.method} {request.path}",
                outcome="denied",
                details={"why": err.message},
            )
            raise

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


async def _who(request: web.Request) -> Any:
    p = await _principal(request)
    request[_PRINCIPAL] = p
    return p


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    if request.content_length is not None and request.content_length > _MAX_BODY:
        raise TooLargeError(f"body larger than {_MAX_BODY} bytes", field="body")
    raw = await request.content.read(_MAX_BODY + 1)
    if len(raw) > _MAX_BODY:
        raise TooLargeError(f"body larger than {_MAX_BODY} bytes", field="body")
    try:
        data = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}", field="body") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadParameter(f"{where}: {first['msg']}", field=where) from None


def _query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not lo <= int(raw) <= hi:
        raise BadParameter(f"query parameter {name} must be an integer {lo}..{hi}", field=name)
    return int(raw)


def _can(principal: Any, action: str, department: str | None) -> bool:
    from security.roles import is_allowed

    return is_allowed(principal, action, department=department)


# --------------------------------------------------------------------------- catalog


def _visible(principal: Any, r: CatalogResource) -> bool:
    """不予共享 resources are listed to their provider, admins and ops only."""
    if r.share_type is not ShareType.NOT_SHARED:
        return True
    roles = {str(x) for x in principal.roles}
    return principal.department == r.provider_code or bool(roles & {"admin", "ops"})


@_denials
async def list_catalog(request: web.Request) -> web.Response:
    """``GET /v1/catalog?q=&provider=&share_type=&method=``: the resources the caller may see."""
    svc = _svc(request)
    p = await _who(request)
    from security.roles import authorize

    authorize(p, "catalog.read")
    q = request.query
    share_type = q.get("share_type")
    if share_type and share_type not in {t.value for t in ShareType} | {t.label for t in ShareType}:
        raise BadParameter(
            "share_type must be unconditional, conditional or not_shared", field="share_type"
        )
    method = q.get("method")
    if method and method not in ("query", "subscription", "download"):
        raise BadParameter("method must be query, subscription or download", field="method")
    found = svc.catalog.search(
        q=q.get("q"), provider=q.get("provider"), share_type=share_type, method=method
    )
    items = [r.summary_doc() for r in found if _visible(p, r)]
    return _json({"items": items, "count": len(items)})


@_denials
async def get_catalog(request: web.Request) -> web.Response:
    """``GET /v1/catalog/{code}``."""
    svc = _svc(request)
    p = await _who(request)
    from security.roles import authorize

    authorize(p, "catalog.read")
    r = svc.catalog.get(request.match_info["code"])
    if not _visible(p, r):
        raise NotFound(f"no catalog resource with code {r.code!r}", field="code")
    return _json(r.summary_doc())


# --------------------------------------------------------------------------- applications


async def _readable_application(svc: Any, p: Any, app_id: str) -> Any:
    rec = await svc.workflow.application(app_id)
    if not (_can(p, "application.read", rec.holder) or _can(p, "application.review", rec.provider)):
        raise NotFound(f"no application {app_id!r}", field="id")  # do not confirm it exists
    return rec


@_denials
async def post_application(request: web.Request) -> web.Response:
    """``POST /v1/applications``: file an application (申请)."""
    svc = _svc(request)
    p = await _who(request)
    body = await _body(request, ApplicationIn)
    rec = await svc.workflow.apply(p, body)
    events = await svc.hub.store.share_events(rec.id)
    return _json(application_view(rec, events), 201)


@_denials
async def list_applications(request: web.Request) -> web.Response:
    """``GET /v1/applications?side=requester|provider&state=``: the caller's department's
    applications (filed by it, or for its datasets)."""
    svc = _svc(request)
    p = await _who(request)
    side = request.query.get("side")
    if side not in (None, "requester", "provider"):
        raise BadParameter("side must be requester or provider", field="side")
    state = request.query.get("state")
    states = [state] if state else None
    out = []
    if side in (None, "requester") and _can(p, "application.read", p.department):
        out += await svc.hub.store.share_list(
            "application", holder=p.department, states=states, limit=1000
        )
    if side in (None, "provider") and _can(p, "application.review", p.department):
        out += [
            r
            for r in await svc.hub.store.share_list(
                "application", provider=p.department, states=states, limit=1000
            )
            if r.id not in {x.id for x in out}
        ]
    if not out and not (
        _can(p, "application.read", p.department) or _can(p, "application.review", p.department)
    ):
        from security.roles import authorize

        authorize(p, "application.read", department=p.department)  # raises E_FORBIDDEN
    return _json({"items": [application_view(r) for r in out]})


@_denials
async def list_overdue(request: web.Request) -> web.Response:
    """``GET /v1/applications/overdue``: open applications past the provider's deadline (ops)."""
    svc = _svc(request)
    p = await _who(request)
    from security.roles import authorize

    authorize(p, "monitoring.read")
    items = [application_view(r) for r in await svc.workflow.overdue()]
    return _json({"items": items, "count": len(items)})


@_denials
async def get_application(request: web.Request) -> web.Response:
    """``GET /v1/applications/{id}``: an application with its whole history (both sides)."""
    svc = _svc(request)
    p = await _who(request)
    rec = await _readable_application(svc, p, request.match_info["id"])
    events = await svc.hub.store.share_events(rec.id)
    return _json(application_view(rec, events))


def _step(name: str) -> Handler:
    @_denials
    async def step(request: web.Request) -> web.Response:
        svc = _svc(request)
        p = await _who(request)
        app_id = request.match_info["id"]
        await _readable_application(svc, p, app_id)
        wf = svc.workflow
        if name == "accept":
            reason = (await _body(request, AcceptIn)).reason
            rec = await wf.accept(p, app_id, reason)
        elif name == "approve":
            rec = await wf.approve(p, app_id, await _body(request, DecisionIn))
        elif name == "supplement":
            rec = await wf.supplement(p, app_id, await _body(request, SupplementIn))
        else:
            reason = (await _body(request, ReasonIn)).reason
            rec = await getattr(wf, name.replace("-", "_"))(p, app_id, reason)
        events = await svc.hub.store.share_events(rec.id)
        return _json(application_view(rec, events))

    step.__name__ = f"application_{name.replace('-', '_')}"
    return step


# --------------------------------------------------------------------------- grants


@_denials
async def list_grants(request: web.Request) -> web.Response:
    """``GET /v1/grants``: grants held by the caller's department (requester) or given on its
    datasets (reviewer); every grant for an admin."""
    svc = _svc(request)
    p = await _who(request)
    now = float(svc.hub.clock())
    store = svc.hub.store
    out: dict[str, Any] = {}
    if _can(p, "grant.review", None):  # admin: any department
        for r in await store.share_list("grant", limit=10_000):
            out[r.id] = r
    if _can(p, "grant.read", p.department):
        for r in await store.share_list("grant", holder=p.department, limit=10_000):
            out[r.id] = r
    if _can(p, "grant.review", p.department):
        for r in await store.share_list("grant", provider=p.department, limit=10_000):
            out[r.id] = r
    if not out and not any(_can(p, a, p.department) for a in ("grant.read", "grant.review")):
        from security.roles import authorize

        authorize(p, "grant.read", department=p.department)
    return _json({"items": [grant_view(r, now) for r in out.values()]})


async def _readable_grant(svc: Any, p: Any, grant_id: str) -> Any:
    rec = await svc.workflow.grant(grant_id)
    if not (_can(p, "grant.read", rec.holder) or _can(p, "grant.review", rec.provider)):
        raise NotFound(f"no grant {grant_id!r}", field="id")
    return rec


@_denials
async def get_grant(request: web.Request) -> web.Response:
    """``GET /v1/grants/{id}``."""
    svc = _svc(request)
    p = await _who(request)
    rec = await _readable_grant(svc, p, request.match_info["id"])
    return _json(grant_view(rec, float(svc.hub.clock())))


@_denials
async def revoke_grant(request: web.Request) -> web.Response:
    """``POST /v1/grants/{id}/revoke``: revoke (provider's reviewer or admin); effective at
    the next request, pending subscription deliveries are dead-lettered."""
    svc = _svc(request)
    p = await _who(request)
    grant_id = request.match_info["id"]
    await _readable_grant(svc, p, grant_id)
    reason = (await _body(request, ReasonIn)).reason
    rec = await svc.workflow.revoke(p, grant_id, reason)
    stopped = await svc.subscriptions.grant_revoked(grant_id)
    doc = grant_view(rec, float(svc.hub.clock()))
    doc["subscriptions_stopped"] = stopped
    return _json(doc)


# --------------------------------------------------------------------------- data


def _now(svc: Any) -> dt.datetime:
    return dt.datetime.fromtimestamp(float(svc.hub.clock()), dt.UTC)


def _plan(svc: Any, p: Any, grant: Any, request: web.Request, *, sort: bool = True) -> Any:
    q = request.query
    extra = tuple(svc.hub.guard.mask_rules.get(grant.dataset, ()))
    return plan_query(
        grant_scope(grant, extra),
        fields=q.get("fields") or None,
        filter=q.get("filter") or None,
        sort=(q.get("sort") or None) if sort else None,
        principal=p,
    )


@_denials
async def get_data(request: web.Request) -> web.Response:
    """``GET /v1/data/{dataset}?fields=&filter=&sort=&cursor=&limit=``: a page of the granted
    slice."""
    svc = _svc(request)
    p = await _who(request)
    dataset = request.match_info["dataset"]
    grant = await svc.workflow.grant_for(p, dataset, "query", request.query.get("grant"))
    if "sort" in request.query and request.query.get("sort") == "":
        raise BadParameter("sort must name at least one field", field="sort")
    plan = _plan(svc, p, grant, request)
    limit = _query_int(request, "limit", 100, 1, min(MAX_PAGE, svc.settings.page_limit))
    cursor = request.query.get("cursor") or None
    admission = await svc.meter.admit(grant.id, grant_quota(grant), limit, _now(svc))
    allowed = limit if admission.records_allowed is None else min(limit, admission.records_allowed)
    served = 0
    try:
        items, nxt = await svc.reader.page(plan, svc.codec, allowed, cursor)
        served = len(items)
    finally:
        await svc.meter.settle(admission, served)
    await svc.hub.guard.record(
        "data.access",
        p,
        object=f"grant {grant.id}",
        details={"dataset": dataset, "method": "query", "records": served},
    )
    return _json(
        {
            "dataset": dataset,
            "grant_id": grant.id,
            "fields": list(plan.fields),
            "count": served,
            "items": items,
            "next_cursor": nxt,
        }
    )


def _formula_guard(raw: str | None, fmt: str) -> bool:
    """``csv_formula_guard=true|false`` of a CSV export (default true: text cells beginning
    with = + - @ tab or CR get a leading ', OWASP CSV injection)."""
    if raw is None:
        return True
    if fmt != "csv":
        raise BadParameter(
            f"csv_formula_guard applies to format=csv only, not {fmt}", field="csv_formula_guard"
        )
    value = {"true": True, "1": True, "false": False, "0": False}.get(raw.strip().lower())
    if value is None:
        raise BadParameter(
            f"csv_formula_guard must be true or false, not {raw[:20]!r}",
            field="csv_formula_guard",
        )
    return value


@_denials
async def export_data(request: web.Request) -> web.StreamResponse:
    """``GET /v1/data/{dataset}/export?format=csv|jsonl&fields=&filter=&csv_formula_guard=``:
    the granted slice, streamed; its manifest (count, SHA-256, grant id) at
    ``/v1/exports/{id}/manifest``."""
    svc = _svc(request)
    p = await _who(request)
    dataset = request.match_info["dataset"]
    fmt = request.query.get("format", "jsonl")
    if fmt not in EXPORT_FORMATS:
        raise BadParameter(f"format must be one of {', '.join(EXPORT_FORMATS)}", field="format")
    grant = await svc.workflow.grant_for(p, dataset, "download", request.query.get("grant"))
    if request.query.get("sort"):
        raise BadParameter("an export is in store order; sort is not supported", field="sort")
    guard = _formula_guard(request.query.get("csv_formula_guard"), fmt)
    plan = _plan(svc, p, grant, request, sort=False)
    quota = grant_quota(grant)
    want = quota.records_per_day or 0
    admission = await svc.meter.admit(grant.id, quota, want, _now(svc))
    export_id = "x" + secrets.token_hex(8)
    stream = stream_export(
        svc.reader.export_records(dataset),
        plan,
        fmt,
        max_records=admission.records_allowed,
        csv_formula_guard=guard,
    )
    manifest_url = f"/v1/exports/{export_id}/manifest"
    resp = web.StreamResponse(
        headers={
            hdrs.CONTENT_TYPE: stream.media_type,
            hdrs.CONTENT_DISPOSITION: f'attachment; filename="{dataset}-{export_id}.{fmt}"',
            "X-Jghub-Grant": grant.id,
            "X-Jghub-Export": export_id,
            hdrs.LINK: f'<{manifest_url}>; rel="describedby"',
            hdrs.CACHE_CONTROL: "no-store",
        }
    )
    resp.enable_chunked_encoding()
    # not export.send_export: the manifest is stored before the last chunk goes out, so a
    # client that has the whole body can always fetch it
    await resp.prepare(request)
    try:
        async for chunk in stream:
            await resp.write(chunk)
    finally:
        await svc.meter.settle(admission, stream.digest.count)
    manifest = stream.manifest()
    manifest["export_id"] = export_id
    manifest["holder"] = p.id
    await svc.hub.store.put_state("sharing.export", export_id, orjson.dumps(manifest).decode())
    await svc.hub.guard.record(
        "data.access",
        p,
        object=f"grant {grant.id}",
        details={
            "dataset": dataset,
            "method": "download",
            "export": export_id,
            "records": manifest["count"],
            "sha256": manifest["sha256"],
        },
    )
    await resp.write_eof()
    return resp


@_denials
async def get_manifest(request: web.Request) -> web.Response:
    """``GET /v1/exports/{id}/manifest``: an export's manifest (清单), to its holder only."""
    svc = _svc(request)
    p = await _who(request)
    export_id = request.match_info["id"]
    raw = await svc.hub.store.get_state("sharing.export", export_id)
    doc = orjson.loads(raw) if raw else None
    if doc is None or doc.get("holder") != p.id:
        raise NotFound(f"no export {export_id!r}", field="id")
    return _json(doc)


# --------------------------------------------------------------------------- subscriptions


@_denials
async def post_subscription(request: web.Request) -> web.Response:
    """``POST /v1/subscriptions``: push new and changed records of the granted slice to a
    webhook; the answer holds the webhook secret (shown once)."""
    svc = _svc(request)
    p = await _who(request)
    body = await _body(request, SubscriptionIn)
    rec, secret = await svc.subscriptions.create(p, body)
    doc = subscription_view(rec)
    doc["secret"] = secret
    return _json(doc, 201)


@_denials
async def list_subscriptions(request: web.Request) -> web.Response:
    """``GET /v1/subscriptions``: the caller's subscriptions."""
    svc = _svc(request)
    p = await _who(request)
    return _json({"items": [subscription_view(r) for r in await svc.subscriptions.mine(p)]})


@_denials
async def get_subscription(request: web.Request) -> web.Response:
    svc = _svc(request)
    p = await _who(request)
    return _json(subscription_view(await svc.subscriptions.get(p, request.match_info["id"])))


@_denials
async def delete_subscription(request: web.Request) -> web.Response:
    svc = _svc(request)
    p = await _who(request)
    rec = await svc.subscriptions.cancel(p, request.match_info["id"])
    return _json(subscription_view(rec))


async def openapi(request: web.Request) -> web.Response:
    """``GET /openapi.json``: the OpenAPI 3.1 description of the sharing API."""
    from hub.sharing.openapi import openapi_document

    return _json(openapi_document())


def setup_routes(app: web.Application, service: Any) -> None:
    """Add the sharing routes to the hub's application."""
    app[SHARING_KEY] = service
    r = app.router
    r.add_get("/openapi.json", openapi)
    r.add_get("/v1/catalog", list_catalog)
    r.add_get("/v1/catalog/{code}", get_catalog)
    r.add_post("/v1/applications", post_application)
    r.add_get("/v1/applications", list_applications)
    r.add_get("/v1/applications/overdue", list_overdue)
    r.add_get("/v1/applications/{id}", get_application)
    for name in ("accept", "request-info", "supplement", "approve", "reject", "withdraw"):
        r.add_post(f"/v1/applications/{{id}}/{name}", _step(name))
    r.add_get("/v1/grants", list_grants)
    r.add_get("/v1/grants/{id}", get_grant)
    r.add_post("/v1/grants/{id}/revoke", revoke_grant)
    r.add_get("/v1/data/{dataset}", get_data)
    r.add_get("/v1/data/{dataset}/export", export_data)
    r.add_get("/v1/exports/{id}/manifest", get_manifest)
    r.add_post("/v1/subscriptions", post_subscription)
    r.add_get("/v1/subscriptions", list_subscriptions)
    r.add_get("/v1/subscriptions/{id}", get_subscription)
    r.add_delete("/v1/subscriptions/{id}", delete_subscription)
