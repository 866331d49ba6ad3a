"""The market supervision platform flow the demo runs, on the shipped configuration.

``write_market_setup`` copies ``examples/platforms/market/`` (hub file, system files) into a
work folder, pointing the URLs at the simulators and adding fresh keys, so the demo and the
tests exercise exactly the configuration a province would deploy. ``run_market_flow`` is what
``jghub demo`` calls:

1. the platform registers two entities; the hub's feed source syncs them into the market
   entity registry; the platform then renames one (名称变更) and the change reaches governance:
   a department's inspection record with the old name is refused (``E_MISMATCH``), one with
   the new name is accepted;
2. the platform draws a 双随机 task for 上城区市场监督管理局 (dept-a): it reaches dept-a (not
   dept-b), dept-a reports the 检查结果, and the platform's receipt comes back;
3. the platform lists an entity in the 经营异常名录 and removes it again: both reach every
   department, the entry before its removal.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from adapters.common import free_port, serving, started, until, write_trial_keys

__all__ = ["EXAMPLE", "MarketFlowReport", "run_market_flow", "write_market_setup"]

_until = partial(until, flow="market")

#: the shipped configuration this flow runs
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "platforms" / "market"

#: the entities of the flow (valid USCCs, 上城区 330102)
ENTITY_A = "91330102107919009Q"
ENTITY_B = "91330102MA0000381M"
#: 实施部门统一社会信用代码 of dept-a and dept-b (as routed in the example hub file)
DEPT_A_CODE = "113301022583800043"
DEPT_B_CODE = "11330102258538385P"
OLD_NAME = "杭州样例餐饮管理有限公司"
NEW_NAME = "杭州样例餐饮集团有限公司"

_CST = dt.timezone(dt.timedelta(hours=8))


def write_market_setup(
    workdir: Path,
    *,
    market_url: str,
    dept_urls: dict[str, str],
    port: int = 0,
    interval: float = 0.1,
) -> tuple[Path, Any, Any]:
    """Copy the example set-up into ``workdir`` with the simulators' URLs, short waits, an
    SQLite store in ``workdir/data`` and fresh keys. Returns (hub file, the hub's key, the
    platform's key): the simulator verifies with the first and signs with the second."""
    workdir.mkdir(parents=True, exist_ok=True)
    hub_key, platform_key = write_trial_keys(workdir / "keys", "zj-hub-1", "scjg-1")
    sysdir = workdir / "systems"
    sysdir.mkdir(exist_ok=True)
    for src in sorted((EXAMPLE / "systems").glob("*.yaml")):
        doc = yaml.safe_load(src.read_text(encoding="utf-8"))
        name = doc["name"]
        if name == "market":
            doc["inbound"]["source"]["url"] = market_url
            doc["inbound"]["source"]["interval"] = interval
            doc["inbound"]["source"]["min_backoff"] = 0.05
            doc["inbound"]["source"]["max_backoff"] = 0.5
            doc["outbound"]["url"] = market_url
            doc["outbound"]["timeout"] = 2
        else:
            doc["outbound"]["url"] = dept_urls[name]
            doc["outbound"]["timeout"] = 2
        doc["retry"] = {"max_attempts": 20, "base_delay": 0.01, "max_delay": 0.2}
        doc["circuit"] = {"failure_threshold": 50, "reset_timeout": 0.05}
        (sysdir / src.name).write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    hub_doc = yaml.safe_load((EXAMPLE / "hub.yaml").read_text(encoding="utf-8"))
    hub_doc["store"] = {"kind": "sqlite", "path": "data/hub.db", "durability": "normal"}
    hub_doc["listen"] = {"host": "127.0.0.1", "port": port}
    hub_doc["dispatcher"] = {"lease_seconds": 30, "idle_poll_seconds": 0.05}
    path = workdir / "hub.yaml"
    path.write_text(yaml.safe_dump(hub_doc, allow_unicode=True), encoding="utf-8")
    return path, hub_key, platform_key


@dataclass
class MarketFlowReport:
    """What the market flow did, for the demo's summary."""

    registry_names: list[str] = field(default_factory=list)
    old_name_refused: str = ""
    new_name_accepted: bool = False
    subject_history: int = 0
    task_no: str = ""
    task_routed_to: list[str] = field(default_factory=list)
    result_receipt: str = ""
    abnormal_seen: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            self.registry_names == [OLD_NAME, NEW_NAME]
            and self.old_name_refused == "E_MISMATCH"
            and self.new_name_accepted
            and self.subject_history >= 2
            and self.task_routed_to == ["dept-a"]
            and self.result_receipt.startswith("SCHZ")
            and self.abnormal_seen == {"dept-a": ["list", "remove"], "dept-b": ["list", "remove"]}
        )

    def lines(self) -> list[str]:
        """A readable summary."""
        return [
            f"市场主体 {ENTITY_A} in the registry: {' -> '.join(self.registry_names)} "
            f"({self.subject_history} versions linked to the subject)",
            f"inspection naming the old name: refused {self.old_name_refused or 'NOT refused'}; "
            f"new name: {'accepted' if self.new_name_accepted else 'NOT accepted'}",
            f"双随机 task {self.task_no} routed to {self.task_routed_to}; "
            f"检查结果 receipt from the platform: {self.result_receipt or 'none'}",
            f"经营异常名录 列入/移出 at the departments: {self.abnormal_seen}",
        ]


