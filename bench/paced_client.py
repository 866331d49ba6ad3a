"""Open-loop load generator: single-record POSTs at a fixed rate, every answer timed.

Request ``i`` is due at ``start + i / rate``; it is sent then whatever happened to the ones
before (up to ``--max-inflight``), and its latency counts from the time it was *due*, so a
stalled server is not hidden by a client that waits for it (no coordinated omission). Stops
by itself after ``--seconds``, then waits at most 30 s for the answers in flight.

Writes ``--out``: orjson ``{"start", "rate", "sent", "results": [[due, answered, status, id]]}``
with wall-clock times (``time.time()``, comparable with the sink's on the same machine).

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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--bodies", type=Path, required=True, help="dir of files 0..count-1")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--rate", type=float, required=True, help="requests per second")
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--max-inflight", type=int, default=256)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    bodies = [(args.bodies / str(i)).read_bytes() for i in range(args.count)]
    res = asyncio.run(run(args.url, bodies, args.rate, args.seconds, args.max_inflight))
    args.out.write_bytes(orjson.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
