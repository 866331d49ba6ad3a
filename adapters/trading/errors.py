"""Errors of the trading adapter (codes listed in :data:`hub.errors.ERROR_CODES`)."""

from __future__ import annotations

from hub.errors import HubError

__all__ = ["XmlNamespaceError", "XsdError"]


class XsdError(HubError):
    """An inbound XML document does not validate against the platform's XSD; the message
    names the line and the element (nothing of the document is accepted)."""

    code = "E_XSD"
    status = 422
    title = "XML document does not match its XSD"


class XmlNamespaceError(HubError):
    """The document's root element is not one of the platform's documents in its namespace
    (a wrong or missing namespace, or an unknown document)."""

    code = "E_XML_NAMESPACE"
    status = 422
    title = "XML document in an unexpected namespace"
