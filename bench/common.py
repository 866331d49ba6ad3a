"""Shared plumbing of the benchmarks: server processes, hub configs, bodies, machine facts.

Nothing here imports ``hub`` at module level: the orchestrator only talks to servers over HTTP
and reads the SQLite file after the server has stopped.
"""

from __future__ import annotations

import http.client
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def jghub_command() -> list[str]:
    """``jghub`` of the interpreter running the benchmark (the venv's), else the one on PATH."""
    sibling = Path(sys.executable).parent / "jghub"
    if sibling.exists():
        return [str(sibling)]
    found = shutil.which("jghub")
    if found:
        return [found]
    return [sys.executable, "-c", "from hub.cli import main; main()"]


# --------------------------------------------------------------------------- bodies


def write_bodies(
    root: Path, single_count: int, batch_count: int, batch_size: int
) -> dict[str, Any]:
    """Write request bodies as files ``<dir>/<n>`` (read by the wrk script and the fallback
    load generator): ``single/`` one JSON record each, ``batch/`` NDJSON of ``batch_size``."""
    import orjson

    from contracts.samples import sample_inspection

    single = root / "single"
    batch = root / "batch"
    single.mkdir(parents=True)
    batch.mkdir(parents=True)
    sizes = []
    for n in range(single_count):
        body = orjson.dumps(sample_inspection(n))
        (single / str(n)).write_bytes(body)
        sizes.append(len(body))
    bsizes = []
    for b in range(batch_count):
        lines = [orjson.dumps(sample_inspection(b * batch_size + k)) for k in range(batch_size)]
        body = b"\n".join(lines) + b"\n"
        (batch / str(b)).write_bytes(body)
        bsizes.append(len(body))
    return {
        "single_dir": single,
        "single_count": single_count,
        "single_avg_bytes": sum(sizes) / len(sizes),
        "batch_dir": batch,
        "batch_count": batch_count,
        "batch_size": batch_size,
        "batch_avg_bytes": sum(bsizes) / len(bsizes),
        "batch_max_bytes": max(bsizes),
    }


# --------------------------------------------------------------------------- hub config


def write_hub_config(
    tmp: Path, *, durability: str, port: int, dead_port: int, max_group: int | None = None
) -> Path:
    """hub.yaml + systems/: source ``dept-a`` sends ``inspection``; one route to ``sink``, whose
    URL points at a port nobody listens on (deliveries just queue; the dispatcher is off)."""
    sysdir = tmp / "systems"
    sysdir.mkdir(parents=True, exist_ok=True)
    (sysdir / "dept-a.yaml").write_text(
        "name: dept-a\nadapter: json\ninbound:\n  datasets: [inspection]\n", encoding="utf-8"
    )
    (sysdir / "sink.yaml").write_text(
        "name: sink\nadapter: json\noutbound:\n  transport: http_json\n"
        f"  url: http://127.0.0.1:{dead_port}/ingest\n",
        encoding="utf-8",
    )
    hub = tmp / "hub.yaml"
    hub.write_text(
        "hub: {name: bench-hub, node_id: bench-node}\n"
        f"store: {{kind: sqlite, path: data/hub.db, durability: {durability}"
        + (f", max_group: {max_group}" if max_group else "")
        + "}\n"
        f"listen: {{host: 127.0.0.1, port: {port}}}\n"
        "dispatcher: {enabled: false}\n"
        "systems: [systems]\n"
        "routes:\n"
        "  - name: inspection-out\n"
        "    source: dept-a\n"
        "    dataset: inspection\n"
        "    targets: [sink]\n",
        encoding="utf-8",
    )
    return hub


def count_rows(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:
        return {
            "messages": conn.execute("SELECT count(*) FROM messages").fetchone()[0],
            "deliveries": conn.execute("SELECT count(*) FROM deliveries").fetchone()[0],
        }
    finally:
        conn.close()


# --------------------------------------------------------------------------- server processes


@dataclass
class Server:
    """A server under test, in its own process (its own session, so it can be stopped alone)."""

    name: str
    cmd: list[str]
    port: int
    cwd: Path
    log: Path
    ready_path: str = "/healthz"
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self, timeout: float = 20.0) -> None:
        logf = self.log.open("wb")
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=self.cwd,
            stdout=logf,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.tail()}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("GET", self.ready_path)
                if c.getresponse().status == 200:
                    c.close()
                    return
                c.close()
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """user + system CPU of the process (all its threads) so far."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / CLK_TCK

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful: the hub closes its store), SIGKILL if it does not go."""
        p = self.proc
        if p is None or p.poll() is not None:
            return None if p is None else p.returncode
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait(5)

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


# --------------------------------------------------------------------------- machine


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict[str, Any]:
    lscpu = _run(["lscpu"])
    keep = (
        "Architecture",
        "Model name",
        "CPU(s)",
        "Thread(s) per core",
        "Core(s) per socket",
        "Socket(s)",
        "CPU max MHz",
        "BogoMIPS",
        "Hypervisor vendor",
        "Virtualization type",
        "L1d cache",
        "L2 cache",
        "L3 cache",
    )
    lines = [ln for ln in lscpu.splitlines() if ln.split(":")[0].strip() in keep]
    mem = ""
    try:
        for ln in Path("/proc/meminfo").read_text().splitlines():
            if ln.startswith("MemTotal"):
                mem = f"{int(ln.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    import aiohttp

    return {
        "lscpu": "\n".join(lines),
        "nproc": _run(["nproc"]),
        "uname": _run(["uname", "-srvm"]),
        "memory": mem,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "aiohttp": aiohttp.__version__,
        "sqlite": sqlite3.sqlite_version,
        "wrk": (_run(["wrk", "-v"]) or "").splitlines()[0] if shutil.which("wrk") else "",
    }


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine so far (all CPUs; /proc/stat, idle and iowait
    excluded)."""
    with open("/proc/stat", encoding="ascii") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
    busy = vals[0] + vals[1] + vals[2] + vals[5] + vals[6] + (vals[7] if len(vals) > 7 else 0)
    return busy / CLK_TCK


def children_cpu_seconds() -> float:
    """user + system CPU of this process's waited-for children (the load generators)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def load_avg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"
