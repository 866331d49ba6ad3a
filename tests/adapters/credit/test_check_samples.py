"""``jghub check`` on the credit platform's configuration: the hub file and every system file
are valid, each system's valid samples pass, and each invalid sample is reported with its
stable code and field (exit 1)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from adapters.credit.demo import EXAMPLE
from hub.cli import app

HUB = EXAMPLE / "hub.yaml"
SYSTEMS = ["credit", "dept-amr", "dept-zjj"]


def _check(*args: object) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["check", *(str(a) for a in args)])
    return res.exit_code, res.output


def test_the_hub_and_system_files_are_valid() -> None:
    files = [HUB, *sorted((EXAMPLE / "systems").glob("*.yaml"))]
    code, out = _check(*files)
    assert code == 0, out
    assert out.count("ok   ") == 5


@pytest.mark.parametrize("system", SYSTEMS)
def test_valid_samples_pass(system: str) -> None:
    code, out = _check(
        EXAMPLE / "systems" / f"{system}.yaml", "--samples", EXAMPLE / "samples" / system, "-c", HUB
    )
    assert code == 0, out
    assert "FAIL" not in out and " sample records ok" in out


#: (system, sample file, the code and field reported)
EXPECTED = [
    ("dept-amr", "credit_penalty/uscc-checksum.json", "E_SCHEMA [counterpart_uscc]"),
    ("dept-amr", "credit_penalty/id-checksum.json", "E_SCHEMA [legal_rep_cert_no]"),
    ("dept-amr", "credit_penalty/unknown-penalty-category.json", "E_SCHEMA [penalty_category]"),
    ("dept-amr", "credit_penalty/unknown-counterpart-category.json",
     "E_MAPPING [counterpart_category]"),
    ("dept-amr", "credit_penalty/missing-violation-facts.json", "E_SCHEMA [violation_facts]"),
    ("dept-amr", "credit_penalty/correction-without-reason.json", "change_reason (更正/撤销原因)"),
    ("dept-amr", "credit_licence/unknown-licence-category.json", "E_SCHEMA [licence_category]"),
    ("dept-amr", "credit_licence/unknown-certificate-type.json",
     "E_MAPPING [legal_rep_cert_type]"),
    ("dept-amr", "credit_licence/authority-uscc.json", "E_SCHEMA [authority_code]"),
    ("dept-zjj", "unknown-measure-kind.json", "E_MAPPING [measure_kind]"),
    ("dept-zjj", "subject-uscc.json", "E_SCHEMA [subject_uscc]"),
    ("credit", "list-entries.json #0", "E_MAPPING [list_type]"),
    ("credit", "list-entries.json #1", "subject_uscc (统一社会信用代码) is required"),
    ("credit", "list-entries.json #2", "E_MAPPING [listed_on]"),
]  # fmt: skip


@pytest.mark.parametrize("system", SYSTEMS)
def test_invalid_samples_are_reported_with_codes(system: str) -> None:
    code, out = _check(
        EXAMPLE / "systems" / f"{system}.yaml", "--samples", EXAMPLE / "invalid" / system, "-c", HUB
    )
    assert code == 1
    fails = [line for line in out.splitlines() if line.startswith("FAIL ")]
    wanted = [(f, says) for s, f, says in EXPECTED if s == system]
    assert len(fails) == len(wanted), out
    for sample, says in wanted:
        assert any(sample in line and says in line for line in fails), (sample, says, out)
    assert "0 of" in out  # no invalid sample slipped through
