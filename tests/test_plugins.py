"""The plugin system: built-ins load like third-party plugins, mistakes fail at start, async
lifecycle hooks are awaited, and every hook is documented and exercised (meta-test)."""

from __future__ import annotations

import ast
import asyncio
import inspect
import textwrap
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pluggy
import pytest
from pydantic import BaseModel, ConfigDict

import hub.builtin
from hub import hookspecs
from hub.config import load_config
from hub.errors import PluginError, SignatureError
from hub.events import AcceptedMessage, DeliveryEvent
from hub.plugins import ENTRY_POINT_GROUP, acall, build_plugin_manager, hookimpl, load_registry
from hub.runtime import Hub
from hub.specs import (
    AdapterSpec,
    DatasetSpec,
    NoOptions,
    OutboundItem,
    SendResult,
    Signer,
    SignerSpec,
    TransformFunctionSpec,
    TransportSpec,
)
from tests.helpers import config, wait_until

TESTS = Path(__file__).resolve().parent


def _names(pm: pluggy.PluginManager) -> list[str]:
    return [name for name, _ in pm.list_name_plugin()]


# --------------------------------------------------------------------------- built-ins


def test_builtin_plugins_load_through_the_entry_point_group() -> None:
    declared = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert {"core", "contracts"} <= declared
    pm = build_plugin_manager()
    names = _names(pm)
    assert names.index("core") < names.index("contracts")  # fixed order: built-ins first
    assert pm.get_plugin("core") is hub.builtin

    reg = load_registry(pm)
    assert "json" in reg.adapters and reg.adapters.owners["json"] == "core"
    assert "http_json" in reg.transports and reg.transports.owners["http_json"] == "core"
    assert "identity" in reg.transform_functions
    assert reg.transform_functions.owners["identity"] == "core"
    assert {"inspection", "catalog_item"} <= set(reg.datasets.names())
    assert reg.datasets.owners["inspection"] == "contracts"
    assert reg.datasets.get("catalog_item").partition_field == "code"
    assert reg.transform_functions.get("identity").func({"a": 1}) == {"a": 1}


def test_jghub_plugins_env_limits_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JGHUB_PLUGINS", "core")
    pm = build_plugin_manager()
    assert "core" in _names(pm) and "contracts" not in _names(pm)
    reg = load_registry(pm)
    assert reg.datasets.names() == [] and "json" in reg.adapters
    with pytest.raises(PluginError, match=r"unknown dataset 'inspection'.*registered: none"):
        reg.datasets.get("inspection", wanted_by="a test")


def test_jghub_plugins_env_always_keeps_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JGHUB_PLUGINS", " contracts ")
    assert {"core", "contracts"} <= set(_names(build_plugin_manager()))


def test_hub_without_contracts_plugin_cannot_use_its_datasets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(tmp_path, {}, store={"kind": "memory"})
    monkeypatch.setenv("JGHUB_PLUGINS", "core")
    with pytest.raises(PluginError, match="unknown dataset 'inspection'"):
        Hub(cfg)


# --------------------------------------------------------------------------- mistakes


def _no_factory(name: str, options: Any) -> Any:
    """A factory for specs that are never built (registration is all these tests need)."""
    raise AssertionError("not built")


class DuplicateJsonAdapter:
    @hookimpl
    def hub_register_adapters(self) -> list[AdapterSpec]:
        return [AdapterSpec("json", _no_factory)]


class DuplicateInspection:
    @hookimpl
    def hub_register_datasets(self) -> list[DatasetSpec]:
        return [DatasetSpec("inspection", "9.9", NoOptions)]


@pytest.mark.parametrize(
    ("plugin", "kind", "owner"),
    [
        (DuplicateJsonAdapter(), "adapter 'json'", "core"),
        (DuplicateInspection(), "dataset 'inspection'", "contracts"),
    ],
)
def test_duplicate_spec_name_names_both_plugins(plugin: object, kind: str, owner: str) -> None:
    pm = build_plugin_manager([plugin])
    with pytest.raises(PluginError) as info:
        load_registry(pm)
    msg = info.value.message
    name = f"{type(plugin).__name__}-0"
    assert info.value.code == "E_PLUGIN"
    assert msg.startswith(kind) and "registered twice" in msg
    assert f"by {owner!r} and by {name!r}" in msg  # the built-in came first


