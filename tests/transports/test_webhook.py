"""The ``webhook`` transport: signed pushes through the real hub dispatcher to a real subscriber
(:mod:`hub.peers.subscriber`) on 127.0.0.1, and the ``verify_webhook`` helper subscribers use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from contracts.samples import sample_inspection
from hub.errors import ConfigError, ExpiredError, SignatureError
from hub.peers.subscriber import Subscriber, SubscriberBehaviour
from hub.runtime import Hub
from hub.specs import OutboundItem
from hub.transports.webhook import (
    SIGNATURE_HEADER,
    WebhookOptions,
    WebhookTransport,
    sign_webhook,
    signature_base,
    verify_webhook,
)
from security.keystore import Keystore, ManagedKey
from security.signing import generate_key
from tests.helpers import config, wait_until

SECRET = "whsec-0123456789abcdef"
NOW = 1_800_000_000


@pytest.fixture
async def sub() -> AsyncIterator[Subscriber]:
    s = Subscriber("national-sub", secret=SECRET)
    await s.start()
    yield s
    await s.stop()


def _target(sub: Subscriber, **extra: Any) -> dict[str, dict[str, Any]]:
    return {"subscriber": {"transport": "webhook", "url": sub.url, "secret": SECRET, **extra}}


def _signed(body: bytes, key: str = "m-1", t: int = NOW, secret: str = SECRET) -> dict[str, str]:
    return {
        "Idempotency-Key": key,
        "X-Jghub-Event": "inspection",
        SIGNATURE_HEADER: sign_webhook(body, key, secret, t),
    }


# --------------------------------------------------------------------------- verify_webhook


def test_signature_base_is_the_documented_canonical_string() -> None:
    body = b'{"a":1}'
    assert signature_base(NOW, "m-1", body) == (
        b"1800000000.m-1.015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"
    )


def test_verify_accepts_a_good_signature_in_any_header_case() -> None:
    body = b'{"inspection_no":"X1"}'
    headers = {k.lower(): v for k, v in _signed(body).items()}
    got = verify_webhook(headers, body, SECRET, now=NOW + 299)
    assert (got.key, got.event, got.timestamp) == ("m-1", "inspection", NOW)


def test_verify_accepts_any_of_rotating_secrets() -> None:
    body = b"{}"
    headers = _signed(body, secret="new-secret-0123456789")
    got = verify_webhook(headers, body, [SECRET, "new-secret-0123456789"], now=NOW)
    assert got.key == "m-1"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ("body", f"{SIGNATURE_HEADER}.v1"),
        ("key", f"{SIGNATURE_HEADER}.v1"),
        ("secret", f"{SIGNATURE_HEADER}.v1"),
        ("no-signature", SIGNATURE_HEADER),
        ("no-key", "Idempotency-Key"),
        ("garbled", SIGNATURE_HEADER),
        ("bad-time", f"{SIGNATURE_HEADER}.t"),
    ],
)
def test_verify_refuses_a_bad_signature_naming_the_field(change: str, field: str) -> None:
    body = b'{"inspection_no":"X1"}'
    headers = _signed(body)
    secret = SECRET
    if change == "body":
        body = b'{"inspection_no":"X2"}'
    elif change == "key":
        headers["Idempotency-Key"] = "m-2"
    elif change == "secret":
        secret = "another-secret-0123456789"
    elif change == "no-signature":
        del headers[SIGNATURE_HEADER]
    elif change == "no-key":
        del headers["Idempotency-Key"]
    elif change == "garbled":
        headers[SIGNATURE_HEADER] = "sha256=abc"
    elif change == "bad-time":
        headers[SIGNATURE_HEADER] = headers[SIGNATURE_HEADER].replace(f"t={NOW}", "t=soon")
    with pytest.raises(SignatureError) as err:
        verify_webhook(headers, body, secret, now=NOW)
    assert err.value.code == "E_SIGNATURE" and err.value.field == field


@pytest.mark.parametrize("skew", [301, -301])
def test_verify_refuses_a_stale_or_future_timestamp(skew: int) -> None:
    body = b"{}"
    with pytest.raises(ExpiredError) as err:
        verify_webhook(_signed(body), body, SECRET, now=NOW + skew, tolerance=300)
    assert err.value.code == "E_EXPIRED"
    assert err.value.field == f"{SIGNATURE_HEADER}.t" and "301 s from now" in err.value.message


# --------------------------------------------------------------------------- options


def test_options_need_a_secret_or_the_hubs_key(tmp_path: Path, sub: Subscriber) -> None:
    with pytest.raises(ConfigError, match="secret is required"):
        Hub(config(tmp_path, {"subscriber": {"transport": "webhook", "url": sub.url}}))
    with pytest.raises(ConfigError, match="at least 16 characters"):
        Hub(config(tmp_path, _target(sub, secret="short")))
    with pytest.raises(ConfigError, match=r"outbound\.sign needs one of the hub's own keys"):
        Hub(config(tmp_path, _target(sub, sign=True)))
    with pytest.raises(ConfigError, match=r"outbound\.max_batchh: unknown key"):
        Hub(config(tmp_path, _target(sub, max_batchh=3)))
    assert "whsec" not in repr(WebhookOptions(url=sub.url, secret=SECRET))  # type: ignore[arg-type]


async def test_rfc9421_signature_with_the_hubs_key(tmp_path: Path) -> None:
    """``sign: true``: the request also carries an RFC 9421 signature by the hub's own key,
    which a subscriber verifies with the hub's public key (no shared secret needed)."""
    key = generate_key("ed25519", "hub-2026")
    sub = Subscriber("rfc-sub", secret=None, keys=Keystore([ManagedKey(key)]))
    await sub.start()
    opts = WebhookOptions(url=sub.url, sign=True)  # type: ignore[arg-type]
    transport = WebhookTransport("sub", opts)
    transport.set_signer(lambda: key)
    await transport.start()
    try:
        [r] = await transport.send([OutboundItem(1, "m-1", "inspection", {"a": 1}, 1)])
        assert r.ok and sub.received == {"m-1": {"a": 1}}
        other = generate_key("ed25519", "hub-2026")  # same key id, another key: a forgery
        transport.set_signer(lambda: other)
        [r] = await transport.send([OutboundItem(2, "m-2", "inspection", {"a": 2}, 1)])
        assert r.permanent and r.status == 401 and sub.refused == ["E_SIGNATURE"]
    finally:
        await transport.close()
        await sub.stop()


