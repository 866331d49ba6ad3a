"""A lean HTTP/1.1 path for records requests (快速接收通道), in front of aiohttp.

Every connection to the hub's port starts with :class:`FastProtocol`. While its requests are
plain ``POST /v1/systems/{system}/records`` with a ``Content-Length`` body, it frames them
itself (``httptools``, the llhttp parser also under aiohttp and uvicorn, reads the request
head), runs **the same handler** as aiohttp would (:func:`hub.api.post_records` inside
:func:`hub.api.problem_middleware`, given a :class:`FastRequest` with the attributes they
read) and writes the answer. The handler's work (authentication, signature, validation, the
durable commit, refusals and their codes) is unchanged; what is skipped is aiohttp's
per-request machinery around it (request and response objects, the router, the payload
stream, the writer): about half of the CPU of a single-record request
(docs/PERFORMANCE.md).

Anything else is aiohttp's: at the first request that is not such a POST (another route or
method, chunked or compressed bodies, ``Expect``, ``Upgrade``, HTTP/1.0, a head or body over
the limits, anything the parser does not take), the connection is handed to aiohttp's own
protocol with the bytes of that request and all after it, untouched; aiohttp answers it as
it always did, and keeps the connection. Requests of one connection are answered in order,
one at a time, as aiohttp does; a hand-over waits until the fast request before it has been
answered.

``listen.fast_records: false`` turns the path off (aiohttp takes every connection).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from contextlib import suppress
from email.utils import formatdate
from typing import Any, cast

import httptools
from aiohttp import hdrs, web
from aiohttp.helpers import parse_content_type
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.web_runner import GracefulExit
from multidict import CIMultiDict, CIMultiDictProxy, MultiDictProxy
from yarl import URL

__all__ = ["FastAppRunner", "FastProtocol", "FastRequest", "FastServer", "run_app"]

log = logging.getLogger("jghub.api")

#: ``/v1/systems/{system}/records`` with a plain system name (no escapes), optional query
_RECORDS = re.compile(rb"/v1/systems/([A-Za-z0-9_.~-]{1,200})/records(?:\?([^#]*))?")
#: a request head larger than this, or a line longer than aiohttp's 8190, goes to aiohttp
MAX_HEAD = 64 * 1024
MAX_LINE = 8190
#: headers whose presence sends the request to aiohttp (framing and negotiation it handles)
_AIOHTTP_HEADERS = frozenset(
    {
        b"transfer-encoding",
        b"content-encoding",
        b"expect",
        b"upgrade",
        b"te",
        b"trailer",
        b"sec-websocket-key1",  # aiohttp refuses it
    }
)
#: headers aiohttp's request parser refuses to see twice (its SINGLETON_HEADERS, RFC 9110)
_SINGLETONS = frozenset(
    h.lower().encode()
    for h in (
        hdrs.CONTENT_LENGTH,
        hdrs.CONTENT_LOCATION,
        hdrs.CONTENT_RANGE,
        hdrs.CONTENT_TYPE,
        hdrs.ETAG,
        hdrs.HOST,
        hdrs.MAX_FORWARDS,
        hdrs.SERVER,
        hdrs.TRANSFER_ENCODING,
        hdrs.USER_AGENT,
    )
)
#: aiohttp refuses a request with more headers than this (its max_headers)
MAX_HEADERS = 128
#: a CR not followed by LF, or an LF not preceded by CR: a head llhttp (strict) refuses
_BAD_EOL = re.compile(rb"\r[^\n]|(?<!\r)\n")
#: an idle keep-alive connection is closed after this (aiohttp's default keepalive_timeout)
KEEPALIVE_SECONDS = 75.0
#: a connection with more than this buffered while a request is being answered stops reading
_PAUSE_AT = 1 << 20
_SERVER = SERVER_SOFTWARE.encode()  # the Server header aiohttp sends


class _NoStream:
    """``request.content`` of a body read in full: never in error."""

    __slots__ = ()

    @staticmethod
    def exception() -> BaseException | None:
        return None


_NO_STREAM = _NoStream()
_CONTENT_TYPES: dict[str, str] = {}


class FastRequest:
    """What :func:`hub.api.post_records` and :func:`hub.api.problem_middleware` read of an
    aiohttp request, for a request framed by :class:`FastProtocol`: the same values as
    aiohttp's ``web.Request`` would give for it."""

    __slots__ = (
        "_body",
        "_qs",
        "_query",
        "app",
        "headers",
        "match_info",
        "method",
        "path",
        "raw_path",
        "transport",
    )

    content = _NO_STREAM

    def __init__(
        self,
        app: web.Application,
        transport: asyncio.Transport,
        raw_path: str,
        path: str,
        qs: str | None,
        headers: CIMultiDictProxy[str],
        body: bytes,
        system: str,
    ) -> None:
        self.app = app
        self.transport = transport
        self.method = "POST"
        self.raw_path = raw_path
        self.path = path
        self._qs = qs
        self._query: MultiDictProxy[str] | None = None
        self.headers = headers
        self._body = body
        self.match_info = {"system": system}

    @property
    def query(self) -> MultiDictProxy[str]:
        if self._query is None:
            self._query = (
                URL.build(path=self.path, query_string=self._qs, encoded=True).query
                if self._qs
                else MultiDictProxy(CIMultiDict())
            )
        return self._query

    @property
    def content_length(self) -> int:
        return len(self._body)

    @property
    def content_type(self) -> str:
        raw = self.headers.get(hdrs.CONTENT_TYPE)
        if raw is None:
            return "application/octet-stream"
        known = _CONTENT_TYPES.get(raw)
        if known is None:
            known = parse_content_type(raw)[0]
            if len(_CONTENT_TYPES) < 256:
                _CONTENT_TYPES[raw] = known
        return known

    @property
    def scheme(self) -> str:
        return "https" if self.transport.get_extra_info("sslcontext") else "http"

    @property
    def host(self) -> str:
        return self.headers[hdrs.HOST]  # a fast request always has one

    @property
    def url(self) -> URL:
        rel = URL.build(path=self.path, query_string=self._qs or "", encoded=True)
        return URL.build(scheme=self.scheme, authority=self.host).join(rel)

    async def read(self) -> bytes:
        return self._body


