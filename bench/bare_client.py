"""Baseline client: a bare aiohttp client loop posting prepared bodies to a sink.

The least a Python deliverer can do: no queue, no transform, no settle; the bodies are built
before the clock starts. ``--concurrency`` requests in flight over one keep-alive session
(the same as the hub's ``http_json`` target in the benchmark). Reads ``--bodies``, an orjson
file ``[[idempotency_key, body_text], ...]``, and posts each once; exits 1 on a non-2xx.

    python bench/bare_client.py --url http://127.0.0.1:8090/records --bodies b.json
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import aiohttp
import orjson


async def run(url: str, bodies: list[tuple[str, bytes]], concurrency: int) -> int:
    it = iter(bodies)
    bad = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal bad
        for key, body in it:
            headers = {"Content-Type": "application/json", "Idempotency-Key": key}
            async with session.post(url, data=body, headers=headers) as r:
                await r.read()
                if r.status >= 300:
                    bad += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return bad


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--bodies", type=Path, required=True)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    bodies = [(k, b.encode()) for k, b in orjson.loads(args.bodies.read_bytes())]
    bad = asyncio.run(run(args.url, bodies, args.concurrency))
    if bad:
        print(f"{bad} requests were not 2xx", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
