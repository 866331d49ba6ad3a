"""The 12345 flow the demo runs: the hub on ``examples/platforms/12345`` (copied into a work
folder, SQLite store there) with the simulated 12345 platform and two department systems, all
on 127.0.0.1.

1. the platform dispatches a complaint (投诉) with a photo attached by reference, signed; the
   hub maps it (requester masked), records it, routes it to 上城区市场监管局, which fetches the
   photo and checks its SHA-256;
2. the department signs (签收), handles (办理), answers (回复) and closes (办结) it; each step
   reaches the platform as a signed 流转记录 in its own schema, and the platform answers with a
   receipt;
3. a second 签收 of the closed order is refused (``E_ORDER_STATE``);
4. an urgent order (燃气泄漏, danger to life) dispatched to the water company 45 minutes ago
   is past its 15-minute signing limit: the deadline watch raises ``jghub_12345_orders_overdue``
   and emits a 督办 that reaches the platform and the department.

``run_hotline_flow(work)`` returns a :class:`HotlineFlowReport`; ``jghub demo`` prints
``report.lines()``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import importlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from adapters import common
from adapters.common import environment, free_port, serving, started, until

__all__ = [
    "EXAMPLE",
    "HotlineFlowReport",
    "HotlineStack",
    "copy_example",
    "hotline_environment",
    "hotline_stack",
    "run_hotline_flow",
]

_until = partial(until, flow="12345")
#: set the variables the example files read while they load (:func:`adapters.common.environment`)
hotline_environment = environment

#: the example configuration the flow runs
EXAMPLE = Path(__file__).resolve().parent.parent.parent / "examples" / "platforms" / "12345"

CST = dt.timezone(dt.timedelta(hours=8))


def _mod(name: str) -> Any:
    return importlib.import_module(f"adapters.12345.{name}")


@dataclass
class HotlineFlowReport:
    """What the flow did, for the demo's summary and the tests."""

    order_no: str = ""
    dispatched_status: int | None = None
    dept_received: bool = False
    requester_masked: str = ""
    attachment_verified: bool = False
    platform_actions: list[str] = field(default_factory=list)
    receipts: int = 0
    history: list[str] = field(default_factory=list)
    refused_code: str = ""
    refused_detail: str = ""
    urgent_order_no: str = ""
    overdue_metric: float = 0.0
    supervision_at_platform: bool = False
    supervision_at_department: bool = False

    @property
    def ok(self) -> bool:
        return (
            self.dispatched_status == 202
            and self.dept_received
            and self.attachment_verified
            and self.platform_actions == ["签收", "办理", "回复", "办结"]
            and self.receipts >= 4
            and self.refused_code == "E_ORDER_STATE"
            and self.overdue_metric >= 1
            and self.supervision_at_platform
            and self.supervision_at_department
        )

    def lines(self) -> list[str]:
        """A readable summary."""
        return [
            f"12345 工单 {self.order_no}: pushed signed by the platform (HTTP "
            f"{self.dispatched_status}), at 上城区市场监管局: {self.dept_received}, requester "
            f"{self.requester_masked}, attachment SHA-256 verified: {self.attachment_verified}",
            f"lifecycle back at the platform: {' → '.join(self.platform_actions)} "
            f"({self.receipts} receipts)",
            f"history in the hub: {' → '.join(self.history)}",
            f"impossible transition refused: {self.refused_code} "
            f"({self.refused_detail.split(';')[0]})",
            f"overdue {self.urgent_order_no}: jghub_12345_orders_overdue={self.overdue_metric:g}, "
            f"督办 at the platform: {self.supervision_at_platform}, at the department: "
            f"{self.supervision_at_department}",
        ]


def _secret() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def copy_example(work: Path) -> Path:
    """Copy the example hub file and systems into ``work``; return the hub file there."""
    return common.copy_example(EXAMPLE, work, ("systems", "samples"), fresh=True)


@dataclass
class HotlineStack:
    """A running 12345 set-up: the hub (``hub``, its API at ``base``), the platform simulator
    and the two department systems."""

    hub: Any
    app: Any
    base: str
    sim: Any
    scjg: Any
    water: Any
    work: Path


