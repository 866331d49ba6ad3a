"""The ops dashboard (运维看板) at ``/dashboard`` and ``/metrics``: plain server-rendered HTML
with a little JavaScript, every asset served by the hub (no CDN).

Pages need ``monitoring.read`` (roles ops and admin); replaying a dead letter needs
``dlq.replay`` (ops), a confirmation and a same-origin form, and is audited. With a
``security:`` section the browser logs in with a bearer token kept in an HttpOnly, SameSite
cookie; without it the hub runs open on a trusted network, as the rest of its API.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Sequence
from importlib.resources import files
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import orjson
from aiohttp import hdrs, web

from hub.errors import AuthError, BadParameter, ForbiddenError, NotFound, UnreachableError
from hub.traceview import trace_to_dict
from monitoring.i18n import LANGUAGES, label

if TYPE_CHECKING:
    from monitoring.monitor import Monitor

__all__ = ["TOKEN_COOKIE", "add_routes", "overview_data", "sparkline"]

TOKEN_COOKIE = "jghub_token"
LANG_COOKIE = "jghub_lang"
_MONITOR: web.AppKey[Monitor] = web.AppKey("monitor")
_STATIC = {"app.css": "text/css", "app.js": "application/javascript"}


def add_routes(app: web.Application, monitor: Monitor) -> None:
    """Add ``/metrics`` and (unless ``monitoring.dashboard: false``) the dashboard."""
    app[_MONITOR] = monitor
    r = app.router
    r.add_get("/metrics", metrics)
    if not monitor.settings.dashboard:
        return
    r.add_get("/dashboard", overview)
    r.add_get("/dashboard/live/overview", overview_live)
    r.add_get("/dashboard/api/overview", overview_json)
    r.add_get("/dashboard/login", login_page)
    r.add_post("/dashboard/login", login_post)
    r.add_get("/dashboard/logout", logout)
    r.add_get("/dashboard/dlq", dlq_page)
    r.add_post("/dashboard/dlq/{id}/replay", dlq_replay)
    r.add_get("/dashboard/messages", search_page)
    r.add_get("/dashboard/messages/{id}", message_page)
    r.add_get("/dashboard/static/{name}", static)


# --------------------------------------------------------------------------- access


def _auth_header(request: web.Request) -> str | None:
    given = request.headers.get(hdrs.AUTHORIZATION)
    if given:
        return given
    token = request.cookies.get(TOKEN_COOKIE)
    return f"Bearer {token}" if token else None


async def _allow(request: web.Request, action: str) -> Any:
    """The caller's principal if ``action`` is allowed (None in open mode); raises AuthError
    or ForbiddenError (audited) otherwise."""
    hub = request.app[_MONITOR].hub
    if not hub.guard.enabled:
        return None
    from security.roles import authorize

    principal = await hub.guard.principal(_auth_header(request))
    try:
        authorize(principal, action)
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


async def _page_access(request: web.Request, action: str) -> Any:
    """Like :func:`_allow`, but a browser without a login is sent to the login page."""
    try:
        return await _allow(request, action)
    except AuthError:
        raise web.HTTPSeeOther(f"/dashboard/login?next={quote(request.path_qs)}") from None


def _lang(request: web.Request) -> str:
    q = request.query.get("lang")
    if q in LANGUAGES:
        return q
    c = request.cookies.get(LANG_COOKIE)
    if c in LANGUAGES:
        return c
    return request.app[_MONITOR].settings.default_language


def _same_origin(request: web.Request) -> None:
    """Refuse a cross-site form post (the cookie is SameSite=Strict too)."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if origin is None:
        return  # not a browser (curl with a bearer token)
    if urlsplit(origin).netloc != request.host:
        raise ForbiddenError("cross-site form posts are refused", field="Origin")


# --------------------------------------------------------------------------- metrics


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text format of this hub's registry."""
    mon = request.app[_MONITOR]
    if not mon.settings.metrics_open:
        await _allow(request, "monitoring.read")
    from prometheus_client import CONTENT_TYPE_LATEST

    headers = {"Content-Type": CONTENT_TYPE_LATEST}
    if mon.worker_relay is not None:
        headers["Jghub-Answered-By"] = "node via ingest worker"
        return web.Response(body=await _from_node(mon, "expose"), headers=headers)
    headers["Jghub-Answered-By"] = "node"
    return web.Response(body=await mon.exposition(), headers=headers)


