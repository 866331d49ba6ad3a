"""Small spec objects that plugins return from the ``hub_register_*`` hooks, and the
interfaces the objects they build must provide.

The hub core knows no system by name: adapter types, transports, signers, transform functions
and datasets all arrive as specs. A spec pairs a *name* (what YAML refers to) with a *factory*
and the pydantic *config model* that validates the YAML options for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from hub.errors import HubError

__all__ = [
    "Adapter",
    "AdapterSpec",
    "ComparatorSpec",
    "DatasetSpec",
    "InboundSource",
    "NoOptions",
    "OutboundItem",
    "OutboundTransport",
    "RawLines",
    "RespondingAdapter",
    "SendResult",
    "Signer",
    "SignerSpec",
    "SourceContext",
    "SourceSpec",
    "TransformFunctionSpec",
    "TransportSpec",
]


class NoOptions(BaseModel):
    """Config model for specs that take no options."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- interfaces


class RawLines(list[bytes]):
    """Records an adapter did not parse: each item is the JSON text of one record (an NDJSON
    line). The hub validates them straight from bytes, which is faster than parsing to Python
    objects first. ``line_numbers[i]`` is the line of item *i* in the body, for errors."""

    def __init__(self) -> None:
        super().__init__()
        self.line_numbers: list[int] = []


@runtime_checkable
class Adapter(Protocol):
    """Speaks one system's protocol: turns what it sends into records, and records into what
    it expects back. Built per configured system by ``AdapterSpec.factory``."""

    def decode(self, body: bytes, content_type: str, headers: Mapping[str, str]) -> list[Any]:
        """Split an inbound body into raw records (still in the system's own schema): parsed
        JSON values, or a :class:`RawLines` of unparsed JSON texts."""
        ...

    def encode(self, record: dict[str, Any]) -> Any:
        """Turn one outbound record (already mapped to the system's schema) into the value the
        transport sends (a JSON-able object for ``http_json``)."""
        ...


@runtime_checkable
class RespondingAdapter(Adapter, Protocol):
    """An adapter that also shapes the HTTP answers of ``POST /v1/systems/{system}/records``
    (a SOAP service answers in SOAP, not in JSON). The API calls these when an adapter has
    them; the answer is ``(body, content type, status)``."""

    def respond(
        self, result: Any, single: bool, headers: Mapping[str, str]
    ) -> tuple[bytes, str, int] | None:
        """The answer to an ingest (``result`` is a :class:`hub.runtime.IngestResult`), or
        None for the hub's JSON answer."""
        ...

    def render_error(self, error: HubError, headers: Mapping[str, str]) -> tuple[bytes, str, int]:
        """The answer to a rejection of the whole request (instead of a problem document)."""
        ...

    def describe(self, endpoint: str) -> tuple[bytes, str] | None:
        """A description of the endpoint for ``GET ...records?wsdl`` (body, content type)."""
        ...


@dataclass(slots=True)
class OutboundItem:
    """One delivery handed to a transport: the message id travels as ``Idempotency-Key``."""

    delivery_id: int
    message_id: str
    dataset: str
    body: Any
    attempt: int
    traceparent: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class SendResult:
    """What a transport learned from the target about one item.

    ``ok`` — delivered; otherwise ``permanent`` says a retry cannot help (dead-letter at once).
    ``retry_after`` (seconds) comes from ``Retry-After``; ``status`` is the target's status code
    or ``None`` for a network error.
    """

    ok: bool
    status: int | None = None
    permanent: bool = False
    detail: str = ""
    retry_after: float | None = None
    latency_ms: float = 0.0
    receipt: str | None = None


@runtime_checkable
class OutboundTransport(Protocol):
    """Sends deliveries to one target. ``max_batch`` > 1 means the transport can send several
    items in one request; the dispatcher then hands it lists of up to that size."""

    max_batch: int
    concurrency: int

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, items: Sequence[OutboundItem]) -> list[SendResult]:
        """Send items; return one result per item, in order. Must not raise for target errors."""
        ...


