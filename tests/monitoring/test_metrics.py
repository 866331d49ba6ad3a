"""/metrics after a scripted scenario over real HTTP (hub and sinks on 127.0.0.1, real SQLite):
counters and histograms move as they should; /readyz flips when the store goes and recovers;
adapter health comes through ``hub_adapter_health``; logs carry message and trace ids."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from contracts.samples import sample_inspection
from hub.api import create_app
from hub.events import AdapterHealth
from hub.logs import configure_logging
from hub.peers.sink import Sink, SinkBehaviour
from hub.plugins import hookimpl
from hub.runtime import Hub
from monitoring.metrics import METRICS
from monitoring.plugin import endpoint_of
from tests.helpers import config, wait_until
from tests.monitoring.helpers import monitor_of, samples, value

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]
REJECT_NO = sample_inspection(99)["inspection_no"]


@pytest.fixture
async def sinks() -> AsyncIterator[tuple[Sink, Sink]]:
    ok = Sink(
        "national",
        SinkBehaviour(reject=lambda r: "refused" if r.get("inspection_no") == REJECT_NO else None),
    )
    flaky = Sink("city", SinkBehaviour(fail_rate=0.5, seed=3))
    await ok.start()
    await flaky.start()
    yield ok, flaky
    await ok.stop()
    await flaky.stop()


class AdapterReporter:
    """A third-party plugin reporting its adapter's health (what a SOAP adapter would say)."""

    def __init__(self) -> None:
        self.calls: list[frozenset[str]] = []

    @hookimpl
    def hub_adapter_health(self, hub: Any, fresh: frozenset[str]) -> list[AdapterHealth]:
        self.calls.append(fresh)
        return [AdapterHealth("city", "degraded", "WSDL cache is stale", "soap-adapter")]


