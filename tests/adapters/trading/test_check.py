"""``jghub check`` on the trading platform's example configuration: the system files pass,
the valid samples map to canonical records, and each invalid sample is reported with its
code and element or field (XSD failure, bad USCC check character, missing attachment
checksum, wrong namespace, XXE)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from adapters.trading.demo import EXAMPLE_DIR, write_keys
from hub.cli import app

HUB = EXAMPLE_DIR / "hub.yaml"
SYSTEM = EXAMPLE_DIR / "systems" / "trading.yaml"
DEPARTMENTS = sorted(p for p in (EXAMPLE_DIR / "systems").glob("*.yaml") if p != SYSTEM)


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def test_the_hub_file_and_every_system_file_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_keys(tmp_path / "keys")  # the hub file names key files; real ones are needed
    monkeypatch.setenv("TRADING_KEYS", str(tmp_path / "keys"))
    monkeypatch.setenv("TRADING_HUB_DB", str(tmp_path / "hub.db"))
    r = run("check", HUB, SYSTEM, *DEPARTMENTS, "-c", HUB)
    assert r.exit_code == 0, r.output
    assert r.output.count("ok   ") == 2 + len(DEPARTMENTS) == 6


def test_the_hub_file_without_its_keys_fails_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADING_KEYS", str(tmp_path / "nowhere"))
    r = run("check", HUB)
    assert r.exit_code == 1
    assert "E_CONFIG" in r.output and "keys.own" in r.output


def test_the_valid_samples_pass() -> None:
    r = run("check", SYSTEM, "--samples", EXAMPLE_DIR / "samples" / "trading", "-c", HUB, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output[r.output.index("{") :])
    assert doc["ok"] is True
    by_ds: dict[str, list[dict[str, object]]] = {}
    for rec in doc["records"]:
        by_ds.setdefault(str(rec["dataset"]), []).append(rec["canonical"])
    assert sorted(by_ds) == [
        "trading_announcement", "trading_award", "trading_bid_opening", "trading_project",
    ]  # fmt: skip
    types = sorted(str(a["project_type"]) for a in by_ds["trading_award"])
    assert types == ["engineering", "government_procurement"]
    # the default-namespace sample maps exactly like the prefixed ones
    cand = next(a for a in by_ds["trading_award"] if a["notice_kind"] == "candidates")
    assert len(cand["candidates"]) == 3  # type: ignore[arg-type]
    project = next(p for p in by_ds["trading_project"] if p["attachments"])
    assert project["attachments"][0]["size"] == 34  # type: ignore[index]


def test_the_invalid_samples_are_reported_with_their_codes() -> None:
    r = run("check", SYSTEM, "--samples", EXAMPLE_DIR / "samples" / "trading-invalid", "-c", HUB)
    assert r.exit_code == 1
    fails = {
        line.split("trading-invalid/", 1)[1].split(" #", 1)[0]: line
        for line in r.output.splitlines()
        if line.startswith("FAIL")
    }
    assert set(fails) == {
        "trading_award/bad-uscc-checksum.xml",
        "trading_award/missing-attachment-checksum.xml",
        "trading_award/wrong-namespace.xml",
        "trading_bid_opening/xxe.xml",
        "trading_project/xsd-missing-tenderer.xml",
    }
    assert "E_SCHEMA [winner.uscc]" in fails["trading_award/bad-uscc-checksum.xml"]
    assert "check character" in fails["trading_award/bad-uscc-checksum.xml"]
    missing = fails["trading_award/missing-attachment-checksum.xml"]
    assert "E_XSD [ZBJG/FJLB/FJ/DX]" in missing and "fj:SHA256" in missing and "line " in missing
    assert "E_XML_NAMESPACE" in fails["trading_award/wrong-namespace.xml"]
    assert "E_XML_UNSAFE" in fails["trading_bid_opening/xxe.xml"]
    assert "E_XSD [JYXM/ZBDL]" in fails["trading_project/xsd-missing-tenderer.xml"]
    assert "0 of 5 sample records ok" in r.output


def test_a_sample_under_the_wrong_dataset_is_refused(tmp_path: Path) -> None:
    """A 中标结果 filed as a 交易项目 lacks the root its rules read: E_MAPPING, required."""
    folder = tmp_path / "trading_project"
    folder.mkdir()
    shutil.copy(EXAMPLE_DIR / "samples" / "trading" / "trading_award" / "gc-result.xml", folder)
    r = run("check", SYSTEM, "--samples", tmp_path, "-c", HUB)
    assert r.exit_code == 1
    assert "E_MAPPING" in r.output and "project_code" in r.output