async def _from_node(mon: Monitor, op: str) -> bytes:
    """An ingest worker (``serve --workers``) answers with the node's complete view: the
    node adds every worker's counters and knows the targets' health."""
    assert mon.worker_relay is not None
    try:
        body = await mon.worker_relay.ask_node(op)
    except (OSError, TimeoutError) as exc:
        body, why = b"", f"{type(exc).__name__}: {exc}"
    else:
        why = "it closed the connection without an answer"
    if not body:
        raise UnreachableError(
            f"this ingest process cannot reach its node's metrics relay ({why}); "
            "scrape again (the next connection may reach the node)",
            field="metrics",
        )
    return body


# --------------------------------------------------------------------------- rendering


def _labeler(lang: str) -> Callable[[str], str]:
    def get(key: str) -> str:
        return label(key, lang)

    return get


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _ts(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def sparkline(values: Sequence[float], width: int = 120, height: int = 28) -> str:
    """An inline SVG polyline of ``values`` (no script, no external library)."""
    pts = list(values) or [0.0]
    if len(pts) == 1:
        pts = pts * 2
    hi = max(pts) or 1.0
    step = width / (len(pts) - 1)
    coords = " ".join(
        f"{i * step:.1f},{height - 2 - (v / hi) * (height - 4):.1f}" for i, v in enumerate(pts)
    )
    return (
        f'<svg class="spark" viewBox="0 0 {width} {height}" role="img">'
        f'<polyline points="{coords}"/></svg>'
    )


def _badge(state: str, lang: str) -> str:
    text = _e(label(state, lang))
    return f'<span class="badge s-{_e(state)}" data-state="{_e(state)}">{text}</span>'


def _adapter_badge(status: str, lang: str) -> str:
    return _badge(status, lang) if status in ("up", "degraded", "down") else _e(status)


def _layout(
    request: web.Request, lang: str, title: str, body: str, *, refresh: int = 0
) -> web.Response:
    hub = request.app[_MONITOR].hub
    other = "en" if lang == "zh" else "zh"
    here = request.path
    login = ""
    if hub.guard.enabled:
        if request.cookies.get(TOKEN_COOKIE):
            login = f'<a href="/dashboard/logout">{label("logout", lang)}</a>'
        else:
            login = f'<a href="/dashboard/login">{label("login", lang)}</a>'
    doc = f"""<!doctype html>
<html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">
<title>{_e(title)} · jghub</title>
<link rel="stylesheet" href="/dashboard/static/app.css"></head>
<body data-refresh="{refresh}">
<header><h1>{label("title", lang)} <span class="muted">{_e(hub.config.hub.name)}</span></h1>
<nav><a href="/dashboard">{label("overview", lang)}</a> ·
<a href="/dashboard/dlq">{label("dlq", lang)}</a> ·
<a href="/dashboard/messages">{label("search", lang)}</a> ·
<a id="lang" href="{_e(here)}?lang={other}">{label("language", lang)}</a> {login}</nav></header>
<main>{body}</main>
<script src="/dashboard/static/app.js"></script></body></html>"""
    resp = web.Response(text=doc, content_type="text/html")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Content-Security-Policy"] = (
        "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:"
    )
    if request.query.get("lang") in LANGUAGES:
        resp.set_cookie(LANG_COOKIE, lang, samesite="Strict", max_age=365 * 86400)
    return resp