async def test_metrics_after_a_scripted_scenario(
    tmp_path: Path, sinks: tuple[Sink, Sink], aiohttp_client: AiohttpClient
) -> None:
    ok, flaky = sinks
    cfg = config(
        tmp_path,
        {"national": {"url": ok.url}, "city": {"url": flaky.url}},
        token="s3cret",
        retry={"max_attempts": 50, "base_delay": 0.001, "max_delay": 0.005},
    )
    reporter = AdapterReporter()
    hub = Hub(cfg, extra_plugins=[reporter])
    client = await aiohttp_client(create_app(cfg, hub=hub))
    auth = {"Authorization": "Bearer s3cret", "Content-Type": "application/json"}
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    before = samples(await (await client.get("/metrics")).text())
    # every target's series exists at zero before its first delivery
    assert ("jghub_deliveries_total", (("outcome", "succeeded"), ("target", "city"))) in before

    records = [sample_inspection(i) for i in range(5)] + [sample_inspection(99)]
    r = await client.post(
        "/v1/systems/dept-a/records",
        data=orjson.dumps(records),
        headers={**auth, "traceparent": tp, "Idempotency-Key": "batch-1"},
    )
    assert r.status == 202, await r.text()
    ids = (await r.json())["ids"]
    # the same batch again: six duplicates
    r = await client.post(
        "/v1/systems/dept-a/records",
        data=orjson.dumps(records),
        headers={**auth, "Idempotency-Key": "batch-1"},
    )
    assert r.status == 202
    # one bad record in a batch (E_SCHEMA, quarantined), one request with a wrong token
    bad = {**sample_inspection(7), "inspection_date": "not a date"}
    r = await client.post(
        "/v1/systems/dept-a/records", data=orjson.dumps([sample_inspection(8), bad]), headers=auth
    )
    assert r.status == 207
    r = await client.post(
        "/v1/systems/dept-a/records",
        data=orjson.dumps(sample_inspection(9)),
        headers={**auth, "Authorization": "Bearer wrong"},
    )
    assert r.status == 401
    # unknown systems never become labels
    assert (await client.post("/v1/systems/nobody/records", data=b"{}", headers=auth)).status == 404

    await wait_until(lambda: len(ok.applied) == 6 and len(flaky.applied) == 7, what="deliveries")
    mon = monitor_of(hub)

    def settled() -> bool:
        # a sink applies a record before the hub has read its answer and settled it: wait for
        # the hub's own counts (the hooks behind the metrics), not for the sinks
        now = samples(mon.metrics.exposition().decode())

        def count(target: str, outcome: str) -> float:
            return value(now, "jghub_deliveries_total", target=target, outcome=outcome) - value(
                before, "jghub_deliveries_total", target=target, outcome=outcome
            )

        return (
            count("national", "dead_lettered") == 1
            and count("national", "succeeded") == 6
            and count("city", "succeeded") == 7
        )

    await wait_until(settled, what="every delivery settled")
    got = samples(await (await client.get("/metrics")).text())

    def delta(name: str, **labels: str) -> float:
        return value(got, name, **labels) - value(before, name, **labels)

    assert delta("jghub_records_accepted_total", system="dept-a", dataset="inspection") == 7
    assert delta("jghub_records_duplicate_total", system="dept-a", dataset="inspection") == 6
    assert (
        delta(
            "jghub_records_rejected_total", system="dept-a", dataset="inspection", code="E_SCHEMA"
        )
        == 1
    )
    assert delta("jghub_records_quarantined_total", system="dept-a", dataset="inspection") == 1
    assert delta("jghub_records_rejected_total", system="dept-a", dataset="", code="E_AUTH") == 1
    assert not [k for k in got if ("system", "nobody") in k[1]]
    # national: 6 succeeded, 1 dead-lettered (422 is permanent); city: retried, all succeeded
    assert delta("jghub_deliveries_total", target="national", outcome="succeeded") == 6
    assert delta("jghub_deliveries_total", target="national", outcome="dead_lettered") == 1
    assert delta("jghub_deliveries_total", target="city", outcome="succeeded") == 7
    assert (
        delta("jghub_deliveries_total", target="city", outcome="retried") == flaky.failures_sent > 0
    )
    # histograms: one end-to-end observation per success, one attempt per request
    assert delta("jghub_end_to_end_seconds_count", target="national") == 6
    assert delta("jghub_end_to_end_seconds_count", target="city") == 7
    assert delta("jghub_delivery_attempt_seconds_count", target="city") == flaky.requests
    assert value(got, "jghub_end_to_end_seconds_bucket", target="national", le="+Inf") == 6
    assert value(got, "jghub_end_to_end_seconds_sum", target="national") > 0
    # state read at scrape time
    assert value(got, "jghub_dead_letters", target="national") == 1
    assert value(got, "jghub_queue_depth", target="national", state="pending") == 0
    assert value(got, "jghub_queue_oldest_due_age_seconds", target="city") == 0
    assert value(got, "jghub_circuit_state", target="city", state="closed") == 1
    assert value(got, "jghub_store_up") == 1 and value(got, "jghub_dispatcher_running") == 1
    assert (
        value(got, "jghub_build_info", version=__import__("hub").__version__, node="test-node") == 1
    )
    # every emitted family is in the catalogue (docs/monitoring.md lists the same)
    catalogue = {m.name.removesuffix("_total") for m in METRICS if m.emitted}
    suffixes = ("_bucket", "_count", "_sum", "_created", "_total")
    families = set()
    for name, _ in got:
        for suffix in suffixes:
            name = name.removesuffix(suffix)
        families.add(name)
    assert families <= catalogue, families - catalogue

    # W3C trace context: the sink got the inbound trace id on the outbound request
    assert ok.traceparents[ids[0]].split("-")[1] == tp.split("-")[1]
    assert ok.traceparents[ids[0]] != tp  # a child span, same trace

    # adapter health through the hook: the reporter's word and the generic probe
    await mon.probe()
    assert reporter.calls and {"national", "city"} <= reporter.calls[-1]  # fresh: not probed
    ready = await (await client.get("/readyz")).json()
    assert ready["status"] == "ready"
    assert ready["targets"]["city"]["health"] == "degraded"
    assert ready["targets"]["national"]["health"] == "up"
    assert {
        "system": "city",
        "status": "degraded",
        "reporter": "soap-adapter",
        "detail": "WSDL cache is stale",
    } in ready["adapters"]
    got = samples(await (await client.get("/metrics")).text())
    assert value(got, "jghub_adapter_up", system="city", reporter="soap-adapter") == 1
    assert value(got, "jghub_target_health", target="city", state="degraded") == 1


