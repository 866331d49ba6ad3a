"""``webhook``: push delivered records to a subscriber's URL as signed JSON.

One target system is one subscriber (several subscribers are several system files, each with its
own retry budget, circuit and dead letters). Every request carries:

* ``Idempotency-Key``: the message id (per record) or a batch id; subscribers de-duplicate on
  it (on each event's ``id`` in a batch), which makes at-least-once exactly-once in effect;
* ``X-Jghub-Event``: the dataset (a batch with several datasets names them comma-separated);
* ``X-Jghub-Signature: t=<unix seconds>,v1=<hex>``: HMAC-SHA256 with the subscriber's secret
  over the canonical string ``<t>.<Idempotency-Key>.<hex SHA-256 of the body>``
  (:func:`signature_base`); subscribers check it with :func:`verify_webhook`, which also refuses
  a timestamp outside the replay window. Each attempt is signed afresh, so a retry is never stale;
* ``Content-Digest: sha-256=:<base64>:`` (RFC 9530) and ``traceparent``.

Per-record mode posts the record itself. Batch mode (``max_batch`` > 1) posts
``{"events": [{"id", "event", "data"}, ...]}`` with ``X-Jghub-Batch: <n>``; a 2xx answer
acknowledges all, unless its JSON carries ``"results": [{"ok", "status", "error"}, ...]`` with
one entry per event, honoured event by event (as ``http_json`` does).

Status classification is ``http_json``'s (:func:`~hub.transports.http_json.classify_status`):
2xx delivered; 408, 425, 429 and 5xx transient (``Retry-After`` kept); other 4xx — a 401 for a
signature the subscriber refuses, a 410 Gone for a subscription withdrawn — permanent.

With ``sign: true`` every request is also signed with RFC 9421 HTTP Message Signatures and the
hub's own key (``keys.own`` in the hub file), exactly as ``http_json`` does; a subscriber that
verifies those needs no shared secret, so ``secret`` is then optional.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, model_validator

from hub.errors import ExpiredError, SignatureError
from hub.specs import OutboundItem, SendResult, TransportSpec
from hub.transports import SignsWithHubKey
from hub.transports.http_json import classify_status, post_once

__all__ = [
    "BATCH_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "VerifiedWebhook",
    "WebhookOptions",
    "WebhookTransport",
    "sign_webhook",
    "signature_base",
    "spec",
    "verify_webhook",
]

SIGNATURE_HEADER = "X-Jghub-Signature"
EVENT_HEADER = "X-Jghub-Event"
BATCH_HEADER = "X-Jghub-Batch"
#: shortest secret accepted: 16 bytes is 128 bits for HMAC-SHA256
MIN_SECRET_LENGTH = 16


class WebhookOptions(BaseModel):
    """Options of the ``webhook`` transport (the ``outbound:`` section of a subscriber's file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: AnyHttpUrl
    secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key shared with the subscriber (use ${ENV_VAR})"
    )
    sign: bool = Field(
        False,
        description="also sign every request (RFC 9421 + Content-Digest) with the hub's own "
        "key from the keys: section",
    )
    events: list[str] = Field(
        default_factory=list,
        description="datasets the subscriber takes; empty = every dataset routed to it",
    )
    max_batch: int = Field(1, ge=1, le=1000, description="events per request; 1 = per record")
    concurrency: int = Field(8, ge=1, le=256, description="requests in flight to the subscriber")
    timeout: float = Field(10.0, gt=0, description="seconds for one request, connect included")
    headers: dict[str, str] = Field(default_factory=dict, description="static extra headers")

    @model_validator(mode="after")
    def _one_way_to_sign(self) -> WebhookOptions:
        if self.secret is None:
            if not self.sign:
                raise ValueError(
                    "secret is required (the key the subscriber verifies with), "
                    "unless sign: true signs with the hub's own key"
                )
        elif len(self.secret.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"secret must be at least {MIN_SECRET_LENGTH} characters")
        return self


# --------------------------------------------------------------------------- signing


def signature_base(timestamp: int, key: str, body: bytes) -> bytes:
    """The canonical string the HMAC covers: ``<t>.<Idempotency-Key>.<hex sha256(body)>``."""
    return f"{timestamp}.{key}.{hashlib.sha256(body).hexdigest()}".encode()


