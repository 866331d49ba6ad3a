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


async def test_the_demo_reports_a_national_flow_that_cannot_run(tmp_path: Path) -> None:
    """``jghub demo`` prints the failure and exits 1 (``_platform_flow`` says not ok) instead of
    crashing; the simulator and sinks it started are stopped again."""
    from hub.demo import _platform_flow

    (tmp_path / "file").write_text("not a folder")
    lines, ok = await _platform_flow(
        "adapters.national.demo", "run_national_flow", tmp_path / "file" / "national"
    )
    assert not ok and lines[0].startswith("FAILED: ")