async def overview_data(mon: Monitor) -> dict[str, Any]:
    """The overview's numbers (``/dashboard/api/overview``); an ingest worker asks its node."""
    if mon.worker_relay is not None:
        got: dict[str, Any] = orjson.loads(await _from_node(mon, "overview"))
        return got
    hub = mon.hub
    snap = await mon.refresh()
    await mon.collect_workers()
    targets = []
    for name, t in hub.targets.items():
        q = snap.queues.get(name)
        s = mon.series.get(name)
        targets.append(
            {
                "name": name,
                "title": t.config.title if hasattr(t.config, "title") else None,
                "state": mon.health.state(name),
                "detail": mon.health.detail(name),
                "circuit": t.breaker.state.value,
                "pending": q.pending if q else 0,
                "inflight": q.inflight if q else 0,
                "dead": q.dead if q else 0,
                "oldest_due_age": round(q.oldest_due_age(snap.at), 1) if q else 0.0,
                "throughput": list(s.throughput) if s else [],
                "latency_ms": list(s.latency_ms) if s else [],
                "queue": list(s.queue) if s else [],
            }
        )
    accepted: dict[str, float] = {}
    rejected: dict[str, float] = {}
    for (sysname, _), v in mon.metrics.totals(mon.metrics.accepted).items():
        accepted[sysname] = accepted.get(sysname, 0) + v
    for (sysname, _, _), v in mon.metrics.totals(mon.metrics.rejected).items():
        rejected[sysname] = rejected.get(sysname, 0) + v
    failures = {r.system: r.failures for r in getattr(hub, "_sources", ())}
    systems = [
        {
            "name": name,
            "accepted": int(accepted.get(name, 0)),
            "rejected": int(rejected.get(name, 0)),
            "source_failures": failures.get(name),
            "throughput": list(mon.sources.get(name, ())),
        }
        for name, rt in hub.systems.items()
        if rt.config.inbound is not None
    ]
    adapters = [
        {"system": h.system, "status": h.status, "reporter": h.source, "detail": h.detail}
        for h in mon.health.adapters.values()
    ]
    return {
        "at": snap.at,
        "store_ok": snap.store_ok,
        "store_error": snap.store_error,
        "dispatcher_running": hub.dispatcher.running,
        "targets": targets,
        "systems": systems,
        "adapters": adapters,
    }


def _overview_html(data: dict[str, Any], lang: str) -> str:
    L = _labeler(lang)
    store = (
        f'<span class="badge s-up">{L("store_ok")}</span>'
        if data["store_ok"]
        else f'<span class="badge s-down">{L("store_bad")}</span> {_e(data["store_error"])}'
    )
    rows = []
    for t in data["targets"]:
        rows.append(
            f'<tr data-target="{_e(t["name"])}"><td><b>{_e(t["name"])}</b></td>'
            f'<td class="state">{_badge(t["state"], lang)}</td>'
            f"<td>{_e(L(t['circuit']))}</td>"
            f'<td class="queue">{t["pending"] + t["inflight"]}</td>'
            f"<td>{t['oldest_due_age']}</td>"
            f'<td class="dead">{t["dead"]}</td>'
            f"<td>{sparkline(t['throughput'])}</td><td>{sparkline(t['latency_ms'])}</td>"
            f"<td>{sparkline(t['queue'])}</td>"
            f'<td class="muted">{_e(t["detail"])}</td></tr>'
        )
    srows = [
        f'<tr data-system="{_e(s["name"])}"><td><b>{_e(s["name"])}</b></td>'
        f'<td class="accepted">{s["accepted"]}</td><td class="rejected">{s["rejected"]}</td>'
        f"<td>{'-' if s['source_failures'] is None else s['source_failures']}</td>"
        f"<td>{sparkline(s['throughput'])}</td></tr>"
        for s in data["systems"]
    ]
    arows = [
        f"<tr><td>{_e(a['system'])}</td><td>{_adapter_badge(a['status'], lang)}</td>"
        f"<td>{_e(a['reporter'])}</td><td class='muted'>{_e(a['detail'])}</td></tr>"
        for a in data["adapters"]
    ]
    return f"""<section><h2>{L("targets")} · {store}
<span class="muted">{L("updated")} {_ts(data["at"])}</span></h2>
<table id="targets"><tr><th>{L("target")}</th><th>{L("state")}</th><th>{L("circuit")}</th>
<th>{L("queue")}</th><th>{L("oldest")}</th><th>{L("dead")}</th><th>{L("throughput")}</th>
<th>{L("latency")}</th><th>{L("queue")}</th><th>{L("detail")}</th></tr>{"".join(rows)}</table>
</section>
<section><h2>{L("systems")}</h2><table id="systems"><tr><th>{L("system")}</th>
<th>{L("accepted")}</th><th>{L("rejected")}</th><th>{L("source_failures")}</th>
<th>{L("throughput")}</th></tr>{"".join(srows)}</table></section>
<section><h2>{L("adapters")}</h2><table id="adapters"><tr><th>{L("system")}</th>
<th>{L("state")}</th><th>{L("reporter")}</th><th>{L("detail")}</th></tr>
{"".join(arows) or f'<tr><td colspan="4">{L("none")}</td></tr>'}</table></section>"""