class SourceContext(Protocol):
    """What the hub gives an inbound source (:class:`InboundSource`) while it runs.

    Implemented by :class:`hub.sources.HubSourceContext`. A source reads records from its
    system (poll an API, take files, read staging rows, consume a queue), hands them to
    :meth:`ingest` and only then marks them taken on its side and saves its cursor with
    :meth:`put_state`: ``ingest`` returns after the durable commit, so a crash between the two
    re-reads records that the idempotency keys then recognise (exactly-once effect).
    """

    system: str
    #: set when the hub stops; a source's loop must end soon after
    stopping: Any

    async def ingest(
        self,
        records: Sequence[Any],
        *,
        keys: Sequence[str] | None = None,
        dataset: str | None = None,
        origin: str = "",
        traceparent: str | None = None,
    ) -> Any:
        """Map, govern, validate and durably commit ``records`` (in the system's own schema,
        parsed: dicts or RawLines). ``keys[i]`` is record *i*'s idempotency key (a staging row
        id, ``file-sha256:line``, an API record id + version): sending it again is recognised.
        Rejected records go to the quarantine with their reasons, named by ``origin`` and
        index. Returns a :class:`hub.runtime.IngestResult`."""
        ...

    async def get_state(self, key: str) -> str | None:
        """This source's saved value for ``key`` (a cursor, a page token), or None."""
        ...

    async def put_state(self, key: str, value: str) -> None:
        """Save a value durably (call it after ``ingest`` returned)."""
        ...

    async def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` or until the hub stops; True if the hub is stopping."""
        ...

    def verify_detached(self, payload: bytes, signature: str) -> str:
        """Check a detached signature (:func:`security.httpsig.sign_detached`) of ``payload``
        by one of this system's keys; return the key id, or raise
        :class:`hub.errors.SignatureError` (``E_SIGNATURE``)."""
        ...


@runtime_checkable
class InboundSource(Protocol):
    """Collects records from one system by itself (动态采集 / 批量交换): built per system whose
    ``inbound.source`` names it, run by the hub node as a background task."""

    async def run(self, ctx: SourceContext) -> None:
        """Run until ``ctx.stopping`` is set. An exception is logged and the source restarted
        after a backoff; records it had not ingested are read again."""
        ...


@runtime_checkable
class Signer(Protocol):
    """One key of one signature algorithm, as RFC 9421 needs it: raw signature bytes over the
    signature base. Built by ``SignerSpec.factory``; a key that holds only a public key (a
    peer's) verifies but cannot sign.

    ``algorithm`` is the RFC 9421 algorithm name (``ed25519``, ``ecdsa-p256-sha256`` ...) and
    ``key_id`` the ``keyid`` that names the key in ``Signature-Input``.
    """

    algorithm: str
    key_id: str

    def sign(self, data: bytes) -> bytes:
        """Return the raw signature of ``data`` (not base64)."""
        ...

    def verify(self, data: bytes, signature: bytes) -> None:
        """Return if ``signature`` signs ``data``; else raise :class:`hub.errors.SignatureError`."""
        ...


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True, slots=True)
class AdapterSpec:
    """An adapter type: ``factory(system_name, options) -> Adapter``."""

    name: str
    factory: Callable[[str, Any], Adapter]
    config_model: type[BaseModel] = NoOptions
    description: str = ""


@dataclass(frozen=True, slots=True)
class TransportSpec:
    """An outbound transport type: ``factory(target_name, options) -> OutboundTransport``."""

    name: str
    factory: Callable[[str, Any], OutboundTransport]
    config_model: type[BaseModel] = NoOptions
    description: str = ""


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """An inbound source type: ``factory(system_name, options) -> InboundSource``.
    ``config_model`` validates the ``inbound.source:`` section (minus ``kind``)."""

    name: str
    factory: Callable[[str, Any], InboundSource]
    config_model: type[BaseModel] = NoOptions
    description: str = ""


@dataclass(frozen=True, slots=True)
class ComparatorSpec:
    """A cross-source check (比对/校核) a governance rule can name:
    ``check(dataset, record) -> awaitable of a mismatch message, or None when it agrees``.

    Example: the entity name given for a USCC must match the market-entity registry (the market
    adapter registers that comparator)."""

    name: str
    check: Callable[[str, dict[str, Any]], Awaitable[str | None]]
    description: str = ""


@dataclass(frozen=True, slots=True)
class SignerSpec:
    """A signature algorithm: ``factory(options) -> Signer``."""

    name: str
    factory: Callable[[Any], Signer]
    config_model: type[BaseModel] = NoOptions
    description: str = ""


@dataclass(frozen=True, slots=True)
class TransformFunctionSpec:
    """A named function usable in routes and mappings.

    ``kind="record"`` (the default): ``func(record) -> record``, named by a route target's
    ``transform:``. ``kind="value"``: ``func(value, *args) -> value``, called from a mapping
    rule (``fn: {name: ..., args: [...]}``, see ``docs/mapping.md``) with the arguments
    written in YAML.
    """

    name: str
    func: Callable[..., Any]
    description: str = ""
    kind: Literal["record", "value"] = "record"


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """A canonical dataset (contract).

    ``model`` validates one record; ``partition_field`` names the field whose value is the
    partition key for ordered delivery (e.g. a catalog item's code); ``key_field`` is the
    business key used for de-duplication and look-ups. ``catalog``: the catalog resource
    (:class:`hub.sharing.catalog.CatalogResource`) a dataset file declares for sharing it.
    """

    name: str
    version: str
    model: type[BaseModel]
    title: str = ""
    partition_field: str | None = None
    key_field: str | None = None
    catalog: Any = None
