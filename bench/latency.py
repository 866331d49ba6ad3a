"""Latency at 70% of the measured maximum: ack (p50/p99) and source→target (p50/p99).

One ``jghub serve`` (SQLite ``durability: full``, dispatcher on) with one route to a loopback
sink (``bench/sink_app.py --keep-arrivals``, its own process; ``http_json`` per record), so
the hub ingests and delivers at the same time, as in production.

1. maximum: wrk (or, without wrk, ``bench/paced_client.py`` at a rate no server reaches)
   posts single inspection records from 32 connections for a few seconds; the 202s per
   second are the maximum. Then the hub drains what it queued (the sink catches up). That
   ingest maximum is not sustainable with deliveries on (one process does both; the queue
   grows while it lasts), so the *end-to-end maximum* is measured too: the records of that
   run over the time from the load's start to the last record's arrival at the sink.
2. paced: ``bench/paced_client.py`` (its own process) sends single records open-loop at 70%
   of each maximum in turn, for ``--seconds`` each; each request is timed from the moment it
   was due (no coordinated omission). The ack latency is due → 202; the source→target
   latency is due → arrival at the sink (matched by the message id, which the sink sees as
   ``Idempotency-Key``).

Targets (issue "Performance"): p99 ack < 20 ms; p50 source→target < 50 ms.

Writes its table between ``<!-- latency:begin -->`` and ``<!-- latency:end -->`` in
``docs/PERFORMANCE.md``. Usage: ``python bench/latency.py [--quick] [--no-write]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import delivery
from common import (
    REPO,
    Server,
    free_port,
    jghub_command,
    load_avg,
    machine_info,
    write_section,
)
from delivery import hub_config, sink_stats, wait_count

BENCH = Path(__file__).resolve().parent


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def wrk_max(url: str, bodies: Path, count: int, seconds: int) -> tuple[float, int]:
    cmd = ["wrk", "-t1", "-c32", f"-d{seconds}s", "--timeout", "10s"]
    cmd += ["-s", str(BENCH / "wrk_post.lua"), url, "--", str(bodies), str(count)]
    cmd += ["application/json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            res = orjson.loads(line[9:])
            ok = int(res["statuses"].get("202", 0))
            return ok / float(res["duration_s"]), ok
    raise RuntimeError(f"wrk gave no result:\n{out.stdout}\n{out.stderr}")


def paced(url: str, bodies: Path, count: int, rate: float, seconds: float, out: Path) -> Any:
    cmd = [sys.executable, str(BENCH / "paced_client.py"), "--url", url, "--bodies", str(bodies)]
    cmd += ["--count", str(count), "--rate", f"{rate:.1f}", "--seconds", str(seconds)]
    cmd += ["--out", str(out)]
    subprocess.run(cmd, check=True, timeout=seconds + 90)
    return orjson.loads(out.read_bytes())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs (about 40 s in all)")
    ap.add_argument("--seconds", type=float, help="paced run length (default 20, quick 8)")
    ap.add_argument("--share", type=float, default=0.7, help="share of the maximum (0.7)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument(
        "--settle-sync",
        choices=["relaxed", "full"],
        default="relaxed",
        help="the hub's store.settle_sync (default relaxed, the hub's default)",
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=1,
        help="jghub serve --workers N (N-1 ingest-only processes besides the node; with "
        "--separate-dispatcher N besides the node, which then does not accept)",
    )
    ap.add_argument(
        "--client",
        choices=["auto", "aiohttp", "reqwest"],
        default="auto",
        help="the target's outbound.client (auto: the hub's default, reqwest)",
    )
    ap.add_argument(
        "--separate-dispatcher",
        action="store_true",
        help="jghub serve --separate-dispatcher: the --workers processes ingest, the node "
        "process only delivers",
    )
    ap.add_argument(
        "--also-rate",
        type=float,
        action="append",
        default=[],
        help="also pace a run at this fixed rate (req/s), e.g. to see the latency floor",
    )
    ap.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="the target's outbound.batch_size: 1 posts each record (default); N > 1 lets "
        "the dispatcher post up to N records a request (what is due, at once)",
    )
    args = ap.parse_args()
    delivery.SETTLE_SYNC = args.settle_sync
    seconds = args.seconds or (8.0 if args.quick else 20.0)
    max_seconds = 3 if args.quick else 6
    from contracts.samples import sample_inspection

    tmp = Path(tempfile.mkdtemp(prefix="jghub-latency-"))
    bodies = tmp / "bodies"
    bodies.mkdir()
    count = 2000
    for i in range(count):
        (bodies / str(i)).write_bytes(orjson.dumps(sample_inspection(i)))
    sink_port, port = free_port(), free_port()
    sink = Server(
        "sink",
        [sys.executable, str(BENCH / "sink_app.py"), "--port", str(sink_port), "--keep-arrivals"],
        sink_port,
        tmp,
        tmp / "sink.log",
    )
    path = "records" if args.batch_size == 1 else "batch"
    cfg = hub_config(
        tmp,
        port,
        f"http://127.0.0.1:{sink_port}/{path}",
        args.batch_size,
        dispatch=True,
        client=args.client,
    )
    serve = [*jghub_command(), "serve", "--config", str(cfg)]
    if args.workers > 1:
        serve += ["--workers", str(args.workers)]
    if args.separate_dispatcher:
        serve += ["--separate-dispatcher"]
    hub = Server("hub", serve, port, tmp, tmp / "h.log", processes=args.workers)
    url = f"http://127.0.0.1:{port}/v1/systems/dept-a/records"
    t0 = time.monotonic()
    sink.start()
    hub.start()
    try:
        w0 = time.time()
        if shutil.which("wrk"):
            print(f"maximum: wrk, 32 connections, {max_seconds} s", flush=True)
            max_rate, acked = wrk_max(url, bodies, count, max_seconds)
            generator = "wrk, 32 connections"
        else:
            print("maximum: paced client far above any server's rate", flush=True)
            res = paced(url, bodies, count, 50_000, max_seconds, tmp / "max.json")
            ok = [r for r in res["results"] if r[2] == 202]
            span = max(r[1] for r in ok) - res["start"]
            max_rate, acked = len(ok) / span, len(ok)
            generator = "bench/paced_client.py, 256 in flight"
        print(f"  {max_rate:,.0f} req/s; draining {acked:,} deliveries", flush=True)
        drain_rate = wait_count(sink_port, acked, 300)
        # End to end: every record of the maximum run ingested *and* delivered, from the
        # start of the load to the last arrival at the sink. What one hub sustains; the
        # ingest-only maximum above is not sustainable (the queue grows while it lasts).
        e2e_rate = acked / max(drain_rate["last"] - w0, 1e-9)
        print(f"  end to end: {e2e_rate:,.0f} rec/s", flush=True)
        runs = []
        plan = [("ingest maximum", args.share * max_rate)]
        plan.append(("end-to-end maximum", args.share * e2e_rate))
        plan += [(f"fixed rate {r:,.0f} req/s", r) for r in args.also_rate]
        for label, rate in plan:
            time.sleep(1.0)
            req = urllib.request.Request(f"http://127.0.0.1:{sink_port}/reset", data=b"")
            urllib.request.urlopen(req, timeout=5).read()
            print(f"paced: {rate:,.0f} req/s ({label}) for {seconds:.0f} s", flush=True)
            res = paced(url, bodies, count, rate, seconds, tmp / "paced.json")
            ok = [r for r in res["results"] if r[2] == 202]
            deadline = time.monotonic() + 60
            while sink_stats(sink_port)["count"] < len(ok) and time.monotonic() < deadline:
                time.sleep(0.2)
            with urllib.request.urlopen(f"http://127.0.0.1:{sink_port}/arrivals", timeout=10) as r:
                arrivals = orjson.loads(r.read())
            runs.append((label, rate, res, ok, arrivals))
    finally:
        hub.stop()
        sink.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    info = machine_info()
    drained = drain_rate["count"] / max(drain_rate["last"] - drain_rate["first"], 1e-9)
    rows = [
        "| measure | value | target | met |",
        "|---|---:|---|---|",
        f"| maximum single-record ingest, deliveries on ({generator}) | {max_rate:,.0f} req/s "
        "| | |",
        f"| end-to-end maximum: the records of that run ingested and delivered, load start → "
        f"last arrival | {e2e_rate:,.0f} rec/s | | |",
        f"| delivery rate at the sink during and after the maximum run | {drained:,.0f} rec/s "
        "| | |",
    ]
    for label, rate, res, ok, arrivals in runs:
        acks = [(r[1] - r[0]) * 1000 for r in ok]
        e2e = [(arrivals[r[3]] - r[0]) * 1000 for r in ok if r[3] in arrivals]
        failed = len(res["results"]) - len(ok)
        achieved = len(ok) / seconds
        p50a, p99a = pct(acks, 50), pct(acks, 99)
        p50e, p99e = pct(e2e, 50), pct(e2e, 99)
        what = label if label.startswith("fixed") else f"{args.share:.0%} of the {label}"
        rows += [
            f"| **{what}**: paced load, open loop | {rate:,.0f} req/s "
            f"offered, {achieved:,.0f} acknowledged/s | | |",
            f"| requests not acknowledged with 202 | {failed:,} | 0 | "
            f"{'yes' if failed == 0 else '**NO**'} |",
            f"| ack latency p50 / p99 | {p50a:.1f} / {p99a:.1f} ms | p99 < 20 ms "
            f"| {'yes' if p99a < 20 else '**NO**'} |",
            f"| source→target latency p50 / p99 ({len(e2e):,} of {len(ok):,} arrived) "
            f"| {p50e:.1f} / {p99e:.1f} ms | p50 < 50 ms | "
            f"{'yes' if p50e < 50 and len(e2e) == len(ok) else '**NO**'} |",
        ]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "python bench/latency.py" + (" --quick" if args.quick else "")
    if args.workers > 1:
        cmd += f" --workers {args.workers}"
    if args.separate_dispatcher:
        cmd += " --separate-dispatcher"
    if args.client != "auto":
        cmd += f" --client {args.client}"
    if args.settle_sync != "relaxed":
        cmd += f" --settle-sync {args.settle_sync}"
    if args.batch_size != 1:
        cmd += f" --batch-size {args.batch_size}"
    section = "\n".join(
        [
            f"Generated by `{cmd}` on {stamp} in {time.monotonic() - t0:.0f} s; "
            f"{info['nproc']} cores, {info['python']}, SQLite {info['sqlite']}; "
            + (
                f"`jghub serve --workers {args.workers} --separate-dispatcher` (ingest in "
                f"{args.workers} process(es), delivery in the node process)"
                if args.separate_dispatcher
                else "one hub process"
                if args.workers == 1
                else f"`jghub serve --workers {args.workers}` (ingest in {args.workers} processes)"
            )
            + f", SQLite `durability: full`, `settle_sync: {args.settle_sync}`, "
            "dispatcher on, `http_json` "
            + (
                "per record"
                if args.batch_size == 1
                else f"in batches of what is due, up to {args.batch_size} records a request"
            )
            + f" ({delivery.CONCURRENCY} requests in flight) to `bench/sink_app.py`; load "
            "generators in their own "
            "processes; "
            f"load average {load_avg()} at the end.",
            "",
            *rows,
        ]
    )
    print(section)
    if not args.no_write:
        variant = "".join(
            [
                f"-workers{args.workers}" if args.workers > 1 else "",
                "-separate" if args.separate_dispatcher else "",
                f"-{args.client}" if args.client != "auto" else "",
                f"-batch{args.batch_size}" if args.batch_size > 1 else "",
                f"-{args.settle_sync}" if args.settle_sync != "relaxed" else "",
            ]
        )
        write_section(
            REPO / "docs" / "PERFORMANCE.md",
            "latency" + variant,
            section,
            heading="## Latency at 70% of the maximum" + (f" ({variant[1:]})" if variant else ""),
            intro="`python bench/latency.py [--quick]` (see its docstring; about a minute, "
            "`--quick` 30 s).",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