# --------------------------------------------------------------------------- pages


async def overview(request: web.Request) -> web.Response:
    """``GET /dashboard``: targets and systems with their state, refreshed every 2 s."""
    await _page_access(request, "monitoring.read")
    mon = request.app[_MONITOR]
    lang = _lang(request)
    data = await overview_data(mon)
    body = (
        f'<div data-live="/dashboard/live/overview?lang={lang}">{_overview_html(data, lang)}</div>'
    )
    return _layout(request, lang, label("overview", lang), body, refresh=2000)


async def overview_live(request: web.Request) -> web.Response:
    """The overview's live part (HTML fragment for the page's refresh)."""
    await _allow(request, "monitoring.read")
    lang = _lang(request)
    data = await overview_data(request.app[_MONITOR])
    return web.Response(text=_overview_html(data, lang), content_type="text/html")


async def overview_json(request: web.Request) -> web.Response:
    """``GET /dashboard/api/overview``: the overview's numbers as JSON (``jghub top``)."""
    await _allow(request, "monitoring.read")
    data = await overview_data(request.app[_MONITOR])
    return web.Response(body=orjson.dumps(data), content_type="application/json")


async def login_page(request: web.Request, error: str = "") -> web.Response:
    lang = _lang(request)
    hub = request.app[_MONITOR].hub
    nxt = request.query.get("next", "/dashboard")
    if not hub.guard.enabled:
        body = (
            f'<section><p class="notice">{label("open_mode", lang)}</p>'
            f'<a href="/dashboard">{label("overview", lang)}</a></section>'
        )
    else:
        body = f"""<section><h2>{label("login", lang)}</h2><p>{label("login_hint", lang)}</p>
{f'<p class="badge s-down">{_e(error)}</p>' if error else ""}
<form method="post" action="/dashboard/login"><input type="hidden" name="next" value="{_e(nxt)}">
<label>{label("token", lang)} <input id="token" type="password" name="token" size="50"></label>
<button id="login" type="submit">{label("login", lang)}</button></form></section>"""
    return _layout(request, lang, label("login", lang), body)


async def login_post(request: web.Request) -> web.StreamResponse:
    """Check the token (it must allow ``monitoring.read``) and keep it in a cookie."""
    _same_origin(request)
    form = await request.post()
    token = str(form.get("token", "")).strip()
    nxt = str(form.get("next", "/dashboard"))
    if not nxt.startswith("/dashboard"):
        nxt = "/dashboard"
    hub = request.app[_MONITOR].hub
    if not hub.guard.enabled:
        raise web.HTTPSeeOther("/dashboard")
    from security.roles import authorize

    try:
        principal = await hub.guard.principal(f"Bearer {token}")
        authorize(principal, "monitoring.read")
    except (AuthError, ForbiddenError) as err:
        await hub.guard.record("login", None, outcome="denied", details={"code": err.code})
        resp = await login_page(request, f"{err.code}: {err.message}")
        resp.set_status(401 if isinstance(err, AuthError) else 403)
        return resp
    await hub.guard.record("login", principal, details={"via": "dashboard"})
    resp = web.HTTPSeeOther(nxt)
    resp.set_cookie(
        TOKEN_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/",
    )
    raise resp


async def logout(request: web.Request) -> web.StreamResponse:
    resp = web.HTTPSeeOther("/dashboard/login")
    resp.del_cookie(TOKEN_COOKIE, path="/")
    raise resp


