"""``jghub demo``: the hub on SQLite with simulated peers and a real scenario.

Systems (all real aiohttp servers on 127.0.0.1):

* ``dept-scjg`` — a city market-supervision department (市场监管局) pushing 监管行为·行政检查
  records, one by one and in NDJSON batches, with idempotency keys; a few records are invalid.
* ``national-sim`` — a national-style receiver: slow-ish, answers 503 now and then, sometimes
  loses its reply after applying a record, refuses records from one region it does not know yet
  (422: dead letters), and goes down for a few seconds in the middle of the run.
* ``archive-sim`` — a provincial archive taking batches of 200.

The scenario: push everything (with a re-sent batch to show idempotency), take the national
receiver down and up again, then the operator fixes the code table and replays the dead
letters. The summary shows per route and target what was accepted, delivered, retried and
dead-lettered, and the end-to-end latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from contracts.samples import sample_inspection
from hub.api import create_app
from hub.config import load_config
from hub.events import DeliveryEvent
from hub.peers import bound_port
from hub.peers.department import DepartmentSource
from hub.peers.sink import Sink, SinkBehaviour
from hub.plugins import hookimpl
from hub.runtime import Hub
from hub.traceview import render_trace, trace_to_dict

__all__ = ["run_demo"]

UNKNOWN_REGION = "330106"  # 西湖区: national-sim's code table lacks it until the operator fixes it


class _Counter:
    """Observer plugin: counts lifecycle events per target (hooks in action)."""

    def __init__(self) -> None:
        self.retried: dict[str, int] = {}
        self.dead: dict[str, int] = {}
        self.retried_ids: list[str] = []

    @hookimpl
    def hub_delivery_retried(self, event: DeliveryEvent, next_attempt_at: float) -> None:
        self.retried[event.target] = self.retried.get(event.target, 0) + 1
        self.retried_ids.append(event.message_id)

    @hookimpl
    def hub_delivery_dead_lettered(self, event: DeliveryEvent, reason: str) -> None:
        self.dead[event.target] = self.dead.get(event.target, 0) + 1


def _write_configs(work: Path, national: Sink, archive: Sink, port: int) -> Path:
    systems = work / "systems"
    systems.mkdir(parents=True, exist_ok=True)
    docs: dict[str, dict[str, Any]] = {
        "dept-scjg": {
            "name": "dept-scjg",
            "title": "某市市场监督管理局 监管行为系统 (city market supervision bureau)",
            "adapter": "json",
            "inbound": {"datasets": ["inspection"], "token": "${JGHUB_DEMO_DEPT_TOKEN}"},
        },
        "national-sim": {
            "name": "national-sim",
            "title": "国家互联网+监管系统 (simulated national receiver)",
            "adapter": "json",
            "outbound": {
                "transport": "http_json",
                "url": national.url,
                "concurrency": 16,
                "timeout": 5,
            },
            "retry": {"max_attempts": 30, "base_delay": 0.2, "max_delay": 2.0},
            "circuit": {"failure_threshold": 8, "reset_timeout": 0.5, "max_reset_timeout": 2.0},
        },
        "archive-sim": {
            "name": "archive-sim",
            "title": "省级监管数据归集库 (simulated provincial archive)",
            "adapter": "json",
            "outbound": {
                "transport": "http_json",
                "url": archive.batch_url,
                "batch_size": 200,
                "concurrency": 2,
            },
        },
    }
    for name, doc in docs.items():
        (systems / f"{name}.yaml").write_text(
            yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
        )
    hub_doc = {
        "hub": {"name": "jghub-demo"},
        "store": {"kind": "sqlite", "path": "data/hub.db", "durability": "full"},
        "listen": {"host": "127.0.0.1", "port": port},
        "dispatcher": {"lease_seconds": 30, "idle_poll_seconds": 0.5},
        "systems": ["systems"],
        "routes": [
            {
                "name": "inspections-national",
                "source": "dept-scjg",
                "dataset": "inspection",
                "targets": ["national-sim"],
            },
            {
                "name": "inspections-archive",
                "source": "dept-scjg",
                "dataset": "inspection",
                "targets": ["archive-sim"],
            },
        ],
    }
    path = work / "hub.yaml"
    path.write_text(yaml.safe_dump(hub_doc, allow_unicode=True, sort_keys=False))
    return path


def _records(n: int) -> list[dict[str, Any]]:
    recs = []
    for i in range(n):
        region = UNKNOWN_REGION if i % 150 == 7 else ("330102", "330105", "330110")[i % 3]
        rec = sample_inspection(i, region=region)
        if i % 997 == 500:  # a department bug: a broken 统一社会信用代码 check character
            code = rec["counterpart_code"]
            if rec["counterpart_cert_type"] == "001":
                rec["counterpart_code"] = code[:-1] + ("0" if code[-1] != "0" else "1")
            else:
                rec["counterpart_name"] = ""
        recs.append(rec)
    return recs


def _fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


async def run_demo(*, workdir: Path, records: int, once: bool, port: int = 0) -> int:
    work = workdir.resolve()
    if (work / "data").exists():
        shutil.rmtree(work / "data")
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("JGHUB_DEMO_DEPT_TOKEN", secrets.token_urlsafe(16))
    logging.basicConfig(level=logging.WARNING, format="      [%(name)s] %(message)s")

    national = Sink(
        "national-sim",
        SinkBehaviour(
            fail_rate=0.08, lost_reply_rate=0.02, latency=0.002, seed=2026, reject=_region_rule
        ),
    )
    archive = Sink("archive-sim", SinkBehaviour(seed=1))
    await national.start()
    await archive.start()
    cfg = load_config(_write_configs(work, national, archive, port))
    counter = _Counter()
    hub = Hub(cfg, extra_plugins=[counter])
    runner = web.AppRunner(create_app(cfg, hub=hub), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, cfg.listen.host, cfg.listen.port)
    await site.start()
    hub_port = bound_port(site)
    hub_url = f"http://127.0.0.1:{hub_port}"
    dept = DepartmentSource("dept-scjg", hub_url, token=os.environ["JGHUB_DEMO_DEPT_TOKEN"])
    await dept.start()
    _say(f"jghub demo — work folder {work}")
    _say(
        f"hub {hub_url}   national-sim {national.base}   archive-sim {archive.base}   "
        f"dept-scjg status http://127.0.0.1:{dept.port}/status"
    )
    t0 = time.perf_counter()
    code = 0
    try:
        data = _records(records)
        single = min(len(data) // 3, 1000)
        _say(
            f"[1/5] dept-scjg pushes {single} records one by one and "
            f"{len(data) - single} in NDJSON batches of 100 ..."
        )
        outage = asyncio.create_task(_outage(national, dept, len(data) // 3))
        rate = len(data) / 4.0  # the department pushes over about four seconds
        await asyncio.gather(
            dept.push(data[:single], concurrency=16, rate=rate * single / len(data)),
            dept.push(
                data[single:],
                batch_size=100,
                concurrency=4,
                start=single,
                rate=rate * (len(data) - single) / len(data),
            ),
        )
        _say(
            f"      acknowledged {len(dept.acked)}, rejected {len(dept.rejected)} "
            f"(hub answered after each commit; {dept.resends} resends)"
        )
        for idx, rej in sorted(dept.rejected.items())[:3]:
            _say(
                f"      rejected record {idx}: {rej.get('code')} {rej.get('field')} — "
                f"{rej.get('detail')}"
            )
        _say("[2/5] the same first batch is sent again (a source retrying after a lost reply)")
        before = dept.duplicates
        await dept.send_batch(single, data[single : single + 100])
        _say(
            f"      the hub recognised {dept.duplicates - before} records by their "
            "Idempotency-Key and routed nothing twice"
        )
        await outage
        _say(
            "[3/5] national-sim was down for 3 s meanwhile; the circuit breaker opened and "
            "probed; waiting for delivery ..."
        )
        expected = len(dept.acked)
        await _wait_settled(hub, expected, timeout=180)
        dead = await hub.store.dead_letters(limit=10_000)
        _say(
            f"[4/5] {len(dead)} dead letters: national-sim refused region {UNKNOWN_REGION}; "
            "the operator updates its code table and replays them (jghub dlq replay --all)"
        )
        if dead:
            _say(f"      e.g. #{dead[0].delivery_id}: {dead[0].reason[:100]}")
        national.behaviour.reject = None
        await hub.store.replay([d.delivery_id for d in dead], time.time())
        hub.dispatcher.wake("national-sim")
        ok = await _wait_settled(hub, expected, timeout=120, replayed=True)
        elapsed = time.perf_counter() - t0
        _say(f"[5/5] done in {elapsed:.1f} s\n")
        if not await _summary(hub, counter, dept, national, archive):
            code = 1
        dead_msgs = {d.message_id for d in dead}
        # The most telling life: retried, dead-lettered and replayed; else dead-lettered and
        # replayed; else retried.
        sample = next((m for m in counter.retried_ids if m in dead_msgs), None)
        sample = sample or next(iter(sorted(dead_msgs)), None)
        sample = sample or (counter.retried_ids[0] if counter.retried_ids else None)
        if sample:
            tr = await hub.store.trace(sample)
            if tr is not None:
                _say(
                    "\nThe life of one message (全程留痕), also: jghub trace "
                    f"{sample} -c {work / 'hub.yaml'}\n"
                )
                _say(render_trace(trace_to_dict(tr)))
        if not ok:
            _say("\nNOT every acknowledged record was delivered in time.")
            code = 1
        if not once:
            _say(
                f"\nThe hub keeps running at {hub_url} (GET /v1/stats, /v1/messages/ID, "
                f"/v1/dlq, /readyz). Config: {work / 'hub.yaml'}. Ctrl-C stops it."
            )
            await _until_signal()
    finally:
        await dept.stop()
        await runner.cleanup()
        await national.stop()
        await archive.stop()
    return code


def _region_rule(record: dict[str, Any]) -> str | None:
    if record.get("region_code") == UNKNOWN_REGION:
        return f"region_code {UNKNOWN_REGION} is not in our code table"
    return None


async def _outage(sink: Sink, dept: DepartmentSource, after: int) -> None:
    """Take the national receiver down for 3 s once ``after`` records were acknowledged."""
    while len(dept.acked) < after:
        await asyncio.sleep(0.05)
    await sink.go_down()
    await asyncio.sleep(3.0)
    await sink.come_up()


async def _wait_settled(hub: Hub, expected: int, timeout: float, replayed: bool = False) -> bool:
    """Wait until nothing is pending (all delivered, or dead when not yet replayed)."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        c = await hub.store.counts()
        open_ = c["pending"] + c["inflight"]
        if open_ == 0 and (not replayed or c["dead"] == 0):
            return c["messages"] >= expected
        if c["delivered"] // 1000 != last:
            last = c["delivered"] // 1000
            _say(f"      delivered {c['delivered']:,}  pending {open_:,}  dead {c['dead']}")
        await asyncio.sleep(0.2)
    return False