# --------------------------------------------------------------------------- through the hub


async def test_records_pushed_signed_once_in_effect_despite_retries(
    tmp_path: Path, sub: Subscriber
) -> None:
    """503s and lost replies make the hub re-send; the subscriber applies each event once."""
    sub.behaviour = SubscriberBehaviour(fail_next=3, lost_replies=4)
    cfg = config(tmp_path, _target(sub))
    async with Hub(cfg) as hub:
        res = await hub.ingest_records("dept-a", [sample_inspection(i) for i in range(20)])
        await wait_until(lambda: _delivered(hub, 20), what="20 delivered")
        assert set(sub.received) == set(res.ids)  # Idempotency-Key == message id
        assert len(sub.order) == 20 and sub.redeliveries >= 4  # lost replies were re-sent
        assert set(sub.events.values()) == {"inspection"} and not sub.refused
        rec = sub.received[res.ids[0]]
        assert rec["inspection_no"] == sample_inspection(0)["inspection_no"]
        assert sub.traceparents[res.ids[0]].startswith("00-")
        tr = await hub.store.trace(res.ids[0])
        assert tr is not None and tr.status() == "delivered"


async def test_bad_secret_is_refused_then_dead_lettered_at_once(
    tmp_path: Path, sub: Subscriber
) -> None:
    cfg = config(tmp_path, _target(sub, secret="not-the-subscribers-secret"))
    async with Hub(cfg) as hub:
        res = await hub.ingest_records("dept-a", [sample_inspection(1)])
        await wait_until(lambda: _dead(hub), what="dead letter")
        [dl] = await hub.store.dead_letters()
        assert dl.message_id == res.ids[0] and dl.attempts == 1  # permanent: no retry
        assert dl.last_status == 401
        assert "E_SIGNATURE" in dl.reason and "does not verify" in dl.reason
    assert sub.refused == ["E_SIGNATURE"] and not sub.received


