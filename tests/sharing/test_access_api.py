"""Governed access probes through the HTTP API with real tokens: every way of asking for more
than a grant gives is refused with its code, and no ungranted value appears in any answer;
subscriptions deliver the granted slice through the dispatcher and stop on revocation (pending
deliveries dead-lettered with E_GRANT, never sent)."""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from hub.api import HUB_KEY
from hub.peers.subscriber import Subscriber
from tests.conftest import drop_pg_schema
from tests.helpers import wait_until
from tests.sharing.kit import AiohttpClient, Sharing, approved_grant, licence, start_sharing

SOURCE = {
    "Authorization": "Bearer dept-a-static-token-0123456789",
    "Content-Type": "application/json",
}
FAST = {
    "subscription_retry": {"max_attempts": 50, "base_delay": 0.02, "max_delay": 0.1},
    "subscription_circuit": {"failure_threshold": 1000, "reset_timeout": 0.05},
}


@pytest.fixture(params=["sqlite", "postgres"])
async def s(
    request: pytest.FixtureRequest, tmp_path: Path, aiohttp_client: AiohttpClient
) -> AsyncIterator[Sharing]:
    """A sharing hub on the SQLite or the PostgreSQL store (there, the ingest-process test is
    a second node on the same schema)."""
    schema = f"t_{uuid.uuid4().hex[:16]}" if request.param == "postgres" else None
    try:
        async for x in start_sharing(tmp_path, aiohttp_client, sharing=FAST, pg_schema=schema):
            yield x
    finally:
        if schema is not None:
            await drop_pg_schema(schema)


ID_LIKE = "id_card like '3301%'"
NAME_LIKE = "legal_person like '张%'"


def q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


#: values of fields no grant in these tests covers in clear: none may appear in any answer
def secrets_of(records: list[dict[str, Any]]) -> list[str]:
    return [r[k] for r in records for k in ("id_card", "phone", "legal_person")]


async def test_every_probe_is_refused_with_its_code(s: Sharing) -> None:
    records = [licence(i, region="330106" if i % 2 else "330110") for i in range(1, 11)]
    await s.send(records)
    _, gid = await approved_grant(s, requests_per_day=100)
    answers: list[str] = []

    async def get(path: str, who: str = "requester") -> tuple[int, Any]:
        st, doc, text = await s.call("GET", path, who)
        answers.append(text)
        return st, doc

    st, page = await get("/v1/data/licenses")
    assert st == 200 and len(page["items"]) == 5
    probes = [
        # an ungranted field, asked for directly, in the filter, in the sort, in an export
        ("/v1/data/licenses?fields=license_no,id_card", "E_FIELD_NOT_GRANTED", "fields"),
        (f"/v1/data/licenses?filter={q(ID_LIKE)}", "E_FIELD_NOT_GRANTED", "filter"),
        ("/v1/data/licenses?sort=capital", "E_FIELD_NOT_GRANTED", "sort"),
        ("/v1/data/licenses/export?fields=license_no,id_card", "E_FIELD_NOT_GRANTED", "fields"),
        (f"/v1/data/licenses/export?filter={q('capital > 1')}", "E_FIELD_NOT_GRANTED", "filter"),
        # a masked field may be read masked, never filtered on (it would leak the clear value)
        (f"/v1/data/licenses?filter={q(NAME_LIKE)}", "E_FIELD_NOT_GRANTED", "filter"),
        ("/v1/data/licenses?sort=-legal_person", "E_FIELD_NOT_GRANTED", "sort"),
        # malformed requests
        (f"/v1/data/licenses?filter={q('name = ')}", "E_FILTER", "filter"),
        ("/v1/data/licenses?cursor=abc.def", "E_CURSOR", "cursor"),
        ("/v1/data/licenses?limit=0", "E_PARAM", "limit"),
        ("/v1/data/licenses/export?format=xlsx", "E_PARAM", "format"),
        # no grant for another dataset
        ("/v1/data/penalty", "E_GRANT", "grant"),
    ]
    for path, code, field in probes:
        st, doc = await get(path)
        assert doc["code"] == code and doc["field"] == field, (path, doc)
        assert st in (400, 403), (path, st)
    # other callers: another department's requester, a bound-elsewhere requester of the same
    # department, and a reviewer (whose role does not read data)
    for who, code in (("other", "E_GRANT"), ("requester2", "E_GRANT"), ("reviewer", "E_FORBIDDEN")):
        st, doc = await get("/v1/data/licenses", who)
        assert st == 403 and doc["code"] == code, (who, doc)
        st, doc = await get("/v1/data/licenses/export", who)
        assert st == 403 and doc["code"] == code, (who, doc)
    # a tampered cursor
    st, page = await get("/v1/data/licenses?limit=2")
    body, mac = page["next_cursor"].split(".")
    forged = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + mac
    st, doc = await get(f"/v1/data/licenses?limit=2&cursor={forged}")
    assert st == 400 and doc["code"] == "E_CURSOR"
    # the grant's row filter and masks held in every answer
    for text in answers:
        for value in secrets_of(records):
            assert value not in text
        assert "330110" not in text
    # an expired grant is refused at the next request
    s.clock.advance(91 * 86400)
    st, doc = await get("/v1/data/licenses")
    assert st == 403 and doc["code"] == "E_GRANT" and "expired" in doc["detail"]
    st, grant, _ = await s.call("GET", f"/v1/grants/{gid}", "requester")
    assert grant["state"] == "expired"


