"""The ``trading`` adapter: one XML document of the trading platform per request.

``decode`` refuses anything that is not XML (``E_MEDIA_TYPE``), parses it with the hub's
safe settings, checks namespace and XSD (:mod:`adapters.trading.documents`) and hands the
mapping one record in the platform's element names. A refused document is refused whole:
nothing of it is committed, and the hub's answer names the code, the line and the element.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from adapters.trading.documents import read_document
from adapters.trading.feed import FeedOptions
from hub.errors import UnsupportedMediaType

__all__ = ["XML_TYPES", "TradingAdapter", "TradingAdapterOptions"]

XML_TYPES = frozenset({"application/xml", "text/xml"})


class TradingAdapterOptions(BaseModel):
    """``adapter_options`` of a system with ``adapter: trading``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_bytes: int = Field(5 * 1024 * 1024, ge=1024, description="largest document accepted")
    max_depth: int = Field(32, ge=4, le=64, description="deepest element nesting accepted")
    xsd: Path | None = Field(
        None, description="the XSD to validate with (default: the one shipped, xsd/jy.xsd)"
    )
    feed: FeedOptions | None = Field(
        None,
        description="also pull the platform's document feed (catch-up; adapters/trading/feed.py)",
    )


class TradingAdapter:
    """Decodes one platform document into one record; encodes records unchanged."""

    def __init__(self, system: str, options: TradingAdapterOptions) -> None:
        self.system = system
        self.options = options

    def decode(self, body: bytes, content_type: str, headers: Mapping[str, str]) -> list[Any]:
        if content_type and content_type not in XML_TYPES:
            raise UnsupportedMediaType(
                f"Content-Type {content_type!r} is not accepted from {self.system}; send "
                "application/xml (one trading document)",
                field="Content-Type",
            )
        _kind, record = read_document(
            body,
            max_bytes=self.options.max_bytes,
            max_depth=self.options.max_depth,
            xsd=self.options.xsd,
        )
        return [record]

    def encode(self, record: dict[str, Any]) -> Any:
        return record
