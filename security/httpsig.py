"""HTTP Message Signatures (RFC 9421) with Content-Digest (RFC 9530), and detached signatures.

HTTP requests are signed and verified with the ``http-message-signatures`` library; our
:class:`hub.specs.Signer` objects are adapted to its algorithm interface, so every registered
signer (including ``sm2-sm3``) works. A signature covers ``@method``, ``@target-uri`` and
``content-digest`` (SHA-256 of the body as sent, before any content decoding) and carries the
parameters ``created``, ``keyid``, ``alg`` and ``nonce``; its label is ``jghub``.

Outbound (a transport)::

    headers = {"Content-Type": "application/json", "Idempotency-Key": message_id}
    sign_request("POST", url, headers, body, signer=keystore.signer(time.time()))
    await session.post(url, data=body, headers=headers)

Inbound (an aiohttp handler)::

    body = await request.read()
    sig = verify_request(request.method, public_url, request.headers, body,
                         keys=keystore, now=time.time())
    await check_replay(nonces, sig.key_id, sig.nonce, sig.created, window=300)
    # then: sig.owner == the system in the path, and == security.tls.peer_identity(...)

``url`` must be the URL the client used (scheme, host, port, path, query, already
percent-encoded); behind a proxy pass the public URL, not ``request.url``. Exactly one
signature per request is accepted. The window check uses the caller's ``now``; replay is
checked by the caller with :mod:`security.replay` (the verifier has no state).

**Detached signatures** (file batches, staging-table rows, SOAP bodies, anything not sent as
a signed HTTP request): :func:`sign_detached` returns one Structured Field Item string::

    :BASE64-SIGNATURE:;created=1767225600;keyid="hub-2026";alg="ed25519"

over the signature base an RFC 9421 signature covering only ``content-digest`` would have::

    "content-digest": sha-256=:<SHA-256 of the payload>:
    "@signature-params": ("content-digest");created=...;keyid="...";alg="..."

The payload is either bytes, signed exactly as given, or a JSON value, signed as its RFC 8785
canonical JSON (:func:`hub.envelope.canonical_json`), so re-serialising a record elsewhere does
not break its signature. **XML** (SOAP, trading-platform files) is signed as the exact bytes
sent, detached; we do not use XML-DSig, whose canonicalisation and transform rules are a
well-known source of signature-wrapping bugs. Receivers must verify the bytes they received,
before parsing. Store the signature string next to the payload (a ``.sig`` file, a column, a
header).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import hmac
import queue
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import http_sf
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureAlgorithm,
    HTTPSignatureKeyResolver,
    InvalidSignature,
)
from http_sf.compat import InnerList, Item
from multidict import CIMultiDict, CIMultiDictProxy

from hub.envelope import canonical_json
from hub.errors import ExpiredError, SignatureError
from hub.specs import Signer
from security.replay import check_fresh
from security.signing import KeyResolver, ResolvedKey

__all__ = [
    "COVERED_COMPONENTS",
    "SIGNATURE_LABEL",
    "BatchVerifier",
    "VerifiedSignature",
    "sign_detached",
    "sign_request",
    "verify_detached",
    "verify_request",
]

#: The label of our signature in ``Signature-Input`` / ``Signature``.
SIGNATURE_LABEL = "jghub"
#: Components every accepted request signature must cover.
COVERED_COMPONENTS = ("@method", "@target-uri", "content-digest")


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """What a verified signature tells: who signed (``key_id`` and the system that owns the
    key, ``None`` for the hub's own keys), with what, when, and the nonce to check for
    replay."""

    key_id: str
    algorithm: str
    created: int
    nonce: str | None
    owner: str | None = None


# --------------------------------------------------------------------------- library adapters


class _SignerAlgorithm(HTTPSignatureAlgorithm):
    """Runs a :class:`Signer` as the library's algorithm; the "key" the library resolves is
    the signer itself."""

    def __init__(self, public_key: Any = None, private_key: Any = None) -> None:
        self._signer: Signer = private_key if private_key is not None else public_key

    def sign(self, message: bytes) -> bytes:
        return self._signer.sign(message)

    def verify(self, signature: bytes, message: bytes) -> None:
        self._signer.verify(message, signature)


@cache
def _algorithm(name: str) -> type[HTTPSignatureAlgorithm]:
    cls_name = "_Alg_" + "".join(c if c.isalnum() else "_" for c in name)
    return type(cls_name, (_SignerAlgorithm,), {"algorithm_id": name})


class _OneKey(HTTPSignatureKeyResolver):
    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    def resolve_public_key(self, key_id: str) -> Any:
        return self._signer if key_id == self._signer.key_id else None

    def resolve_private_key(self, key_id: str) -> Any:
        raise SignatureError("verification only", field="keyid")


class _Verifier(HTTPMessageVerifier):
    # created/expires are checked against the caller's clock (``now``), after verification
    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        return None


@dataclass(slots=True)
class _Message:
    method: str
    url: str
    headers: Any


def _fields(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-cased names, repeated field lines joined as HTTP says (``, ``)."""
    out: dict[str, str] = {}
    items: Iterable[tuple[str, str]] = headers.items()
    for name, value in items:
        key = name.lower()
        out[key] = f"{out[key]}, {value.strip()}" if key in out else value.strip()
    return out


def _created_dt(created: float | None) -> dt.datetime:
    return dt.datetime.fromtimestamp(time.time() if created is None else created, tz=dt.UTC)


# --------------------------------------------------------------------------- requests


def sign_request(
    method: str,
    url: str,
    headers: MutableMapping[str, str],
    body: bytes,
    *,
    signer: Signer,
    nonce: str | None = None,
    created: float | None = None,
) -> None:
    """Sign a request in place: add ``Content-Digest`` (if absent; if present it must match
    ``body``), ``Signature-Input`` and ``Signature`` to ``headers``.

    ``nonce`` defaults to 128 random bits; ``created`` (Unix seconds) to now. ``url`` is the
    absolute, percent-encoded URL the request goes to. Raises :class:`SignatureError` if the
    request cannot be signed (a malformed URL, a Content-Digest that does not match).
    """
    message = _Message(method.upper(), url, headers)
    engine = HTTPMessageSigner(signature_algorithm=_algorithm(signer.algorithm))
    try:
        prepared = engine.prepare(
            message,
            key_id=signer.key_id,
            created=_created_dt(created),
            nonce=nonce if nonce is not None else secrets.token_urlsafe(16),
            label=SIGNATURE_LABEL,
            covered_component_ids=COVERED_COMPONENTS[:2],
            body=bytes(body),
            use_existing_digest=True,
        )
        engine.apply(message, prepared, signer.sign(prepared.signature_base))
    except HTTPMessageSignaturesException as exc:
        raise SignatureError(f"cannot sign the request: {exc}", field="Signature") from None


def _one_signature(fields: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    for name in ("signature-input", "signature"):
        if name not in fields:
            raise SignatureError(f"the request has no {name.title()} header", field=name.title())
    try:
        inputs = http_sf.parse(fields["signature-input"].encode("latin-1"), tltype="dictionary")
    except (ValueError, TypeError, UnicodeEncodeError):
        raise SignatureError(
            "Signature-Input is not a Structured Field Dictionary", field="Signature-Input"
        ) from None
    if not isinstance(inputs, dict) or len(inputs) != 1:
        count = len(inputs) if isinstance(inputs, dict) else 0
        raise SignatureError(
            f"exactly one signature is accepted; Signature-Input has {count}",
            field="Signature-Input",
        )
    label, member = next(iter(inputs.items()))
    if not isinstance(member, tuple) or not isinstance(member[0], list):
        raise SignatureError(
            f"Signature-Input member {label!r} is not an inner list", field="Signature-Input"
        )
    return label, dict(member[1])


_MISSING_FIELD = re.compile(r'Covered header field "([^"]+)" not found')


def _library_error(exc: Exception) -> SignatureError:
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, SignatureError):
            return cause
        cause = cause.__cause__
    text = str(exc)
    low = text.lower()
    missing = _MISSING_FIELD.search(text)
    if "required component" in low:
        field = "Signature-Input"
    elif missing is not None:
        field = missing.group(1)
    elif "content-digest" in low:
        field = "Content-Digest"
    else:
        field = "Signature"
    return SignatureError(f"signature rejected: {text}", field=field)


# --------------------------------------------------------------------------- fast path
#
# The signatures this hub issues (sign_request) and asks its sources for have one fixed shape:
#
#   Signature-Input: jghub=("@method" "@target-uri" "content-digest");created=1767225600;\
#                    keyid="k";alg="ed25519";nonce="..."
#   Signature:       jghub=:BASE64:
#   Content-Digest:  sha-256=:BASE64:
#
# For exactly that shape (serialized canonically, one field line each, a plain absolute URL)
# the signature base is built here with a few regular expressions instead of the library's
# Structured Field parser (pure Python http_sf: most of the cost of a verification). Whatever
# does not match, and every check that fails here, is handed to the library, so its answer and
# its errors stay the reference; tests/security/test_httpsig_fast.py checks that both agree.

_SF_KEY = r"[a-z*][a-z0-9_\-.*]*"
_SF_STRING = r'"[\x20\x21\x23-\x5b\x5d-\x7e]*"'  # printable ASCII, no quote or backslash
_FAST_INPUT = re.compile(
    rf'({_SF_KEY})=(\("@method" "@target-uri" "content-digest"\)'
    rf"((?:;{_SF_KEY}=(?:[0-9]{{1,15}}|{_SF_STRING}))*))"
)
_FAST_PARAM = re.compile(rf"(?:;({_SF_KEY})=([0-9]{{1,15}}|{_SF_STRING}))")
_FAST_SIGNATURE = re.compile(rf"({_SF_KEY})=:([A-Za-z0-9+/]+={{0,2}}):")
_FAST_DIGEST = re.compile(r"sha-256=:([A-Za-z0-9+/]{43}=):")
_URL_CHARS = r"(?:[A-Za-z0-9._~!$&'()*+,;=:@/\-]|%[0-9A-Fa-f]{2})"
_FAST_URL = re.compile(
    rf"https?://(?:[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?/{_URL_CHARS}*"
    rf"(?:\?(?:{_URL_CHARS}|\?)*)?"
)
_FAST_TYPES = {"created": int, "expires": int, "keyid": str, "alg": str, "nonce": str}
#: the parameters exactly as sign_request writes them (this order, these four): read with one
#: match instead of _FAST_PARAM's loop, which gives the same dict for them
_FAST_OWN_PARAMS = re.compile(
    rf";created=([0-9]{{1,15}});keyid=({_SF_STRING});alg=({_SF_STRING});nonce=({_SF_STRING})"
)
#: URLs already matched against _FAST_URL (a hub sees few distinct ones; bounded)
_FAST_URLS: dict[str, bool] = {}


@dataclass(slots=True)
class _FastSignature:
    params: dict[str, Any]
    signature: bytes
    digest: bytes
    base: bytes

    def verifies(self, body: bytes, signer: Signer) -> bool:
        """The digest matches ``body`` and the signature the base; False sends the request
        to the library (which then says precisely what is wrong)."""
        if not hmac.compare_digest(hashlib.sha256(body).digest(), self.digest):
            return False
        try:
            signer.verify(self.base, self.signature)
        except Exception:  # the library repeats the check and words the refusal
            return False
        return True


def _fast_profile(method: str, url: str, fields: Mapping[str, str]) -> _FastSignature | None:
    """The parsed signature if the request has exactly our profile's shape, else None."""
    si, sig, digest = (
        fields.get("signature-input"),
        fields.get("signature"),
        fields.get("content-digest"),
    )
    if si is None or sig is None or digest is None:
        return None
    url_ok = _FAST_URLS.get(url)
    if url_ok is None:
        if len(_FAST_URLS) >= 1024:
            _FAST_URLS.clear()
        url_ok = _FAST_URLS[url] = _FAST_URL.fullmatch(url) is not None
    if not url_ok:
        return None
    m_in, m_sig, m_dig = (
        _FAST_INPUT.fullmatch(si),
        _FAST_SIGNATURE.fullmatch(sig),
        _FAST_DIGEST.fullmatch(digest),
    )
    if m_in is None or m_sig is None or m_dig is None or m_in[1] != m_sig[1]:
        return None
    params: dict[str, Any]
    own = _FAST_OWN_PARAMS.fullmatch(m_in[3])
    if own is not None:
        params = {
            "created": int(own[1]),
            "keyid": own[2][1:-1],
            "alg": own[3][1:-1],
            "nonce": own[4][1:-1],
        }
    else:
        params = {}
        for key, raw in _FAST_PARAM.findall(m_in[3]):
            want = _FAST_TYPES.get(key)
            value: Any = raw[1:-1] if raw[0] == '"' else int(raw)
            if key in params or want is None or type(value) is not want:
                return None  # repeated, unknown (e.g. tag) or mistyped: left to the library
            params[key] = value
    try:  # base64.b64decode(..., validate=True) without its Python wrapper
        signature = binascii.a2b_base64(m_sig[2], strict_mode=True)
        digest_bytes = binascii.a2b_base64(m_dig[1], strict_mode=True)
    except ValueError:
        return None
    if not signature or len(digest_bytes) != 32:
        return None
    base = (
        f'"@method": {method.upper()}\n"@target-uri": {url}\n"content-digest": {digest}\n'
        f'"@signature-params": {m_in[2]}'
    )
    return _FastSignature(params, signature, digest_bytes, base.encode())


_PROFILE_FIELDS = ("signature-input", "signature", "content-digest")


def _profile_fields(headers: Mapping[str, str]) -> dict[str, str] | None:
    """The three fields the fast profile reads, as :func:`_fields` gives them, taken straight
    from aiohttp's case-insensitive headers when each came in one field line (else None: the
    caller builds all of :func:`_fields`, whose joined repeats the profile never matches)."""
    if not isinstance(headers, (CIMultiDictProxy, CIMultiDict)):
        return None
    out: dict[str, str] = {}
    for name in _PROFILE_FIELDS:
        values = headers.getall(name, ())
        if len(values) != 1:
            return None
        out[name] = values[0].strip()
    return out


@dataclass(slots=True)
class _Pending:
    """A request whose signature is parsed and whose key is resolved, its signature and
    digest not checked yet (see :func:`_prepare` and :func:`_finish`)."""

    method: str
    url: str
    headers: Mapping[str, str]
    params: dict[str, Any]
    key_id: str
    created: int
    nonce: str | None
    resolved: ResolvedKey
    profile: _FastSignature | None


def _prepare(
    method: str,
    url: str,
    headers: Mapping[str, str],
    keys: KeyResolver,
    now: float,
    fast: bool,
) -> _Pending:
    """The first half of :func:`verify_request`: parse the signature (the fast profile or the
    library's parser), check its parameters and resolve its key at ``now``."""
    few = _profile_fields(headers) if fast else None
    profile = _fast_profile(method, url, few) if few is not None else None
    if profile is not None:
        params = profile.params
    else:
        fields = _fields(headers)
        if fast and few is None:
            profile = _fast_profile(method, url, fields)
        params = profile.params if profile is not None else _one_signature(fields)[1]
    key_id = params.get("keyid")
    if not isinstance(key_id, str) or not key_id:
        raise SignatureError("the signature has no keyid parameter", field="keyid")
    created = params.get("created")
    if type(created) is not int:
        raise SignatureError("the signature has no integer created parameter", field="created")
    nonce = params.get("nonce")
    if nonce is not None and not isinstance(nonce, str):
        raise SignatureError("the nonce parameter must be a string", field="nonce")
    resolved = keys.resolve_key(key_id, now)
    signer = resolved.signer
    alg = params.get("alg")
    if alg is not None and alg != signer.algorithm:
        raise SignatureError(
            f"alg {alg!r} does not match key {key_id!r} ({signer.algorithm})", field="alg"
        )
    return _Pending(method, url, headers, params, key_id, created, nonce, resolved, profile)


def _finish(
    pending: _Pending, fast_verified: bool, body: bytes, now: float, window: float
) -> VerifiedSignature:
    """The second half of :func:`verify_request`, once the fast path said whether the digest
    and the signature hold (``fast_verified``; always False outside the fast profile)."""
    signer = pending.resolved.signer
    if not fast_verified:
        # Anything outside our own profile, and every failure of the fast path, goes through
        # the library, which gives the answer (and the error) of record.
        verifier = _Verifier(
            signature_algorithm=_algorithm(signer.algorithm), key_resolver=_OneKey(signer)
        )
        try:
            verifier.verify(
                _Message(pending.method.upper(), pending.url, pending.headers),
                max_age=None,
                require_components=COVERED_COMPONENTS,
                body=bytes(body),
            )
        except (InvalidSignature, HTTPMessageSignaturesException) as exc:
            raise _library_error(exc) from None
    check_fresh(pending.created, now, window)
    expires = pending.params.get("expires")
    if type(expires) is int and now > expires:
        raise ExpiredError(f"signature expired {now - expires:.0f} s ago", field="expires")
    return VerifiedSignature(
        pending.key_id, signer.algorithm, pending.created, pending.nonce, pending.resolved.owner
    )


def verify_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    keys: KeyResolver,
    now: float,
    window: float = 300.0,
    fast: bool = True,
) -> VerifiedSignature:
    """Verify the request's RFC 9421 signature and its Content-Digest against ``body``.

    A request in the hub's own signature profile is verified by the fast path (see
    :func:`_fast_profile`); ``fast=False`` always uses the library (for comparisons).

    Raises :class:`SignatureError` (``E_SIGNATURE``) for a missing or malformed signature, an
    unknown, revoked or expired key, a wrong ``alg``, a component not covered (``@method``,
    ``@target-uri``, ``content-digest`` are required), a covered header missing, a digest
    that does not match the body, or a signature that does not verify; and
    :class:`ExpiredError` (``E_EXPIRED``) when ``created`` is more than ``window`` seconds
    from ``now`` or ``expires`` has passed. Replay (the nonce) is the caller's check.
    """
    pending = _prepare(method, url, headers, keys, now, fast)
    profile = pending.profile
    ok = profile is not None and profile.verifies(body, pending.resolved.signer)
    return _finish(pending, ok, body, now, window)


