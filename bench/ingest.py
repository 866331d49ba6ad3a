"""Ingest benchmarks of jghub against baselines measured in the same run.

    python bench/ingest.py                 # ~90 s: 10 s per load run
    python bench/ingest.py --quick         # ~35 s: 3 s per load run
    python bench/ingest.py --profile       # then py-spy profiles of the hub under load
    python bench/ingest.py --profile-only  # only the profiles (bench/out/profile-*.{txt,md})

What runs (every server in its own process on 127.0.0.1, every load generator a separate
process that stops by itself after a fixed time):

1. Single-record ingest: ``POST /v1/systems/dept-a/records`` with one inspection record
   (``contracts.samples.sample_inspection(i)``, 1,000 different bodies in rotation), 32
   connections, no Idempotency-Key. Hub: ``jghub serve`` with SQLite ``durability: full`` and
   ``normal``, one route to a target that is not running, dispatcher off. Baseline:
   ``bench/baseline_app.py`` (bare aiohttp handler: orjson parse, 202 + small JSON).
2. Batch ingest: NDJSON bodies of 1,000 records, 4 connections; records/s acknowledged (202
   after the durable commit). Baseline: ``bench/raw_insert.py``, ``executemany`` of the same
   rows (hub schema and INSERTs, same payload bytes) in WAL mode, 1,000 records a transaction.
3. Group commit: the hub's single-record run again with ``max_group: 1`` (one transaction per
   request), and raw SQLite with one record per transaction (what a store without group commit
   could acknowledge at most); durability full against normal.

Correctness is checked on every hub run: every response must be 202, no socket errors, and
after the server stopped the ``messages`` table must hold at least every acknowledged record
(and at most the requests still in flight when the load generator stopped), with one delivery
row per message. Timings are reported, never asserted.

The table is printed and written into ``docs/PERFORMANCE.md`` between the
``<!-- bench:begin -->`` / ``<!-- bench:end -->`` markers (text outside them is kept).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH_DIR,
    REPO,
    Server,
    children_cpu_seconds,
    count_rows,
    free_port,
    jghub_command,
    load_avg,
    machine_cpu_seconds,
    machine_info,
    write_bodies,
    write_hub_config,
)

RECORDS_PATH = "/v1/systems/dept-a/records"
SINGLE_CONNS = 32
BATCH_CONNS = 4
BATCH_SIZE = 1000
SINGLE_BODIES = 1000
BATCH_BODIES = 8
TARGET_SINGLE_RATIO = 0.5
TARGET_BATCH_RPS = 50_000
TARGET_BATCH_RATIO = 0.3
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
WRK_INSTALL = "apt-get install -y wrk   (Debian/Ubuntu; macOS: brew install wrk)"


# --------------------------------------------------------------------------- load generation


@dataclass
class Load:
    requests: int
    duration_s: float
    statuses: dict[str, int]
    errors: dict[str, int]
    latency_ms: dict[str, float]

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    def count(self, status: str) -> int:
        return self.statuses.get(status, 0)

    @property
    def non_2xx(self) -> int:
        return sum(v for k, v in self.statuses.items() if not k.startswith("2"))

    @property
    def socket_errors(self) -> int:
        e = self.errors
        return e["connect"] + e["read"] + e["write"] + e["timeout"]


def run_load(
    generator: str,
    url: str,
    bodies: Path,
    count: int,
    ctype: str,
    conns: int,
    seconds: int,
) -> Load:
    """One load run in its own process; it stops by itself after ``seconds``."""
    if generator == "wrk":
        cmd = [
            "wrk",
            "-t1",
            f"-c{conns}",
            f"-d{seconds}s",
            "--timeout",
            "30s",
            "-s",
            str(BENCH_DIR / "wrk_post.lua"),
            url,
            "--",
            str(bodies),
            str(count),
            ctype,
        ]
    else:
        cmd = [
            sys.executable,
            str(BENCH_DIR / "loadgen.py"),
            url,
            "--bodies",
            str(bodies),
            "--count",
            str(count),
            "--content-type",
            ctype,
            "-c",
            str(conns),
            "-d",
            str(seconds),
        ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            d = orjson.loads(line[len("WRK_JSON ") :])
            return Load(d["requests"], d["duration_s"], d["statuses"], d["errors"], d["latency_ms"])
    raise RuntimeError(f"load generator gave no result:\n{out.stdout}\n{out.stderr}")


# --------------------------------------------------------------------------- scenarios


def cpu_shares(wall: float, server: float, loadgen: float, machine: float) -> dict[str, float]:
    """CPU use over a run in % of one core: the server, the load generator, everything else
    (other processes on the machine: a busy machine makes the figures unreliable)."""
    pct = 100 / wall if wall > 0 else 0.0
    return {
        "server": server * pct,
        "loadgen": loadgen * pct,
        "other": max(0.0, machine - server - loadgen) * pct,
    }


@dataclass
class Run:
    label: str
    server: str
    durability: str
    kind: str  # single | batch
    conns: int
    load: Load
    warm: Load
    cpu: dict[str, float]
    rows: dict[str, int] | None = None
    per_request: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        """req/s for single runs, records/s for batch runs."""
        return self.load.rps * self.per_request

    def acked(self) -> int:
        return (self.load.count("202") + self.warm.count("202")) * self.per_request

    def check(self) -> tuple[bool, str]:
        """(ok, note): all 202, no socket errors, rows == acks + what was still in flight."""
        probs = []
        for ld in (self.warm, self.load):
            others = {k: v for k, v in ld.statuses.items() if k != "202"}
            if others:
                probs.append(f"statuses {others}")
            if ld.socket_errors:
                probs.append(f"socket errors {ld.errors}")
        if self.rows is not None:
            extra = self.rows["messages"] - self.acked()
            in_flight_max = 2 * self.conns * self.per_request  # warm-up + measured run
            if extra < 0:
                probs.append(f"{-extra} acknowledged records missing from the store")
            elif extra > in_flight_max:
                probs.append(f"{extra} unacknowledged rows (> {in_flight_max} in flight)")
            if self.rows["deliveries"] != self.rows["messages"]:
                probs.append("deliveries != messages")
        return (not probs, "; ".join(probs) or "ok")


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path, bodies: dict[str, Any]) -> None:
        self.args = args
        self.tmp = tmp
        self.bodies = bodies
        self.generator = args.generator
        self.seconds = args.seconds
        self.warmup = args.warmup

    def _load(self, port: int, kind: str, seconds: int) -> Load:
        if kind == "single":
            d, n, ct, c = (
                self.bodies["single_dir"],
                self.bodies["single_count"],
                "application/json",
                SINGLE_CONNS,
            )
        else:
            d, n, ct, c = (
                self.bodies["batch_dir"],
                self.bodies["batch_count"],
                "application/x-ndjson",
                BATCH_CONNS,
            )
        return run_load(
            self.generator, f"http://127.0.0.1:{port}{RECORDS_PATH}", d, n, ct, c, seconds
        )

    def _measure(self, server: Server, kind: str) -> tuple[Load, Load, dict[str, float]]:
        warm = self._load(server.port, kind, self.warmup)
        s0, m0, c0, t0 = (
            server.cpu_seconds(),
            machine_cpu_seconds(),
            children_cpu_seconds(),
            time.monotonic(),
        )
        load = self._load(server.port, kind, self.seconds)
        s1, m1, c1, t1 = (
            server.cpu_seconds(),
            machine_cpu_seconds(),
            children_cpu_seconds(),
            time.monotonic(),
        )
        return warm, load, cpu_shares(t1 - t0, s1 - s0, c1 - c0, m1 - m0)

    def baseline(self) -> Run:
        port = free_port()
        d = self.tmp / "baseline"
        d.mkdir()
        srv = Server(
            "baseline",
            [sys.executable, str(BENCH_DIR / "baseline_app.py"), "--port", str(port)],
            port,
            d,
            d / "server.log",
        )
        srv.start()
        try:
            warm, load, cpu = self._measure(srv, "single")
        finally:
            srv.stop()
        return Run("1 single", "aiohttp baseline", "-", "single", SINGLE_CONNS, load, warm, cpu)

    def start_hub(
        self, durability: str, name: str, max_group: int | None = None
    ) -> tuple[Server, Path]:
        d = self.tmp / name
        d.mkdir()
        port = free_port()
        cfg = write_hub_config(
            d, durability=durability, port=port, dead_port=free_port(), max_group=max_group
        )
        srv = Server(
            name,
            [*jghub_command(), "serve", "--config", str(cfg)],
            port,
            d,
            d / "server.log",
        )
        srv.start()
        return srv, d / "data" / "hub.db"

    def hub(self, kind: str, durability: str, max_group: int | None = None) -> Run:
        name = f"hub-{kind}-{durability}" + (f"-group{max_group}" if max_group else "")
        srv, db = self.start_hub(durability, name, max_group)
        try:
            warm, load, cpu = self._measure(srv, kind)
        finally:
            code = srv.stop()
        if code not in (0, None):
            print(f"warning: jghub exited with {code}:\n{srv.tail()}", file=sys.stderr)
        rows = count_rows(db)
        per = BATCH_SIZE if kind == "batch" else 1
        conns = BATCH_CONNS if kind == "batch" else SINGLE_CONNS
        return Run(
            f"{1 if kind == 'single' else 2} {kind}",
            "jghub",
            durability,
            kind,
            conns,
            load,
            warm,
            cpu,
            rows,
            per,
            {"max_group": max_group},
        )

    def raw(self, durability: str, rows_per_txn: int, seconds: float) -> dict[str, Any]:
        db = self.tmp / f"raw-{durability}-{rows_per_txn}.db"
        cmd = [
            sys.executable,
            str(BENCH_DIR / "raw_insert.py"),
            "--db",
            str(db),
            "--bodies",
            str(self.bodies["batch_dir"]),
            "--count",
            str(self.bodies["batch_count"]),
            "--durability",
            durability,
            "--rows-per-txn",
            str(rows_per_txn),
            "--duration",
            str(seconds),
        ]
        m0, c0, t0 = machine_cpu_seconds(), children_cpu_seconds(), time.monotonic()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        m1, c1, t1 = machine_cpu_seconds(), children_cpu_seconds(), time.monotonic()
        for line in out.stdout.splitlines():
            if line.startswith("RAW_JSON "):
                res: dict[str, Any] = orjson.loads(line[len("RAW_JSON ") :])
                res["cpu"] = cpu_shares(t1 - t0, c1 - c0, 0.0, m1 - m0)
                return res
        raise RuntimeError(f"raw_insert gave no result:\n{out.stdout}\n{out.stderr}")

    # ---------------------------------------------------------------- profiling

    def profile(self, kind: str, out_dir: Path, seconds: int) -> dict[str, Path]:
        """py-spy record (raw collapsed stacks, per thread) of the hub under load.

        Blocking mode (py-spy pauses the process for each sample): slower under load, but
        ``--nonblocking`` was seen to misattribute samples (torn stacks) on this workload."""
        sibling = Path(sys.executable).parent / "py-spy"
        pyspy = str(sibling) if sibling.exists() else shutil.which("py-spy")
        if pyspy is None:
            raise RuntimeError(f"py-spy not found: {sys.executable} -m pip install py-spy")
        srv, _db = self.start_hub("full", f"profile-{kind}")
        outs: dict[str, Path] = {}
        try:
            self._load(srv.port, kind, 1)
            for mode, extra in (("wall", []), ("gil", ["--gil"])):
                path = out_dir / f"profile-{kind}-{mode}.txt"
                spy = subprocess.Popen(
                    [
                        pyspy,
                        "record",
                        "-p",
                        str(srv.pid),
                        "-d",
                        str(seconds),
                        "-r",
                        "250",
                        "--threads",
                        "-f",
                        "raw",
                        "-o",
                        str(path),
                        *extra,
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                self._load(srv.port, kind, seconds + 1)
                _, err = spy.communicate(timeout=seconds + 30)
                if spy.returncode != 0:
                    raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')}")
                outs[mode] = path
        finally:
            srv.stop()
        return outs


# --------------------------------------------------------------------------- report

BUSY_OTHER_PCT = 15.0  # other processes above this (% of a core) make a run "disturbed"


def fmt_n(x: float) -> str:
    return f"{x:,.0f}"


def fmt_lat(ld: Load) -> str:
    lat = ld.latency_ms
    return f"{lat['p50']:.1f} / {lat['p99']:.1f}"


def fmt_cpu(cpu: dict[str, float] | None, loadgen: bool = True) -> str:
    if not cpu:
        return ""
    parts = [f"{cpu['server']:.0f}%"]
    parts.append(f"{cpu['loadgen']:.0f}%" if loadgen else "-")
    other = f"{cpu['other']:.0f}%"
    parts.append(f"**{other}**" if cpu["other"] > BUSY_OTHER_PCT else other)
    return " / ".join(parts)


def build_report(
    info: dict[str, Any],
    command: str,
    started: dt.datetime,
    elapsed: float,
    args: argparse.Namespace,
    bodies: dict[str, Any],
    base: Run,
    hub_runs: dict[tuple[str, str], Run],
    raw: dict[str, dict[str, Any]],
    hub_payload_avg: float | None,
) -> tuple[str, bool]:
    """Markdown report; second value: every correctness check passed."""
    s_full, s_norm = hub_runs[("single", "full")], hub_runs[("single", "normal")]
    s_nogroup = hub_runs[("single", "full-nogroup")]
    b_full, b_norm = hub_runs[("batch", "full")], hub_runs[("batch", "normal")]
    raw_full, raw_norm, raw_one = raw["full"], raw["normal"], raw["one"]
    gen = "wrk, 1 thread" if args.generator == "wrk" else "aiohttp client (bench/loadgen.py)"

    def met(ok: bool) -> str:
        return "yes" if ok else "**NO**"

    r_s_full = s_full.throughput / base.throughput
    r_s_norm = s_norm.throughput / base.throughput
    r_b_full = b_full.throughput / raw_full["rows_per_s"]
    r_b_norm = b_norm.throughput / raw_norm["rows_per_s"]
    b_ok = {
        run.durability: run.throughput >= TARGET_BATCH_RPS and r >= TARGET_BATCH_RATIO
        for run, r in ((b_full, r_b_full), (b_norm, r_b_norm))
    }
    rows: list[tuple[str, ...]] = [
        # (#, measurement, durability, conns, result, unit, ratio, target, met, latency, cpu)
        (
            "1",
            "aiohttp baseline: orjson parse, 202",
            "-",
            str(SINGLE_CONNS),
            fmt_n(base.throughput),
            "req/s",
            "1.00x",
            "",
            "",
            fmt_lat(base.load),
            fmt_cpu(base.cpu),
        ),
    ]
    for run, r in ((s_full, r_s_full), (s_norm, r_s_norm)):
        rows.append(
            (
                "1",
                "jghub, one record per request",
                run.durability,
                str(SINGLE_CONNS),
                fmt_n(run.throughput),
                "req/s",
                f"{r:.2f}x baseline",
                f"≥ {TARGET_SINGLE_RATIO}x",
                met(r >= TARGET_SINGLE_RATIO),
                fmt_lat(run.load),
                fmt_cpu(run.cpu),
            )
        )
    for name, rr in (("full", raw_full), ("normal", raw_norm)):
        rows.append(
            (
                "2",
                f"raw SQLite executemany, {BATCH_SIZE:,} records/txn",
                name,
                "1",
                fmt_n(rr["rows_per_s"]),
                "records/s",
                "1.00x",
                "",
                "",
                "",
                fmt_cpu(rr.get("cpu"), loadgen=False),
            )
        )
    for run, r in ((b_full, r_b_full), (b_norm, r_b_norm)):
        rows.append(
            (
                "2",
                f"jghub, NDJSON batch of {BATCH_SIZE:,}",
                run.durability,
                str(BATCH_CONNS),
                fmt_n(run.throughput),
                "records/s",
                f"{r:.2f}x raw {run.durability}",
                f"≥ {TARGET_BATCH_RPS:,}/s and ≥ {TARGET_BATCH_RATIO}x",
                met(b_ok[run.durability]),
                fmt_lat(run.load),
                fmt_cpu(run.cpu),
            )
        )
    rows += [
        (
            "3",
            "jghub, one record per request, `max_group: 1` (no group commit)",
            "full",
            str(SINGLE_CONNS),
            fmt_n(s_nogroup.throughput),
            "req/s",
            f"{s_nogroup.throughput / base.throughput:.2f}x baseline",
            "",
            "",
            fmt_lat(s_nogroup.load),
            fmt_cpu(s_nogroup.cpu),
        ),
        (
            "3",
            "group commit effect: jghub single, default ÷ `max_group: 1`",
            "full",
            "",
            f"{s_full.throughput / s_nogroup.throughput:.2f}x",
            "",
            "",
            "",
            "",
            "",
            "",
        ),
        (
            "3",
            "raw SQLite, 1 record/txn (no group commit)",
            "full",
            "1",
            fmt_n(raw_one["txn_per_s"]),
            "commits/s",
            "",
            "",
            "",
            "",
            fmt_cpu(raw_one.get("cpu"), loadgen=False),
        ),
        (
            "3",
            "jghub single ÷ raw 1 record/txn",
            "full",
            "",
            f"{s_full.throughput / raw_one['txn_per_s']:.2f}x",
            "",
            "",
            "",
            "",
            "",
            "",
        ),
        (
            "3",
            "durability cost: jghub single, full ÷ normal",
            "",
            "",
            f"{s_full.throughput / s_norm.throughput:.2f}x",
            "",
            "",
            "",
            "",
            "",
            "",
        ),
        (
            "3",
            "durability cost: jghub batch, full ÷ normal",
            "",
            "",
            f"{b_full.throughput / b_norm.throughput:.2f}x",
            "",
            "",
            "",
            "",
            "",
            "",
        ),
    ]

    lines: list[str] = []
    add = lines.append
    add(
        f"Generated by `{command}` on {started:%Y-%m-%d %H:%M} UTC in {elapsed:.0f} s: "
        f"{args.seconds} s per load run after a {args.warmup} s warm-up, load generator {gen}, "
        f"raw SQLite runs {args.raw_seconds:g} s."
    )
    add("")
    add("### Machine")
    add("")
    add("```")
    add(info["lscpu"])
    add(f"nproc: {info['nproc']}    memory: {info['memory']}")
    add(f"uname: {info['uname']}")
    add(
        f"{info['python']}, aiohttp {info['aiohttp']}, SQLite {info['sqlite']}"
        + (f", {info['wrk'].split(' Copyright')[0]}" if info["wrk"] else "")
    )
    add(f"jghub {info['jghub']}; load average before the run: {info['load']}")
    add("```")
    add("")
    add("### Throughput")
    add("")
    add(
        f"Request bodies: one inspection record, {bodies['single_avg_bytes']:.0f} bytes on "
        f"average ({bodies['single_count']:,} different records in rotation); batches of "
        f"{BATCH_SIZE:,} records as NDJSON, {bodies['batch_avg_bytes'] / 1024:.0f} KiB "
        f"({bodies['batch_count']} different bodies in rotation)."
    )
    add("")
    add(
        "| # | Measurement | Durability | Conns | Result | Unit | Ratio | Target | Met "
        "| Latency p50 / p99 ms | CPU: server / load gen / other |"
    )
    add("|---|---|---|---:|---:|---|---|---|---|---:|---:|")
    for row in rows:
        add("| " + " | ".join(row) + " |")
    add("")
    add(
        "Ratios compare figures of this run. Batch figures count records acknowledged with 202 "
        "(after the durable commit). CPU in % of one core over the measured run: the server "
        "process (all threads), the load generator, and all other processes on the machine."
    )
    add(
        "Raw SQLite: own process, the hub's schema and INSERT statements, its PRAGMAs and its "
        f"payload bytes (average {raw_full['payload_avg_bytes']:.0f} bytes"
        + (f"; {hub_payload_avg:.0f} in the hub's batch run" if hub_payload_avg else "")
        + "); only the transactions are timed, row tuples are built beforehand."
    )
    notes = []
    if r_s_full < TARGET_SINGLE_RATIO:
        need = TARGET_SINGLE_RATIO * base.throughput
        notes.append(
            f"single record, full: {r_s_full:.2f}x the baseline; {TARGET_SINGLE_RATIO}x would "
            f"be {fmt_n(need)} req/s, {(need / s_full.throughput - 1) * 100:.0f}% more than "
            "measured"
        )
    if b_full.throughput < TARGET_BATCH_RPS:
        notes.append(
            f"batch, full: {fmt_n(b_full.throughput)} records/s is "
            f"{(1 - b_full.throughput / TARGET_BATCH_RPS) * 100:.0f}% short of "
            f"{TARGET_BATCH_RPS:,} (needs {TARGET_BATCH_RPS / b_full.throughput:.1f}x)"
        )
    if r_b_full < TARGET_BATCH_RATIO:
        notes.append(
            f"batch, full: {r_b_full:.2f}x raw SQLite, target {TARGET_BATCH_RATIO}x "
            f"(needs {TARGET_BATCH_RATIO / r_b_full:.1f}x)"
        )
    if notes:
        add("")
        add("Targets missed: " + "; ".join(notes) + ".")
    if args.generator != "wrk":
        add("")
        add(
            "**Caveat:** measured with the Python load generator, not wrk. It needs about a "
            "core of its own, so on 2 cores it limits the baseline most (see its CPU column): "
            f"ratios against the baseline are overstated. Install wrk: `{WRK_INSTALL}`."
        )
    disturbed = [
        f"{r.server} {r.kind} {r.durability}".replace(" -", "")
        for r in (base, s_full, s_norm, s_nogroup, b_full, b_norm)
        if r.cpu["other"] > BUSY_OTHER_PCT
    ]
    if disturbed:
        add("")
        add(
            f"**Warning:** other processes used more than {BUSY_OTHER_PCT:.0f}% of a core during "
            f"{', '.join(disturbed)}; those figures (and ratios using them) are disturbed. "
            "Re-run on a quiet machine."
        )
    add("")
    add("### Correctness (same runs)")
    add("")
    add(
        "| Run | 202 responses | other statuses | socket errors | records acknowledged "
        "| rows in messages | rows in deliveries | rows not acknowledged | OK |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    all_ok = True
    for run in (base, s_full, s_norm, s_nogroup, b_full, b_norm):
        ok, note = run.check()
        all_ok &= ok
        n202 = run.load.count("202") + run.warm.count("202")
        other = sum(v for ld in (run.load, run.warm) for k, v in ld.statuses.items() if k != "202")
        errs = run.load.socket_errors + run.warm.socket_errors
        verdict = "yes" if ok else f"**NO**: {note}"
        if run.rows is None:
            add(f"| {run.server} | {n202:,} | {other} | {errs} | - | - | - | - | {verdict} |")
        else:
            mg = run.extra.get("max_group")
            add(
                f"| jghub {run.kind} {run.durability}"
                + (f" max_group {mg}" if mg else "")
                + f" | {n202:,} | {other} | {errs} | "
                f"{run.acked():,} | {run.rows['messages']:,} | {run.rows['deliveries']:,} | "
                f"{run.rows['messages'] - run.acked():,} | {verdict} |"
            )
    add("")
    add(
        "Counts include the warm-up run. The hub answers 202 only after COMMIT, so every "
        "acknowledged record must be in `messages` (checked after the server stopped), with one "
        "`deliveries` row each (one route target). Rows beyond the acknowledged ones belong to "
        "requests the load generator abandoned when its time was up (at most one per connection "
        "and run; more would be a failure, as would any status other than 202)."
    )
    return "\n".join(lines), all_ok


def write_doc(path: Path, report: str) -> None:
    block = f"{BEGIN}\n{report}\n{END}"
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            tail = rest.split(END, 1)[1]
            path.write_text(head + block + tail, encoding="utf-8")
            return
        path.write_text(text.rstrip("\n") + "\n\n" + block + "\n", encoding="utf-8")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Performance\n\n"
        "Ingest benchmarks: `bench/ingest.py` (see its docstring). The section between the "
        "markers is rewritten by every run; the rest of this file is kept.\n\n"
        f"## Latest run\n\n{block}\n",
        encoding="utf-8",
    )


def jghub_version() -> str:
    try:
        from hub import __version__
    except ImportError:
        __version__ = "?"
    rev = ""
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            # --no-optional-locks: read only, never refreshes the index.
            [
                "git",
                "--no-optional-locks",
                "-C",
                str(REPO),
                "status",
                "--porcelain",
                "--",
                "hub",
                "contracts",
            ],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        if rev and dirty:
            rev += " + uncommitted changes in hub/ or contracts/"
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{__version__} ({rev})" if rev else __version__


# --------------------------------------------------------------------------- profile summary


def summarize_profile(path: Path, top: int = 25) -> str:
    from profile_summary import summarize

    return summarize(path, top)


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 s load runs (under a minute)")
    ap.add_argument("--seconds", type=int, help="seconds per load run (default 10; 3 quick)")
    ap.add_argument(
        "--generator",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="load generator: wrk if installed (auto), or bench/loadgen.py (python)",
    )
    ap.add_argument(
        "--out", type=Path, default=REPO / "docs" / "PERFORMANCE.md", help="report file"
    )
    ap.add_argument("--no-write", action="store_true", help="print the report only")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="then record py-spy profiles of the hub under load (single, batch) in bench/out/",
    )
    ap.add_argument("--profile-only", action="store_true", help="profiles only, no table")
    args = ap.parse_args()
    args.seconds = args.seconds or (3 if args.quick else 10)
    args.warmup = 1
    args.raw_seconds = 1.0 if args.quick else 3.0
    return args


def pick_generator(args: argparse.Namespace) -> bool:
    if args.generator == "auto":
        args.generator = "wrk" if shutil.which("wrk") else "python"
        if args.generator == "python":
            print(
                "wrk not found; install it for accurate figures:\n"
                f"    {WRK_INSTALL}\n"
                "falling back to bench/loadgen.py (aiohttp client, one process): its own CPU use "
                "limits the figures and it shares the 2 cores with the server; read them as "
                "lower bounds.",
                file=sys.stderr,
            )
    elif args.generator == "wrk" and not shutil.which("wrk"):
        print(f"wrk not found; install it: {WRK_INSTALL}", file=sys.stderr)
        return False
    return True


def main() -> int:
    args = parse_args()
    if not pick_generator(args):
        return 2
    started = dt.datetime.now(dt.UTC)
    t_start = time.monotonic()
    argv0 = sys.argv[0]
    if not os.path.isabs(argv0) or Path(argv0).resolve().is_relative_to(Path.cwd()):
        argv0 = os.path.relpath(argv0)
    command = shlex.join(["python", argv0, *sys.argv[1:]])
    info = machine_info()
    info["jghub"] = jghub_version()
    info["load"] = load_avg()

    def step(msg: str) -> None:
        print(f"[{time.monotonic() - t_start:5.1f}s] {msg}", file=sys.stderr, flush=True)

    ok = True
    with tempfile.TemporaryDirectory(prefix="jghub-bench-") as tmpname:
        tmp = Path(tmpname)
        bodies = write_bodies(tmp / "bodies", SINGLE_BODIES, BATCH_BODIES, BATCH_SIZE)
        bench = Bench(args, tmp, bodies)

        if not args.profile_only:
            step("1/9 baseline aiohttp, single record")
            base = bench.baseline()
            hub_runs: dict[tuple[str, str], Run] = {}
            n = 2
            for kind in ("single", "batch"):
                for durability in ("full", "normal"):
                    step(f"{n}/9 jghub {kind}, durability {durability}")
                    hub_runs[(kind, durability)] = bench.hub(kind, durability)
                    n += 1
            step("6/9 jghub single, durability full, max_group 1 (no group commit)")
            hub_runs[("single", "full-nogroup")] = bench.hub("single", "full", max_group=1)
            raw: dict[str, dict[str, Any]] = {}
            step("7/9 raw SQLite executemany, full")
            raw["full"] = bench.raw("full", BATCH_SIZE, args.raw_seconds)
            step("8/9 raw SQLite executemany, normal")
            raw["normal"] = bench.raw("normal", BATCH_SIZE, args.raw_seconds)
            step("9/9 raw SQLite one record per transaction, full")
            raw["one"] = bench.raw("full", 1, args.raw_seconds)
            hub_payload_avg = avg_payload(tmp / "hub-batch-full" / "data" / "hub.db")

            elapsed = time.monotonic() - t_start
            report, ok = build_report(
                info, command, started, elapsed, args, bodies, base, hub_runs, raw, hub_payload_avg
            )
            print()
            print(report)
            if not args.no_write:
                write_doc(args.out, report)
                print(f"\nwritten to {os.path.relpath(args.out)}", file=sys.stderr)

        if args.profile or args.profile_only:
            out_dir = BENCH_DIR / "out"
            out_dir.mkdir(exist_ok=True)
            for kind in ("single", "batch"):
                step(f"profiling jghub {kind} (py-spy: wall clock, then GIL holders only)")
                files = bench.profile(kind, out_dir, max(3, args.seconds))
                for mode, path in files.items():
                    summary = summarize_profile(path)
                    md = path.with_suffix(".md")
                    md.write_text(summary + "\n", encoding="utf-8")
                    print(f"\n#### py-spy, {kind}, {mode}: {os.path.relpath(md)}\n")
                    print(summary)
    if not ok:
        print("\nCORRECTNESS CHECK FAILED (see the table)", file=sys.stderr)
        return 1
    return 0


def avg_payload(db: Path) -> float | None:
    import sqlite3

    try:
        conn = sqlite3.connect(db)
        try:
            value = conn.execute("SELECT avg(length(payload)) FROM messages").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return float(value) if value is not None else None


if __name__ == "__main__":
    sys.exit(main())
