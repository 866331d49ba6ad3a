"""The ``jghub`` command line: in-process with typer's CliRunner, and as a real subprocess.

The SQLite files the CLI reads are written by a real hub delivering to a real sink first.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from contracts.samples import sample_inspection
from hub import __version__
from hub.cli import app
from hub.peers.sink import Sink, SinkBehaviour
from hub.runtime import Hub
from tests.helpers import config, wait_until, write_config

BLOCKED = "330106"


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def jghub_exe() -> str:
    beside = Path(sys.executable).parent / "jghub"
    found = str(beside) if beside.exists() else shutil.which("jghub")
    assert found, "the jghub console script is not installed"
    return found


def subprocess_jghub(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [jghub_exe(), *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


@dataclass
class Ran:
    """A hub folder whose SQLite file holds delivered messages and dead letters."""

    hub_yaml: Path
    db: Path
    delivered: list[str]
    dead: dict[int, str]  # delivery id -> message id

    def states(self) -> dict[int, int]:
        with closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as conn:
            return dict(conn.execute("SELECT id, state FROM deliveries").fetchall())


async def _run_hub(tmp: Path) -> Ran:
    sink = Sink("national", SinkBehaviour(reject=_refuse_blocked))
    await sink.start()
    try:
        cfg = config(tmp, {"national": {"url": sink.url}})
        async with Hub(cfg) as hub:
            good = await hub.ingest_records("dept-a", [sample_inspection(i) for i in range(2)])
            bad = await hub.ingest_records(
                "dept-a", [sample_inspection(i, region=BLOCKED) for i in range(10, 13)]
            )
            await wait_until(lambda: len(sink.applied) == 2, timeout=10, what="2 delivered")

            async def three_dead() -> bool:
                return len(await hub.store.dead_letters()) == 3

            await wait_until(three_dead, timeout=10, what="3 dead letters")
            dead = {d.delivery_id: d.message_id for d in await hub.store.dead_letters()}
        assert set(dead.values()) == set(bad.ids)
        return Ran(tmp / "hub.yaml", cfg.store_path(), good.ids, dead)
    finally:
        await sink.stop()


def _refuse_blocked(record: dict[str, Any]) -> str | None:
    return f"unknown region {record['region_code']}" if record["region_code"] == BLOCKED else None


@pytest.fixture
def ran(tmp_path: Path) -> Ran:
    return asyncio.run(_run_hub(tmp_path))


# --------------------------------------------------------------------------- check

NATIONAL_TYPO = """\
name: national
adapter: json
outbound:
  transport: http_json
  url: http://127.0.0.1:9/records
  timout: 3
