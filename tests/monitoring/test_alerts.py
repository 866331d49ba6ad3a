"""The shipped Prometheus alert rules parse, cover what the issue asks for, and only name
metrics of the catalogue; ``promtool check rules`` runs too when it is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib.resources import files

import yaml

from monitoring.metrics import METRICS

RULES = files("monitoring").joinpath("alerts.yaml")


def test_alert_rules_parse_and_name_only_catalogued_metrics() -> None:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    rules = [r for g in doc["groups"] for r in g["rules"]]
    names = {m.name for m in METRICS}
    seen: set[str] = set()
    for r in rules:
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r
        assert r["alert"].startswith("Jghub") and r["labels"]["severity"] in {"warning", "critical"}
        assert re.fullmatch(r"\d+[smh]", r["for"]), r["for"]
        used = set(re.findall(r"\bjghub_[a-z0-9_]+", r["expr"]))
        assert used and used <= names, (r["alert"], used - names)
        assert r["expr"].count("(") == r["expr"].count(")")
        seen |= used
    # queue age, dead-letter growth, circuit open, overdue deadlines, certificate expiry
    for wanted in (
        "jghub_queue_oldest_due_age_seconds",
        "jghub_deliveries_total",
        "jghub_circuit_state",
        "jghub_12345_orders_overdue",
        "jghub_sharing_applications_overdue",
        "jghub_certificate_expiry_days",
    ):
        assert wanted in seen, wanted


def test_promtool_accepts_the_rules_when_installed() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        # the parse test above stands in; promtool comes with Debian's prometheus package
        assert RULES.is_file()
        return
    out = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
