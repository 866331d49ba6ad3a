"""The disclosure deadline watch: 双公示 records still waiting for the credit platform (it is
down) are counted against their deadline, and the counts fall back to 0 once delivered. On the
example configuration (SQLite and memory stores, the example calendar), the real simulator and
a fixed clock."""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from adapters.credit.samples import amr_penalty
from adapters.credit.watch import DUE_SOON, OVERDUE, watches
from hub.store import DeliveryState
from hub.workdays import WorkCalendar
from tests.adapters.credit.rig import AMR, credit_rig
from tests.helpers import wait_until

# the hub's clock: Wednesday 18 Nov 2026, 10:00 in Shanghai (no holiday near)
TODAY = dt.date(2026, 11, 18)
NOW = dt.datetime(2026, 11, 18, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def workdays_before(calendar: WorkCalendar, day: dt.date, n: int) -> dt.date:
    d = day
    while calendar.workdays_between(d, day) < n:
        d -= dt.timedelta(days=1)
    return d


def gauge(hub: Any, name: str, dataset: str) -> float | None:
    from monitoring.monitor import Monitor

    [mon] = [p for p in hub.pm.get_plugins() if isinstance(p, Monitor) and p.hub is hub]
    value = mon.metrics.registry.get_sample_value(name, {"target": "credit", "dataset": dataset})
    return None if value is None else float(value)


@pytest.mark.parametrize("store", ["sqlite", "memory"])
async def test_waiting_disclosures_are_counted_against_their_deadline_until_delivered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, store: str
) -> None:
    offset = NOW - time.time()
    async with credit_rig(tmp_path, clock=lambda: time.time() + offset, store=store) as rig:
        assert rig.hub.config.store.kind == store
        hub = rig.hub
        calendar = hub.config.work_calendar()
        watch = watches(hub)["credit"]
        assert watch.job is not None and watch.options.deadline_check_interval == 300
        # the series exist at zero from the start
        assert gauge(hub, OVERDUE, "credit_penalty") == 0
        assert gauge(hub, DUE_SOON, "credit_licence") == 0

        late = workdays_before(calendar, TODAY, 10)  # deadline passed 3 working days ago
        near = workdays_before(calendar, TODAY, 6)  # deadline: the next working day
        assert (late, near) == (dt.date(2026, 11, 4), dt.date(2026, 11, 10))
        await rig.sim.go_down()
        status, doc = await rig.post(
            "dept-amr",
            "credit_penalty",
            [amr_penalty(0, late), amr_penalty(1, TODAY), amr_penalty(2, near)],
            AMR,
        )
        assert status == 202, doc
        waiting = await hub.store.undelivered("credit")
        assert {w.message_id for w in waiting} == set(doc["ids"])
        assert all(w.state != DeliveryState.DELIVERED for w in waiting)

        caplog.set_level(logging.WARNING, logger="jghub.credit.deadlines")
        report = await watch.check_once()
        assert report.overdue == {"credit_penalty": 1}
        assert report.due_soon == {"credit_penalty": 1}
        assert report.unreadable == 0
        assert gauge(hub, OVERDUE, "credit_penalty") == 1
        assert gauge(hub, DUE_SOON, "credit_penalty") == 1
        assert gauge(hub, OVERDUE, "credit_licence") == 0
        [warning] = [r for r in caplog.records if r.name == "jghub.credit.deadlines"]
        assert warning.levelno == logging.WARNING
        text = warning.getMessage()
        assert "target credit dataset credit_penalty: 1 record(s)" in text
        assert "oldest decided 2026-11-04" in text
        # /readyz: detail per target, not a problem
        _, ready = await rig.get("/readyz")
        assert ready["targets"]["credit"]["disclosures_waiting_overdue"] == 1
        assert ready["targets"]["credit"]["disclosures_waiting_due_soon"] == 1
        assert not any("disclosure" in p for p in ready["problems"])
        # /metrics shows the gauges
        _, text = await rig.get("/metrics")
        assert (
            'jghub_credit_disclosures_waiting_overdue{dataset="credit_penalty",target="credit"} 1.0'
            in text
        )

        # the platform comes back: everything is delivered, the next check counts nothing
        await rig.sim.come_up()
        await wait_until(
            lambda: len(rig.sim.disclosures["xzcf"]) == 3, what="the three penalties", timeout=30
        )

        async def drained() -> bool:
            return await hub.store.undelivered("credit") == []

        await wait_until(drained, what="the deliveries settled", timeout=30)
        caplog.clear()
        report = await watch.check_once()
        assert report.overdue == {} and report.due_soon == {}
        assert gauge(hub, OVERDUE, "credit_penalty") == 0
        assert gauge(hub, DUE_SOON, "credit_penalty") == 0
        assert not [r for r in caplog.records if r.name == "jghub.credit.deadlines"]
        _, ready = await rig.get("/readyz")
        assert ready["targets"]["credit"]["disclosures_waiting_overdue"] == 0


def test_the_watch_does_not_run_in_an_ingest_process(tmp_path: Path) -> None:
    from adapters.common import load_with_environment
    from adapters.credit import plugin
    from adapters.credit.demo import prepare_credit_setup
    from hub.runtime import Hub

    hub_file, _, _ = prepare_credit_setup(tmp_path)
    cfg = load_with_environment(hub_file, {"CREDIT_URL": "http://127.0.0.1:9/x"})
    hub = Hub(cfg, role="ingest")
    plugin.hub_startup(hub)  # (hub.start does not even call it in an ingest process)
    assert watches(hub) == {}
    assert plugin.hub_readiness(hub) == {}