async def run_market_flow(work: Path, *, timeout: float = 30.0) -> MarketFlowReport:
    """Run the market flow end to end on loopback (see the module docstring): its own hub
    (SQLite in ``work``), the platform simulator and two department inboxes."""

    from adapters.market.simulator import MarketSimulator
    from hub.api import HUB_KEY, create_app
    from hub.config import load_config
    from hub.peers.sink import Sink
    from security.keystore import Keystore, ManagedKey

    sinks = {"dept-a": Sink("dept-a"), "dept-b": Sink("dept-b")}
    sim = MarketSimulator()
    report = MarketFlowReport()
    async with started(*sinks.values(), sim):
        port = free_port()
        path, hub_key, platform_key = write_market_setup(
            work, market_url=sim.base_url, dept_urls={n: s.url for n, s in sinks.items()}, port=port
        )
        sim.keys = Keystore([ManagedKey(hub_key, owner="zj-hub")])
        sim.signer = platform_key
        app = create_app(load_config(path))
        async with serving(app, port):
            await _flow(app[HUB_KEY], f"http://127.0.0.1:{port}", sim, sinks, report, timeout)
    return report


async def post_record(base: str, system: str, dataset: str, record: dict[str, Any]) -> Any:
    """POST one record as a department does (its bearer token from the example files'
    defaults); returns (status, JSON answer)."""
    import aiohttp

    token = {"dept-a": "trial-token-dept-a", "dept-b": "trial-token-dept-b"}[system]
    url = f"{base}/v1/systems/{system}/records?dataset={dataset}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=record, headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


def inspection_of(uscc: str, name: str, n: int) -> dict[str, Any]:
    """A department's 行政检查 record of the entity ``uscc`` named ``name``."""
    from contracts.samples import sample_inspection

    rec = sample_inspection(3 * n)  # i % 3 == 0: a company (USCC, 法人)
    rec.update(counterpart_code=uscc, counterpart_name=name, inspection_no=f"JCMARKET{n:06d}")
    return rec


async def _flow(
    hub: Any, base: str, sim: Any, sinks: dict[str, Any], report: MarketFlowReport, timeout: float
) -> None:
    from adapters.market.plugin import registry_of

    registry = registry_of(hub)
    # 1. entities: registered, synced, renamed; governance follows the registry
    sim.register_entity(ENTITY_A, OLD_NAME)
    sim.register_entity(ENTITY_B, "杭州示范食品销售有限公司", legal_rep="李芳", status="2")

    async def name_is(want: str) -> bool:
        e = await registry.get(ENTITY_A)
        return e is not None and e.name == want

    await _until(lambda: name_is(OLD_NAME), "the entity in the registry", timeout)
    report.registry_names.append(OLD_NAME)
    sim.change_entity(ENTITY_A, QYMC=NEW_NAME)
    await _until(lambda: name_is(NEW_NAME), "the renamed entity in the registry", timeout)
    report.registry_names.append(NEW_NAME)
    status, doc = await post_record(
        base, "dept-a", "inspection", inspection_of(ENTITY_A, OLD_NAME, 1)
    )
    report.old_name_refused = str(doc.get("code", "")) if status >= 400 else ""
    status, _ = await post_record(
        base, "dept-a", "inspection", inspection_of(ENTITY_A, NEW_NAME, 2)
    )
    report.new_name_accepted = status == 202
    links = await hub.store.subject_messages(ENTITY_A)
    report.subject_history = sum(1 for x in links if x.dataset == "market_entity")
    # 2. a 双随机 task for dept-a; its result back to the platform
    now = dt.datetime.now(_CST).replace(microsecond=0)
    task = sim.issue_task(
        "SJRW2026000001",
        objects=[ENTITY_A, ENTITY_B],
        inspectors=[("陈静", "33010200101"), ("赵磊", "33010200102")],
        department="上城区市场监督管理局",
        department_code=DEPT_A_CODE,
        deadline=(now + dt.timedelta(days=30)).strftime("%Y%m%d"),
    )
    report.task_no = task["RWBH"]
    await _until(
        lambda: any(r.get("task_no") == task["RWBH"] for r in sinks["dept-a"].applied.values()),
        "the task at dept-a",
        timeout,
    )
    report.task_routed_to = [
        n for n, s in sinks.items() if any("task_no" in r for r in s.applied.values())
    ]
    result = {
        "task_no": task["RWBH"],
        "object_uscc": ENTITY_A,
        "object_name": NEW_NAME,
        "result": "1",
        "result_detail": "营业执照规范悬挂，年度报告已按期公示，未发现问题",
        "inspected_on": now.date().isoformat(),
        "department": "上城区市场监督管理局",
        "department_code": DEPT_A_CODE,
        "inspectors": [
            {"name": "陈静", "law_enforcement_cert_no": "33010200101"},
            {"name": "赵磊", "law_enforcement_cert_no": "33010200102"},
        ],
        "reported_at": (now + dt.timedelta(minutes=1)).isoformat(),
    }
    status, doc = await post_record(base, "dept-a", "market_inspection_result", result)
    if status != 202:
        raise RuntimeError(f"market flow: the result was refused: {doc}")
    mid = doc["id"]
    await _until(lambda: mid in sim.results, "the result at the platform", timeout)
    report.result_receipt = sim.results[mid]["receipt"]
    # 3. 经营异常名录: entry, then removal, at every department in that order
    sim.list_abnormal("YCML2026000001", ENTITY_B, decided=now.strftime("%Y%m%d"))
    sim.remove_abnormal("YCML2026000001", decided=now.strftime("%Y%m%d"))

    def actions(sink: Any) -> list[str]:
        return [
            sink.applied[k]["action"]
            for k in sink.order
            if sink.applied[k].get("entry_id") == "YCML2026000001"
        ]

    await _until(
        lambda: all(len(actions(s)) >= 2 for s in sinks.values()),
        "the 经营异常名录 entry and removal at the departments",
        timeout,
    )
    report.abnormal_seen = {n: actions(s) for n, s in sinks.items()}
