"""``json``: the generic adapter for department systems that post canonical JSON over HTTP.

Inbound it accepts one JSON object (one record), a JSON array (a batch) or NDJSON (one record a
line, ``application/x-ndjson`` / ``application/jsonl``). Outbound it sends the record as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from hub.errors import BadRequest, TooDeep, UnsupportedMediaType
from hub.specs import AdapterSpec, NoOptions, RawLines

__all__ = ["NDJSON_TYPES", "JsonAdapter", "spec"]

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/ndjson"})
JSON_TYPES = frozenset({"application/json", "text/json"})


class JsonAdapter:
    """Decodes JSON / NDJSON bodies into raw records."""

    def __init__(self, system: str) -> None:
        self.system = system

    def decode(self, body: bytes, content_type: str, headers: Mapping[str, str]) -> list[Any]:
        if content_type in NDJSON_TYPES:
            return self._ndjson(body)
        if content_type not in JSON_TYPES and content_type:
            raise UnsupportedMediaType(
                f"Content-Type {content_type!r} is not accepted; send application/json or "
                "application/x-ndjson",
                field="Content-Type",
            )
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if "depth limit" in str(exc):  # orjson refuses nesting deeper than 255 levels
                raise TooDeep(f"body is nested too deep to parse: {exc}", field="body") from None
            raise BadRequest(f"body is not valid JSON: {exc}", field="body") from None
        if isinstance(value, list):
            return value
        return [value]

    @staticmethod
    def _ndjson(body: bytes) -> RawLines:
        """One record a line, left unparsed: the hub validates each line from its bytes (a line
        that is not JSON is reported by its number then)."""
        out = RawLines()
        add, number = out.append, out.line_numbers.append
        for n, line in enumerate(body.split(b"\n"), start=1):
            # = line.strip() (the same ASCII whitespace), without copying the line
            if line and not line.isspace():
                add(line)
                number(n)
        return out

    def encode(self, record: dict[str, Any]) -> Any:
        return record


spec = AdapterSpec(
    name="json",
    factory=lambda system, _options: JsonAdapter(system),
    config_model=NoOptions,
    description="canonical JSON over HTTP: one object, an array, or NDJSON",
)
