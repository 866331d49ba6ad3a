"""The fast verification path for the hub's own RFC 9421 profile agrees with the library.

``verify_request`` parses requests signed the way ``sign_request`` signs them with a small
strict parser and builds the signature base itself; anything else goes to the
``http-message-signatures`` library. Every case here is verified both ways (``fast=True``,
``fast=False``) and must give the same result or the same error (code, field, message).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

import pytest
from http_message_signatures import HTTPMessageSigner
from http_message_signatures.digests import ContentDigest
from multidict import CIMultiDict, CIMultiDictProxy

from hub.errors import HubError
from security.httpsig import (
    _PROFILE_FIELDS,
    _algorithm,
    _fast_profile,
    _fields,
    _Message,
    _prepare,
    _profile_fields,
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


# ------------------------------------------------------------------- aiohttp's headers
#
# From aiohttp's case-insensitive headers the fast path reads its three fields directly
# (``_profile_fields``) instead of lower-casing every header; the answers must be those of a
# plain dict of the same field lines, and of the library.


def _multi(lines: list[tuple[str, str]]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(lines))


def _cases() -> list[tuple[str, list[tuple[str, str]]]]:
    plain = list(_signed(nonce="n").items())
    spaced = [(k, f"  {v} ") for k, v in plain]
    shouting = [(k.upper(), v) for k, v in plain]
    si = dict(plain)["Signature-Input"]
    repeated = [*plain, ("Signature-Input", si)]
    split_digest = [*plain, ("content-digest", "sha-512=:AAAA:")]
    missing = [(k, v) for k, v in plain if k != "Content-Digest"]
    tampered = [(k, v.replace("created=1800000000", "created=1800000001")) for k, v in plain]
    return [
        ("plain", plain),
        ("spaced", spaced),
        ("upper-case names", shouting),
        ("repeated Signature-Input", repeated),
        ("two Content-Digest lines", split_digest),
        ("no Content-Digest", missing),
        ("tampered", tampered),
    ]


@pytest.mark.parametrize("lines", [c[1] for c in _cases()], ids=[c[0] for c in _cases()])
def test_aiohttp_headers_give_the_answers_of_a_plain_mapping(
    lines: list[tuple[str, str]],
) -> None:
    multi = _multi(lines)
    joined = dict(_fields(multi))  # what a plain mapping of the same lines says
    fast_multi, lib = _both(multi)  # type: ignore[arg-type]
    fast_plain, _ = _both(joined)
    assert fast_multi == lib == fast_plain
    # the direct read takes the fast path exactly when the joined fields do
    assert _takes_fast(multi) == _takes_fast(joined)


def _takes_fast(headers: Mapping[str, str]) -> bool | None:
    try:
        return _prepare("POST", URL, headers, _store(), NOW, True).profile is not None
    except HubError:
        return None


def test_the_direct_read_is_used_for_single_lines_only() -> None:
    lines = list(_signed(nonce="n").items())
    assert _profile_fields(_multi(lines)) == {
        k: v for k, v in _fields(dict(lines)).items() if k in _PROFILE_FIELDS
    }
    assert _profile_fields(_multi([*lines, ("Signature", "jghub=:AAAA:")])) is None
    assert _profile_fields(dict(lines)) is None  # a plain mapping: _fields as before


def test_sign_requests_parameters_read_in_one_match_equal_the_general_parse() -> None:
    """``created``, ``keyid``, ``alg``, ``nonce`` in sign_request's order are read with one
    regular expression; any other order or set goes through the general loop. Both give the
    same parameters."""
    own = _fast_profile("POST", URL, _fields(_signed(nonce="n-1")))
    assert own is not None and own.params == {
        "created": 1_800_000_000,
        "keyid": "test-ed25519",
        "alg": "ed25519",
        "nonce": "n-1",
    }
    h = _signed(nonce="n-1")
    h["Signature-Input"] = h["Signature-Input"].replace(
        ';alg="ed25519";nonce="n-1"', ';nonce="n-1";alg="ed25519"'
    )
    other = _fast_profile("POST", URL, _fields(h))
    assert other is not None and other.params == own.params
