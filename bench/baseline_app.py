"""Baseline server: the least an aiohttp ingest endpoint can do.

Same aiohttp, same event loop policy and one process like ``jghub serve``; the handler reads
the body, parses it with orjson and answers 202 with a small JSON body. No validation, no
storage: the ceiling the hub's HTTP layer is compared with.

    python bench/baseline_app.py --port 8081
"""

from __future__ import annotations

import argparse
import itertools

import orjson
from aiohttp import web

_seq = itertools.count(1)


async def post_records(request: web.Request) -> web.Response:
    body = await request.read()
    value = orjson.loads(body)
    n = len(value) if isinstance(value, list) else 1
    return web.Response(
        body=orjson.dumps({"accepted": n, "id": str(next(_seq))}),
        status=202,
        content_type="application/json",
    )


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    app = web.Application(client_max_size=32 * 1024 * 1024 + 1)
    app.router.add_post("/v1/systems/{system}/records", post_records)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
