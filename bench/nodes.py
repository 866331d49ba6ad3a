"""Several hub nodes on PostgreSQL next to one node on SQLite, in the same run.

For each setup (SQLite 1 node; PostgreSQL 1, 2, 3 nodes — real ``jghub serve`` processes on
127.0.0.1, a load balancer in this process sending each request to the next node):

* ingest: N inspection records as NDJSON batches of 100 (8 requests in flight), target down,
  so nothing competes with the commits; records/s from the first request to the last answer;
* delivery: the target comes up (batch endpoint, 100 records a request); records/s until every
  record was applied. All nodes claim from the same queue (``FOR UPDATE SKIP LOCKED``).

Then claim latency with a million queued deliveries: one PostgreSQL store with 1,000,000
pending deliveries (inserted with SQL), p50/p99 of ``claim(limit=100)`` + ack over 200 rounds.

Writes its table between ``<!-- nodes:begin -->`` and ``<!-- nodes:end -->`` in
``docs/PERFORMANCE.md``. Usage: ``python bench/nodes.py [--records N] [--no-write]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_section  # noqa: E402
from contracts.samples import sample_inspection  # noqa: E402
from hub.peers.sink import Sink  # noqa: E402
from hub.store import Outcome  # noqa: E402
from hub.store.postgres import PostgresStore, migrate  # noqa: E402
from tests.pgnodes import BalancedSource, ready, start_node, stop_node  # noqa: E402

DSN = os.environ.get("JGHUB_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write(tmp: Path, store: dict[str, object], sink_url: str) -> Path:
    import yaml

    (tmp / "systems").mkdir(parents=True, exist_ok=True)
    (tmp / "systems" / "dept-a.yaml").write_text(
        yaml.safe_dump(
            {"name": "dept-a", "adapter": "json", "inbound": {"datasets": ["inspection"]}}
        )
    )
    (tmp / "systems" / "sink.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "sink",
                "adapter": "json",
                "outbound": {
                    "transport": "http_json",
                    "url": sink_url,
                    "batch_size": 100,
                    "concurrency": 4,
                    "timeout": 5,
                },
                "retry": {"max_attempts": 1000, "base_delay": 0.05, "max_delay": 0.5},
                "circuit": {"failure_threshold": 5, "reset_timeout": 0.2, "max_reset_timeout": 0.5},
            }
        )
    )
    hub = {
        "hub": {"name": "bench"},
        "store": store,
        "dispatcher": {"lease_seconds": 30, "idle_poll_seconds": 0.5, "claim_batch": 400},
        "systems": ["systems"],
        "routes": [
            {"name": "out", "source": "dept-a", "dataset": "inspection", "targets": ["sink"]}
        ],
    }
    (tmp / "hub.yaml").write_text(yaml.safe_dump(hub))
    return tmp / "hub.yaml"


async def run_setup(kind: str, nodes: int, records: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix=f"jghub-bench-{kind}{nodes}-"))
    sink = Sink("sink")
    await sink.start()
    await sink.go_down()
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    if kind == "postgres":
        store: dict[str, object] = {"kind": "postgres", "dsn": DSN, "schema": schema}
        await migrate(DSN, schema)
    else:
        store = {"kind": "sqlite", "path": "data/hub.db", "durability": "full"}
    cfg = _write(tmp, store, sink.batch_url)
    ports = [_free_port() for _ in range(nodes)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    procs = [start_node(cfg, p, tmp / f"node{i}.log") for i, p in enumerate(ports)]
    try:
        for u in urls:
            for _ in range(600):
                if await ready(u):
                    break
                await asyncio.sleep(0.1)
        recs = [sample_inspection(i) for i in range(records)]
        async with BalancedSource(urls, "inspection") as src:
            t0 = time.perf_counter()
            await src.push(recs, batch=100, concurrency=8)
            ingest = records / (time.perf_counter() - t0)
        t1 = time.perf_counter()
        await sink.come_up()
        while len(sink.applied) < records:
            await asyncio.sleep(0.05)
        deliver = records / (time.perf_counter() - t1)
        return {"ingest": ingest, "deliver": deliver}
    finally:
        for p in procs:
            stop_node(p)
        await sink.stop()
        if kind == "postgres":
            await _drop(schema)


async def _drop(schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as conn:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


async def claim_latency(queued: int, rounds: int = 200) -> dict[str, float]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    await migrate(DSN, schema)
    payload = orjson.dumps(sample_inspection(1))
    async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as conn:
        await conn.execute(f"SET search_path = {schema}")
        t0 = time.perf_counter()
        await conn.execute(
            "INSERT INTO messages (seq, id, source, dataset, dataset_version, created_at, "
            "accepted_at, payload, digest) SELECT g, 'm' || g, 'dept-a', 'inspection', '1.0', "
            "0, g * 0.001, %s, '\\x00' FROM generate_series(1, %s) g",
            (payload, queued),
        )
        await conn.execute(
            "INSERT INTO deliveries (msg, target, route, part, next_at) "
            "SELECT g, 'sink', 'out', '-', g * 0.001 FROM generate_series(1, %s) g",
            (queued,),
        )
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('messages', 'seq'), %s)", (queued,)
        )
        await conn.execute("ANALYZE messages")
        await conn.execute("ANALYZE deliveries")
        fill = time.perf_counter() - t0
    store = PostgresStore(DSN, schema=schema, clock=lambda: 1e9)
    await store.open()
    lat = []
    try:
        for _ in range(rounds):
            t = time.perf_counter()
            got = await store.claim("sink", 100, 30, "bench")
            lat.append((time.perf_counter() - t) * 1000)
            await store.settle([Outcome(c.delivery_id, "ack", 1e9, c.attempt, 200) for c in got])
    finally:
        await store.close()
        await _drop(schema)
    lat.sort()
    return {
        "fill_s": fill,
        "p50": statistics.median(lat),
        "p99": lat[int(0.99 * (len(lat) - 1))],
        "max": lat[-1],
    }


def report(
    results: dict[str, dict[str, float]], claim: dict[str, float], args: argparse.Namespace
) -> str:
    base = results["sqlite-1"]
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
        f"{args.records:,} records per setup (hub nodes, PostgreSQL, the load balancer and the "
        "target all on this machine).",
        "",
        "| Setup | Ingest rec/s | vs SQLite | Delivery rec/s | vs SQLite |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name.replace('-', ', ')} node(s) | {r['ingest']:,.0f} | "
            f"{r['ingest'] / base['ingest']:.2f}x | {r['deliver']:,.0f} | "
            f"{r['deliver'] / base['deliver']:.2f}x |"
        )
    lines += [
        "",
        f"Claim latency with {args.queued:,} deliveries queued (`claim(limit=100)` then ack, "
        f"{200} rounds): p50 {claim['p50']:.1f} ms, p99 {claim['p99']:.1f} ms, max "
        f"{claim['max']:.1f} ms (filling the queue took {claim['fill_s']:.0f} s).",
    ]
    return "\n".join(lines)


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--queued", type=int, default=1_000_000)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    results: dict[str, dict[str, float]] = {}
    for kind, n in (("sqlite", 1), ("postgres", 1), ("postgres", 2), ("postgres", 3)):
        results[f"{kind}-{n}"] = r = await run_setup(kind, n, args.records)
        print(
            f"{kind} x{n}: ingest {r['ingest']:,.0f}/s, delivery {r['deliver']:,.0f}/s", flush=True
        )
    claim = await claim_latency(args.queued)
    print(f"claim latency: {claim}", flush=True)
    text = report(results, claim, args)
    print(text)
    if not args.no_write:
        write_section(
            ROOT / "docs" / "PERFORMANCE.md",
            "nodes",
            text,
            heading="## Several nodes on PostgreSQL",
            intro="`python bench/nodes.py` (see its docstring).",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
