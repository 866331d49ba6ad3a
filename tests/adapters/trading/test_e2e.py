"""End to end through the hub, on loopback: the trading platform's simulator pushes signed XML
documents, the hub checks signature, XSD and contract, maps and commits them and delivers the
award results, signed, to the supervising department of the project's type in that
department's own schema; the departments answer with receipts. Failure scenarios: a hub that
is down, a department that is down, a department that refuses (signature, attachment digest),
a platform that is down while an attachment is fetched, hostile documents — none loses
anything."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.trading import simulator as sim
from adapters.trading.demo import TradingSetup, start_trading
from security.httpsig import sign_request, verify_detached
from security.keystore import Keystore, ManagedKey
from security.signing import generate_key
from tests.helpers import wait_until


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[TradingSetup]:
    s = await start_trading(tmp_path)
    try:
        yield s
    finally:
        await s.stop()


def _delivered(setup: TradingSetup) -> dict[str, int]:
    return {n: len(d.received) for n, d in setup.departments.items()}


async def _trace(setup: TradingSetup, message_id: str) -> Any:
    trace = await setup.hub.store.trace(message_id)
    assert trace is not None
    return trace


async def _settled(setup: TradingSetup, message_id: str) -> Any:
    """The trace once every delivery of the message is delivered (the department may have
    answered a moment before the hub wrote down its answer)."""

    async def done() -> bool:
        trace = await _trace(setup, message_id)
        return all(d.state.name == "DELIVERED" for d in trace.deliveries)

    await wait_until(done, what=f"deliveries of {message_id} settled")
    return await _trace(setup, message_id)


async def test_a_project_flows_in_and_its_award_reaches_zjj_signed_mapped_with_receipt(
    setup: TradingSetup,
) -> None:
    platform, zjj = setup.platform, setup.departments["zjj"]
    ref = platform.add_attachment("FJ-9", b"%PDF-1.4 notice 9\n", "中标通知书.pdf")
    docs = [
        sim.project_document(9, "GC", attachments=[ref]),
        sim.announcement_document(9, "GC"),
        sim.bid_opening_document(9, "GC"),
        sim.award_document(9, "GC", attachments=[ref]),
    ]
    for doc in docs:
        push = await platform.publish(doc)
        assert push.status == 202, push
    assert platform.outbox == [] and len(platform.acknowledged) == 4
    await wait_until(lambda: len(zjj.received) == 1, what="the award at 住建局")
    [(key, record)] = zjj.received.items()
    award_id = platform.acknowledged["WJ-JG-000009-1"]
    assert key == award_id  # the hub's message id is the Idempotency-Key
    assert record == {
        "jgbh": "JG-330106-2024-0009",
        "xmbh": "JY-330106-2024-0009",
        "xmmc": "西湖区工程建设项目0009",
        "gslx": "中标结果公告",
        "zbrmc": "杭州市西湖区招标单位0009",
        "zbrdm": sim.make_uscc("11", "330106", 509),
        "zbdwmc": "浙江投标企业0009-0有限公司",
        "zbdwdm": sim.bidders(9)[0]["jy:TYDM"],
        "zbje": "1109.00",
        "zbrq": "2024-06-03",
        "xzqh": "330106",
        "fj": [{"mc": "中标通知书.pdf", "dz": ref["uri"], "zy": ref["sha256"], "dx": ref["size"]}],
        "sjly": "公共资源交易平台",
    }
    # the department verified the hub's signature (it refuses otherwise) and the attachment,
    # fetching it with its own signed request that the platform verified
    assert zjj.refused == [] and zjj.verified_attachments == {ref["uri"]: ref["sha256"]}
    assert ("GET", "/ggzy/v1/fj/FJ-9", 200, "zjj-1") in platform.requests
    assert _delivered(setup) == {"zjj": 1, "czj": 0, "zrzyj": 0, "gzw": 0}
    trace = await _settled(setup, award_id)
    assert [(d.target, d.state.name) for d in trace.deliveries] == [("zjj", "DELIVERED")]
    assert any(f"receipt={zjj.receipts[award_id]}" in e.detail for e in trace.events)
    # projects, announcements and openings are collected, routed nowhere
    for wjbh in ("WJ-XM-000009-1", "WJ-GG-000009", "WJ-KB-000009"):
        t = await _trace(setup, platform.acknowledged[wjbh])
        assert t.deliveries == [] and t.source == "trading"


async def test_award_results_go_to_the_department_of_their_project_type(
    setup: TradingSetup,
) -> None:
    for i, xmlx in enumerate(["GC", "CG", "TD", "KY", "CQ", "QT"], start=20):
        push = await setup.platform.publish(sim.award_document(i, xmlx))
        assert push.status == 202
    want = {"zjj": 1, "czj": 1, "zrzyj": 2, "gzw": 1}
    await wait_until(lambda: _delivered(setup) == want, what=f"deliveries {want}")
    czj_record = next(iter(setup.departments["czj"].received.values()))
    assert czj_record["cgxmbh"] == "JY-330106-2024-0021" and czj_record["gglx"] == "02"
    assert czj_record["gysxydm"] == sim.bidders(21)[0]["jy:TYDM"]
    gzw_record = next(iter(setup.departments["gzw"].received.values()))
    assert set(gzw_record) >= {"cqxmbh", "srf", "srfdm", "jyje", "jyrq"}
    other = await _trace(setup, setup.platform.acknowledged["WJ-JG-000025-1"])  # 其他: nobody
    assert other.deliveries == []


async def test_unsigned_or_foreign_pushes_are_refused_and_nothing_is_committed(
    setup: TradingSetup,
) -> None:
    platform = setup.platform
    good_signer = platform.signer
    platform.signer = None
    push = await platform.publish(sim.award_document(30))
    assert push.status == 401 and platform.refused_by_hub[push.wjbh] == ["E_SIGNATURE"]
    platform.signer = generate_key("ed25519", "ggzy-1")  # the right key id, another key
    push = await platform.publish(sim.award_document(31))
    assert push.status == 401 and platform.refused_by_hub[push.wjbh] == ["E_SIGNATURE"]
    platform.signer, platform.token = good_signer, "wrong-token"
    push = await platform.publish(sim.award_document(32))
    assert push.status == 401 and platform.refused_by_hub[push.wjbh] == ["E_AUTH"]
    assert (await setup.hub.store.counts()).get("messages", 0) == 0
    assert _delivered(setup) == {"zjj": 0, "czj": 0, "zrzyj": 0, "gzw": 0}


async def test_a_hub_that_is_down_loses_nothing_the_platform_resends(
    setup: TradingSetup,
) -> None:
    platform = setup.platform
    real = platform.push_url
    with __import__("socket").socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        platform.push_url = f"http://127.0.0.1:{s.getsockname()[1]}/v1/systems/trading/records"
    push = await platform.publish(sim.award_document(40))
    assert push.status is None and platform.outbox == ["WJ-JG-000040-1"]
    platform.push_url = real
    assert await platform.flush() == 0
    first = platform.acknowledged["WJ-JG-000040-1"]
    # the same document again (a resend whose answer was lost): recognised, not routed twice
    push = await platform.publish(sim.award_document(40))
    assert push.status == 202 and push.answer["ids"] == [first]
    await wait_until(lambda: len(setup.departments["zjj"].received) == 1, what="delivery")
    assert setup.departments["zjj"].redeliveries == 0
    assert (await setup.hub.store.counts())["messages"] == 1


async def test_a_department_that_is_down_gets_the_award_once_it_is_back(
    setup: TradingSetup,
) -> None:
    czj = setup.departments["czj"]
    await czj.go_down()
    push = await setup.platform.publish(sim.award_document(41, "CG"))
    assert push.status == 202  # acknowledged after the commit, whatever the department does
    mid = setup.platform.acknowledged[push.wjbh]

    async def failed_once() -> bool:
        return (await _trace(setup, mid)).deliveries[0].attempts >= 1

    await wait_until(failed_once, what="a failed attempt")
    assert czj.received == {}
    await czj.come_up()
    await wait_until(lambda: mid in czj.received, timeout=30, what="delivery after the outage")
    assert (await _settled(setup, mid)).deliveries[0].attempts >= 2
    assert len(czj.received) == 1


async def test_a_department_refusing_our_signature_dead_letters_and_replay_delivers(
    setup: TradingSetup,
) -> None:
    zjj = setup.departments["zjj"]
    right = zjj.keys
    zjj.keys = Keystore([ManagedKey(generate_key("ed25519", "jghub-trading-1"), owner=None)])
    push = await setup.platform.publish(sim.award_document(42))
    mid = setup.platform.acknowledged[push.wjbh]

    async def dead() -> list[Any]:
        return [d for d in await setup.hub.store.dead_letters("zjj") if d.message_id == mid]

    await wait_until(lambda: _nonempty(dead()), what="a dead letter")
    [letter] = await dead()
    assert letter.last_status == 401 and "BM401" in letter.reason
    assert zjj.refused[0][0] == "BM401" and zjj.received == {}
    zjj.keys = right  # the department fixed its key configuration: replay
    assert await setup.hub.store.replay([letter.delivery_id], time.time()) == 1
    setup.hub.wake_targets(["zjj"])
    await wait_until(lambda: mid in zjj.received, what="the replayed delivery")


async def _nonempty(got: Any) -> bool:
    return bool(await got)


async def test_an_attachment_whose_digest_does_not_match_is_refused_by_the_department(
    setup: TradingSetup,
) -> None:
    platform, zjj = setup.platform, setup.departments["zjj"]
    ref = platform.add_attachment("FJ-43", b"the real bytes", "中标通知书.pdf")
    forged = {**ref, "sha256": hashlib.sha256(b"other bytes").hexdigest()}
    push = await platform.publish(sim.award_document(43, attachments=[forged]))
    assert push.status == 202  # the hub cannot know: the bytes are not in the document
    mid = platform.acknowledged[push.wjbh]

    async def dead() -> list[Any]:
        return [d for d in await setup.hub.store.dead_letters("zjj") if d.message_id == mid]

    await wait_until(lambda: _nonempty(dead()), what="a dead letter")
    [letter] = await dead()
    assert letter.last_status == 422 and "BM423" in letter.reason and "fj[0]" in letter.reason
    assert zjj.received == {}
    # kept, with its reason, for an operator; the message itself is intact in the store
    assert (await _trace(setup, mid)).payload


async def test_a_platform_in_maintenance_delays_the_attachment_check_but_not_the_delivery(
    setup: TradingSetup,
) -> None:
    platform, czj = setup.platform, setup.departments["czj"]
    ref = platform.add_attachment("FJ-44", b"procurement result", "成交公告.pdf")
    push = await platform.publish(sim.award_document(44, "CG", attachments=[ref]))
    mid = platform.acknowledged[push.wjbh]
    platform.behaviour.fail_next = 2  # the next two downloads: 503 JY5030 系统维护
    await wait_until(lambda: mid in czj.received, timeout=30, what="delivery after maintenance")
    assert [c for c, _ in czj.refused] == ["BM503", "BM503"]
    assert platform.refusals[:2] == ["JY5030", "JY5030"]
    assert czj.verified_attachments == {ref["uri"]: ref["sha256"]}


@pytest.mark.parametrize("kind", sorted(sim.HOSTILE_KINDS))
async def test_hostile_documents_are_refused_over_http_and_harm_nothing(
    setup: TradingSetup, kind: str
) -> None:
    push = await setup.platform.publish(sim.award_document(50))
    await _settled(setup, setup.platform.acknowledged[push.wjbh])
    before = await setup.hub.store.counts()
    bad = await setup.platform.publish(sim.hostile_document(kind, 51), check=False)
    assert bad.status in (400, 413, 422), bad
    assert setup.platform.refused_by_hub[bad.wjbh] == [sim.HOSTILE_KINDS[kind]]
    assert await setup.hub.store.counts() == before
    assert setup.departments["zjj"].received.keys() == {setup.platform.acknowledged[push.wjbh]}
    quarantined = await setup.hub.store.quarantined("trading")
    # a record refused by its contract is kept with its reason; a document refused whole
    # (XML, XSD) is answered with the code and stays with the platform
    if sim.HOSTILE_KINDS[kind] == "E_SCHEMA":
        assert [(q.code, q.field) for q in quarantined] == [("E_SCHEMA", "winner.uscc")]
    else:
        assert quarantined == []


async def test_the_platform_checks_who_reads_and_signs_what_it_serves(
    setup: TradingSetup, tmp_path: Path
) -> None:
    platform = setup.platform
    platform.add_attachment("FJ-60", b"bytes of 60", "a.pdf")
    url = f"{platform.base_url}/fj/FJ-60"
    hub_key = setup.hub.guard.outbound_signer()()
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as r:  # unsigned
            assert r.status == 401 and b"JY4010" in await r.read()
        headers: dict[str, str] = {}
        sign_request("GET", url, headers, b"", signer=hub_key)
        async with http.get(url, headers=headers) as r:
            body = await r.read()
            assert r.status == 200 and body == b"bytes of 60"
            sig = verify_detached(
                body, r.headers["X-JY-Signature"],
                keys=Keystore([ManagedKey(platform.signer, owner="trading")]), now=time.time(),
            )  # fmt: skip
            assert sig.key_id == "ggzy-1"
        async with http.get(url, headers=headers) as r:  # the same signed request again
            assert r.status == 401 and b"JY4011" in await r.read()
        for status, code, setting in ((503, b"JY5030", "fail_next"), (429, b"JY4290", "throttle")):
            setattr(platform.behaviour, setting, 1)
            async with http.get(url) as r:
                assert r.status == status and code in await r.read()
        headers = {}
        missing = f"{platform.base_url}/wj/WJ-NONE"
        sign_request("GET", missing, headers, b"", signer=hub_key)
        async with http.get(missing, headers=headers) as r:
            assert r.status == 404 and b"JY4040" in await r.read()
