"""``amqp``: RabbitMQ (AMQP 0-9-1) in both directions, with ``aio-pika``.

Outbound (:class:`AmqpTransport`, ``outbound: {transport: amqp}``): each delivery is published
to an exchange with **publisher confirms**; a :class:`~hub.specs.SendResult` is ``ok`` only once
the broker confirmed it (``basic.ack``), which for a persistent message on a durable queue means
the broker has taken responsibility for it. The AMQP ``message_id`` is our message id (consumers
de-duplicate on it: a publish whose confirm was lost is published again), delivery mode is
persistent, content type JSON, headers carry ``dataset``, ``traceparent`` and ``attempt``.
An unroutable message (``mandatory`` and no queue bound: ``basic.return``) and a missing or
forbidden exchange are permanent (dead letter at once); a ``basic.nack`` (a full queue with
``reject-publish``, a broker short of resources), a confirm that does not come in time and a
lost connection are transient. The connection is opened on first use and again on the next
send after it was lost (a broker restart), so a broker that is down when the hub starts only
delays deliveries.

Inbound (:class:`AmqpSource`, ``inbound.source: {kind: amqp}``): consumes one queue with manual
acknowledgements and ``prefetch`` unacknowledged deliveries at most. Deliveries that arrive
together (up to ``batch_max``, waiting at most ``linger`` seconds for more) are ingested in one
:meth:`~hub.specs.SourceContext.ingest` call and acknowledged **only after it returned** (the
durable commit). Each record's idempotency key is the AMQP ``message_id`` (or ``key_header`` /
``key_field``; a message with none gets ``amqp-sha256:<digest of the body>``), so a message
redelivered because the hub died before its ack is recognised as a duplicate: exactly-once in
effect. A JSON body that fails its contract is quarantined by the hub and acknowledged (never
requeued forever). A body that cannot be decoded at all (not JSON, bad ``content_encoding``, an
unknown dataset) never reaches the hub: it is republished to ``dead_letter_exchange`` with the
reason in header ``x-jghub-reason`` (then acknowledged), or without one rejected with
``requeue=false`` after an error is logged (the queue's own ``x-dead-letter-exchange``, when it
has one, keeps it; otherwise the broker drops it). A lost connection is retried with a doubling
delay; unacknowledged deliveries return to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import aio_pika
import aiormq.exceptions as amqp_errors
import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
)
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from hub.errors import UnknownDataset
from hub.specs import OutboundItem, SendResult, SourceContext, SourceSpec, TransportSpec

__all__ = [
    "AmqpBinding",
    "AmqpOptions",
    "AmqpSource",
    "AmqpSourceOptions",
    "AmqpTransport",
    "source_spec",
    "spec",
]

log = logging.getLogger("jghub.amqp")

#: AMQP 0-9-1 reply codes used as ``SendResult.status``
REPLY_SUCCESS = 200
NO_ROUTE = 312
#: channel errors that a retry cannot mend: the exchange does not exist / is forbidden
_PERMANENT_CHANNEL_ERRORS = (amqp_errors.ChannelNotFoundEntity, amqp_errors.ChannelAccessRefused)
#: what a lost or refused connection (or another broker-side failure) raises
_BROKER_ERRORS = (
    amqp_errors.AMQPError,
    amqp_errors.ChannelInvalidStateError,
    ConnectionError,
    OSError,
    TimeoutError,
)


def _check_url(v: SecretStr) -> SecretStr:
    if not v.get_secret_value().startswith(("amqp://", "amqps://")):
        raise ValueError("must be an amqp:// or amqps:// URL (use ${ENV_VAR} for the password)")
    return v


class AmqpOptions(BaseModel):
    """Options of the ``amqp`` transport (the ``outbound:`` section of a system file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: SecretStr = Field(description="amqp://user:password@host:5672/vhost (use ${ENV_VAR})")
    exchange: str = Field("", description="exchange to publish to; '' = the default exchange")
    routing_key: str = Field(
        "{dataset}", min_length=1, description="routing key; {dataset} is replaced"
    )
    declare_exchange: bool = Field(False, description="declare the exchange (durable) at start")
    exchange_type: Literal["direct", "topic", "fanout", "headers"] = "topic"
    mandatory: bool = Field(True, description="an unroutable message is returned: dead letter")
    batch_size: int = Field(
        100, ge=1, le=10_000, description="deliveries published together, confirmed together"
    )
    concurrency: int = Field(4, ge=1, le=256, description="batches in flight on the channel")
    timeout: float = Field(10.0, gt=0, description="seconds to connect, and to wait for a confirm")
    heartbeat: int = Field(30, ge=0, le=3600, description="seconds; 0 = none")
    headers: dict[str, str] = Field(default_factory=dict, description="static extra headers")

    _url = field_validator("url")(_check_url)


class AmqpTransport:
    """Publishes deliveries to one exchange of one broker, on one confirming channel."""

    def __init__(self, target: str, options: AmqpOptions) -> None:
        self.target = target
        self.options = options
        self.max_batch = options.batch_size
        self.concurrency = options.concurrency
        self._conn: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._lock = asyncio.Lock()
        #: a publish saw the connection fail: the next send opens a new one
        self._broken = False

    async def start(self) -> None:
        # Connecting waits for the first send: a broker that is down when the hub starts must
        # only delay deliveries (they are retried), not stop the hub.
        return None

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def _drop(self) -> None:
        conn, self._conn, self._channel, self._exchange = self._conn, None, None, None
        if conn is not None and not conn.is_closed:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _ready(self) -> AbstractExchange:
        """The exchange on an open confirming channel; (re)connect when needed."""
        async with self._lock:
            if self._broken:
                self._broken = False
                await self._drop()
            if (
                self._exchange is not None
                and self._channel is not None
                and not self._channel.is_closed
                and self._conn is not None
                and not self._conn.is_closed
            ):
                return self._exchange
            if self._conn is None or self._conn.is_closed:
                await self._drop()
                opts = self.options
                self._conn = await aio_pika.connect(
                    opts.url.get_secret_value(),
                    timeout=opts.timeout,
                    heartbeat=opts.heartbeat,
                    client_properties={"connection_name": f"jghub outbound {self.target}"},
                )
            self._channel = await self._conn.channel(publisher_confirms=True, on_return_raises=True)
            opts = self.options
            if opts.declare_exchange and opts.exchange:
                self._exchange = await self._channel.declare_exchange(
                    opts.exchange, aio_pika.ExchangeType(opts.exchange_type), durable=True
                )
            elif opts.exchange:
                # Not declared passively here: a missing exchange closes the channel on the
                # first publish, which is reported as a permanent error for those deliveries.
                self._exchange = await self._channel.get_exchange(opts.exchange, ensure=False)
            else:
                self._exchange = self._channel.default_exchange
            return self._exchange

    async def send(self, items: Sequence[OutboundItem]) -> list[SendResult]:
        t0 = time.perf_counter()
        try:
            exchange = await self._ready()
        except Exception as exc:  # a half-closed connection raises RuntimeError, too
            async with self._lock:
                await self._drop()
            detail = f"cannot reach the broker: {type(exc).__name__}: {exc}"[:300]
            ms = (time.perf_counter() - t0) * 1000
            return [SendResult(False, None, False, detail, latency_ms=ms) for _ in items]
        return list(await asyncio.gather(*(self._publish(exchange, i) for i in items)))

    def _message(self, item: OutboundItem) -> aio_pika.Message:
        headers: dict[str, Any] = {
            **self.options.headers,
            "dataset": item.dataset,
            "attempt": item.attempt,
        }
        if item.traceparent:
            headers["traceparent"] = item.traceparent
        headers.update(item.headers)
        return aio_pika.Message(
            body=orjson.dumps(item.body),
            message_id=item.message_id,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=headers,
            type=item.dataset,
            app_id="jghub",
            timestamp=datetime.now(UTC),
        )

    async def _publish(self, exchange: AbstractExchange, item: OutboundItem) -> SendResult:
        opts = self.options
        key = opts.routing_key.replace("{dataset}", item.dataset)
        where = f"exchange {opts.exchange or '(default)'!r}, routing key {key!r}"
        t0 = time.perf_counter()

        def result(ok: bool, status: int | None, permanent: bool, detail: str) -> SendResult:
            ms = (time.perf_counter() - t0) * 1000
            return SendResult(ok, status, permanent, detail[:300], latency_ms=ms)

        try:
            await exchange.publish(
                self._message(item), key, mandatory=opts.mandatory, timeout=opts.timeout
            )
        except amqp_errors.PublishError as exc:  # basic.return: no queue took it
            ret = exc.message.delivery if exc.message is not None else None
            code = getattr(ret, "reply_code", None) or NO_ROUTE
            text = getattr(ret, "reply_text", None) or "NO_ROUTE"
            return result(
                False, code, True, f"unroutable: the broker returned it ({text}); {where}"
            )
        except amqp_errors.DeliveryError as exc:  # basic.nack
            return result(
                False,
                None,
                False,
                f"the broker refused the message ({exc}): a queue is full or the broker is "
                f"short of resources; {where}",
            )
        except _PERMANENT_CHANNEL_ERRORS as exc:
            self._exchange = None  # the channel is closed; the next send opens another
            return result(False, None, True, f"{type(exc).__name__}: {exc}; {where}")
        except amqp_errors.ChannelClosed as exc:
            self._exchange = None
            return result(False, None, False, f"channel closed: {exc}; {where}")
        except TimeoutError:
            return result(False, None, False, f"no confirm within {opts.timeout}s; {where}")
        except (*_BROKER_ERRORS, RuntimeError) as exc:
            self._broken = True
            return result(False, None, False, f"connection lost: {type(exc).__name__}: {exc}")
        return result(True, REPLY_SUCCESS, False, f"confirmed by the broker; {where}")


def _transport_factory(target: str, options: AmqpOptions) -> AmqpTransport:
    return AmqpTransport(target, options)


spec = TransportSpec(
    name="amqp",
    factory=_transport_factory,
    config_model=AmqpOptions,
    description="publish to a RabbitMQ exchange with publisher confirms; message_id = ours",
)


# --------------------------------------------------------------------------- inbound


class AmqpBinding(BaseModel):
    """Bind the consumed queue to an exchange (when the hub declares the queue)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exchange: str = Field(min_length=1)
    routing_key: str = ""


class AmqpSourceOptions(BaseModel):
    """Options of the ``amqp`` source (the ``inbound.source:`` section, minus ``kind``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: SecretStr = Field(description="amqp://user:password@host:5672/vhost (use ${ENV_VAR})")
    queue: str = Field(min_length=1, description="the queue to consume")
    declare: bool = Field(False, description="declare the queue (durable) with arguments")
    arguments: dict[str, Any] = Field(
        default_factory=dict, description="x-arguments when declaring (x-dead-letter-exchange…)"
    )
    bind: list[AmqpBinding] = Field(default_factory=list, description="bindings to declare")
    prefetch: int = Field(200, ge=1, le=65_535, description="unacknowledged deliveries at most")
    batch_max: int = Field(100, ge=1, le=10_000, description="deliveries per ingest")
    linger: float = Field(0.05, ge=0, le=10, description="seconds to wait for more deliveries")
    dataset: str | None = Field(None, description="dataset of every message (default: the one)")
    dataset_header: str | None = Field(None, description="header naming each message's dataset")
    key_header: str | None = Field(None, description="header holding the idempotency key")
    key_field: str | None = Field(None, description="dotted body field holding the key")
    dead_letter_exchange: str | None = Field(
        None, description="where undecodable messages are republished (with x-jghub-reason)"
    )
    dead_letter_routing_key: str | None = Field(None, description="default: the queue name")
    heartbeat: int = Field(30, ge=0, le=3600)
    timeout: float = Field(10.0, gt=0, description="seconds to connect")
    reconnect_delay: float = Field(0.5, gt=0, description="first wait after a lost connection")
    reconnect_max: float = Field(30.0, gt=0, description="longest wait between reconnects")

    _url = field_validator("url")(_check_url)

    @model_validator(mode="after")
    def _one_key_source(self) -> AmqpSourceOptions:
        if self.key_header and self.key_field:
            raise ValueError("give key_header or key_field, not both")
        if self.dataset and self.dataset_header:
            raise ValueError("give dataset or dataset_header, not both")
        if self.batch_max > self.prefetch:
            raise ValueError(f"batch_max ({self.batch_max}) cannot exceed prefetch")
        return self


class _IngestFailed(RuntimeError):
    """The hub could not commit a batch (its store, a governance check ...): nothing of it was
    acked; the source restarts through its runner and the broker delivers the batch again."""


class _Undecodable(Exception):
    """A delivery the hub cannot even read as a record (it is dead-lettered, not ingested)."""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class AmqpSource:
    """Consumes one queue; see the module docstring for the delivery contract.

    ``stats`` counts what it did (``ingested``, ``duplicates``, ``quarantined``,
    ``dead_lettered``, ``redelivered``) for health pages and tests."""

    def __init__(self, system: str, options: AmqpSourceOptions) -> None:
        self.system = system
        self.options = options
        self.stats = dict.fromkeys(
            ("ingested", "duplicates", "quarantined", "dead_lettered", "redelivered"), 0
        )
        self._delay = options.reconnect_delay

    async def run(self, ctx: SourceContext) -> None:
        while not ctx.stopping.is_set():
            try:
                await self._consume(ctx)
            except _BROKER_ERRORS as exc:
                log.warning(
                    "amqp source of %s: %s: %s; reconnecting in %.1f s",
                    self.system,
                    type(exc).__name__,
                    exc,
                    self._delay,
                )
                if await ctx.sleep(self._delay):
                    return
                self._delay = min(self.options.reconnect_max, self._delay * 2)

    async def _consume(self, ctx: SourceContext) -> None:
        opts = self.options
        conn = await aio_pika.connect(
            opts.url.get_secret_value(),
            timeout=opts.timeout,
            heartbeat=opts.heartbeat,
            client_properties={"connection_name": f"jghub inbound {self.system}"},
        )
        inbox: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        relay = asyncio.create_task(self._relay_stop(ctx, inbox))
        try:
            conn.close_callbacks.add(lambda *_: inbox.put_nowait(None))

            async def take(message: AbstractIncomingMessage) -> None:
                inbox.put_nowait(message)

            # the set-up RPCs have no timeout of their own: a broker that accepts the socket
            # and then stalls must not hold the source forever
            async with asyncio.timeout(opts.timeout):
                channel = await conn.channel(publisher_confirms=True)
                channel.close_callbacks.add(lambda *_: inbox.put_nowait(None))
                await channel.set_qos(prefetch_count=opts.prefetch)
                if opts.declare:
                    queue = await channel.declare_queue(
                        opts.queue, durable=True, arguments=opts.arguments or None
                    )
                else:
                    queue = await channel.get_queue(opts.queue, ensure=True)
                for b in opts.bind:
                    await queue.bind(b.exchange, b.routing_key)
                dlx = None
                if opts.dead_letter_exchange is not None:
                    dlx = await channel.get_exchange(opts.dead_letter_exchange, ensure=True)
                await queue.consume(take, no_ack=False)
            self._delay = opts.reconnect_delay  # connected: the next loss starts short again
            log.info("amqp source of %s consuming %s", self.system, opts.queue)
            while True:
                batch = await self._next_batch(inbox, lambda: conn.is_closed or channel.is_closed)
                if batch:
                    await self._handle(ctx, batch, dlx)
                if ctx.stopping.is_set():
                    return
                if batch is None or (not batch and (conn.is_closed or channel.is_closed)):
                    raise ConnectionError("the connection to the broker was closed")
        finally:
            relay.cancel()
            # Deliveries not acknowledged yet go back to the queue with the connection.
            with contextlib.suppress(Exception):
                await conn.close()

    @staticmethod
    async def _relay_stop(
        ctx: SourceContext, inbox: asyncio.Queue[AbstractIncomingMessage | None]
    ) -> None:
        await ctx.stopping.wait()
        inbox.put_nowait(None)

    async def _next_batch(
        self,
        inbox: asyncio.Queue[AbstractIncomingMessage | None],
        closed: Callable[[], bool],
    ) -> list[AbstractIncomingMessage] | None:
        """The next deliveries: waits for one, then up to ``linger`` for more. A short batch
        when woken by a stop or a closed connection; ``None`` if nothing came."""
        while True:
            try:
                # asyncio.timeout, not wait_for: a delivery is either returned or left in the
                # queue, never lost to a timeout race
                async with asyncio.timeout(1.0):
                    first = await inbox.get()
                break
            except TimeoutError:
                if closed():  # a close whose callback we did not see
                    return None
        if first is None:
            return None
        batch = [first]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.linger
        while len(batch) < self.options.batch_max:
            try:
                if inbox.empty():
                    async with asyncio.timeout_at(deadline):
                        nxt = await inbox.get()
                else:
                    nxt = inbox.get_nowait()
            except TimeoutError:
                break
            if nxt is None:
                inbox.put_nowait(None)  # seen again by the caller after this batch
                break
            batch.append(nxt)
        return batch

    def _decode(self, m: AbstractIncomingMessage) -> tuple[Any, str, str | None]:
        """(record, idempotency key, dataset) of one delivery, or :class:`_Undecodable`."""
        opts = self.options
        body = m.body
        enc = (m.content_encoding or "").lower()
        if enc in ("gzip", "deflate"):
            try:
                body = zlib.decompress(body, 47 if enc == "gzip" else 15)
            except zlib.error as exc:
                raise _Undecodable(f"content_encoding {enc} does not decode: {exc}") from None
        elif enc not in ("", "identity", "utf-8", "utf8"):
            raise _Undecodable(f"content_encoding {enc!r} is not supported")
        try:
            record = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _Undecodable(f"the body is not JSON: {exc}") from None
        headers = m.headers or {}
        key: str | None
        if opts.key_header:
            key = _text(headers.get(opts.key_header))
        elif opts.key_field:
            value: Any = record
            for part in opts.key_field.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            key = _text(value)
        else:
            key = m.message_id
        if not key:
            key = "amqp-sha256:" + hashlib.sha256(m.body).hexdigest()
        dataset = opts.dataset
        if opts.dataset_header:
            dataset = _text(headers.get(opts.dataset_header))
            if not dataset:
                raise _Undecodable(f"header {opts.dataset_header!r} (the dataset) is missing")
        return record, key, dataset

    async def _handle(
        self,
        ctx: SourceContext,
        batch: list[AbstractIncomingMessage],
        dlx: AbstractExchange | None,
    ) -> None:
        groups: dict[str | None, list[tuple[AbstractIncomingMessage, Any, str]]] = {}
        refused: list[tuple[AbstractIncomingMessage, str]] = []
        redelivered = sum(1 for m in batch if m.redelivered)
        if redelivered:
            # the broker gives back what a consumer took and did not ack (a crash, a lost
            # connection): the keys make the ones already committed duplicates
            self.stats["redelivered"] += redelivered
            log.info(
                "amqp source of %s: %d of %d deliveries redelivered by the broker",
                self.system,
                redelivered,
                len(batch),
            )
        for m in batch:
            try:
                record, key, dataset = self._decode(m)
            except _Undecodable as exc:
                refused.append((m, str(exc)))
                continue
            groups.setdefault(dataset, []).append((m, record, key))
        for dataset, entries in groups.items():
            first_tp = _text((entries[0][0].headers or {}).get("traceparent"))
            try:
                result = await ctx.ingest(
                    [r for _, r, _ in entries],
                    keys=[k for _, _, k in entries],
                    dataset=dataset,
                    origin=f"amqp queue {self.options.queue}",
                    traceparent=first_tp,
                )
            except UnknownDataset as err:
                refused.extend((m, err.message) for m, _, _ in entries)
                continue
            except Exception as exc:  # not a broker fault: the runner restarts us, logged
                raise _IngestFailed(f"ingest failed: {type(exc).__name__}: {exc}") from exc
            # Committed (stored, recognised as duplicates, or quarantined): only now ack.
            for m, _, _ in entries:
                await m.ack()
            self.stats["ingested"] += len(result.ids) - len(result.duplicates)
            self.stats["duplicates"] += len(result.duplicates)
            self.stats["quarantined"] += len(result.errors)
        for m, reason in refused:
            await self._dead_letter(m, reason, dlx)

    async def _dead_letter(
        self, m: AbstractIncomingMessage, reason: str, dlx: AbstractExchange | None
    ) -> None:
        opts = self.options
        if dlx is None:
            log.error(
                "amqp source of %s: message %s from queue %s cannot be decoded (%s); rejected "
                "without requeue (no dead_letter_exchange configured). First bytes: %r",
                self.system,
                m.message_id,
                opts.queue,
                reason,
                m.body[:200],
            )
            await m.reject(requeue=False)
            self.stats["dead_lettered"] += 1
            return
        copy = aio_pika.Message(
            body=m.body,
            headers={
                **(m.headers or {}),
                "x-jghub-reason": reason[:500],
                "x-jghub-queue": opts.queue,
                "x-jghub-system": self.system,
            },
            message_id=m.message_id,
            content_type=m.content_type,
            content_encoding=m.content_encoding,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        # Confirmed before the original is acked: a crash in between only duplicates it.
        await dlx.publish(copy, opts.dead_letter_routing_key or opts.queue, mandatory=False)
        await m.ack()
        self.stats["dead_lettered"] += 1
        log.warning(
            "amqp source of %s: message %s dead-lettered to %s: %s",
            self.system,
            m.message_id,
            opts.dead_letter_exchange,
            reason,
        )


def _source_factory(system: str, options: AmqpSourceOptions) -> AmqpSource:
    return AmqpSource(system, options)


source_spec = SourceSpec(
    name="amqp",
    factory=_source_factory,
    config_model=AmqpSourceOptions,
    description="consume a RabbitMQ queue; ack after the durable commit; key = message_id",
)
