"""The trading flow the demo runs: the example configuration in
``examples/platforms/trading/`` with its own hub (SQLite in the work folder), the platform's
simulator and the supervising departments' systems, all on 127.0.0.1.

A project, its tender announcement, the bid opening and the award result flow in as signed XML;
the award result reaches the department that supervises the project's type, in that
department's own schema, signed by the hub, attachments fetched and checked; an award of a
procurement project reaches 财政局 instead; a document that fails the XSD and one with a bad
USCC check character are refused with their codes and nothing accepted is harmed.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from adapters.common import load_with_environment, serve_app, until, write_trial_keys

__all__ = ["EXAMPLE_DIR", "TradingFlowReport", "run_trading_flow", "write_keys"]

_until = partial(until, flow="trading")

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "platforms" / "trading"
HUB_KEY_ID = "jghub-trading-1"
PLATFORM_KEY_ID = "ggzy-1"

#: each department's own schema: required fields and where it keeps attachment references
DEPARTMENT_SCHEMAS: dict[str, dict[str, Any]] = {
    "zjj": {
        "title": "市住房和城乡建设局",
        "required": ("jgbh", "xmbh", "zbdwdm", "zbje", "zbrq"),
        "attachments": ("fj", "dz", "zy", "dx"),
    },
    "czj": {
        "title": "市财政局",
        "required": ("cgxmbh", "ggbh", "gysxydm", "cjje", "cjrq"),
        "attachments": ("fjlb", "xzdz", "sha256", "wjdx"),
    },
    "zrzyj": {
        "title": "市自然资源和规划局",
        "required": ("crbh", "jgbh", "jdrdm", "cjjg"),
        "attachments": ("fj", "dz", "zy", "dx"),
    },
    "gzw": {
        "title": "市国资委",
        "required": ("cqxmbh", "jgbh", "srfdm", "jyje"),
        "attachments": ("fj", "dz", "zy", "dx"),
    },
}


@dataclass
class TradingFlowReport:
    """What the trading flow did, for the demo's summary."""

    #: dataset -> the hub's message id of the document accepted for it
    accepted: dict[str, str] = field(default_factory=dict)
    #: result_no -> departments that applied it
    award_routed_to: dict[str, list[str]] = field(default_factory=dict)
    #: the award as 住建局 received it (its own field names)
    zjj_record: dict[str, Any] = field(default_factory=dict)
    #: receipt numbers (回执编号) the departments answered, as kept in the hub's trace
    receipts: dict[str, str] = field(default_factory=dict)
    attachments_verified: int = 0
    #: hostile kind -> the code the hub refused it with
    refused: dict[str, str] = field(default_factory=dict)
    quarantined: int = 0
    #: deliveries and messages after the refusals equal those before (nothing harmed)
    unharmed: bool = False
    #: the code a push signed with a key that is not the platform's was refused with
    forged_push: str = ""
    signatures_checked: bool = False

    @property
    def ok(self) -> bool:
        return (
            set(self.accepted) >= {"trading_project", "trading_announcement",
                                   "trading_bid_opening", "trading_award"}
            and self.award_routed_to.get("JG-330106-2024-0001") == ["zjj"]
            and self.award_routed_to.get("JG-330106-2024-0002") == ["czj"]
            and self.zjj_record.get("zbdwdm") == "91330106813501902W"
            and len(self.receipts) == 2
            and self.attachments_verified >= 1
            and self.refused == {"missing_checksum": "E_XSD", "bad_uscc": "E_SCHEMA"}
            and self.quarantined >= 1
            and self.unharmed
            and self.forged_push == "E_SIGNATURE"
            and self.signatures_checked
        )  # fmt: skip

    def lines(self) -> list[str]:
        """A readable summary."""
        out = [
            "公共资源交易平台 → hub (signed XML, XSD-checked): "
            + ", ".join(f"{ds} …{mid[-8:]}" for ds, mid in self.accepted.items()),
        ]
        for result_no, depts in self.award_routed_to.items():
            receipt = self.receipts.get(result_no, "-")
            out.append(f"中标结果 {result_no} → {depts} (回执 {receipt})")
        if self.zjj_record:
            keys = ", ".join(sorted(self.zjj_record)[:8])
            out.append(f"住建局 received its own schema ({keys} …); attachments verified: "
                       f"{self.attachments_verified}")  # fmt: skip
        out.append(
            "refused: "
            + ", ".join(f"{k} → {v}" for k, v in self.refused.items())
            + f"; quarantined {self.quarantined}; accepted records unharmed: {self.unharmed}"
        )
        out.append(
            f"a push signed with another key: {self.forged_push}; hub → departments and "
            f"departments → platform signatures verified: {self.signatures_checked}"
        )
        return out