async def test_gone_subscriber_is_permanent(tmp_path: Path, sub: Subscriber) -> None:
    sub.behaviour.gone = True
    async with Hub(config(tmp_path, _target(sub))) as hub:
        await hub.ingest_records("dept-a", [sample_inspection(1)])
        await wait_until(lambda: _dead(hub), what="dead letter")
        [dl] = await hub.store.dead_letters()
        assert dl.last_status == 410 and dl.attempts == 1 and "withdrawn" in dl.reason


async def test_outage_is_retried_until_the_subscriber_is_back(
    tmp_path: Path, sub: Subscriber
) -> None:
    await sub.go_down()
    cfg = config(tmp_path, _target(sub), retry={"max_attempts": 1000, "base_delay": 0.01})
    async with Hub(cfg) as hub:
        res = await hub.ingest_records("dept-a", [sample_inspection(i) for i in range(5)])

        async def retried() -> bool:
            stats = await hub.store.route_stats()
            return any(s.retries >= 5 for s in stats)

        await wait_until(retried, what="connection refused, retried")
        assert not sub.received
        await sub.come_up()
        await wait_until(lambda: _delivered(hub, 5), what="delivered after the outage")
        assert set(sub.received) == set(res.ids)
        assert await hub.store.dead_letters() == []


async def test_batches_with_per_event_dedupe_and_an_events_filter(
    tmp_path: Path, sub: Subscriber
) -> None:
    sub.behaviour.lost_replies = 1  # one whole batch applied, its answer lost: re-sent
    cfg = config(tmp_path, _target(sub, max_batch=10, events=["inspection"]))
    async with Hub(cfg) as hub:
        res = await hub.ingest_records("dept-a", [sample_inspection(i) for i in range(25)])
        await wait_until(lambda: _delivered(hub, 25), what="25 delivered in batches")
        assert set(sub.received) == set(res.ids) and len(sub.order) == 25
        assert sub.redeliveries >= 1 and sub.requests < 25
    # the filter: a dataset the subscriber does not take is acknowledged without a request
    transport = WebhookTransport(
        "sub",
        WebhookOptions(url=sub.url, secret=SECRET, events=["penalty"]),  # type: ignore[arg-type]
    )
    await transport.start()
    try:
        before = sub.requests
        [r] = await transport.send([OutboundItem(1, "m-x", "inspection", {"a": 1}, 1)])
        assert r.ok and "events filter" in r.detail and sub.requests == before
    finally:
        await transport.close()


async def test_throttle_keeps_retry_after_and_stale_clock_is_refused(sub: Subscriber) -> None:
    """Direct transport calls against the real subscriber: 429 + Retry-After is transient with
    the wait kept; a sender whose clock is 10 minutes behind is refused as E_EXPIRED."""
    sub.behaviour = SubscriberBehaviour(throttle=1, retry_after="7")
    opts = WebhookOptions(url=sub.url, secret=SECRET)  # type: ignore[arg-type]
    transport = WebhookTransport("sub", opts)
    await transport.start()
    try:
        item = OutboundItem(1, "m-1", "inspection", {"inspection_no": "X"}, 1, None)
        [r] = await transport.send([item])
        assert (r.ok, r.permanent, r.status, r.retry_after) == (False, False, 429, 7.0)
        [r] = await transport.send([item])
        assert r.ok and r.status == 200 and sub.received["m-1"] == {"inspection_no": "X"}
        late = WebhookTransport("sub", opts, clock=lambda: sub.clock() - 600)
        await late.start()
        try:
            [r] = await late.send([OutboundItem(2, "m-2", "inspection", {}, 1)])
        finally:
            await late.close()
        assert r.permanent and r.status == 401
        assert orjson.loads(r.detail)["code"] == "E_EXPIRED" and sub.refused == ["E_EXPIRED"]
    finally:
        await transport.close()


async def _delivered(hub: Hub, n: int) -> bool:
    return (await hub.store.counts())["delivered"] == n


async def _dead(hub: Hub) -> bool:
    return bool(await hub.store.dead_letters())
