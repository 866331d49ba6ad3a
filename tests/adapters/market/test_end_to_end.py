"""End to end through the hub's HTTP API with the shipped configuration: the platform's feeds
(signed both ways, mapped from its schema) reach the departments; a department's 双随机 result
is mapped to the platform's schema, signed, and its receipt comes back into the trace; a
result the platform refuses is dead-lettered and quarantined for the department; governance
checks departments' records against the entity registry (reject for dept-a, flag for dept-b)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from adapters.market.demo import DEPT_A_CODE, inspection_of
from hub.api import HUB_KEY, create_app
from hub.config import load_config
from hub.runtime import Hub
from tests.adapters.market.kit import Env, entity, registered_names
from tests.helpers import wait_until

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]
A, B, C = entity(0), entity(1), entity(2)
TOKENS = {"dept-a": "trial-token-dept-a", "dept-b": "trial-token-dept-b"}
INSPECTORS = [("陈静", "33010200101"), ("赵磊", "33010200102")]
TODAY = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()


@pytest.fixture
async def api(env: Env, aiohttp_client: AiohttpClient) -> AsyncIterator[TestClient[Any, Any]]:
    env.sim.register_entity(A, "甲（杭州）餐饮有限公司")
    env.sim.register_entity(B, "乙食品销售有限公司", status="2")
    env.sim.register_entity(C, "丙商贸有限公司")
    client = await aiohttp_client(create_app(load_config(env.path)))
    hub = client.app[HUB_KEY]
    await wait_until(
        lambda: _synced(hub, [A, B, C]), what="the entities in the registry", timeout=30
    )
    yield client
    await client.close()


async def _synced(hub: Hub, usccs: list[str]) -> bool:
    return None not in (await registered_names(hub, usccs)).values()


async def post(client: TestClient[Any, Any], system: str, dataset: str, rec: Any) -> Any:
    resp = await client.post(
        f"/v1/systems/{system}/records?dataset={dataset}",
        json=rec,
        headers={"Authorization": f"Bearer {TOKENS[system]}"},
    )
    return resp.status, await resp.json()


def result_of(task_no: str, uscc: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "task_no": task_no,
        "object_uscc": uscc,
        "object_name": name,
        "result": "2",
        "result_detail": "未按规定公示即时信息，已责令限期整改",
        "inspected_on": TODAY.isoformat(),
        "department": "上城区市场监督管理局",
        "department_code": DEPT_A_CODE,
        "inspectors": [{"name": n, "law_enforcement_cert_no": c} for n, c in INSPECTORS],
        "reported_at": dt.datetime.combine(
            TODAY, dt.time(23, 0), dt.timezone(dt.timedelta(hours=8))
        ).isoformat(),
        **extra,
    }


async def test_a_task_reaches_its_department_and_the_result_returns_with_a_receipt(
    env: Env, api: TestClient[Any, Any]
) -> None:
    hub = api.app[HUB_KEY]
    deadline = (TODAY + dt.timedelta(days=30)).strftime("%Y%m%d")
    env.sim.issue_task(
        "SJRW0001", objects=[A, B], inspectors=INSPECTORS, department="上城区市场监督管理局",
        department_code=DEPT_A_CODE, deadline=deadline,
    )  # fmt: skip
    dept_a = env.sinks["dept-a"]
    await wait_until(lambda: len(dept_a.applied) == 1, what="the task at dept-a")
    (task,) = dept_a.applied.values()
    # mapped from the platform's schema into the canonical task
    assert task["task_no"] == "SJRW0001" and task["department_code"] == DEPT_A_CODE
    first = {"uscc": A, "name": "甲（杭州）餐饮有限公司", "address": "杭州市上城区解放路1号"}
    assert task["objects"][0] == first
    assert task["items"] == ["营业执照（登记证）规范使用情况的检查", "年度报告公示信息的检查"]
    certs = [i["law_enforcement_cert_no"] for i in task["inspectors"]]
    assert certs == ["33010200101", "33010200102"]
    assert task["deadline"] == f"{deadline[:4]}-{deadline[4:6]}-{deadline[6:]}"
    assert env.sinks["dept-b"].applied == {}  # drawn for dept-a only
    # the result: the name may differ in bracket width only
    status, doc = await post(
        api, "dept-a", "market_inspection_result", result_of("SJRW0001", A, "甲(杭州)餐饮有限公司")
    )
    assert status == 202, doc
    mid = doc["id"]
    await wait_until(lambda: mid in env.sim.results, what="the result at the platform")
    sent = env.sim.results[mid]["data"]
    # mapped to the platform's schema, our message id as its record id
    assert sent["JLBS"] == mid and sent["RWBH"] == "SJRW0001" and sent["DXTYSHXYDM"] == A
    assert sent["JCJG"] == "02" and sent["JCRQ"] == TODAY.strftime("%Y%m%d")
    assert sent["ZFRY"] == [{"XM": n, "ZFZH": c} for n, c in INSPECTORS]
    receipt = env.sim.results[mid]["receipt"]

    async def receipt_traced() -> bool:
        trace = await hub.store.trace(mid)
        return trace is not None and any(f"receipt={receipt}" in e.detail for e in trace.events)

    await wait_until(receipt_traced, what="the platform's receipt in the trace")
    # every request to the platform was signed and verified; every answer verified by the hub
    assert env.sim.refused == [] and env.sim.requests
    assert all(status == 200 for *_, status in env.sim.requests)


async def test_a_result_the_platform_refuses_is_dead_lettered_and_quarantined(
    env: Env, api: TestClient[Any, Any]
) -> None:
    hub = api.app[HUB_KEY]
    env.sim.issue_task(
        "SJRW0002", objects=[A], inspectors=INSPECTORS, department="上城区市场监督管理局",
        department_code=DEPT_A_CODE, deadline=(TODAY + dt.timedelta(days=9)).strftime("%Y%m%d"),
    )  # fmt: skip
    await wait_until(lambda: "SJRW0002" in env.sim.tasks and bool(env.sinks["dept-a"].applied))
    env.sim.behaviour.fail_next = 1  # the first upload meets maintenance: retried
    # C was not drawn for this task: the platform refuses that record, keeps the other
    good = result_of("SJRW0002", A, "甲（杭州）餐饮有限公司")
    stray = result_of("SJRW0002", C, "丙商贸有限公司")
    resp = await api.post(
        "/v1/systems/dept-a/records?dataset=market_inspection_result",
        json=[good, stray],
        headers={"Authorization": f"Bearer {TOKENS['dept-a']}"},
    )
    assert resp.status == 202
    ok_id, stray_id = (await resp.json())["ids"]
    await wait_until(lambda: ok_id in env.sim.results, what="the good result")
    await wait_until(lambda: bool(env.sim.rejected), what="the refusal")
    assert env.sim.rejected == [(stray_id, "SC4031", "DXTYSHXYDM")]

    async def quarantined() -> list[Any]:
        return await hub.store.quarantined("dept-a")

    await wait_until(lambda: _nonempty(quarantined()), what="the refusal in the quarantine")
    (q,) = await quarantined()
    assert q.code == "E_MARKET_REJECT" and q.field == "market.DXTYSHXYDM"
    assert "SC4031" in q.detail and C in q.raw
    dead = await hub.store.dead_letters("market")
    assert [d.message_id for d in dead] == [stray_id]
    assert "E_MARKET_REJECT: platform code SC4031 (field DXTYSHXYDM)" in dead[0].reason
    assert stray_id not in env.sim.results
    assert any(s == 503 for *_, s in env.sim.requests)


async def _nonempty(got: Awaitable[list[Any]]) -> bool:
    return bool(await got)


async def test_governance_checks_department_records_against_the_registry(
    env: Env, api: TestClient[Any, Any]
) -> None:
    hub = api.app[HUB_KEY]
    env.sim.change_entity(C, QYMC="丙商贸集团有限公司")  # 名称变更 at the platform
    await wait_until(
        lambda: _named(hub, C, "丙商贸集团有限公司"), what="the rename in the registry"
    )
    # dept-a rejects a record with the old name (E_MISMATCH, the field named) ...
    status, doc = await post(api, "dept-a", "inspection", inspection_of(C, "丙商贸有限公司", 1))
    assert status == 422 and doc["code"] == "E_MISMATCH"
    assert doc["field"] == "market_name_matches_uscc" and "丙商贸集团有限公司" in doc["detail"]
    # ... and accepts one with the new name
    status, doc = await post(api, "dept-a", "inspection", inspection_of(C, "丙商贸集团有限公司", 2))
    assert status == 202
    # dept-b only flags it: accepted, the note in the trace
    status, doc = await post(api, "dept-b", "inspection", inspection_of(C, "丙商贸有限公司", 3))
    assert status == 202
    trace = await hub.store.trace(doc["id"])
    assert trace is not None
    assert any("compare market_name_matches_uscc flagged" in e.detail for e in trace.events)
    # an entity the registry does not know: accepted, flagged by market_entity_active
    unknown = entity(9)
    status, doc = await post(api, "dept-a", "inspection", inspection_of(unknown, "丁有限公司", 4))
    assert status == 202
    trace = await hub.store.trace(doc["id"])
    assert trace is not None
    flagged = [e.detail for e in trace.events if "market_entity_active flagged" in e.detail]
    assert len(flagged) == 1 and "not in the market entity registry" in flagged[0]
    # GET /v1/subjects/{uscc}: both registration versions next to the records about it
    resp = await api.get(f"/v1/subjects/{C}")
    assert resp.status == 200
    datasets = [x["dataset"] for x in (await resp.json())["items"]]
    assert datasets.count("market_entity") == 2 and datasets.count("inspection") == 2


async def _named(hub: Hub, uscc: str, name: str) -> bool:
    return (await registered_names(hub, [uscc]))[uscc] == name


async def test_abnormal_list_entry_and_removal_reach_every_department_in_order(
    env: Env, api: TestClient[Any, Any]
) -> None:
    hub = api.app[HUB_KEY]
    env.sim.list_abnormal("YCML0009", B, decided="20260701", authority_code=DEPT_A_CODE)
    env.sim.remove_abnormal("YCML0009", decided="20260801")

    def actions(name: str) -> list[tuple[str, str | None]]:
        sink = env.sinks[name]
        return [(sink.applied[k]["action"], sink.applied[k].get("listed_on")) for k in sink.order]

    await wait_until(lambda: all(len(actions(n)) == 2 for n in env.sinks), what="entry and removal")
    for name in env.sinks:
        assert actions(name) == [("list", "2026-07-01"), ("remove", "2026-07-01")]
    removal = env.sinks["dept-a"].applied[env.sinks["dept-a"].order[-1]]
    assert removal["decided_on"] == "2026-08-01" and removal["reason"] == "annual_report"
    # the removal superseded the entry: one business record, its latest version is the removal
    found = await hub.store.find_messages(source="market", business_key="YCML0009")
    assert len(found) == 1
    trace = await hub.store.trace(found[0].message_id)
    assert trace is not None and b'"action":"remove"' in trace.payload


async def test_an_ingest_worker_process_compares_against_the_registry_too(env: Env) -> None:
    """``serve --workers`` runs extra ingest processes without the start-up hooks: their
    governance must still consult the registry the node keeps."""
    env.sim.register_entity(A, "甲（杭州）餐饮有限公司")
    async with Hub(load_config(env.path)) as node:
        await wait_until(lambda: _synced(node, [A]), what="the entity in the registry")
        worker = Hub(load_config(env.path), role="ingest")
        await worker.start()
        try:
            res = await worker.ingest_records(
                "dept-a", [inspection_of(A, "甲餐饮有限公司", 7)], dataset="inspection"
            )
            assert [e.error.code for e in res.errors] == ["E_MISMATCH"]
            res = await worker.ingest_records(
                "dept-a", [inspection_of(A, "甲(杭州)餐饮有限公司", 8)], dataset="inspection"
            )
            assert res.errors == [] and len(res.ids) == 1
        finally:
            await worker.stop()


async def test_an_answer_whose_signature_fails_is_not_trusted_and_the_result_sent_again(
    env: Env, api: TestClient[Any, Any]
) -> None:
    hub = api.app[HUB_KEY]
    env.sim.issue_task(
        "SJRW0003", objects=[B], inspectors=INSPECTORS, department="上城区市场监督管理局",
        department_code=DEPT_A_CODE, deadline=(TODAY + dt.timedelta(days=9)).strftime("%Y%m%d"),
    )  # fmt: skip
    env.sim.behaviour.bad_result_signature_next = 1
    status, doc = await post(
        api, "dept-a", "market_inspection_result", result_of("SJRW0003", B, "乙食品销售有限公司")
    )
    assert status == 202
    mid = doc["id"]

    async def delivered() -> bool:
        trace = await hub.store.trace(mid)
        return trace is not None and trace.status() == "delivered"

    await wait_until(delivered, what="the result delivered after the re-send")
    trace = await hub.store.trace(mid)
    assert trace is not None
    details = [e.detail for e in trace.events]
    assert any("E_SIGNATURE" in d or "signature" in d for d in details)  # the first answer
    receipt = env.sim.results[mid]["receipt"]
    assert any(f"receipt={receipt}" in d for d in details)  # the same receipt, sent again
    assert list(env.sim.results) == [mid] and trace.deliveries[0].attempts == 2