async def test_readiness_flips_when_the_store_goes_and_recovers(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    cfg = config(tmp_path, {})
    hub = Hub(cfg)
    client = await aiohttp_client(create_app(cfg, hub=hub))
    r = await client.get("/readyz")
    doc = await r.json()
    assert r.status == 200 and doc["status"] == "ready", doc
    assert doc["migrations"] == {"found": 3, "expected": 3}
    db = cfg.store_path()
    moved = db.with_name("moved.db")
    db.rename(moved)  # the volume went away under the running hub
    r = await client.get("/readyz")
    doc = await r.json()
    assert r.status == 503 and any("is missing" in p for p in doc["problems"]), doc
    got = samples(await (await client.get("/metrics")).text())
    assert value(got, "jghub_store_up") == 0
    moved.rename(db)
    r = await client.get("/readyz")
    assert r.status == 200, await r.text()
    # the store closed under the hub (its writer gone): not ready; reopened: ready again
    await hub.store.close()
    r = await client.get("/readyz")
    assert r.status == 503 and "store is not open" in (await r.json())["problems"]
    await hub.store.open()
    r = await client.get("/readyz")
    assert r.status == 200 and (await r.json())["status"] == "ready"
    assert (await client.get("/healthz")).status == 200


async def test_probe_sees_a_target_go_down_and_come_back(tmp_path: Path) -> None:
    sink = Sink("national")
    await sink.start()
    try:
        cfg = config(tmp_path, {"national": {"url": sink.url}})
        async with Hub(cfg) as hub:
            mon = monitor_of(hub)
            await mon.probe()
            assert mon.health.state("national") == "up"
            await sink.go_down()
            await mon.probe()
            assert mon.health.state("national") == "down"
            assert "unreachable" in mon.health.detail("national")
            await sink.come_up()
            await mon.probe()
            assert mon.health.state("national") == "up"
    finally:
        await sink.stop()


def test_endpoints_probed_per_transport() -> None:
    assert endpoint_of({"url": "http://10.1.2.3:8080/in"}) == ("tcp", "10.1.2.3", 8080)
    assert endpoint_of({"url": "https://gov.example/in"}) == ("tcp", "gov.example", 443)
    assert endpoint_of({"url": "amqp://u:p@mq.local/vh"}) == ("tcp", "mq.local", 5672)
    assert endpoint_of({"url": "postgresql://db.local/x"}) == ("tcp", "db.local", 5432)
    assert endpoint_of({"directory": "out/batches"}) == ("dir", Path("out/batches"))
    assert endpoint_of({"wsdl": "file.wsdl"}) is None


async def test_delivery_logs_are_json_with_message_and_trace_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    sink = Sink("national")
    await sink.start()
    try:
        configure_logging(logging.DEBUG)
        cfg = config(tmp_path, {"national": {"url": sink.url}})
        tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        async with Hub(cfg) as hub:
            res = await hub.ingest_records("dept-a", [sample_inspection(1)], traceparent=tp)
            await wait_until(lambda: len(sink.applied) == 1, what="delivery")
            mon = monitor_of(hub)
            await wait_until(
                lambda: (
                    value(
                        samples(mon.metrics.exposition().decode()),
                        "jghub_deliveries_total",
                        target="national",
                        outcome="succeeded",
                    )
                    == 1
                ),
                what="the delivered hook",
            )
        lines = [orjson.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        await sink.stop()
    delivered = [x for x in lines if x.get("event") == "delivered"]
    assert delivered, lines
    assert delivered[0]["message_id"] == res.ids[0]
    assert delivered[0]["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert delivered[0]["logger"] == "jghub.deliveries" and delivered[0]["target"] == "national"
    accepted = [x for x in lines if x.get("event") == "accepted"]
    assert accepted and accepted[0]["trace_id"] == "0af7651916cd43dd8448eb211c80319c"


def _delivery_samples(m: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    names = ("jghub_deliveries", "jghub_delivery_attempt_seconds", "jghub_end_to_end_seconds")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in m.registry.collect()
        if fam.name in names
        for s in fam.samples
        if not s.name.endswith("_created")
    }


def test_a_settled_unit_counts_as_each_delivery_alone() -> None:
    """``on_deliveries`` (one call per unit, one counter increment per target and outcome)
    leaves every delivery counter and histogram as one ``on_delivery`` call per delivery."""
    from hub.events import DeliveryEvent
    from monitoring.metrics import HubMetrics

    def ev(target: str, status: int | None, ms: float, accepted: float | None) -> DeliveryEvent:
        return DeliveryEvent("m", target, "r", 1, status, "", ms, accepted, None)

    events: list[tuple[str, DeliveryEvent, float | str]] = [
        ("ok", ev("a", 200, 12.0, 90.0), ""),
        ("ok", ev("a", 200, 12.0, 99.5), ""),
        ("retry", ev("a", 503, 3.0, 95.0), 101.0),
        ("dead", ev("a", 422, 7.5, 95.0), "bad"),
        ("ok", ev("b", 200, 0.0, None), ""),
        ("retry", ev("b", None, 10_000.0, 1.0), 130.0),
        ("dead", ev("b", None, 0.0, None), "gave up"),
    ]
    one_by_one, per_unit = HubMetrics(), HubMetrics()
    names = {"ok": "succeeded", "retry": "retried", "dead": "dead_lettered"}
    for kind, e, _ in events:
        one_by_one.on_delivery(names[kind], e, 100.0)
    per_unit.on_deliveries(events[:3], 100.0)
    per_unit.on_deliveries(events[3:], 100.0)
    got = _delivery_samples(per_unit)
    want = _delivery_samples(one_by_one)
    assert got.keys() == want.keys()
    for k, v in want.items():  # counts and buckets exact; a sum is one addition of the total
        assert got[k] == (pytest.approx(v, rel=1e-12) if k[0].endswith("_sum") else v), k
    assert got[("jghub_deliveries_total", (("outcome", "succeeded"), ("target", "a")))] == 2


@pytest.mark.parametrize(
    "values",
    [
        [],
        [0.0],
        [0.003] * 500,
        [0.005, 0.0050001, 0.01, 2.5, 1e9, 0.0, 7.0, 7.0],
        [float("nan"), 0.2],
    ],
)
def test_observe_all_is_one_observe_each(values: list[float]) -> None:
    from prometheus_client import CollectorRegistry, Histogram

    from monitoring.metrics import _BUCKETS, observe_all

    def hist() -> Any:
        return Histogram("h", "h", ("t",), buckets=_BUCKETS, registry=CollectorRegistry())

    one, many = hist(), hist()
    child = one.labels("a")
    for v in values:
        child.observe(v)
    observe_all(many.labels("a"), values)

    def samples(h: Any) -> dict[tuple[str, str], float]:
        return {
            (s.name, s.labels.get("le", "")): s.value
            for fam in h.collect()
            for s in fam.samples
            if not s.name.endswith("_created")
        }

    got, want = samples(many), samples(one)
    assert got.keys() == want.keys()
    for k, v in want.items():
        if v != v:
            assert got[k] != got[k], k
        else:
            assert got[k] == (pytest.approx(v, rel=1e-12) if k[0].endswith("_sum") else v), k
