"""The canonical envelope every record travels in, and canonical JSON for hashing/signing.

Canonical JSON follows RFC 8785 (JSON Canonicalization Scheme, via the ``rfc8785`` package):
object keys sorted by UTF-16 code units, no insignificant whitespace, ECMAScript number form,
UTF-8. Two semantically equal payloads give the same bytes, so a digest or a detached signature
over them verifies on any peer that applies the same rule.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
import rfc8785
import uuid_utils

__all__ = ["Envelope", "canonical_json", "new_message_id", "payload_digest"]


def new_message_id() -> str:
    """A new message id: UUIDv7 (time-ordered, so ids sort by creation and index well)."""
    return str(uuid_utils.uuid7())


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical bytes of a JSON value."""
    out: bytes = rfc8785.dumps(value)
    return out


def payload_digest(value: Any) -> str:
    """SHA-256 (hex) of the RFC 8785 canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


@dataclass(slots=True)
class Envelope:
    """A record on its way through the hub, as committed and as delivered.

    ``payload`` is the validated record's JSON bytes. ``idempotency_key`` is the source's key
    (``Idempotency-Key``; record *i* of a batch gets ``KEY:i``); ``partition_key`` orders
    deliveries on ordered routes; ``traceparent`` is the W3C trace context received from the
    source (or started here).
    """

    message_id: str
    source: str
    dataset: str
    dataset_version: str
    created_at: float
    payload: bytes
    idempotency_key: str | None = None
    partition_key: str | None = None
    traceparent: str | None = None

    def record(self) -> Any:
        return orjson.loads(self.payload)

    def digest(self) -> str:
        """SHA-256 (hex) of the payload's RFC 8785 canonical form: the same on every peer."""
        return payload_digest(self.record())

    def to_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "source": self.source,
            "dataset": self.dataset,
            "dataset_version": self.dataset_version,
            "created_at": self.created_at,
            "idempotency_key": self.idempotency_key,
            "partition_key": self.partition_key,
            "traceparent": self.traceparent,
            "payload": self.record(),
            "payload_sha256": self.digest(),
        }
