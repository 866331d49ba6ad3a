"""XML ↔ JSON, safely, with lxml.

Safety (every parse, also the SOAP adapter's through :func:`parse_xml`):

* the size is checked before parsing (``E_TOO_LARGE``);
* any ``DOCTYPE`` is refused (``E_XML_UNSAFE``): no DTD, internal or external, so no entity
  can be declared and none can be expanded (billion laughs, quadratic blow-up, XXE, parameter
  entities). The prolog is checked before the parser runs; the parsed document's ``docinfo``
  is checked again (for encodings such as UTF-16 where the byte check cannot see it);
* the parser itself never resolves entities, never loads a DTD, never touches the network and
  keeps libxml2's limits (``huge_tree=False``);
* XInclude is never processed, and an element in the XInclude namespace is refused
  (``E_XML_UNSAFE``);
* nesting deeper than ``max_depth`` elements is refused (``E_TOO_DEEP``);
* anything not well-formed, or not in the encoding it declares, is ``E_XML``.

Conventions of :func:`xml_to_dict` / :func:`dict_to_xml` (see ``docs/mapping.md``):

* the result has one key, the root element's name: ``{"root": ...}``;
* an element with neither attributes nor child elements becomes its text (a string, never
  converted to a number), or ``None`` when empty;
* otherwise it becomes a dict: attributes as ``"@name"``, child elements by name, and the
  element's own text as ``"#text"`` (for an element with children, only when it is not
  whitespace);
* a child name that occurs more than once becomes a list, in document order; names in
  ``force_list`` are always lists (also when they occur once);
* namespaces: names keep the prefix the document uses (``soap:Envelope``; the default
  namespace gives bare names), and each namespace declaration is kept as an ``"@xmlns"`` /
  ``"@xmlns:p"`` attribute on the element that declares it, so :func:`dict_to_xml` restores
  the same names and URIs;
* comments and processing instructions are dropped.

Round trip ``dict_to_xml(xml_to_dict(x))`` gives an equivalent document for elements whose
text is not mixed with child elements (mixed content keeps its text but not its position).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Collection, Mapping
from decimal import Decimal
from typing import Any

from lxml import etree

from hub.errors import TooDeep, TooLargeError, XmlError, XmlUnsafe

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_DEPTH", "dict_to_xml", "parse_xml", "xml_to_dict"]

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64

_XINCLUDE = frozenset(["http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude"])
# Whitespace, the XML declaration, other processing instructions and comments may come before
# a DOCTYPE; anything else means the root element has started.
_PROLOG = re.compile(rb"(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)
_BOMS = (b"\xef\xbb\xbf",)
_local = threading.local()


def _parser() -> etree.XMLParser:
    # lxml parsers must not be shared between threads: one per thread, built once.
    p: etree.XMLParser | None = getattr(_local, "parser", None)
    if p is None:
        p = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            collect_ids=False,
        )
        _local.parser = p
    return p


def _parse(data: bytes, max_bytes: int) -> etree._Element:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("XML must be given as bytes (its encoding is read from the declaration)")
    data = bytes(data)
    if len(data) > max_bytes:
        raise TooLargeError(
            f"XML document of {len(data)} bytes is larger than {max_bytes}", field="(body)"
        )
    if not data.strip():
        raise XmlError("the XML document is empty", field="(body)")
    start = 3 if data.startswith(_BOMS[0]) else 0
    m = _PROLOG.match(data, start)
    if m is not None and data.startswith(b"<!DOCTYPE", m.end()):
        raise XmlUnsafe(
            "a DOCTYPE (DTD) is not allowed: entities and external references are refused",
            field="(doctype)",
        )
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        msg = str(exc)
        if "Excessive depth" in msg:
            raise TooDeep(f"XML nested too deeply: {msg}", field="(body)") from None
        if "entity" in msg.lower() and ("loop" in msg or "amplification" in msg):
            raise XmlUnsafe(f"entity expansion refused: {msg}", field="(body)") from None
        raise XmlError(f"not well-formed XML: {msg}", field="(body)") from None
    except ValueError as exc:  # e.g. an unsupported encoding in the declaration
        raise XmlError(f"cannot read the XML: {exc}", field="(body)") from None
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise XmlUnsafe("a DOCTYPE (DTD) is not allowed", field="(doctype)")
    return root


def _unsafe_xinclude(el: etree._Element) -> XmlUnsafe:
    return XmlUnsafe(f"XInclude is not allowed ({el.tag})", field=_name(el))


def parse_xml(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH
) -> etree._Element:
    """Parse ``data`` with the safe parser and return the root element (reused by SOAP).

    Raises ``E_TOO_LARGE``, ``E_XML_UNSAFE``, ``E_TOO_DEEP`` or ``E_XML`` (see the module).
    """
    root = _parse(data, max_bytes)
    stack: list[tuple[etree._Element, int]] = [(root, 1)]
    while stack:
        el, depth = stack.pop()
        if depth > max_depth:
            raise TooDeep(f"XML nested deeper than {max_depth} elements", field=_name(el))
        if isinstance(el.tag, str) and etree.QName(el).namespace in _XINCLUDE:
            raise _unsafe_xinclude(el)
        stack.extend((child, depth + 1) for child in el)
    return root


# --------------------------------------------------------------------------- XML → dict


def _name(el: etree._Element) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return "(node)"
    if tag[0] != "{":
        return tag
    prefix = el.prefix
    local = tag[tag.index("}") + 1 :]
    return f"{prefix}:{local}" if prefix else local


def _attr_name(key: str, el: etree._Element) -> str:
    if key[0] != "{":
        return "@" + key
    uri, local = key[1:].split("}", 1)
    if uri == "http://www.w3.org/XML/1998/namespace":
        return f"@xml:{local}"
    for prefix, u in el.nsmap.items():
        if u == uri and prefix is not None:
            return f"@{prefix}:{local}"
    return f"@{{{uri}}}{local}"  # unreachable for parsed documents: lxml keeps a prefix


def _convert(
    el: etree._Element,
    depth: int,
    max_depth: int,
    force: frozenset[str],
    parent_ns: Mapping[Any, str],
) -> Any:
    if depth > max_depth:
        raise TooDeep(f"XML nested deeper than {max_depth} elements", field=_name(el))
    nsmap = el.nsmap
    out: dict[str, Any] = {}
    if nsmap is not parent_ns and nsmap != parent_ns:
        for prefix, uri in nsmap.items():
            if parent_ns.get(prefix) != uri:
                out["@xmlns" if prefix is None else f"@xmlns:{prefix}"] = uri
    for key, value in el.attrib.items():
        out[_attr_name(key, el) if key[0] == "{" else "@" + key] = value
    children = False
    tails: list[str] = []
    for child in el:
        tag = child.tag
        if not isinstance(tag, str):  # comment or processing instruction
            if child.tail and child.tail.strip():
                tails.append(child.tail)
            continue
        children = True
        name = _name(child)
        if tag[0] == "{" and tag[1 : tag.index("}")] in _XINCLUDE:
            raise _unsafe_xinclude(child)
        value = _convert(child, depth + 1, max_depth, force, nsmap)
        have = out.get(name, _NO)
        if have is _NO:
            out[name] = [value] if name in force else value
        elif isinstance(have, list) and (name in force or type(have) is _Repeated):
            have.append(value)
        else:
            out[name] = _Repeated([have, value])
        if child.tail and child.tail.strip():
            tails.append(child.tail)
    text = el.text
    if children:
        if text and text.strip():
            tails.insert(0, text)
        if tails:
            out["#text"] = "".join(tails).strip()
    elif not out:
        return text if text else None
    elif text:
        out["#text"] = text
    for k, v in out.items():
        if type(v) is _Repeated:
            out[k] = list(v)
    return out


class _Repeated(list[Any]):
    """A list made from repeated elements (to tell it apart from a forced list)."""


_NO = object()


def xml_to_dict(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    force_list: Collection[str] = (),
) -> dict[str, Any]:
    """Parse ``data`` safely and convert it to a dict (conventions in the module docstring).

    ``force_list`` names elements (as written in the result, e.g. ``item`` or ``ns:item``)
    that always become lists. Raises ``E_TOO_LARGE``, ``E_XML_UNSAFE``, ``E_TOO_DEEP`` or
    ``E_XML``.
    """
    root = _parse(data, max_bytes)
    if etree.QName(root).namespace in _XINCLUDE:
        raise _unsafe_xinclude(root)
    value = _convert(root, 1, max_depth, frozenset(force_list), {})
    return {_name(root): value}


# --------------------------------------------------------------------------- dict → XML


def _text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    raise XmlError(f"{where}: a {type(value).__name__} cannot be written as XML text", field=where)


def _qname(name: str, ns: Mapping[str | None, str], where: str, attribute: bool = False) -> str:
    if name.startswith("{"):
        return name
    if ":" in name:
        prefix, local = name.split(":", 1)
        if prefix == "xml":
            return f"{{http://www.w3.org/XML/1998/namespace}}{local}"
        uri = ns.get(prefix)
        if uri is None:
            raise XmlError(f"{where}: namespace prefix {prefix!r} is not declared", field=where)
        return f"{{{uri}}}{local}"
    if attribute:
        return name  # unprefixed attributes are in no namespace
    default = ns.get(None)
    return f"{{{default}}}{name}" if default else name


def _declared(
    value: Any, ns: Mapping[str | None, str]
) -> tuple[dict[str | None, str], dict[str | None, str]]:
    """(namespace declarations of this element, all namespaces in scope)."""
    own: dict[str | None, str] = {}
    if isinstance(value, Mapping):
        for k, v in value.items():
            if k == "@xmlns":
                own[None] = str(v)
            elif isinstance(k, str) and k.startswith("@xmlns:"):
                own[k[7:]] = str(v)
    if not own:
        return own, dict(ns)
    return own, {**ns, **own}


def _build(
    parent: etree._Element | None,
    name: str,
    value: Any,
    ns: Mapping[str | None, str],
    where: str,
    extra_nsmap: Mapping[str | None, str] | None = None,
) -> etree._Element:
    own, scope = _declared(value, ns)
    if extra_nsmap:
        own = {**extra_nsmap, **own}
        scope = {**extra_nsmap, **scope}
    try:
        tag = _qname(name, scope, where)
        el = (
            etree.Element(tag, nsmap=own or None)
            if parent is None
            else etree.SubElement(parent, tag, nsmap=own or None)
        )
    except ValueError as exc:
        raise XmlError(f"{where}: {exc}", field=where) from None
    if value is None:
        return el
    if not isinstance(value, Mapping):
        _set_text(el, _text(value, where), where)
        return el
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise XmlError(f"{where}: keys must be non-empty strings, got {key!r}", field=where)
        path = f"{where}.{key}"
        if key == "@xmlns" or key.startswith("@xmlns:"):
            continue
        if key[0] == "@":
            try:
                el.set(_qname(key[1:], scope, path, attribute=True), _text(item, path))
            except ValueError as exc:
                raise XmlError(f"{path}: {exc}", field=path) from None
        elif key == "#text":
            if item is not None:
                _set_text(el, _text(item, path), path)
        elif isinstance(item, list):
            for i, x in enumerate(item):
                _build(el, key, x, scope, f"{path}[{i}]")
        else:
            _build(el, key, item, scope, path)
    return el


def _set_text(el: etree._Element, text: str, where: str) -> None:
    try:
        el.text = text
    except ValueError as exc:  # control characters XML cannot carry
        raise XmlError(f"{where}: {exc}", field=where) from None


def dict_to_xml(
    obj: Mapping[str, Any],
    *,
    root: str | None = None,
    nsmap: Mapping[str | None, str] | None = None,
    encoding: str = "utf-8",
) -> bytes:
    """Write ``obj`` as an XML document (the inverse of :func:`xml_to_dict`).

    Without ``root``, ``obj`` must have exactly one key, the root element's name; with it,
    ``obj`` is the root element's content. ``nsmap`` declares namespaces on the root (prefix →
    URI, ``None`` for the default namespace) in addition to ``@xmlns`` keys in ``obj``.
    Raises ``E_XML`` (:class:`hub.errors.XmlError`) naming the key that cannot be written.
    """
    if root is None:
        if not isinstance(obj, Mapping) or len(obj) != 1:
            raise XmlError(
                "without root=, the object must have exactly one key (the root element)",
                field="(root)",
            )
        ((root, content),) = obj.items()
    else:
        content = obj
    top = _build(None, root, content, {}, root, dict(nsmap) if nsmap else None)
    return bytes(etree.tostring(top, xml_declaration=True, encoding=encoding))
