"""The ops dashboard in a real headless Chromium (Debian's /usr/bin/chromium driven by
Playwright): log in as ops, see a target go down and come back, find a message by id, open its
trace, replay a dead letter (confirmed, audited) and see it delivered. Screenshots of the main
pages go to docs/img/. One browser for the module's one scenario."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiohttp import web

from contracts.samples import sample_inspection
from hub.api import create_app
from hub.config import load_config
from hub.peers import bound_port
from hub.peers.sink import Sink, SinkBehaviour
from hub.runtime import Hub
from tests.helpers import wait_until
from tests.test_api_security import _token, secure_config

CHROMIUM = "/usr/bin/chromium"
IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
REJECT_NO = sample_inspection(77)["inspection_no"]

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="make test installs Debian's chromium"
)


class Rejecting:
    """The sink refuses one record (422: dead letter) until the target is fixed."""

    def __init__(self) -> None:
        self.on = True

    def __call__(self, record: dict[str, Any]) -> str | None:
        if self.on and record.get("inspection_no") == REJECT_NO:
            return "检查编号格式不被接收 (inspection_no refused)"
        return None


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, Hub, Sink, Rejecting]]:
    rejecting = Rejecting()
    sink = Sink("national", SinkBehaviour(reject=rejecting))
    await sink.start()
    path, _ = secure_config(
        tmp_path,
        targets={"national": {"url": sink.url}},
        retry={"max_attempts": 200, "base_delay": 0.01, "max_delay": 0.1},
        circuit={"failure_threshold": 3, "reset_timeout": 0.3},
    )
    doc = yaml.safe_load(path.read_text())
    doc["monitoring"] = {"probe_interval": 0.3, "sample_interval": 0.3, "probe_timeout": 0.5}
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    cfg = load_config(path)
    hub = Hub(cfg)
    runner = web.AppRunner(create_app(cfg, hub=hub), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{bound_port(site)}", hub, sink, rejecting
    finally:
        await runner.cleanup()
        await sink.stop()


async def _audit_actions(hub: Hub) -> list[str]:
    out = []
    async for line in hub.guard.audit.export(dt.date(2000, 1, 1), dt.date(2100, 1, 1)):
        d = orjson.loads(line)
        if "action" in d:
            out.append(d["action"])
    return out


async def test_ops_dashboard_in_chromium(served: tuple[str, Hub, Sink, Rejecting]) -> None:
    from playwright.async_api import async_playwright, expect

    base, hub, sink, rejecting = served
    IMG.mkdir(parents=True, exist_ok=True)
    ops = await _token(hub, "ops")
    system_token = await _token(hub, "system", system="dept-a")
    first = await hub.ingest_records("dept-a", [sample_inspection(i) for i in range(20)])
    await wait_until(lambda: len(sink.applied) == 20, what="first deliveries")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1360, "height": 820})
        page.set_default_timeout(20_000)

        # not logged in: sent to the login page; a system's token is refused
        await page.goto(f"{base}/dashboard")
        await expect(page).to_have_url(f"{base}/dashboard/login?next=/dashboard")
        await page.fill("#token", system_token)
        await page.click("#login")
        await expect(page.locator("body")).to_contain_text("E_FORBIDDEN")
        await page.fill("#token", ops)
        await page.click("#login")
        await expect(page).to_have_url(f"{base}/dashboard")
        row = page.locator('#targets tr[data-target="national"]')
        await expect(row.locator('[data-state="up"]')).to_be_visible()
        await expect(page.locator("h2").first).to_contain_text("目标系统")  # Chinese by default
        await page.screenshot(path=str(IMG / "dashboard-overview.png"), full_page=True)

        # the target goes down during traffic: the page (refreshing itself) shows it
        await sink.go_down()
        await hub.ingest_records("dept-a", [sample_inspection(i) for i in range(20, 30)])
        await expect(
            row.locator('[data-state="circuit_open"], [data-state="down"]')
        ).to_be_visible()
        await page.screenshot(path=str(IMG / "dashboard-target-down.png"), full_page=True)
        # ... and comes back: everything queued is delivered, the state returns to up
        await sink.come_up()
        await wait_until(lambda: len(sink.applied) == 30, what="deliveries after the outage")
        await expect(row.locator('[data-state="up"]')).to_be_visible()
        await expect(row.locator("td.queue")).to_have_text("0")

        # a record the target refuses becomes a dead letter
        dead = await hub.ingest_records("dept-a", [sample_inspection(77)])
        mid = dead.ids[0]
        await expect(row.locator("td.dead")).to_have_text("1")

        # find it by id and open its trace
        await page.click("text=消息查询")
        await page.select_option("#by", "id")
        await page.fill("#q", mid)
        await page.click("#find")
        await expect(page).to_have_url(f"{base}/dashboard/messages/{mid}")
        await expect(page.locator("#mstatus")).to_have_text("dead-lettered")
        timeline = page.locator("#timeline li")
        await expect(timeline.first).to_contain_text("received")
        await expect(page.locator("#timeline")).to_contain_text("dead-lettered")
        await expect(page.locator("#timeline")).to_contain_text("inspection_no refused")
        await page.screenshot(path=str(IMG / "dashboard-trace.png"), full_page=True)
        # search by source finds earlier messages too
        await page.goto(f"{base}/dashboard/messages?by=source&q=dept-a")
        await expect(
            page.locator(f'#results a[href="/dashboard/messages/{first.ids[0]}"]')
        ).to_be_visible()

        # the dead letter, with its reason; replay asks for confirmation (dismissed: nothing)
        await page.goto(f"{base}/dashboard/dlq")
        dl = page.locator("#dlq tr[data-delivery]")
        await expect(dl).to_have_count(1)
        await expect(dl.locator("td.reason")).to_contain_text("inspection_no refused")
        await page.screenshot(path=str(IMG / "dashboard-dead-letters.png"), full_page=True)
        page.once("dialog", lambda d: d.dismiss())
        await dl.locator("button.replay").click()
        await expect(dl).to_have_count(1)
        # the target is fixed; replay, confirmed
        rejecting.on = False
        page.once("dialog", lambda d: d.accept())
        await dl.locator("button.replay").click()
        await expect(page.locator("#replayed")).to_be_visible()
        await wait_until(lambda: mid in sink.applied, what="the replayed delivery")
        await page.goto(f"{base}/dashboard/messages/{mid}")
        await expect(page.locator("#mstatus")).to_have_text("delivered")
        await expect(page.locator("#timeline")).to_contain_text("replayed")

        # English on request, and it sticks (cookie)
        await page.click("#lang")
        await expect(page.locator("h2").first).to_contain_text("Message")
        await page.goto(f"{base}/dashboard")
        await expect(page.locator("h2").first).to_contain_text("Targets")
        await page.screenshot(path=str(IMG / "dashboard-overview-en.png"), full_page=True)
        await browser.close()

    actions = await _audit_actions(hub)
    assert "login" in actions and "dlq.replay" in actions
    assert (await hub.guard.audit.verify()).ok
