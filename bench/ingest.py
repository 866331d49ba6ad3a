"""Ingest benchmarks of jghub against baselines measured in the same run.

    python bench/ingest.py                 # ~2.5 min: 10 s per load run
    python bench/ingest.py --quick         # ~1 min: 3 s per load run (max_group 1: 2 s)
    python bench/ingest.py --profile       # then py-spy profiles of the hub under load
                                           # (single, batch, batch with the validation pool)
    python bench/ingest.py --profile-only  # only the profiles (bench/out/profile-*.{txt,md})

What runs (every server in its own process on 127.0.0.1, every load generator a separate
process that stops by itself after a fixed time):

1. Single-record ingest: ``POST /v1/systems/dept-a/records`` with one inspection record
   (``contracts.samples.sample_inspection(i)``, 1,000 different bodies in rotation), 32
   connections, no Idempotency-Key. Hub: ``jghub serve`` with SQLite ``durability: full`` and
   ``normal``, and ``jghub serve --workers 2`` (``full`` and ``normal``: the node process and
   one ingest-only process on the same port, ``SO_REUSEPORT``); one route to a target that is
   not running, dispatcher off. Baselines: ``bench/baseline_app.py`` (bare aiohttp handler:
   orjson parse, 202 + small JSON) in one process (the target is judged against this one) and
   with ``--processes 2`` (the same handler in 2 processes on one port, ``reuse_port``).
2. Batch ingest: NDJSON bodies of 1,000 records, 4 connections; records/s acknowledged (202
   after the commit); 1 process and ``--workers 2``, each with ``full`` and ``normal``; and
   1 process, ``full``, with ``ingest: {validation_processes: 2}`` in hub.yaml (the batches'
   lines validated in 2 worker processes started through a forkserver). Baseline:
   ``bench/raw_insert.py``, ``executemany`` of the same rows (hub schema and INSERTs, same
   payload bytes) in WAL mode, 1,000 records a transaction.
3. Group commit: the hub's single-record run again with ``max_group: 1`` (one transaction per
   request), and raw SQLite with one record per transaction (what a store without group commit
   could acknowledge at most); durability full against normal.
4. Process scaling: the ``--workers 2`` runs against 1 process of the same durability, the
   validation-pool run against 1 process without the pool (``full``), and the 2-process
   baseline against 1 process.

Durability: ``full`` (the hub's default) is SQLite WAL with ``synchronous=FULL``, an fsync at
every group commit; ``normal`` is ``synchronous=NORMAL``, no fsync at commit: acknowledged
records survive a crash of the hub process, not a power loss or OS crash. The ``normal`` runs
show what the fsync costs; the report says which targets are met only with ``normal``.

The server's CPU is that of its whole process tree, descendants at any depth (the
``--workers`` ingest process; with the validation pool the forkserver, a child of the hub, and
the workers, its children; read from /proc); for multi-process servers the report also gives
each process's CPU and how many of the load generator's connections the kernel gave it, for the
pool run the hub process's CPU and that of the rest of its tree.

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
from collections.abc import Callable
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
    connections_by_process,
    count_rows,
    free_port,
    jghub_command,
    load_avg,
    machine_cpu_seconds,
    machine_info,
    write_bodies,
    write_hub_config,
    write_section,
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
MAX_REPEATS = 3  # measured runs repeated when a server process got no connection
WORKERS = 2  # processes of the multi-process runs (jghub serve --workers, baseline --processes)
POOL = 2  # hub.yaml ingest.validation_processes of the validation-pool batch run
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
    during: Callable[[], None] | None = None,
) -> Load:
    """One load run in its own process; it stops by itself after ``seconds``. ``during`` is
    called once, about a second into the run (its connections are open by then)."""
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
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if during is not None:
            time.sleep(min(1.0, seconds / 2))
            if proc.poll() is None:
                during()
        stdout, stderr = proc.communicate(timeout=seconds + 60)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    for line in stdout.splitlines():
        if line.startswith("WRK_JSON "):
            d = orjson.loads(line[len("WRK_JSON ") :])
            return Load(d["requests"], d["duration_s"], d["statuses"], d["errors"], d["latency_ms"])
    raise RuntimeError(f"load generator gave no result:\n{stdout}\n{stderr}")


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
    processes: int = 1
    # per process of the server's tree (server process first): CPU in % of a core over the
    # measured run, and the load generator's connections it held
    proc_cpu: list[float] = field(default_factory=list)
    proc_conns: list[int] = field(default_factory=list)
    # measured runs repeated because some process got none of the connections (their records
    # count for the correctness check, their figures for nothing else)
    discarded: list[Load] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        """req/s for single runs, records/s for batch runs."""
        return self.load.rps * self.per_request

    def loads(self) -> list[Load]:
        """Every load run against this server: warm-up, repeated runs, measured run."""
        return [self.warm, *self.discarded, self.load]

    def acked(self) -> int:
        return sum(ld.count("202") for ld in self.loads()) * self.per_request

    def check(self) -> tuple[bool, str]:
        """(ok, note): all 202, no socket errors, rows == acks + what was still in flight."""
        probs = []
        for ld in self.loads():
            others = {k: v for k, v in ld.statuses.items() if k != "202"}
            if others:
                probs.append(f"statuses {others}")
            if ld.socket_errors:
                probs.append(f"socket errors {ld.errors}")
        if self.rows is not None:
            extra = self.rows["messages"] - self.acked()
            # at most one request per connection and load run
            in_flight_max = len(self.loads()) * self.conns * self.per_request
            if extra < 0:
                probs.append(f"{-extra} acknowledged records missing from the store")
            elif extra > in_flight_max:
                probs.append(f"{extra} unacknowledged rows (> {in_flight_max} in flight)")
            if self.rows["deliveries"] != self.rows["messages"]:
                probs.append("deliveries != messages")
        return (not probs, "; ".join(probs) or "ok")


@dataclass
class Measured:
    warm: Load
    load: Load | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    proc_cpu: list[float] = field(default_factory=list)
    proc_conns: list[int] = field(default_factory=list)
    discarded: list[Load] = field(default_factory=list)


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path, bodies: dict[str, Any]) -> None:
        self.args = args
        self.tmp = tmp
        self.bodies = bodies
        self.generator = args.generator
        self.seconds = args.seconds
        self.warmup = args.warmup

    def _load(
        self, port: int, kind: str, seconds: int, during: Callable[[], None] | None = None
    ) -> Load:
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
            self.generator, f"http://127.0.0.1:{port}{RECORDS_PATH}", d, n, ct, c, seconds, during
        )

    def _measure(self, server: Server, kind: str, seconds: int | None = None) -> Measured:
        """Warm-up run, then the measured run; CPU of the server's whole process tree (its
        worker processes included), of the load generator and of the machine.

        With several server processes the kernel spreads the load generator's connections over
        them at random (``SO_REUSEPORT`` hashes each connection), and a few connections can
        all land on one process; such a run is repeated (new connections), up to
        ``MAX_REPEATS`` times, so the figure measures all processes."""
        m = Measured(warm=self._load(server.port, kind, self.warmup))
        pids = server.pids()
        while True:
            conns: dict[int, int] = {}

            def sample_connections(conns: dict[int, int] = conns) -> None:
                conns.update(connections_by_process(pids, server.port))

            p0, m0, c0, t0 = (
                server.cpu_by_process(),
                machine_cpu_seconds(),
                children_cpu_seconds(),
                time.monotonic(),
            )
            load = self._load(server.port, kind, seconds or self.seconds, sample_connections)
            p1, m1, c1, t1 = (
                server.cpu_by_process(),
                machine_cpu_seconds(),
                children_cpu_seconds(),
                time.monotonic(),
            )
            per_proc = [conns.get(p, 0) for p in pids]
            lopsided = server.processes > 1 and (len(pids) < server.processes or 0 in per_proc)
            if lopsided and len(m.discarded) < MAX_REPEATS:
                m.discarded.append(load)
                continue
            break
        wall = t1 - t0
        m.load = load
        m.cpu = cpu_shares(wall, sum(p1.values()) - sum(p0.values()), c1 - c0, m1 - m0)
        m.proc_cpu = [(p1.get(p, 0.0) - p0.get(p, 0.0)) * 100 / wall for p in pids]
        m.proc_conns = per_proc
        return m

    def baseline(self, processes: int = 1) -> Run:
        port = free_port()
        d = self.tmp / f"baseline-{processes}"
        d.mkdir()
        srv = Server(
            "baseline",
            [
                sys.executable,
                str(BENCH_DIR / "baseline_app.py"),
                "--port",
                str(port),
                "--processes",
                str(processes),
            ],
            port,
            d,
            d / "server.log",
            processes=processes,
        )
        srv.start()
        try:
            m = self._measure(srv, "single")
        finally:
            srv.stop()
        assert m.load is not None
        return Run(
            "1 single",
            "aiohttp baseline",
            "-",
            "single",
            SINGLE_CONNS,
            m.load,
            m.warm,
            m.cpu,
            processes=processes,
            proc_cpu=m.proc_cpu,
            proc_conns=m.proc_conns,
            discarded=m.discarded,
        )

    def start_hub(
        self,
        durability: str,
        name: str,
        max_group: int | None = None,
        workers: int = 1,
        validation_processes: int = 0,
    ) -> tuple[Server, Path]:
        d = self.tmp / name
        d.mkdir()
        port = free_port()
        cfg = write_hub_config(
            d,
            durability=durability,
            port=port,
            dead_port=free_port(),
            max_group=max_group,
            ingest={"validation_processes": validation_processes} if validation_processes else None,
        )
        srv = Server(
            name,
            [*jghub_command(), "serve", "--config", str(cfg)]
            + (["--workers", str(workers)] if workers > 1 else []),
            port,
            d,
            d / "server.log",
            processes=workers,
        )
        srv.start(timeout=40.0 if workers > 1 else 20.0)
        return srv, d / "data" / "hub.db"

    def hub(
        self,
        kind: str,
        durability: str,
        max_group: int | None = None,
        workers: int = 1,
        seconds: int | None = None,
        validation_processes: int = 0,
    ) -> Run:
        """One hub run. ``validation_processes``: hub.yaml ``ingest.validation_processes``
        (worker processes validating big NDJSON batches; 0, the default, leaves it out)."""
        name = (
            f"hub-{kind}-{durability}"
            + (f"-group{max_group}" if max_group else "")
            + (f"-workers{workers}" if workers > 1 else "")
            + (f"-pool{validation_processes}" if validation_processes else "")
        )
        srv, db = self.start_hub(durability, name, max_group, workers, validation_processes)
        try:
            m = self._measure(srv, kind, seconds)
        finally:
            code = srv.stop()
        if code not in (0, None):
            print(f"warning: jghub exited with {code}:\n{srv.tail()}", file=sys.stderr)
        assert m.load is not None
        rows = count_rows(db)
        per = BATCH_SIZE if kind == "batch" else 1
        conns = BATCH_CONNS if kind == "batch" else SINGLE_CONNS
        return Run(
            f"{1 if kind == 'single' else 2} {kind}",
            "jghub",
            durability,
            kind,
            conns,
            m.load,
            m.warm,
            m.cpu,
            rows,
            per,
            {"max_group": max_group, "validation_processes": validation_processes},
            processes=workers,
            proc_cpu=m.proc_cpu,
            proc_conns=m.proc_conns,
            discarded=m.discarded,
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

    def profile(
        self, kind: str, out_dir: Path, seconds: int, validation_processes: int = 0
    ) -> dict[str, Path]:
        """py-spy record (raw collapsed stacks, per thread) of the hub process under load (with
        ``validation_processes``, the hub process only, not its validation workers).

        Blocking mode (py-spy pauses the process for each sample): slower under load, but
        ``--nonblocking`` was seen to misattribute samples (torn stacks) on this workload."""
        sibling = Path(sys.executable).parent / "py-spy"
        pyspy = str(sibling) if sibling.exists() else shutil.which("py-spy")
        if pyspy is None:
            raise RuntimeError(f"py-spy not found: {sys.executable} -m pip install py-spy")
        label = kind + (f"-pool{validation_processes}" if validation_processes else "")
        srv, _db = self.start_hub(
            "full", f"profile-{label}", validation_processes=validation_processes
        )
        outs: dict[str, Path] = {}
        try:
            self._load(srv.port, kind, 1)
            for mode, extra in (("wall", []), ("gil", ["--gil"])):
                path = out_dir / f"profile-{label}-{mode}.txt"
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


def fmt_cpu(
    cpu: dict[str, float] | None, loadgen: bool = True, per_process: list[float] | None = None
) -> str:
    if not cpu:
        return ""
    server = f"{cpu['server']:.0f}%"
    if per_process and len(per_process) > 1:
        server += " (" + " + ".join(f"{x:.0f}" for x in per_process) + ")"
    parts = [server]
    parts.append(f"{cpu['loadgen']:.0f}%" if loadgen else "-")
    other = f"{cpu['other']:.0f}%"
    parts.append(f"**{other}**" if cpu["other"] > BUSY_OTHER_PCT else other)
    return " / ".join(parts)


def fmt_run_cpu(run: Run) -> str:
    """CPU cell of a hub or baseline run: per process for multi-process servers; for a run
    with a validation pool, the hub process and the rest of its tree (the forkserver, its
    validation workers and multiprocessing's resource tracker) summed."""
    pool = run.extra.get("validation_processes")
    if pool and run.proc_cpu:
        hub_cpu, rest = run.proc_cpu[0], sum(run.proc_cpu[1:])
        cell = fmt_cpu(run.cpu)
        server, tail = cell.split(" / ", 1)
        return f"{server} (hub {hub_cpu:.0f} + pool {rest:.0f}) / {tail}"
    return fmt_cpu(run.cpu, per_process=run.proc_cpu)


def fmt_conns(run: Run) -> str:
    if run.processes > 1 and run.proc_conns:
        return f"{run.conns} ({' + '.join(str(n) for n in run.proc_conns)})"
    return str(run.conns)


def run_name(run: Run) -> str:
    if run.rows is None:
        return run.server + (f", {run.processes} processes" if run.processes > 1 else "")
    mg = run.extra.get("max_group")
    pool = run.extra.get("validation_processes")
    return (
        f"jghub {run.kind} {run.durability}"
        + (f" max_group {mg}" if mg else "")
        + (f" --workers {run.processes}" if run.processes > 1 else "")
        + (f" validation_processes {pool}" if pool else "")
    )


def build_report(
    info: dict[str, Any],
    command: str,
    started: dt.datetime,
    elapsed: float,
    args: argparse.Namespace,
    bodies: dict[str, Any],
    bases: dict[int, Run],
    hub_runs: dict[tuple[str, str], Run],
    raw: dict[str, dict[str, Any]],
    hub_payload_avg: float | None,
) -> tuple[str, bool]:
    """Markdown report; second value: every correctness check passed."""
    base, base_w = bases[1], bases[WORKERS]
    s_full, s_norm = hub_runs[("single", "full")], hub_runs[("single", "normal")]
    s_w = hub_runs[("single", f"full-workers{WORKERS}")]
    s_wn = hub_runs[("single", f"normal-workers{WORKERS}")]
    s_nogroup = hub_runs[("single", "full-nogroup")]
    b_full, b_norm = hub_runs[("batch", "full")], hub_runs[("batch", "normal")]
    b_w = hub_runs[("batch", f"full-workers{WORKERS}")]
    b_wn = hub_runs[("batch", f"normal-workers{WORKERS}")]
    b_pool = hub_runs[("batch", f"full-pool{POOL}")]
    raw_full, raw_norm, raw_one = raw["full"], raw["normal"], raw["one"]
    gen = "wrk, 1 thread" if args.generator == "wrk" else "aiohttp client (bench/loadgen.py)"
    w_flag = f"`--workers {WORKERS}`"
    pool_flag = f"`ingest.validation_processes: {POOL}`"

    def variant(run: Run) -> str:
        """How a run differs from one hub process with the default settings."""
        out = f", {w_flag}" if run.processes > 1 else ""
        if run.extra.get("validation_processes"):
            out += f", {pool_flag}"
        return out

    def met(ok: bool) -> str:
        return "yes" if ok else "**NO**"

    def ratio_row(n: str, measurement: str, durability: str, value: float) -> tuple[str, ...]:
        return (n, measurement, durability, "", f"{value:.2f}x", "", "", "", "", "", "")

    # Judged against the 1-process baseline, as the issue defines the target; the ratio to the
    # baseline with as many processes as the hub is shown beside it.
    single_runs = (s_full, s_norm, s_w, s_wn)
    batch_runs = (b_full, b_norm, b_w, b_wn, b_pool)
    r_single = {id(run): run.throughput / base.throughput for run in single_runs}
    r_single_same = {id(run): run.throughput / base_w.throughput for run in (s_w, s_wn)}
    raw_of = {"full": raw_full, "normal": raw_norm}
    r_batch = {id(run): run.throughput / raw_of[run.durability]["rows_per_s"] for run in batch_runs}

    def batch_ok(run: Run) -> bool:
        return run.throughput >= TARGET_BATCH_RPS and r_batch[id(run)] >= TARGET_BATCH_RATIO

    single_target = f"≥ {TARGET_SINGLE_RATIO}x 1-process baseline"
    rows: list[tuple[str, ...]] = [
        # (#, measurement, durability, conns, result, unit, ratio, target, met, latency, cpu)
        (
            "1",
            "aiohttp baseline: orjson parse, 202; 1 process",
            "-",
            fmt_conns(base),
            fmt_n(base.throughput),
            "req/s",
            "1.00x",
            "",
            "",
            fmt_lat(base.load),
            fmt_cpu(base.cpu),
        ),
        (
            "1",
            f"aiohttp baseline, {WORKERS} processes (`reuse_port`)",
            "-",
            fmt_conns(base_w),
            fmt_n(base_w.throughput),
            "req/s",
            f"{base_w.throughput / base.throughput:.2f}x 1-process baseline",
            "",
            "",
            fmt_lat(base_w.load),
            fmt_cpu(base_w.cpu, per_process=base_w.proc_cpu),
        ),
    ]
    for run in single_runs:
        r = r_single[id(run)]
        ratio = f"{r:.2f}x 1-process baseline"
        name = "jghub, one record per request"
        if run.processes > 1:
            name += f", {w_flag}"
            ratio += f"; {r_single_same[id(run)]:.2f}x {WORKERS}-process baseline"
        rows.append(
            (
                "1",
                name,
                run.durability,
                fmt_conns(run),
                fmt_n(run.throughput),
                "req/s",
                ratio,
                single_target,
                met(r >= TARGET_SINGLE_RATIO),
                fmt_lat(run.load),
                fmt_run_cpu(run),
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
    for run in batch_runs:
        rows.append(
            (
                "2",
                f"jghub, NDJSON batch of {BATCH_SIZE:,}" + variant(run),
                run.durability,
                fmt_conns(run),
                fmt_n(run.throughput),
                "records/s",
                f"{r_batch[id(run)]:.2f}x raw {run.durability}",
                f"≥ {TARGET_BATCH_RPS:,}/s and ≥ {TARGET_BATCH_RATIO}x",
                met(batch_ok(run)),
                fmt_lat(run.load),
                fmt_run_cpu(run),
            )
        )
    rows += [
        (
            "3",
            "jghub, one record per request, `max_group: 1` (no group commit)",
            "full",
            fmt_conns(s_nogroup),
            fmt_n(s_nogroup.throughput),
            "req/s",
            f"{s_nogroup.throughput / base.throughput:.2f}x 1-process baseline",
            "",
            "",
            fmt_lat(s_nogroup.load),
            fmt_cpu(s_nogroup.cpu),
        ),
        ratio_row(
            "3",
            "group commit effect: jghub single, default ÷ `max_group: 1`",
            "full",
            s_full.throughput / s_nogroup.throughput,
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
        ratio_row(
            "3",
            "jghub single ÷ raw 1 record/txn",
            "full",
            s_full.throughput / raw_one["txn_per_s"],
        ),
        ratio_row(
            "3",
            "durability cost: jghub single, full ÷ normal",
            "",
            s_full.throughput / s_norm.throughput,
        ),
        ratio_row(
            "3",
            "durability cost: jghub batch, full ÷ normal",
            "",
            b_full.throughput / b_norm.throughput,
        ),
        ratio_row(
            "3",
            f"durability cost: jghub single, {w_flag}, full ÷ normal",
            "",
            s_w.throughput / s_wn.throughput,
        ),
        ratio_row(
            "3",
            f"durability cost: jghub batch, {w_flag}, full ÷ normal",
            "",
            b_w.throughput / b_wn.throughput,
        ),
        ratio_row(
            "4",
            f"process scaling: jghub single, {w_flag} ÷ 1 process",
            "full",
            s_w.throughput / s_full.throughput,
        ),
        ratio_row(
            "4",
            f"process scaling: jghub single, {w_flag} ÷ 1 process",
            "normal",
            s_wn.throughput / s_norm.throughput,
        ),
        ratio_row(
            "4",
            f"process scaling: jghub batch, {w_flag} ÷ 1 process",
            "full",
            b_w.throughput / b_full.throughput,
        ),
        ratio_row(
            "4",
            f"process scaling: jghub batch, {w_flag} ÷ 1 process",
            "normal",
            b_wn.throughput / b_norm.throughput,
        ),
        ratio_row(
            "4",
            f"validation pool: jghub batch, {pool_flag} ÷ 1 process without pool",
            "full",
            b_pool.throughput / b_full.throughput,
        ),
        ratio_row(
            "4",
            f"process scaling: aiohttp baseline, {WORKERS} processes ÷ 1",
            "-",
            base_w.throughput / base.throughput,
        ),
    ]

    lines: list[str] = []
    add = lines.append
    add(
        f"Generated by `{command}` on {started:%Y-%m-%d %H:%M} UTC in {elapsed:.0f} s: "
        f"{args.seconds} s per load run after a {args.warmup} s warm-up"
        + (
            f" (the `max_group: 1` run, the least telling and steadiest figure, "
            f"{args.nogroup_seconds} s)"
            if args.nogroup_seconds != args.seconds
            else ""
        )
        + f", load generator {gen}, raw SQLite runs {args.raw_seconds:g} s."
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
        "(after the commit; see Durability below). CPU in % of one core over the measured run: "
        "the server's "
        "whole process tree (all threads of the server process and of all its descendants: "
        f"the {w_flag} ingest process, and with {pool_flag} the forkserver and the validation "
        "workers it forks; per process in parentheses, the server process first; for the "
        "pool run the hub process and the rest of its tree), the load generator, and all "
        "other processes on the machine. For the "
        f"{WORKERS}-process runs, Conns shows how the kernel spread the load generator's "
        "connections over the processes (`SO_REUSEPORT`; counted 1 s into the run)."
    )
    add(
        f"The single-record target is judged against the 1-process baseline, as the issue "
        f"defines it; the {w_flag} rows also show their ratio to the {WORKERS}-process "
        f"baseline (the same bare handler in as many processes as the hub). On {info['nproc']} "
        "cores the load generator shares the CPUs with the server processes in both."
    )
    add(
        "Raw SQLite: own process, the hub's schema and INSERT statements, its PRAGMAs and its "
        f"payload bytes (average {raw_full['payload_avg_bytes']:.0f} bytes"
        + (f"; {hub_payload_avg:.0f} in the hub's batch run" if hub_payload_avg else "")
        + "); only the transactions are timed, row tuples are built beforehand."
    )
    add("")
    add(
        "**Durability.** `full`, the hub's default, is SQLite's WAL with `synchronous=FULL`: "
        "the WAL is fsynced at every group commit, before the 202, so an acknowledged record "
        "survives a crash of the process, a crash of the OS and a power loss. `normal` is "
        "`synchronous=NORMAL`: no fsync at commit (only at WAL checkpoints), so an acknowledged "
        "record survives a crash of the hub process but may be lost in a power loss or an OS "
        "crash. The `normal` rows show what the fsync costs; a target met only with `normal` is "
        "not met by the default configuration."
    )

    def where(kind: str, run: Run) -> str:
        return f"{kind}, {run.durability}" + variant(run)

    notes = []
    for run in (s_full, s_w):
        r = r_single[id(run)]
        if r < TARGET_SINGLE_RATIO:
            need = TARGET_SINGLE_RATIO * base.throughput
            notes.append(
                f"{where('single record', run)}: {r:.2f}x the "
                f"1-process baseline; {TARGET_SINGLE_RATIO}x would be {fmt_n(need)} req/s, "
                f"{(need / run.throughput - 1) * 100:.0f}% more than measured"
            )
    for run in (b_full, b_w, b_pool):
        what = where("batch", run)
        if run.throughput < TARGET_BATCH_RPS:
            notes.append(
                f"{what}: {fmt_n(run.throughput)} records/s is "
                f"{(1 - run.throughput / TARGET_BATCH_RPS) * 100:.0f}% short of "
                f"{TARGET_BATCH_RPS:,} (needs {TARGET_BATCH_RPS / run.throughput:.2f}x)"
            )
        r = r_batch[id(run)]
        if r < TARGET_BATCH_RATIO:
            notes.append(
                f"{what}: {r:.2f}x raw SQLite, target {TARGET_BATCH_RATIO}x "
                f"(needs {TARGET_BATCH_RATIO / r:.2f}x)"
            )
    full_met = [
        where("single record", r) for r in (s_full, s_w) if r_single[id(r)] >= TARGET_SINGLE_RATIO
    ]
    full_met += [where("batch", r) for r in (b_full, b_w, b_pool) if batch_ok(r)]
    full_parts = []
    if full_met:
        full_parts.append(
            "Targets met with the default `durability: full`: " + "; ".join(full_met) + "."
        )
    if notes:
        full_parts.append(
            "Targets missed with the default `durability: full`: " + "; ".join(notes) + "."
        )
    add("")
    add(
        " ".join(full_parts)
        + f" ({w_flag} and {pool_flag} are options; by default the hub runs one process and "
        "validates in it.)"
    )
    normal_ok = [
        (where("single record", r), r_single[id(r)] >= TARGET_SINGLE_RATIO) for r in (s_norm, s_wn)
    ]
    normal_ok += [(where("batch", r), batch_ok(r)) for r in (b_norm, b_wn)]
    normal_met = [w for w, ok in normal_ok if ok]
    normal_missed = [w for w, ok in normal_ok if not ok]
    parts = []
    if normal_met:
        parts.append("Targets met with `durability: normal`: " + "; ".join(normal_met) + ".")
    if normal_missed:
        parts.append("Targets missed with `durability: normal`: " + "; ".join(normal_missed) + ".")
    add("")
    add(" ".join(parts) + " (`normal` is not the default; see Durability above.)")
    if args.generator != "wrk":
        add("")
        add(
            "**Caveat:** measured with the Python load generator, not wrk. It needs about a "
            "core of its own, so on 2 cores it limits the baseline most (see its CPU column): "
            f"ratios against the baseline are overstated. Install wrk: `{WRK_INSTALL}`."
        )
    all_runs = (base, base_w, *single_runs, s_nogroup, *batch_runs)
    disturbed = [run_name(r) for r in all_runs if r.cpu["other"] > BUSY_OTHER_PCT]
    if disturbed:
        add("")
        add(
            f"**Warning:** other processes used more than {BUSY_OTHER_PCT:.0f}% of a core during "
            f"{', '.join(disturbed)}; those figures (and ratios using them) are disturbed. "
            "Re-run on a quiet machine."
        )
    repeated = [f"{run_name(r)} ({len(r.discarded)}x)" for r in all_runs if r.discarded]
    if repeated:
        add("")
        add(
            "Measured runs repeated because the kernel gave all connections to some of the "
            f"processes: {', '.join(repeated)}; the figures are those of the last run, the "
            "correctness check counts all of them."
        )
    lopsided = [
        run_name(r)
        for r in all_runs
        if r.processes > 1 and (len(r.proc_conns) < r.processes or 0 in r.proc_conns)
    ]
    if lopsided:
        add("")
        add(
            f"**Warning:** in {', '.join(lopsided)} some process held none of the load "
            f"generator's connections even after {MAX_REPEATS} repeats (or a process was "
            "missing), so fewer processes than configured did the work."
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
    for run in all_runs:
        ok, note = run.check()
        all_ok &= ok
        n202 = sum(ld.count("202") for ld in run.loads())
        other = sum(v for ld in run.loads() for k, v in ld.statuses.items() if k != "202")
        errs = sum(ld.socket_errors for ld in run.loads())
        verdict = "yes" if ok else f"**NO**: {note}"
        if run.rows is None:
            add(f"| {run_name(run)} | {n202:,} | {other} | {errs} | - | - | - | - | {verdict} |")
        else:
            add(
                f"| {run_name(run)} | {n202:,} | {other} | {errs} | "
                f"{run.acked():,} | {run.rows['messages']:,} | {run.rows['deliveries']:,} | "
                f"{run.rows['messages'] - run.acked():,} | {verdict} |"
            )
    add("")
    add(
        "Counts include the warm-up run (and repeated runs). The hub answers 202 only after "
        "COMMIT, so every acknowledged record must be in `messages` (checked after the server "
        f"stopped; with {w_flag} all processes commit to the same file), with one `deliveries` "
        "row each (one route target). Rows beyond the acknowledged ones belong to requests the "
        "load generator abandoned when its time was up (at most one per connection and load "
        "run; more would be a "
        "failure, as would any status other than 202)."
    )
    return "\n".join(lines), all_ok


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
        help=(
            "then record py-spy profiles of the hub under load (single, batch, batch with "
            "the validation pool) in bench/out/"
        ),
    )
    ap.add_argument("--profile-only", action="store_true", help="profiles only, no table")
    args = ap.parse_args()
    args.seconds = args.seconds or (3 if args.quick else 10)
    args.warmup = 1
    args.raw_seconds = 1.0 if args.quick else 3.0
    # The max_group: 1 run (one commit per request) is the least telling and the steadiest
    # figure; --quick gives it 2 s to stay under a minute with the --workers runs.
    args.nogroup_seconds = min(args.seconds, 2) if args.quick else args.seconds
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
            total = 15
            counter = iter(range(1, total + 1))

            def stepn(msg: str) -> None:
                step(f"{next(counter)}/{total} {msg}")

            bases: dict[int, Run] = {}
            for procs in (1, WORKERS):
                stepn(f"baseline aiohttp, single record, {procs} process(es)")
                bases[procs] = bench.baseline(procs)
            hub_runs: dict[tuple[str, str], Run] = {}
            for kind in ("single", "batch"):
                for durability in ("full", "normal"):
                    stepn(f"jghub {kind}, durability {durability}")
                    hub_runs[(kind, durability)] = bench.hub(kind, durability)
                for durability in ("full", "normal"):
                    stepn(f"jghub {kind}, durability {durability}, --workers {WORKERS}")
                    hub_runs[(kind, f"{durability}-workers{WORKERS}")] = bench.hub(
                        kind, durability, workers=WORKERS
                    )
            stepn(f"jghub batch, durability full, ingest.validation_processes {POOL}")
            hub_runs[("batch", f"full-pool{POOL}")] = bench.hub(
                "batch", "full", validation_processes=POOL
            )
            stepn("jghub single, durability full, max_group 1 (no group commit)")
            hub_runs[("single", "full-nogroup")] = bench.hub(
                "single", "full", max_group=1, seconds=args.nogroup_seconds
            )
            raw: dict[str, dict[str, Any]] = {}
            stepn("raw SQLite executemany, full")
            raw["full"] = bench.raw("full", BATCH_SIZE, args.raw_seconds)
            stepn("raw SQLite executemany, normal")
            raw["normal"] = bench.raw("normal", BATCH_SIZE, args.raw_seconds)
            stepn("raw SQLite one record per transaction, full")
            raw["one"] = bench.raw("full", 1, args.raw_seconds)
            hub_payload_avg = avg_payload(tmp / "hub-batch-full" / "data" / "hub.db")

            elapsed = time.monotonic() - t_start
            report, ok = build_report(
                info, command, started, elapsed, args, bodies, bases, hub_runs, raw, hub_payload_avg
            )
            print()
            print(report)
            if not args.no_write:
                write_section(
                    args.out,
                    "bench",
                    report,
                    heading="## Latest run",
                    intro="Ingest benchmarks: `bench/ingest.py` (see its docstring). The section "
                    "between the markers is rewritten by every run; the rest of this file is kept.",
                )
                print(f"\nwritten to {os.path.relpath(args.out)}", file=sys.stderr)

        if args.profile or args.profile_only:
            out_dir = BENCH_DIR / "out"
            out_dir.mkdir(exist_ok=True)
            for kind, pool in (("single", 0), ("batch", 0), ("batch", POOL)):
                what = kind + (f", ingest.validation_processes {pool}" if pool else "")
                step(f"profiling jghub {what} (py-spy: wall clock, then GIL holders only)")
                files = bench.profile(kind, out_dir, max(3, args.seconds), pool)
                for mode, path in files.items():
                    summary = summarize_profile(path)
                    md = path.with_suffix(".md")
                    md.write_text(summary + "\n", encoding="utf-8")
                    print(f"\n#### py-spy, {what}, {mode}: {os.path.relpath(md)}\n")
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
