"""Loopback sink for the delivery and latency benchmarks: a bare aiohttp server that counts.

* ``POST /records``: one record per request (the ``http_json`` per-record shape); 200.
* ``POST /batch``: ``{"records": [...]}`` (the ``http_json`` batch shape); 200 for all.
* ``GET /stats``: ``{"count", "requests", "first", "last"}``: records received, requests, and
  the wall-clock time (``time.time()``) of the first and the last request.
* ``GET /arrivals``: ``{"<Idempotency-Key>": time, ...}`` of every record received (the
  header of a per-record request, each batch record's ``idempotency_key``; when started with
  ``--keep-arrivals``), for source→target latency.
* ``POST /reset``: forget everything.

It parses every body with orjson (a sink reads what it gets) and does nothing else, so the
same sink serves the hub and the bare-client baseline alike.

    python bench/sink_app.py --port 8090 [--keep-arrivals]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson
from aiohttp import web

STATE: dict[str, Any] = {}


def _reset() -> None:
    STATE.update(count=0, requests=0, first=None, last=None, arrivals={})


def _seen(n: int) -> float:
    now = time.time()
    if STATE["first"] is None:
        STATE["first"] = now
    STATE["last"] = now
    STATE["count"] += n
    STATE["requests"] += 1
    return now


async def post_record(request: web.Request) -> web.Response:
    orjson.loads(await request.read())
    now = _seen(1)
    if STATE["keep"]:
        key = request.headers.get("Idempotency-Key")
        if key:
            STATE["arrivals"][key] = now
    return web.Response(body=b'{"ok":true}', content_type="application/json")


async def post_batch(request: web.Request) -> web.Response:
    value = orjson.loads(await request.read())
    now = _seen(len(value["records"]))
    if STATE["keep"]:
        for rec in value["records"]:
            key = rec.get("idempotency_key")
            if key:
                STATE["arrivals"][key] = now
    return web.Response(body=b'{"ok":true}', content_type="application/json")


async def stats(request: web.Request) -> web.Response:
    body = {k: STATE[k] for k in ("count", "requests", "first", "last")}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def arrivals(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(STATE["arrivals"]), content_type="application/json")


async def reset(request: web.Request) -> web.Response:
    _reset()
    return web.Response(body=b"{}", content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--keep-arrivals", action="store_true")
    args = ap.parse_args()
    _reset()
    STATE["keep"] = args.keep_arrivals
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/records", post_record)
    app.router.add_post("/batch", post_batch)
    app.router.add_get("/stats", stats)
    app.router.add_get("/arrivals", arrivals)
    app.router.add_post("/reset", reset)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
