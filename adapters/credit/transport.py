"""Transports of the credit adapter.

``credit`` — delivers 双公示 records and 联合奖惩 feedback to the credit platform: the
``http_json`` transport (signed requests, ``Idempotency-Key`` = message id, the same status
classification) with one path per dataset under ``url``, the platform's answer read in its own
form (``{"code": "00000", "hzbh": receipt}``; a refusal ``{"code": "XY4001", "field": ...}``
becomes a dead letter naming ``E_CREDIT_REJECT``, the platform's code and field), and the
disclosure deadline checked on every successful delivery of a dataset in ``decision_fields``:
an overdue disclosure (公示超期, more than 7 working days after the decision) gets a trace note
and counts in ``jghub_credit_disclosures_overdue_total``.

``credit_registry`` — the hub's own record of the list entries it received (名单库): a route
target whose deliveries are written into the store's ledger (book ``credit:lists``, one ledger
"dataset" per subject), so ``GET /v1/credit/subjects/{id}/status`` answers from durable data on
every node, whatever the store (memory, SQLite, PostgreSQL).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from adapters.credit.disclosure import DISCLOSURE_WORKDAYS, lateness, parse_day
from adapters.credit.errors import CreditRejected
from hub.specs import OutboundItem, SendResult, TransportSpec
from hub.transports.http_json import HttpJsonOptions, HttpJsonTransport
from hub.workdays import WorkCalendar

__all__ = [
    "OK_CODES",
    "CreditOptions",
    "CreditTransport",
    "RegistryOptions",
    "RegistryTransport",
    "overdue_counter",
    "registry_spec",
    "spec",
]

#: the platform's codes of an accepted record: 00000 accepted, XY0002 already accepted (重复)
OK_CODES = frozenset({"00000", "XY0002"})


class CreditOptions(HttpJsonOptions):
    """``outbound:`` of the credit platform (``transport: credit``): the ``http_json`` options
    with ``url`` as the API root, plus the path of each dataset and the deadline check."""

    paths: dict[str, str] = Field(
        min_length=1, description="dataset -> path under url (e.g. credit_penalty: sgs/xzcf)"
    )
    decision_fields: dict[str, str] = Field(
        default_factory=dict,
        description="dataset -> field of the mapped record holding the decision date; "
        "deliveries of these datasets are checked against the disclosure deadline",
    )
    disclosure_workdays: int = Field(
        DISCLOSURE_WORKDAYS, ge=1, le=60, description="working days allowed after the decision"
    )
    deadline_check_interval: float = Field(
        300.0,
        gt=0,
        description="seconds between checks of the records still waiting for the platform "
        "(queued, in retry, dead-lettered) against their disclosure deadline",
    )
    deadline_check_limit: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="undelivered deliveries one check reads at most (the oldest first)",
    )

    @model_validator(mode="after")
    def _per_record(self) -> CreditOptions:
        if self.batch_size != 1:
            raise ValueError("the credit platform takes one record per request: batch_size 1")
        unknown = set(self.decision_fields) - set(self.paths)
        if unknown:
            raise ValueError(f"decision_fields names datasets without a path: {sorted(unknown)}")
        return self


def overdue_counter(hub: Any) -> Any:
    """The ``jghub_credit_disclosures_overdue`` counter in the hub's monitoring registry (one
    per hub, created on first use), or None when the monitoring plugin is not loaded."""
    for plugin in hub.pm.get_plugins():
        metrics = getattr(plugin, "metrics", None)
        registry = getattr(metrics, "registry", None)
        if metrics is None or registry is None:
            continue
        counter = getattr(metrics, "credit_overdue", None)
        if counter is None:
            from prometheus_client import Counter

            from monitoring.metrics import METRICS

            name = "jghub_credit_disclosures_overdue_total"
            doc = next(m for m in METRICS if m.name == name)
            counter = Counter(name.removesuffix("_total"), doc.help, doc.labels, registry=registry)
            metrics.credit_overdue = counter
        return counter
    return None


class CreditTransport(HttpJsonTransport):
    """See the module docstring. :meth:`attach` gives it the hub's calendar, clock and metrics
    (the plugin calls it at start); unattached it uses a calendar of weekends only."""

    def __init__(self, target: str, options: CreditOptions) -> None:
        super().__init__(target, options)
        self.credit = options
        self.root = str(options.url).rstrip("/")
        self.calendar = WorkCalendar()
        self.clock = time.time
        self.overdue: Any = None
        self.hub: Any = None

    def attach(self, hub: Any) -> None:
        self.hub = hub
        self.calendar = hub.config.work_calendar()
        self.clock = hub.clock
        self.overdue = overdue_counter(hub)
        if self.overdue is not None:
            for ds in self.credit.decision_fields:
                self.overdue.labels(self.target, ds)  # the series exists at zero

    async def send(self, items: Sequence[OutboundItem]) -> list[SendResult]:
        return list(await asyncio.gather(*(self._send_credit(i) for i in items)))

    async def _send_credit(self, item: OutboundItem) -> SendResult:
        path = self.credit.paths.get(item.dataset)
        if path is None:
            return SendResult(
                False,
                None,
                True,
                f"{CreditRejected.code}: dataset {item.dataset} has no path in outbound.paths",
            )
        res, answer = await self.post_to(
            f"{self.root}/{path.lstrip('/')}", orjson.dumps(item.body), self._headers(item)
        )
        if not res.ok:
            if res.permanent:
                res.detail = _refusal(res.status, res.detail)
            return res
        code = str(answer.get("code", "")) if isinstance(answer, dict) else ""
        if code not in OK_CODES:  # a 2xx whose body does not say "accepted" is no receipt
            res.ok, res.permanent = False, False
            res.detail = f"unreadable answer of the credit platform: {res.detail or answer!r}"[:300]
            return res
        assert isinstance(answer, dict)
        res.receipt = str(answer.get("hzbh") or "") or res.receipt
        notes = ["信用平台: 重复上报, first receipt kept"] if code == "XY0002" else []
        field = self.credit.decision_fields.get(item.dataset)
        if field is not None and isinstance(item.body, dict):
            late = self._lateness(item.body.get(field))
            if late is not None and late.overdue:
                notes.append(late.note())
                if self.overdue is not None and code != "XY0002":
                    self.overdue.labels(self.target, item.dataset).inc()
        res.detail = "; ".join(notes)
        return res

    def _lateness(self, value: Any) -> Any:
        decided = parse_day(value)
        if decided is None:
            return None
        today = dt.datetime.fromtimestamp(self.clock(), self.calendar.tz).date()
        return lateness(self.calendar, decided, today, self.credit.disclosure_workdays)


def _refusal(status: int | None, text: str) -> str:
    """A permanent refusal as ``E_CREDIT_REJECT <platform code> [field] message``."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and doc.get("code"):
        where = f" [{doc['field']}]" if doc.get("field") else ""
        return f"{CreditRejected.code} {doc['code']}{where} {doc.get('message', '')}".strip()[:300]
    return f"{CreditRejected.code} HTTP {status}: {text}"[:300]


