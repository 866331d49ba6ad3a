"""Baseline server: the least an aiohttp ingest endpoint can do.

Same aiohttp and one process like ``jghub serve``; asyncio's own event loop unless
``--event-loop uvloop`` (the hub's ``listen.event_loop``); the handler reads
the body, parses it with orjson and answers 202 with a small JSON body. No validation, no
storage: the ceiling the hub's HTTP layer is compared with.

``--processes N`` runs it like ``jghub serve --workers N``: this process starts N-1 copies of
itself, all listening on the port with ``SO_REUSEPORT`` (the kernel spreads the connections
over them), and stops them when it stops.

    python bench/baseline_app.py --port 8081
    python bench/baseline_app.py --port 8081 --processes 2
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys

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
    ap.add_argument("--processes", type=int, default=1, help="processes on the port (SO_REUSEPORT)")
    ap.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # a copy
    ap.add_argument(
        "--event-loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="asyncio's own loop (the issue's bare aiohttp handler) or uvloop",
    )
    args = ap.parse_args()
    loop = None
    if args.event_loop == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    app = web.Application(client_max_size=32 * 1024 * 1024 + 1)
    app.router.add_post("/v1/systems/{system}/records", post_records)
    app.router.add_get("/healthz", healthz)
    copies: list[subprocess.Popen[bytes]] = []
    if args.processes > 1:
        argv = [
            sys.executable,
            __file__,
            "--host",
            args.host,
            "--port",
            str(args.port),
            "--reuse-port",
            "--event-loop",
            args.event_loop,
        ]
        copies = [subprocess.Popen(argv) for _ in range(args.processes - 1)]
    try:
        web.run_app(
            app,
            loop=loop,
            host=args.host,
            port=args.port,
            print=None,
            access_log=None,
            reuse_port=args.processes > 1 or args.reuse_port,
        )
    finally:
        for p in copies:
            p.terminate()
        for p in copies:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
