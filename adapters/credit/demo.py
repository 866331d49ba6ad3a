"""The credit flow the demo runs, on the configuration of ``examples/platforms/credit``
(copied into the work folder, with fresh keys): its own hub on SQLite, the credit platform
simulator and the housing bureau's inbox, everything over HTTP on loopback.

1. 双公示: the market supervision bureau (``dept-amr``) posts a penalty and a licence in its own
   schema; both reach the credit platform, mapped and signed, and come back with its receipts;
2. a penalty decided 30 days ago is disclosed too: it is accepted but flagged overdue (trace
   note 公示超期, ``jghub_credit_disclosures_overdue_total``);
3. the platform publishes a black-list entry (失信惩戒): pushed signed to the hub, routed to the
   housing bureau (``dept-zjj``) and into the hub's list registry;
4. 联合奖惩: the housing bureau asks the subject's status (listed, punish) and reports the
   measure it took; the feedback reaches the credit platform, signed.

``jghub demo`` calls :func:`run_credit_flow`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from adapters.common import (
    copy_example,
    free_port,
    load_with_environment,
    serving,
    started,
    until,
    write_trial_keys,
)

__all__ = ["EXAMPLE", "CreditFlowReport", "prepare_credit_setup", "run_credit_flow"]

_until = partial(until, flow="credit")

#: the example configuration the flow runs
EXAMPLE = Path(__file__).resolve().parent.parent.parent / "examples" / "platforms" / "credit"

_TOKENS = {"DEPT_AMR_TOKEN": "trial-token-dept-amr", "DEPT_ZJJ_TOKEN": "trial-token-dept-zjj"}


@dataclass
class CreditFlowReport:
    """What the credit flow did, for the demo's summary."""

    penalty_receipt: str = ""
    licence_receipt: str = ""
    overdue_decision: str = ""
    overdue_note: str = ""
    overdue_metric: float = 0.0
    entry_id: str = ""
    entry_reached: list[str] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    feedback_receipt: str = ""
    feedback_at_platform: int = 0

    @property
    def ok(self) -> bool:
        return (
            self.penalty_receipt.startswith("XYHZ")
            and self.licence_receipt.startswith("XYHZ")
            and "公示超期" in self.overdue_note
            and self.overdue_metric >= 1
            and self.entry_reached == ["credit-registry", "dept-zjj"]
            and self.status.get("listed") is True
            and self.status.get("advice") == "punish"
            and self.feedback_receipt.startswith("XYHZ")
            and self.feedback_at_platform == 1
        )

    def lines(self) -> list[str]:
        """A readable summary."""
        return [
            f"双公示: penalty receipt {self.penalty_receipt or '-'}, "
            f"licence receipt {self.licence_receipt or '-'}",
            f"overdue disclosure {self.overdue_decision}: {self.overdue_note or 'NOT FLAGGED'} "
            f"(jghub_credit_disclosures_overdue_total {self.overdue_metric:g})",
            f"black-list entry {self.entry_id} reached {self.entry_reached}",
            f"联合奖惩 status of the subject: listed={self.status.get('listed')}, "
            f"advice={self.status.get('advice')} ({self.status.get('advice_label')})",
            f"feedback returned to the credit platform: receipt {self.feedback_receipt or '-'} "
            f"({self.feedback_at_platform} at the platform)",
        ]


def prepare_credit_setup(work: Path) -> tuple[Path, Any, Any]:
    """Copy the example hub and systems into ``work`` and write fresh keys there (the example's
    trial keys are not used). Returns (hub.yaml, the hub's key, the platform's key)."""
    hub_file = copy_example(EXAMPLE, work)
    hub_key, platform_key = write_trial_keys(work / "keys", "jghub-credit-1", "credit-platform-1")
    return hub_file, hub_key, platform_key


async def run_credit_flow(work: Path, *, timeout: float = 30.0) -> CreditFlowReport:
    """Run the credit flow end to end (see the module docstring) and report what happened."""
    import aiohttp

    from adapters.credit.simulator import CreditSimulator
    from hub.api import HUB_KEY, create_app
    from hub.peers.sink import Sink
    from security.keystore import Keystore, ManagedKey

    inbox = Sink("dept-zjj")
    sim = CreditSimulator(keys=Keystore())
    report = CreditFlowReport()
    async with started(inbox, sim):
        port = free_port()
        hub_file, hub_key, platform_key = prepare_credit_setup(work)
        sim.keys = Keystore([ManagedKey(hub_key, owner="jghub")])
        sim.signer = platform_key
        base = f"http://127.0.0.1:{port}"
        sim.push_url = f"{base}/v1/systems/credit/records?dataset=credit_list_entry"
        env = {"CREDIT_URL": sim.base_url, "DEPT_ZJJ_URL": inbox.url, "JGHUB_PORT": str(port)}
        env.update({k: os.environ.get(k) or v for k, v in _TOKENS.items()})
        app = create_app(load_with_environment(hub_file, env))
        async with serving(app, port), aiohttp.ClientSession(base_url=base) as http:
            await _flow(app[HUB_KEY], http, sim, inbox, env, report, timeout)
    return report


