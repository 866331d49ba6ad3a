"""The sharing workflow (申请 → 受理 → 审核 → 授权): applications, reviews, grants.

An application moves through these states; every step is a :class:`~hub.store.ShareEvent` in
its history (both sides read it) and an entry in the audit log::

    submitted ──accept (受理)──► accepted ──approve──► approved ──► grant (授权)
        │  └──────request_info──────┤  └──reject──► rejected
        │                  info_requested ──supplement──► (back to where it was)
        └── reject / withdraw ──► rejected / withdrawn

A 无条件共享 resource is approved on filing (the grant is issued at once); a 不予共享 one
cannot be applied for (``E_NOT_SHARABLE``). The provider's deadline is
``sharing.review_workdays`` working days (工作日, ``calendar:`` in hub.yaml) from filing or
from the requester's last supplement; an open application past it is overdue.

Writes use the store's revision check, so two reviewers on two nodes cannot both decide: the
second gets ``E_APPLICATION_STATE``. A grant's id derives from its application's, so an
approval whose grant write was interrupted is completed the next time it is read.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from hub.errors import (
    ApplicationStateError,
    BadParameter,
    GrantError,
    NotFound,
    NotSharableError,
)
from hub.sharing.catalog import Catalog, CatalogResource, ShareMethod, ShareType
from hub.sharing.filterlang import conjoin, fields_of, parse, unparse
from hub.store.base import ShareEvent, ShareRecord, Store

__all__ = [
    "OPEN_STATES",
    "AcceptIn",
    "ApplicationIn",
    "DecisionIn",
    "ReasonIn",
    "SharingWorkflow",
    "SupplementIn",
    "application_view",
    "grant_id_for",
    "grant_view",
]

AppState = Literal["submitted", "accepted", "info_requested", "approved", "rejected", "withdrawn"]
#: states in which the provider still owes a decision (the deadline runs)
OPEN_STATES = ("submitted", "accepted")


# --------------------------------------------------------------------------- request bodies


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApplicationIn(_Body):
    """共享申请: what a requester asks for."""

    resource: str = Field(min_length=1, max_length=64, description="catalog resource code")
    fields: list[str] = Field(min_length=1, max_length=200, description="requested fields")
    purpose: str = Field(min_length=1, max_length=2000, description="用途")
    legal_basis: str = Field(min_length=1, max_length=2000, description="依据")
    row_filter: str | None = Field(
        None, max_length=4096, description="row scope, e.g. region_code = '330100'"
    )
    valid_from: AwareDatetime | None = Field(None, description="default: now")
    valid_until: AwareDatetime = Field(description="end of the requested period (exclusive)")
    requests_per_day: int = Field(100, ge=1, le=10_000_000, description="expected volume")
    records_per_day: int = Field(10_000, ge=1, le=1_000_000_000, description="expected volume")
    methods: list[ShareMethod] = Field(min_length=1, max_length=3, description="共享方式")
    reveal: list[str] = Field(
        default_factory=list, max_length=200, description="masked fields asked for in clear"
    )


class DecisionIn(_Body):
    """An approval, possibly narrowing what was asked for (never widening it)."""

    reason: str = Field("", max_length=2000)
    fields: list[str] | None = Field(None, min_length=1, max_length=200)
    row_filter: str | None = Field(
        None, max_length=4096, description="added to the requested row scope (AND)"
    )
    valid_until: AwareDatetime | None = None
    requests_per_day: int | None = Field(None, ge=1, le=10_000_000)
    records_per_day: int | None = Field(None, ge=1, le=1_000_000_000)
    methods: list[ShareMethod] | None = Field(None, min_length=1, max_length=3)
    reveal: list[str] | None = Field(None, max_length=200)


class ReasonIn(_Body):
    """A step that needs a reason (reject, ask for more information, revoke, withdraw)."""

    reason: str = Field(min_length=1, max_length=2000)


class AcceptIn(_Body):
    """受理 takes an optional reason (the step itself says it all)."""

    reason: str = Field("", max_length=2000)


class SupplementIn(_Body):
    """The requester's answer to a request for more information (补充材料)."""

    note: str = Field(min_length=1, max_length=4000)
    purpose: str | None = Field(None, min_length=1, max_length=2000)
    legal_basis: str | None = Field(None, min_length=1, max_length=2000)


