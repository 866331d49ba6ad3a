"""A complete national set-up (config files, keys) and the national flow the demo runs:
catalog push, 监管行为 upload, a risk warning issued, routed and answered, a clean 对账.

``write_national_setup`` writes real YAML (the same a province would write), so tests and the
demo exercise the configuration path too. ``run_national_flow`` is what ``jghub demo`` calls.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from adapters.common import free_port, serving, started, until, write_trial_keys

__all__ = [
    "NationalFlowReport",
    "national_system_doc",
    "run_national_flow",
    "write_national_setup",
]

_until = partial(until, flow="national")

_CATALOG_CODES = ["33000000000000", "33000000000001", "33000000000002"]


def national_system_doc(
    url: str, *, on_conflict: str = "rebase", schedules: dict[str, Any] | None = None,
    batch_size: int = 100,
) -> dict[str, Any]:  # fmt: skip
    """The national system file: adapter options, the transport and every mapping between
    our canonical datasets and the national schema."""
    return {
        "name": "national",
        "title": "国家互联网+监管系统",
        "adapter": "national",
        "adapter_options": {"schedules": schedules or {}, "page_size": 50},
        "inbound": {"datasets": ["national_issued"], "signed": True},
        "outbound": {
            "transport": "national",
            "url": url,
            "batch_size": batch_size,
            "on_conflict": on_conflict,
            "timeout": 2.0,
            "datasets": {
                "catalog_item": {"kind": "catalog"},
                "inspection": {"kind": "behaviour", "path": "jcxw", "day_field": "jcsj"},
                "penalty": {"kind": "behaviour", "path": "xzcf", "day_field": "cfjdrq"},
                "coordination": {"kind": "behaviour", "path": "xtjg", "day_field": "fssj"},
                "national_feedback": {"kind": "feedback"},
            },
        },
        "retry": {"max_attempts": 10, "base_delay": 0.01, "max_delay": 2.0},
        "circuit": {"failure_threshold": 50, "reset_timeout": 0.05},
        "mapping": {
            "inbound": {
                "national_issued": {
                    "code_tables": {
                        "kind": {
                            "FXYJ": "warning",
                            "TSJB": "clue",
                            "LHCJ": "punishment_task",
                            "XTRW": "coordination_task",
                        }
                    },
                    "rules": [
                        {"to": "ref", "from": "xfbh", "required": True},
                        {"to": "kind", "from": "xflx", "code_table": "kind"},
                        {"to": "title", "from": "bt"},
                        {"to": "content", "from": "nr"},
                        {"to": "region_code", "from": "xzqh", "type": "str"},
                        {"to": "catalog_code", "from": "sxbm", "type": "str"},
                        {"to": "level", "from": "yjdj", "type": "str"},
                        {"to": "issued_at", "from": "xfsj", "type": "datetime"},
                        {"to": "deadline", "from": "clqx", "type": "date"},
                    ],
                }
            },
            "outbound": {
                "catalog_item": {
                    "code_tables": {"op": {"create": "1", "change": "2", "revoke": "3"}},
                    "rules": [
                        {"to": "sxbm", "from": "code"},
                        {"to": "bbh", "from": "version"},
                        {"to": "bglx", "from": "change_type", "code_table": "op"},
                        {"to": "sxrq", "from": "effective_date"},
                        {"to": "xzqh", "from": "region_code"},
                        {"to": "jgbm", "from": "department"},
                        {"to": "jgbmdm", "from": "department_code"},
                        {"to": "zxmc", "from": "main_item_name"},
                        {"to": "zixmc", "from": "sub_item_name"},
                        {"to": "jgfs", "from": "supervision_methods"},
                        {"to": "jgcs", "from": "supervision_measures"},
                        {"to": "jgdx", "from": "supervised_object"},
                        {"to": "sdyj", "from": "legal_basis"},
                        {"to": "jglc", "from": "supervision_process"},
                        {"to": "jgjg", "from": "supervision_result"},
                        {"to": "jgcj", "from": "supervision_levels"},
                    ],
                },
                "inspection": {
                    "rules": [
                        {"to": "jcxwbh", "from": "inspection_no"},
                        {"to": "sxbm", "from": "catalog_code"},
                        {"to": "jcssqdbm", "from": "implementation_code"},
                        {"to": "jcxwmc", "from": "inspection_name"},
                        {"to": "jgdx", "from": "supervised_object"},
                        {"to": "xdrmc", "from": "counterpart_name"},
                        {"to": "xdrxz", "from": "counterpart_nature"},
                        {"to": "zjlx", "from": "counterpart_cert_type"},
                        {"to": "xdrbm", "from": "counterpart_code"},
                        {"to": "xzqh", "from": "region_code"},
                        {"to": "jcxs", "from": "inspection_form"},
                        {"to": "jclb", "from": "inspection_category"},
                        {"to": "jcjg", "from": "inspection_result"},
                        {"to": "jcsj", "from": "inspection_time"},
                        {"to": "bssj", "from": "submitted_at"},
                        {
                            "to": "jcry",
                            "from": "inspectors",
                            "each": [
                                {"to": "xm", "from": "name"},
                                {"to": "zfzh", "from": "law_enforcement_cert_no"},
                            ],
                        },
                    ]
                },
                "penalty": {
                    "rules": [
                        {"to": "cfjdswh", "from": "decision_no"},
                        {"to": "sxbm", "from": "catalog_code"},
                        {"to": "xzqh", "from": "region_code"},
                        {"to": "xdrmc", "from": "counterpart_name"},
                        {"to": "xdrlb", "from": "counterpart_category"},
                        {"to": "xdrdm", "from": "counterpart_code"},
                        {"to": "wfxwlx", "from": "violation_type"},
                        {"to": "wfss", "from": "violation_facts"},
                        {"to": "cfyj", "from": "legal_basis"},
                        {"to": "cflb", "from": "penalty_category"},
                        {"to": "cfnr", "from": "penalty_content"},
                        {"to": "fkje", "from": "fine_amount", "type": "decimal", "scale": 6},
                        {"to": "cfjdrq", "from": "decision_date"},
                        {"to": "cfyxq", "from": "valid_until"},
                        {"to": "cfjg", "from": "authority"},
                        {"to": "cfjgdm", "from": "authority_code"},
                        {"to": "sjly", "from": "data_source"},
                        {"to": "sjlydm", "from": "data_source_code"},
                    ]
                },
                "coordination": {
                    "code_tables": {"stage": {"process": "GC", "result": "JG"}},
                    "rules": [
                        {"to": "xtrwbh", "from": "task_no"},
                        {"to": "hjxh", "from": "step_no"},
                        {"to": "jd", "from": "stage", "code_table": "stage"},
                        {"to": "sxmc", "from": "title"},
                        {"to": "sxbm", "from": "catalog_code"},
                        {"to": "xzqh", "from": "region_code"},
                        {"to": "bsbm", "from": "department"},
                        {"to": "bsbmdm", "from": "department_code"},
                        {"to": "xtbm", "from": "partner_departments"},
                        {"to": "hjnr", "from": "action"},
                        {"to": "fssj", "from": "occurred_at"},
                        {"to": "xtjgnr", "from": "result"},
                    ],
                },
                "national_feedback": {
                    "rules": [
                        {"to": "xfbh", "from": "ref"},
                        {"to": "fkdw", "from": "department"},
                        {"to": "fkdwdm", "from": "department_code"},
                        {"to": "clzt", "from": "status"},
                        {"to": "cljg", "from": "result"},
                        {"to": "fksj", "from": "handled_at"},
                    ]
                },
            },
        },
    }


def write_national_setup(
    workdir: Path,
    *,
    national_url: str,
    dept_urls: dict[str, str],
    port: int = 0,
    store: dict[str, Any] | None = None,
    **national: Any,
) -> tuple[Path, Any, Any]:
    """Write ``hub.yaml``, ``systems/*.yaml`` and keys into ``workdir``: a catalog office
    (``catalog-admin``), departments ``dept-a`` (Hangzhou 上城区 330102, also the source of
    监管行为 and feedback) and ``dept-b`` (西湖区 330106), and the national system. Returns
    (hub.yaml path, the hub's key, the nation's key): give the simulator the hub's key to
    verify with and the nation's key to push with."""
    workdir.mkdir(parents=True, exist_ok=True)
    hub_key, nation_key = write_trial_keys(workdir / "keys", "zj-hub-1", "gj-1")
    sysdir = workdir / "systems"
    sysdir.mkdir(exist_ok=True)
    docs: list[dict[str, Any]] = [
        {"name": "catalog-admin", "title": "省审改办", "inbound": {"datasets": ["catalog_item"]}},
        {
            "name": "dept-a",
            "title": "上城区市场监管局",
            "inbound": {"datasets": ["inspection", "penalty", "coordination", "national_feedback"]},
            "outbound": {"transport": "http_json", "url": dept_urls["dept-a"]},
            "retry": {"max_attempts": 5, "base_delay": 0.01, "max_delay": 0.05},
        },
        {
            "name": "dept-b",
            "title": "西湖区市场监管局",
            "outbound": {"transport": "http_json", "url": dept_urls["dept-b"]},
            "retry": {"max_attempts": 5, "base_delay": 0.01, "max_delay": 0.05},
        },
        national_system_doc(national_url, **national),
    ]
    for doc in docs:
        (sysdir / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))

    def route(name: str, source: str, dataset: str, targets: list[str], **kw: Any) -> Any:
        return {"name": name, "source": source, "dataset": dataset, "targets": targets, **kw}

    routes = [
        route("catalog-to-national", "catalog-admin", "catalog_item", ["national"], ordered=True),
        *(
            route(f"{ds}-to-national", "dept-a", ds, ["national"])
            for ds in ("inspection", "penalty", "coordination")
        ),
        route("feedback-to-national", "dept-a", "national_feedback", ["national"], ordered=True),
        # issued items go to the department responsible for their region and 监管事项
        route(
            "issued-to-dept-a",
            "national",
            "national_issued",
            ["dept-a"],
            filter=[
                {"field": "region_code", "in": ["330102"]},
                {"field": "catalog_code", "in": _CATALOG_CODES},
            ],
        ),
        route(
            "issued-to-dept-b",
            "national",
            "national_issued",
            ["dept-b"],
            filter=[
                {"field": "region_code", "in": ["330106"]},
                {"field": "catalog_code", "in": _CATALOG_CODES},
            ],
        ),
    ]
    hub_doc = {
        "hub": {"name": "zj-hub", "node_id": "zj-node-1"},
        "store": store or {"kind": "sqlite", "path": "data/hub.db", "durability": "normal"},
        "listen": {"host": "127.0.0.1", "port": port},
        "dispatcher": {"lease_seconds": 30, "idle_poll_seconds": 0.05},
        "systems": ["systems"],
        "routes": routes,
        "keys": {
            "own": [{"id": "zj-hub-1", "algorithm": "ed25519", "private_key": "keys/zj-hub-1.pem"}],
            "peers": {
                "national": [
                    {"id": "gj-1", "algorithm": "ed25519", "public_key": "keys/gj-1.pub.pem"}
                ]
            },
        },
    }
    path = workdir / "hub.yaml"
    path.write_text(yaml.safe_dump(hub_doc, allow_unicode=True))
    return path, hub_key, nation_key


@dataclass
class NationalFlowReport:
    """What the national flow did, for the demo's summary."""

    catalog_versions: dict[str, int] = field(default_factory=dict)
    behaviour_accepted: dict[str, int] = field(default_factory=dict)
    warning_ref: str = ""
    warning_routed_to: list[str] = field(default_factory=list)
    warning_acknowledged: bool = False
    feedback_received: int = 0
    reconciliation: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            len(self.catalog_versions) == len(_CATALOG_CODES)
            and self.warning_routed_to == ["dept-a"]
            and self.warning_acknowledged
            and self.feedback_received == 1
            and bool(self.reconciliation.get("clean"))
        )

    def lines(self) -> list[str]:
        """A readable summary."""
        return [
            f"catalog pushed (item: national version): {self.catalog_versions}",
            f"监管行为 accepted by the nation: {self.behaviour_accepted}",
            f"risk warning {self.warning_ref} routed to {self.warning_routed_to}, "
            f"acknowledged: {self.warning_acknowledged}, feedback sent: {self.feedback_received}",
            f"对账 {self.reconciliation.get('day')}: "
            f"{'clean' if self.reconciliation.get('clean') else 'DIFFERENCES'}",
        ]


async def run_national_flow(workdir: Path, *, timeout: float = 30.0) -> NationalFlowReport:
    """Run the national flow end to end against the simulator, on loopback: the catalog
    (three items, two versions each) pushed in order; 监管行为 (inspections, penalties,
    coordination reports) uploaded in batches; a risk warning issued by the nation, pushed to
    the hub, routed to the responsible department and acknowledged, and the department's
    handling result sent back; then 对账 for the day, which must be clean."""

    from adapters.national.simulator import NationalSimulator
    from hub.api import HUB_KEY, create_app
    from hub.config import load_config
    from hub.peers.sink import Sink
    from security.keystore import Keystore, ManagedKey

    sinks = {"dept-a": Sink("dept-a"), "dept-b": Sink("dept-b")}
    sim = NationalSimulator(keys=Keystore())
    report = NationalFlowReport()
    async with started(*sinks.values(), sim):
        port = free_port()
        path, hub_key, nation_key = write_national_setup(
            workdir,
            national_url=sim.base_url,
            dept_urls={n: s.url for n, s in sinks.items()},
            port=port,
        )
        sim.keys = Keystore([ManagedKey(hub_key, owner="zj-hub")])
        sim.signer = nation_key
        sim.push_url = (
            f"http://127.0.0.1:{port}/v1/systems/national/records?dataset=national_issued"
        )
        app = create_app(load_config(path))
        async with serving(app, port):
            await _flow(app[HUB_KEY], sim, sinks, report, timeout)
    return report


async def _flow(
    hub: Any, sim: Any, sinks: dict[str, Any], report: NationalFlowReport, timeout: float
) -> None:
    """The steps of :func:`run_national_flow` on a started hub, filling ``report``."""
    from adapters.national.plugin import connectors
    from contracts.samples import (
        sample_catalog_item,
        sample_coordination,
        sample_inspection,
        sample_penalty,
    )

    # 1. the catalog: version 1 then 2 of three items, delivered in order per item
    for v in (1, 2):
        await hub.ingest_records(
            "catalog-admin", [sample_catalog_item(i, v) for i in range(len(_CATALOG_CODES))]
        )
    await _until(
        lambda: all(sim.catalog.get(c, {}).get("version") == 2 for c in _CATALOG_CODES),
        "catalog version 2 at the nation",
        timeout,
    )
    report.catalog_versions = {c: sim.catalog[c]["version"] for c in _CATALOG_CODES}
    # 2. 监管行为 in batches
    sent = {
        "inspection": [sample_inspection(i) for i in range(40)],
        "penalty": [sample_penalty(i) for i in range(10)],
        "coordination": [sample_coordination(i) for i in range(6)],
    }
    for ds, recs in sent.items():
        await hub.ingest_records("dept-a", recs, dataset=ds)
    want = {"jcxw": 40, "xzcf": 10, "xtjg": 6}
    await _until(
        lambda: {k: len(sim.behaviour_records.get(k, {})) for k in want} == want,
        "监管行为 at the nation",
        timeout,
    )
    # by kind, sorted: the kinds arrive concurrently, so their order in the simulator varies
    report.behaviour_accepted = {
        k: len(sim.behaviour_records[k]) for k in sorted(sim.behaviour_records)
    }
    # 3. a risk warning for 上城区 (330102): pushed, routed to dept-a, answered
    item = await sim.issue(
        "FXYJ",
        region="330102",
        catalog_code=_CATALOG_CODES[0],
        title="餐饮服务食品安全风险预警",
        content="近期多起餐饮服务食品安全投诉，请加强检查",
        deadline="2030-12-31",
    )
    report.warning_ref = item["xfbh"]
    await _until(lambda: bool(sinks["dept-a"].applied), "the warning at dept-a", timeout)
    report.warning_routed_to = [n for n, s in sinks.items() if s.applied]
    report.warning_acknowledged = any(
        ref == item["xfbh"] and status is not None and 200 <= status < 300
        for ref, status in sim.pushes
    )
    await connectors(hub)["national"].pull_once()  # the feed agrees (a duplicate)
    report.warning_acknowledged = report.warning_acknowledged and item["xfbh"] in sim.acked
    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).replace(microsecond=0)
    await hub.ingest_records(
        "dept-a",
        [
            {
                "ref": item["xfbh"],
                "department": "上城区市场监管局",
                "department_code": sample_inspection(0)["implementing_body_code"],
                "status": "done",
                "result": "已开展专项检查 12 家，责令整改 2 家",
                "handled_at": now.isoformat(),
            }
        ],
        dataset="national_feedback",
    )
    await _until(lambda: item["xfbh"] in sim.feedback, "feedback at the nation", timeout)
    report.feedback_received = len(sim.feedback[item["xfbh"]])
    # 4. 对账 for the inspections' day: clean
    day = sample_inspection(0)["inspection_time"][:10]
    rec = await connectors(hub)["national"].reconcile(day)
    report.reconciliation = rec.to_dict()
