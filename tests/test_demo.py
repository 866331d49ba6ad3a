"""The README's first command: ``jghub demo --once`` runs the whole scenario on the examples/
configuration, through every example system, and exits 0 only when every acknowledged record
reached every target it was routed to."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

JGHUB = str(Path(sys.executable).parent / "jghub")


def test_demo_once_delivers_everything_and_summarises(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    run = subprocess.run(
        [JGHUB, "demo", "--once", "--records", "600", "--workdir", str(work)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = run.stdout
    assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]
    assert "check: every acknowledged record applied at every target it was routed to: yes" in out
    # it ran the example files, copied into the work folder
    examples = Path(__file__).resolve().parent.parent / "examples"
    assert (work / "hub.yaml").read_bytes() == (examples / "hub.yaml").read_bytes()
    assert (work / "systems" / "tzxm.yaml").exists()
    # the summary table has one row per route and target, every example source included
    for route, target in [
        ("scjg-inspections", "national"),
        ("scjg-inspections", "archive"),
        ("zjj-inspections", "national"),
        ("wjw-inspections", "national"),
        ("yjj-inspections", "archive"),
        ("approvals-archive", "archive"),
        ("approvals-zjj", "dept-zjj"),
        ("approvals-scjg", "dept-scjg"),
    ]:
        assert re.search(rf"^{route}\s+{target}\s+[1-9][\d,]*\s+[1-9]", out, re.M), (route, out)
    # per-source lines: accepted, rejected and quarantined, duplicates
    lines = {
        m[0]: m
        for m in re.findall(
            r"^source (\S+)\s+([\d,]+) accepted,\s+(\d+) rejected"
            r" and quarantined,\s+(\d+) duplicates",
            out,
            re.M,
        )
    }
    assert set(lines) == {"dept-scjg", "dept-zjj", "dept-wjw", "dept-yjj", "tzxm"}
    assert lines["dept-scjg"][2:] == ("3", "100")  # records 550 / 580 / 590; the re-sent batch
    assert lines["dept-zjj"][2:] == ("1", "9")  # the re-sent SOAP call (1 of its 10 refused)
    assert all(v[2] == "1" for k, v in lines.items() if k != "dept-scjg")
    # rejections named the field; the quarantine's reasons are shown per source
    assert "E_MAPPING inspection_result" in out and "E_MAPPING inspection_time" in out
    assert "dept-zjj  E_SCHEMA  [region_code]" in out
    assert "dept-yjj  E_MAPPING [inspection_result]" in out
    assert "tzxm      E_MAPPING [supervising_departments]" in out
    assert "the hub recognised 100 records by their Idempotency-Key" in out
    assert "answered replaced=[0]" in out
    # the staging rows were marked, the batch file taken whole
    assert "rows marked ZT='Y', 1 refused (ZT='E'" in out
    assert "taken whole: 29 committed, 1 rejected" in out
    assert (work / "data" / "drop" / "dept-yjj" / "done" / "20240301.csv").exists()
    # approvals reached the supervising departments over SOAP and HTTP JSON
    assert re.search(r"target dept-zjj : applied [1-9]\d* records exactly once", out)
    assert re.search(r"target dept-scjg: applied [1-9]\d* records exactly once", out)
    # the outage opened the circuit, and dead letters were replayed
    assert "circuit to national opened" in out and "opened 0 time(s)" not in out
    assert "dead letters: national refused region 330106" in out
    assert "replayed" in out and "[delivered]" in out
    # the national connector's flow, against the national simulator, in its own hub
    national = [m for m in out.splitlines() if m.startswith("national connector: ")]
    assert national == [
        "national connector: catalog pushed (item: national version): "
        "{'33000000000000': 2, '33000000000001': 2, '33000000000002': 2}",
        "national connector: 监管行为 accepted by the nation: {'jcxw': 40, 'xtjg': 6, 'xzcf': 10}",
        national[2],
        "national connector: 对账 2024-03-01: clean",
    ]
    assert re.fullmatch(
        r"national connector: risk warning GJXF\d+ routed to \['dept-a'\], acknowledged: True, "
        r"feedback sent: 1",
        national[2],
    )
    assert (
        "check: national connector (catalog in order, 监管行为 accepted, warning routed and "
        "acknowledged, 对账 clean): yes" in out
    )
    assert (work / "national" / "hub.yaml").exists()
    # the data sharing flow, in its own hub on a copy of examples/sharing
    assert re.search(r"^check: data sharing \(.*\): yes$", out, re.M), out[-3000:]
    assert "data sharing: fields=license_no,phone: 403 E_FIELD_NOT_GRANTED" in out
    assert (work / "sharing" / "config" / "data" / "hub.db").exists()