class _Head:
    """httptools callbacks: the request target and headers of one request head."""

    __slots__ = ("bad", "headers", "url")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.bad = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) > MAX_LINE:
            self.bad = True
        # llhttp strips the whitespace before a value, not after it; aiohttp strips both
        self.headers.append((name, value.rstrip(b" \t")))


#: the headers :func:`_encode` writes itself
_OWN_HEADERS = frozenset({"content-length", "connection", "date", "server"})
_INTERNAL = (
    b'{"type":"https://jghub.example/errors/E_INTERNAL","title":"Internal error",'
    b'"status":500,"code":"E_INTERNAL","detail":"unexpected error; nothing from this request '
    b'was acknowledged"}'
)
_INTERNAL_ANSWER = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/problem+json\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_INTERNAL), _INTERNAL)
)
_DATE: list[Any] = [0, b""]


def _date() -> bytes:
    now = int(time.time())
    if _DATE[0] != now:
        _DATE[0] = now
        _DATE[1] = formatdate(now, usegmt=True).encode()
    return cast(bytes, _DATE[1])


def _field(text: str) -> bytes:
    """A status reason, header name or value as aiohttp writes it (UTF-8); CR or LF in it
    would let it end the line early (header injection): refused, as aiohttp does."""
    if "\r" in text or "\n" in text:
        raise ValueError(f"newline or carriage return in an HTTP header: {text!r}")
    return text.encode("utf-8")


