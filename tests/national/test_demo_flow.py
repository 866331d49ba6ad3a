"""The national flow the demo runs: catalog push, 监管行为 upload, a risk warning issued,
routed and answered, and a clean 对账 — end to end on loopback."""

from __future__ import annotations

from pathlib import Path

from adapters.national.demo import run_national_flow


async def test_the_national_flow_runs_clean(tmp_path: Path) -> None:
    report = await run_national_flow(tmp_path)
    assert report.catalog_versions == {
        "33000000000000": 2,
        "33000000000001": 2,
        "33000000000002": 2,
    }
    assert report.behaviour_accepted == {"jcxw": 40, "xzcf": 10, "xtjg": 6}
    assert report.warning_routed_to == ["dept-a"] and report.warning_acknowledged
    assert report.feedback_received == 1
    assert report.reconciliation["clean"] is True
    counts = {d["dataset"]: d["ours_count"] for d in report.reconciliation["datasets"]}
    assert counts == {"jcxw": 40, "xzcf": 1, "xtjg": 6}
    assert report.ok and "clean" in report.lines()[-1]
