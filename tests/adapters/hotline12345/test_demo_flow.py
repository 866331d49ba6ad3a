"""The 12345 flow ``jghub demo`` runs: an order from the platform to a department and its
handling back, one impossible transition refused, one overdue order supervised."""

from __future__ import annotations

import importlib
from pathlib import Path

demo = importlib.import_module("adapters.12345.demo")


async def test_the_hotline_flow_runs(tmp_path: Path) -> None:
    report = await demo.run_hotline_flow(tmp_path)
    assert report.dispatched_status == 202 and report.dept_received
    assert report.requester_masked == "王** 138****5678"
    assert report.attachment_verified
    assert report.platform_actions == ["签收", "办理", "回复", "办结"]
    assert report.receipts == 4
    assert report.history == ["受理", "派单", "签收", "办理", "回复", "办结"]
    assert report.refused_code == "E_ORDER_STATE" and "state closed" in report.refused_detail
    assert report.overdue_metric == 1
    assert report.supervision_at_platform and report.supervision_at_department
    assert report.ok
    lines = report.lines()
    assert len(lines) == 5 and "签收 → 办理 → 回复 → 办结" in lines[1]
    assert (tmp_path / "data" / "hub.db").is_file()  # its own SQLite store in the work folder


def test_a_report_that_missed_a_step_is_not_ok() -> None:
    report = demo.HotlineFlowReport(
        dispatched_status=202,
        dept_received=True,
        attachment_verified=True,
        platform_actions=["签收", "办理", "回复"],  # 办结 never arrived
        receipts=3,
        refused_code="E_ORDER_STATE",
        overdue_metric=1,
        supervision_at_platform=True,
        supervision_at_department=True,
    )
    assert not report.ok
