"""Subscription webhook secrets at rest (security.fieldcrypt): the store holds only
``enc:v1:`` ciphertext, the subscriber still receives pushes it can verify with the secret it
was shown once, another node on the same store opens the secret at its refresh, a secret
stored in clear before encryption was turned on still works; without field encryption the
node warns once at start and behaves as before. No API answer but the create answer, no audit
entry and no log line holds the secret."""

from __future__ import annotations

import base64
import logging
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from hub.api import HUB_KEY, create_app
from hub.config import load_config
from hub.peers.subscriber import Subscriber
from hub.runtime import Hub
from tests.conftest import drop_pg_schema
from tests.helpers import wait_until
from tests.sharing.kit import (
    SOURCE_TOKEN,
    AiohttpClient,
    Sharing,
    approved_grant,
    licence,
    start_sharing,
    write_sharing_config,
)

FAST = {
    "subscription_retry": {"max_attempts": 50, "base_delay": 0.02, "max_delay": 0.1},
    "subscription_circuit": {"failure_threshold": 1000, "reset_timeout": 0.05},
}
CRYPT = {"fieldcrypt": {"master_key_env": "JGHUB_TEST_MASTER_KEY", "datasets": {}}}
SOURCE = {"Authorization": f"Bearer {SOURCE_TOKEN}", "Content-Type": "application/json"}
WARNING = "webhook secrets of data-sharing subscriptions are stored in the clear"


@pytest.fixture(autouse=True)
def master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JGHUB_TEST_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())


@pytest.fixture
async def subscriber() -> AsyncIterator[Subscriber]:
    sub = Subscriber(secret="placeholder-secret-0123456789")
    await sub.start()
    try:
        yield sub
    finally:
        await sub.stop()


def stored_secret(tmp: Path, sid: str) -> str:
    """The ``secret`` of a subscription's row, read from the SQLite file itself."""
    with sqlite3.connect(tmp / "data" / "hub.db") as conn:
        (doc,) = conn.execute("SELECT doc FROM share_subscriptions WHERE id = ?", (sid,)).fetchone()
    value: str = orjson.loads(doc)["secret"]
    return value


def raw_bytes(tmp: Path, name: str) -> bytes:
    """Every byte of an SQLite database (its WAL too)."""
    return b"".join(p.read_bytes() for p in sorted((tmp / "data").glob(f"{name}*")))


async def subscribe(s: Sharing, sub: Subscriber) -> dict[str, Any]:
    await approved_grant(s)
    st, doc, _ = await s.call(
        "POST", "/v1/subscriptions", "requester", {"dataset": "licenses", "url": sub.url}
    )
    assert st == 201, doc
    assert len(doc["secret"]) >= 32
    sub.secret = doc["secret"]  # the subscriber verifies every push with it
    return doc


async def assert_no_secret_in_answers(s: Sharing, sid: str, secret: str) -> None:
    st, listed, text = await s.call("GET", "/v1/subscriptions", "requester")
    assert st == 200 and [x["id"] for x in listed["items"]] == [sid]
    assert "secret" not in listed["items"][0]
    assert secret not in text and "enc:v1:" not in text
    st, one, text = await s.call("GET", f"/v1/subscriptions/{sid}", "requester")
    assert st == 200 and one["id"] == sid and "secret" not in one
    assert secret not in text and "enc:v1:" not in text


