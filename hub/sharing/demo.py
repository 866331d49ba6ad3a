"""The data sharing (数据共享) flow the demo runs: the example configuration in
``examples/sharing/`` copied into the work folder, its own hub (SQLite there) served on
127.0.0.1, real bearer tokens, a real webhook receiver — every step through the HTTP API.

The market regulator's system (市场监管局) sends its licences; the commerce bureau (商务局)
applies for the 有条件共享 resource; the regulator's reviewer accepts it (受理) and approves it
narrowed to fewer fields and one district; the requester queries (only granted fields and rows,
masked), downloads a CSV and checks it against its manifest (count, SHA-256), subscribes a
webhook that receives a new record projected and masked, asks for an ungranted field and is
refused; the grant is revoked and the next query refused; an application for a 不予共享
resource is refused. Each line of the report is a fact the flow checked.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import io
import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EXAMPLE_DIR", "SharingFlowReport", "run_sharing_flow"]

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "sharing"
RESOURCE = "330100-SCJ-0001"  # 企业营业执照信息, 有条件共享
NOT_SHARED = "330100-SCJ-0003"  # 企业监管内部研判信息, 不予共享
PROVIDER = "330100-scj"  # 杭州市市场监督管理局
REQUESTER = "330100-swj"  # 杭州市商务局
MARKET_TOKEN = "market-static-token-0123456789"  # systems/market.yaml's default
#: what the requester asks for, and what the reviewer grants (narrower on both axes)
ASKED_FIELDS = ["license_no", "name", "region_code", "status", "legal_person", "phone"]
GRANTED_FIELDS = ["license_no", "name", "region_code", "status", "legal_person"]
ASKED_ROWS = "region_code in ('330106', '330108')"
GRANTED_REGION = "330106"
#: text fields whose values the requester never sees in clear (ungranted, or granted masked)
HIDDEN = ("id_card", "phone", "legal_person")


@dataclass
class SharingFlowReport:
    """What the sharing flow checked: one (fact, held) pair per check."""

    checks: list[tuple[str, bool]] = field(default_factory=list)
    #: the flow ran to its end (a flow cut short by an error is not ok)
    finished: bool = False

    def check(self, held: bool, fact: str) -> bool:
        self.checks.append((fact, bool(held)))
        return bool(held)

    @property
    def ok(self) -> bool:
        return self.finished and bool(self.checks) and all(held for _f, held in self.checks)

    def lines(self) -> list[str]:
        """A readable summary: the facts, a failed one marked ``NOT HELD``."""
        out = [fact if held else f"NOT HELD: {fact}" for fact, held in self.checks]
        if not self.finished:
            out.append("NOT HELD: the flow stopped before its end")
        return out


class _Api:
    """The hub's HTTP API as a client sees it (real requests on loopback)."""

    def __init__(self, session: Any, base: str, tokens: dict[str, str]) -> None:
        self.session, self.base, self.tokens = session, base, tokens

    async def call(
        self, method: str, path: str, who: str, body: Any = None, params: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        async with self.session.request(
            method, self.base + path, data=data, params=params, headers=headers
        ) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text) if text else None
            except ValueError:
                return r.status, {"raw": text}


