"""Fallback HTTP load generator (aiohttp client) for machines without ``wrk``.

Runs in its own process, stops by itself after ``--duration`` seconds (requests still in flight
then are abandoned, as wrk does) and prints the same ``WRK_JSON {...}`` line as
``bench/wrk_post.lua``. It is much slower than wrk: one Python process cannot saturate a fast
server, so figures measured with it are a lower bound (the table says which generator ran).

    python bench/loadgen.py URL --bodies DIR --count N --content-type T -c 32 -d 10
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from pathlib import Path

import aiohttp
import orjson


async def run(args: argparse.Namespace) -> dict[str, object]:
    bodies = [(Path(args.bodies) / str(i)).read_bytes() for i in range(args.count)]
    headers = {"Content-Type": args.content_type}
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    nbytes = 0
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    connector = aiohttp.TCPConnector(limit=args.connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker(w: int) -> None:
            nonlocal nbytes
            i = w
            while True:
                body = bodies[i % len(bodies)]
                i += args.connections
                t0 = time.perf_counter()
                try:
                    async with session.post(args.url, data=body, headers=headers) as resp:
                        data = await resp.read()
                        statuses[str(resp.status)] += 1
                        nbytes += len(data)
                except TimeoutError:
                    errors["timeout"] += 1
                    continue
                except aiohttp.ClientConnectionError:
                    errors["read"] += 1
                    await asyncio.sleep(0.01)
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)

        start = time.perf_counter()
        tasks = [asyncio.create_task(worker(w)) for w in range(args.connections)]
        await asyncio.sleep(args.duration)
        elapsed = time.perf_counter() - start
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0

    ok = sum(v for k, v in statuses.items() if k.startswith(("2", "3")))
    return {
        "requests": sum(statuses.values()),
        "duration_s": elapsed,
        "bytes": nbytes,
        "errors": {
            "connect": errors["connect"],
            "read": errors["read"],
            "write": 0,
            "status": sum(statuses.values()) - ok,
            "timeout": errors["timeout"],
        },
        "latency_ms": {
            "p50": pct(0.50),
            "p90": pct(0.90),
            "p99": pct(0.99),
            "max": latencies[-1] if latencies else 0.0,
        },
        "statuses": dict(statuses),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--bodies", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--content-type", default="application/json")
    ap.add_argument("-c", "--connections", type=int, default=32)
    ap.add_argument("-d", "--duration", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()
    result = asyncio.run(run(args))
    print("WRK_JSON " + orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
