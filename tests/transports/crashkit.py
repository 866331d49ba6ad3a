"""Run a real ``jghub serve`` for crash tests and read its store from outside."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp

JGHUB = str(Path(sys.executable).parent / "jghub")


def start_hub(cfg: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """Start ``jghub serve --config cfg [extra...]`` with its output appended to ``log``."""
    return subprocess.Popen(
        [JGHUB, "serve", "--config", str(cfg), *extra],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def ready(url: str) -> bool:
    """Whether the hub at ``url`` answers ``/readyz`` with 200 (False while it starts)."""
    try:
        async with aiohttp.ClientSession() as s, s.get(f"{url}/readyz") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False


def stop_hub(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM and wait; SIGKILL if it hangs. Returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return int(proc.returncode)


def message_counts(db: Path) -> tuple[int, int]:
    """(messages, distinct idempotency keys) in the hub's SQLite store; (0, 0) before it
    exists."""
    if not db.exists():
        return 0, 0
    conn = sqlite3.connect(db, timeout=30)
    try:
        n, keys = conn.execute("SELECT count(*), count(DISTINCT idem_key) FROM messages").fetchone()
        return int(n), int(keys)
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0, 0
    finally:
        conn.close()


def message_keys(db: Path) -> list[str]:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return [k for (k,) in conn.execute("SELECT idem_key FROM messages")]
    finally:
        conn.close()
