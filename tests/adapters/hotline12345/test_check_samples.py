"""``jghub check`` on the 12345 example: the hub file and systems load, the valid samples of
every dataset pass, and each invalid sample is reported with its code and field."""

from __future__ import annotations

import base64
import importlib
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from hub.cli import app

demo = importlib.import_module("adapters.12345.demo")
EX: Path = demo.EXAMPLE


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def lines_for(output: str, name: str) -> list[str]:
    return [x for x in output.splitlines() if f"/{name} #" in x]


def test_the_hub_file_and_systems_check(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HOTLINE12345_HUB_SECRET", "HOTLINE12345_PLATFORM_SECRET"):
        monkeypatch.setenv(var, base64.b64encode(os.urandom(32)).decode())
    r = run("check", EX / "hub.yaml", *sorted((EX / "systems").glob("*.yaml")))
    assert r.exit_code == 0, r.output
    assert r.output.count("ok ") == 5


def test_the_hub_file_needs_its_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOTLINE12345_HUB_SECRET", raising=False)
    monkeypatch.delenv("HOTLINE12345_PLATFORM_SECRET", raising=False)
    r = run("check", EX / "hub.yaml")
    assert r.exit_code == 1 and "E_CONFIG" in r.output and "HOTLINE12345_" in r.output


@pytest.mark.parametrize("system", ["platform-12345", "dept-scjg"])
def test_valid_samples_pass(system: str) -> None:
    r = run(
        "check", EX / "systems" / f"{system}.yaml", "--samples", EX / "samples" / system,
        "-c", EX / "hub.yaml",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "FAIL" not in r.output


def test_platform_samples_are_mapped_and_masked() -> None:
    r = run(
        "check", EX / "systems" / "platform-12345.yaml", "--samples",
        EX / "samples" / "platform-12345", "-c", EX / "hub.yaml",
    )  # fmt: skip
    assert "8 of 8 sample records ok" in r.output
    assert '"name": "王**"' in r.output and '"phone": "138****5678"' in r.output
    assert "13812345678" not in r.output and "王小明" not in r.output
    assert "内部备注不外传" not in r.output  # its internal fields are dropped
    assert '"category": "report"' in r.output and '"urgency": "life_property"' in r.output
    assert '"event": "reopen"' in r.output and '"previous_state": "evaluated"' in r.output


@pytest.mark.parametrize(
    ("system", "sample", "code", "field"),
    [
        ("platform-12345", "bad-region.json", "E_SCHEMA", "[region_code]"),
        ("platform-12345", "checksum-mismatch.json", "E_ATTACHMENT_CHECKSUM",
         "[attachments.sha256]"),
        ("platform-12345", "checksum-md5.json", "E_SCHEMA", "[attachments.0.sha256]"),
        ("platform-12345", "unknown-category.json", "E_MAPPING", "[category]"),
        ("platform-12345", "dispatched-before-received.json", "E_SCHEMA", "[dispatched_at]"),
        ("platform-12345", "impossible-transition.json", "E_ORDER_STATE", "[previous_state]"),
        ("platform-12345", "reopen-without-reason.json", "E_SCHEMA", "[reason]"),
        ("platform-12345", "bad-time.json", "E_MAPPING", "[occurred_at]"),
        ("dept-scjg", "sign-after-close.json", "E_ORDER_STATE", "[previous_state]"),
        ("dept-scjg", "return-without-reason.json", "E_SCHEMA", "[reason]"),
        ("dept-scjg", "bad-department-code.json", "E_SCHEMA", "[department_code]"),
    ],
)  # fmt: skip
def test_invalid_samples_are_reported_with_codes(
    system: str, sample: str, code: str, field: str
) -> None:
    r = run(
        "check", EX / "systems" / f"{system}.yaml", "--samples",
        EX / "samples" / system / "invalid", "-c", EX / "hub.yaml",
    )  # fmt: skip
    assert r.exit_code == 1
    (line,) = lines_for(r.output, sample)
    assert line.startswith("FAIL") and f": {code} {field}" in line, line


def test_every_invalid_sample_fails() -> None:
    for system in ("platform-12345", "dept-scjg"):
        folder = EX / "samples" / system / "invalid"
        r = run("check", EX / "systems" / f"{system}.yaml", "--samples", folder)
        files = sorted(p.name for p in folder.rglob("*.json"))
        assert r.exit_code == 1
        assert f"0 of {len(files)} sample records ok" in r.output