class Misspelled:
    @hookimpl
    def hub_register_adapterz(self) -> list[AdapterSpec]:
        return []


def test_misspelled_hook_fails_at_start() -> None:
    with pytest.raises(PluginError) as info:
        build_plugin_manager([Misspelled()])
    assert info.value.code == "E_PLUGIN"
    assert "hub_register_adapterz" in info.value.message
    assert "plugin 'Misspelled-0' implements an unknown hook" in info.value.message
    assert info.value.field == "Misspelled-0"
    assert "hub/hookspecs.py" in info.value.message


class WrongArgument:
    @hookimpl
    def hub_startup(self, hubb: Any) -> None:
        pass


def test_hook_with_unknown_argument_fails_at_start() -> None:
    with pytest.raises(PluginError, match=r"(?s)plugin 'WrongArgument-0' is invalid.*hubb"):
        build_plugin_manager([WrongArgument()])


def test_same_plugin_twice_fails() -> None:
    plugin = DuplicateInspection()
    with pytest.raises(PluginError, match="plugin 'DuplicateInspection-1' registered twice"):
        build_plugin_manager([plugin, plugin], load_entry_points=False)


class Returns:
    """A registration hook returning ``value`` instead of a list of specs."""

    def __init__(self, value: Any) -> None:
        self.value = value

    @hookimpl
    def hub_register_transports(self) -> Any:
        return self.value


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (TransportSpec("bare", _no_factory), "must return a list of specs, got TransportSpec"),
        ("http_json", "must return a list of specs, got str"),
        ({"name": "x"}, "must return a list of specs, got dict"),
        (["http_json"], "returned a value of type str; expected TransportSpec objects"),
        ([AdapterSpec("oops", _no_factory)], "type AdapterSpec; expected TransportSpec objects"),
    ],
)
def test_registration_hook_returning_a_non_list_fails_clearly(value: Any, says: str) -> None:
    pm = build_plugin_manager([Returns(value)])
    with pytest.raises(PluginError) as info:
        load_registry(pm)
    assert "hub_register_transports of plugin 'Returns-0'" in info.value.message
    assert says in info.value.message


class ReturnsNothing:
    @hookimpl
    def hub_register_signers(self) -> list[SignerSpec] | None:
        return None


def test_registration_hook_may_return_none() -> None:
    reg = load_registry(build_plugin_manager([ReturnsNothing()], load_entry_points=False))
    assert reg.signers.names() == []


# --------------------------------------------------------------------------- async lifecycle


