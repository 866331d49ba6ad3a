"""The credit flow the demo runs, end to end on loopback."""

from __future__ import annotations

from pathlib import Path

from adapters.credit.demo import run_credit_flow


async def test_the_credit_flow_runs(tmp_path: Path) -> None:
    report = await run_credit_flow(tmp_path)
    assert report.penalty_receipt.startswith("XYHZ") and report.licence_receipt.startswith("XYHZ")
    assert report.overdue_note.startswith("公示超期") and report.overdue_metric == 1
    assert report.entry_reached == ["credit-registry", "dept-zjj"]
    assert report.status["listed"] is True and report.status["advice"] == "punish"
    assert [a["entry_id"] for a in report.status["active"]] == [report.entry_id]
    assert report.feedback_receipt.startswith("XYHZ") and report.feedback_at_platform == 1
    assert report.ok
    lines = report.lines()
    assert len(lines) == 5 and "NOT FLAGGED" not in lines[1] and "惩戒" in lines[3]
    # the hub ran on SQLite in the work folder, with the keys written there
    assert (tmp_path / "data" / "hub.db").exists() and (tmp_path / "keys").is_dir()


async def test_a_flow_that_cannot_run_is_not_ok(tmp_path: Path) -> None:
    """The summary of an empty run says what is missing instead of claiming success."""
    from adapters.credit.demo import CreditFlowReport

    report = CreditFlowReport()
    assert not report.ok
    assert "NOT FLAGGED" in report.lines()[1] and "receipt -" in report.lines()[0]