async def dlq_page(request: web.Request) -> web.Response:
    """``GET /dashboard/dlq``: dead letters with their reason and a replay button."""
    await _page_access(request, "dlq.read")
    mon = request.app[_MONITOR]
    lang = _lang(request)
    L = _labeler(lang)
    items = await mon.hub.store.dead_letters(request.query.get("target") or None, 200, 0)
    note = ""
    if "replayed" in request.query:
        note = (
            f'<p class="notice" id="replayed">{L("replayed")}: {_e(request.query["replayed"])}</p>'
        )
    rows = "".join(
        f'<tr data-delivery="{d.delivery_id}"><td>{d.delivery_id}</td>'
        f'<td><a href="/dashboard/messages/{quote(d.message_id)}">{_e(d.message_id)}</a></td>'
        f"<td>{_e(d.source)}</td><td>{_e(d.target)}</td><td>{d.attempts}</td>"
        f"<td>{_ts(d.dead_at)}</td><td class='reason'>{_e(d.reason)}</td>"
        f'<td><form class="inline" method="post" action="/dashboard/dlq/{d.delivery_id}/replay" '
        f'data-confirm="{_e(L("replay_confirm"))}"><input type="hidden" name="confirm" value="">'
        f'<button type="submit" class="replay">{L("replay")}</button></form></td></tr>'
        for d in items
    )
    body = f"""{note}<section><h2>{L("dlq")} ({len(items)})</h2><table id="dlq"><tr><th>#</th>
<th>{L("message")}</th><th>{L("system")}</th><th>{L("target")}</th><th>{L("attempts")}</th>
<th>{L("dead_at")}</th><th>{L("reason")}</th><th></th></tr>
{rows or f'<tr><td colspan="8">{L("none")}</td></tr>'}</table></section>"""
    return _layout(request, lang, L("dlq"), body)


async def dlq_replay(request: web.Request) -> web.StreamResponse:
    """``POST /dashboard/dlq/{id}/replay`` (form, ``confirm=yes``): audited replay."""
    _same_origin(request)
    principal = await _allow(request, "dlq.replay")
    mon = request.app[_MONITOR]
    hub = mon.hub
    form = await request.post()
    if form.get("confirm") != "yes":
        raise BadParameter("a replay must be confirmed (confirm=yes)", field="confirm")
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise BadParameter("dead letter id must be an integer delivery id", field="id")
    did = int(raw)
    n = await hub.store.replay([did], hub.clock())
    if not n:
        raise NotFound(f"no dead letter with id {did}", field="id")
    await hub.guard.record(
        "dlq.replay", principal, object=f"delivery {did}", details={"via": "dashboard"}
    )
    hub.wake_targets(hub.targets)
    raise web.HTTPSeeOther(f"/dashboard/dlq?replayed={did}")


_SEARCH_BY = ("id", "source", "idem", "bkey")


async def search_page(request: web.Request) -> web.StreamResponse:
    """``GET /dashboard/messages?by=id|source|idem|bkey&q=...[&source=]``."""
    await _page_access(request, "messages.read")
    mon = request.app[_MONITOR]
    lang = _lang(request)
    L = _labeler(lang)
    by = request.query.get("by", "id")
    if by not in _SEARCH_BY:
        raise BadParameter(f"by must be one of {', '.join(_SEARCH_BY)}", field="by")
    q = request.query.get("q", "").strip()
    source = request.query.get("source", "").strip() or None
    results: list[Any] = []
    if q and by == "id":
        if await mon.hub.store.trace(q) is not None:
            raise web.HTTPSeeOther(f"/dashboard/messages/{quote(q)}")
    elif q:
        find = getattr(mon.hub.store, "find_messages", None)
        if find is not None:
            if by == "source":
                results = await find(source=q)
            elif by == "idem":
                results = await find(source=source, idempotency_key=q)
            else:
                results = await find(source=source, business_key=q)
    options = "".join(
        f'<option value="{b}"{" selected" if b == by else ""}>{L("by_" + b)}</option>'
        for b in _SEARCH_BY
    )
    rows = "".join(
        f'<tr><td><a href="/dashboard/messages/{quote(m.message_id)}">{_e(m.message_id)}</a></td>'
        f"<td>{_e(m.source)}</td><td>{_e(m.dataset)}</td><td>{_ts(m.accepted_at)}</td></tr>"
        for m in results
    )
    table = ""
    if q:
        empty = f"<tr><td colspan=4>{L('no_results')}</td></tr>"
        table = (
            f'<table id="results"><tr><th>{L("message")}</th><th>{L("system")}</th>'
            f"<th>{L('dataset')}</th><th>{L('accepted_at')}</th></tr>"
            f"{rows or empty}</table>"
        )
    body = f"""<section><h2>{L("search")}</h2><form id="search" method="get">
<select name="by" id="by">{options}</select> <input id="q" name="q" size="44" value="{_e(q)}">
<input name="source" size="14" placeholder="{L("by_source")}" value="{_e(source or "")}">
<button type="submit" id="find">{L("find")}</button></form></section>
<section><h2>{L("results")}</h2>{table}</section>"""
    return _layout(request, lang, L("search"), body)