class Lifecycle:
    """Async ``hub_startup`` / ``hub_shutdown``: the hub must await what they return."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.hubs: list[Any] = []

    @hookimpl
    def hub_startup(self, hub: Any) -> Any:
        async def start() -> None:
            await asyncio.sleep(0)
            self.calls.append(f"startup: store open ({(await hub.store.counts())['messages']})")
            self.hubs.append(hub)

        return start()

    @hookimpl
    def hub_shutdown(self, hub: Any) -> Any:
        async def stop() -> None:
            await asyncio.sleep(0)
            self.calls.append("shutdown")

        return stop()


class SyncLifecycle:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    @hookimpl
    def hub_startup(self, hub: Any) -> None:
        self.calls.append("sync startup")


async def test_acall_awaits_async_startup_and_shutdown(tmp_path: Path) -> None:
    life = Lifecycle()
    cfg = config(tmp_path, {}, store={"kind": "memory"})
    hub = Hub(cfg, extra_plugins=[life, SyncLifecycle(life.calls)])
    assert life.calls == []
    async with hub:
        assert sorted(life.calls) == ["startup: store open (0)", "sync startup"]
        assert life.hubs == [hub]
    assert life.calls[-1] == "shutdown" and len(life.calls) == 3


async def test_acall_returns_results_of_sync_and_async_implementations() -> None:
    class Async:
        @hookimpl
        def hub_shutdown(self, hub: Any) -> Any:
            async def value() -> str:
                return f"async {hub}"

            return value()

    class Sync:
        @hookimpl
        def hub_shutdown(self, hub: Any) -> str:
            return f"sync {hub}"

    pm = build_plugin_manager([Async(), Sync()], load_entry_points=False)
    results = await acall(pm.hook.hub_shutdown, hub="h")
    assert sorted(results) == ["async h", "sync h"]  # no coroutine left un-awaited


# --------------------------------------------------------------------------- third party


class NoiseComplaint(BaseModel):  # 噪声投诉
    model_config = ConfigDict(extra="forbid")

    complaint_no: str
    name: str
    decibels: int


class CsvAdapter:
    """``complaint_no,name,decibels`` lines in, the record as is out."""

    def decode(self, body: bytes, content_type: str, headers: Mapping[str, str]) -> list[Any]:
        rows = [line.split(",") for line in body.decode().splitlines() if line]
        return [{"complaint_no": a, "name": b, "decibels": c} for a, b, c in rows]

    def encode(self, record: dict[str, Any]) -> Any:
        return {"csv": f"{record['complaint_no']},{record['name']},{record['decibels']}"}


class MemoryOptions(BaseModel):
    """The transport's own options; ``transport:`` itself is read by the core."""

    model_config = ConfigDict(extra="forbid")

    label: str


class MemoryTransport:
    max_batch = 1
    concurrency = 1

    def __init__(self, label: str, inbox: list[tuple[str, Any]]) -> None:
        self.label = label
        self.inbox = inbox

    async def start(self) -> None:
        self.inbox.append((self.label, "started"))

    async def close(self) -> None:
        self.inbox.append((self.label, "closed"))

    async def send(self, items: Sequence[OutboundItem]) -> list[SendResult]:
        self.inbox += [(self.label, i.body) for i in items]
        return [SendResult(True, 200) for _ in items]


class NullSigner:
    """Signs everything with the same bytes (the Signer protocol of RFC 9421 signers)."""

    algorithm = "null"
    key_id = "null-1"

    def sign(self, data: bytes) -> bytes:
        return b"null"

    def verify(self, data: bytes, signature: bytes) -> None:
        if signature != b"null":
            raise SignatureError("not the null signature", field="Signature")


class ThirdParty:
    """What an outside package would ship: every registration hook plus observers."""

    def __init__(self) -> None:
        self.inbox: list[tuple[str, Any]] = []
        self.accepted: list[AcceptedMessage] = []
        self.delivered: list[DeliveryEvent] = []

    @hookimpl
    def hub_register_adapters(self) -> list[AdapterSpec]:
        return [AdapterSpec("csv", lambda system, options: CsvAdapter())]

    @hookimpl
    def hub_register_transports(self) -> list[TransportSpec]:
        return [
            TransportSpec(
                "memory", lambda target, o: MemoryTransport(o.label, self.inbox), MemoryOptions
            )
        ]

    @hookimpl
    def hub_register_signers(self) -> list[SignerSpec]:
        return [SignerSpec("null", lambda options: NullSigner())]

    @hookimpl
    def hub_register_transform_functions(self) -> list[TransformFunctionSpec]:
        return [
            TransformFunctionSpec("upper_name", lambda r: {**r, "name": r["name"].upper()}),
        ]

    @hookimpl
    def hub_register_datasets(self) -> list[DatasetSpec]:
        return [DatasetSpec("noise_complaint", "1.0", NoiseComplaint, key_field="complaint_no")]

    @hookimpl
    def hub_messages_accepted(self, messages: Sequence[AcceptedMessage]) -> None:
        self.accepted += messages

    @hookimpl
    def hub_delivery_succeeded(self, event: DeliveryEvent) -> None:
        self.delivered.append(event)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