# --------------------------------------------------------------------------- helpers


def grant_id_for(application_id: str) -> str:
    """A grant's id: its application's with ``g`` for ``a`` (one grant per application)."""
    return "g" + application_id[1:]


def _iso(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC).isoformat()


def application_view(rec: ShareRecord, events: Sequence[ShareEvent] = ()) -> dict[str, Any]:
    """An application as the API shows it (to both sides)."""
    d = rec.doc
    out: dict[str, Any] = {
        "id": rec.id,
        "state": rec.state,
        "resource": d["resource"],
        "dataset": rec.dataset,
        "provider": rec.provider,
        "requester_department": rec.holder,
        "applicant": d["applicant"],
        "fields": d["fields"],
        "purpose": d["purpose"],
        "legal_basis": d["legal_basis"],
        "row_filter": d.get("row_filter"),
        "valid_from": _iso(d["valid_from"]),
        "valid_until": _iso(d["valid_until"]),
        "requests_per_day": d["requests_per_day"],
        "records_per_day": d["records_per_day"],
        "methods": d["methods"],
        "reveal": d.get("reveal", []),
        "created_at": _iso(rec.created_at),
        "updated_at": _iso(rec.updated_at),
        "due_at": _iso(rec.due_at),
        "grant_id": d.get("grant_id"),
    }
    if events:
        out["events"] = [
            {
                "at": _iso(e.at),
                "actor": e.actor,
                "action": e.action,
                "state": e.state,
                "reason": e.reason,
                "details": e.details,
            }
            for e in events
        ]
    return out


def grant_view(rec: ShareRecord, now: float) -> dict[str, Any]:
    """A grant as the API shows it; ``state`` is ``expired`` once its period has ended."""
    d = rec.doc
    state = rec.state
    if state == "active" and now >= d["valid_until"]:
        state = "expired"
    return {
        "id": rec.id,
        "state": state,
        "application_id": d["application_id"],
        "resource": d["resource"],
        "dataset": rec.dataset,
        "dataset_version": d["dataset_version"],
        "provider": rec.provider,
        "holder_department": rec.holder,
        "holder": d["principal"],
        "fields": d["fields"],
        "row_filter": d.get("row_filter"),
        "masked": sorted(d.get("masks", {})),
        "valid_from": _iso(d["valid_from"]),
        "valid_until": _iso(d["valid_until"]),
        "requests_per_day": d["requests_per_day"],
        "records_per_day": d["records_per_day"],
        "methods": d["methods"],
        "revoked_at": _iso(d.get("revoked_at")),
        "revoked_by": d.get("revoked_by"),
        "revoke_reason": d.get("revoke_reason"),
    }


@dataclass(frozen=True, slots=True)
class Actor:
    """Who takes a step (an authenticated principal, as the history and the audit log name
    it)."""

    id: str
    department: str | None
    roles: tuple[str, ...]

    @classmethod
    def of(cls, principal: Any) -> Actor:
        return cls(
            str(principal.id), principal.department, tuple(sorted(str(r) for r in principal.roles))
        )


# --------------------------------------------------------------------------- the workflow


