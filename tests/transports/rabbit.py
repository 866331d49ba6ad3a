"""Test helpers for the real RabbitMQ on 127.0.0.1:5672 (guest/guest): unique names per test,
deleted afterwards, and a TCP proxy that can cut the hub off the broker (a broker outage as the
hub sees it, without restarting the broker other tests share)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

AMQP_URL = os.environ.get("JGHUB_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


@dataclass
class Broker:
    """One test's view of the broker: a connection, a channel and the names it created."""

    connection: AbstractRobustConnection
    channel: AbstractChannel
    prefix: str
    queues: list[str] = field(default_factory=list)
    exchanges: list[str] = field(default_factory=list)

    def name(self, what: str) -> str:
        return f"{self.prefix}.{what}"

    async def exchange(self, what: str, kind: str = "topic") -> str:
        name = self.name(what)
        await self.channel.declare_exchange(
            name, aio_pika.ExchangeType(kind), durable=True, auto_delete=False
        )
        self.exchanges.append(name)
        return name

    async def queue(
        self,
        what: str,
        *,
        bind: tuple[str, str] | None = None,
        arguments: dict[str, object] | None = None,
    ) -> str:
        name = self.name(what)
        q = await self.channel.declare_queue(name, durable=True, arguments=arguments)  # type: ignore[arg-type]
        if bind is not None:
            await q.bind(bind[0], bind[1])
        self.queues.append(name)
        return name

    async def publish(
        self,
        queue: str,
        body: bytes,
        *,
        message_id: str | None = None,
        headers: dict[str, object] | None = None,
        content_encoding: str | None = None,
    ) -> None:
        await self.channel.default_exchange.publish(
            aio_pika.Message(
                body,
                message_id=message_id,
                headers=headers,  # type: ignore[arg-type]
                content_type="application/json",
                content_encoding=content_encoding,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=queue,
        )

    async def ready(self, queue: str) -> int:
        """Messages ready in ``queue`` (not counting deliveries awaiting an ack)."""
        # the raw channel: a robust channel answers a re-declaration from its cache
        raw = await self.channel.get_underlay_channel()
        ok = await raw.queue_declare(queue, passive=True)
        return int(ok.message_count or 0)

    async def drain(self, queue: str) -> list[AbstractIncomingMessage]:
        """Take and ack every ready message of ``queue``."""
        q = await self.channel.get_queue(queue)
        out = []
        while (m := await q.get(fail=False, no_ack=False)) is not None:
            await m.ack()
            out.append(m)
        return out


@contextlib.asynccontextmanager
async def broker() -> AsyncIterator[Broker]:
    """Connect (failing, not skipping, when RabbitMQ is down) and clean up after the test."""
    try:
        conn = await aio_pika.connect_robust(AMQP_URL, timeout=10)
    except Exception as exc:
        raise AssertionError(
            f"RabbitMQ must run on {AMQP_URL} for these tests (rabbitmq-server -detached): {exc}"
        ) from exc
    channel = await conn.channel()
    b = Broker(conn, channel, f"jghub-test.{uuid.uuid4().hex[:10]}")
    try:
        yield b
    finally:
        ch = await conn.channel()
        for q in b.queues:
            with contextlib.suppress(Exception):
                await ch.queue_delete(q)
        for x in b.exchanges:
            with contextlib.suppress(Exception):
                await ch.exchange_delete(x)
        await conn.close()


class TcpProxy:
    """Forwards 127.0.0.1:<port> to the broker; :meth:`cut` drops every connection and refuses
    new ones until :meth:`restore` (what the hub sees of a broker restart)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5672) -> None:
        self.upstream = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self.connections = 0

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for w in list(self._pipes):
            w.transport.abort()
        self._pipes.clear()
        if server is not None:
            await server.wait_closed()

    async def restore(self) -> None:
        await self.start()

    async def stop(self) -> None:
        await self.cut()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._pipes.update((writer, up_w))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()
                self._pipes.discard(dst)

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
