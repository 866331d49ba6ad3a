"""The data sharing flow ``jghub demo`` runs (hub/sharing/demo.py): on the example
configuration every check holds; on a catalog that forgets to mask the legal representative
the flow notices and reports it (its checks can fail)."""

from __future__ import annotations

import shutil
from pathlib import Path

from hub.sharing.demo import EXAMPLE_DIR, run_sharing_flow


async def test_the_sharing_flow_holds_on_the_example(tmp_path: Path) -> None:
    report = await run_sharing_flow(tmp_path / "sharing")
    lines = report.lines()
    assert report.ok, "\n".join(lines)
    assert report.finished and len(report.checks) == 16
    assert not any(line.startswith("NOT HELD") for line in lines)
    text = "\n".join(lines)
    for fact in (
        "3 licences accepted",
        "受理",
        "403 E_GRANT",
        "403 E_FIELD_NOT_GRANTED",
        "403 E_NOT_SHARABLE",
        "equal to the bytes received",
        "signature verified",
        "legal_person arrives masked: 张*",
    ):
        assert fact in text, (fact, text)
    # the hub's files are in the flow's own folder, from a copy of the example
    assert (tmp_path / "sharing" / "config" / "data" / "hub.db").exists()
    assert (tmp_path / "sharing" / "config" / "hub.yaml").read_text() == (
        EXAMPLE_DIR / "hub.yaml"
    ).read_text()


async def test_the_flow_reports_a_legal_representative_shown_in_clear(tmp_path: Path) -> None:
    example = tmp_path / "example"
    shutil.copytree(EXAMPLE_DIR, example)
    dataset = example / "datasets" / "licenses.yaml"
    text = dataset.read_text("utf-8")
    masked = "description: 法定代表人, sensitivity: sensitive, mask: name}"
    assert masked in text
    dataset.write_text(text.replace(masked, "description: 法定代表人}"), "utf-8")
    report = await run_sharing_flow(tmp_path / "sharing", example=example)
    assert not report.ok
    failed = [line for line in report.lines() if line.startswith("NOT HELD")]
    assert any("legal_person masked" in line for line in failed), failed
    assert any("legal_person arrives masked: 张伟" in line for line in failed), failed
    # what did not depend on the mask still held
    assert any("E_NOT_SHARABLE" in f and held for f, held in report.checks)