class SharingWorkflow:
    """Applications and grants of one hub over its store. ``audit(action, principal,
    object, details)`` appends to the audit log (hub.guard); ``deadline(now)`` gives the
    provider's decision deadline (working-day calendar)."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        *,
        dataset_versions: Mapping[str, str],
        deadline: Any,
        audit: Any,
        clock: Any,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.dataset_versions = dataset_versions
        self.deadline = deadline
        self.audit = audit
        self.clock = clock

    # ------------------------------------------------------------------ reading

    async def application(self, app_id: str) -> ShareRecord:
        rec = await self.store.share_get("application", app_id)
        if rec is None:
            raise NotFound(f"no application {app_id!r}", field="id")
        if rec.state == "approved":  # complete an approval whose grant write was cut off
            await self._ensure_grant(rec)
        return rec

    async def grant(self, grant_id: str) -> ShareRecord:
        rec = await self.store.share_get("grant", grant_id)
        if rec is None:
            raise NotFound(f"no grant {grant_id!r}", field="id")
        return rec

    # ------------------------------------------------------------------ filing

    def _check_request(self, res: CatalogResource, body: ApplicationIn, now: float) -> None:
        known = set(res.field_names())
        for f in body.fields:
            if f not in known:
                raise BadParameter(
                    f"fields: {f!r} is not a field (信息项) of resource {res.code}; "
                    f"fields: {', '.join(sorted(known))}",
                    field="fields",
                )
        if len(set(body.fields)) != len(body.fields):
            raise BadParameter("fields: a field is listed twice", field="fields")
        for f in body.reveal:
            if f not in body.fields:
                raise BadParameter(
                    f"reveal: {f!r} is not one of the requested fields", field="reveal"
                )
        if body.row_filter:
            for f in fields_of(parse(body.row_filter)):
                if f.split(".")[0] not in known:
                    raise BadParameter(
                        f"row_filter: {f!r} is not a field of resource {res.code}",
                        field="row_filter",
                    )
        for m in body.methods:
            if m not in res.share_methods:
                raise BadParameter(
                    f"methods: resource {res.code} is not shared by {m!r}; it offers "
                    f"{', '.join(res.share_methods)}",
                    field="methods",
                )
        start = body.valid_from.timestamp() if body.valid_from else now
        end = body.valid_until.timestamp()
        if end <= max(start, now):
            raise BadParameter(
                "valid_until must be after valid_from and in the future", field="valid_until"
            )
        if end - start > res.max_days * 86400:
            raise BadParameter(
                f"valid_until: resource {res.code} is granted for at most {res.max_days} days",
                field="valid_until",
            )
        q = res.quota
        if body.requests_per_day > q.requests_per_day:
            raise BadParameter(
                f"requests_per_day: at most {q.requests_per_day} for resource {res.code}",
                field="requests_per_day",
            )
        if body.records_per_day > q.records_per_day:
            raise BadParameter(
                f"records_per_day: at most {q.records_per_day} for resource {res.code}",
                field="records_per_day",
            )

    async def apply(self, principal: Any, body: ApplicationIn) -> ShareRecord:
        """File an application (申请). 无条件共享 is approved at once, with its grant."""
        from security.roles import authorize

        authorize(principal, "application.create", department=principal.department)
        res = self.catalog.get(body.resource)
        now = float(self.clock())
        who = Actor.of(principal)
        if res.share_type is ShareType.NOT_SHARED:
            await self.audit(
                "application.refused",
                principal,
                f"resource {res.code}",
                {"reason": "不予共享", "basis": res.not_shared_basis},
                outcome="denied",
            )
            raise NotSharableError(
                f"resource {res.code} ({res.name}) is 不予共享 and cannot be applied for; "
                f"legal basis: {res.not_shared_basis}",
                field="resource",
            )
        self._check_request(res, body, now)
        app_id = "a" + secrets.token_hex(8)
        doc: dict[str, Any] = {
            "resource": res.code,
            "applicant": who.id,
            "fields": list(body.fields),
            "purpose": body.purpose,
            "legal_basis": body.legal_basis,
            "row_filter": unparse(parse(body.row_filter)) if body.row_filter else None,
            "valid_from": body.valid_from.timestamp() if body.valid_from else now,
            "valid_until": body.valid_until.timestamp(),
            "requests_per_day": body.requests_per_day,
            "records_per_day": body.records_per_day,
            "methods": list(body.methods),
            "reveal": list(body.reveal),
        }
        auto = res.share_type is ShareType.UNCONDITIONAL
        events = [self._event(app_id, now, who, "application.create", "submitted", "")]
        state: AppState = "submitted"
        due: float | None = float(self.deadline(now))
        if auto:
            state, due = "approved", None
            doc["decision"] = self._terms(doc, None)
            doc["grant_id"] = grant_id_for(app_id)
            events.append(
                self._event(app_id, now, who, "decision.approve", "approved", "无条件共享")
            )
        rec = ShareRecord(
            "application",
            app_id,
            1,
            state,
            res.dataset,
            res.provider_code,
            str(principal.department),
            now,
            now,
            doc,
            due,
        )
        if not await self.store.share_put(rec, expect_rev=0, events=events):
            raise ApplicationStateError(f"application {app_id} exists already", field="id")
        await self.audit(
            "application.create",
            principal,
            f"application {app_id}",
            {"resource": res.code, "fields": doc["fields"], "share_type": res.share_type.value},
        )
        if auto:
            await self.audit(
                "decision.approve", principal, f"application {app_id}", {"auto": "无条件共享"}
            )
            await self._ensure_grant(rec)
        return rec

    # ------------------------------------------------------------------ steps

    def _event(
        self,
        app_id: str,
        at: float,
        who: Actor,
        action: str,
        state: str,
        reason: str,
        **details: Any,
    ) -> ShareEvent:
        return ShareEvent(
            app_id,
            at,
            who.id,
            action,
            state,
            reason,
            {"department": who.department, "roles": list(who.roles), **details},
        )

    async def _step(
        self,
        principal: Any,
        app_id: str,
        action: str,
        allowed: tuple[str, ...],
        new_state: AppState,
        reason: str,
        *,
        doc_update: Mapping[str, Any] | None = None,
        due: float | Literal["keep"] | None = "keep",
        details: Mapping[str, Any] | None = None,
    ) -> ShareRecord:
        rec = await self.application(app_id)
        self._authorize_step(principal, rec, action)
        if rec.state not in allowed:
            raise ApplicationStateError(
                f"application {app_id} is {rec.state}; {action} needs it to be "
                f"{' or '.join(allowed)}",
                field="state",
                state=rec.state,
            )
        now = float(self.clock())
        who = Actor.of(principal)
        doc = dict(rec.doc)
        doc.update(doc_update or {})
        new = replace(
            rec,
            rev=rec.rev + 1,
            state=new_state,
            updated_at=now,
            doc=doc,
            due_at=rec.due_at if due == "keep" else due,
        )
        ev = self._event(app_id, now, who, action, new_state, reason, **dict(details or {}))
        if not await self.store.share_put(new, expect_rev=rec.rev, events=[ev]):
            raise ApplicationStateError(
                f"application {app_id} was changed meanwhile; read it again", field="state"
            )
        await self.audit(
            action, principal, f"application {app_id}", {"reason": reason, **dict(details or {})}
        )
        return new

    def _authorize_step(self, principal: Any, rec: ShareRecord, action: str) -> None:
        from security.roles import authorize

        if action in ("application.supplement", "application.withdraw"):
            authorize(principal, "application.create", department=rec.holder)
        elif action.startswith("decision."):
            authorize(principal, "decision.create", department=rec.provider)
        else:
            authorize(principal, "application.review", department=rec.provider)

    async def accept(self, principal: Any, app_id: str, reason: str = "") -> ShareRecord:
        """受理: the provider takes the application up (the deadline keeps running)."""
        return await self._step(
            principal, app_id, "application.accept", ("submitted",), "accepted", reason
        )

    async def request_info(self, principal: Any, app_id: str, reason: str) -> ShareRecord:
        """Ask the requester for more information; the deadline stops until it comes."""
        rec = await self.application(app_id)
        return await self._step(
            principal,
            app_id,
            "application.request_info",
            OPEN_STATES,
            "info_requested",
            reason,
            doc_update={"resume_state": rec.state},
            due=None,
        )

    async def supplement(self, principal: Any, app_id: str, body: SupplementIn) -> ShareRecord:
        """The requester supplements (补充材料); the provider's deadline starts again."""
        rec = await self.application(app_id)
        upd: dict[str, Any] = {"resume_state": None}
        if body.purpose:
            upd["purpose"] = body.purpose
        if body.legal_basis:
            upd["legal_basis"] = body.legal_basis
        back: AppState = rec.doc.get("resume_state") or "submitted"
        return await self._step(
            principal,
            app_id,
            "application.supplement",
            ("info_requested",),
            back,
            body.note,
            doc_update=upd,
            due=float(self.deadline(float(self.clock()))),
        )

    async def withdraw(self, principal: Any, app_id: str, reason: str) -> ShareRecord:
        return await self._step(
            principal,
            app_id,
            "application.withdraw",
            (*OPEN_STATES, "info_requested"),
            "withdrawn",
            reason,
            due=None,
        )

    async def reject(self, principal: Any, app_id: str, reason: str) -> ShareRecord:
        return await self._step(
            principal, app_id, "decision.reject", OPEN_STATES, "rejected", reason, due=None
        )

    def _terms(self, doc: Mapping[str, Any], body: DecisionIn | None) -> dict[str, Any]:
        """The grant's terms: the request, narrowed by the decision (never widened)."""
        terms = {
            k: doc[k]
            for k in (
                "fields",
                "row_filter",
                "valid_from",
                "valid_until",
                "requests_per_day",
                "records_per_day",
                "methods",
                "reveal",
            )
        }
        if body is None:
            return terms
        if body.fields is not None:
            extra = [f for f in body.fields if f not in doc["fields"]]
            if extra:
                raise BadParameter(
                    f"fields: an approval may only narrow the request; {extra[0]!r} was not "
                    "requested",
                    field="fields",
                )
            terms["fields"] = list(dict.fromkeys(body.fields))
        if body.methods is not None:
            extra = [m for m in body.methods if m not in doc["methods"]]
            if extra:
                raise BadParameter(f"methods: {extra[0]!r} was not requested", field="methods")
            terms["methods"] = list(dict.fromkeys(body.methods))
        if body.reveal is not None:
            extra = [f for f in body.reveal if f not in doc.get("reveal", [])]
            if extra:
                raise BadParameter(f"reveal: {extra[0]!r} was not requested", field="reveal")
            terms["reveal"] = list(body.reveal)
        terms["reveal"] = [f for f in terms["reveal"] if f in terms["fields"]]
        if body.row_filter:
            added = parse(body.row_filter)
            known = set(self.catalog.get(doc["resource"]).field_names())
            for f in fields_of(added):
                if f.split(".")[0] not in known:
                    raise BadParameter(
                        f"row_filter: {f!r} is not a field of the resource", field="row_filter"
                    )
            before = parse(doc["row_filter"]) if doc.get("row_filter") else None
            both = conjoin(before, added)
            terms["row_filter"] = unparse(both) if both is not None else None
        if body.valid_until is not None:
            until = body.valid_until.timestamp()
            if until > doc["valid_until"] or until <= terms["valid_from"]:
                raise BadParameter(
                    "valid_until: an approval may shorten the period, not lengthen it",
                    field="valid_until",
                )
            terms["valid_until"] = until
        for k in ("requests_per_day", "records_per_day"):
            v = getattr(body, k)
            if v is not None:
                if v > doc[k]:
                    raise BadParameter(f"{k}: at most the {doc[k]} requested", field=k)
                terms[k] = v
        return terms

    async def approve(self, principal: Any, app_id: str, body: DecisionIn) -> ShareRecord:
        """Approve (possibly narrowing) and issue the grant (授权)."""
        rec = await self.application(app_id)
        self._authorize_step(principal, rec, "decision.approve")
        if rec.state != "accepted":
            raise ApplicationStateError(
                f"application {app_id} is {rec.state}; decision.approve needs it to be accepted "
                "(受理 first)",
                field="state",
                state=rec.state,
            )
        terms = self._terms(rec.doc, body)
        new = await self._step(
            principal,
            app_id,
            "decision.approve",
            ("accepted",),
            "approved",
            body.reason,
            doc_update={"decision": terms, "grant_id": grant_id_for(app_id)},
            due=None,
            # The history shows the decided period as ISO times, like the rest of the API.
            details={
                "terms": {
                    **terms,
                    "valid_from": _iso(terms["valid_from"]),
                    "valid_until": _iso(terms["valid_until"]),
                }
            },
        )
        await self._ensure_grant(new, principal)
        return new

    async def _ensure_grant(self, app: ShareRecord, principal: Any = None) -> ShareRecord:
        gid = grant_id_for(app.id)
        have = await self.store.share_get("grant", gid)
        if have is not None:
            return have
        res = self.catalog.get(app.doc["resource"])
        terms = app.doc["decision"]
        masks = {
            f.name: f.mask_kind()
            for f in res.fields
            if f.name in terms["fields"] and f.masked_by_default and f.name not in terms["reveal"]
        }
        now = float(self.clock())
        doc = {
            "application_id": app.id,
            "resource": res.code,
            "dataset_version": self.dataset_versions.get(res.dataset) or res.version,
            "principal": app.doc["applicant"],
            "masks": masks,
            **terms,
        }
        rec = ShareRecord(
            "grant", gid, 1, "active", app.dataset, app.provider, app.holder, now, now, doc
        )
        if await self.store.share_put(rec, expect_rev=0):
            await self.audit(
                "grant.issued",
                principal,
                f"grant {gid}",
                {"application": app.id, "fields": terms["fields"], "methods": terms["methods"]},
            )
            return rec
        got = await self.store.share_get("grant", gid)
        assert got is not None
        return got

    # ------------------------------------------------------------------ grants

    async def revoke(self, principal: Any, grant_id: str, reason: str) -> ShareRecord:
        """撤销: the grant stops at the next request; pending subscription deliveries are
        dead-lettered (E_GRANT), never sent."""
        from security.roles import authorize

        rec = await self.grant(grant_id)
        authorize(principal, "grant.revoke", department=rec.provider)
        if rec.state != "active":
            raise ApplicationStateError(f"grant {grant_id} is {rec.state} already", field="state")
        now = float(self.clock())
        doc = dict(rec.doc)
        doc.update(revoked_at=now, revoked_by=str(principal.id), revoke_reason=reason)
        new = replace(rec, rev=rec.rev + 1, state="revoked", updated_at=now, doc=doc)
        ev = self._event(
            doc["application_id"],
            now,
            Actor.of(principal),
            "grant.revoked",
            "revoked",
            reason,
            grant=grant_id,
        )
        if not await self.store.share_put(new, expect_rev=rec.rev, events=[ev]):
            raise ApplicationStateError(
                f"grant {grant_id} was changed meanwhile; read it again", field="state"
            )
        await self.audit("grant.revoked", principal, f"grant {grant_id}", {"reason": reason})
        return new

    async def grant_for(
        self, principal: Any, dataset: str, method: str, grant_id: str | None = None
    ) -> ShareRecord:
        """The caller's grant in force for ``dataset`` allowing ``method``; ``E_GRANT``
        saying why not (none, expired, revoked, another method)."""
        from security.roles import authorize

        authorize(principal, "data.read", department=principal.department)
        now = float(self.clock())
        mine = [
            g
            for g in await self.store.share_list(
                "grant", holder=principal.department, dataset=dataset, limit=1000
            )
            if g.doc.get("principal") == principal.id and (grant_id is None or g.id == grant_id)
        ]
        why = f"no grant for dataset {dataset!r} is bound to this credential"
        for g in reversed(mine):  # the newest first
            d = g.doc
            if g.state == "revoked":
                why = f"grant {g.id} was revoked ({d.get('revoke_reason', '')})"
                continue
            if now >= d["valid_until"]:
                why = f"grant {g.id} expired at {_iso(d['valid_until'])}"
                continue
            if now < d["valid_from"]:
                why = f"grant {g.id} starts at {_iso(d['valid_from'])}"
                continue
            if method not in d["methods"]:
                why = (
                    f"grant {g.id} does not allow {method!r} (it allows {', '.join(d['methods'])})"
                )
                continue
            return g
        raise GrantError(why, field="grant", dataset=dataset)

    # ------------------------------------------------------------------ deadlines

    async def overdue(self, provider: str | None = None) -> list[ShareRecord]:
        """Open applications past their deadline (oldest first)."""
        return list(
            await self.store.share_list(
                "application",
                provider=provider,
                states=list(OPEN_STATES),
                due_before=float(self.clock()),
                limit=10_000,
            )
        )