def _encode(resp: web.StreamResponse, close: bool) -> bytes:
    """The bytes of ``resp`` (a ``web.Response`` with a bytes body) as aiohttp would send
    them: status line, the handler's headers, Content-Length, Date, Server."""
    body = getattr(resp, "body", None)
    if body is None:
        body = b""
    elif not isinstance(body, bytes | bytearray):
        raise TypeError(f"a fast answer needs a bytes body, not {type(body).__name__}")
    out = [b"HTTP/1.1 %d %s\r\n" % (resp.status, _field(resp.reason))]
    for name, value in resp.headers.items():
        if name.lower() in _OWN_HEADERS:
            continue
        out.append(b"%s: %s\r\n" % (_field(name), _field(value)))
    out.append(
        b"Content-Length: %d\r\nDate: %s\r\nServer: %s\r\n%s\r\n"
        % (len(body), _date(), _SERVER, b"Connection: close\r\n" if close else b"")
    )
    out.append(bytes(body))
    return b"".join(out)


class FastServer:
    """Stands in for aiohttp's ``web.Server`` as the sites' protocol factory: each connection
    starts on :class:`FastProtocol`; everything else is the wrapped server's."""

    def __init__(self, server: web.Server, app: web.Application) -> None:
        self._server = server
        self.app = app
        self.fast: set[FastProtocol] = set()
        self.closing = False
        #: requests answered on the fast path; connections handed to aiohttp (tests, ops)
        self.answered = 0
        self.handed_over = 0
        from hub.api import HUB_KEY, post_records, problem_middleware

        self.handle = post_records
        self.middleware = problem_middleware
        self.max_body = app[HUB_KEY].config.limits.max_body_bytes

    def __call__(self) -> asyncio.Protocol:
        return self.aiohttp_protocol() if self.closing else FastProtocol(self)

    def aiohttp_protocol(self) -> asyncio.Protocol:
        return cast(asyncio.Protocol, self._server())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)

    def pre_shutdown(self) -> None:
        """The sites are closed: idle fast connections close now, busy ones after their
        answer (as aiohttp closes its idle keep-alive connections)."""
        self.closing = True
        for conn in list(self.fast):
            conn.close_when_idle()
        self._server.pre_shutdown()

    async def shutdown(self, timeout: float | None = None) -> None:
        """Wait (up to ``timeout``) for the fast requests being answered, then aiohttp's."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while any(c.active for c in self.fast):
            if deadline is not None and time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.01)
        for conn in list(self.fast):
            conn.abort()
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        await self._server.shutdown(left)


class FastAppRunner(web.AppRunner):
    """``web.AppRunner`` whose sites start connections on :class:`FastProtocol`."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return cast(web.Server, FastServer(server, self.app))


#: a framed request whose body may still be arriving (see FastProtocol._pending)
_Pending = tuple[int, int, bool, Callable[[bytes], FastRequest]]


