"""The hub's HTTP API (aiohttp). ``create_app(config)`` builds everything; nothing is global.

Errors are ``application/problem+json`` (RFC 9457) with a stable ``code``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from aiohttp import hdrs, web

from hub import __version__
from hub.config import HubConfig
from hub.errors import (
    AuthError,
    BadParameter,
    BadRequest,
    BatchRejected,
    ForbiddenError,
    HubError,
    NotFound,
    ReplayError,
    SignatureError,
    StoreUnavailable,
    TooLargeError,
)
from hub.json_adapter import NDJSON_TYPES
from hub.plugins import acall
from hub.runtime import Hub, IngestResult, SystemRuntime
from hub.specs import RespondingAdapter
from hub.store.base import NonceClaim
from hub.traceview import trace_to_dict
from security.tls import peer_identity

__all__ = ["HUB_KEY", "create_app"]

log = logging.getLogger("jghub.api")

HUB_KEY = web.AppKey("hub", Hub)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _problem(err: HubError, instance: str) -> web.Response:
    return web.Response(
        body=orjson.dumps(err.to_problem(instance)),
        status=err.status,
        content_type="application/problem+json",
    )


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HubError as err:
        _notify_refused(request, err)
        resp = _problem(err, request.path)
        # StoreUnavailable: nothing committed, the source sends it again; E_QUOTA: a new day
        retry_after = getattr(err, "retry_after", None)
        if isinstance(err, StoreUnavailable) or isinstance(retry_after, int):
            resp.headers[hdrs.RETRY_AFTER] = str(retry_after)
        if request.content.exception() is not None:
            resp.force_close()  # the rest of the body cannot be read: do not reuse the socket
        return resp
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "E_NOT_FOUND", 405: "E_METHOD", 413: "E_TOO_LARGE"}.get(exc.status, "E_HTTP")
        doc = {
            "type": f"https://jghub.example/errors/{code}",
            "title": exc.reason,
            "status": exc.status,
            "code": code,
            "detail": exc.text or exc.reason,
            "instance": request.path,
        }
        return web.Response(
            body=orjson.dumps(doc), status=exc.status, content_type="application/problem+json"
        )
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        doc = {
            "type": "https://jghub.example/errors/E_INTERNAL",
            "title": "Internal error",
            "status": 500,
            "code": "E_INTERNAL",
            "detail": "unexpected error; nothing from this request was acknowledged",
            "instance": request.path,
        }
        return web.Response(
            body=orjson.dumps(doc), status=500, content_type="application/problem+json"
        )


def _notify_refused(request: web.Request, err: HubError) -> None:
    """A records request refused as a whole: tell observers (metrics), for known systems only
    (an unknown name in the URL must not become a metric label)."""
    hub = request.app[HUB_KEY]
    system = request.match_info.get("system")
    if system is None or system not in hub.systems or request.method != "POST":
        return
    dataset = request.query.get("dataset")
    if dataset not in hub.systems[system].datasets:
        dataset = None
    try:
        hub.pm.hook.hub_records_rejected(
            system=system, dataset=dataset, codes=[err.code], quarantined=0
        )
    except Exception:
        log.exception("hub_records_rejected observer failed")


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise TooLargeError(
            f"body of {request.content_length} bytes exceeds the limit of {limit}", field="body"
        )
    if request.content_length is not None and hdrs.CONTENT_ENCODING not in request.headers:
        return await request.read()  # the length is known and within the limit
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > limit:
                raise TooLargeError(f"body exceeds the limit of {limit} bytes", field="body")
            chunks.append(chunk)
    except web.RequestPayloadError as exc:
        # e.g. a corrupt gzip body or broken chunked framing: the client's fault, not ours
        raise BadRequest(f"body could not be read: {exc}", field="body") from None
    return b"".join(chunks)


async def _guard(
    request: web.Request,
    action: str,
    *,
    system: str | None = None,
    static_for: SystemRuntime | None = None,
) -> Any:
    """Authenticate the caller and check the role policy for ``action`` (security.roles).

    Without a ``security:`` section only the records routes check credentials (a system's
    static ``inbound.token``); the operations routes are then meant for a trusted network.
    Returns the principal (None in that mode)."""
    hub = request.app[HUB_KEY]
    auth = request.headers.get(hdrs.AUTHORIZATION)
    if not hub.guard.enabled:
        if static_for is not None:
            hub.authenticate(static_for, auth)
        return None
    from security.roles import authorize

    principal = await hub.guard.principal(
        auth, static_for=static_for.config if static_for else None
    )
    try:
        authorize(principal, action, system=system)
    except ForbiddenError as err:
        await hub.guard.record(
            "access.denied",
            principal,
            object=f"{request.method} {request.path}",
            outcome="denied",
            details={"action": action, "why": err.message},
        )
        raise
    return principal


def _ingest_response(result: IngestResult, single: bool, instance: str) -> web.Response:
    body: dict[str, Any] = {
        "accepted": len(result.ids),
        "ids": result.ids,
    }
    if single and result.ids:
        body["id"] = result.ids[0]
    if result.duplicates:
        body["duplicates"] = result.duplicates
    if result.replaced:
        body["replaced"] = result.replaced
    if not result.errors:
        return _json(body, 202)
    body["rejected"] = [e.to_dict() for e in result.errors]
    if not result.ids:
        if single:
            return _problem(result.errors[0].error, instance)
        first = result.errors[0].error
        batch = BatchRejected(
            f"{len(result.errors)} records rejected; first: {first.message}",
            rejected=body["rejected"],
        )
        return _problem(batch, instance)
    body["code"] = "E_BATCH"
    body["accepted_indexes"] = result.indexes
    return _json(body, 207)


_RESPONDING: dict[type, bool] = {}


def _responds(adapter: object) -> bool:
    """``isinstance(adapter, RespondingAdapter)``, once per adapter class (a runtime Protocol
    check walks the protocol's members: ~5% of a single-record request)."""
    kind = type(adapter)
    known = _RESPONDING.get(kind)
    if known is None:
        known = _RESPONDING[kind] = isinstance(adapter, RespondingAdapter)
    return known


async def post_records(request: web.Request) -> web.Response:
    """``POST /v1/systems/{system}/records``: one record, a JSON array or NDJSON.

    202 once every record is committed; 207 when some records of a batch were rejected (the
    others are committed: see ``ids`` / ``rejected``); 4xx problem document when none was.
    A system whose adapter shapes its own answers (:class:`RespondingAdapter`, e.g. SOAP) gets
    them instead, rejections included."""
    hub = request.app[HUB_KEY]
    rt = hub.system(request.match_info["system"])  # unknown system: 404 before reading the body
    if not _responds(rt.adapter):
        return await _post_records(request, hub, rt, None)
    assert isinstance(rt.adapter, RespondingAdapter)
    try:
        return await _post_records(request, hub, rt, rt.adapter)
    except HubError as err:
        _notify_refused(request, err)
        body, ctype, status = rt.adapter.render_error(err, request.headers)
        resp = web.Response(body=body, status=status, headers={hdrs.CONTENT_TYPE: ctype})
        if request.content.exception() is not None:
            resp.force_close()
        return resp


async def _post_records(
    request: web.Request, hub: Hub, rt: SystemRuntime, responder: RespondingAdapter | None
) -> web.Response:
    system = rt.config.name
    principal = await _guard(request, "records.send", system=system, static_for=rt)
    body = await _read_body(request, hub.config.limits.max_body_bytes)
    claims: list[NonceClaim] = []
    await _check_signature(request, hub, rt, body, principal, claims)
    nonce = claims[0] if claims else None
    try:
        return await _ingest_body(request, hub, rt, responder, body, nonce)
    except HubError as err:
        if nonce is None:
            raise
        replay = await _settle_nonce(hub, nonce, err)
        if replay is None:
            raise
        await _audit_signature_refusal(hub, rt, principal, replay)
        raise replay from None


async def _settle_nonce(hub: Hub, nonce: NonceClaim, err: HubError) -> ReplayError | None:
    """After a refusal: the replay error if the request was a replay (its nonce seen before),
    else None. A request refused before its records reached the store still has its nonce
    remembered, so that a replay of it is refused as a replay."""
    if isinstance(err, ReplayError):
        return err
    try:
        await hub.guard.settle_nonce(nonce)
    except ReplayError as replay:
        return replay
    except HubError:
        pass  # e.g. the store is down: the first refusal is the answer
    return None


async def _ingest_body(
    request: web.Request,
    hub: Hub,
    rt: SystemRuntime,
    responder: RespondingAdapter | None,
    body: bytes,
    nonce: NonceClaim | None,
) -> web.Response:
    if not body.strip():
        raise BadRequest("empty body", field="body")
    ctype = request.content_type if hdrs.CONTENT_TYPE in request.headers else "application/json"
    records = rt.adapter.decode(body, ctype, request.headers)
    if not records:
        raise BadRequest("the body holds no records", field="body")
    # A JSON value is a single record; an array or NDJSON is a batch, even of one.
    single = len(records) == 1 and ctype not in NDJSON_TYPES and body.lstrip()[:1] != b"["
    result = await hub.ingest_records(
        rt.config.name,
        records,
        dataset=request.query.get("dataset"),
        idempotency_key=request.headers.get("Idempotency-Key"),
        traceparent=request.headers.get("traceparent"),
        body_size=len(body),
        single=single,
        nonce=nonce,
    )
    if responder is not None:
        answer = responder.respond(result, single, request.headers)
        if answer is not None:
            data, content_type, status = answer
            return web.Response(body=data, status=status, headers={hdrs.CONTENT_TYPE: content_type})
    return _ingest_response(result, single=single, instance=request.path)


async def _check_signature(
    request: web.Request,
    hub: Hub,
    rt: SystemRuntime,
    body: bytes,
    principal: Any,
    claims: list[NonceClaim] | None = None,
) -> None:
    """The request's RFC 9421 signature, nonce and TLS client identity (hub.guard); a refusal
    is recorded in the audit log and nothing of the request is stored. With ``claims`` the
    nonce is handed back to be committed with the records (see ``Guard.verify_inbound``)."""
    try:
        await hub.guard.verify_inbound(
            rt.config,
            request.method,
            lambda: _request_url(request),  # built only for a signed request
            request.headers,
            body,
            peer_identity=peer_identity(request.transport),
            claims=claims,
        )
    except (SignatureError, AuthError) as err:
        await _audit_signature_refusal(hub, rt, principal, err)
        raise


#: ``str(request.url)`` by (scheme, Host, raw request target); bounded (see _request_url)
_URLS: dict[tuple[str, str, str], str] = {}


def _request_url(request: web.Request) -> str:
    """``str(request.url)``, the URL a signature covers (``@target-uri``). aiohttp builds it
    anew for every request with yarl (parse, join, normalise: a few µs); it depends only on
    the scheme, the Host header and the raw request target, so it is kept by those, which
    repeat from request to request (at most 1024, forgotten all at once beyond)."""
    key = (request.scheme, request.host, request.raw_path)
    url = _URLS.get(key)
    if url is None:
        if len(_URLS) >= 1024:
            _URLS.clear()
        url = _URLS[key] = str(request.url)
    return url


async def _audit_signature_refusal(
    hub: Hub, rt: SystemRuntime, principal: Any, err: SignatureError | AuthError
) -> None:
    await hub.guard.record(
        "signature.rejected",
        principal,
        object=f"system {rt.config.name}",
        outcome="denied",
        details={"code": err.code, "field": err.field, "why": err.message},
    )


async def describe_records(request: web.Request) -> web.Response:
    """``GET /v1/systems/{system}/records?wsdl``: the endpoint's description (a SOAP system's
    WSDL, generated from its adapter options). Anything else on GET is 405."""
    hub = request.app[HUB_KEY]
    rt = hub.system(request.match_info["system"])
    if isinstance(rt.adapter, RespondingAdapter) and any(
        k.lower() == "wsdl" for k in request.query
    ):
        described = rt.adapter.describe(str(request.url.with_query(None)))
        if described is not None:
            return web.Response(body=described[0], headers={hdrs.CONTENT_TYPE: described[1]})
    raise web.HTTPMethodNotAllowed("GET", ["POST"])


async def get_quarantine(request: web.Request) -> web.Response:
    """``GET /v1/systems/{system}/quarantine?after=&limit=``: the system's refused records with
    their reasons, so the source can correct and resend them. Same credentials as posting."""
    hub = request.app[HUB_KEY]
    system = request.match_info["system"]
    rt = hub.system(system)
    await _guard(request, "messages.read", system=system, static_for=rt)
    items = await hub.store.quarantined(
        system,
        after=_int_query(request, "after", 0, 2**62),
        limit=_int_query(request, "limit", 100, 1000),
    )
    return _json({"items": [q.to_dict() for q in items]})


async def get_subject(request: web.Request) -> web.Response:
    """``GET /v1/subjects/{id}``: messages linked to a subject (USCC / ID number, 关联整合)."""
    hub = request.app[HUB_KEY]
    await _guard(request, "messages.read")
    links = await hub.store.subject_messages(
        request.match_info["id"], _int_query(request, "limit", 100, 1000)
    )
    return _json({"subject": request.match_info["id"], "items": [_dl(x) for x in links]})


async def get_message(request: web.Request) -> web.Response:
    """``GET /v1/messages/{id}``: the whole life of a message (全程留痕). Its payload is shown
    to callers that may read payloads of its source (``payload.read``), else withheld."""
    hub = request.app[HUB_KEY]
    mid = request.match_info["id"]
    if hub.guard.enabled:
        principal = await hub.guard.principal(request.headers.get(hdrs.AUTHORIZATION))
    tr = await hub.store.trace(mid)
    if tr is None:
        raise NotFound(f"no message with id {mid!r}", field="id")
    doc = trace_to_dict(tr)
    if hub.guard.enabled:
        from security.roles import authorize, is_allowed

        try:
            authorize(principal, "messages.read", system=tr.source)
        except ForbiddenError:
            # do not tell a caller of another system whether the id exists
            raise NotFound(f"no message with id {mid!r}", field="id") from None
        if not is_allowed(principal, "payload.read", system=tr.source):
            doc["payload"] = None
            doc["payload_withheld"] = "payload.read is not granted to this caller"
        else:
            doc["payload"] = hub.guard.readable(tr.dataset, doc["payload"], principal)
            await hub.guard.record(
                "data.access", principal, object=f"message {mid}", details={"source": tr.source}
            )
    return _json(doc)


def _int_query(request: web.Request, name: str, default: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not _is_digits(raw) or not 0 <= int(raw) <= hi:
        raise BadParameter(f"query parameter {name} must be an integer 0..{hi}", field=name)
    return int(raw)


async def list_dlq(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    await _guard(request, "dlq.read")
    items = await hub.store.dead_letters(
        request.query.get("target"),
        _int_query(request, "limit", 100, 1000),
        _int_query(request, "offset", 0, 10**9),
    )
    return _json({"items": [_dl(d) for d in items]})


def _dl(d: Any) -> dict[str, Any]:
    return {k: getattr(d, k) for k in d.__slots__}


def _is_digits(raw: str) -> bool:
    # str.isdigit() alone accepts "²" and other digits int() refuses; int() also refuses
    # more than 4,300 digits, and no id or limit here needs more than 19 (2**63).
    return raw.isascii() and raw.isdigit() and len(raw) <= 19


_MAX_ROW_ID = 2**63 - 1  # SQLite INTEGER; larger ids cannot exist (and would overflow)


def _delivery_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not _is_digits(raw):
        raise BadParameter("dead letter id must be an integer delivery id", field="id")
    did = int(raw)
    if did > _MAX_ROW_ID:
        raise NotFound(f"no dead letter with id {did}", field="id")
    return did


async def _dlq_action(request: web.Request, verb: str) -> web.Response:
    """Replay or discard one dead letter, then wake the dispatcher (audited)."""
    hub = request.app[HUB_KEY]
    action = "dlq.replay" if verb == "replayed" else "dlq.discard"
    principal = await _guard(request, action)
    did = _delivery_id(request)
    if verb == "replayed":
        n = await hub.store.replay([did], hub.clock())
    else:
        reason = request.query.get("reason", "discarded by operator")
        n = await hub.store.discard([did], hub.clock(), reason)
    if not n:
        raise NotFound(f"no dead letter with id {did}", field="id")
    await hub.guard.record(action, principal, object=f"delivery {did}")
    hub.wake_targets(hub.targets)
    return _json({verb: n})


async def replay_dlq(request: web.Request) -> web.Response:
    """``POST /v1/dlq/{id}/replay``: send a dead letter again (attempts start over)."""
    return await _dlq_action(request, "replayed")


async def discard_dlq(request: web.Request) -> web.Response:
    """``POST /v1/dlq/{id}/discard?reason=``: give up on a dead letter for good."""
    return await _dlq_action(request, "discarded")


async def stats(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    await _guard(request, "monitoring.read")
    rows = await hub.store.route_stats()
    return _json({"routes": [_dl(r) for r in rows], "counts": await hub.store.counts()})


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok", "version": __version__})


async def readyz(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    problems = list(hub.store.problems())
    try:
        await hub.store.counts()
    except Exception as exc:
        problems.append(f"store: {exc}")
    if hub.role == "node" and hub.config.dispatcher.enabled and not hub.dispatcher.running:
        problems.append("dispatcher is not running")
    targets = {
        name: {"circuit": w.breaker.state.value, "in_flight": w.inflight}
        for name, w in hub.dispatcher.workers.items()
    }
    body: dict[str, Any] = {"role": hub.role, "targets": targets}
    for extra in await acall(hub.pm.hook.hub_readiness, hub=hub):  # monitoring's checks
        for key, value in (extra or {}).items():
            if key == "problems":
                problems.extend(value)
            elif key == "targets":
                for name, more in value.items():
                    targets.setdefault(name, {}).update(more)
            else:
                body[key] = value
    body.update({"status": "ready" if not problems else "not ready", "problems": problems})
    return _json(body, 200 if not problems else 503)


def create_app(config: HubConfig, *, hub: Hub | None = None) -> web.Application:
    """Build the aiohttp application; the hub starts and stops with it (cleanup context)."""
    the_hub = hub if hub is not None else Hub(config)
    app = web.Application(
        middlewares=[problem_middleware],
        client_max_size=config.limits.max_body_bytes + 1,
    )
    app[HUB_KEY] = the_hub

    async def run_hub(app: web.Application) -> AsyncIterator[None]:
        await the_hub.start()
        yield
        await the_hub.stop()

    app.cleanup_ctx.append(run_hub)
    app.router.add_post("/v1/systems/{system}/records", post_records)
    app.router.add_get("/v1/systems/{system}/records", describe_records)
    app.router.add_get("/v1/systems/{system}/quarantine", get_quarantine)
    app.router.add_get("/v1/subjects/{id}", get_subject)
    app.router.add_get("/v1/messages/{id}", get_message)
    app.router.add_get("/v1/dlq", list_dlq)
    app.router.add_post("/v1/dlq/{id}/replay", replay_dlq)
    app.router.add_post("/v1/dlq/{id}/discard", discard_dlq)
    app.router.add_get("/v1/stats", stats)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    the_hub.pm.hook.hub_setup_app(hub=the_hub, app=app)  # plugins' routes (/metrics ...)
    return app
