"""The trading flow the demo runs: a project, its announcement, bid opening and award result
flow in as signed XML; the award reaches the supervising department in its own schema; bad
documents are refused with their codes and nothing accepted is harmed."""

from __future__ import annotations

import os
from pathlib import Path

from adapters.trading.demo import run_trading_flow


async def test_the_trading_flow_runs_clean(tmp_path: Path) -> None:
    before = {k: v for k, v in os.environ.items() if k.startswith("TRADING_")}
    report = await run_trading_flow(tmp_path)
    assert set(report.accepted) == {
        "trading_project", "trading_announcement", "trading_bid_opening", "trading_award",
    }  # fmt: skip
    assert report.award_routed_to == {
        "JG-330106-2024-0001": ["zjj"],
        "JG-330106-2024-0002": ["czj"],
    }
    assert report.zjj_record["zbdwdm"] == "91330106813501902W"
    assert report.zjj_record["gslx"] == "中标结果公告"
    assert report.receipts == {
        "JG-330106-2024-0001": "HZ-zjj-000001",
        "JG-330106-2024-0002": "HZ-czj-000001",
    }
    assert report.attachments_verified == 2
    assert report.refused == {"missing_checksum": "E_XSD", "bad_uscc": "E_SCHEMA"}
    assert report.quarantined == 1 and report.unharmed and report.signatures_checked
    assert report.forged_push == "E_SIGNATURE"
    assert report.ok
    lines = report.lines()
    assert any("JG-330106-2024-0001 → ['zjj']" in line for line in lines)
    assert (tmp_path / "trading-hub.db").exists()
    # the variables the example files read were put back
    assert {k: v for k, v in os.environ.items() if k.startswith("TRADING_")} == before


async def test_a_report_with_a_wrong_route_is_not_ok(tmp_path: Path) -> None:
    report = await run_trading_flow(tmp_path)
    report.award_routed_to["JG-330106-2024-0001"] = ["zjj", "czj"]
    assert not report.ok