async def _summary(
    hub: Hub, counter: _Counter, dept: DepartmentSource, national: Sink, archive: Sink
) -> bool:
    rows = await hub.store.route_stats()
    head = (
        f"{'route':<22} {'target':<13} {'accepted':>8} {'delivered':>9} {'retried':>7} "
        f"{'dead-lettered':>13} {'p50 ms':>7} {'p99 ms':>7}"
    )
    _say(head)
    _say("-" * len(head))
    for r in rows:
        _say(
            f"{r.route:<22} {r.target:<13} {r.total:>8,} {r.delivered:>9,} "
            f"{r.retries:>7,} {counter.dead.get(r.target, 0):>13,} {_fmt_ms(r.p50_ms):>7} "
            f"{_fmt_ms(r.p99_ms):>7}"
        )
    _say("")
    _say(
        f"source dept-scjg: {len(dept.acked):,} acknowledged, {len(dept.rejected)} rejected "
        f"with reasons, {dept.duplicates} duplicates recognised, {dept.resends} resends"
    )
    for s in (national, archive):
        st = s.stats()
        _say(
            f"target {s.name}: applied {st['applied']:,} records exactly once; "
            f"{st['redeliveries']} re-deliveries de-duplicated by Idempotency-Key; "
            f"{st['failures_sent']} failures injected"
        )
    breaker = hub.dispatcher.workers["national-sim"].breaker
    _say(f"circuit to national-sim opened {breaker.opened_count} time(s)")
    acked = set(dept.acked.values())
    missing = [m for m in acked if m not in national.applied or m not in archive.applied]
    _say(
        f"check: every acknowledged record applied at both targets: "
        f"{'yes' if not missing else f'NO ({len(missing)} missing)'}"
    )
    return not missing


def _say(msg: str) -> None:
    print(msg, flush=True)


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
