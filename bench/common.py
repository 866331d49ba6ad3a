"""Shared plumbing of the benchmarks: server processes, hub configs, bodies, machine facts.

Nothing here imports ``hub`` at module level: the orchestrator only talks to servers over HTTP
and reads the SQLite file after the server has stopped.
"""

from __future__ import annotations

import contextlib
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
    tmp: Path,
    *,
    durability: str,
    port: int,
    dead_port: int,
    max_group: int | None = None,
    ingest: dict[str, int] | None = None,
) -> Path:
    """hub.yaml + systems/: source ``dept-a`` sends ``inspection``; one route to ``sink``, whose
    URL points at a port nobody listens on (deliveries just queue; the dispatcher is off).
    ``ingest``: the hub.yaml ``ingest`` section (e.g. ``{"validation_processes": 2}``), left out
    when None (the hub's defaults)."""
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
        + (
            "ingest: {" + ", ".join(f"{k}: {v}" for k, v in ingest.items()) + "}\n"
            if ingest
            else ""
        )
        + "systems: [systems]\n"
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
    processes: int = 1  # processes listening on the port when ready
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
                status = c.getresponse().status
                c.close()
                # Several processes on one port (SO_REUSEPORT): ready when each listens, or
                # the first connections of a load run would all go to the first one.
                if status == 200 and len(listening_sockets(self.port)) >= self.processes:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def pids(self) -> list[int]:
        """The server's process tree: its process, then its descendants (worker processes)."""
        return process_tree(self.pid)

    def cpu_by_process(self) -> dict[int, float]:
        """CPU seconds so far of every process of the tree (see :func:`tree_cpu_seconds`)."""
        return tree_cpu_seconds(self.pid)

    def cpu_seconds(self) -> float:
        """user + system CPU so far of the whole process tree (all threads of the server process
        and of its worker processes, and of workers that already exited and were waited for)."""
        return sum(self.cpu_by_process().values())

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM to the server process (graceful: the hub stops its workers and closes its
        store), SIGKILL if it does not go; then SIGTERM / SIGKILL to any process of its tree
        still running (by pid, only processes this server started)."""
        p = self.proc
        if p is None:
            return None
        tree = self._tree_with_start_times()
        code: int | None
        if p.poll() is not None:
            code = p.returncode
        else:
            p.send_signal(signal.SIGTERM)
            try:
                code = p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                code = p.wait(5)
        self._reap_leftovers(tree)
        return code

    def _tree_with_start_times(self) -> dict[int, int]:
        out = {}
        for pid in self.pids()[1:]:
            st = _proc_stat(pid)
            if st is not None:
                out[pid] = int(st[19])  # starttime: a recycled pid has another
        return out

    @staticmethod
    def _reap_leftovers(tree: dict[int, int]) -> None:
        def alive() -> list[int]:
            live = []
            for pid, start in tree.items():
                st = _proc_stat(pid)
                if st is not None and int(st[19]) == start and st[0] != "Z":
                    live.append(pid)
            return live

        for sig in (signal.SIGTERM, signal.SIGKILL):
            left = alive()
            if not left:
                return
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 5
            while alive() and time.monotonic() < deadline:
                time.sleep(0.05)

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


# --------------------------------------------------------------------------- process trees


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 = state, 1 = ppid, 11/12 =
    utime/stime, 13/14 = cutime/cstime, 19 = starttime), or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    """Child pids: /proc/<pid>/task/*/children where the kernel has it (CONFIG_PROC_CHILDREN),
    else every /proc/<n>/stat whose ppid is ``pid``."""
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tasks = list(task_dir.iterdir())
    except OSError:
        return []
    if tasks and (tasks[0] / "children").exists():
        kids: list[int] = []
        for t in tasks:
            with contextlib.suppress(OSError):
                kids += [int(x) for x in (t / "children").read_text().split()]
        return kids
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _proc_stat(int(entry.name))
            if st is not None and int(st[1]) == pid:
                out.append(int(entry.name))
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, parents before children."""
    if _proc_stat(pid) is None:
        return []
    tree = [pid]
    i = 0
    while i < len(tree):
        tree += _children(tree[i])
        i += 1
    return tree


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds (user + system, all threads) so far of each process of the tree, each
    including its waited-for children that exited (cutime + cstime), so a worker that exits
    between two readings still counts."""
    out = {}
    for p in process_tree(pid):
        st = _proc_stat(p)
        if st is not None:
            out[p] = sum(int(st[k]) for k in (11, 12, 13, 14)) / CLK_TCK
    return out


def _tcp_table() -> list[list[str]]:
    rows = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name, encoding="ascii") as f:
                next(f)
                rows += [ln.split() for ln in f]
        except OSError:
            pass
    return rows


def listening_sockets(port: int) -> list[int]:
    """Inodes of the TCP sockets listening on ``port`` (one per process with SO_REUSEPORT)."""
    return [
        int(r[9]) for r in _tcp_table() if r[3] == "0A" and int(r[1].rsplit(":", 1)[1], 16) == port
    ]


def connections_by_process(pids: list[int], port: int) -> dict[int, int]:
    """Established TCP connections accepted on ``port`` that each process holds (how the
    kernel spread a load generator's connections over SO_REUSEPORT processes)."""
    inodes = {
        int(r[9]) for r in _tcp_table() if r[3] == "01" and int(r[1].rsplit(":", 1)[1], 16) == port
    }
    out = {}
    for pid in pids:
        n = 0
        try:
            for fd in os.scandir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(fd.path)
                except OSError:
                    continue
                if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                    n += 1
        except OSError:
            pass
        out[pid] = n
    return out


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


# --------------------------------------------------------------------------- report


def write_section(path: Path, name: str, report: str, *, heading: str, intro: str = "") -> None:
    """Put ``report`` between the ``<!-- name:begin -->`` / ``<!-- name:end -->`` markers of
    ``path`` (docs/PERFORMANCE.md); the text outside them is kept. When the markers are not
    there yet, the section is appended under ``heading`` (and ``intro``)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{report.rstrip(chr(10))}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Performance\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        lead = f"{intro}\n\n" if intro else ""
        text = text.rstrip("\n") + f"\n\n{heading}\n\n{lead}{block}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far of the threads of ``pid`` by name (``main``: the event loop; the
    SQLite writer, the HTTP client's threads), from /proc/<pid>/task."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = "main" if task.name == str(pid) else (task / "comm").read_text().strip()
            st = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = out.get(name, 0.0) + (int(st[11]) + int(st[12])) / CLK_TCK
        if name == "main":  # of which in the kernel (system calls: sockets, wake-ups)
            out["main, kernel"] = int(st[12]) / CLK_TCK
    return out