def write_keys(keys_dir: Path) -> tuple[Any, Any, dict[str, Any]]:
    """Generate the hub's key, the platform's key and one key per department into
    ``keys_dir`` (the file names the example hub file reads). Returns (hub key, platform key,
    department keys by name)."""
    from security.signing import generate_key

    hub_key, platform_key = write_trial_keys(keys_dir, HUB_KEY_ID, PLATFORM_KEY_ID)
    depts = {name: generate_key("ed25519", f"{name}-1") for name in DEPARTMENT_SCHEMAS}
    return hub_key, platform_key, depts


@dataclass
class TradingSetup:
    """A started hub with the platform and the departments around it (for tests too)."""

    hub: Any
    platform: Any
    departments: dict[str, Any]
    hub_url: str
    runner: Any

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.platform.stop()
        for d in self.departments.values():
            await d.stop()


async def start_trading(work: Path, *, config_dir: Path = EXAMPLE_DIR) -> TradingSetup:
    """Start the departments, the platform's simulator and a hub on the example configuration
    (``config_dir/hub.yaml``), SQLite and keys in ``work``."""

    from adapters.trading.departments import AttachmentFields, SupervisingDepartment
    from adapters.trading.simulator import TradingPlatform
    from hub.api import HUB_KEY, create_app
    from hub.peers import bound_port
    from security.keystore import Keystore, ManagedKey

    work.mkdir(parents=True, exist_ok=True)
    hub_key, platform_key, dept_keys = write_keys(work / "keys")
    hub_keys = Keystore([ManagedKey(hub_key, owner=None)])
    departments = {
        name: SupervisingDepartment(
            name=name,
            title=schema["title"],
            required=schema["required"],
            attachments=AttachmentFields(*schema["attachments"]),
            keys=hub_keys,
            signer=dept_keys[name],
        )
        for name, schema in DEPARTMENT_SCHEMAS.items()
    }
    readers = Keystore(
        [ManagedKey(hub_key, owner="jghub")]
        + [ManagedKey(k, owner=n) for n, k in dept_keys.items()]
    )
    platform = TradingPlatform(signer=platform_key, keys=readers)
    started: list[Any] = []
    try:
        for d in departments.values():
            await d.start()
            started.append(d)
        await platform.start()
        started.append(platform)
        token = secrets.token_urlsafe(16)
        env = {
            "TRADING_HUB_DB": str(work / "trading-hub.db"),
            "TRADING_HUB_PORT": "0",
            "TRADING_KEYS": str(work / "keys"),
            "TRADING_TOKEN": token,
            "TRADING_FEED_URL": platform.base_url,  # for a configuration that pulls the feed
            **{f"TRADING_{n.upper()}_URL": d.url for n, d in departments.items()},
        }
        app = create_app(load_with_environment(config_dir / "hub.yaml", env))
        runner, site = await serve_app(app)
    except BaseException:
        for s in started:
            await s.stop()
        raise
    hub_url = f"http://127.0.0.1:{bound_port(site)}"
    platform.push_url = f"{hub_url}/v1/systems/trading/records"
    platform.token = token
    return TradingSetup(app[HUB_KEY], platform, departments, hub_url, runner)


async def run_trading_flow(work: Path, *, timeout: float = 30.0) -> TradingFlowReport:
    """Run the trading flow end to end on loopback (see the module docstring)."""
    report = TradingFlowReport()
    setup = await start_trading(work)
    try:
        await _flow(setup, report, timeout)
    finally:
        await setup.stop()
    return report


