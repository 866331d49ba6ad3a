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

The webhook secret (the HMAC key the hub signs each push with) is kept in the subscription's
document in the store. With field encryption configured (``security.fieldcrypt``) it is stored
encrypted, as the field ``secret`` of the internal dataset ``sharing.subscription`` (its own data
key; the associated data binds the value to that dataset and field), and decrypted only when a
node makes the subscription's delivery target. Secrets stored in clear before encryption was
turned on still work. Without field encryption the secret is stored in clear, and the node says
so once at start (a warning) when subscriptions exist or the catalog offers them.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from hub.config import CircuitPolicy, RetryPolicy, SystemConfig
from hub.errors import (
    ApplicationStateError,
    BadParameter,
    DecryptError,
    GrantError,
    HubError,
    NotFound,
)
from hub.routing import RouteTargetRuntime
from hub.sharing.access import subscription_plan
from hub.sharing.enforce import Plan
from hub.store.base import ShareRecord, TargetRef

__all__ = ["SECRET_DATASET", "SECRET_FIELD", "SubscriptionIn", "Subscriptions", "subscription_view"]

log = logging.getLogger("jghub.sharing")

#: the internal dataset and field path the webhook secrets are encrypted as (security.fieldcrypt)
SECRET_DATASET = "sharing.subscription"
SECRET_FIELD = "secret"
_ENC_PREFIX = "enc:v1:"  # security.fieldcrypt.PREFIX (not imported: security is optional)


class SubscriptionIn(BaseModel):
    """A subscription request: push the dataset's granted slice to ``url``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(min_length=1, max_length=64)
    url: AnyHttpUrl = Field(description="the requester's webhook (http or https)")
    grant: str | None = Field(None, max_length=64, description="default: the grant in force")


def subscription_view(rec: ShareRecord) -> dict[str, Any]:
    """The subscription as API answers show it: never its webhook secret."""
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
        #: live subscriptions whose delivery target is not made yet (their secret did not open)
        self._no_target: set[str] = set()
        self._cipher: Any = None  # security.fieldcrypt.FieldCipher of SECRET_DATASET
        self._cipher_ring: Any = None

    # ------------------------------------------------------------------ webhook secrets

    def _fieldcrypt_configured(self) -> bool:
        parts = getattr(getattr(self.hub, "guard", None), "parts", None)
        return parts is not None and parts.fieldcrypt_settings is not None

    async def _secret_cipher(self) -> Any:
        """The field cipher of the secrets, or None without field encryption."""
        keyring = getattr(getattr(self.hub, "guard", None), "keyring", None)
        if keyring is None:
            return None
        if self._cipher_ring is not keyring:
            # re-read the data keys first: another process of this node (the node, an ingest
            # process) may have made this dataset's key since ours were read at start
            await keyring.load()
            await keyring.ensure([SECRET_DATASET])
            self._cipher = keyring.cipher(SECRET_DATASET, [SECRET_FIELD])
            self._cipher_ring = keyring
        return self._cipher

    async def _seal(self, secret: str) -> str:
        """The secret as stored: encrypted when field encryption is configured."""
        cipher = await self._secret_cipher()
        if cipher is None:
            return secret
        sealed: str = cipher.encrypt_fields({SECRET_FIELD: secret})[SECRET_FIELD]
        return sealed

    async def _open(self, rec: ShareRecord) -> str:
        """The clear secret of a stored subscription (a clear one, stored before encryption
        was turned on, as it is); DecryptError when it does not open here."""
        stored = rec.doc["secret"]
        if not (isinstance(stored, str) and stored.startswith(_ENC_PREFIX)):
            return str(stored)
        cipher = await self._secret_cipher()
        if cipher is None:
            raise DecryptError(
                "the webhook secret is encrypted and security.fieldcrypt is not configured",
                field=SECRET_FIELD,
            )
        try:
            clear = cipher.decrypt_fields({SECRET_FIELD: stored})[SECRET_FIELD]
        except DecryptError:
            # a data key made by another process of this node since our keyring was read
            await cipher.keyring.load()
            clear = cipher.decrypt_fields({SECRET_FIELD: stored})[SECRET_FIELD]
        return str(clear)

    async def _warn_if_clear(self) -> None:
        if not self.delivers or self._fieldcrypt_configured():
            return
        offered = any(
            "subscription" in r.share_methods
            for r in getattr(getattr(self.workflow, "catalog", None), "resources", {}).values()
        )
        if offered or await self.hub.store.share_list("subscription", states=["active"], limit=1):
            log.warning(
                "webhook secrets of data-sharing subscriptions are stored in the clear in the "
                "hub store; configure security.fieldcrypt to encrypt them"
            )

    # ------------------------------------------------------------------ life cycle

    async def load(self) -> None:
        """Start routing (and, on a node, delivering) for every active subscription."""
        await self._warn_if_clear()
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
            elif sid in self._no_target:
                await self._add_target(rec)
        for live in list(self.live.values()):
            if live.stopped:
                continue
            if live.id not in active:
                self._stop(live, "the subscription was cancelled or revoked")
                continue
            grant = await store.share_get("grant", live.grant_id)
            if grant is None or grant.state != "active":
                self._stop(live, f"grant {live.grant_id} was revoked")

    async def _add_target(self, rec: ShareRecord, secret: str | None = None) -> bool:
        """Make the subscription's delivery target (the webhook, signing with its secret);
        False, logged once, when the stored secret does not open on this node (the
        subscription still routes: its deliveries wait, and the next refresh tries again)."""
        d = rec.doc
        if secret is None:
            try:
                secret = await self._open(rec)
            except HubError as exc:  # E_DECRYPT; E_CONFIG from a data key that does not unwrap
                if rec.id not in self._no_target:
                    log.error(
                        "subscription %s: its webhook secret does not open on this node (%s); "
                        "its deliveries wait until it does",
                        rec.id,
                        exc.message,
                    )
                self._no_target.add(rec.id)
                return False
        sc = SystemConfig(
            name=d["target"],
            title=f"subscription {rec.id} of {rec.holder}",
            adapter="json",
            outbound={"transport": "webhook", "url": d["url"], "secret": secret},
            retry=self.retry,
            circuit=self.circuit,
        )
        await self.hub.add_target(sc)
        self.hub.add_outbound_route(
            RouteTargetRuntime(
                f"sharing-{rec.id}", d["target"], "sharing-grant", self._transform(rec.id), False
            )
        )
        self._no_target.discard(rec.id)
        return True

    async def _activate(
        self, rec: ShareRecord, grant: ShareRecord | None, secret: str | None = None
    ) -> None:
        d = rec.doc
        target = d["target"]
        route = f"sharing-{rec.id}"
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
            await self._add_target(rec, secret)
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
                "secret": await self._seal(secret),
                "target": f"sub-{sid}",
                "principal": str(principal.id),
            },
        )
        if not await self.hub.store.share_put(rec, expect_rev=0):
            raise ApplicationStateError(f"subscription {sid} exists already", field="id")
        await self._activate(rec, grant, secret)
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
