"""A running credit set-up for the end-to-end tests: the example platform configuration
(copied, fresh keys), its hub on SQLite behind a real HTTP listener, the credit platform
simulator and the housing bureau's inbox, all on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from adapters.common import load_with_environment, serving, started
from adapters.credit.demo import prepare_credit_setup
from adapters.credit.simulator import CreditSimulator
from hub.api import create_app
from hub.peers.sink import Sink
from hub.runtime import Hub
from security.keystore import Keystore, ManagedKey
from tests.conftest import free_port

AMR = {"Authorization": "Bearer trial-token-dept-amr"}
ZJJ = {"Authorization": "Bearer trial-token-dept-zjj"}


@dataclass
class Rig:
    hub: Hub
    http: aiohttp.ClientSession
    sim: CreditSimulator
    inbox: Sink
    base: str
    work: Path

    async def post(
        self, system: str, dataset: str, records: Any, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        async with self.http.post(
            f"/v1/systems/{system}/records",
            params={"dataset": dataset},
            json=records,
            headers=headers,
        ) as resp:
            return resp.status, await resp.json()

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.http.get(path, **kw) as resp:
            if resp.content_type.endswith("json"):
                return resp.status, await resp.json()
            return resp.status, await resp.text()

    async def events(self, message_id: str) -> list[str]:
        trace = await self.hub.store.trace(message_id)
        assert trace is not None
        return [e.detail or "" for e in trace.events]


@asynccontextmanager
async def credit_rig(
    work: Path,
    *,
    clock: Callable[[], float] | None = None,
    pull: bool = False,
    security: bool = False,
    store: str = "sqlite",
) -> AsyncIterator[Rig]:
    """``pull``: the hub polls the platform's list feed (``http_pull``, as the comment in
    systems/credit.yaml shows) and the platform pushes nothing. ``security``: the hub file
    gets a ``security:`` section (role tokens, audit log). ``store``: the hub's store kind
    (``sqlite`` as in the example, or ``memory``)."""
    inbox = Sink("dept-zjj")
    sim = CreditSimulator(keys=Keystore())
    async with started(inbox, sim):
        port = free_port()
        hub_file, hub_key, platform_key = prepare_credit_setup(work)
        sim.keys = Keystore([ManagedKey(hub_key, owner="jghub")])
        sim.signer = platform_key
        base = f"http://127.0.0.1:{port}"
        sim.push_url = f"{base}/v1/systems/credit/records?dataset=credit_list_entry"
        if security:
            doc = yaml.safe_load(hub_file.read_text(encoding="utf-8"))
            doc["security"] = {
                "db": {"path": "data/security.db", "durability": "normal"},
                "tokens": {"pepper_env": None},
                "audit": {"checkpoint_key": "jghub-credit-1", "checkpoint_every": 50},
            }
            hub_file.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        if store != "sqlite":
            doc = yaml.safe_load(hub_file.read_text(encoding="utf-8"))
            doc["store"] = {"kind": store}
            hub_file.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        if pull:
            sim.push_url = None
            path = work / "systems" / "credit.yaml"
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            doc["inbound"]["source"] = {
                "kind": "http_pull",
                "url": f"{sim.base_url}/md/entries",
                "mode": "page_token",
                "records_path": "data",
                "id_field": "XH",
                "token": sim.feed_token,
                "interval": 0.05,
                "min_backoff": 0.05,
            }
            path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        env = {"CREDIT_URL": sim.base_url, "DEPT_ZJJ_URL": inbox.url, "JGHUB_PORT": str(port)}
        cfg = load_with_environment(hub_file, env)
        hub = Hub(cfg, clock=clock) if clock is not None else Hub(cfg)
        app = create_app(cfg, hub=hub)
        async with serving(app, port), aiohttp.ClientSession(base_url=base) as http:
            yield Rig(hub, http, sim, inbox, base, work)