# --------------------------------------------------------------------------- the registry


class RegistryOptions(BaseModel):
    """``outbound:`` of the hub's list registry (``transport: credit_registry``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    book: str = Field("credit:lists", min_length=1, description="ledger book of the entries")


class RegistryTransport:
    """Writes delivered ``credit_list_entry`` records into the store's ledger; see
    :mod:`adapters.credit.status` for the read side. Batches of up to 200 in one commit."""

    max_batch = 200
    concurrency = 1

    def __init__(self, target: str, options: RegistryOptions) -> None:
        self.target = target
        self.options = options
        self.hub: Any = None

    def attach(self, hub: Any) -> None:
        self.hub = hub

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, items: Sequence[OutboundItem]) -> list[SendResult]:
        from adapters.credit.status import ledger_entry

        if self.hub is None:
            return [SendResult(False, None, False, "registry not attached yet")] * len(items)
        t0 = time.perf_counter()
        results: list[SendResult | None] = [None] * len(items)
        entries = []
        for i, item in enumerate(items):
            if item.dataset != "credit_list_entry":
                results[i] = SendResult(
                    False, None, True, f"the registry keeps credit_list_entry, not {item.dataset}"
                )
                continue
            try:
                entries.append((i, ledger_entry(self.options.book, item.body, self.hub.clock())))
            except (ValidationError, TypeError, ValueError) as exc:
                results[i] = SendResult(False, None, True, f"not a list entry: {exc}"[:300])
        try:
            await self.hub.store.ledger_put([e for _, e in entries])
        except Exception as exc:  # the store is down: retried like any delivery
            detail = f"ledger write failed: {type(exc).__name__}: {exc}"[:300]
            return [r or SendResult(False, None, False, detail) for r in results]
        ms = (time.perf_counter() - t0) * 1000
        for i, e in entries:
            results[i] = SendResult(
                True, 200, detail=f"名单库: subject {e.dataset} entry {e.key}", latency_ms=ms
            )
        return [r for r in results if r is not None]


spec = TransportSpec(
    name="credit",
    factory=CreditTransport,
    config_model=CreditOptions,
    description="the credit platform (信用平台): signed JSON per record, a path per dataset, "
    "receipts and the 双公示 disclosure deadline",
)

registry_spec = TransportSpec(
    name="credit_registry",
    factory=RegistryTransport,
    config_model=RegistryOptions,
    description="the hub's list registry (名单库): credit list entries into the store's ledger",
)
