"""The hooks monitoring added (each exercised by a third-party plugin here), and who may see
the metrics and the dashboard once a ``security:`` section is configured."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from contracts.samples import sample_inspection
from hub.api import HUB_KEY, create_app
from hub.config import load_config
from hub.plugins import hookimpl
from hub.runtime import Hub
from tests.helpers import config
from tests.test_api_security import _token, secure_config

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]


class PerHub:
    """Observes one hub only: registered through hub_instance_plugins of ``Factory``."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.rejected: list[tuple[str, str | None, list[str], int]] = []

    @hookimpl
    def hub_records_rejected(
        self, system: str, dataset: str | None, codes: Sequence[str], quarantined: int
    ) -> None:
        self.rejected.append((system, dataset, list(codes), quarantined))

    @hookimpl
    def hub_setup_app(self, hub: Any, app: web.Application) -> None:
        async def hello(request: web.Request) -> web.Response:
            return web.json_response({"hub": hub.config.hub.name})

        app.router.add_get("/plugin/hello", hello)

    @hookimpl
    def hub_readiness(self, hub: Any) -> dict[str, Any]:
        return {"plugin_check": "fine", "targets": {"national": {"plugin": True}}}


class Factory:
    def __init__(self) -> None:
        self.made: list[PerHub] = []

    @hookimpl
    def hub_instance_plugins(self, hub: Any) -> list[object]:
        self.made.append(PerHub(hub))
        return [self.made[-1]]


async def test_instance_plugins_routes_readiness_and_rejections(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    factory = Factory()
    cfg = config(tmp_path / "a", {"national": {"url": "http://127.0.0.1:9/in"}})
    other = Hub(config(tmp_path / "b", {}), extra_plugins=[factory])
    hub = Hub(cfg, extra_plugins=[factory])
    assert [p.hub for p in factory.made] == [other, hub]  # one per hub, no shared state
    client = await aiohttp_client(create_app(cfg, hub=hub))
    assert (await (await client.get("/plugin/hello")).json()) == {"hub": "test-hub"}
    ready = await (await client.get("/readyz")).json()
    assert ready["plugin_check"] == "fine" and ready["targets"]["national"]["plugin"] is True
    bad = {**sample_inspection(1), "inspection_date": "nope"}
    json = {"Content-Type": "application/json"}
    r = await client.post("/v1/systems/dept-a/records", data=orjson.dumps([bad]), headers=json)
    assert r.status == 422
    r = await client.post("/v1/systems/dept-a/records", data=b"{not json", headers=json)
    assert r.status == 400
    mine = factory.made[1]
    assert mine.rejected == [
        ("dept-a", "inspection", ["E_SCHEMA"], 1),
        ("dept-a", None, ["E_JSON"], 0),
    ]
    assert factory.made[0].rejected == []


@pytest.fixture
async def secure(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> AsyncIterator[TestClient[Any, Any]]:
    path, _ = secure_config(tmp_path)
    cfg = load_config(path)
    client = await aiohttp_client(create_app(cfg, hub=Hub(cfg)))
    yield client
    await client.close()


#: (method, path, who may) — everyone else is refused with E_FORBIDDEN, no credential E_AUTH
MONITORING_ROUTES = [
    ("GET", "/metrics", {"ops", "admin"}),
    ("GET", "/dashboard/api/overview", {"ops", "admin"}),
    ("GET", "/dashboard/live/overview", {"ops", "admin"}),
    ("POST", "/dashboard/dlq/1/replay", {"ops"}),
]


async def test_monitoring_routes_refuse_every_role_they_should(
    secure: TestClient[Any, Any],
) -> None:
    hub: Hub = secure.app[HUB_KEY]  # type: ignore[index]
    tokens = {
        "system": await _token(hub, "system", system="dept-a"),
        **{r: await _token(hub, r) for r in ("requester", "reviewer", "ops", "admin")},
    }
    for method, path, allowed in MONITORING_ROUTES:
        for role, token in tokens.items():
            r = await secure.request(
                method,
                path,
                data={"confirm": "yes"} if method == "POST" else None,
                headers={"Authorization": f"Bearer {token}"},
                allow_redirects=False,
            )
            if role in allowed:
                assert r.status not in (401, 403), (path, role, await r.text())
            else:
                assert r.status == 403, (path, role)
                assert (await r.json())["code"] == "E_FORBIDDEN"
        r = await secure.request(method, path, allow_redirects=False)
        assert r.status == 401 and (await r.json())["code"] == "E_AUTH", path
    # a browser without a login is sent to the login page; health checks stay open
    r = await secure.get("/dashboard", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"].startswith("/dashboard/login")
    assert (await secure.get("/readyz")).status == 200
    # a replay must be confirmed, and may not come from another site
    ops = {"Authorization": f"Bearer {tokens['ops']}"}
    r = await secure.post("/dashboard/dlq/1/replay", data={}, headers=ops)
    assert r.status == 400 and (await r.json())["field"] == "confirm"
    r = await secure.post(
        "/dashboard/dlq/1/replay",
        data={"confirm": "yes"},
        headers={**ops, "Origin": "http://evil.example"},
    )
    assert r.status == 403 and (await r.json())["field"] == "Origin"
    r = await secure.post("/dashboard/dlq/1/replay", data={"confirm": "yes"}, headers=ops)
    assert r.status == 404 and (await r.json())["code"] == "E_NOT_FOUND"


async def test_open_mode_serves_dashboard_without_login(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    cfg = config(tmp_path, {})
    client = await aiohttp_client(create_app(cfg, hub=Hub(cfg)))
    r = await client.get("/dashboard")
    assert r.status == 200 and "目标系统" in await r.text()
    r = await client.get("/dashboard?lang=en")
    assert "Targets" in await r.text() and r.cookies["jghub_lang"].value == "en"
    assert (await client.get("/dashboard/static/app.js")).status == 200
    assert (await client.get("/dashboard/static/nope.js")).status == 404
    r = await client.get("/dashboard/messages?by=bogus&q=x")
    assert r.status == 400 and (await r.json())["code"] == "E_PARAM"
    assert (await client.get("/metrics")).status == 200