def _as_bytes(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def _hmac_hex(secret: str | bytes, timestamp: int, key: str, body: bytes) -> str:
    return hmac.new(_as_bytes(secret), signature_base(timestamp, key, body), "sha256").hexdigest()


def sign_webhook(body: bytes, key: str, secret: str | bytes, timestamp: int) -> str:
    """The ``X-Jghub-Signature`` value for ``body`` sent with ``Idempotency-Key: key``."""
    return f"t={timestamp},v1={_hmac_hex(secret, timestamp, key, body)}"


@dataclass(frozen=True, slots=True)
class VerifiedWebhook:
    """What :func:`verify_webhook` vouches for."""

    key: str
    event: str
    timestamp: int


def _header(headers: Mapping[str, str], name: str) -> str | None:
    got = headers.get(name)
    if got is not None:
        return got
    low = name.lower()  # a plain dict is not case-insensitive like aiohttp's headers
    return next((v for k, v in headers.items() if k.lower() == low), None)


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes,
    secret: str | bytes | Sequence[str | bytes],
    now: float,
    tolerance: float = 300,
) -> VerifiedWebhook:
    """Check a webhook request as a subscriber receives it.

    ``secret`` may be a list (while a subscriber rotates keys, any of them verifies). Raises
    :class:`~hub.errors.SignatureError` (``E_SIGNATURE``) when the signature is missing,
    malformed or does not verify, and :class:`~hub.errors.ExpiredError` (``E_EXPIRED``) when it
    verifies but its timestamp is more than ``tolerance`` seconds from ``now`` (a replay).
    """
    raw = _header(headers, SIGNATURE_HEADER)
    if not raw:
        raise SignatureError(f"the {SIGNATURE_HEADER} header is missing", field=SIGNATURE_HEADER)
    key = _header(headers, "Idempotency-Key")
    if not key:
        raise SignatureError(
            "the Idempotency-Key header is missing (the signature covers it)",
            field="Idempotency-Key",
        )
    timestamp: int | None = None
    given: list[str] = []
    for part in raw.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            if not (value.isascii() and value.isdigit() and len(value) <= 12):
                raise SignatureError(
                    f"{SIGNATURE_HEADER} t={value[:20]!r} is not a unix time",
                    field=f"{SIGNATURE_HEADER}.t",
                )
            timestamp = int(value)
        elif name == "v1":
            given.append(value)
    if timestamp is None or not given:
        raise SignatureError(
            f"{SIGNATURE_HEADER} must read t=<unix seconds>,v1=<hex>", field=SIGNATURE_HEADER
        )
    secrets = [secret] if isinstance(secret, (str, bytes)) else list(secret)
    expected = [_hmac_hex(s, timestamp, key, body) for s in secrets]
    if not any(hmac.compare_digest(e, g) for e in expected for g in given):
        raise SignatureError(
            f"{SIGNATURE_HEADER} v1 does not verify for this body and Idempotency-Key "
            "(wrong secret, or the request was altered)",
            field=f"{SIGNATURE_HEADER}.v1",
        )
    if abs(now - timestamp) > tolerance:
        raise ExpiredError(
            f"{SIGNATURE_HEADER} t={timestamp} is {abs(now - timestamp):.0f} s from now; "
            f"at most {tolerance:.0f} s are accepted (a replayed or delayed request)",
            field=f"{SIGNATURE_HEADER}.t",
        )
    return VerifiedWebhook(key, _header(headers, EVENT_HEADER) or "", timestamp)


# --------------------------------------------------------------------------- transport