async def _flow(setup: TradingSetup, report: TradingFlowReport, timeout: float) -> None:
    from adapters.trading import simulator as sim

    hub, platform, depts = setup.hub, setup.platform, setup.departments
    tender_file = platform.add_attachment("FJ-0001", b"%PDF-1.4 tender file\n", "招标文件.pdf")
    notice = platform.add_attachment("FJ-0002", b"%PDF-1.4 award notice\n", "中标通知书.pdf")
    # 1. a construction project: registered, announced, opened, awarded
    flow = [
        sim.project_document(1, "GC", attachments=[tender_file]),
        sim.announcement_document(1, "GC", attachments=[tender_file]),
        sim.bid_opening_document(1, "GC"),
        sim.award_document(1, "GC", attachments=[notice]),
        # 2. a procurement project's publicity of candidates: 财政局 supervises it
        sim.project_document(2, "CG"),
        sim.award_document(2, "CG", gslx="1", attachments=[notice]),
    ]
    for doc in flow:
        push = await platform.publish(doc)
        if push.status != 202 or platform.outbox:
            raise RuntimeError(f"trading flow: the hub did not accept {push.wjbh}: {push}")
        report.accepted.setdefault(push.dataset, platform.acknowledged[push.wjbh])
    await _until(
        lambda: bool(depts["zjj"].received) and bool(depts["czj"].received),
        "the award results at 住建局 and 财政局",
        timeout,
    )
    for result_no, field_name in (("JG-330106-2024-0001", "jgbh"), ("JG-330106-2024-0002", "ggbh")):
        report.award_routed_to[result_no] = [
            n for n, d in depts.items()
            if any(r.get(field_name) == result_no for r in d.received.values())
        ]  # fmt: skip
    report.zjj_record = next(iter(depts["zjj"].received.values()))
    report.attachments_verified = sum(len(d.verified_attachments) for d in depts.values())
    # receipts, as the hub's trace keeps them
    for ds_doc, result_no in ((flow[3], "JG-330106-2024-0001"), (flow[5], "JG-330106-2024-0002")):
        mid = platform.acknowledged[_wjbh(ds_doc)]
        await _until(partial(_delivered, hub, mid), f"delivery of {result_no}", timeout)
        trace = await hub.store.trace(mid)
        for ev in trace.events if trace is not None else []:
            if "receipt=" in ev.detail:
                report.receipts[result_no] = ev.detail.split("receipt=", 1)[1].split(";")[0]
    # 3. bad documents: refused with their codes; nothing accepted is harmed
    before = await _snapshot(hub, depts)
    for kind in ("missing_checksum", "bad_uscc"):
        push = await platform.publish(sim.hostile_document(kind), check=False)
        report.refused[kind] = ",".join(platform.refused_by_hub.get(push.wjbh, ["accepted!"]))
    # a document pushed with a key that is not the platform's (same key id): E_SIGNATURE
    from security.signing import generate_key

    real_key = platform.signer
    platform.signer = generate_key("ed25519", PLATFORM_KEY_ID)
    try:
        push = await platform.publish(sim.award_document(3, "GC"))
    finally:
        platform.signer = real_key
    report.forged_push = ",".join(platform.refused_by_hub.get(push.wjbh, ["accepted!"]))
    await asyncio.sleep(0.3)  # give a wrongly routed record the time to show up
    report.quarantined = len(await hub.store.quarantined("trading"))
    report.unharmed = (await _snapshot(hub, depts)) == before
    # 4. signatures: the departments verified the hub's deliveries (they refuse with BM401
    # otherwise), the platform the departments' signed attachment downloads
    report.signatures_checked = all(
        d.keys is not None and d.refused == [] for d in depts.values()
    ) and {key for _m, _p, status, key in platform.requests if status == 200} >= {"zjj-1", "czj-1"}


async def _delivered(hub: Any, message_id: str) -> bool:
    trace = await hub.store.trace(message_id)
    return trace is not None and all(d.state.name == "DELIVERED" for d in trace.deliveries)


def _wjbh(document: bytes) -> str:
    from transforms.xmljson import parse_xml

    return str(parse_xml(document).get("wjbh"))


async def _snapshot(hub: Any, depts: dict[str, Any]) -> tuple[Any, ...]:
    counts = await hub.store.counts()
    return (
        counts.get("messages"),
        counts.get("delivered"),
        tuple(sorted((n, tuple(d.received)) for n, d in depts.items())),
    )
