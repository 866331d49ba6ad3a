"""Open-loop load generator: single-record POSTs at a fixed rate, every answer timed.

Request ``i`` is due at ``start + i / rate``; it is sent then whatever happened to the ones
before (up to ``--max-inflight``), and its latency counts from the time it was *due*, so a
stalled server is not hidden by a client that waits for it (no coordinated omission). Stops
by itself after ``--seconds``, then waits at most 30 s for the answers in flight.

Writes ``--out``: orjson ``{"start", "rate", "sent", "results": [[due, answered, status, id]]}``
with wall-clock times (``time.time()``, comparable with the sink's on the same machine).

Two engines: ``raw`` (the default) writes pre-built HTTP/1.1 requests on keep-alive
connections (an ``asyncio.Protocol`` per connection, a connection per request in flight) and
reads only the status line, ``Content-Length`` and the body: on a 2-core machine every
microsecond the load generator spends is taken from the server it measures, so it should
cost as little as wrk does. ``aiohttp`` uses an aiohttp client session (heavier).

    python bench/paced_client.py --url URL --bodies DIR --count 1000 --rate 2000 --seconds 10 \
        --out results.json
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson


async def run(
    url: str, bodies: list[bytes], rate: float, seconds: float, max_inflight: int
) -> dict[str, Any]:
    results: list[list[Any]] = []
    sem = asyncio.Semaphore(max_inflight)
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=max_inflight)
    tasks: set[asyncio.Task[None]] = set()

    async def one(session: aiohttp.ClientSession, due: float, body: bytes) -> None:
        try:
            async with session.post(url, data=body, headers=headers) as r:
                raw = await r.read()
                now = time.time()
                mid = orjson.loads(raw).get("id") if r.status == 202 else None
                results.append([due, now, r.status, mid])
        except (aiohttp.ClientError, TimeoutError) as exc:
            results.append([due, time.time(), 0, type(exc).__name__])
        finally:
            sem.release()

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # open the connections before the clock starts
        await asyncio.gather(*(session.get(url.split("/v1/")[0] + "/healthz") for _ in range(8)))
        start = time.time() + 0.1
        loop_start = time.monotonic() + 0.1
        i = 0
        total = int(rate * seconds)
        while i < total:
            due_mono = loop_start + i / rate
            delay = due_mono - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            # send everything that is due now (the loop may have woken late)
            now_mono = time.monotonic()
            while i < total and loop_start + i / rate <= now_mono:
                await sem.acquire()
                task = asyncio.create_task(one(session, start + i / rate, bodies[i % len(bodies)]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
        if tasks:
            await asyncio.wait(tasks, timeout=30)
    return {"start": start, "rate": rate, "sent": i, "results": results}


class _Conn(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed minimally."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buf[:end]).lower()
        at = head.find(b"content-length:") + 15
        stop = head.find(b"\r\n", at)
        length = int(head[at : stop if stop > 0 else len(head)])
        if len(self.buf) < end + 4 + length:
            return
        status = int(head[9:12])
        body = bytes(self.buf[end + 4 : end + 4 + length])
        del self.buf[: end + 4 + length]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((status, body))

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


async def run_raw(
    url: str, bodies: list[bytes], rate: float, seconds: float, max_inflight: int
) -> dict[str, Any]:
    """The same schedule as :func:`run`, on raw keep-alive connections."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    requests = [head + str(len(b)).encode() + b"\r\n\r\n" + b for b in bodies]
    loop = asyncio.get_running_loop()
    idle: list[_Conn] = []
    results: list[list[Any]] = []
    sem = asyncio.Semaphore(max_inflight)
    tasks: set[asyncio.Task[None]] = set()

    async def connect() -> _Conn:
        _, proto = await loop.create_connection(_Conn, host, port)
        return proto

    async def one(due: float, request: bytes) -> None:
        conn = None
        try:
            conn = idle.pop() if idle else await connect()
            status, body = await asyncio.wait_for(conn.exchange(request), 30)
            now = time.time()
            mid = orjson.loads(body).get("id") if status == 202 else None
            results.append([due, now, status, mid])
            if not conn.lost:
                idle.append(conn)
        except (OSError, ConnectionError, TimeoutError) as exc:
            results.append([due, time.time(), 0, type(exc).__name__])
            if conn is not None and conn.transport is not None:
                conn.transport.close()
        finally:
            sem.release()

    idle.extend([await connect() for _ in range(16)])  # before the clock starts
    start = time.time() + 0.1
    loop_start = time.monotonic() + 0.1
    i = 0
    total = int(rate * seconds)
    while i < total:
        delay = loop_start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        now_mono = time.monotonic()
        while i < total and loop_start + i / rate <= now_mono:
            await sem.acquire()
            task = asyncio.create_task(one(start + i / rate, requests[i % len(requests)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    for conn in idle:
        if conn.transport is not None:
            conn.transport.close()
    return {"start": start, "rate": rate, "sent": i, "results": results}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--bodies", type=Path, required=True, help="dir of files 0..count-1")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--rate", type=float, required=True, help="requests per second")
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--max-inflight", type=int, default=256)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--engine", choices=["raw", "aiohttp"], default="raw")
    args = ap.parse_args()
    bodies = [(args.bodies / str(i)).read_bytes() for i in range(args.count)]
    engine = run_raw if args.engine == "raw" else run
    res = asyncio.run(engine(args.url, bodies, args.rate, args.seconds, args.max_inflight))
    args.out.write_bytes(orjson.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
