"""Subscriptions (订阅推送): new and changed records matching a grant, pushed to the requester's
webhook through the hub's own guaranteed-delivery dispatcher.

Each subscription is a delivery target of its own (``sub-<id>``, the ``webhook`` transport with a
secret made for it), so it has its retries, circuit and dead letters like any system. At ingest
the hub asks :meth:`Subscriptions.targets` which subscriptions a record matches (the grant's
row filter) and commits their deliveries in the same transaction as the record. At send time
the delivery's transform projects and masks the record through the grant — and refuses with
``E_GRANT`` once the grant is revoked or expired or the subscription cancelled: such a delivery
is dead-lettered, never sent.

Subscriptions and grant states are cached per process: a revocation on this process applies at
once; subscriptions made and grants revoked by another node of a shared store, or by the node
an extra ingest process (``serve --workers``) belongs to, are seen at the next refresh
(``sharing.refresh_seconds``). Ingest processes only route (they create the deliveries); the
node delivers them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from hub.config import CircuitPolicy, RetryPolicy, SystemConfig
from hub.errors import ApplicationStateError, BadParameter, GrantError, NotFound
from hub.routing import RouteTargetRuntime
from hub.sharing.access import subscription_plan
from hub.sharing.enforce import Plan
from hub.store.base import ShareRecord, TargetRef

__all__ = ["SubscriptionIn", "Subscriptions", "subscription_view"]


class SubscriptionIn(BaseModel):
    """A subscription request: push the dataset's granted slice to ``url``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(min_length=1, max_length=64)
    url: AnyHttpUrl = Field(description="the requester's webhook (http or https)")
    grant: str | None = Field(None, max_length=64, description="default: the grant in force")


def subscription_view(rec: ShareRecord) -> dict[str, Any]:
    d = rec.doc
    return {
        "id": rec.id,
        "state": rec.state,
        "dataset": rec.dataset,
        "grant_id": d["grant_id"],
        "url": d["url"],
        "target": d["target"],
        "holder_department": rec.holder,
    }


@dataclass(slots=True)
class _Live:
    """A subscription this node delivers for."""

    id: str
    dataset: str
    target: str
    route: str
    grant_id: str
    plan: Plan
    valid_from: float
    valid_until: float
    stopped: str | None = None  # why deliveries are refused (revoked, cancelled)


