"""The trading platform's XML documents: safe parsing, XSD validation and conversion into
records for the mapping.

Every inbound document is parsed with the hub's safe parser
(:func:`transforms.xmljson.parse_xml`: size limit, no DTD, no entities, no network, no
XInclude: ``E_XML_UNSAFE``), its root must be one of the platform's documents in the ``jy``
namespace (``E_XML_NAMESPACE``), and it must validate against the XSD shipped in ``xsd/``
(``E_XSD`` with the line and element). Only then is it converted with
:func:`transforms.xmljson.xml_to_dict` and normalised: namespace prefixes (the sender's
choice) are dropped, attributes lose their ``@`` and the repeated elements (``FJ``, ``TBR``,
``HXR``) are always lists, so mapping rules read ``ZBJG.ZBDW.TYDM`` or ``ZBJG.FJLB.FJ[].URI``
whatever prefixes the document used.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from lxml import etree

from adapters.trading.errors import XmlNamespaceError, XsdError
from transforms.xmljson import DEFAULT_MAX_DEPTH, parse_xml, xml_to_dict

__all__ = [
    "DOCUMENTS",
    "LIST_ELEMENTS",
    "NS_FJ",
    "NS_JY",
    "XSD_DIR",
    "document_to_record",
    "read_document",
    "schema",
    "validate_document",
]

NS_JY = "http://ggzy.example.gov.cn/schema/jy/1.0"
NS_FJ = "http://ggzy.example.gov.cn/schema/fj/1.0"
XSD_DIR = Path(__file__).resolve().parent / "xsd"

#: root element -> canonical dataset
DOCUMENTS = {
    "JYXM": "trading_project",  # 交易项目
    "ZBGG": "trading_announcement",  # 招标公告
    "KBJL": "trading_bid_opening",  # 开标记录
    "ZBJG": "trading_award",  # 中标结果 / 中标候选人公示
}
#: elements that may repeat: always lists in records
LIST_ELEMENTS = frozenset({"FJ", "TBR", "HXR"})

_CLARK = re.compile(r"\{(http://ggzy\.example\.gov\.cn/schema/(jy|fj)/1\.0)\}")
_local = threading.local()


def schema(path: Path | None = None) -> etree.XMLSchema:
    """The compiled XSD (one per thread: lxml schema objects are not shared across threads)."""
    path = (path or XSD_DIR / "jy.xsd").resolve()
    cached: dict[Path, etree.XMLSchema] = getattr(_local, "schemas", None) or {}
    found = cached.get(path)
    if found is None:
        # The XSD itself is read with the same refusals: no DTD, no entities, no network;
        # its xs:import of fj.xsd is a local file next to it.
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        found = etree.XMLSchema(etree.parse(str(path), parser))
        cached[path] = found
        _local.schemas = cached
    return found


def _readable(text: str) -> str:
    return _CLARK.sub(lambda m: f"{m.group(2)}:", text)


def _element_path(path: str | None) -> str:
    """``/jy:ZBJG/jy:ZBDW/jy:TYDM`` -> ``ZBJG/ZBDW/TYDM`` (prefixes are the sender's)."""
    if not path:
        return "(document)"
    parts = [p.split(":", 1)[-1] for p in path.strip("/").split("/")]
    return "/".join(parts) or "(document)"


def validate_document(
    root: etree._Element, *, xsd: Path | None = None, origin: str = "document"
) -> str:
    """Check the root's namespace and validate against the XSD; return the root's local
    name. Raises ``E_XML_NAMESPACE`` or ``E_XSD`` (the first error: line, element, reason)."""
    qn = etree.QName(root)
    if qn.namespace != NS_JY or qn.localname not in DOCUMENTS:
        got = f"{{{qn.namespace}}}{qn.localname}" if qn.namespace else qn.localname
        raise XmlNamespaceError(
            f"{origin}: root element {got} is not a trading document; expected one of "
            f"{', '.join(DOCUMENTS)} in namespace {NS_JY}",
            field=qn.localname,
        )
    xs = schema(xsd)
    if xs.validate(root):
        return str(qn.localname)
    errors = list(xs.error_log)
    first = errors[0]
    where = _element_path(first.path)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    raise XsdError(
        f"{origin} line {first.line}: {where}: {_readable(first.message)}{more}", field=where
    )


def _normalise(value: Any) -> Any:
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "@xmlns" or key.startswith("@xmlns:"):
            continue
        name = key[1:] if key.startswith("@") else key
        name = name.split(":", 1)[-1]
        item = _normalise(item)
        if name in LIST_ELEMENTS and not isinstance(item, list):
            item = [item]
        out[name] = item
    return out


def document_to_record(data: bytes, *, max_bytes: int, max_depth: int) -> dict[str, Any]:
    """The record for the mapping: ``{"ZBJG": {...}}`` with local names (see the module)."""
    raw = xml_to_dict(data, max_bytes=max_bytes, max_depth=max_depth)
    out = _normalise(raw)
    assert isinstance(out, dict)
    return out


def read_document(
    data: bytes,
    *,
    max_bytes: int = 5 * 1024 * 1024,
    max_depth: int = DEFAULT_MAX_DEPTH,
    xsd: Path | None = None,
    origin: str = "document",
) -> tuple[str, dict[str, Any]]:
    """Parse safely, validate and convert one document: (root local name, record)."""
    root = parse_xml(data, max_bytes=max_bytes, max_depth=max_depth)
    kind = validate_document(root, xsd=xsd, origin=origin)
    return kind, document_to_record(data, max_bytes=max_bytes, max_depth=max_depth)