@contextlib.asynccontextmanager
async def hotline_stack(
    work: Path, *, edit: Callable[[Path], None] | None = None
) -> AsyncIterator[HotlineStack]:
    """Start the simulators and the hub on the example configuration copied into ``work``
    (SQLite store there); stop everything on exit. ``edit(work)`` may change the copied files
    before the hub loads them (tests shorten retry delays)."""

    from hub.api import HUB_KEY, create_app
    from hub.config import load_config
    from security.keystore import Keystore, ManagedKey
    from security.signing import HmacSha256Signer

    sim_mod, dept_mod = _mod("simulator"), _mod("department")
    hub_secret, platform_secret = _secret(), _secret()
    tokens = {"dept-scjg": secrets.token_urlsafe(16), "dept-water": secrets.token_urlsafe(16)}
    hub_verifier = HmacSha256Signer("jghub-12345-1", base64.b64decode(hub_secret))
    sim = sim_mod.HotlineSimulator(
        keys=Keystore([ManagedKey(hub_verifier, owner="jghub")]),
        signer=HmacSha256Signer("zj12345-1", base64.b64decode(platform_secret)),
    )
    scjg = dept_mod.HotlineDepartment(
        system="dept-scjg",
        title="上城区市场监督管理局",
        code="SCJG330102",
        token=tokens["dept-scjg"],
    )
    water = dept_mod.HotlineDepartment(
        system="dept-water", title="杭州市水务集团", code="SWJT330100", token=tokens["dept-water"]
    )
    async with started(sim, scjg, water):
        port = free_port()
        env = {
            "JGHUB_PORT": str(port),
            "HOTLINE12345_HUB_SECRET": hub_secret,
            "HOTLINE12345_PLATFORM_SECRET": platform_secret,
            "HOTLINE12345_HASH_SALT": secrets.token_urlsafe(16),
            "HOTLINE12345_PLATFORM_URL": sim.lzjl_url,
            "HOTLINE12345_CHECK_INTERVAL": "3600",  # the flow checks deadlines itself
            "DEPT_SCJG_12345_URL": scjg.url,
            "DEPT_WATER_12345_URL": water.url,
            "DEPT_SCJG_TOKEN": tokens["dept-scjg"],
            "DEPT_WATER_TOKEN": tokens["dept-water"],
        }
        hub_file = copy_example(work)
        if edit is not None:
            edit(work)
        with environment(env):  # the keys are read when the app is made, too
            app = create_app(load_config(hub_file))
        async with serving(app, port):
            base = f"http://127.0.0.1:{port}"
            sim.hub_url = scjg.hub_url = water.hub_url = base
            yield HotlineStack(app[HUB_KEY], app, base, sim, scjg, water, work)


async def run_hotline_flow(work: Path, *, timeout: float = 30.0) -> HotlineFlowReport:
    """Run the flow (module docstring) and return what happened."""
    report = HotlineFlowReport()
    async with hotline_stack(work) as st:
        await _flow(st.hub, st.base, st.sim, st.scjg, st.water, report, timeout)
    return report


async def _flow(
    hub: Any,
    base: str,
    sim: Any,
    scjg: Any,
    water: Any,
    report: HotlineFlowReport,
    timeout: float,
) -> None:
    import aiohttp

    plugin = _mod("plugin")
    # 1. a complaint with a photo, dispatched to 上城区市场监管局
    photo = sim.add_file("现场照片.jpg", b"\xff\xd8\xff\xe0" + secrets.token_bytes(2048))
    order = sim.new_order(attachments=[photo])
    no = report.order_no = order["GDBH"]
    report.dispatched_status, _ = await sim.dispatch(order)
    await _until(lambda: no in scjg.orders, "the order at the department", timeout)
    got = scjg.orders[no]
    report.dept_received = True
    report.requester_masked = f"{got['requester']['name']} {got['requester']['phone']}"
    report.attachment_verified = got["attachments"][0]["sha256"] == photo["SHA256"]
    # 2. its handling, step by step, back to the platform
    now = dt.datetime.now(CST).replace(microsecond=0)
    steps = [
        ("sign", {}),
        ("handle", {"opinion": "已联系商户负责人，责令限期退款"}),
        ("reply", {"opinion": "商户同意三日内退还预付卡余额"}),
        ("close", {"opinion": "来电人确认已收到退款，办结"}),
    ]
    for i, (event, extra) in enumerate(steps):
        status, answer = await scjg.act(
            no, event, occurred_at=now + dt.timedelta(seconds=i), **extra
        )
        if status != 202:
            raise RuntimeError(f"12345 flow: {event} refused: {answer}")
    await _until(lambda: len(sim.actions_of(no)) >= 4, "the lifecycle at the platform", timeout)
    report.platform_actions = sim.actions_of(no)
    report.receipts = sum(1 for d in sim.lzjl[no] if d["LZBH"] in sim.receipts)
    report.history = [e["name"] for e in await plugin.book_of(hub).history(no)]
    # 3. an impossible transition: 签收 of a closed order
    status, answer = await scjg.act(no, "sign")
    report.refused_code = str(answer.get("code", status))
    report.refused_detail = str(answer.get("detail", ""))
    # 4. an urgent order nobody signed: overdue, 督办
    urgent = sim.new_order(
        sqlx="4",
        jjcd="1",
        cbdw="杭州市水务集团",
        cbdwdm="SWJT330100",
        xzqh=330106,
        accepted=now - dt.timedelta(minutes=45),
        BT="燃气泄漏气味",
        SQNR="楼道内有明显燃气味，请立即处理。",
    )
    report.urgent_order_no = urgent["GDBH"]
    await sim.dispatch(urgent)
    await _until(
        lambda: urgent["GDBH"] in water.orders, "the urgent order at the water company", timeout
    )
    watch = plugin.watch_of(hub)
    assert watch is not None
    await watch.check_now()
    async with aiohttp.ClientSession() as s, s.get(f"{base}/metrics") as r:
        text = await r.text()
    for line in text.splitlines():
        if line.startswith('jghub_12345_orders_overdue{department="SWJT330100"}'):
            report.overdue_metric = float(line.rsplit(" ", 1)[1])
    await _until(
        lambda: (
            "督办" in sim.actions_of(urgent["GDBH"])
            and any(e.get("event") == "supervise" for e in water.events)
        ),
        "the 督办 at the platform and the department",
        timeout,
    )
    report.supervision_at_platform = True
    report.supervision_at_department = True