class Subscriptions:
    """The subscriptions of one hub: targets at ingest, projection at send time."""

    def __init__(
        self,
        hub: Any,
        workflow: Any,
        clock: Callable[[], float],
        retry: RetryPolicy | None = None,
        circuit: CircuitPolicy | None = None,
    ) -> None:
        self.hub = hub
        self.retry = retry or RetryPolicy()
        self.circuit = circuit or CircuitPolicy()
        self.workflow = workflow
        self.clock = clock
        self.live: dict[str, _Live] = {}
        #: a node delivers; an extra ingest process (serve --workers) only routes at ingest
        self.delivers = getattr(hub, "role", "node") == "node"

    # ------------------------------------------------------------------ life cycle

    async def load(self) -> None:
        """Start routing (and, on a node, delivering) for every active subscription."""
        await self.refresh()

    async def refresh(self) -> None:
        """Catch up with the store: subscriptions made on other nodes or processes start,
        revocations and cancellations made elsewhere stop ours."""
        store = self.hub.store
        active = {
            r.id: r
            for r in await store.share_list("subscription", states=["active"], limit=100_000)
        }
        for sid, rec in active.items():
            if sid not in self.live:
                await self._activate(rec, await store.share_get("grant", rec.doc["grant_id"]))
        for live in list(self.live.values()):
            if live.stopped:
                continue
            if live.id not in active:
                self._stop(live, "the subscription was cancelled or revoked")
                continue
            grant = await store.share_get("grant", live.grant_id)
            if grant is None or grant.state != "active":
                self._stop(live, f"grant {live.grant_id} was revoked")

    async def _activate(self, rec: ShareRecord, grant: ShareRecord | None) -> None:
        d = rec.doc
        target = d["target"]
        route = f"sharing-{rec.id}"
        if self.delivers:
            sc = SystemConfig(
                name=target,
                title=f"subscription {rec.id} of {rec.holder}",
                adapter="json",
                outbound={"transport": "webhook", "url": d["url"], "secret": d["secret"]},
                retry=self.retry,
                circuit=self.circuit,
            )
            await self.hub.add_target(sc)
        live = _Live(
            rec.id,
            rec.dataset,
            target,
            route,
            d["grant_id"],
            subscription_plan(grant, self._extra_masks(rec.dataset)) if grant else _NO_PLAN,
            grant.doc["valid_from"] if grant else 0.0,
            grant.doc["valid_until"] if grant else 0.0,
        )
        if grant is None or grant.state != "active":
            live.stopped = f"grant {d['grant_id']} was revoked"
        self.live[rec.id] = live
        if self.delivers:
            self.hub.add_outbound_route(
                RouteTargetRuntime(route, target, "sharing-grant", self._transform(rec.id), False)
            )
        self._rebuild(rec.dataset)

    def _extra_masks(self, dataset: str) -> tuple[Any, ...]:
        return tuple(self.hub.guard.mask_rules.get(dataset, ()))

    def _stop(self, live: _Live, why: str) -> None:
        live.stopped = why
        self._rebuild(live.dataset)

    def _rebuild(self, dataset: str) -> None:
        """The ingest hook of ``dataset``: which live subscriptions take a record."""
        subs = [s for s in self.live.values() if s.dataset == dataset and not s.stopped]
        if not subs:
            self.hub.record_targets.pop(dataset, None)
            return
        clock = self.clock

        def targets(record: dict[str, Any]) -> Sequence[TargetRef]:
            now = clock()
            return [
                TargetRef(s.target, s.route)
                for s in subs
                if s.valid_from <= now < s.valid_until and s.plan.matches(record)
            ]

        self.hub.record_targets[dataset] = targets

    def _transform(self, sub_id: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def project(record: dict[str, Any]) -> dict[str, Any]:
            live = self.live.get(sub_id)
            if live is None:
                raise GrantError(f"subscription {sub_id} is unknown on this node", field="grant")
            if live.stopped:
                raise GrantError(f"subscription {sub_id}: {live.stopped}", field="grant")
            now = self.clock()
            if not live.valid_from <= now < live.valid_until:
                raise GrantError(
                    f"subscription {sub_id}: grant {live.grant_id} is not in force", field="grant"
                )
            out = live.plan.apply(record)
            if out is None:
                raise GrantError(
                    f"subscription {sub_id}: the record is outside grant {live.grant_id}",
                    field="grant",
                )
            return out

        return project

    # ------------------------------------------------------------------ requests

    async def create(self, principal: Any, body: SubscriptionIn) -> tuple[ShareRecord, str]:
        """Subscribe; returns the subscription and the webhook secret (shown once)."""
        grant = await self.workflow.grant_for(principal, body.dataset, "subscription", body.grant)
        if body.url.scheme not in ("http", "https"):
            raise BadParameter("url must be http or https", field="url")
        sid = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = float(self.clock())
        rec = ShareRecord(
            "subscription",
            sid,
            1,
            "active",
            grant.dataset,
            grant.provider,
            grant.holder,
            now,
            now,
            {
                "grant_id": grant.id,
                "url": str(body.url),
                "secret": secret,
                "target": f"sub-{sid}",
                "principal": str(principal.id),
            },
        )
        if not await self.hub.store.share_put(rec, expect_rev=0):
            raise ApplicationStateError(f"subscription {sid} exists already", field="id")
        await self._activate(rec, grant)
        await self.hub.guard.record(
            "grant.subscribed",
            principal,
            object=f"subscription {sid}",
            details={"grant": grant.id, "dataset": grant.dataset, "url": str(body.url)},
        )
        return rec, secret

    async def get(self, principal: Any, sub_id: str) -> ShareRecord:
        rec: ShareRecord | None = await self.hub.store.share_get("subscription", sub_id)
        if rec is None or rec.doc.get("principal") != principal.id:
            raise NotFound(f"no subscription {sub_id!r}", field="id")
        return rec

    async def mine(self, principal: Any) -> list[ShareRecord]:
        return [
            r
            for r in await self.hub.store.share_list(
                "subscription", holder=principal.department, limit=1000
            )
            if r.doc.get("principal") == principal.id
        ]

    async def cancel(self, principal: Any, sub_id: str) -> ShareRecord:
        rec = await self.get(principal, sub_id)
        if rec.state != "active":
            raise ApplicationStateError(f"subscription {sub_id} is {rec.state}", field="state")
        now = float(self.clock())
        new = replace(rec, rev=rec.rev + 1, state="cancelled", updated_at=now)
        if not await self.hub.store.share_put(new, expect_rev=rec.rev):
            raise ApplicationStateError(f"subscription {sub_id} changed meanwhile", field="id")
        live = self.live.get(sub_id)
        if live is not None:
            self._stop(live, "the subscription was cancelled")
        await self.hub.guard.record(
            "grant.unsubscribed", principal, object=f"subscription {sub_id}"
        )
        return new

    async def grant_revoked(self, grant_id: str) -> int:
        """Stop every subscription of a revoked grant (their pending deliveries will be
        dead-lettered with E_GRANT); returns how many."""
        n = 0
        now = float(self.clock())
        for rec in await self.hub.store.share_list(
            "subscription", states=["active"], limit=100_000
        ):
            if rec.doc["grant_id"] != grant_id:
                continue
            new = replace(rec, rev=rec.rev + 1, state="revoked", updated_at=now)
            await self.hub.store.share_put(new, expect_rev=rec.rev)
            n += 1
        for live in self.live.values():
            if live.grant_id == grant_id and not live.stopped:
                self._stop(live, f"grant {grant_id} was revoked")
        if n:
            self.hub.wake_targets([s.target for s in self.live.values() if s.grant_id == grant_id])
        return n


class _NoPlan:
    """Stands in for the plan of a subscription whose grant is gone (nothing matches)."""

    def matches(self, record: Any) -> bool:
        return False

    def apply(self, record: Any) -> None:
        return None


_NO_PLAN: Any = _NoPlan()
