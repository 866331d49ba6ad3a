"""Signatures for simulated platforms: the checks a platform makes on the hub's signed
requests and the detached signature it puts on its answers.

A platform simulator (``adapters/*/simulator.py``) keeps its own error codes, answer schema and
signature header; what is the same everywhere lives here:

* :class:`RequestVerifier` — the hub's RFC 9421 signature (:func:`security.httpsig.verify_request`)
  checked against the platform's trusted keys, then the nonce against a replay cache
  (:func:`security.replay.check_replay`), both within one freshness window;
* :func:`post_signed` — a push to the hub signed with the platform's key (RFC 9421), the
  network errors kept as the result, never raised;
* :class:`AnswerMemory` — the answers given by ``Idempotency-Key``: a re-sent request gets
  the first answer again;
* :func:`signed_response` — an answer whose body carries a detached signature
  (:func:`security.httpsig.sign_detached`) by the platform's key in the platform's header.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from hub.specs import Signer
from security.replay import MemoryNonceCache, NonceCache, check_replay
from security.signing import KeyResolver

if TYPE_CHECKING:
    from security.httpsig import VerifiedSignature

__all__ = ["AnswerMemory", "Posted", "RequestVerifier", "post_signed", "signed_response"]


class RequestVerifier:
    """Verifies signed requests for one peer and remembers their nonces (a replayed request
    is refused with ``E_REPLAY``, a bad signature with ``E_SIGNATURE``)."""

    def __init__(self, nonces: NonceCache | None = None) -> None:
        self.nonces: NonceCache = nonces if nonces is not None else MemoryNonceCache()

    async def verify(
        self,
        request: web.Request,
        body: bytes,
        *,
        keys: KeyResolver,
        now: float,
        window: float = 300.0,
        url: str | None = None,
    ) -> VerifiedSignature:
        """Verify ``request`` (its ``body`` already read) and record its nonce. ``url`` is the
        URL the signer signed when the request's own URL differs from it."""
        sig = self.check_signature(request, body, keys=keys, now=now, window=window, url=url)
        await self.check_nonce(sig, window)
        return sig

    @staticmethod
    def check_signature(
        request: web.Request,
        body: bytes,
        *,
        keys: KeyResolver,
        now: float,
        window: float = 300.0,
        url: str | None = None,
    ) -> VerifiedSignature:
        """The signature check alone (``E_SIGNATURE``), for a platform that answers a bad
        signature and a replay with different codes."""
        from security.httpsig import verify_request

        return verify_request(
            request.method,
            url if url is not None else str(request.url),
            request.headers,
            body,
            keys=keys,
            now=now,
            window=window,
        )

    async def check_nonce(self, sig: VerifiedSignature, window: float = 300.0) -> None:
        """The replay check alone (``E_REPLAY``): remember the nonce until it is stale."""
        await check_replay(self.nonces, sig.key_id, sig.nonce, sig.created, window)


def signed_response(
    body: bytes,
    *,
    signer: Signer | None,
    header: str,
    created: float,
    status: int = 200,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
    tamper: bool = False,
) -> web.Response:
    """An answer carrying ``body`` and, when ``signer`` is set, its detached signature in
    ``header``. ``tamper`` signs other bytes than those sent (the signature will not verify:
    a simulator's fault on demand)."""
    from security.httpsig import sign_detached

    out = dict(headers or {})
    if signer is not None:
        out[header] = sign_detached(body + b" " if tamper else body, signer, created=created)
    return web.Response(body=body, status=status, content_type=content_type, headers=out)


@dataclass(frozen=True)
class Posted:
    """What a push got: the HTTP status and answer bytes, or (``status`` None) the network
    error or timeout that stopped it."""

    status: int | None
    body: bytes = b""
    error: BaseException | None = None


async def post_signed(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    signer: Signer | None,
    created: float | None = None,
) -> Posted:
    """POST ``body`` to ``url`` with ``headers``, signed last by ``signer`` when there is one
    (RFC 9421 over the final headers; ``created`` is the signing time, default now)."""
    if signer is not None:
        from security.httpsig import sign_request

        sign_request("POST", url, headers, body, signer=signer, created=created)
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            return Posted(resp.status, await resp.read())
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Posted(None, error=exc)


class AnswerMemory:
    """The JSON answers a platform gave, by the request's ``Idempotency-Key``. Which answers
    are kept (e.g. not a refusal, so that a re-send is judged again) is the platform's call."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, bytes]] = {}

    def again(self, request: web.Request) -> web.Response | None:
        """The answer already given to this request's key (a re-sent request), or None."""
        key = request.headers.get("Idempotency-Key")
        if key and key in self.answers:
            status, body = self.answers[key]
            return web.Response(body=body, status=status, content_type="application/json")
        return None

    def keep(self, request: web.Request, status: int, body: bytes) -> None:
        """Remember the answer to this request's key (a request without a key: nothing)."""
        key = request.headers.get("Idempotency-Key")
        if key:
            self.answers[key] = (status, body)