# --------------------------------------------------------------------------- batches
#
# An Ed25519 verification (libsodium) costs about 60 µs, most of a signed request's CPU on the
# event loop. PyNaCl's call releases the GIL, so it can run on another core while the loop
# serves other requests. A hand-off per request would eat much of that gain (a queue, a wake-up
# of the thread and one of the loop), so :class:`BatchVerifier` collects the signatures that
# reach verification in one iteration of the loop and checks them in one job on its thread:
# one hand-off per batch. A lone signature is checked on the loop at once (as
# ``verify_request`` does), which is cheaper than a hand-off and adds no latency at low load.


def _verifies_safely(profile: _FastSignature, body: bytes, signer: Signer) -> bool:
    """``profile.verifies`` for the verification thread: any surprise is a plain False (the
    request then goes through the library on the loop, which gives the answer of record)."""
    try:
        return profile.verifies(body, signer)
    except Exception:
        return False


_Job = tuple[_FastSignature, bytes, Signer, "asyncio.Future[bool]"]


def _deliver(batch: list[_Job], results: list[bool]) -> None:
    for (_, _, _, fut), ok in zip(batch, results, strict=True):
        if not fut.done():  # a request cancelled meanwhile (its client went away)
            fut.set_result(ok)


def _verification_thread(jobs: queue.SimpleQueue[Any]) -> None:
    while True:
        job = jobs.get()
        if job is None:
            return
        loop, batch = job
        results = [_verifies_safely(p, b, s) for p, b, s, _ in batch]
        # RuntimeError: the loop closed meanwhile, nobody waits for these any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_deliver, batch, results)


class BatchVerifier:
    """:func:`verify_request` for an event loop: the same checks, answers and errors, with
    the digest and signature checks of requests in the fast profile whose key releases the
    GIL while verifying (``Signer.verify_releases_gil``, Ed25519 with libsodium) done in
    batches on a thread of their own (see the comment above).

    Everything else (parsing, key resolution, the library fallback for a failed or unusual
    signature, freshness) stays on the loop, in the same order as in ``verify_request``; only
    the yes/no of ``_FastSignature.verifies`` comes from the thread. ``lone_inline``: a batch
    of one is checked on the loop (False: always on the thread; for tests). The thread starts
    with the first batch and ends with :meth:`close`."""

    def __init__(self, *, lone_inline: bool = True) -> None:
        self.lone_inline = lone_inline
        #: batches handed to the thread and signatures checked there (monitoring, tests)
        self.batches = 0
        self.offloaded = 0
        self._pending: list[_Job] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: queue.SimpleQueue[Any] | None = None
        self._thread: threading.Thread | None = None

    async def verify_request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        keys: KeyResolver,
        now: float,
        window: float = 300.0,
    ) -> VerifiedSignature:
        """See :func:`verify_request` (``now`` is the moment the request is judged at, also
        when its check waits for the batch)."""
        pending = _prepare(method, url, headers, keys, now, True)
        profile = pending.profile
        signer = pending.resolved.signer
        if profile is None:
            ok = False
        elif getattr(signer, "verify_releases_gil", False):
            ok = await self._verifies(profile, body, signer)
        else:
            ok = profile.verifies(body, signer)
        return _finish(pending, ok, body, now, window)

    def _verifies(
        self, profile: _FastSignature, body: bytes, signer: Signer
    ) -> asyncio.Future[bool]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        if self._pending and self._loop is not loop:
            old = self._loop
            if old is not None and not old.is_closed():  # a batch of another running loop is
                fut.set_result(profile.verifies(body, signer))  # open (never in the hub)
                return fut
            self._pending = []  # left by a loop closed before its flush: nobody waits for it
        if not self._pending:
            self._loop = loop
            loop.call_soon(self._flush)  # after the requests already runnable in this iteration
        self._pending.append((profile, body, signer, fut))
        return fut

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        loop, self._loop = self._loop, None
        if not batch or loop is None:
            return
        if len(batch) == 1 and self.lone_inline:
            _deliver(batch, [_verifies_safely(p, b, s) for p, b, s, _ in batch])
            return
        jobs = self._jobs
        if jobs is None or self._thread is None or not self._thread.is_alive():
            jobs = self._jobs = queue.SimpleQueue()
            self._thread = threading.Thread(
                target=_verification_thread, args=(jobs,), name="jghub-verify", daemon=True
            )
            try:
                self._thread.start()
            except RuntimeError:  # no thread to be had (resource limits): check them here
                self._jobs = self._thread = None
                _deliver(batch, [_verifies_safely(p, b, s) for p, b, s, _ in batch])
                return
        self.batches += 1
        self.offloaded += len(batch)
        jobs.put((loop, batch))

    def close(self) -> None:
        """End the verification thread (after the batches queued before); a later batch
        starts a new one."""
        if self._jobs is not None:
            self._jobs.put(None)
        self._jobs = self._thread = None


