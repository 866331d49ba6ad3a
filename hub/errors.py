"""One exception hierarchy for every rejection the hub makes.

Each error carries a stable machine ``code`` (``E_SCHEMA``, ``E_SIGNATURE`` ...), a message a
person can read, the failing ``field`` where there is one, and the HTTP status it maps to. The
same shape is used over HTTP (``application/problem+json``, RFC 9457) and in the CLI.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ERROR_CODES",
    "BadRequest",
    "ConfigError",
    "DuplicateError",
    "HubError",
    "NotFound",
    "PluginError",
    "SchemaError",
    "SignatureError",
    "TooLargeError",
    "UnknownSystem",
    "UnsupportedMediaType",
]

#: Every stable error code the hub can emit, with a one-line meaning (documented in the README).
ERROR_CODES: dict[str, str] = {
    "E_SCHEMA": "a record does not match its dataset contract (the field is named)",
    "E_JSON": "the body is not valid JSON / NDJSON, is empty or holds no records",
    "E_PARAM": "a query or path parameter is invalid (the parameter is named)",
    "E_TOO_LARGE": "the body, a record or a batch exceeds a configured limit",
    "E_TOO_DEEP": "the JSON nesting is deeper than allowed",
    "E_MEDIA_TYPE": "the Content-Type is not one the endpoint accepts",
    "E_SIGNATURE": "a signature is missing or does not verify",
    "E_EXPIRED": "a signature's created time is outside the allowed window, or it has expired",
    "E_REPLAY": "a signature's nonce was seen before for the same key (a replayed request)",
    "E_CERT": "a certificate is expired, not yet valid or does not chain to a trusted CA",
    "E_AUTH": "the caller is not authenticated for this system",
    "E_FORBIDDEN": "the authenticated caller's roles or scope do not allow this action",
    "E_DECRYPT": "an encrypted field does not decrypt (unknown key, altered or moved value)",
    "E_DUPLICATE": "the idempotency key was already used with a different payload",
    "E_UNKNOWN_SYSTEM": "no system with that name is configured",
    "E_UNKNOWN_DATASET": "the dataset is not registered or not accepted from this system",
    "E_NOT_FOUND": "the requested object does not exist",
    "E_METHOD": "the HTTP method is not allowed on this path",
    "E_HTTP": "another HTTP-level rejection (the status says which)",
    "E_BATCH": "some records of a batch were rejected (see rejected[])",
    "E_STORE": "the store cannot take writes now; nothing from the request was acknowledged",
    "E_STORE_SCHEMA": "the store's schema version is not the one this jghub runs (jghub migrate)",
    "E_CONFIG": "a configuration file is invalid",
    "E_PLUGIN": "a plugin is invalid (duplicate name, unknown hook ...)",
    "E_STATE": "the operation is not allowed in the object's current state",
    "E_INTERNAL": "an unexpected error; nothing was acknowledged",
    "E_MISMATCH": "a governance comparison (比对/校核) against another source failed",
    "E_UNREACHABLE": "a system's endpoint cannot be reached (jghub check --live)",
    "E_MAPPING": "a value cannot be mapped or standardised (bad date, unknown code; field named)",
    "E_XML": "the body is not well-formed XML or not in its declared encoding",
    "E_XML_UNSAFE": "the XML holds a DOCTYPE, entity, external reference or XInclude (refused)",
    "E_MANIFEST": "a batch file's manifest is missing, not JSON, or its count or SHA-256 differ",
    "E_ENCODING": "a batch file's bytes do not decode with its declared encoding",
    "E_PATH": "a file name is unsafe (path traversal, absolute, NUL byte) or a symlink",
    "E_FILE_FORMAT": "a batch file cannot be parsed as its format (CSV, JSON Lines, XML)",
    "E_EMPTY": "a batch file holds no records",
    "E_SOAP": "the body is not a SOAP envelope of the expected version (the part is named)",
    "E_SOAP_ACTION": "the SOAPAction / action or the Body element names another operation",
    "E_SOURCE": "an inbound source cannot read from its system (status, answer or path named)",
    "E_NATIONAL_REJECT": "the national system refused a record (its national code and field named)",
    "E_VERSION_CONFLICT": "a catalog update conflicts with the national version; not overwritten",
    "E_RECONCILE": "a reconciliation (对账) with the national system found unrepaired differences",
    # 12345 hotline
    "E_ORDER_STATE": "a 12345 work-order event is impossible in the order's current state "
    "(order, state and event named)",
    "E_ORDER_DEADLINE": "a 12345 work-order event came after its time limit (延期申请 later than "
    "1 working day before the deadline, 退回 after 2 working days)",
    "E_ATTACHMENT_CHECKSUM": "an attachment's content does not match its SHA-256 checksum or size",
    # trading
    "E_XSD": "an XML document does not validate against its XSD (line and element named)",
    "E_XML_NAMESPACE": "an XML document's root element or namespace is not an expected one",
    # market
    "E_MARKET_REJECT": "the market platform refused a record (its code and field named)",
    "E_MARKET_FEED": "a market platform feed page is unusable (bad signature, shape or cursor)",
    # credit
    "E_CREDIT_REJECT": "the credit platform (信用平台) refused a record (its code and field named)",
    # data sharing (数据共享)
    "E_FILTER": "a row filter expression is invalid or too large (position and token named)",
    "E_FIELD_NOT_GRANTED": "a requested, filtered or sorted field is not in the caller's grant",
    "E_CURSOR": "a paging cursor is malformed, was altered or belongs to another query",
    "E_QUOTA": "the grant's daily request or record quota is used up (see Retry-After)",
    "E_GRANT": "no grant in force covers the request (none, expired, revoked or another method)",
    "E_NOT_SHARABLE": "the catalog resource is 不予共享 (not shared): it cannot be applied for",
    "E_APPLICATION_STATE": "the application's state does not allow this step (or it changed)",
}


class HubError(Exception):
    """Base class: a rejection with a stable code, a readable message and the failing field."""

    code: ClassVar[str] = "E_INTERNAL"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (validation workers) with their field and extras.
        return (_rebuild, (type(self), self.message, self.field, self.extra))

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """Render as an RFC 9457 problem document."""
        doc: dict[str, Any] = {
            "type": f"https://jghub.example/errors/{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.message,
        }
        if self.field is not None:
            doc["field"] = self.field
        if instance is not None:
            doc["instance"] = instance
        doc.update(self.extra)
        return doc

    def __str__(self) -> str:
        where = f" (field: {self.field})" if self.field else ""
        return f"{self.code}: {self.message}{where}"


def _rebuild(
    cls: type[HubError], message: str, field: str | None, extra: dict[str, Any]
) -> HubError:
    return cls(message, field=field, **extra)


class BadRequest(HubError):
    code = "E_JSON"
    status = 400
    title = "Malformed body"


class BadParameter(HubError):
    code = "E_PARAM"
    status = 400
    title = "Invalid parameter"


class TooDeep(BadRequest):
    code = "E_TOO_DEEP"
    title = "JSON nested too deeply"


class SchemaError(HubError):
    code = "E_SCHEMA"
    status = 422
    title = "Record does not match its contract"


class TooLargeError(HubError):
    code = "E_TOO_LARGE"
    status = 413
    title = "Too large"


class UnsupportedMediaType(HubError):
    code = "E_MEDIA_TYPE"
    status = 415
    title = "Unsupported media type"


class SignatureError(HubError):
    code = "E_SIGNATURE"
    status = 401
    title = "Signature rejected"


class ExpiredError(SignatureError):
    """The signature verifies but is too old, from the future, or past its ``expires``."""

    code = "E_EXPIRED"
    title = "Signature expired"


class ReplayError(SignatureError):
    """The signature verifies but its nonce was already used with the same key."""

    code = "E_REPLAY"
    title = "Replayed request"


class CertificateError(HubError):
    """A certificate is expired, not yet valid, malformed or not trusted."""

    code = "E_CERT"
    status = 401
    title = "Certificate rejected"


class AuthError(HubError):
    code = "E_AUTH"
    status = 401
    title = "Not authenticated"


class ForbiddenError(HubError):
    """Authenticated, but no role of the caller allows the action on this department/system."""

    code = "E_FORBIDDEN"
    status = 403
    title = "Forbidden"


class DecryptError(HubError):
    """An encrypted field (``enc:v1:...``) cannot be opened: the value was altered, moved to
    another field or dataset, or its data key is unknown."""

    code = "E_DECRYPT"
    status = 500
    title = "Encrypted field does not decrypt"


class DuplicateError(HubError):
    code = "E_DUPLICATE"
    status = 409
    title = "Idempotency key reused"


class UnknownSystem(HubError):
    code = "E_UNKNOWN_SYSTEM"
    status = 404
    title = "Unknown system"


class UnknownDataset(HubError):
    code = "E_UNKNOWN_DATASET"
    status = 422
    title = "Unknown dataset"


class NotFound(HubError):
    code = "E_NOT_FOUND"
    status = 404
    title = "Not found"


class StateError(HubError):
    code = "E_STATE"
    status = 409
    title = "Not allowed in this state"


class BatchRejected(HubError):
    """Every record of a batch was rejected; ``rejected`` lists them (index, code, field)."""

    code = "E_BATCH"
    status = 422
    title = "Every record of the batch was rejected"


class MismatchError(HubError):
    """A record disagrees with another source a governance rule compares it to (the rule is
    named), e.g. the entity name for a USCC differs from the market-entity registry."""

    code = "E_MISMATCH"
    status = 422
    title = "Record does not match the reference source"


class UnreachableError(HubError):
    code = "E_UNREACHABLE"
    status = 503
    title = "Endpoint not reachable"


class StoreUnavailable(HubError):
    """The store cannot take writes now (closed, or its database is unreachable): nothing from
    the request was committed, so the caller may send it again after ``retry_after`` seconds."""

    code = "E_STORE"
    status = 503
    title = "Store unavailable"
    #: seconds a client should wait before sending again (the HTTP ``Retry-After`` header)
    retry_after: ClassVar[int] = 2


class StoreSchemaError(HubError):
    """The store's schema version is not the one this jghub knows: a node refuses to run on
    it (``jghub migrate`` upgrades an older schema; a newer one needs a newer jghub)."""

    code = "E_STORE_SCHEMA"
    status = 503
    title = "Store schema version mismatch"


class MappingError(HubError):
    """A mapping (:mod:`transforms.mapping`) cannot map a value; ``field`` is the target or
    source field path, the message names the value."""

    code = "E_MAPPING"
    status = 422
    title = "Value cannot be mapped"


class XmlError(HubError):
    """An XML document is malformed (or not in the encoding it declares)."""

    code = "E_XML"
    status = 400
    title = "Malformed XML"


class XmlUnsafe(HubError):
    """An XML document uses a feature refused for safety: DOCTYPE/DTD, entities, XInclude."""

    code = "E_XML_UNSAFE"
    status = 400
    title = "Unsafe XML refused"


class ConfigError(HubError):
    code = "E_CONFIG"
    status = 500
    title = "Invalid configuration"


class PluginError(HubError):
    code = "E_PLUGIN"
    status = 500
    title = "Invalid plugin"


class ManifestError(HubError):
    """A batch file's manifest (``<file>.manifest.json``) is unusable or disagrees with the
    file (record count, SHA-256)."""

    code = "E_MANIFEST"
    status = 422
    title = "Manifest rejected"


class EncodingError(HubError):
    """A batch file does not decode with its declared encoding (UTF-8, GBK, GB18030)."""

    code = "E_ENCODING"
    status = 422
    title = "Wrong encoding"


class PathError(HubError):
    """A file name that could leave its folder (``..``, absolute, NUL) or a symlink."""

    code = "E_PATH"
    status = 422
    title = "Unsafe path"


class FileFormatError(HubError):
    """A batch file is not valid CSV / JSON Lines / XML (or carries a DTD)."""

    code = "E_FILE_FORMAT"
    status = 422
    title = "Unreadable batch file"


class EmptyFileError(HubError):
    """A batch file holds no records (an empty or truncated transfer)."""

    code = "E_EMPTY"
    status = 422
    title = "Empty batch file"


class SoapError(HubError):
    """A SOAP request is not an envelope the endpoint accepts (wrong version, no Body ...)."""

    code = "E_SOAP"
    status = 400
    title = "Invalid SOAP envelope"


class SoapActionError(HubError):
    """A SOAP request names an operation the endpoint does not offer."""

    code = "E_SOAP_ACTION"
    status = 400
    title = "Unknown SOAP operation"


class SourceError(HubError):
    """An inbound source could not read from its system (an answer it cannot use)."""

    code = "E_SOURCE"
    status = 502
    title = "Source system answer unusable"


class GrantError(HubError):
    """No grant (授权) in force lets the caller do this: none, expired, revoked, or one that
    does not allow the access method."""

    code = "E_GRANT"
    status = 403
    title = "No grant"


class NotSharableError(HubError):
    """The catalog resource is 不予共享: no application can be filed for it."""

    code = "E_NOT_SHARABLE"
    status = 403
    title = "Resource not shared"


class ApplicationStateError(HubError):
    """A sharing application is not in a state that allows the step (or another reviewer
    changed it meanwhile)."""

    code = "E_APPLICATION_STATE"
    status = 409
    title = "Application state conflict"


__all__ += [
    "ApplicationStateError",
    "AuthError",
    "BadParameter",
    "BatchRejected",
    "CertificateError",
    "DecryptError",
    "EmptyFileError",
    "EncodingError",
    "ExpiredError",
    "FileFormatError",
    "ForbiddenError",
    "GrantError",
    "ManifestError",
    "MappingError",
    "MismatchError",
    "NotSharableError",
    "PathError",
    "ReplayError",
    "SoapActionError",
    "SoapError",
    "SourceError",
    "StateError",
    "StoreSchemaError",
    "StoreUnavailable",
    "TooDeep",
    "UnknownDataset",
    "UnreachableError",
    "XmlError",
    "XmlUnsafe",
]