class FastProtocol(asyncio.Protocol):
    """One connection: frames fast requests and answers them in order; hands the connection
    to aiohttp at the first request that is not one (see the module docstring)."""

    __slots__ = (
        "_buf",
        "_closing",
        "_eof",
        "_idle",
        "_paused",
        "_pending",
        "_scanned",
        "_task",
        "_write_paused",
        "busy",
        "server",
        "transport",
    )

    def __init__(self, server: FastServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        #: a request is being answered
        self.busy = False
        #: close once nothing is being answered or received (shutdown, keep-alive timeout)
        self._closing = False
        #: the client half-closed: no more bytes will come
        self._eof = False
        self._paused = False
        #: the transport's write buffer is over its high-water mark: answer nothing more
        #: until the client has read (aiohttp's writer waits for drain likewise)
        self._write_paused = False
        self._idle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        #: the head at the start of the buffer holds no CRLF CRLF and no bad line end in
        #: its first _scanned bytes (each byte is looked at once, however it arrives)
        self._scanned = 0
        #: the framed request at the start of the buffer whose body is still arriving:
        #: (body start and end in the buffer, keep-alive, request maker): parsed once
        self._pending: _Pending | None = None

    @property
    def active(self) -> bool:
        """A request is being answered or partly received."""
        return self.busy or bool(self._buf)

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server.fast.add(self)
        self._arm_idle()

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self.busy or self._write_paused:
            if len(self._buf) > _PAUSE_AT and not self._paused and self.transport is not None:
                self.transport.pause_reading()
                self._paused = True
            return
        self._advance()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if not self.busy and self.transport is not None:
            self._next()

    def eof_received(self) -> bool | None:
        # the client sent all it will: answer what is complete, then close (as aiohttp)
        self._eof = True
        if not self.busy and not self._write_paused and self.transport is not None:
            self._advance()
        return True  # keep the transport open for the answers; closed once they are out

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.fast.discard(self)
        self._disarm_idle()
        self.transport = None

    # -- lifecycle

    def close_when_idle(self) -> None:
        """Close now if nothing is being answered or received, else after the answer."""
        self._closing = True
        if not self.active and self.transport is not None:
            self.transport.close()

    def _timed_out(self) -> None:
        """Nothing came for KEEPALIVE_SECONDS (between requests, or within a request's
        bytes): close unless an answer is being made."""
        self._idle = None
        if not self.busy and self.transport is not None:
            self._closing = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _disarm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _arm_idle(self) -> None:
        self._disarm_idle()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_at(loop.time() + KEEPALIVE_SECONDS, self._timed_out)

    # -- framing

    def _advance(self) -> None:
        """Frame the next complete request of the buffer: answer it (fast) or hand the
        connection over; with an incomplete one, wait for more bytes."""
        transport = self.transport
        if transport is None or self.busy or self._write_paused:
            return
        buf = self._buf
        if not buf:
            if self._closing or self._eof:
                transport.close()
            return
        pending = self._pending
        if pending is None:
            pending = self._frame(buf)
            if pending is None:
                return
        start, total, keep_alive, make = pending
        if not keep_alive and len(buf) > total:
            # llhttp refuses data after a closing request in the same feed: aiohttp words it
            self._hand_over()
            return
        if len(buf) < total:
            if self._eof:
                self._hand_over()
            else:
                self._arm_idle()
            return
        body = bytes(buf[start:total])
        del buf[:total]
        self._pending = None
        self._scanned = 0
        self._disarm_idle()
        self.busy = True
        self.server.answered += 1
        self._task = asyncio.get_running_loop().create_task(self._answer(make(body), keep_alive))

    def _frame(self, buf: bytearray) -> _Pending | None:
        """The request whose head starts the buffer, once that head is complete; None (having
        handed the connection over, or waiting for more bytes) otherwise."""
        end = buf.find(b"\r\n\r\n", max(0, self._scanned - 3))
        if end < 0:
            bad = _BAD_EOL.search(buf, max(0, self._scanned - 1)) is not None
            if len(buf) > MAX_HEAD or self._eof or bad:
                self._hand_over()
            else:
                self._scanned = len(buf)
                self._arm_idle()
            return None
        head = _Head()
        parser = httptools.HttpRequestParser(head)
        try:
            parser.feed_data(bytes(buf[: end + 4]))
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self._hand_over()  # aiohttp words the refusal, or takes the upgrade
            return None
        request = self._fast_request(parser, head)
        if request is None:
            self._hand_over()
            return None
        size, keep_alive, make = request
        self._pending = (end + 4, end + 4 + size, keep_alive, make)
        return self._pending

    def _fast_request(
        self, parser: httptools.HttpRequestParser, head: _Head
    ) -> tuple[int, bool, Callable[[bytes], FastRequest]] | None:
        """(body size, keep-alive, request maker) of a fast request, else None."""
        if head.bad or len(head.url) > MAX_LINE or parser.get_method() != b"POST":
            return None
        if parser.get_http_version() != "1.1":
            return None
        m = _RECORDS.fullmatch(head.url)
        if m is None:
            return None
        if len(head.headers) > MAX_HEADERS:
            return None
        size = -1
        seen: set[bytes] = set()
        for name, value in head.headers:
            lname = name.lower()
            if lname in _SINGLETONS:
                if lname in seen:
                    return None  # repeated: aiohttp refuses it
                seen.add(lname)
                if lname == b"content-length":
                    if not value.isdigit() or len(value) > 15:
                        return None  # odd: aiohttp decides
                    size = int(value)
            elif lname in _AIOHTTP_HEADERS:
                return None
        if size < 0 or b"host" not in seen or size > self.server.max_body:
            return None
        keep_alive = parser.should_keep_alive()
        raw_path = head.url.decode("ascii")
        system = m.group(1).decode("ascii")
        qs = m.group(2)
        path = raw_path if qs is None else raw_path[: raw_path.index("?")]
        headers = CIMultiDictProxy(
            CIMultiDict(
                (n.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
                for n, v in head.headers
            )
        )
        app, transport = self.server.app, cast(asyncio.Transport, self.transport)
        query = None if qs is None else qs.decode("ascii", "surrogateescape")

        def make(body: bytes) -> FastRequest:
            return FastRequest(app, transport, raw_path, path, query, headers, body, system)

        return size, keep_alive, make

    async def _answer(self, request: FastRequest, keep_alive: bool) -> None:
        close = not keep_alive
        try:
            resp = await self.server.middleware(
                cast(web.Request, request), cast(Any, self.server.handle)
            )
            close = close or resp.keep_alive is False or (self._closing and not self._buf)
            data = _encode(resp, close)
        except Exception:
            log.exception("fast records path: could not answer %s", request.path)
            close = True
            data = _INTERNAL_ANSWER
        transport = self.transport
        self.busy = False
        self._task = None
        if transport is None:
            return
        transport.write(data)
        if close:
            self._closing = True
            self._buf.clear()
            transport.close()
            return
        if not self._write_paused:
            self._next()

    def _next(self) -> None:
        """After an answer has been written (and the client reads): the next request."""
        transport = self.transport
        if transport is None:
            return
        if self._paused:
            self._paused = False
            transport.resume_reading()
        if self._buf:
            self._advance()
        elif self._closing or self._eof:
            transport.close()
        else:
            self._arm_idle()

    def _hand_over(self) -> None:
        """aiohttp's protocol takes the connection, with the bytes not answered yet."""
        transport = self.transport
        if transport is None:
            return
        self.server.fast.discard(self)
        self.server.handed_over += 1
        self._disarm_idle()
        self.transport = None
        proto = self.server.aiohttp_protocol()
        transport.set_protocol(proto)
        proto.connection_made(transport)
        if self._paused:
            transport.resume_reading()
        data, self._buf = bytes(self._buf), bytearray()
        if data:
            proto.data_received(data)
        if self._eof and not proto.eof_received():
            transport.close()  # what the transport does when a protocol declines a half-close


def run_app(
    app: web.Application,
    *,
    loop: asyncio.AbstractEventLoop,
    host: str | None,
    port: int | None,
    sock: Any = None,
    ssl_context: Any = None,
    reuse_port: bool = False,
    shutdown_timeout: float = 5.0,
    fast: bool = True,
) -> None:
    """``aiohttp.web.run_app`` for the hub: one site (``host``/``port`` or ``sock``), SIGINT
    and SIGTERM stop it gracefully; with ``fast`` the connections start on the fast records
    path (:class:`FastAppRunner`)."""

    async def serve() -> None:
        runner_cls = FastAppRunner if fast else web.AppRunner
        runner = runner_cls(
            app, handle_signals=True, access_log=None, shutdown_timeout=shutdown_timeout
        )
        await runner.setup()
        try:
            site: web.BaseSite
            if sock is not None:
                site = web.SockSite(runner, sock, ssl_context=ssl_context)
            else:
                site = web.TCPSite(
                    runner, host, port, ssl_context=ssl_context, reuse_port=reuse_port
                )
            await site.start()
            while True:
                await asyncio.sleep(3600)
        finally:
            await runner.cleanup()

    main = loop.create_task(serve())
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main)
    except (GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not main.done():
                main.cancel()
                with suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still running at exit and report their errors (as aiohttp does)."""
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    for task in tasks:
        if task.cancelled():
            continue
        if task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )
