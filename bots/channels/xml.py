"""Safe XML helpers for WeChat pushes.

Every XML body from the network goes through ``parse_xml`` first. It uses defusedxml with DTDs forbidden,
so entity declarations (XXE, billion laughs) are refused before anything expands them; only then may a
body reach wechatpy (whose parser, xmltodict, would expand internal entities).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeElementTree

from bots.channels.base import ChannelError

MAX_XML_BYTES = 512 * 1024  # WeChat pushes are a few KB; refuse anything absurd before parsing


def to_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


def safe_fromstring(data: bytes | str) -> Element:
    """Parse untrusted XML. Raises ``ChannelError`` (400) for malformed XML or any DTD/entity declaration."""
    raw = to_bytes(data)
    if not raw.strip():
        raise ChannelError("empty XML body", code="malformed_xml", status=400)
    if len(raw) > MAX_XML_BYTES:
        raise ChannelError("XML body too large", code="body_too_large", status=413)
    try:
        return SafeElementTree.fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ChannelError("XML with DTD or entity declarations refused", code="xml_forbidden", status=400) from exc
    except (ParseError, ValueError) as exc:  # ValueError: e.g. an unknown encoding in the declaration
        raise ChannelError("malformed XML", code="malformed_xml", status=400) from exc


def element_to_dict(element: Element) -> dict[str, Any]:
    """Children of ``element`` by tag: text for leaves (``""`` when empty), nested dicts otherwise.

    A repeated tag keeps its first occurrence; WeChat pushes never repeat top-level elements.
    """
    result: dict[str, Any] = {}
    for child in element:
        if child.tag in result:
            continue
        result[child.tag] = element_to_dict(child) if len(child) else (child.text or "")
    return result


def parse_xml(data: bytes | str, *, root: str = "xml") -> dict[str, Any]:
    """Safely parse a WeChat ``<xml>…</xml>`` body into a dict of its elements."""
    element = safe_fromstring(data)
    if element.tag != root:
        raise ChannelError(f"expected <{root}> root element", code="malformed_xml", status=400)
    return element_to_dict(element)


def cdata(value: str) -> str:
    """Wrap ``value`` in CDATA, splitting any ``]]>`` it contains so the XML stays well formed."""
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render_xml(fields: Mapping[str, str | int], *, root: str = "xml") -> str:
    """Render a flat WeChat XML document: ``str`` values as CDATA, ``int`` values bare."""
    parts = [f"<{root}>"]
    for name, value in fields.items():
        body = str(value) if isinstance(value, int) else cdata(value)
        parts.append(f"<{name}>{body}</{name}>")
    parts.append(f"</{root}>")
    return "".join(parts)
