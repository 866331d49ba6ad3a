"""12345 end to end on loopback, on the example configuration: the platform simulator pushes
signed work orders in its own schema, the hub maps, records and routes them to the department
system, the department's handling goes back to the platform signed by the hub and mapped into
the platform's 流转记录, which answers with receipts. Failure scenarios: an unsigned or forged
push, a malformed order, an impossible transition, the platform down, the platform refusing a
record, an attachment whose bytes do not match its checksum — each refused with its code or
retried, and nothing lost."""

from __future__ import annotations

import datetime as dt
import importlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from hub.store.base import DeliveryState
from tests.helpers import wait_until

demo = importlib.import_module("adapters.12345.demo")
plugin = importlib.import_module("adapters.12345.plugin")

CST = dt.timezone(dt.timedelta(hours=8))


def fast_retries(work: Path) -> None:
    """Shorter retry delays than production, so an outage test takes a second, not minutes."""
    for path in (work / "systems").glob("*.yaml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if "outbound" in doc:
            doc["retry"] = {"max_attempts": 50, "base_delay": 0.02, "max_delay": 0.1}
            doc["circuit"] = {"failure_threshold": 1000, "reset_timeout": 0.05}
            path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


@pytest.fixture
async def st(tmp_path: Path) -> AsyncIterator[Any]:
    async with demo.hotline_stack(tmp_path, edit=fast_retries) as stack:
        yield stack


def now() -> dt.datetime:
    return dt.datetime.now(CST).replace(microsecond=0)


async def dispatched(st: Any, **kw: Any) -> str:
    """A new order from the platform, waited for at its department; its number."""
    order = st.sim.new_order(**kw)
    status, answer = await st.sim.dispatch(order)
    assert status == 202, answer
    dept = st.water if order["CBDWDM"] == "SWJT330100" else st.scjg
    await wait_until(lambda: order["GDBH"] in dept.orders, timeout=10)
    return str(order["GDBH"])


async def test_an_order_travels_and_its_handling_returns(st: Any) -> None:
    photo = st.sim.add_file("现场照片.jpg", b"\xff\xd8" + bytes(range(256)) * 8)
    no = await dispatched(st, attachments=[photo])
    got = st.scjg.orders[no]
    # the mapping: canonical names, codes, masked requester, attachment by reference
    assert got["category"] == "complaint" and got["urgency"] == "general"
    assert got["channel"] == "phone" and got["region_code"] == "330102"
    assert got["requester"]["name"] == "王**" and got["requester"]["phone"] == "138****5678"
    assert "13812345678" not in orjson.dumps(got).decode()
    assert got["attachments"][0]["url"] == photo["FJDZ"]
    assert got["attachments"][0]["sha256"] == photo["SHA256"]
    assert st.water.orders == {}  # routed by department code only
    t0 = now()
    answer_by = dt.datetime.fromisoformat((await plugin.book_of(st.hub).get(no))["answer_by"])
    later = answer_by + dt.timedelta(days=7)
    steps = [
        ("sign", {}),
        ("handle", {"opinion": "已约谈商户"}),
        ("extension_request", {"reason": "需商户提供账目", "new_deadline": later.isoformat()}),
        ("reply", {"opinion": "商户同意退款"}),
        ("close", {"opinion": "已退款，办结"}),
    ]
    for i, (event, extra) in enumerate(steps):
        status, answer = await st.scjg.act(
            no, event, occurred_at=t0 + dt.timedelta(seconds=i), **extra
        )
        assert status == 202, answer
    await wait_until(lambda: len(st.sim.lzjl.get(no, [])) == 5, timeout=10)
    # in order, in the platform's schema, each with a receipt
    lz = st.sim.lzjl[no]
    assert [d["DZLX"] for d in lz] == ["04", "05", "08", "06", "10"]
    assert st.sim.actions_of(no) == ["签收", "办理", "延期申请", "回复", "办结"]
    assert lz[0]["CZSJ"] == t0.strftime("%Y%m%d%H%M%S") and lz[0]["CBDWDM"] == "SCJG330102"
    assert lz[2]["YY"] == "需商户提供账目" and lz[2]["YQZ"] == later.strftime("%Y%m%d%H%M%S")
    assert lz[4]["CLYJ"] == "已退款，办结"
    assert all(d["LZBH"] in st.sim.receipts for d in lz)
    assert st.sim.refused == []  # every delivery carried a valid hub signature
    # the hub keeps the receipt in the message's trace, and the order's history
    msg = st.scjg.answers[lz[0]["LZBH"]][1]["id"]
    trace = await st.hub.store.trace(msg)
    assert trace is not None and trace.status() == "delivered"
    assert any(st.sim.receipts[lz[0]["LZBH"]] in e.detail for e in trace.events)
    book = plugin.book_of(st.hub)
    history = await book.history(no)
    assert [e["event"] for e in history] == [
        "accept", "dispatch", "sign", "handle", "extension_request", "reply", "close",
    ]  # fmt: skip
    order = await book.get(no)
    assert order["state"] == "closed" and order["answer_by"] == later.isoformat()
    # the platform's own steps afterwards: 回访, 评价 (dissatisfied), 发回重办
    for dzlx, extra in (
        ("11", {"CLYJ": "已回访"}),
        ("12", {"MYD": "3"}),
        ("13", {"YY": "未退全款"}),
    ):
        status, answer = await st.sim.push_event(no, dzlx, **extra)
        assert status == 202, answer
    await wait_until(lambda: sum(e["event"] == "reopen" for e in st.scjg.events) == 1, timeout=10)
    assert [e["event"] for e in st.scjg.events] == ["revisit", "evaluate", "reopen"]
    assert (await book.get(no))["state"] == "dispatched"
    # the history over HTTP (全程留痕), and the open orders
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{st.base}/v1/hotline12345/orders/{no}") as r:
            doc = await r.json()
        assert r.status == 200 and doc["state"] == "dispatched" and len(doc["events"]) == 10
        assert doc["events"][-1]["name"] == "发回重办" and "event_ids" not in doc
        async with s.get(f"{st.base}/v1/hotline12345/orders") as r:
            assert [o["order_no"] for o in (await r.json())["items"]] == [no]
        async with s.get(f"{st.base}/v1/hotline12345/orders/ZJ-NONE") as r:
            assert r.status == 404 and (await r.json())["code"] == "E_NOT_FOUND"


async def test_unsigned_and_forged_pushes_are_refused(st: Any) -> None:
    from security.signing import HmacSha256Signer

    order = st.sim.new_order()
    url = f"{st.base}/v1/systems/platform-12345/records?dataset=work_order"
    async with aiohttp.ClientSession() as s, s.post(url, json=order) as r:
        assert r.status == 401 and (await r.json())["code"] == "E_SIGNATURE"
    real = st.sim.signer
    st.sim.signer = HmacSha256Signer("zj12345-1", b"x" * 32)  # the right id, a wrong secret
    status, answer = await st.sim.dispatch(order)
    assert status == 401 and answer["code"] == "E_SIGNATURE"
    st.sim.signer = real
    assert await plugin.book_of(st.hub).get(order["GDBH"]) is None
    status, _ = await st.sim.dispatch(order)
    assert status == 202
    # nobody outside the hub can post as its deadline watch
    fake = {"event_id": "DB-x", "order_no": order["GDBH"], "event": "supervise"}
    watch_url = f"{st.base}/v1/systems/hotline-watch/records"
    async with aiohttp.ClientSession() as s, s.post(watch_url, json=fake) as r:
        assert r.status == 401 and (await r.json())["code"] == "E_SIGNATURE"


async def test_malformed_orders_are_quarantined_with_their_codes(st: Any) -> None:
    bad_region = st.sim.new_order(xzqh=990102)
    bad_code = st.sim.new_order(sqlx="9")
    for order in (bad_region, bad_code):
        status, _ = await st.sim.dispatch(order)
        assert status == 422
    kept = await st.hub.store.quarantined(source="platform-12345")
    assert {(q.code, q.field) for q in kept} == {
        ("E_SCHEMA", "region_code"),
        ("E_MAPPING", "category"),
    }
    assert any(bad_region["GDBH"] in q.raw for q in kept)  # kept as received
    assert st.scjg.orders == {}


async def test_an_impossible_transition_is_refused_and_kept(st: Any) -> None:
    no = await dispatched(st)
    status, answer = await st.scjg.act(no, "close", opinion="直接办结")
    assert status == 409 and answer["code"] == "E_ORDER_STATE"
    assert f"work order {no}" in answer["detail"] and "state dispatched" in answer["detail"]
    assert "event close" in answer["detail"]
    # another department may not act on it either
    status, answer = await st.water.act(no, "sign")
    assert status == 409 and answer["field"] == "department_code"
    kept = await st.hub.store.quarantined(source="dept-scjg")
    assert [q.code for q in kept] == ["E_ORDER_STATE"]
    await st.scjg.act(no, "sign")
    await wait_until(lambda: st.sim.actions_of(no) == ["签收"], timeout=10)


async def test_a_platform_outage_loses_nothing(st: Any) -> None:
    no = await dispatched(st)
    await st.sim.go_down()
    t0 = now()
    for i, event in enumerate(["sign", "handle", "handle"]):
        status, _ = await st.scjg.act(no, event, occurred_at=t0 + dt.timedelta(seconds=i))
        assert status == 202  # the hub took them while the platform is down
    first = st.scjg.answers[next(iter(st.scjg.answers))][1]["id"]

    async def failed_once() -> bool:
        trace = await st.hub.store.trace(first)
        return trace is not None and any(
            d.attempts >= 1 and d.state != DeliveryState.DELIVERED for d in trace.deliveries
        )

    await wait_until(failed_once, timeout=10, what="a failed attempt while the platform is down")
    assert st.sim.lzjl.get(no, []) == []
    await st.sim.come_up()
    await wait_until(lambda: len(st.sim.lzjl.get(no, [])) == 3, timeout=15)
    assert st.sim.actions_of(no) == ["签收", "办理", "办理"]  # in order, once each


async def test_a_slow_platform_gets_each_record_once(tmp_path: Path) -> None:
    def short_timeout(work: Path) -> None:
        fast_retries(work)
        path = work / "systems" / "platform-12345.yaml"
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        doc["outbound"]["timeout"] = 0.3
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")

    async with demo.hotline_stack(tmp_path, edit=short_timeout) as st:
        no = await dispatched(st)
        st.sim.behaviour.latency = 0.5  # slower than the hub waits: the hub times out, retries
        status, answer = await st.scjg.act(no, "sign")
        assert status == 202
        first = answer["id"]

        async def timed_out() -> bool:
            trace = await st.hub.store.trace(first)
            return trace is not None and any(
                "timeout" in (d.last_error or "") for d in trace.deliveries
            )

        await wait_until(timed_out, timeout=10, what="a timed-out attempt")
        st.sim.behaviour.latency = 0.0

        async def delivered() -> bool:
            trace = await st.hub.store.trace(first)
            return trace is not None and trace.status() == "delivered"

        await wait_until(delivered, timeout=10, what="the delivery")
        # the platform applied it once, however often it was sent (de-duplicated on LZBH)
        assert st.sim.actions_of(no) == ["签收"] and len(st.sim.receipts) == 1


async def test_a_refused_record_is_dead_lettered_and_replayed(st: Any) -> None:
    no = await dispatched(st)
    st.sim.behaviour.refuse_next = 1  # its validator refuses the next 流转记录 (400 RX4002)
    t0 = now()
    await st.scjg.act(no, "sign", occurred_at=t0)
    await st.scjg.act(no, "handle", occurred_at=t0 + dt.timedelta(seconds=1))

    async def dead() -> list[Any]:
        return list(await st.hub.store.dead_letters(target="platform-12345"))

    await wait_until(dead, timeout=10)
    (letter,) = await dead()
    assert letter.last_status == 400 and "RX4002" in letter.reason
    # ordered per order: 办理 waits behind the dead 签收, it does not overtake it
    assert st.sim.lzjl.get(no, []) == []
    await st.hub.store.replay([letter.delivery_id], time.time())
    st.hub.wake_targets(["platform-12345"])
    await wait_until(lambda: len(st.sim.lzjl.get(no, [])) == 2, timeout=10)
    assert st.sim.actions_of(no) == ["签收", "办理"]


async def test_the_platform_refuses_an_unsigned_hub(st: Any) -> None:
    from security.keystore import Keystore

    no = await dispatched(st)
    st.sim.keys = Keystore()  # it no longer knows the hub's key
    await st.scjg.act(no, "sign")
    await wait_until(lambda: bool(st.sim.refused), timeout=10)
    assert st.sim.refused[0][0] == "RX4010"
    await wait_until(lambda: st.hub.store.dead_letters(target="platform-12345"), timeout=10)
    letters = await st.hub.store.dead_letters(target="platform-12345")
    assert letters[0].last_status == 401 and "RX4010" in letters[0].reason


async def test_an_attachment_that_fails_its_checksum_is_dead_lettered(st: Any) -> None:
    good = st.sim.add_file("照片.jpg", b"real bytes of the photo")
    forged = {**good, "SHA256": "0" * 64}  # the platform's record and the file disagree
    order = st.sim.new_order(attachments=[forged])
    status, _ = await st.sim.dispatch(order)
    assert status == 202  # by reference: the hub cannot see the bytes, the department can

    async def dead() -> list[Any]:
        return list(await st.hub.store.dead_letters(target="dept-scjg"))

    await wait_until(dead, timeout=10)
    (letter,) = await dead()
    assert letter.last_status == 422 and "E_ATTACHMENT_CHECKSUM" in letter.reason
    assert st.scjg.refused[0][:2] == (order["GDBH"], "E_ATTACHMENT_CHECKSUM")
    assert order["GDBH"] not in st.scjg.orders
    trace = await st.hub.store.trace(letter.message_id)
    assert trace is not None and trace.deliveries[0].state == DeliveryState.DEAD


async def test_the_deadline_watch_supervises_an_overdue_order(st: Any) -> None:
    no = await dispatched(
        st,
        sqlx="2",
        jjcd="2",  # 水电气暖: sign within 30 minutes
        cbdw="杭州市水务集团",
        cbdwdm="SWJT330100",
        xzqh=330106,
        accepted=now() - dt.timedelta(hours=1),
    )
    watch = plugin.watch_of(st.hub)
    assert watch is not None and watch.checks >= 1  # the schedule ran once at start
    alerts = await watch.check_now()
    assert [(a.order_no, a.kind) for a in alerts] == [(no, "sign_overdue")]
    await wait_until(lambda: "督办" in st.sim.actions_of(no), timeout=10)
    lz = st.sim.lzjl[no][-1]
    assert lz["DZLX"] == "07" and lz["DBLX"] == "QSCS" and "签收超时" in lz["YY"]
    await wait_until(lambda: any(e["event"] == "supervise" for e in st.water.events), timeout=10)
    assert st.water.events[0]["supervision"] == "sign_overdue"
    # recorded in the order's history; a second check raises nothing new
    assert (await plugin.book_of(st.hub).history(no))[-1]["event"] == "supervise"
    assert await watch.check_now() == []
    async with aiohttp.ClientSession() as s, s.get(f"{st.base}/metrics") as r:
        text = await r.text()
    assert 'jghub_12345_orders_overdue{department="SWJT330100"} 1.0' in text
    assert 'jghub_12345_orders_open{department="SWJT330100"} 1.0' in text
    assert 'jghub_12345_supervisions_total{department="SWJT330100",kind="sign_overdue"} 1.0' in text
    # signed now: no longer overdue at the next check
    await st.water.act(no, "sign")
    await watch.check_now()
    async with aiohttp.ClientSession() as s, s.get(f"{st.base}/metrics") as r:
        text = await r.text()
    assert 'jghub_12345_orders_overdue{department="SWJT330100"} 0.0' in text
