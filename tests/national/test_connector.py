"""Integration tests of the national connector against the national simulator (a real
aiohttp server on loopback that requires signatures)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.national.plugin import build_connectors
from adapters.national.simulator import NationalSimulator
from contracts.samples import sample_catalog_item, sample_inspection
from hub.config import load_config
from hub.peers.sink import Sink
from hub.runtime import Hub
from security.keystore import Keystore, ManagedKey
from tests.helpers import wait_until

CODE = "33000000000000"


@pytest.fixture
async def sim() -> AsyncIterator[NationalSimulator]:
    s = NationalSimulator(keys=Keystore())
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def sinks() -> AsyncIterator[dict[str, Sink]]:
    out = {"dept-a": Sink("dept-a"), "dept-b": Sink("dept-b")}
    for s in out.values():
        await s.start()
    yield out
    for s in out.values():
        await s.stop()


def setup(tmp: Path, sim: NationalSimulator, sinks: dict[str, Sink], **national: Any) -> Path:
    from adapters.national.demo import write_national_setup

    path, hub_key, nation_key = write_national_setup(
        tmp, national_url=sim.base_url, dept_urls={n: s.url for n, s in sinks.items()}, **national
    )
    sim.keys = Keystore([ManagedKey(hub_key, owner="zj-hub")])
    sim.signer = nation_key
    return path


async def _delivered(hub: Hub, n: int) -> bool:
    return (await hub.store.counts())["delivered"] >= n


async def test_ordered_catalog_updates_survive_retries_and_a_restart(
    tmp_path: Path, sim: NationalSimulator, sinks: dict[str, Sink]
) -> None:
    path = setup(tmp_path, sim, sinks)
    sim.behaviour.fail_next = 2
    sim.behaviour.lost_replies = 2  # applied, answered 500: the re-send must not conflict
    async with Hub(load_config(path)) as hub:
        await hub.ingest_records("catalog-admin", [sample_catalog_item(i, 1) for i in range(3)])
        for v in (2, 3):
            await hub.ingest_records("catalog-admin", [sample_catalog_item(0, v)])
        await wait_until(lambda: sim.catalog.get(CODE, {}).get("version") == 3, what="v3")
    # a new hub process on the same store: versions 4 and 5 follow, still in order
    sim.behaviour.timeout_next = 1
    sim.behaviour.hang = 3.0  # longer than the transport's 2 s timeout
    async with Hub(load_config(path)) as hub:
        for v in (4, 5):
            await hub.ingest_records("catalog-admin", [sample_catalog_item(0, v)])
        await wait_until(lambda: sim.catalog.get(CODE, {}).get("version") == 5, what="v5")
    versions = [v for c, v, _ in sim.catalog_log if c == CODE]
    assert versions == [1, 2, 3, 4, 5]  # each version applied once, in order
    assert sim.conflicts == [] and sim.lost == []
    assert any(status == 503 for *_, status in sim.requests)


async def test_a_version_conflict_is_rebased_when_the_nation_is_behind(
    tmp_path: Path, sim: NationalSimulator, sinks: dict[str, Sink]
) -> None:
    path = setup(tmp_path, sim, sinks)
    async with Hub(load_config(path)) as hub:
        # version 1 was never sent (the nation lacks the item): version 2 is rebased onto 0
        res = await hub.ingest_records("catalog-admin", [sample_catalog_item(0, 2)])
        await wait_until(lambda: _delivered(hub, 1), what="delivered")
        tr = await hub.store.trace(res.ids[0])
        assert tr is not None and tr.status() == "delivered"
        assert any("rebased onto national version 0" in e.detail for e in tr.events)
    assert sim.conflicts == [(CODE, 1, 0)]
    assert sim.catalog[CODE]["version"] == 2 and sim.catalog_log == [(CODE, 2, "1")]


@pytest.mark.parametrize("on_conflict", ["rebase", "dead_letter"])
async def test_a_conflict_with_a_newer_national_version_is_dead_lettered(
    tmp_path: Path, sim: NationalSimulator, sinks: dict[str, Sink], on_conflict: str
) -> None:
    path = setup(tmp_path, sim, sinks, on_conflict=on_conflict)
    async with Hub(load_config(path)) as hub:
        await hub.ingest_records("catalog-admin", [sample_catalog_item(0, 1)])
        await wait_until(lambda: CODE in sim.catalog, what="v1")
        # someone else moved the national item to version 3 meanwhile
        sim.catalog[CODE]["version"] = 3
        await hub.ingest_records("catalog-admin", [sample_catalog_item(0, 2)])
        await wait_until(lambda: _dead(hub), what="dead letter")
        [dl] = await hub.store.dead_letters()
        assert "E_VERSION_CONFLICT" in dl.reason and "holds version 3" in dl.reason
    assert sim.catalog[CODE]["version"] == 3  # never silently overwritten
    assert [v for _, v, _ in sim.catalog_log] == [1]


async def _dead(hub: Hub) -> bool:
    return (await hub.store.counts())["dead"] >= 1


async def test_batch_partial_failures_are_handled_per_record(
    tmp_path: Path, sim: NationalSimulator, sinks: dict[str, Sink]
) -> None:
    path = setup(tmp_path, sim, sinks, batch_size=50)
    records = [sample_inspection(i) for i in range(30)]
    for i in (3, 17):  # valid for us, but the nation requires 报送时间 (bssj)
        del records[i]["submitted_at"]
    async with Hub(load_config(path)) as hub:
        res = await hub.ingest_records("dept-a", records, dataset="inspection")
        await wait_until(lambda: _delivered(hub, 28), what="28 accepted")
        await wait_until(lambda: _dead(hub), what="dead letters")
        dead = await hub.store.dead_letters()
        assert sorted(d.message_id for d in dead) == sorted([res.ids[3], res.ids[17]])
        assert all("E_NATIONAL_REJECT" in d.reason and "GJ4001" in d.reason for d in dead)
        quarantined = await hub.store.quarantined("dept-a")  # the department sees them
        assert {q.code for q in quarantined} == {"E_NATIONAL_REJECT"}
        assert {q.field for q in quarantined} == {"national.bssj"}
        assert all("GJ4001" in q.detail for q in quarantined)
        tr = await hub.store.trace(res.ids[0])
        assert tr is not None and any("receipt=HZ" in e.detail for e in tr.events)
    assert len(sim.behaviour_records["jcxw"]) == 28
    assert {r[2] for r in sim.rejected} == {"GJ4001"}


async def test_429_is_respected(
    tmp_path: Path, sim: NationalSimulator, sinks: dict[str, Sink]
) -> None:
    path = setup(tmp_path, sim, sinks)
    sim.behaviour.throttle = 1
    sim.behaviour.retry_after = "1"
    async with Hub(load_config(path)) as hub:
        await hub.ingest_records(
            "dept-a", [sample_inspection(i) for i in range(5)], dataset="inspection"
        )
        await wait_until(lambda: len(sim.behaviour_records.get("jcxw", {})) == 5, what="5")
    posts = [(t, status) for t, m, p, status in sim.requests if p.endswith("/behaviour/jcxw")]
    assert posts[0][1] == 429 and posts[-1][1] == 200
    assert posts[1][0] - posts[0][0] >= 0.9  # not before Retry-After (1 s)


async def test_issued_items_are_routed_acknowledged_and_answered(
    tmp_path: Path, sim: NationalSimulator, sinks: dict[str, Sink]
) -> None:
    path = setup(tmp_path, sim, sinks)
    async with Hub(load_config(path)) as hub:
        conn = build_connectors(hub)["national"]
        a = await sim.issue("FXYJ", region="330102", catalog_code=CODE, title="风险预警A")
        b = await sim.issue("TSJB", region="330106", catalog_code=CODE, title="投诉举报B")
        c = await sim.issue("LHCJ", region="330106", catalog_code="11000000000009", title="C")
        assert await conn.pull_once() == 3
        await wait_until(
            lambda: bool(sinks["dept-a"].applied) and bool(sinks["dept-b"].applied), what="routed"
        )
        assert [r["ref"] for r in sinks["dept-a"].applied.values()] == [a["xfbh"]]
        assert [r["kind"] for r in sinks["dept-b"].applied.values()] == ["clue"]
        assert set(sim.acked) == {a["xfbh"], b["xfbh"], c["xfbh"]}
        assert await conn.pull_once() == 0  # the cursor was saved after the commit
        assert await hub.store.get_state("national:national", "issued_cursor") == "3"
        await hub.ingest_records(
            "dept-a",
            [
                {
                    "ref": a["xfbh"],
                    "department": "上城区市场监管局",
                    "department_code": sample_inspection(0)["implementing_body_code"],
                    "status": "done",
                    "result": "已核查处置",
                    "handled_at": "2030-01-02T10:00:00+08:00",
                }
            ],
            dataset="national_feedback",
        )
        await wait_until(lambda: a["xfbh"] in sim.feedback, what="feedback")
    assert sim.feedback[a["xfbh"]][0]["clzt"] == "done"


async def test_reconciliation_after_a_loss_resends_exactly_the_missing_records(
    tmp_path: Path, sim: NationalSimulator, sinks: dict[str, Sink]
) -> None:
    path = setup(tmp_path, sim, sinks, batch_size=20)
    sim.behaviour.lose_next = 3  # accepted with receipts, then lost by the national side
    async with Hub(load_config(path)) as hub:
        await hub.ingest_records(
            "dept-a", [sample_inspection(i) for i in range(25)], dataset="inspection"
        )
        await wait_until(lambda: _delivered(hub, 25), what="25 delivered")
        conn = build_connectors(hub)["national"]
        day = sample_inspection(0)["inspection_time"][:10]
        report = await conn.reconcile(day)
        [jcxw] = [d for d in report.datasets if d.dataset == "jcxw"]
        assert (jcxw.ours_count, jcxw.theirs_count) == (25, 22)
        assert sorted(jcxw.missing) == sorted(sim.lost) and jcxw.resent == 3
        assert jcxw.extra == [] and jcxw.clean_after and report.clean
        again = await conn.reconcile(day)
        assert all(d.clean for d in again.datasets)  # nothing left to re-send
    assert len(sim.behaviour_records["jcxw"]) == 25


async def test_unsigned_requests_are_refused_by_the_simulator(
    tmp_path: Path, sim: NationalSimulator, sinks: dict[str, Sink]
) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.get(sim.base_url + "/catalog/items") as r:
        assert r.status == 401 and (await r.json())["code"] == "GJ4010"
    assert sim.refused == ["E_SIGNATURE"]


async def test_cli_reconcile_and_resync(
    tmp_path: Path, sim: NationalSimulator, sinks: dict[str, Sink]
) -> None:
    """``jghub national reconcile --date``: differences left → exit 1 with E_RECONCILE; with
    re-sending → exit 0 and clean. ``resync`` rebuilds a catalog item the nation lost."""
    import asyncio

    from typer.testing import CliRunner

    from hub.cli import app

    path = setup(tmp_path, sim, sinks)
    sim.behaviour.lose_next = 2
    async with Hub(load_config(path)) as hub:
        await hub.ingest_records(
            "dept-a", [sample_inspection(i) for i in range(6)], dataset="inspection"
        )
        await hub.ingest_records("catalog-admin", [sample_catalog_item(0, 1)])
        await wait_until(lambda: _delivered(hub, 7), what="7 delivered")
    del sim.catalog[CODE]  # the nation lost its view of the item
    day = sample_inspection(0)["inspection_time"][:10]
    runner = CliRunner()

    def cli(*args: str) -> Any:
        return runner.invoke(app, ["national", *args, "--config", str(path)])

    got = await asyncio.to_thread(cli, "reconcile", "--date", day, "--no-resend")
    assert got.exit_code == 1 and "E_RECONCILE" in got.output
    got = await asyncio.to_thread(cli, "reconcile", "--date", day)
    assert got.exit_code == 0, got.output
    assert len(sim.behaviour_records["jcxw"]) == 6
    got = await asyncio.to_thread(cli, "resync")
    assert got.exit_code == 0 and '"replaced":1' in got.output
    assert sim.catalog[CODE]["version"] == 1


async def test_reconcile_on_one_node_sees_what_every_node_sent(
    tmp_path: Path, sim: NationalSimulator, sinks: dict[str, Sink], pg_schema: str
) -> None:
    """Two hub nodes on one PostgreSQL store each upload part of the day's 监管行为; the
    nation loses two records. 对账 on node B finds and re-sends exactly those, including the
    ones node A sent: the ledger is in the shared store, not a file per node."""
    from hub.store.postgres import migrate
    from tests.conftest import PG_DSN

    await migrate(PG_DSN, pg_schema)
    store = {"kind": "postgres", "dsn": PG_DSN, "schema": pg_schema}
    path = setup(tmp_path, sim, sinks, store=store)
    cfg = load_config(path)

    def node(node_id: str) -> Hub:
        hub = cfg.hub.model_copy(update={"node_id": node_id})
        return Hub(cfg.model_copy(update={"hub": hub}))

    sim.behaviour.lose_next = 2  # the first two accepted records are lost: node A's
    records = [sample_inspection(i) for i in range(10)]
    async with node("node-a") as a, node("node-b") as b:
        await a.ingest_records("dept-a", records[:6], dataset="inspection")
        await wait_until(lambda: len(sim.lost) == 2, what="two lost")
        await b.ingest_records("dept-a", records[6:], dataset="inspection")
        await wait_until(lambda: _delivered(b, 10), what="10 delivered")
        day = records[0]["inspection_time"][:10]
        report = await build_connectors(b)["national"].reconcile(day)
        [jcxw] = [d for d in report.datasets if d.dataset == "jcxw"]
        assert (jcxw.ours_count, jcxw.theirs_count) == (10, 8)
        assert sorted(jcxw.missing) == sorted(sim.lost) and jcxw.resent == 2
        assert report.clean and jcxw.clean_after
        # node A reads the same report from the store
        saved = await a.store.get_state("national:national:reconcile", day)
        assert saved is not None and '"clean":true' in saved
    assert len(sim.behaviour_records["jcxw"]) == 10