async def _receipt(hub: Any, message_id: str, target: str, timeout: float) -> str:
    """The receipt the target gave for a message (from its trace: 全程留痕)."""
    found = ""

    async def delivered() -> bool:
        nonlocal found
        trace = await hub.store.trace(message_id)
        for ev in trace.events if trace else []:
            m = re.search(r"receipt=(\S+)", ev.detail or "")
            if ev.target == target and m:
                found = m.group(1)
        return bool(found)

    await _until(delivered, f"the receipt of {message_id} from {target}", timeout)
    return found


async def _post(http: Any, system: str, dataset: str, token: str, records: Any) -> list[str]:
    async with http.post(
        f"/v1/systems/{system}/records",
        params={"dataset": dataset},
        json=records,
        headers={"Authorization": f"Bearer {token}"},
    ) as resp:
        doc = await resp.json()
        if resp.status != 202:
            raise RuntimeError(f"credit flow: {system} {dataset} refused: {doc}")
        return list(doc["ids"])


async def _flow(
    hub: Any,
    http: Any,
    sim: Any,
    inbox: Any,
    env: dict[str, str],
    report: CreditFlowReport,
    timeout: float,
) -> None:
    from adapters.credit.samples import amr_licence, amr_penalty, zjj_feedback

    calendar = hub.config.work_calendar()
    today = dt.datetime.fromtimestamp(hub.clock(), calendar.tz).date()
    amr, zjj = env["DEPT_AMR_TOKEN"], env["DEPT_ZJJ_TOKEN"]
    # 1. 双公示 in time: a penalty and a licence decided today
    [pid] = await _post(http, "dept-amr", "credit_penalty", amr, [amr_penalty(0, today)])
    [lid] = await _post(http, "dept-amr", "credit_licence", amr, [amr_licence(0, today)])
    report.penalty_receipt = await _receipt(hub, pid, "credit", timeout)
    report.licence_receipt = await _receipt(hub, lid, "credit", timeout)
    # 2. a penalty decided 30 days ago: disclosed, but flagged overdue
    late = today - dt.timedelta(days=30)
    [oid] = await _post(http, "dept-amr", "credit_penalty", amr, [amr_penalty(1, late)])
    await _receipt(hub, oid, "credit", timeout)
    report.overdue_decision = f"decided {late}"
    trace = await hub.store.trace(oid)
    notes = [p.strip() for e in trace.events for p in (e.detail or "").split(";")]
    report.overdue_note = next((p for p in notes if p.startswith("公示超期")), "")
    async with http.get("/metrics") as resp:
        text = await resp.text()
    report.overdue_metric = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("jghub_credit_disclosures_overdue_total{")
        and 'dataset="credit_penalty"' in line
    )
    # 3. a black-list entry (失信惩戒) published by the platform, pushed to the hub
    from adapters.credit.samples import sample_list_entry

    canonical = sample_list_entry(1)
    entry = await sim.publish(
        list_type="HEIMD",
        name=canonical["subject_name"],
        uscc=canonical["subject_uscc"],
        reason=canonical["reason"],
        basis=canonical["basis"],
        decided_by=canonical["decided_by"],
        decided_by_code=canonical["decided_by_code"],
        valid_until=(today + dt.timedelta(days=3 * 365)).strftime("%Y/%m/%d"),
        measures=canonical["measures"],
    )
    report.entry_id = entry["MDBH"]

    async def registered() -> bool:
        rows = await hub.store.ledger_entries("credit:lists", canonical["subject_uscc"])
        return any(r.key == entry["MDBH"] for r in rows)

    await _until(
        lambda: any(r.get("mdbh") == entry["MDBH"] for r in inbox.applied.values()),
        "the entry at dept-zjj",
        timeout,
    )
    await _until(registered, "the entry in the registry", timeout)
    report.entry_reached = ["credit-registry", "dept-zjj"]
    # 4. 联合奖惩: the housing bureau asks before it acts, then reports the measure taken
    async with http.get(
        f"/v1/credit/subjects/{canonical['subject_uscc']}/status",
        params={"system": "dept-zjj"},
        headers={"Authorization": f"Bearer {zjj}"},
    ) as resp:
        report.status = await resp.json()
    fb = zjj_feedback(1, entry["MDBH"], canonical["subject_uscc"], canonical["subject_name"], today)
    [fid] = await _post(http, "dept-zjj", "credit_feedback", zjj, [fb])
    report.feedback_receipt = await _receipt(hub, fid, "credit", timeout)
    report.feedback_at_platform = sum(1 for f in sim.feedback if f["MDBH"] == entry["MDBH"])
