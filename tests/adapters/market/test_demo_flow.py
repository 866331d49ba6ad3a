"""The market flow the demo runs, end to end on loopback with the shipped configuration."""

from __future__ import annotations

from pathlib import Path

from adapters.market.demo import NEW_NAME, OLD_NAME, run_market_flow


async def test_the_market_flow_runs_clean(tmp_path: Path) -> None:
    report = await run_market_flow(tmp_path)
    assert report.registry_names == [OLD_NAME, NEW_NAME]
    assert report.old_name_refused == "E_MISMATCH" and report.new_name_accepted
    assert report.subject_history == 2
    assert report.task_routed_to == ["dept-a"]
    assert report.result_receipt.startswith("SCHZ")
    assert report.abnormal_seen == {"dept-a": ["list", "remove"], "dept-b": ["list", "remove"]}
    assert report.ok
    lines = report.lines()
    assert len(lines) == 4 and "refused E_MISMATCH" in lines[1]
    assert (tmp_path / "data" / "hub.db").exists()  # its own SQLite hub in the work folder


async def test_a_flow_that_cannot_finish_is_not_ok() -> None:
    from adapters.market.demo import MarketFlowReport

    partial = MarketFlowReport(registry_names=[OLD_NAME], old_name_refused="E_MISMATCH")
    assert not partial.ok
    assert "NOT accepted" in partial.lines()[1] and "none" in partial.lines()[2]
