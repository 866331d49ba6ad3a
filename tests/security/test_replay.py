"""Replay protection: nonce caches (memory, SQLite) and the freshness window."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.errors import ExpiredError, ReplayError
from security.httpsig import sign_request, verify_request
from security.keystore import Keystore, ManagedKey
from security.replay import (
    MemoryNonceCache,
    NonceCache,
    SQLiteNonceCache,
    check_fresh,
    check_replay,
)
from security.signing import generate_key
from tests.conftest import Clock


@pytest.fixture(params=["memory", "sqlite"])
async def cache(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> AsyncIterator[NonceCache]:
    if request.param == "memory":
        yield MemoryNonceCache(clock=clock)
        return
    c = SQLiteNonceCache(tmp_path / "nonces.db", clock=clock, prune_every=3)
    c.open()
    try:
        yield c
    finally:
        c.close()


async def test_a_nonce_is_accepted_once_per_key(cache: NonceCache, clock: Clock) -> None:
    t = clock.now
    assert await cache.remember("k1", "n1", t + 300) is True
    assert await cache.remember("k1", "n1", t + 300) is False
    assert await cache.remember("k2", "n1", t + 300) is True  # another key, its own space
    assert await cache.remember("k1", "n2", t + 300) is True


async def test_an_expired_nonce_is_forgotten(cache: NonceCache, clock: Clock) -> None:
    assert await cache.remember("k1", "n1", clock.now + 10)
    clock.advance(10)
    assert await cache.remember("k1", "n1", clock.now + 10) is True
    assert await cache.remember("k1", "n1", clock.now + 10) is False


async def test_check_replay_raises_e_replay(cache: NonceCache, clock: Clock) -> None:
    await check_replay(cache, "k1", "n1", clock.now, 300)
    with pytest.raises(ReplayError) as info:
        await check_replay(cache, "k1", "n1", clock.now, 300)
    assert info.value.code == "E_REPLAY" and info.value.field == "nonce"
    with pytest.raises(ReplayError, match="a nonce is required"):
        await check_replay(cache, "k1", None, clock.now, 300)


async def test_sqlite_cache_is_shared_and_pruned(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "n.db"
    a = SQLiteNonceCache(path, clock=clock, prune_every=1000)
    b = SQLiteNonceCache(path, clock=clock)
    a.open()
    b.open()
    try:
        assert await a.remember("k", "n", clock.now + 5)
        assert await b.remember("k", "n", clock.now + 5) is False  # a second process sees it
        for i in range(5):
            assert await a.remember("k", f"x{i}", clock.now + 5)
        assert a.count() == 6
        clock.advance(6)
        assert a.prune() == 6 and b.count() == 0
    finally:
        a.close()
        b.close()


async def test_memory_cache_prunes_as_it_goes(clock: Clock) -> None:
    c = MemoryNonceCache(clock=clock)
    for i in range(100):
        await c.remember("k", str(i), clock.now + 1)
    clock.advance(2)
    await c.remember("k", "new", clock.now + 1)
    assert len(c) == 1


def test_check_fresh_window() -> None:
    check_fresh(1000, 1000, 300)
    check_fresh(700, 1000, 300)
    check_fresh(1300, 1000, 300)
    with pytest.raises(ExpiredError) as info:
        check_fresh(699, 1000, 300)
    assert info.value.code == "E_EXPIRED" and info.value.field == "created"
    with pytest.raises(ExpiredError, match="in the future"):
        check_fresh(1301, 1000, 300)


async def test_replayed_signed_request_is_refused(cache: NonceCache, clock: Clock) -> None:
    """The whole inbound check as a handler does it: verify, then the nonce."""
    key = generate_key("ed25519", "dept-a-1")
    keys = Keystore([ManagedKey(key, owner="dept-a")])
    url = "https://hub.example/v1/systems/dept-a/records"
    headers: dict[str, str] = {}
    sign_request("POST", url, headers, b"[]", signer=key, created=clock.now)
    for attempt in range(2):
        sig = verify_request("POST", url, headers, b"[]", keys=keys, now=clock.now)
        if attempt == 0:
            await check_replay(cache, sig.key_id, sig.nonce, sig.created, 300)
        else:
            with pytest.raises(ReplayError):
                await check_replay(cache, sig.key_id, sig.nonce, sig.created, 300)
