"""Signatures checked in batches off the event loop (``BatchVerifier``) give the answers of
``verify_request``: the same VerifiedSignature, or the same error (code, field, message), for
every request of a batch, whatever else the batch holds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from http_message_signatures.digests import ContentDigest

from hub.errors import HubError
from security.httpsig import BatchVerifier, sign_request, verify_request
from security.keystore import Keystore, ManagedKey
from security.signing import generate_key
from tests.security.test_httpsig import BODY, NOW, URL, _signed, _store
from tests.security.test_sign_algorithms import key_of


def _outcome(fn: Callable[[], Any]) -> object:
    try:
        return fn()
    except HubError as err:
        return (err.code, err.field, err.message)


async def _batched(
    verifier: BatchVerifier, requests: list[tuple[dict[str, str], bytes]], **kw: Any
) -> list[object]:
    """Every request verified concurrently: they reach the verifier in the same iteration of
    the loop, so they form one batch."""

    async def one(headers: dict[str, str], body: bytes) -> object:
        try:
            return await verifier.verify_request("POST", URL, headers, body, **kw)
        except HubError as err:
            return (err.code, err.field, err.message)

    return list(await asyncio.gather(*(one(h, b) for h, b in requests)))


def _tampered_signature() -> dict[str, str]:
    h = _signed(nonce="bad-sig")
    sig = h["Signature"]
    h["Signature"] = sig[:8] + ("A" if sig[8] != "A" else "B") + sig[9:]
    return h


def _mixed_batch() -> list[tuple[dict[str, str], bytes]]:
    """Good requests with every kind of refusal among them."""
    forged = generate_key("ed25519", "test-ed25519")  # the right key id, another private key
    forged_h: dict[str, str] = {}
    sign_request("POST", URL, forged_h, BODY, signer=forged, created=NOW, nonce="forged")
    other_digest = _signed(nonce="digest")
    other_digest["Content-Digest"] = ContentDigest.create(b"something else")
    stale: dict[str, str] = {}
    sign_request(
        "POST", URL, stale, BODY, signer=key_of("ed25519"), created=NOW - 3600, nonce="stale"
    )
    unknown = _signed(nonce="unknown")
    unknown["Signature-Input"] = unknown["Signature-Input"].replace(
        'keyid="test-ed25519"', 'keyid="nobody"'
    )
    return [
        (_signed(nonce="good-1"), BODY),
        (_tampered_signature(), BODY),
        (_signed(nonce="good-2"), BODY),
        (forged_h, BODY),
        (_signed(nonce="changed-body"), BODY + b" "),
        (other_digest, BODY),
        (unknown, BODY),
        (stale, BODY),
        (_signed(nonce="good-3"), BODY),
    ]


@pytest.mark.parametrize("lone_inline", [True, False])
async def test_a_batch_gives_each_request_the_answer_verify_request_gives(
    lone_inline: bool,
) -> None:
    requests = _mixed_batch()
    keys = _store()
    want = [
        _outcome(lambda h=h, b=b: verify_request("POST", URL, h, b, keys=keys, now=NOW))
        for h, b in requests
    ]
    verifier = BatchVerifier(lone_inline=lone_inline)
    try:
        got = await _batched(verifier, requests, keys=keys, now=NOW)
    finally:
        verifier.close()
    assert got == want
    codes = [w[:2] if isinstance(w, tuple) else "ok" for w in want]
    assert codes == [
        "ok",
        ("E_SIGNATURE", "Signature"),
        "ok",
        ("E_SIGNATURE", "Signature"),
        ("E_SIGNATURE", "Content-Digest"),
        ("E_SIGNATURE", "Signature"),
        ("E_SIGNATURE", "keyid"),
        ("E_EXPIRED", "created"),
        "ok",
    ]
    # one hand-off for the whole batch (the unknown key never reaches the signature check)
    assert (verifier.batches, verifier.offloaded) == (1, len(requests) - 1)


async def test_a_lone_request_is_checked_on_the_loop_unless_asked_otherwise() -> None:
    keys = _store()
    inline = BatchVerifier()
    got = await _batched(inline, [(_signed(nonce="n"), BODY)], keys=keys, now=NOW)
    assert getattr(got[0], "nonce", None) == "n"
    assert (inline.batches, inline.offloaded) == (0, 0)
    threaded = BatchVerifier(lone_inline=False)
    try:
        got = await _batched(threaded, [(_tampered_signature(), BODY)], keys=keys, now=NOW)
    finally:
        threaded.close()
    want = _outcome(
        lambda: verify_request("POST", URL, _tampered_signature(), BODY, keys=keys, now=NOW)
    )
    assert got == [want] and isinstance(want, tuple) and want[:2] == ("E_SIGNATURE", "Signature")
    assert (threaded.batches, threaded.offloaded) == (1, 1)


async def test_keys_that_hold_the_gil_are_verified_on_the_loop() -> None:
    """Only signers that say their verification releases the GIL go to the thread (an ECDSA
    or HMAC check there would only add a hand-off)."""
    keys = Keystore([ManagedKey(key_of("ecdsa-p256-sha256"), owner="dept-a")])
    requests = []
    for n in ("a", "b", "c"):
        h: dict[str, str] = {}
        sign_request("POST", URL, h, BODY, signer=key_of("ecdsa-p256-sha256"), created=NOW, nonce=n)
        requests.append((h, BODY))
    verifier = BatchVerifier(lone_inline=False)
    got = await _batched(verifier, requests, keys=keys, now=NOW)
    assert [getattr(g, "nonce", g) for g in got] == ["a", "b", "c"]
    assert verifier.batches == 0


async def test_a_cancelled_request_does_not_disturb_its_batch() -> None:
    keys = _store()
    verifier = BatchVerifier(lone_inline=False)

    async def one(nonce: str) -> Any:
        return await verifier.verify_request(
            "POST", URL, _signed(nonce=nonce), BODY, keys=keys, now=NOW
        )

    try:
        tasks = [asyncio.ensure_future(one(n)) for n in ("a", "b", "c")]
        await asyncio.sleep(0)  # every task waits for the batch now
        tasks[1].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        verifier.close()
    assert isinstance(done[1], asyncio.CancelledError)
    assert [done[0].nonce, done[2].nonce] == ["a", "c"]  # type: ignore[union-attr]


async def test_the_thread_starts_again_after_close() -> None:
    keys = _store()
    verifier = BatchVerifier(lone_inline=False)
    for round_ in range(2):
        got = await _batched(verifier, [(_signed(nonce=f"n{round_}"), BODY)], keys=keys, now=NOW)
        assert getattr(got[0], "nonce", None) == f"n{round_}"
        verifier.close()
    assert verifier.batches == 2


async def test_a_batch_left_open_by_a_closed_loop_is_dropped() -> None:
    """A loop closed between a request joining a batch and the batch's hand-off (a test's
    loop, a hub restarted in-process) must not leave later requests without batches."""
    keys = _store()
    verifier = BatchVerifier(lone_inline=False)
    closed = asyncio.new_event_loop()
    closed.close()
    verifier._pending = [(None, b"", None, closed.create_future)]  # type: ignore[list-item]
    verifier._loop = closed
    try:
        got = await _batched(
            verifier, [(_signed(nonce="a"), BODY), (_signed(nonce="b"), BODY)], keys=keys, now=NOW
        )
    finally:
        verifier.close()
    assert [getattr(g, "nonce", g) for g in got] == ["a", "b"]
    assert (verifier.batches, verifier.offloaded) == (1, 2)


async def test_without_a_thread_the_batch_is_checked_on_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If no thread can be started (resource limits), the requests are not left waiting."""
    import threading

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    verifier = BatchVerifier(lone_inline=False)
    got = await _batched(
        verifier,
        [(_signed(nonce="a"), BODY), (_tampered_signature(), BODY)],
        keys=_store(),
        now=NOW,
    )
    assert getattr(got[0], "nonce", None) == "a"
    assert isinstance(got[1], tuple) and got[1][:2] == ("E_SIGNATURE", "Signature")
    assert verifier.batches == 0