class WebhookTransport(SignsWithHubKey):
    """Signs and posts deliveries to one subscriber; one ``ClientSession``, opened in
    :meth:`start`. ``clock`` gives the signing time (unix seconds)."""

    def __init__(
        self, target: str, options: WebhookOptions, clock: Callable[[], float] = time.time
    ) -> None:
        self.target = target
        self.options = options
        self.url = str(options.url)
        self.max_batch = options.max_batch
        self.concurrency = options.concurrency
        self.clock = clock
        self._secret = options.secret.get_secret_value().encode() if options.secret else None
        self._events = frozenset(options.events)
        self._session: aiohttp.ClientSession | None = None
        self._static = {
            "Content-Type": "application/json",
            "User-Agent": "jghub-webhook",
            **options.headers,
        }

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.concurrency),
            timeout=aiohttp.ClientTimeout(total=self.options.timeout),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, items: Sequence[OutboundItem]) -> list[SendResult]:
        results: list[SendResult | None] = [None] * len(items)
        wanted: list[int] = []
        for i, item in enumerate(items):
            if self._events and item.dataset not in self._events:
                results[i] = SendResult(
                    True,
                    None,
                    detail=f"not sent: subscriber {self.target} does not take "
                    f"{item.dataset!r} (events filter)",
                )
            else:
                wanted.append(i)
        if wanted:
            chosen = [items[i] for i in wanted]
            if self.max_batch == 1:
                got = list(await asyncio.gather(*(self._send_one(i) for i in chosen)))
            else:
                got = await self._send_batch(chosen)
            for i, res in zip(wanted, got, strict=True):
                results[i] = res
        return [r for r in results if r is not None]

    def _signed(
        self, body: bytes, key: str, event: str, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        h = {**self._static, **(extra or {})}  # first: nothing may override what is signed
        h["Idempotency-Key"] = key
        h[EVENT_HEADER] = event
        if self._secret is not None:
            h[SIGNATURE_HEADER] = sign_webhook(body, key, self._secret, int(self.clock()))
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        h["Content-Digest"] = f"sha-256=:{digest}:"
        return h

    async def _post(self, body: bytes, headers: dict[str, str]) -> tuple[SendResult, Any]:
        assert self._session is not None, "transport not started"
        signer = self._signer() if self._signer is not None else None
        return await post_once(
            self._session, self.url, body, headers, timeout=self.options.timeout, signer=signer
        )

    async def _send_one(self, item: OutboundItem) -> SendResult:
        body = orjson.dumps(item.body)
        headers = self._signed(body, item.message_id, item.dataset, item.headers)
        headers["X-Jghub-Attempt"] = str(item.attempt)
        if item.traceparent:
            headers["traceparent"] = item.traceparent
        res, _ = await self._post(body, headers)
        return res

    async def _send_batch(self, items: Sequence[OutboundItem]) -> list[SendResult]:
        body = orjson.dumps(
            {"events": [{"id": i.message_id, "event": i.dataset, "data": i.body} for i in items]}
        )
        # The same events make the same batch id, whatever attempt carries them.
        ids = "\n".join(i.message_id for i in items).encode()
        key = "batch-" + hashlib.sha256(ids).hexdigest()[:32]
        events = ",".join(sorted({i.dataset for i in items}))
        headers = self._signed(body, key, events)
        headers[BATCH_HEADER] = str(len(items))
        if items[0].traceparent:
            headers["traceparent"] = items[0].traceparent
        res, parsed = await self._post(body, headers)
        per_item = parsed.get("results") if isinstance(parsed, dict) else None
        if not res.ok or not isinstance(per_item, list) or len(per_item) != len(items):
            return [res] * len(items)
        out: list[SendResult] = []
        for r in per_item:
            if not isinstance(r, dict):  # an answer we cannot read is no receipt
                detail = f"unreadable result {r!r}"[:300]
                out.append(SendResult(False, res.status, False, detail, latency_ms=res.latency_ms))
            elif r.get("ok") is True:
                out.append(res)
            else:
                raw_status = r.get("status")
                status = raw_status if type(raw_status) is int and 100 <= raw_status < 600 else 422
                ok, permanent = classify_status(status)
                detail = str(r.get("error", ""))[:300]
                out.append(SendResult(ok, status, permanent, detail, latency_ms=res.latency_ms))
        return out


def _factory(target: str, options: WebhookOptions) -> WebhookTransport:
    return WebhookTransport(target, options)


spec = TransportSpec(
    name="webhook",
    factory=_factory,
    config_model=WebhookOptions,
    description="push signed JSON (HMAC-SHA256, X-Jghub-Signature) to a subscriber's URL",
)
