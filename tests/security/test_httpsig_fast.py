"""The fast verification path for the hub's own RFC 9421 profile agrees with the library.

``verify_request`` parses requests signed the way ``sign_request`` signs them with a small
strict parser and builds the signature base itself; anything else goes to the
``http-message-signatures`` library. Every case here is verified both ways (``fast=True``,
``fast=False``) and must give the same result or the same error (code, field, message).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from http_message_signatures import HTTPMessageSigner
from http_message_signatures.digests import ContentDigest

from hub.errors import HubError
from security.httpsig import (
    _algorithm,
    _fast_profile,
    _fields,
    _Message,
    sign_request,
    verify_request,
)
from tests.security.test_httpsig import BODY, NOW, URL, _signed, _store
from tests.security.test_sign_algorithms import _algorithms, key_of


def _both(
    headers: dict[str, str],
    body: bytes = BODY,
    *,
    url: str = URL,
    method: str = "POST",
    **kw: object,
) -> tuple[object, object]:
    """The outcome of both paths: the VerifiedSignature, or (code, field, message)."""
    out = []
    for fast in (True, False):
        args: dict[str, object] = {"keys": _store(), "now": NOW, **kw}
        try:
            out.append(verify_request(method, url, headers, body, fast=fast, **args))  # type: ignore[arg-type]
        except HubError as err:
            out.append((err.code, err.field, err.message))
    return out[0], out[1]


def _is_fast(headers: dict[str, str], url: str = URL, method: str = "POST") -> bool:
    return _fast_profile(method, url, _fields(headers)) is not None


@pytest.mark.parametrize("algorithm", _algorithms())
def test_our_own_signatures_take_the_fast_path_and_agree(algorithm: str) -> None:
    headers = _signed(algorithm, nonce="n-1")
    assert _is_fast(headers)
    fast, lib = _both(headers, keys=_store(algorithm), now=NOW + 10)
    assert fast == lib
    assert getattr(fast, "key_id", None) == f"test-{algorithm}"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/v1/systems/dept-a/records",
        "https://hub.example/v1/systems/dept-a/records?dataset=inspection&x=%E4%B8%AD",
        "http://[::1]:9000/v1/systems/dept-a/records",
    ],
)
def test_urls_of_the_profile_agree(url: str) -> None:
    headers: dict[str, str] = {}
    sign_request("POST", url, headers, BODY, signer=key_of("ed25519"), created=NOW, nonce="n")
    assert _is_fast(headers, url)
    fast, lib = _both(headers, url=url)
    assert fast == lib and not isinstance(fast, tuple)


def _tamper_signature(h: dict[str, str]) -> None:
    sig = h["Signature"]
    h["Signature"] = sig[:8] + ("A" if sig[8] != "A" else "B") + sig[9:]


def _tamper_created(h: dict[str, str]) -> None:
    h["Signature-Input"] = h["Signature-Input"].replace("created=1800000000", "created=1800000001")


def _other_digest(h: dict[str, str]) -> None:
    h["Content-Digest"] = ContentDigest.create(b"something else")


def _unknown_key(h: dict[str, str]) -> None:
    h["Signature-Input"] = h["Signature-Input"].replace('keyid="test-ed25519"', 'keyid="nobody"')


def _wrong_alg(h: dict[str, str]) -> None:
    h["Signature-Input"] = h["Signature-Input"].replace('alg="ed25519"', 'alg="hmac-sha256"')


@pytest.mark.parametrize(
    "tamper",
    [_tamper_signature, _tamper_created, _other_digest, _unknown_key, _wrong_alg],
    ids=["signature", "created", "digest", "keyid", "alg"],
)
def test_refusals_of_profile_shaped_requests_are_the_same(
    tamper: Callable[[dict[str, str]], None],
) -> None:
    headers = _signed(nonce="n")
    tamper(headers)
    assert _is_fast(headers)  # still the profile's shape: the fast path sees it first
    fast, lib = _both(headers)
    assert isinstance(fast, tuple) and fast == lib


def test_body_method_url_changed_are_refused_the_same_way() -> None:
    headers = _signed(nonce="n")
    assert _both(headers, BODY + b" ")[0] == _both(headers, BODY + b" ")[1]
    fast, lib = _both(headers, method="PUT")
    assert isinstance(fast, tuple) and fast == lib
    fast, lib = _both(headers, url=URL.replace("dept-a", "dept-b"))
    assert isinstance(fast, tuple) and fast == lib
    fast, lib = _both(headers, BODY.replace(b"01", b"02"))
    assert isinstance(fast, tuple) and fast == lib and fast[1] == "Content-Digest"


def _library_signed(covered: tuple[str, ...], **params: object) -> dict[str, str]:
    signer = key_of("ed25519")
    headers: dict[str, str] = {"Idempotency-Key": "k-1"}
    engine = HTTPMessageSigner(signature_algorithm=_algorithm("ed25519"))
    msg = _Message("POST", URL, headers)
    prepared = engine.prepare(
        msg,
        key_id=signer.key_id,
        created=dt.datetime.fromtimestamp(NOW, tz=dt.UTC),
        nonce="n",
        covered_component_ids=covered,
        body=BODY,
        label="jghub",
        **params,  # type: ignore[arg-type]
    )
    engine.apply(msg, prepared, signer.sign(prepared.signature_base))
    return headers


def _spaced(h: dict[str, str]) -> None:
    h["Signature-Input"] = h["Signature-Input"].replace(" ", "  ", 1)


def _sha512(h: dict[str, str]) -> None:
    import base64
    import hashlib

    h["Content-Digest"] = f"sha-512=:{base64.b64encode(hashlib.sha512(BODY).digest()).decode()}:"


@pytest.mark.parametrize(
    "make",
    [
        lambda: _library_signed(("@target-uri", "@method", "content-digest")),
        lambda: _library_signed(("@method", "@target-uri", "idempotency-key")),
        lambda: _library_signed(("@method", "@target-uri"), tag="jghub"),
        lambda: {
            **_signed(nonce="n"),
            "Signature-Input": _signed(nonce="n")["Signature-Input"].replace("jghub=", "other="),
        },
        lambda: (lambda h: (_spaced(h), h)[1])(_signed(nonce="n")),
        lambda: (lambda h: (_sha512(h), h)[1])(_signed(nonce="n")),
        lambda: {**_signed(nonce="n"), "signature-input": 'jghub=("@method")'},
    ],
    ids=[
        "component-order",
        "extra-header",
        "tag-param",
        "label-mismatch",
        "extra-whitespace",
        "sha-512-digest",
        "repeated-field",
    ],
)
def test_anything_else_goes_to_the_library(make: Callable[[], dict[str, str]]) -> None:
    headers = make()
    fast, lib = _both(headers)
    assert fast == lib
    # a shape the fast parser takes must be one it checks exactly like the library
    if _is_fast(headers):
        pytest.fail(f"not our profile, but the fast path took it: {headers}")


def test_fast_path_keeps_the_other_checks_window_and_expiry() -> None:
    fast, lib = _both(_signed(nonce="n"), now=NOW + 3600)
    assert isinstance(fast, tuple) and fast == lib and fast[0] == "E_EXPIRED"


def test_expires_is_part_of_the_profile_and_checked() -> None:
    expires = dt.datetime.fromtimestamp(NOW + 60, tz=dt.UTC)
    headers = _library_signed(("@method", "@target-uri"), expires=expires)
    assert _is_fast(headers)
    fast, lib = _both(headers)
    assert fast == lib and not isinstance(fast, tuple)
    fast, lib = _both(headers, now=NOW + 120)
    assert fast == lib and isinstance(fast, tuple) and fast[1] == "expires"
