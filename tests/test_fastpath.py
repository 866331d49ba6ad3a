"""The fast records path (hub/fastpath.py) over raw sockets: which requests it answers, which
it hands to aiohttp, and that a connection's answers stay in order across the hand-over.

The API suites (test_api.py, test_api_security.py, test_hostile_corpus.py) run every case
both ways (the ``http_path`` fixture); here are the framing cases a client library does not
produce: pipelining, bodies in pieces, half-closed connections, odd framing."""

from __future__ import annotations

import asyncio
import gzip
import socket
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE

from contracts.samples import sample_inspection
from hub import fastpath
from hub.api import create_app
from hub.fastpath import FastAppRunner, FastServer
from tests.helpers import config

TOKEN = "s3cret-token-dept-a"
PATH = "/v1/systems/dept-a/records"


class Served:
    def __init__(self, runner: web.AppRunner, port: int, db: Path) -> None:
        self.runner = runner
        self.port = port
        self.db = db

    @property
    def server(self) -> FastServer:
        return self.runner.server  # type: ignore[return-value]

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    def stored(self) -> list[str]:
        with closing(sqlite3.connect(self.db)) as conn:
            return [r[0] for r in conn.execute("SELECT id FROM messages ORDER BY seq")]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    cfg = config(
        tmp_path,
        {"national": {"url": "http://127.0.0.1:9/in"}},
        token=TOKEN,
        dispatcher={"enabled": False},
        limits={"max_body_bytes": 64 * 1024},
    )
    runner = FastAppRunner(create_app(cfg), access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield Served(runner, port, tmp_path / "data" / "hub.db")
    finally:
        await runner.cleanup()


def post(body: bytes, *, extra: str = "", path: str = PATH, version: str = "1.1") -> bytes:
    return (
        f"POST {path} HTTP/{version}\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def record(i: int) -> bytes:
    return orjson.dumps(sample_inspection(i))


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer (Content-Length framed, or chunked as aiohttp may send)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        assert headers.get("transfer-encoding") == "chunked", headers
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if not size:
                break
            body += chunk[:-2]
    return status, headers, body


async def test_keep_alive_requests_are_answered_on_the_fast_path(served: Served) -> None:
    reader, writer = await served.connect()
    ids = []
    for i in range(3):
        writer.write(post(record(i)))
        status, headers, body = await read_answer(reader)
        assert status == 202, body
        assert headers["content-type"] == "application/json"
        assert "date" in headers and "connection" not in headers
        assert headers["server"] == SERVER_SOFTWARE  # as aiohttp says it
        ids.append(orjson.loads(body)["id"])
    writer.close()
    assert served.server.answered == 3 and served.server.handed_over == 0
    assert served.stored() == ids


async def test_pipelined_requests_in_one_write_are_answered_in_order(served: Served) -> None:
    reader, writer = await served.connect()
    bad = dict(sample_inspection(9), region_code="nowhere")
    writer.write(post(record(1)) + post(orjson.dumps(bad)) + post(record(2)))
    answers = [await read_answer(reader) for _ in range(3)]
    writer.close()
    assert [a[0] for a in answers] == [202, 422, 202]
    assert orjson.loads(answers[1][2])["code"] == "E_SCHEMA"
    assert served.stored() == [orjson.loads(answers[0][2])["id"], orjson.loads(answers[2][2])["id"]]


async def test_a_request_in_small_pieces(served: Served) -> None:
    reader, writer = await served.connect()
    data = post(record(4))
    for i in range(0, len(data), 7):
        writer.write(data[i : i + 7])
        await writer.drain()
        await asyncio.sleep(0)
    status, _, body = await read_answer(reader)
    writer.close()
    assert status == 202, body
    assert served.server.answered == 1


async def test_other_routes_after_a_fast_request_go_to_aiohttp_in_order(served: Served) -> None:
    reader, writer = await served.connect()
    # pipelined: a fast POST, then a GET aiohttp must answer, then another POST (now aiohttp's)
    writer.write(
        post(record(5)) + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + post(record(6))
    )
    first, second, third = [await read_answer(reader) for _ in range(3)]
    writer.close()
    assert first[0] == 202 and second[0] == 200 and third[0] == 202
    assert orjson.loads(second[2])["status"] == "ok"
    assert served.server.answered == 1 and served.server.handed_over == 1
    assert len(served.stored()) == 2


@pytest.mark.parametrize(
    ("name", "raw", "status"),
    [
        (
            "chunked body",
            f"POST {PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(record(7)), record(7)),
            202,
        ),
        (
            "gzip body",
            post(gzip.compress(record(8)), extra="Content-Encoding: gzip\r\n"),
            202,
        ),
        ("HTTP/1.0", post(record(9), version="1.0"), 202),
        ("over the body limit", post(b"x" * (70 * 1024)), 413),
        ("no Host", post(record(10)).replace(b"Host: 127.0.0.1\r\n", b""), 400),
        (
            "two Content-Lengths",
            post(record(11), extra=f"Content-Length: {len(record(11))}\r\n"),
            400,
        ),
        ("a system name with an escape", post(record(12), path=PATH.replace("-", "%2D")), 202),
        ("a bad request line", b"POST /v1 /x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ],
)
async def test_requests_aiohttp_must_frame_are_handed_over(
    served: Served, name: str, raw: bytes, status: int
) -> None:
    reader, writer = await served.connect()
    writer.write(raw)
    got, _headers, body = await read_answer(reader)
    writer.close()
    assert got == status, (name, body)
    assert served.server.answered == 0 and served.server.handed_over == 1, name
    if status == 202:
        assert served.stored() == [orjson.loads(body)["id"]]


async def test_refusals_on_the_fast_path_are_the_handlers_problem_documents(
    served: Served,
) -> None:
    reader, writer = await served.connect()
    writer.write(post(record(1)).replace(TOKEN.encode(), b"wrong-token-000000"))
    status, headers, body = await read_answer(reader)
    assert status == 401 and headers["content-type"] == "application/problem+json"
    assert orjson.loads(body)["code"] == "E_AUTH"
    writer.write(post(record(2), path="/v1/systems/nobody/records"))
    status, _, body = await read_answer(reader)
    assert status == 404 and orjson.loads(body)["code"] == "E_UNKNOWN_SYSTEM"
    writer.write(post(b"{not json"))
    status, _, body = await read_answer(reader)
    assert status == 400 and orjson.loads(body)["field"] == "body"
    writer.close()
    assert served.server.answered == 3 and served.stored() == []


async def test_connection_close_and_half_close(served: Served) -> None:
    reader, writer = await served.connect()
    writer.write(post(record(1), extra="Connection: close\r\n"))
    status, headers, _ = await read_answer(reader)
    assert status == 202 and headers["connection"] == "close"
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the hub
    writer.close()
    # a client that sends two requests and half-closes still gets both answers
    reader, writer = await served.connect()
    writer.write(post(record(2)) + post(record(3)))
    writer.write_eof()
    answers = [await read_answer(reader) for _ in range(2)]
    assert [a[0] for a in answers] == [202, 202]
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert len(served.stored()) == 3


async def test_an_idle_keep_alive_connection_is_closed(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fastpath, "KEEPALIVE_SECONDS", 0.2)
    reader, writer = await served.connect()
    writer.write(post(record(1)))
    assert (await read_answer(reader))[0] == 202
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_shutdown_answers_the_request_in_flight(tmp_path: Path) -> None:
    cfg = config(
        tmp_path, {"national": {"url": "http://127.0.0.1:9/in"}}, dispatcher={"enabled": False}
    )
    app = create_app(cfg)
    runner = FastAppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = post(record(1)).replace(f"Authorization: Bearer {TOKEN}\r\n".encode(), b"")
    writer.write(data[:-5])  # the request is not complete yet
    await writer.drain()
    await asyncio.sleep(0.05)
    stopping = asyncio.ensure_future(runner.cleanup())
    await asyncio.sleep(0.05)
    assert await asyncio.wait_for(idle_r.read(), 5) == b""  # the idle one is closed at once
    writer.write(data[-5:])  # completes after the sites closed: aiohttp would answer it too
    got: Any = await asyncio.wait_for(read_answer(reader), 10)
    await stopping
    assert got[0] == 202
    idle_w.close()
    writer.close()


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("a second Host", post(record(13), extra="Host: evil.example\r\n")),
        ("a second Content-Type", post(record(13), extra="Content-Type: text/plain\r\n")),
        ("two User-Agents", post(record(13), extra="User-Agent: a\r\nUser-Agent: b\r\n")),
        ("129 headers", post(record(13), extra="".join(f"X-{i}: 1\r\n" for i in range(126)))),
        ("the old websocket key", post(record(13), extra="Sec-WebSocket-Key1: x\r\n")),
        (
            "data after Connection: close",
            post(record(13), extra="Connection: close\r\n") + post(record(14)),
        ),
    ],
)
async def test_requests_aiohttp_refuses_are_not_answered_on_the_fast_path(
    served: Served, name: str, raw: bytes
) -> None:
    reader, writer = await served.connect()
    writer.write(raw)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
    writer.close()
    assert head.split()[1] == b"400", (name, head)
    assert served.server.answered == 0 and served.stored() == [], name


async def test_an_upgrade_request_is_handed_over(served: Served) -> None:
    # httptools raises HttpParserUpgrade (not an HttpParserError) for these
    reader, writer = await served.connect()
    writer.write(post(record(15), extra="Connection: Upgrade\r\nUpgrade: h2c\r\n"))
    status, _, body = await read_answer(reader)
    writer.close()
    assert status == 202, body
    assert served.server.answered == 0 and served.server.handed_over == 1


async def test_a_head_with_a_bare_lf_is_handed_over_at_once(served: Served) -> None:
    # no CRLF CRLF will ever come; aiohttp refuses the head without waiting for one
    reader, writer = await served.connect()
    writer.write(f"POST {PATH} HTTP/1.1\r\nHost: x\nContent-Length: 2\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)
    writer.close()
    assert head.split()[1] == b"400", head


async def test_header_values_lose_trailing_whitespace_as_on_aiohttp(served: Served) -> None:
    # aiohttp strips the OWS after a field value (llhttp does not): the same Idempotency-Key
    reader, writer = await served.connect()
    writer.write(post(record(20), extra="Idempotency-Key: key-20 \t \r\n"))
    status, _, body = await read_answer(reader)
    assert status == 202, body
    other = record(21)
    writer.write(
        f"POST {PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/json\r\nIdempotency-Key: key-20\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(other), other)
    )
    status, _, body = await read_answer(reader)
    writer.close()
    assert served.server.answered == 1 and served.server.handed_over == 1
    assert status == 409 and orjson.loads(body)["code"] == "E_DUPLICATE", body


def test_answers_with_cr_or_lf_in_a_header_are_refused() -> None:
    resp = web.Response(body=b"{}", status=202)
    resp.headers["X-Echo"] = "a\r\nSet-Cookie: evil=1"
    with pytest.raises(ValueError):
        fastpath._encode(resp, False)
    resp = web.Response(body=b"{}", status=202)
    resp.headers["X-Name"] = "é中"
    assert b"X-Name: " + "é中".encode() + b"\r\n" in fastpath._encode(resp, False)


async def test_a_client_that_does_not_read_its_answers_is_not_read_either(
    served: Served,
) -> None:
    # answers pile up in the transport while the client pipelines without reading: the hub
    # stops taking requests (as aiohttp's writer waits for drain) instead of buffering them
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", served.port))
    while not served.server.fast:
        await asyncio.sleep(0.01)
    (conn,) = served.server.fast
    assert conn.transport is not None
    conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1024)
    conn.transport.set_write_buffer_limits(high=0)
    n = 120
    sending = asyncio.ensure_future(
        loop.sock_sendall(sock, b"".join(post(record(100 + i)) for i in range(n)))
    )
    await asyncio.sleep(1.5)
    assert served.server.answered < n
    got = b""
    while got.count(b"HTTP/1.1 202 ") < n:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 10)
        assert chunk, got[-300:]
        got += chunk
    await sending
    sock.close()
    assert served.server.answered == n and len(served.stored()) == n


async def test_a_request_in_single_bytes_is_parsed_once_and_scanned_once(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each piece of a request used to re-scan the whole buffer and re-parse the head: a head
    # or body sent a byte at a time cost time quadratic in its size (60 KiB: seconds of CPU)
    parsers: list[object] = []
    scanned: list[int] = []
    real_parser, real_eol = fastpath.httptools.HttpRequestParser, fastpath._BAD_EOL

    def counting_parser(head: Any) -> Any:
        parsers.append(head)
        return real_parser(head)

    class CountingEol:
        @staticmethod
        def search(buf: bytearray, pos: int = 0) -> Any:
            scanned.append(len(buf) - pos)
            return real_eol.search(buf, pos)

    monkeypatch.setattr(fastpath.httptools, "HttpRequestParser", counting_parser)
    monkeypatch.setattr(fastpath, "_BAD_EOL", CountingEol)
    data = post(record(30), extra=f"X-Pad: {'p' * 4000}\r\n")
    conn = fastpath.FastProtocol(served.server)
    sent: list[bytes] = []

    class Transport(asyncio.Transport):
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return default

        def write(self, data: Any) -> None:
            sent.append(bytes(data))

        def close(self) -> None:
            pass

    conn.connection_made(Transport())
    for i in range(len(data)):
        conn.data_received(data[i : i + 1])
    while conn.busy:
        await asyncio.sleep(0.01)
    assert sent and sent[0].startswith(b"HTTP/1.1 202 "), sent
    assert len(parsers) == 1
    assert sum(scanned) <= 2 * len(data)
    conn.connection_lost(None)


async def test_a_half_closed_connection_handed_over_is_closed_as_aiohttp_closes_it(
    served: Served,
) -> None:
    reader, writer = await served.connect()
    writer.write(f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())  # a head cut short
    writer.write_eof()
    # aiohttp declines a half-close (the transport closes at once), not 75 s later at the
    # keep-alive timeout
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert served.server.handed_over == 1
