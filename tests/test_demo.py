"""The README's first command: ``jghub demo --once`` runs the whole scenario and exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

JGHUB = str(Path(sys.executable).parent / "jghub")


def test_demo_once_delivers_everything_and_summarises(tmp_path: Path) -> None:
    run = subprocess.run(
        [JGHUB, "demo", "--once", "--records", "600", "--workdir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = run.stdout
    assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]
    assert "check: every acknowledged record applied at both targets: yes" in out
    # the summary table has one row per route and target
    assert "inspections-national   national-sim" in out
    assert "inspections-archive    archive-sim" in out
    # invalid records were refused with a code naming the field; a re-sent batch recognised
    assert "E_SCHEMA counterpart_code" in out or "E_SCHEMA counterpart_name" in out
    assert "the hub recognised 100 records by their Idempotency-Key" in out
    # the outage opened the circuit, and dead letters were replayed
    assert "circuit to national-sim opened" in out and "opened 0 time(s)" not in out
    assert "dead letters: national-sim refused region 330106" in out
    assert "replayed" in out and "[delivered]" in out
    assert (tmp_path / "demo" / "hub.yaml").exists()
