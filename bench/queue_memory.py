"""The queue lives on disk: RSS of ``jghub serve`` with a million deliveries queued.

The hub runs with its dispatcher ON and its only target down (nothing listens on the port), so
every record stays queued and the dispatcher keeps retrying and probing, as in a real outage.
An aiohttp client in a separate process posts NDJSON batches of 1,000 records until
``--records`` are acknowledged. Measured in the same run:

* RSS of the hub after a warm-up of 20,000 records (the baseline: caches and code loaded)
  and after all records, and the growth between;
* the ingest rate over the first 100,000 records and over the last 100,000 (the rate with a
  full queue against the rate with a nearly empty one).

Targets (issue "Performance"): RSS grows < 100 MB; the full-queue rate >= 0.8x the empty one.
Writes its table between ``<!-- queue:begin -->`` and ``<!-- queue:end -->`` in
``docs/PERFORMANCE.md``. Run: ``python bench/queue_memory.py [--records N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    REPO,
    Server,
    free_port,
    jghub_command,
    machine_info,
    write_hub_config,
    write_section,
)

BATCH = 1000
WINDOW = 100_000


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def _post_all(
    url: str, bodies: list[bytes], total: int, conns: int, on_progress: Callable[[int], None]
) -> None:
    import aiohttp

    sent = 0
    lock = asyncio.Lock()

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal sent
        while True:
            async with lock:
                if sent >= total:
                    return
                n = sent
                sent += BATCH
            body = bodies[(n // BATCH) % len(bodies)]
            async with session.post(
                url, data=body, headers={"Content-Type": "application/x-ndjson"}
            ) as r:
                if r.status != 202:
                    raise RuntimeError(f"status {r.status}: {(await r.text())[:300]}")
                await r.read()
            on_progress(BATCH)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(conns)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="200,000 records (for make bench)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.quick and args.records == 1_000_000:
        args.records = 200_000
    import orjson

    from contracts.samples import sample_inspection

    tmp = Path(tempfile.mkdtemp(prefix="jghub-queue-"))
    port, dead = free_port(), free_port()
    cfg = write_hub_config(tmp, durability="full", port=port, dead_port=dead)
    text = cfg.read_text().replace(
        "dispatcher: {enabled: false}", "dispatcher: {enabled: true, idle_poll_seconds: 1.0}"
    )
    cfg.write_text(text)
    (tmp / "systems" / "sink.yaml").write_text(
        (tmp / "systems" / "sink.yaml").read_text()
        + "retry: {max_attempts: 1000000, base_delay: 1, max_delay: 30}\n"
        + "circuit: {failure_threshold: 5, reset_timeout: 2, max_reset_timeout: 30}\n"
    )
    bodies = [
        b"\n".join(orjson.dumps(sample_inspection(b * BATCH + i)) for i in range(BATCH))
        for b in range(8)
    ]
    server = Server(
        "hub", [*jghub_command(), "serve", "--config", str(cfg)], port, tmp, tmp / "hub.log"
    )
    server.start()
    url = f"http://127.0.0.1:{port}/v1/systems/dept-a/records"
    marks: list[tuple[int, float]] = []
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        marks.append((done, time.perf_counter()))
        if done % 100_000 == 0:
            print(f"  {done:>9,} acknowledged, hub RSS {rss_mb(server.pid):6.1f} MiB", flush=True)

    try:
        asyncio.run(_post_all(url, bodies, 20_000, 4, progress))
        time.sleep(2.0)
        rss_empty = rss_mb(server.pid)
        done = 0
        marks.clear()
        t0 = time.perf_counter()
        asyncio.run(_post_all(url, bodies, args.records, 4, progress))
        elapsed = time.perf_counter() - t0
        time.sleep(2.0)
        rss_full = rss_mb(server.pid)
    finally:
        server.stop()
    db = sqlite3.connect(tmp / "data" / "hub.db")
    (queued,) = db.execute("SELECT count(*) FROM deliveries WHERE state < 2").fetchone()
    db.close()
    shutil.rmtree(tmp, ignore_errors=True)  # a million records: ~1.5 GB

    def rate(lo: int, hi: int) -> float:
        pts = [(n, t) for n, t in marks if lo <= n <= hi]
        (n0, t_0), (n1, t_1) = pts[0], pts[-1]
        return (n1 - n0) / (t_1 - t_0)

    w = min(WINDOW, args.records // 4)
    first = rate(w // 10, w)
    last = rate(args.records - w, args.records)
    growth = rss_full - rss_empty
    info = machine_info()
    rows = [
        ("records acknowledged (after a 20,000 warm-up)", f"{args.records:,}", ""),
        ("deliveries still queued at the end (target down)", f"{queued:,}", ""),
        ("hub RSS after warm-up (baseline)", f"{rss_empty:,.1f} MiB", ""),
        ("hub RSS with the queue full", f"{rss_full:,.1f} MiB", ""),
        ("RSS growth", f"{growth:+,.1f} MiB", f"< 100 MiB: {'met' if growth < 100 else 'NOT met'}"),
        ("ingest rate, first 100k (queue nearly empty)", f"{first:,.0f} records/s", ""),
        (
            "ingest rate, last 100k (queue full)",
            f"{last:,.0f} records/s",
            f"{last / first:.2f}x the first; >= 0.8x: "
            + ("met" if last >= 0.8 * first else "NOT met"),
        ),
        ("whole run", f"{args.records / elapsed:,.0f} records/s in {elapsed:,.0f} s", ""),
    ]
    table = ["| measure | value | target |", "|---|---:|---|"]
    table += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = "\n".join(
        [
            f"Generated by `python bench/queue_memory.py --records {args.records}` on {stamp}; "
            f"{os.cpu_count()} cores, {info['python']}, SQLite {info['sqlite']}; "
            "hub `jghub serve`, SQLite "
            "`durability: full`, dispatcher on, its target down; NDJSON batches of 1,000 "
            "from 4 connections of an aiohttp client in a separate process.",
            "",
            *table,
        ]
    )
    print(section)
    if not args.no_write:
        doc_path = REPO / "docs" / "PERFORMANCE.md"
        write_section(
            doc_path,
            "queue",
            section,
            heading="## A million deliveries queued: memory stays flat",
            intro="The queue lives on disk. `python bench/queue_memory.py` (about a minute "
            "for a million records):",
        )
        print(f"written to {doc_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