async def test_third_party_plugin_provides_every_kind_of_spec(tmp_path: Path) -> None:
    _write(
        tmp_path / "hub.yaml",
        """\
        store: {kind: memory}
        dispatcher: {idle_poll_seconds: 0.05}
        systems: [systems]
        routes:
          - name: noise
            source: street-office
            dataset: noise_complaint
            targets:
              - system: env-bureau
                transform: upper_name
        """,
    )
    _write(
        tmp_path / "systems" / "street-office.yaml",
        """\
        name: street-office
        adapter: csv
        inbound: {datasets: [noise_complaint]}
        """,
    )
    _write(
        tmp_path / "systems" / "env-bureau.yaml",
        """\
        name: env-bureau
        adapter: csv
        outbound: {transport: memory, label: 生态环境局}
        retry: {base_delay: 0.01, max_delay: 0.05}
        """,
    )
    plugin = ThirdParty()
    hub = Hub(load_config(tmp_path / "hub.yaml"), extra_plugins=[plugin])
    assert hub.registry.signers.owners["null"] == "ThirdParty-0"
    null = hub.registry.signers.get("null").factory(None)
    assert isinstance(null, Signer) and null.sign(b"x") == b"null"
    with pytest.raises(SignatureError):
        null.verify(b"x", b"forged")
    async with hub:
        source = hub.system("street-office")
        records = source.adapter.decode(b"NC-1,zhang san,72\nNC-2,li si,65\n", "text/csv", {})
        res = await hub.ingest_records("street-office", records)
        assert len(res.ids) == 2 and not res.errors
        bad = await hub.ingest_records("street-office", [{"complaint_no": "NC-3", "name": "x"}])
        assert [e.error.field for e in bad.errors] == ["decibels"]
        await wait_until(lambda: len(plugin.delivered) == 2, timeout=10, what="2 deliveries")
    assert plugin.inbox[0] == ("生态环境局", "started")
    assert sorted(b["csv"] for label, b in plugin.inbox[1:-1]) == [
        "NC-1,ZHANG SAN,72",
        "NC-2,LI SI,65",
    ]
    assert plugin.inbox[-1] == ("生态环境局", "closed")
    assert [m.targets for m in plugin.accepted] == [("env-bureau",), ("env-bureau",)]


# --------------------------------------------------------------------------- meta


def _hookspecs() -> dict[str, Any]:
    return {
        name: fn
        for name, fn in vars(hookspecs).items()
        if inspect.isfunction(fn) and hasattr(fn, "jghub_spec")
    }


def _test_sources_without_this_meta_test() -> str:
    this = Path(__file__).resolve()
    own = inspect.getsource(test_every_hook_is_documented_and_exercised)
    texts = []
    for path in sorted(TESTS.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        texts.append(text.replace(own, "") if path.resolve() == this else text)
    return "\n".join(texts)


def test_every_hook_is_documented_and_exercised() -> None:
    specs = _hookspecs()
    assert len(specs) >= 11
    pm = build_plugin_manager(load_entry_points=False)
    tree = ast.parse(inspect.getsource(hookspecs))
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert defined == set(specs), "every function in hub/hookspecs.py must be a hookspec"
    sources = _test_sources_without_this_meta_test()
    for name, fn in specs.items():
        assert name.startswith("hub_"), name
        assert hasattr(pm.hook, name)
        doc = inspect.getdoc(fn)
        assert doc and len(doc) > 30, f"{name} needs a docstring saying when it is called"
        sig = inspect.signature(fn)
        assert sig.return_annotation is not inspect.Signature.empty, f"{name}: return type"
        assert all(p.annotation is not p.empty for p in sig.parameters.values()), name
        assert not fn.jghub_spec.get("firstresult"), f"{name}: no firstresult hooks (STYLE 1)"
        assert name in sources, f"no test exercises {name}"