# --------------------------------------------------------------------------- detached


def _payload_bytes(payload: Any) -> bytes:
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    return canonical_json(payload)


def _detached_base(data: bytes, params: Mapping[str, Any]) -> bytes:
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    covered = InnerList([Item("content-digest")])
    covered.params.update(params)
    return f'"content-digest": sha-256=:{digest}:\n"@signature-params": {covered}'.encode()


def sign_detached(
    payload: Any, signer: Signer, *, created: float | None = None, nonce: str | None = None
) -> str:
    """A detached signature of ``payload`` (bytes as given, or a JSON value as RFC 8785
    canonical JSON); see the module docstring for the format."""
    params: dict[str, Any] = {
        "created": int(time.time() if created is None else created),
        "keyid": signer.key_id,
        "alg": signer.algorithm,
    }
    if nonce is not None:
        params["nonce"] = nonce
    signature = signer.sign(_detached_base(_payload_bytes(payload), params))
    item = Item(signature)
    item.params.update(params)
    return str(item)


def verify_detached(
    payload: Any,
    signature: str,
    *,
    keys: KeyResolver,
    now: float,
    window: float | None = None,
) -> VerifiedSignature:
    """Verify a :func:`sign_detached` signature of ``payload``. The key must be valid at
    ``now``; with ``window`` set, ``created`` must also be within ``window`` s of ``now``.
    Raises :class:`SignatureError` or :class:`ExpiredError`."""
    try:
        parsed: Any = http_sf.parse(signature.encode("ascii"), tltype="item")
        value, raw_params = parsed
    except (ValueError, TypeError, UnicodeEncodeError):
        raise SignatureError(
            "the detached signature is not a Structured Field Item", field="signature"
        ) from None
    params = dict(raw_params)
    if not isinstance(value, bytes) or not value:
        raise SignatureError("the detached signature holds no signature bytes", field="signature")
    unknown = set(params) - {"created", "keyid", "alg", "nonce"}
    if unknown:
        raise SignatureError(f"unknown parameters {sorted(unknown)}", field="signature")
    key_id, created, alg = params.get("keyid"), params.get("created"), params.get("alg")
    if not isinstance(key_id, str) or type(created) is not int or not isinstance(alg, str):
        raise SignatureError(
            "the detached signature needs keyid, created and alg parameters", field="signature"
        )
    resolved = keys.resolve_key(key_id, now)
    if alg != resolved.signer.algorithm:
        raise SignatureError(
            f"alg {alg!r} does not match key {key_id!r} ({resolved.signer.algorithm})",
            field="alg",
        )
    resolved.signer.verify(_detached_base(_payload_bytes(payload), params), value)
    if window is not None:
        check_fresh(created, now, window)
    nonce = params.get("nonce")
    return VerifiedSignature(
        key_id, alg, created, nonce if isinstance(nonce, str) else None, resolved.owner
    )