async def test_secret_is_encrypted_at_rest_and_pushes_still_verify(
    tmp_path: Path,
    aiohttp_client: AiohttpClient,
    subscriber: Subscriber,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async for s in start_sharing(tmp_path, aiohttp_client, sharing=FAST, security=CRYPT):
        doc = await subscribe(s, subscriber)
        sid, secret = doc["id"], doc["secret"]
        stored = stored_secret(tmp_path, sid)
        assert stored.startswith("enc:v1:") and secret not in stored
        await assert_no_secret_in_answers(s, sid, secret)
        await s.send([licence(1), licence(3)])
        await wait_until(lambda: len(subscriber.received) == 2, what="pushes verified")
        assert subscriber.refused == []
        # the value is bound to its dataset and field: it opens as sharing.subscription/secret
        keyring = s.hub.guard.keyring
        opened = keyring.cipher("sharing.subscription", ["secret"]).decrypt_fields(
            {"secret": stored}
        )
        assert opened == {"secret": secret}
        tokens = s.tokens
    assert secret.encode() not in raw_bytes(tmp_path, "hub.db")
    assert b"enc:v1:" in raw_bytes(tmp_path, "hub.db")
    assert secret.encode() not in raw_bytes(tmp_path, "security.db")  # audit details
    assert WARNING not in caplog.text

    # a restart opens the stored secret (load -> refresh -> _activate)
    cfg = load_config(tmp_path / "hub.yaml")
    client = await aiohttp_client(create_app(cfg, hub=Hub(cfg)))
    try:
        r = await client.post(
            "/v1/systems/dept-a/records", data=orjson.dumps([licence(5)]), headers=SOURCE
        )
        assert r.status == 202, await r.text()
        await wait_until(lambda: len(subscriber.received) == 3, what="push after restart")
        assert subscriber.refused == []
        r = await client.get(
            f"/v1/subscriptions/{sid}", headers={"Authorization": f"Bearer {tokens['requester']}"}
        )
        text = await r.text()
        assert r.status == 200 and secret not in text and "enc:v1:" not in text
    finally:
        await client.close()
    assert secret not in caplog.text


async def test_a_second_node_opens_the_secret_at_its_refresh(
    tmp_path: Path, aiohttp_client: AiohttpClient, subscriber: Subscriber
) -> None:
    """Two nodes on one PostgreSQL schema (and this node's security database): the second,
    started before the subscription (and its data key) existed, opens the secret when its
    refresh finds the subscription and delivers after the first node is gone."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        async for s in start_sharing(
            tmp_path, aiohttp_client, sharing=FAST, security=CRYPT, pg_schema=schema
        ):
            doc2 = yaml.safe_load((tmp_path / "hub.yaml").read_text())
            doc2["hub"]["node_id"] = "sharing-node-2"
            (tmp_path / "hub2.yaml").write_text(yaml.safe_dump(doc2, allow_unicode=True))
            cfg2 = load_config(tmp_path / "hub2.yaml")
            node2 = await aiohttp_client(create_app(cfg2, hub=Hub(cfg2)))
            try:
                hub2: Hub = node2.app[HUB_KEY]  # type: ignore[index]
                doc = await subscribe(s, subscriber)
                sid, target = doc["id"], doc["target"]
                [row] = await s.hub.store.share_list("subscription")
                assert row.doc["secret"].startswith("enc:v1:")
                assert doc["secret"] not in orjson.dumps(row.doc).decode()
                subs2 = hub2.sharing.subscriptions
                targets2 = hub2.targets
                await wait_until(lambda: target in targets2, what="node 2 refresh")  # noqa: B023
                assert sid in subs2.live and not subs2._no_target
                await s.client.close()  # the first node stops; node 2 delivers alone
                r = await node2.post(
                    "/v1/systems/dept-a/records",
                    data=orjson.dumps([licence(7), licence(9)]),
                    headers=SOURCE,
                )
                assert r.status == 202, await r.text()
                await wait_until(lambda: len(subscriber.received) == 2, what="node 2 pushes")
                assert subscriber.refused == []
            finally:
                await node2.close()
    finally:
        await drop_pg_schema(schema)


async def test_a_secret_stored_in_clear_before_encryption_still_works(
    tmp_path: Path,
    aiohttp_client: AiohttpClient,
    subscriber: Subscriber,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="jghub.sharing")
    async for s in start_sharing(tmp_path, aiohttp_client, sharing=FAST):
        doc = await subscribe(s, subscriber)
        sid, secret = doc["id"], doc["secret"]
    assert stored_secret(tmp_path, sid) == secret  # written before encryption was on
    # field encryption is turned on: the clear secret still makes the webhook target
    write_sharing_config(tmp_path, sharing=FAST, security=CRYPT)
    cfg = load_config(tmp_path / "hub.yaml")
    client = await aiohttp_client(create_app(cfg, hub=Hub(cfg)))
    try:
        hub: Hub = client.app[HUB_KEY]  # type: ignore[index]
        assert doc["target"] in hub.targets
        r = await client.post(
            "/v1/systems/dept-a/records", data=orjson.dumps([licence(11)]), headers=SOURCE
        )
        assert r.status == 202, await r.text()
        await wait_until(lambda: len(subscriber.received) == 1, what="push with a clear secret")
        assert subscriber.refused == []
    finally:
        await client.close()
    assert secret not in caplog.text


async def test_an_encrypted_secret_is_never_used_as_the_key_without_fieldcrypt(
    tmp_path: Path,
    aiohttp_client: AiohttpClient,
    subscriber: Subscriber,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Encrypted by a hub with field encryption, then started without it: the node says the
    secret does not open (once, without the value) and makes no webhook target, rather than
    signing with the ciphertext; deliveries wait."""
    async for s in start_sharing(tmp_path, aiohttp_client, sharing=FAST, security=CRYPT):
        doc = await subscribe(s, subscriber)
    stored = stored_secret(tmp_path, doc["id"])
    write_sharing_config(tmp_path, sharing=FAST)
    caplog.set_level(logging.WARNING, logger="jghub.sharing")
    cfg = load_config(tmp_path / "hub.yaml")
    client = await aiohttp_client(create_app(cfg, hub=Hub(cfg)))
    try:
        hub: Hub = client.app[HUB_KEY]  # type: ignore[index]
        assert doc["target"] not in hub.targets
        r = await client.post(
            "/v1/systems/dept-a/records", data=orjson.dumps([licence(13)]), headers=SOURCE
        )
        assert r.status == 202
        subs = hub.sharing.subscriptions
        assert doc["id"] in subs.live and doc["id"] in subs._no_target
        await subs.refresh()  # tried again, not logged again
        queues = {q.target: q for q in await hub.store.queue_stats()}
        assert queues[doc["target"]].pending == 1  # routed, waiting for a node that opens it
    finally:
        await client.close()
    errors = [r for r in caplog.records if "does not open on this node" in r.getMessage()]
    assert len(errors) == 1 and doc["id"] in errors[0].getMessage()
    assert stored not in caplog.text and doc["secret"] not in caplog.text
    assert subscriber.requests == 0


async def test_without_fieldcrypt_the_node_warns_once_and_stores_as_before(
    tmp_path: Path,
    aiohttp_client: AiohttpClient,
    subscriber: Subscriber,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="jghub.sharing")
    async for s in start_sharing(tmp_path, aiohttp_client, sharing=FAST):
        # the catalog offers subscriptions: warned at start, before any exists
        assert [r.getMessage() for r in caplog.records].count(
            "webhook secrets of data-sharing subscriptions are stored in the clear in the hub "
            "store; configure security.fieldcrypt to encrypt them"
        ) == 1
        doc = await subscribe(s, subscriber)
        sid, secret = doc["id"], doc["secret"]
        assert stored_secret(tmp_path, sid) == secret  # in clear, as documented
        await assert_no_secret_in_answers(s, sid, secret)
        await s.send([licence(15)])
        await wait_until(lambda: len(subscriber.received) == 1, what="push")
        assert subscriber.refused == []
        await s.hub.sharing.subscriptions.refresh()
    assert sum(WARNING in r.getMessage() for r in caplog.records) == 1
    assert secret not in caplog.text
    assert secret.encode() not in raw_bytes(tmp_path, "security.db")  # audit details