async def message_page(request: web.Request) -> web.Response:
    """``GET /dashboard/messages/{id}``: the whole trace of one message as a timeline."""
    principal = await _page_access(request, "messages.read")
    mon = request.app[_MONITOR]
    hub = mon.hub
    lang = _lang(request)
    L = _labeler(lang)
    mid = request.match_info["id"]
    tr = await hub.store.trace(mid)
    if tr is None:
        raise NotFound(f"no message with id {mid!r}", field="id")
    doc = trace_to_dict(tr)
    show_payload = True
    if hub.guard.enabled:
        from security.roles import is_allowed

        show_payload = is_allowed(principal, "payload.read", system=tr.source)
        if show_payload:
            doc["payload"] = hub.guard.readable(tr.dataset, doc["payload"], principal)
        await hub.guard.record(
            "data.access",
            principal,
            object=f"message {mid}",
            details={"source": tr.source, "payload": show_payload, "via": "dashboard"},
        )
    steps = "".join(
        f'<li class="step-{_e(s["step"])}"><b>{_e(s["step"])}</b> <span class="muted">'
        f"{_ts(s['at'])}</span>"
        + (f" → {_e(s['target'])}" if s.get("target") else "")
        + (f" #{s['attempt']}" if s.get("attempt") else "")
        + (f" [{s['status']}]" if s.get("status") is not None else "")
        + (f" {s['latency_ms']:.1f} ms" if s.get("latency_ms") is not None else "")
        + (f"<br><span class='muted'>{_e(s['detail'])}</span>" if s.get("detail") else "")
        + "</li>"
        for s in doc["trace"]
    )
    dels = "".join(
        f"<tr><td>{d['delivery_id']}</td><td>{_e(d['target'])}</td><td>{_e(d['route'])}</td>"
        f"<td class='dstate'>{_e(d['state'])}</td><td>{d['attempts']}</td>"
        f"<td class='muted'>{_e(d['last_error'])}</td></tr>"
        for d in doc["deliveries"]
    )
    payload = (
        f"<pre>{_e(orjson.dumps(doc['payload'], option=orjson.OPT_INDENT_2).decode())}</pre>"
        if show_payload
        else f'<p class="muted">{L("payload_withheld")}</p>'
    )
    badge = "up" if doc["status"] == "delivered" else "degraded"
    body = f"""<section><h2>{L("message")} <code id="mid">{_e(mid)}</code>
<span class="badge s-{badge}" id="mstatus">{_e(doc["status"])}</span></h2>
<table><tr><th>{L("system")}</th><td>{_e(doc["source"])}</td><th>{L("dataset")}</th>
<td>{_e(doc["dataset"])} v{_e(doc["dataset_version"])}</td></tr>
<tr><th>{L("idem")}</th><td>{_e(doc["idempotency_key"])}</td><th>{L("traceparent")}</th>
<td><code>{_e(doc["traceparent"])}</code></td></tr></table></section>
<section><h2>{L("trace")}</h2><ul class="timeline" id="timeline">{steps}</ul></section>
<section><h2>{L("deliveries")}</h2><table id="deliveries"><tr><th>#</th><th>{L("target")}</th>
<th>route</th><th>{L("state")}</th><th>{L("attempts")}</th><th>{L("detail")}</th></tr>{dels}
</table></section><section><h2>{L("payload")}</h2>{payload}</section>"""
    return _layout(request, lang, f"{L('message')} {mid}", body)


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    ctype = _STATIC.get(name)
    if ctype is None:
        raise NotFound(f"no asset {name!r}", field="name")
    data = files("monitoring").joinpath("static", name).read_bytes()
    return web.Response(body=data, content_type=ctype, headers={"Cache-Control": "max-age=300"})