async def test_quota_is_enforced_with_retry_after(s: Sharing) -> None:
    await s.send([licence(i) for i in range(1, 21)])
    _, gid = await approved_grant(s, requests_per_day=3, records_per_day=25)
    st, page, _ = await s.call("GET", "/v1/data/licenses?limit=20", "requester")
    assert st == 200 and page["count"] == 20
    # 5 records are left today: the page is cut to what the quota still allows
    st, page, _ = await s.call("GET", "/v1/data/licenses?limit=20", "requester")
    assert st == 200 and page["count"] == 5
    r = await s.client.get("/v1/data/licenses?limit=1", headers=s.auth("requester"))
    doc = await r.json()
    assert r.status == 429 and doc["code"] == "E_QUOTA"
    assert 0 < int(r.headers["Retry-After"]) <= 86400
    # the next day brings a fresh quota
    s.clock.advance(int(r.headers["Retry-After"]) + 1)
    st, page, _ = await s.call("GET", "/v1/data/licenses?limit=2", "requester")
    assert st == 200 and page["count"] == 2
    # requests per day: the fourth request of a day is refused
    for _ in range(2):
        st, _, _ = await s.call("GET", "/v1/data/licenses?limit=1", "requester")
        assert st == 200
    r = await s.client.get("/v1/data/licenses?limit=1", headers=s.auth("requester"))
    assert r.status == 429 and (await r.json())["field"] == "requests_per_day"
    assert gid.startswith("g")


