"""``jghub top --once`` against a real ``jghub serve`` process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import orjson

from contracts.samples import sample_inspection
from hub.peers.sink import Sink
from monitoring.top import parse_frame, render
from tests.conftest import free_port
from tests.helpers import wait_until, write_config

JGHUB = str(Path(sys.executable).with_name("jghub"))


def _serve(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [JGHUB, "serve", "--config", str(cfg)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def _top(*args: str, token: str | None = None) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "JGHUB_TOKEN"}
    if token:
        env["JGHUB_TOKEN"] = token
    proc = await asyncio.create_subprocess_exec(
        JGHUB, "top", "--once", *args, env=env, stdout=-1, stderr=-1
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_top_once_shows_targets_systems_and_dead_letters(tmp_path: Path) -> None:
    sink = Sink("national")
    down = "http://127.0.0.1:9/never"  # nothing listens on the discard port: dead letters
    await sink.start()
    port = free_port()
    cfg = write_config(
        tmp_path,
        {"national": {"url": sink.url}, "city": {"url": down}},
        token="dept-token",
        port=port,
        retry={"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.02},
    )
    proc = _serve(cfg, tmp_path / "hub.log")
    url = f"http://127.0.0.1:{port}"
    try:

        async def ready() -> bool:
            try:
                async with aiohttp.ClientSession() as s, s.get(f"{url}/healthz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await wait_until(ready, timeout=30, what="hub up")
        headers = {"Authorization": "Bearer dept-token", "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as s:
            body = orjson.dumps([sample_inspection(i) for i in range(3)])
            async with s.post(f"{url}/v1/systems/dept-a/records", data=body, headers=headers) as r:
                assert r.status == 202, await r.text()

        async def three_dead() -> bool:
            code, out, err = await _top("--url", url, token="ops-token")
            assert code == 0, err
            return any(
                line.split()[:1] == ["city"] and line.split()[6] == "3" for line in out.splitlines()
            )

        await wait_until(three_dead, timeout=30, what="three dead letters for city")
        code, out, err = await _top("--config", str(cfg), token="ops-token")
        assert code == 0, err
        rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
        # TARGET HEALTH CIRCUIT PENDING INFL OLDEST DLQ DELIVERED RATE RETRIED TO-DLQ
        assert rows["national"][6:8] == ["0", "3"] and rows["national"][8] == "-"
        assert rows["city"][6] == "3" and rows["city"][10] == "3"
        assert rows["city"][1] in ("down", "degraded", "circuit_open")
        # SYSTEM ACCEPTED RATE REJECTED RATE DUPLICATE
        assert rows["dept-a"][1:] == ["3", "-", "0", "-", "0"]
        assert f"jghub top — {url}" in out
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        await sink.stop()
    # the hub is gone: E_UNREACHABLE, exit 1
    code, out, err = await _top("--url", url, token="ops-token")
    assert code == 1 and "E_UNREACHABLE" in err


def test_rates_come_from_two_frames() -> None:
    text1 = (
        'jghub_records_accepted_total{system="a",dataset="d"} 10\n'
        'jghub_queue_depth{target="t",state="pending"} 4\n'
    )
    text2 = text1.replace(" 10\n", " 30\n")
    first, second = parse_frame(text1, 100.0), parse_frame(text2, 102.0)
    assert "10.0/s" in render(second, first, "http://x")
    row = [ln for ln in render(first, None, "http://x").splitlines() if ln.startswith("a ")]
    assert row[0].split() == ["a", "10", "-", "0", "-", "0"]
