"""What the platform adapters' demo flows (``adapters/*/demo.py``) and their tests share: set
up a work folder from an example platform configuration, write trial keys, load the hub file
with the simulators' addresses in the environment, serve the hub on loopback and wait for a
flow's steps.

Each platform keeps its own configuration, key ids, simulators and checks; only the plumbing
lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aiohttp import web

    from hub.config import HubConfig

__all__ = [
    "copy_example",
    "environment",
    "free_port",
    "load_with_environment",
    "serve_app",
    "serving",
    "started",
    "until",
    "write_trial_keys",
]


class Peer(Protocol):
    """A simulated system that starts and stops (``hub.peers.PeerServer`` and the others)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def until(
    cond: Callable[[], bool | Awaitable[bool]], what: str, timeout: float, *, flow: str
) -> None:
    """Poll ``cond`` (plain or awaitable) until it holds; after ``timeout`` seconds raise
    :class:`TimeoutError` naming the ``flow`` and ``what`` it waited for."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if not isinstance(got, bool):
            got = await got
        if got:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{flow} flow: timed out waiting for {what}")
        await asyncio.sleep(0.02)


def free_port() -> int:
    """A port free on 127.0.0.1 now (for a hub whose own configuration must name its port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set the variables the example files read (keys, URLs, tokens) while the configuration
    loads, and put the previous values back after."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_with_environment(hub_file: Path, values: dict[str, str]) -> HubConfig:
    """Load ``hub_file`` with ``values`` set in the environment (see :func:`environment`)."""
    from hub.config import load_config

    with environment(values):
        return load_config(hub_file)


def copy_example(
    example: Path, work: Path, entries: Iterable[str] = ("systems",), *, fresh: bool = False
) -> Path:
    """Copy ``example/hub.yaml`` and the folders ``entries`` into ``work``; return the hub
    file there. ``fresh`` removes the folders in ``work`` first (files no longer in the
    example do not stay behind)."""
    work.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        if fresh:
            shutil.rmtree(work / entry, ignore_errors=True)
        shutil.copytree(example / entry, work / entry, dirs_exist_ok=True)
    shutil.copy2(example / "hub.yaml", work / "hub.yaml")
    return work / "hub.yaml"


def write_trial_keys(keys_dir: Path, hub_key_id: str, peer_key_id: str) -> tuple[Any, Any]:
    """Generate the hub's Ed25519 key and a platform's, and write what the hub file reads
    into ``keys_dir``: the hub's private key ``<hub_key_id>.pem`` and the platform's public key
    ``<peer_key_id>.pub.pem``. Returns (hub key, platform key): the platform's simulator
    verifies with the first and signs with the second."""
    from security.signing import generate_key, private_pem

    keys_dir.mkdir(parents=True, exist_ok=True)
    hub_key = generate_key("ed25519", hub_key_id)
    peer_key = generate_key("ed25519", peer_key_id)
    (keys_dir / f"{hub_key_id}.pem").write_bytes(private_pem(hub_key))
    (keys_dir / f"{peer_key_id}.pub.pem").write_bytes(peer_key.public_pem() or b"")
    return hub_key, peer_key


async def serve_app(app: web.Application, port: int = 0) -> tuple[web.AppRunner, web.TCPSite]:
    """Serve ``app`` on 127.0.0.1:``port`` (0: a free one); the caller cleans the runner up."""
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, site


@contextlib.asynccontextmanager
async def serving(app: web.Application, port: int = 0) -> AsyncIterator[web.TCPSite]:
    """Serve ``app`` on 127.0.0.1:``port`` for the time of the block (see :func:`serve_app`)."""
    runner, site = await serve_app(app, port)
    try:
        yield site
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def started(*peers: Peer) -> AsyncIterator[None]:
    """Start the simulated ``peers`` in order for the time of the block; on exit (or when one
    does not start) stop those started, the last first."""
    running: list[Peer] = []
    try:
        for peer in peers:
            await peer.start()
            running.append(peer)
        yield
    finally:
        for peer in reversed(running):
            await peer.stop()
