"""Ingest worker processes of one node (``jghub serve --workers N``).

Python runs one thread of Python code at a time, so one process uses one core. With
``--workers N`` the node process starts N-1 more ``jghub serve --ingest-only`` processes on the
same port (``SO_REUSEPORT``: the kernel spreads connections over them). They accept, validate
and commit to the same store, and the node's dispatcher delivers at once: on SQLite (one file;
its write lock orders them, each still group-commits) they ring the node's doorbell; on
PostgreSQL each commit sends NOTIFY, which the node LISTENs to. Only the node process delivers.
A worker that dies is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["IngestWorkers"]

log = logging.getLogger("jghub.workers")


_PR_SET_PDEATHSIG = 1
# Loaded here, not in the child: between fork and exec only async-signal-safe calls are safe.
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _die_with_parent(parent: int) -> Callable[[], None]:
    """For the child before exec: get SIGTERM when the node process dies, even by SIGKILL, so
    no orphan keeps accepting on the port (and exit if the node died before that was set)."""

    def arm() -> None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)

    return arm


class IngestWorkers:
    """Starts, watches and stops the extra ingest processes."""

    def __init__(self, config: Path, host: str, port: int, count: int) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.count = count
        self._procs: list[asyncio.subprocess.Process | None] = [None] * count
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def _argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "hub.cli",
            "serve",
            "--config",
            str(self.config),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--ingest-only",
        ]

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._keep(i)) for i in range(self.count)]

    async def _keep(self, i: int) -> None:
        delay = 0.5
        while not self._stopping:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self._argv(), preexec_fn=_die_with_parent(os.getpid())
                )
            except Exception:
                log.exception("could not start ingest worker %d; trying again", i + 1)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self._procs[i] = proc
            log.info("ingest worker %d started (pid %d)", i + 1, proc.pid)
            code = await proc.wait()
            if self._stopping:
                return
            log.warning("ingest worker %d exited with %s; starting it again", i + 1, code)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def stop(self) -> None:
        self._stopping = True
        for proc in self._procs:
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        for proc in self._procs:
            if proc is None:
                continue
            try:
                await asyncio.wait_for(proc.wait(), timeout=10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
