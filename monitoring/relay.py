"""The metrics relay: makes ``/metrics`` complete under ``jghub serve --workers N``.

The extra ingest processes of a node count the records they accept and reject in their own
registries, and the kernel hands a scrape to whichever process it likes (``SO_REUSEPORT``).
So the node process listens on a Linux abstract-namespace Unix stream socket named after its
store (like the doorbell, :mod:`hub.doorbell`), and

* every ingest worker keeps one connection open to it (``hello``), and answers ``collect``
  with the current values of its counters;
* at scrape time the node asks every connected worker (``collect``) and adds their counters to
  its own; a worker that went away leaves its last values behind, so totals never go down;
* a scrape that lands on a worker is answered by the node (``expose`` / ``overview`` on a
  connection of its own), the worker only checks the credential first.

Only processes of the same user may talk to the relay (``SO_PEERCRED``): abstract sockets have
no file permissions. Messages are JSON lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

__all__ = [
    "CounterValues",
    "NodeRelay",
    "WorkerRelay",
    "relay_address",
]

log = logging.getLogger("jghub.monitoring")

#: (counter name, label values) -> value
CounterValues = dict[tuple[str, tuple[str, ...]], float]

_LIMIT = 64 * 1024 * 1024  # one JSON line may carry every counter series of a worker
_ANSWER_TIMEOUT = 5.0  # a worker's event loop answers between two requests; generous


def _listening_socket(address: str) -> socket.socket:
    """A listening Unix stream socket bound to ``address``, made by hand: an abstract name
    (leading NUL) passed as ``path=`` works on asyncio's loop but not on uvloop's."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(address)
        sock.listen(64)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def _connect(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A stream connection to ``address`` (see :func:`_listening_socket`)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_unix_connection(sock=sock, limit=_LIMIT)


def relay_address(store_path: Path) -> str:
    """The abstract socket name of the node that owns ``store_path``."""
    digest = hashlib.sha256(str(store_path.resolve()).encode()).hexdigest()[:24]
    return f"\0jghub-metrics-{digest}"


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def _encode(values: CounterValues) -> list[list[object]]:
    return [[name, list(labels), v] for (name, labels), v in values.items()]


def _decode(items: object) -> CounterValues:
    out: CounterValues = {}
    if not isinstance(items, list):
        return out
    for item in items:
        if (
            isinstance(item, list)
            and len(item) == 3
            and isinstance(item[0], str)
            and isinstance(item[1], list)
            and isinstance(item[2], (int, float))
        ):
            out[(item[0], tuple(str(x) for x in item[1]))] = float(item[2])
    return out


@dataclass(slots=True)
class _Worker:
    pid: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    last: CounterValues = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class NodeRelay:
    """The node's side: registers workers, collects their counters, answers their scrapes.

    ``expose`` and ``overview`` build what the node's own ``/metrics`` and
    ``/dashboard/api/overview`` would answer (bytes)."""

    def __init__(
        self,
        address: str,
        expose: Callable[[], Awaitable[bytes]],
        overview: Callable[[], Awaitable[bytes]],
    ) -> None:
        self.address = address
        self._expose = expose
        self._overview = overview
        self._server: asyncio.AbstractServer | None = None
        self._workers: dict[int, _Worker] = {}
        #: counters of workers that went away (a restarted worker starts again at zero)
        self.departed: CounterValues = {}

    @property
    def workers(self) -> list[int]:
        """Pids of the workers connected now."""
        return sorted(self._workers)

    async def start(self) -> bool:
        """Listen; False (and a warning) when another node holds the address."""
        try:
            sock = _listening_socket(self.address)
            self._server = await asyncio.start_unix_server(self._connected, sock=sock, limit=_LIMIT)
        except OSError:
            log.warning("metrics relay %r is taken; workers' counts are not merged", self.address)
            return False
        return True

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._workers.values()):
                w.writer.close()
            self._workers.clear()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if _peer_uid(writer) != os.getuid():
                writer.close()
                return
            line = await asyncio.wait_for(reader.readline(), _ANSWER_TIMEOUT)
            msg = orjson.loads(line) if line else {}
            op = msg.get("op") if isinstance(msg, dict) else None
            if op == "hello" and isinstance(msg.get("pid"), int):
                old = self._workers.pop(msg["pid"], None)
                if old is not None:
                    self._fold(old)
                self._workers[msg["pid"]] = _Worker(msg["pid"], reader, writer)
                return  # the connection stays open; collect() talks on it
            if op in ("expose", "overview"):
                body = await (self._expose() if op == "expose" else self._overview())
                writer.write(body)
                await writer.drain()
            writer.close()
        except (OSError, TimeoutError, orjson.JSONDecodeError, asyncio.IncompleteReadError):
            writer.close()

    def _fold(self, w: _Worker) -> None:
        for key, v in w.last.items():
            self.departed[key] = self.departed.get(key, 0.0) + v
        w.last = {}
        w.writer.close()

    async def _ask(self, w: _Worker) -> None:
        async with w.lock:
            try:
                w.writer.write(b'{"op":"collect"}\n')
                await w.writer.drain()
                line = await asyncio.wait_for(w.reader.readline(), _ANSWER_TIMEOUT)
                if not line:
                    raise ConnectionResetError("worker closed the relay connection")
                w.last = _decode(orjson.loads(line).get("counters"))
            except (OSError, TimeoutError, orjson.JSONDecodeError, AttributeError) as exc:
                log.info("ingest worker %d left the metrics relay: %s", w.pid, exc)
                if self._workers.get(w.pid) is w:
                    del self._workers[w.pid]
                self._fold(w)

    async def collect(self) -> CounterValues:
        """The workers' counters now (each worker asked once), plus those of departed ones."""
        await asyncio.gather(*(self._ask(w) for w in list(self._workers.values())))
        out = dict(self.departed)
        for w in self._workers.values():
            for key, v in w.last.items():
                out[key] = out.get(key, 0.0) + v
        return out


class WorkerRelay:
    """An ingest worker's side: stays connected to the node, answers ``collect`` with
    ``snapshot()``, and forwards scrapes to the node (:meth:`ask_node`)."""

    def __init__(self, address: str, snapshot: Callable[[], CounterValues]) -> None:
        self.address = address
        self.snapshot = snapshot
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                reader, writer = await _connect(self.address)
            except OSError:  # the node is not listening (yet): try again
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.1
            try:
                writer.write(orjson.dumps({"op": "hello", "pid": os.getpid()}) + b"\n")
                await writer.drain()
                self.connected.set()
                while line := await reader.readline():
                    if orjson.loads(line).get("op") == "collect":
                        body = {"counters": _encode(self.snapshot())}
                        writer.write(orjson.dumps(body) + b"\n")
                        await writer.drain()
            except (OSError, orjson.JSONDecodeError, AttributeError):
                pass
            finally:
                self.connected.clear()
                writer.close()
            await asyncio.sleep(delay)

    async def ask_node(self, op: str) -> bytes:
        """The node's answer to ``op`` (``expose`` or ``overview``); OSError or
        TimeoutError when the node does not answer."""
        reader, writer = await asyncio.wait_for(_connect(self.address), _ANSWER_TIMEOUT)
        try:
            writer.write(orjson.dumps({"op": op}) + b"\n")
            await writer.drain()
            return await asyncio.wait_for(reader.read(), 2 * _ANSWER_TIMEOUT)
        finally:
            writer.close()
