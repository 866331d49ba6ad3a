"""A hub set up for data sharing, as a department would write it: a provider system sending
business licences (with de-duplication by licence number), a dataset file whose ``catalog:``
block declares the 有条件共享 resource, and the hub file's ``sharing.catalog`` adding a
无条件共享 and a 不予共享 resource on the same dataset. Tokens are real bearer tokens."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.api import HUB_KEY, create_app
from hub.config import load_config
from hub.peers import bound_port
from hub.runtime import Hub
from tests.conftest import Clock

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]

PROVIDER = "330100-scj"  # 杭州市市场监管局
REQUESTER = "330100-swj"  # 杭州市商务局
OTHER = "330200-swj"  # 宁波市商务局
SOURCE_TOKEN = "dept-a-static-token-0123456789"

DATASET = {
    "name": "licenses",
    "version": "2.1",
    "title": "营业执照 (business licences)",
    "key_field": "license_no",
    "fields": {
        "license_no": {"type": "string", "required": True},
        "name": {"type": "string", "required": True},
        "region_code": {"type": "string", "required": True},
        "status": {"type": "string"},
        "legal_person": {"type": "string"},
        "id_card": {"type": "string", "sensitive": True},
        "phone": {"type": "string", "sensitive": True},
        "capital": {"type": "number"},
        "updated_at": {"type": "string"},
    },
    "catalog": {
        "code": "330100-SCJ-0001",
        "name": "企业营业执照信息",
        "provider": "杭州市市场监督管理局",
        "provider_code": PROVIDER,
        "summary": "登记在册企业的营业执照",
        "classification": {"category": "市场监管", "item": "登记注册", "subject": "营业执照"},
        "format": "json",
        "fields": [
            {"name": "license_no", "type": "string", "description": "注册号"},
            {"name": "name", "type": "string", "description": "名称"},
            {"name": "region_code", "type": "string", "description": "行政区划"},
            {"name": "status", "type": "string", "description": "登记状态"},
            {"name": "legal_person", "type": "string", "sensitivity": "sensitive", "mask": "name"},
            {"name": "id_card", "type": "string", "sensitivity": "secret", "mask": "id_card"},
            {"name": "phone", "type": "string", "sensitivity": "sensitive", "mask": "phone"},
            {"name": "capital", "type": "number", "description": "注册资本"},
        ],
        "share_type": "有条件共享",
        "share_conditions": "用于市场监管和商务执法",
        "share_methods": ["query", "subscription", "download"],
        "open_attribute": "不予开放",
        "update_cycle": "实时",
        "published": "2026-01-05",
        "version": "2.1",
        "quota": {"requests_per_day": 1000, "records_per_day": 100000},
    },
}

HUB_CATALOG = [
    {
        "code": "330100-SCJ-0002",
        "name": "企业名录 (公开部分)",
        "dataset": "licenses",
        "provider": "杭州市市场监督管理局",
        "provider_code": PROVIDER,
        "classification": {"category": "市场监管", "item": "企业名录"},
        "fields": [
            {"name": "license_no"},
            {"name": "name"},
            {"name": "region_code"},
            {"name": "status"},
        ],
        "share_type": "unconditional",
        "share_methods": ["query", "download"],
        "published": "2026-01-05",
    },
    {
        "code": "330100-SCJ-0003",
        "name": "企业监管内部研判信息",
        "dataset": "licenses",
        "provider": "杭州市市场监督管理局",
        "provider_code": PROVIDER,
        "classification": {"category": "市场监管", "item": "内部研判"},
        "share_type": "不予共享",
        "not_shared_basis": "《市场监督管理行政处罚程序规定》第十条",
        "published": "2026-01-05",
    },
]


def licence(i: int, *, region: str = "330106", status: str = "存续", v: int = 1) -> dict[str, Any]:
    return {
        "license_no": f"LIC{i:06d}",
        "name": f"杭州测试企业{i}有限公司",
        "region_code": region,
        "status": status,
        "legal_person": f"张三{i}",
        "id_card": f"3301061990010{i % 10}123X",
        "phone": f"1380000{i:04d}",
        "capital": 100.0 + i,
        "updated_at": f"2026-01-{v:02d}T00:00:00",
    }


def write_sharing_config(
    tmp: Path,
    *,
    sharing: dict[str, Any] | None = None,
    store: dict[str, Any] | None = None,
    security: dict[str, Any] | None = None,
) -> Path:
    (tmp / "systems").mkdir(parents=True, exist_ok=True)
    (tmp / "datasets").mkdir(exist_ok=True)
    (tmp / "datasets" / "licenses.yaml").write_text(yaml.safe_dump(DATASET, allow_unicode=True))
    source = {
        "name": "dept-a",
        "title": "杭州市市场监管局业务系统",
        "adapter": "json",
        "inbound": {"datasets": ["licenses"], "token": SOURCE_TOKEN},
        "governance": {"licenses": {"dedupe": {"key": ["license_no"], "version": "updated_at"}}},
    }
    (tmp / "systems" / "dept-a.yaml").write_text(yaml.safe_dump(source, allow_unicode=True))
    hub_doc: dict[str, Any] = {
        "hub": {"name": "sharing-hub", "node_id": "sharing-node"},
        "store": store or {"kind": "sqlite", "path": "data/hub.db", "durability": "normal"},
        "listen": {"host": "127.0.0.1", "port": 0},
        "dispatcher": {"lease_seconds": 30, "idle_poll_seconds": 0.1},
        "systems": ["systems"],
        "datasets": ["datasets"],
        "security": {
            "db": {"path": "data/security.db", "durability": "normal"},
            "tokens": {"pepper_env": None},
            **(security or {}),
        },
        "sharing": {"catalog": HUB_CATALOG, "refresh_seconds": 0.2, **(sharing or {})},
    }
    path = tmp / "hub.yaml"
    path.write_text(yaml.safe_dump(hub_doc, allow_unicode=True))
    return path


@dataclass
class Sharing:
    """A running hub with the tokens of every party."""

    client: TestClient[Any, Any]
    hub: Hub
    clock: Clock
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def call(
        self, method: str, path: str, who: str, body: Any = None, **kw: Any
    ) -> tuple[int, Any, str]:
        """(status, JSON document or None, raw text)."""
        data = None if body is None else orjson.dumps(body)
        headers = {**self.auth(who), "Content-Type": "application/json"}
        r = await self.client.request(method, path, data=data, headers=headers, **kw)
        text = await r.text()
        try:
            doc = orjson.loads(text) if text else None
        except orjson.JSONDecodeError:
            doc = None
        return r.status, doc, text

    async def send(self, records: list[dict[str, Any]]) -> None:
        r = await self.client.post(
            "/v1/systems/dept-a/records",
            data=orjson.dumps(records),
            headers={"Authorization": f"Bearer {SOURCE_TOKEN}", "Content-Type": "application/json"},
        )
        assert r.status in (202, 207), await r.text()


async def token(hub: Hub, name: str, role: str, dept: str) -> str:
    issued = await hub.guard.authenticator.tokens.create(name=name, roles=[role], department=dept)
    return str(issued.token)


async def start_sharing(
    tmp: Path,
    aiohttp_client: AiohttpClient,
    *,
    sharing: dict[str, Any] | None = None,
    pg_schema: str | None = None,
    security: dict[str, Any] | None = None,
) -> AsyncIterator[Sharing]:
    """A running sharing hub on SQLite, or on PostgreSQL in ``pg_schema`` (migrated here)."""
    store = None
    if pg_schema is not None:
        from hub.store.postgres import migrate
        from tests.conftest import PG_DSN

        await migrate(PG_DSN, pg_schema)
        store = {"kind": "postgres", "dsn": PG_DSN, "schema": pg_schema, "pool_size": 4}
    cfg = load_config(write_sharing_config(tmp, sharing=sharing, store=store, security=security))
    clock = Clock(time.time())
    hub = Hub(cfg, clock=clock)
    client = await aiohttp_client(create_app(cfg, hub=hub))
    assert client.app[HUB_KEY] is hub  # type: ignore[index]
    tokens = {
        "requester": await token(hub, "商务局申请人", "requester", REQUESTER),
        "requester2": await token(hub, "商务局另一申请人", "requester", REQUESTER),
        "other": await token(hub, "宁波商务局", "requester", OTHER),
        "reviewer": await token(hub, "市场监管局审核人", "reviewer", PROVIDER),
        "other_reviewer": await token(hub, "商务局审核人", "reviewer", REQUESTER),
        "admin": await token(hub, "管理员", "admin", PROVIDER),
        "ops": await token(hub, "运维", "ops", PROVIDER),
    }
    try:
        yield Sharing(client, hub, clock, tokens)
    finally:
        await client.close()


def application(**over: Any) -> dict[str, Any]:
    now = time.time()
    import datetime as dt

    until = dt.datetime.fromtimestamp(now + 90 * 86400, dt.UTC).isoformat()
    body: dict[str, Any] = {
        "resource": "330100-SCJ-0001",
        "fields": ["license_no", "name", "region_code", "status", "legal_person", "phone"],
        "purpose": "商务执法中核验企业登记状态",
        "legal_basis": "《浙江省公共数据条例》第二十五条",
        "row_filter": "region_code in ('330106', '330108')",
        "valid_until": until,
        "requests_per_day": 50,
        "records_per_day": 5000,
        "methods": ["query", "download", "subscription"],
    }
    body.update(over)
    return body


async def approved_grant(s: Sharing, **over: Any) -> tuple[str, str]:
    """File, accept and approve an application; (application id, grant id)."""
    st, app, _ = await s.call("POST", "/v1/applications", "requester", application(**over))
    assert st == 201, app
    aid = app["id"]
    st, doc, _ = await s.call("POST", f"/v1/applications/{aid}/accept", "reviewer", {})
    assert st == 200, doc
    st, doc, _ = await s.call("POST", f"/v1/applications/{aid}/approve", "reviewer", {})
    assert st == 200 and doc["state"] == "approved", doc
    return aid, doc["grant_id"]


class RunningHub:
    """A hub served by aiohttp on its own loop in a thread (schemathesis calls are blocking)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.base = ""
        self.tokens: dict[str, str] = {}

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def start(self) -> None:
        self.thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        cfg = load_config(write_sharing_config(self.tmp))
        hub = Hub(cfg)
        self.runner = web.AppRunner(create_app(cfg, hub=hub))
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{bound_port(site)}"
        for who, role, dept in (
            ("requester", "requester", "330100-swj"),
            ("reviewer", "reviewer", "330100-scj"),
        ):
            self.tokens[who] = await token(hub, who, role, dept)

    def stop(self) -> None:
        if self.runner is not None:
            self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