async def _until(cond: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"sharing flow: timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _code(doc: Any) -> str:
    return str(doc.get("code")) if isinstance(doc, dict) else repr(doc)


async def run_sharing_flow(
    work: Path, *, timeout: float = 30.0, example: Path = EXAMPLE_DIR
) -> SharingFlowReport:
    """Run the sharing flow end to end on loopback (see the module docstring), on a copy of
    ``example`` (the hub file, dataset, system and the licences it sends)."""
    from aiohttp import ClientSession, ClientTimeout, web

    from hub.api import HUB_KEY, create_app
    from hub.config import load_config
    from hub.peers import bound_port
    from hub.peers.subscriber import Subscriber

    report = SharingFlowReport()
    work.mkdir(parents=True, exist_ok=True)
    config_dir = work / "config"
    shutil.copytree(example, config_dir, dirs_exist_ok=True)
    cfg = load_config(config_dir / "hub.yaml")  # store and security DB under config/data/
    runner = web.AppRunner(create_app(cfg), access_log=None)
    await runner.setup()
    receiver = Subscriber(name="商务局 webhook", secret="not-yet-known-0123456789")
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        await receiver.start()
        hub = runner.app[HUB_KEY]
        tokens = {}
        for who, name, role, dept in (
            ("requester", "商务局申请人", "requester", REQUESTER),
            ("reviewer", "市场监管局审核人", "reviewer", PROVIDER),
        ):
            issued = await hub.guard.authenticator.tokens.create(
                name=name, roles=[role], department=dept
            )
            tokens[who] = str(issued.token)
        tokens["market"] = MARKET_TOKEN
        base = f"http://127.0.0.1:{bound_port(site)}"
        async with ClientSession(timeout=ClientTimeout(total=timeout)) as session:
            api = _Api(session, base, tokens)
            records = json.loads((config_dir / "licenses.json").read_text("utf-8"))
            await _flow(api, receiver, records, report, timeout)
        report.finished = True
    finally:
        await receiver.stop()
        await runner.cleanup()
    return report


async def _flow(
    api: _Api,
    receiver: Any,
    records: list[dict[str, Any]],
    report: SharingFlowReport,
    timeout: float,
) -> None:
    check = report.check
    # 1. the provider's system sends its licences (the hub de-duplicates by licence number)
    st, doc = await api.call("POST", "/v1/systems/market/records", "market", records)
    check(
        st == 202 and doc.get("accepted") == len(records),
        f"市场监管局 → hub: {len(records)} licences accepted ({st})",
    )
    # 2. the requester finds the resource and applies for more than it will get
    st, doc = await api.call("GET", "/v1/catalog", "requester", params={"q": "营业执照"})
    found = [r for r in (doc or {}).get("items", []) if r.get("code") == RESOURCE]
    check(
        st == 200 and len(found) == 1 and found[0]["share_type_label"] == "有条件共享",
        f"商务局 finds {RESOURCE} 企业营业执照信息 in the catalog as 有条件共享",
    )
    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=90)
    application = {
        "resource": RESOURCE,
        "fields": ASKED_FIELDS,
        "purpose": "商务执法中核验企业登记状态",
        "legal_basis": "《浙江省公共数据条例》第二十五条",
        "row_filter": ASKED_ROWS,
        "valid_until": until.isoformat(),
        "requests_per_day": 100,
        "records_per_day": 10000,
        "methods": ["query", "download", "subscription"],
    }
    st, app = await api.call("POST", "/v1/applications", "requester", application)
    aid = app.get("id", "?") if isinstance(app, dict) else "?"
    check(
        st == 201 and app.get("state") == "submitted" and bool(app.get("due_at")),
        f"application {aid} submitted for {len(ASKED_FIELDS)} fields, rows {ASKED_ROWS}; "
        f"the provider must decide by {app.get('due_at') if isinstance(app, dict) else '?'}",
    )
    st, doc = await api.call("GET", "/v1/data/licenses", "requester")
    check(st == 403 and _code(doc) == "E_GRANT", f"a query before the grant: {st} {_code(doc)}")
    # 3. the provider's reviewer accepts (受理) and approves, narrowing fields and rows
    st, doc = await api.call(
        "POST", f"/v1/applications/{aid}/accept", "reviewer", {"reason": "材料齐全, 受理"}
    )
    check(st == 200 and doc.get("state") == "accepted", f"市场监管局 reviewer: 受理 ({st})")
    narrowed = {
        "reason": "同意, 不含联系电话, 限西湖区",
        "fields": GRANTED_FIELDS,
        "row_filter": f"region_code = '{GRANTED_REGION}'",
    }
    st, doc = await api.call("POST", f"/v1/applications/{aid}/approve", "reviewer", narrowed)
    gid = doc.get("grant_id") if isinstance(doc, dict) else None
    st_g, grant = await api.call("GET", f"/v1/grants/{gid}", "requester")
    check(
        st == 200
        and st_g == 200
        and grant.get("fields") == GRANTED_FIELDS
        and f"region_code = '{GRANTED_REGION}'" in grant.get("row_filter", "")
        and grant.get("masked") == ["legal_person"],
        f"approved, narrowed: grant {gid} covers {len(GRANTED_FIELDS)} fields (not phone), "
        f"rows of {GRANTED_REGION} only, legal_person masked",
    )
    # 4. the requester queries: only granted fields of granted rows, masked
    expected = sorted(r["license_no"] for r in records if r["region_code"] == GRANTED_REGION)
    clear = {str(r[k]) for r in records for k in HIDDEN if r.get(k) is not None}
    async with api.session.get(
        api.base + "/v1/data/licenses",
        headers={"Authorization": f"Bearer {api.tokens['requester']}"},
    ) as r:
        st, text = r.status, await r.text()
    items = json.loads(text).get("items", []) if st == 200 else []
    leaked = sorted(v for v in clear if v in text)
    check(
        st == 200
        and sorted(i.get("license_no") for i in items) == expected
        and all(list(i) == GRANTED_FIELDS for i in items)
        and all(i["region_code"] == GRANTED_REGION for i in items)
        and not leaked,
        f"query: {len(items)} of {len(records)} licences (those of {GRANTED_REGION}), each "
        f"with exactly the {len(GRANTED_FIELDS)} granted fields; no id_card, phone or clear "
        f"legal_person in the answer{f' (LEAKED: {leaked})' if leaked else ''}",
    )
    check(
        bool(items) and all(i["legal_person"] != r["legal_person"] for i in items for r in records),
        "legal_person arrives masked: " + ", ".join(str(i.get("legal_person")) for i in items),
    )
    # 5. the bulk download and its manifest
    await _download(api, expected, clear, gid, report)
    # 6. a webhook subscription receives a new record, projected and masked
    st, sub = await api.call(
        "POST", "/v1/subscriptions", "requester", {"dataset": "licenses", "url": receiver.url}
    )
    check(st == 201 and bool(sub.get("secret")), f"subscription {sub.get('id')} made ({st})")
    receiver.secret = sub.get("secret", receiver.secret)  # the receiver verifies with it
    fresh = dict(records[0], license_no="91330106D004", name="杭州丁科技有限公司")
    fresh.update(legal_person="赵敏", id_card="330106199204044567", phone="13800004444")
    outside = dict(
        fresh, license_no="91330110E005", name="杭州戊商贸有限公司", region_code="330110"
    )
    st, _ = await api.call("POST", "/v1/systems/market/records", "market", [outside, fresh])
    await _until(lambda: bool(receiver.received), "the webhook delivery", timeout)
    await asyncio.sleep(0.5)  # room for a delivery that must not come (the other district)
    got = list(receiver.received.values())
    pushed = json.dumps(got, ensure_ascii=False)
    hidden_new = [str(fresh[k]) for k in HIDDEN]
    check(
        [g.get("license_no") for g in got] == [fresh["license_no"]]
        and list(got[0]) == GRANTED_FIELDS
        and got[0]["legal_person"] != fresh["legal_person"]
        and not any(v in pushed for v in hidden_new)
        and receiver.refused == [],
        f"webhook on 127.0.0.1 received {fresh['license_no']} only (not the 330110 record), "
        f"signature verified, {len(GRANTED_FIELDS)} fields, legal_person "
        f"{got[0].get('legal_person') if got else '?'}",
    )
    # 7. an ungranted field, asked for in fields and in the filter, is refused
    st, doc = await api.call(
        "GET", "/v1/data/licenses", "requester", params={"fields": "license_no,phone"}
    )
    st2, doc2 = await api.call(
        "GET", "/v1/data/licenses", "requester", params={"filter": "id_card like '3301%'"}
    )
    check(
        st == 403
        and _code(doc) == "E_FIELD_NOT_GRANTED"
        and st2 == 403
        and _code(doc2) == "E_FIELD_NOT_GRANTED",
        f"fields=license_no,phone: {st} {_code(doc)}; filter on id_card: {st2} {_code(doc2)}",
    )
    # 8. the reviewer revokes; the next query is refused, the subscription stopped
    st, doc = await api.call(
        "POST", f"/v1/grants/{gid}/revoke", "reviewer", {"reason": "专项检查结束"}
    )
    check(
        st == 200 and doc.get("state") == "revoked" and doc.get("subscriptions_stopped") == 1,
        f"grant {gid} revoked by the reviewer, 1 subscription stopped",
    )
    st, doc = await api.call("GET", "/v1/data/licenses", "requester")
    check(
        st == 403 and _code(doc) == "E_GRANT" and "revoked" in str(doc.get("detail")),
        f"the next query: {st} {_code(doc)} ({doc.get('detail') if isinstance(doc, dict) else ''})",
    )
    # 9. both sides see the same history, the revocation included
    st, mine = await api.call("GET", f"/v1/applications/{aid}", "requester")
    st2, theirs = await api.call("GET", f"/v1/applications/{aid}", "reviewer")
    actions = [e["action"] for e in mine.get("events", [])] if st == 200 else []
    check(
        st == st2 == 200
        and actions
        == ["application.create", "application.accept", "decision.approve", "grant.revoked"]
        and mine["events"] == theirs["events"],
        "both sides see the history: " + " → ".join(actions),
    )
    # 10. a 不予共享 resource cannot be applied for
    st, doc = await api.call(
        "POST", "/v1/applications", "requester", dict(application, resource=NOT_SHARED)
    )
    st2, listed = await api.call("GET", "/v1/applications", "requester")
    stored = [a for a in (listed or {}).get("items", []) if a.get("resource") == NOT_SHARED]
    check(
        st == 403 and _code(doc) == "E_NOT_SHARABLE" and st2 == 200 and not stored,
        f"an application for {NOT_SHARED} (不予共享): {st} {_code(doc)}, nothing stored",
    )