"""


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0 and result.stdout == f"jghub {__version__}\n"


def test_no_arguments_shows_help_and_usage_exit() -> None:
    result = run()
    assert result.exit_code == 2 and "check" in result.output and "dlq" in result.output


def test_check_valid_hub_and_system_files(tmp_path: Path) -> None:
    hub_yaml = write_config(tmp_path, {"national": {"url": "http://127.0.0.1:9/records"}})
    systems = sorted((tmp_path / "systems").glob("*.yaml"))
    result = run("check", hub_yaml, *systems)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"ok   {f}" for f in [hub_yaml, *systems]]
    assert result.stderr == ""


def test_check_reports_typo_with_file_line_and_allowed_keys(tmp_path: Path) -> None:
    hub_yaml = write_config(tmp_path, {"national": {"url": "http://127.0.0.1:9/records"}})
    national = tmp_path / "systems" / "national.yaml"
    national.write_text(NATIONAL_TYPO, encoding="utf-8")
    dept_a = tmp_path / "systems" / "dept-a.yaml"
    result = run("check", dept_a, national, hub_yaml)
    assert result.exit_code == 1
    assert f"ok   {dept_a}" in result.stdout
    typo = f"{national}:6 outbound.timout: unknown key; allowed: transport, url, batch_size"
    keys = "concurrency, timeout, headers, token, sign, tls, client"
    # the system file alone, and the hub file that loads it, both point at the typo
    assert result.stderr.splitlines() == [
        f"FAIL E_CONFIG {typo}, {keys}",
        f"FAIL E_CONFIG {hub_yaml}: {typo}, {keys}",
        "2 of 3 files invalid",
    ]


def test_check_unknown_adapter_lists_registered(tmp_path: Path) -> None:
    sysfile = tmp_path / "dept-x.yaml"
    sysfile.write_text("name: dept-x\nadapter: jsno\n", encoding="utf-8")
    result = run("check", sysfile)
    assert result.exit_code == 1
    assert "FAIL E_PLUGIN" in result.stderr and "unknown adapter 'jsno'" in result.stderr
    assert "registered: " in result.stderr
    assert "json" in result.stderr.split("registered: ")[1].split(" (field")[0].split(", ")


def test_check_missing_file(tmp_path: Path) -> None:
    result = run("check", tmp_path / "nope.yaml")
    assert result.exit_code == 1
    assert f"FAIL E_CONFIG {tmp_path / 'nope.yaml'}: cannot read" in result.stderr


# --------------------------------------------------------------------------- trace


def test_trace_prints_the_steps(ran: Ran) -> None:
    mid = ran.delivered[0]
    result = run("trace", mid, "-c", ran.hub_yaml)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"message  {mid}  [delivered]")
    steps = [line.split()[2] for line in lines if line[:2] == "20"]  # lines starting with a date
    assert steps == ["received", "accepted", "delivered"]
    assert "-> national" in result.stdout and "status 200" in result.stdout


def test_trace_json(ran: Ran) -> None:
    did, mid = next(iter(ran.dead.items()))
    result = run("trace", mid, "--config", ran.hub_yaml, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["id"] == mid and doc["status"] == "dead-lettered"
    assert doc["deliveries"][0]["delivery_id"] == did
    assert [s["step"] for s in doc["trace"]][-1] == "dead-lettered"
    assert doc["payload"]["region_code"] == BLOCKED


def test_trace_unknown_id(ran: Ran) -> None:
    result = run("trace", "no-such-message", "-c", ran.hub_yaml)
    assert result.exit_code == 1
    assert "E_NOT_FOUND" in result.stderr and "'no-such-message'" in result.stderr


def test_trace_without_database_does_not_create_one(tmp_path: Path) -> None:
    hub_yaml = write_config(tmp_path, {})
    result = run("trace", "x", "-c", hub_yaml)
    assert result.exit_code == 1 and "E_NOT_FOUND" in result.stderr
    assert "no hub database" in result.stderr
    assert not (tmp_path / "data").exists()


def test_config_error_exits_1(tmp_path: Path) -> None:
    result = run("dlq", "list", "-c", tmp_path / "missing.yaml")
    assert result.exit_code == 1 and result.stderr.startswith("E_CONFIG")


# --------------------------------------------------------------------------- dlq


def test_dlq_list(ran: Ran) -> None:
    result = run("dlq", "list", "-c", ran.hub_yaml)
    assert result.exit_code == 0, result.output
    for did, mid in ran.dead.items():
        assert any(
            line.split()[0] == str(did) and mid in line for line in result.stdout.splitlines()
        )
    assert result.stdout.count(f"unknown region {BLOCKED}") == 3

    as_json = json.loads(run("dlq", "list", "-c", ran.hub_yaml, "--json").stdout)
    assert {d["delivery_id"]: d["message_id"] for d in as_json} == ran.dead
    assert all(d["last_status"] == 422 and d["target"] == "national" for d in as_json)

    limited = json.loads(run("dlq", "list", "-c", ran.hub_yaml, "--json", "--limit", "1").stdout)
    assert len(limited) == 1
    other = run("dlq", "list", "-c", ran.hub_yaml, "--target", "elsewhere")
    assert other.exit_code == 0 and other.stdout == "no dead letters\n"


def test_dlq_show(ran: Ran) -> None:
    did, mid = next(iter(ran.dead.items()))
    result = run("dlq", "show", str(did), "-c", ran.hub_yaml)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"dead letter {did}: {mid} → national after 1 attempt(s)")
    assert "reason: permanent error 422: " in result.stdout
    assert f"unknown region {BLOCKED}" in result.stdout
    payload = json.loads(result.stdout.split("payload:\n", 1)[1])
    assert payload["region_code"] == BLOCKED

    missing = run("dlq", "show", "987654", "-c", ran.hub_yaml)
    assert missing.exit_code == 1 and "E_NOT_FOUND" in missing.stderr
    assert run("dlq", "show", "abc", "-c", ran.hub_yaml).exit_code == 2


def test_dlq_replay_one(ran: Ran) -> None:
    did = min(ran.dead)
    result = run("dlq", "replay", str(did), "-c", ran.hub_yaml)
    assert result.exit_code == 0, result.output
    assert result.stdout == "replayed 1 dead letter(s)\n"
    states = ran.states()
    assert states[did] == 0  # PENDING again, for a running hub to pick up
    assert sorted(s for d, s in states.items() if d in ran.dead and d != did) == [3, 3]
    doc = json.loads(run("trace", ran.dead[did], "-c", ran.hub_yaml, "--json").stdout)
    assert [s["step"] for s in doc["trace"]][-2:] == ["dead-lettered", "replayed"]

    again = run("dlq", "replay", str(did), "-c", ran.hub_yaml)
    assert again.exit_code == 1
    assert "replayed 0 dead letter(s)" in again.stdout
    assert "1 id(s) were not dead letters" in again.stderr


def test_dlq_replay_all_then_a_running_hub_delivers(ran: Ran, tmp_path: Path) -> None:
    none = run("dlq", "replay", "--all", "--target", "elsewhere", "-c", ran.hub_yaml)
    assert none.exit_code == 0 and none.stdout == "replayed 0 dead letter(s)\n"
    result = run("dlq", "replay", "--all", "-c", ran.hub_yaml)
    assert result.exit_code == 0, result.output
    assert result.stdout == "replayed 3 dead letter(s)\n"
    assert run("dlq", "list", "-c", ran.hub_yaml).stdout == "no dead letters\n"

    async def deliver_replayed() -> set[str]:
        sink = Sink("national")  # the target fixed its code table
        await sink.start()
        try:
            cfg = config(tmp_path, {"national": {"url": sink.url}})
            async with Hub(cfg):
                await wait_until(lambda: len(sink.applied) == 3, timeout=10, what="replayed")
            return set(sink.applied)
        finally:
            await sink.stop()

    assert asyncio.run(deliver_replayed()) == set(ran.dead.values())


def test_dlq_replay_usage_errors(ran: Ran) -> None:
    nothing = run("dlq", "replay", "-c", ran.hub_yaml)
    assert nothing.exit_code == 2 and "give dead letter ids or --all" in nothing.stderr
    both = run("dlq", "replay", str(min(ran.dead)), "--all", "-c", ran.hub_yaml)
    assert both.exit_code == 2
    assert all(s == 3 for d, s in ran.states().items() if d in ran.dead)  # nothing replayed


def test_dlq_discard(ran: Ran) -> None:
    did = max(ran.dead)
    result = run("dlq", "discard", str(did), "--reason", "sent by mistake", "-c", ran.hub_yaml)
    assert result.exit_code == 0, result.output
    assert result.stdout == "discarded 1 dead letter(s)\n"
    assert ran.states()[did] == 4  # DISCARDED
    doc = json.loads(run("trace", ran.dead[did], "-c", ran.hub_yaml, "--json").stdout)
    assert doc["trace"][-1]["step"] == "discarded"
    assert doc["trace"][-1]["detail"] == "sent by mistake"

    again = run("dlq", "discard", str(did), "--reason", "x", "-c", ran.hub_yaml)
    assert again.exit_code == 1 and "1 id(s) were not dead letters" in again.stderr
    no_reason = run("dlq", "discard", str(min(ran.dead)), "-c", ran.hub_yaml)
    assert no_reason.exit_code == 2
    assert ran.states()[min(ran.dead)] == 3


# --------------------------------------------------------------------------- subprocess


def test_console_script_version_check_and_dlq(ran: Ran, tmp_path: Path) -> None:
    version = subprocess_jghub("--version")
    assert version.returncode == 0 and version.stdout == f"jghub {__version__}\n"

    typo = tmp_path / "national-typo.yaml"
    typo.write_text(textwrap.dedent(NATIONAL_TYPO), encoding="utf-8")
    check = subprocess_jghub("check", typo)
    assert check.returncode == 1
    assert f"FAIL E_CONFIG {typo}:6 outbound.timout: unknown key; allowed: " in check.stderr

    listed = subprocess_jghub("dlq", "list", "--json", "-c", ran.hub_yaml)
    assert listed.returncode == 0, listed.stderr
    assert {d["delivery_id"] for d in json.loads(listed.stdout)} == set(ran.dead)

    missing = subprocess_jghub("trace", "no-such-message", "-c", ran.hub_yaml)
    assert missing.returncode == 1 and "E_NOT_FOUND" in missing.stderr
