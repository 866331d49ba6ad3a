"""RFC 9421 request signatures with Content-Digest, and detached signatures."""

from __future__ import annotations

import datetime as dt

import pytest
from http_message_signatures import HTTPMessageSigner

from hub.errors import ExpiredError, SignatureError
from security.httpsig import (
    _algorithm,
    _Message,
    sign_detached,
    sign_request,
    verify_detached,
    verify_request,
)
from security.keystore import Keystore, ManagedKey
from security.signing import ALGORITHMS, generate_key
from tests.security.test_sign_algorithms import _algorithms, key_of

URL = "https://hub.example:8443/v1/systems/dept-a/records?mode=batch"
BODY = b'[{"inspection_no": "JC-1", "result": "01"}]'
NOW = 1_800_000_000.0


def _keys(*keys: ManagedKey) -> Keystore:
    return Keystore(keys)


def _signed(algorithm: str = "ed25519", **kw: object) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Idempotency-Key": "k-1"}
    sign_request("POST", URL, headers, BODY, signer=key_of(algorithm), created=NOW, **kw)  # type: ignore[arg-type]
    return headers


def _store(algorithm: str = "ed25519", **kw: object) -> Keystore:
    return _keys(ManagedKey(key_of(algorithm), owner="dept-a", **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", _algorithms())
def test_round_trip_every_algorithm(algorithm: str) -> None:
    headers = _signed(algorithm, nonce="n-1")
    assert headers["Content-Digest"].startswith("sha-256=:")
    assert headers["Signature-Input"] == (
        'jghub=("@method" "@target-uri" "content-digest");created=1800000000;'
        f'keyid="test-{algorithm}";alg="{algorithm}";nonce="n-1"'
    )
    got = verify_request("POST", URL, headers, BODY, keys=_store(algorithm), now=NOW + 10)
    assert (got.key_id, got.algorithm, got.created, got.nonce, got.owner) == (
        f"test-{algorithm}",
        algorithm,
        1_800_000_000,
        "n-1",
        "dept-a",
    )


def test_nonce_is_random_by_default() -> None:
    a = verify_request("POST", URL, _signed(), BODY, keys=_store(), now=NOW)
    b = verify_request("POST", URL, _signed(), BODY, keys=_store(), now=NOW)
    assert a.nonce and b.nonce and a.nonce != b.nonce and len(a.nonce) >= 20


def _reject(headers: dict[str, str], body: bytes = BODY, **kw: object) -> SignatureError:
    args: dict[str, object] = {"keys": _store(), "now": NOW, **kw}
    method = str(args.pop("method", "POST"))
    url = str(args.pop("url", URL))
    with pytest.raises(SignatureError) as info:
        verify_request(method, url, headers, body, **args)  # type: ignore[arg-type]
    return info.value


def test_bad_signature_is_rejected() -> None:
    headers = _signed()
    sig = headers["Signature"]
    headers["Signature"] = sig[:8] + ("A" if sig[8] != "A" else "B") + sig[9:]
    err = _reject(headers)
    assert err.code == "E_SIGNATURE" and err.field == "Signature"


def test_body_changed_after_signing_is_a_digest_mismatch() -> None:
    err = _reject(_signed(), body=BODY.replace(b"01", b"02"))
    assert err.code == "E_SIGNATURE" and err.field == "Content-Digest"
    assert "does not match the message body" in err.message


def test_digest_header_replaced_breaks_the_signature() -> None:
    headers = _signed()
    other = {"x": "y"}
    sign_request("POST", URL, other, b"other", signer=key_of("ed25519"), created=NOW)
    headers["Content-Digest"] = other["Content-Digest"]
    err = _reject(headers, body=b"other")
    assert err.code == "E_SIGNATURE" and err.field == "Signature"


def test_method_or_url_changed_is_rejected() -> None:
    assert _reject(_signed(), method="PUT").code == "E_SIGNATURE"
    assert _reject(_signed(), url=URL.replace("dept-a", "dept-b")).field == "Signature"


def test_covered_header_removed_is_rejected() -> None:
    headers = _signed()
    del headers["Content-Digest"]
    err = _reject(headers)
    assert err.code == "E_SIGNATURE" and err.field == "content-digest"
    assert "not found" in err.message


def test_missing_signature_headers_are_rejected() -> None:
    headers = _signed()
    del headers["Signature"]
    assert _reject(headers).field == "Signature"
    assert _reject({"Content-Type": "application/json"}).field == "Signature-Input"


def test_signature_not_covering_the_digest_is_rejected() -> None:
    """A peer signing only @method and @target-uri is refused: the body would be unsigned."""
    signer = key_of("ed25519")
    headers: dict[str, str] = {}
    engine = HTTPMessageSigner(signature_algorithm=_algorithm("ed25519"))
    prepared = engine.prepare(
        _Message("POST", URL, headers),
        key_id=signer.key_id,
        created=dt.datetime.fromtimestamp(NOW, tz=dt.UTC),
        nonce="n",
        covered_component_ids=("@method", "@target-uri"),
    )
    engine.apply(_Message("POST", URL, headers), prepared, signer.sign(prepared.signature_base))
    err = _reject(headers)
    assert err.field == "Signature-Input" and "content-digest" in err.message


def test_unknown_key_id_is_rejected() -> None:
    headers = _signed()
    err = _reject(headers, keys=_keys(ManagedKey(generate_key("ed25519", "someone-else"))))
    assert err.code == "E_SIGNATURE" and err.field == "keyid"
    assert "unknown key id 'test-ed25519'" in err.message


def test_wrong_key_under_the_same_id_is_rejected() -> None:
    impostor = generate_key("ed25519", "test-ed25519")
    headers = {"Content-Type": "application/json"}
    sign_request("POST", URL, headers, BODY, signer=impostor, created=NOW)
    assert _reject(headers).field == "Signature"


def test_alg_that_does_not_match_the_key_is_rejected() -> None:
    headers = _signed()
    err = _reject(headers, keys=_keys(ManagedKey(generate_key("hmac-sha256", "test-ed25519"))))
    assert err.field == "alg" and "does not match key" in err.message


def test_revoked_and_expired_keys_are_rejected() -> None:
    err = _reject(_signed(), keys=_store(revoked=True))
    assert err.code == "E_SIGNATURE" and err.field == "keyid" and "revoked" in err.message
    err = _reject(_signed(), keys=_store(valid_until=NOW - 1))
    assert "expired" in err.message
    err = _reject(_signed(), keys=_store(valid_from=NOW + 3600))
    assert "not yet valid" in err.message
    store = _store()
    verify_request("POST", URL, _signed(), BODY, keys=store, now=NOW)
    store.revoke("test-ed25519")
    assert "revoked" in _reject(_signed(), keys=store).message


@pytest.mark.parametrize(("offset", "says"), [(301, "ago"), (-301, "in the future")])
def test_stale_or_future_created_is_expired(offset: float, says: str) -> None:
    headers = _signed()
    with pytest.raises(ExpiredError) as info:
        verify_request("POST", URL, headers, BODY, keys=_store(), now=NOW + offset)
    assert info.value.code == "E_EXPIRED" and info.value.field == "created"
    assert says in info.value.message
    # inside the window (and a wider window) it verifies
    verify_request("POST", URL, headers, BODY, keys=_store(), now=NOW + offset, window=400)


def test_existing_content_digest_must_match_the_body() -> None:
    headers = {"Content-Digest": "sha-256=:" + "A" * 43 + "=:"}
    with pytest.raises(SignatureError, match="cannot sign the request"):
        sign_request("POST", URL, headers, BODY, signer=key_of("ed25519"))


def test_header_names_are_case_insensitive() -> None:
    headers = {k.lower(): v for k, v in _signed().items()}
    assert verify_request("POST", URL, headers, BODY, keys=_store(), now=NOW).key_id


def test_two_signatures_are_refused() -> None:
    headers = _signed()
    headers["Signature-Input"] += ', other=("@method");created=1;keyid="x"'
    headers["Signature"] += ", other=:AAAA:"
    err = _reject(headers)
    assert err.field == "Signature-Input" and "exactly one signature" in err.message


# --------------------------------------------------------------------------- detached


@pytest.mark.parametrize("algorithm", ALGORITHMS[:4])
def test_detached_signature_of_json_is_canonical(algorithm: str) -> None:
    record = {"名称": "某市市场监管局", "amount": 1.5, "items": [1, 2]}
    sig = sign_detached(record, key_of(algorithm), created=NOW, nonce="n-9")
    assert sig.startswith(":") and f'keyid="test-{algorithm}"' in sig
    reordered = {"items": [1, 2], "amount": 1.5, "名称": "某市市场监管局"}
    got = verify_detached(reordered, sig, keys=_store(algorithm), now=NOW + 86400)
    assert (got.key_id, got.created, got.nonce, got.owner) == (
        f"test-{algorithm}",
        1_800_000_000,
        "n-9",
        "dept-a",
    )
    with pytest.raises(SignatureError):
        verify_detached({**record, "amount": 2}, sig, keys=_store(algorithm), now=NOW)


def test_detached_signature_of_xml_bytes_and_window() -> None:
    xml = '<?xml version="1.0" encoding="UTF-8"?><项目 id="1">中标</项目>'.encode()
    sig = sign_detached(xml, key_of("ed25519"), created=NOW)
    assert verify_detached(xml, sig, keys=_store(), now=NOW + 10, window=60).nonce is None
    with pytest.raises(SignatureError):
        verify_detached(xml.replace(b"1", b"2"), sig, keys=_store(), now=NOW)
    with pytest.raises(ExpiredError):
        verify_detached(xml, sig, keys=_store(), now=NOW + 120, window=60)
    with pytest.raises(SignatureError, match="not a Structured Field Item"):
        verify_detached(xml, "((", keys=_store(), now=NOW)
    tampered = sig.replace('alg="ed25519"', 'alg="hmac-sha256"')
    with pytest.raises(SignatureError, match="does not match key"):
        verify_detached(xml, tampered, keys=_store(), now=NOW)
    with pytest.raises(SignatureError, match="revoked"):
        verify_detached(xml, sig, keys=_store(revoked=True), now=NOW)