async def test_subscription_delivers_the_granted_slice_and_stops_on_revocation(
    s: Sharing,
) -> None:
    sub = Subscriber(secret="placeholder-secret-0123456789")
    await sub.start()
    try:
        # a grant without the subscription method cannot subscribe
        _, gid0 = await approved_grant(s, methods=["query"])
        st, doc, _ = await s.call(
            "POST", "/v1/subscriptions", "requester", {"dataset": "licenses", "url": sub.url}
        )
        assert st == 403 and doc["code"] == "E_GRANT" and "subscription" in doc["detail"]
        await s.call("POST", f"/v1/grants/{gid0}/revoke", "reviewer", {"reason": "换新申请"})
        _, gid = await approved_grant(s)
        st, doc, _ = await s.call(
            "POST", "/v1/subscriptions", "requester", {"dataset": "licenses", "url": sub.url}
        )
        assert st == 201, doc
        sid, target = doc["id"], doc["target"]
        assert doc["grant_id"] == gid and len(doc["secret"]) >= 32
        sub.secret = doc["secret"]
        st, listed, _ = await s.call("GET", "/v1/subscriptions", "requester")
        assert [x["id"] for x in listed["items"]] == [sid] and "secret" not in listed["items"][0]
        st, doc, _ = await s.call("GET", f"/v1/subscriptions/{sid}", "requester2")
        assert st == 404

        records = [licence(i, region="330106" if i % 2 else "330199") for i in range(1, 7)]
        await s.send(records)
        await wait_until(lambda: len(sub.received) >= 3, what="the granted rows delivered")
        got = list(sub.received.values())
        assert sorted(r["license_no"] for r in got) == ["LIC000001", "LIC000003", "LIC000005"]
        for r in got:
            assert set(r) == {
                "license_no",
                "name",
                "region_code",
                "status",
                "legal_person",
                "phone",
            }
            assert r["phone"].startswith("138") and "****" in r["phone"]  # masked
        assert set(sub.events.values()) == {"licenses"}
        # a changed record is delivered again (its new version)
        await s.send([licence(1, status="吊销", v=2)])
        await wait_until(lambda: len(sub.received) >= 4, what="the changed record delivered")
        assert sorted(r["status"] for r in sub.received.values()).count("吊销") == 1

        # the subscriber goes down; records wait in the queue; the grant is revoked
        sub.behaviour.fail_next = 10**6
        before = sub.requests
        await s.send([licence(i) for i in (21, 23, 25)])
        await wait_until(lambda: sub.requests > before, what="a failed attempt")
        st, doc, _ = await s.call(
            "POST", f"/v1/grants/{gid}/revoke", "reviewer", {"reason": "违规使用"}
        )
        assert st == 200 and doc["subscriptions_stopped"] == 1

        # the subscriber stays down until the hub gave up on them: an attempt already on the
        # wire when the grant was revoked cannot be called back, every later one is refused
        async def dead() -> bool:
            return len(await s.hub.store.dead_letters(target)) == 3

        await wait_until(dead, what="the pending deliveries dead-lettered")
        sub.behaviour.fail_next = 0
        for d in await s.hub.store.dead_letters(target):
            assert "E_GRANT" in d.reason and "revoked" in d.reason
        # nothing was sent after the revocation, and new records make no deliveries
        delivered = len(sub.received)
        await s.send([licence(27)])
        queues = {q.target: q for q in await s.hub.store.queue_stats()}
        assert target not in queues or queues[target].pending == 0
        assert len(sub.received) == delivered == 4
        assert all(
            r["license_no"] not in ("LIC000021", "LIC000023", "LIC000025")
            for r in sub.received.values()
        )
        st, doc, _ = await s.call("GET", f"/v1/subscriptions/{sid}", "requester")
        assert doc["state"] == "revoked"
        st, doc, _ = await s.call(
            "POST", "/v1/subscriptions", "requester", {"dataset": "licenses", "url": sub.url}
        )
        assert st == 403 and doc["code"] == "E_GRANT"
    finally:
        await sub.stop()


