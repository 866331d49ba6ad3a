"""The national connector's schedule run by APScheduler for real: jobs configured in YAML
fire (a crontab line with seconds), missed runs are coalesced within their misfire grace and
skipped beyond it, and two hub nodes on one store never run the same job at once (the store
lease). The peers are the national simulator and department sinks on loopback."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.national.connector import (
    CHINA_TZ,
    NationalAdapterOptions,
    ScheduleSettings,
    cron_trigger,
)
from adapters.national.plugin import connectors
from adapters.national.simulator import NationalSimulator
from hub.config import HubConfig, load_config
from hub.peers.sink import Sink
from hub.runtime import Hub
from hub.store import Store
from hub.store.memory import MemoryStore
from security.keystore import Keystore
from tests.conftest import PG_DSN
from tests.helpers import wait_until
from tests.national.test_connector import CODE, setup


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


def _gets(sim: NationalSimulator, path: str) -> int:
    return sum(1 for _, m, p, _ in sim.requests if m == "GET" and p.endswith(path))


def test_crontab_lines_with_seconds_and_crontab_weekdays() -> None:
    every = cron_trigger("*/10 * * * * *")  # six fields: seconds first
    at = dt.datetime(2024, 3, 1, 12, 0, 3, tzinfo=CHINA_TZ)
    assert every.get_next_fire_time(None, at) == at.replace(second=10)
    # five fields: on the minute; weekday 0 is Sunday as in crontab (APScheduler 3 says Monday)
    weekly = cron_trigger("0 3 * * 0")
    friday = dt.datetime(2024, 3, 1, 12, 0, tzinfo=CHINA_TZ)
    assert weekly.get_next_fire_time(None, friday) == dt.datetime(2024, 3, 3, 3, 0, tzinfo=CHINA_TZ)
    workdays = cron_trigger("30 8 * * 1-5")
    assert workdays.get_next_fire_time(None, friday) == dt.datetime(
        2024, 3, 4, 8, 30, tzinfo=CHINA_TZ
    )
    with pytest.raises(ValueError, match="not a crontab expression"):
        ScheduleSettings(cron="* * * *")
    with pytest.raises(ValueError, match="unknown jobs"):
        NationalAdapterOptions(schedules={"pul": ScheduleSettings(cron="* * * * *")})


async def test_a_scheduled_pull_fires_and_routes_what_the_nation_issued(
    tmp_path: Path, sim: NationalSimulator, sinks: dict[str, Sink]
) -> None:
    """No push address: the warning reaches dept-a only because APScheduler ran ``pull``."""
    path = setup(tmp_path, sim, sinks, schedules={"pull": {"cron": "* * * * * *"}})
    item = await sim.issue("FXYJ", region="330102", catalog_code=CODE, title="风险预警")
    async with Hub(load_config(path)) as hub:
        conn = connectors(hub)["national"]
        assert conn.scheduled_jobs() == ["national:national:pull"]
        await wait_until(lambda: bool(sinks["dept-a"].applied), what="the warning at dept-a")
        await wait_until(lambda: conn.job_runs.get("pull", 0) >= 2, what="a second run")
        assert [r["ref"] for r in sinks["dept-a"].applied.values()] == [item["xfbh"]]
        assert item["xfbh"] in sim.acked
        assert await hub.store.get_state("national:national", "issued_cursor") == "1"
    assert not sinks["dept-b"].applied and conn.scheduler is None  # stopped with the hub


async def test_missed_runs_are_coalesced_within_the_grace_and_skipped_beyond_it(
    tmp_path: Path, sim: NationalSimulator, sinks: dict[str, Sink]
) -> None:
    """Both jobs are daily at the same time of day, a minute ago, and both missed their runs
    of the last three days and today (the node was down: their next run time lies four runs
    back). ``pull`` (grace 300 s) runs once for the four; ``resync`` (grace 5 s) is skipped,
    its latest missed run being 60 s old. Both then wait for tomorrow."""
    past = dt.datetime.now(CHINA_TZ).replace(microsecond=0) - dt.timedelta(seconds=60)
    daily = f"{past.second} {past.minute} {past.hour} * * *"
    path = setup(
        tmp_path,
        sim,
        sinks,
        schedules={
            "pull": {"cron": daily, "misfire_grace_seconds": 300},
            "resync": {"cron": daily, "misfire_grace_seconds": 5},
        },
    )
    async with Hub(load_config(path)) as hub:
        conn = connectors(hub)["national"]
        sched = conn.scheduler
        assert sched is not None
        for name in ("pull", "resync"):  # what a node that was down finds in its job store
            sched.modify_job(f"national:national:{name}", next_run_time=past - dt.timedelta(days=3))
        await wait_until(lambda: conn.job_runs.get("pull") == 1, what="pull ran")
        await wait_until(lambda: conn.job_misses.get("resync") == 1, what="resync missed")
        assert conn.job_misses.get("pull") is None and conn.job_runs.get("resync") is None
        assert _gets(sim, "/issued") == 1  # one run for four missed ones (coalesced)
        assert _gets(sim, "/catalog/items") == 0  # the resync never ran
        for name in ("pull", "resync"):
            job = sched.get_job(f"national:national:{name}")
            assert job is not None and job.next_run_time == past + dt.timedelta(days=1)


def _node(cfg: HubConfig, node_id: str) -> HubConfig:
    return cfg.model_copy(update={"hub": cfg.hub.model_copy(update={"node_id": node_id})})


@pytest.mark.parametrize("kind", ["memory", "postgres"])
async def test_two_nodes_on_one_store_never_run_the_same_job_at_once(
    tmp_path: Path, sim: NationalSimulator, sinks: dict[str, Sink], kind: str, pg_schema: str
) -> None:
    """Two hub nodes on one store (a memory store both share, or one PostgreSQL schema), both
    scheduling ``pull`` every second. The national side answers the first pull slowly
    (1.5 s), so the running node's run overlaps the other's firing: the store lease lets one run and
    the other skip; the nation never sees two pulls at once."""
    store_doc = None
    if kind == "postgres":
        from hub.store.postgres import migrate

        await migrate(PG_DSN, pg_schema)
        store_doc = {"kind": "postgres", "dsn": PG_DSN, "schema": pg_schema}
    path = setup(tmp_path, sim, sinks, schedules={"pull": {"cron": "* * * * * *"}}, store=store_doc)
    cfg = load_config(path)
    shared: Store | None = MemoryStore() if kind == "memory" else None
    sim.behaviour.timeout_next = 1
    sim.behaviour.hang = 1.5  # below the transport's 2 s timeout: slow, not failed
    for i in range(3):
        await sim.issue("FXYJ", region="330102", catalog_code=CODE, title=f"预警{i}")
    async with (
        Hub(_node(cfg, "node-a"), store=shared) as a,
        Hub(_node(cfg, "node-b"), store=shared) as b,
    ):
        ca, cb = connectors(a)["national"], connectors(b)["national"]

        def total(counts: str) -> int:
            return sum(getattr(c, counts).get("pull", 0) for c in (ca, cb))

        await wait_until(lambda: total("job_runs") >= 2 and total("job_skips") >= 1, what="runs")
        await wait_until(lambda: len(sinks["dept-a"].applied) == 3, what="3 warnings routed")
    assert sim.peak_concurrency["/gjjk/v1/issued"] == 1  # never two pulls at once
    assert len(sim.acked) == 3