async def _download(
    api: _Api, expected: list[str], clear: set[str], gid: Any, report: SharingFlowReport
) -> None:
    """Download the CSV (streamed, hashed as it arrives) and check it against its manifest."""
    digest, size, body = hashlib.sha256(), 0, bytearray()
    async with api.session.get(
        api.base + "/v1/data/licenses/export",
        params={"format": "csv"},
        headers={"Authorization": f"Bearer {api.tokens['requester']}"},
    ) as r:
        st, link = r.status, r.headers.get("Link", "")
        async for chunk in r.content.iter_chunked(65536):
            digest.update(chunk)
            size += len(chunk)
            body += chunk
    m = re.match(r"<([^>]+)>", link)
    mst, manifest = await api.call("GET", m.group(1), "requester") if m else (0, {})
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
    text = body.decode("utf-8")
    report.check(
        st == 200
        and mst == 200
        and manifest.get("count") == len(rows) == len(expected)
        and manifest.get("sha256") == digest.hexdigest()
        and manifest.get("bytes") == size
        and manifest.get("grant_id") == gid
        and manifest.get("complete") is True
        and sorted(row["license_no"] for row in rows) == expected
        and not any(v in text for v in clear),
        f"CSV download: {len(rows)} row(s), {size} bytes; manifest count {manifest.get('count')}"
        f", SHA-256 {str(manifest.get('sha256'))[:12]}… equal to the bytes received, grant "
        f"{manifest.get('grant_id')}",
    )