async def test_subscriptions_survive_a_restart_and_can_be_cancelled(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    sub = Subscriber(secret="placeholder-secret-0123456789")
    await sub.start()
    try:
        async for s in start_sharing(tmp_path, aiohttp_client, sharing=FAST):
            _, gid = await approved_grant(s)
            st, doc, _ = await s.call(
                "POST", "/v1/subscriptions", "requester", {"dataset": "licenses", "url": sub.url}
            )
            assert st == 201
            sid = doc["id"]
            sub.secret = doc["secret"]
            tokens = s.tokens
        # a new hub on the same files: the subscription delivers again
        from hub.api import create_app
        from hub.config import load_config
        from hub.runtime import Hub

        cfg = load_config(tmp_path / "hub.yaml")
        client = await aiohttp_client(create_app(cfg, hub=Hub(cfg)))
        try:
            r = await client.post(
                "/v1/systems/dept-a/records",
                data=orjson.dumps([licence(41)]),
                headers=SOURCE,
            )
            assert r.status == 202
            await wait_until(lambda: len(sub.received) == 1, what="delivery after restart")
            auth = {"Authorization": f"Bearer {tokens['requester']}"}
            r = await client.delete(f"/v1/subscriptions/{sid}", headers=auth)
            assert r.status == 200 and (await r.json())["state"] == "cancelled"
            r = await client.delete(f"/v1/subscriptions/{sid}", headers=auth)
            assert r.status == 409 and (await r.json())["code"] == "E_APPLICATION_STATE"
            r = await client.post(
                "/v1/systems/dept-a/records",
                data=orjson.dumps([licence(43)]),
                headers=SOURCE,
            )
            assert r.status == 202
            r = await client.get(f"/v1/grants/{gid}", headers=auth)
            assert (await r.json())["state"] == "active"
            assert len(sub.received) == 1
        finally:
            await client.close()
    finally:
        await sub.stop()


async def test_an_ingest_process_routes_records_to_subscriptions_made_on_the_node(
    s: Sharing, aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    """``serve --workers``: an extra ingest process (role ingest, same store) learns of a
    subscription made on the node at its next refresh and commits the deliveries of the
    records it accepts; the node delivers them."""
    from hub.api import create_app
    from hub.config import load_config
    from hub.runtime import Hub

    sub = Subscriber(secret="placeholder-secret-0123456789")
    await sub.start()
    cfg = load_config(tmp_path / "hub.yaml")
    worker = await aiohttp_client(create_app(cfg, hub=Hub(cfg, role="ingest")))
    try:
        _, gid = await approved_grant(s)
        st, doc, _ = await s.call(
            "POST", "/v1/subscriptions", "requester", {"dataset": "licenses", "url": sub.url}
        )
        assert st == 201
        sub.secret = doc["secret"]
        wsvc = worker.app[HUB_KEY].sharing  # type: ignore[index]
        await wait_until(lambda: doc["id"] in wsvc.subscriptions.live, what="worker refresh")
        r = await worker.post(
            "/v1/systems/dept-a/records",
            data=orjson.dumps([licence(51), licence(53)]),
            headers=SOURCE,
        )
        assert r.status == 202, await r.text()
        await wait_until(lambda: len(sub.received) == 2, what="delivery by the node")
        got = sorted(sub.received.values(), key=lambda r: r["license_no"])
        assert [r["license_no"] for r in got] == ["LIC000051", "LIC000053"]
        assert all("id_card" not in r for r in got)
        # the worker serves governed queries too (the same cursor secret as the node)
        r = await worker.get("/v1/data/licenses?limit=1", headers=s.auth("requester"))
        page = await r.json()
        assert r.status == 200 and page["grant_id"] == gid
        st, doc2, _ = await s.call(
            "GET", f"/v1/data/licenses?limit=1&cursor={page['next_cursor']}", "requester"
        )
        assert st == 200 and [r["license_no"] for r in doc2["items"]] == ["LIC000053"]
        # a revocation on the node stops the worker's routing at its next refresh
        await s.call("POST", f"/v1/grants/{gid}/revoke", "reviewer", {"reason": "结束"})
        live = wsvc.subscriptions.live[doc["id"]]
        await wait_until(lambda: live.stopped is not None, what="worker sees the revocation")
        assert "licenses" not in worker.app[HUB_KEY].record_targets  # type: ignore[index]
    finally:
        await worker.close()
        await sub.stop()


async def test_fields_encrypted_at_rest_are_opened_then_masked(
    tmp_path: Path, aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """security.fieldcrypt: the store holds ciphertext; a grant reads the clear value through
    its masks (never the ciphertext, never the clear value of a masked field)."""
    import base64
    import os

    monkeypatch.setenv("JGHUB_TEST_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    crypt = {
        "fieldcrypt": {
            "master_key_env": "JGHUB_TEST_MASTER_KEY",
            "datasets": {"licenses": ["id_card", "phone"]},
        }
    }
    async for s in start_sharing(tmp_path, aiohttp_client, security=crypt):
        await s.send([licence(1), licence(3)])
        [(_, stored), *_] = await s.hub.store.current_records("licenses")
        assert b"13800000001" not in stored and b"enc:" in stored  # encrypted at rest
        await approved_grant(s, fields=["license_no", "phone"])
        st, page, text = await s.call("GET", "/v1/data/licenses", "requester")
        assert st == 200, page
        assert [r["phone"] for r in page["items"]] == ["138****0001", "138****0003"]
        assert "enc:" not in text and "13800000001" not in text
