"""Proxied resources (代理查询): records that live in the provider's own system, not in the hub.

A catalog resource with a ``proxy:`` section is read from the provider's query endpoint instead
of the hub store, through the same grant checks, projection, masks, cursors, quotas and
exports as any other resource: the provider's answer is treated like the store's rows and
every record still passes :meth:`hub.sharing.enforce.Plan.apply` in the hub.

The provider's endpoint speaks the store's own paging contract::

    GET <url>?after=<position>&limit=<n>        Authorization: Bearer <proxy.token>
    200 {"items": [{"position": 17, "record": {...}}, ...]}   (positions ascending, > after)

An endpoint that cannot be reached or times out is ``503 E_UNREACHABLE``; an answer that does
not follow the contract is ``502 E_SOURCE`` naming what is wrong. Nothing of the requester's
query (fields, filter) is sent to the provider: it only ever sees positions and page sizes.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr

from hub.errors import SourceError, UnreachableError

__all__ = ["ProviderProxy", "ProxySettings"]


class ProxySettings(BaseModel):
    """``proxy:`` of a catalog resource: the provider's query endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: AnyHttpUrl = Field(description="the provider's query endpoint (paging contract above)")
    token: SecretStr | None = Field(None, description="bearer token for it (use ${ENV_VAR})")
    timeout: float = Field(10.0, gt=0, le=120, description="seconds for one page")


class ProviderProxy:
    """Reads a provider's records page by page (one HTTP session per provider)."""

    def __init__(self, code: str, settings: ProxySettings) -> None:
        self.code = code
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout)
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def current_records(
        self, dataset: str, *, after: int = 0, limit: int = 1000
    ) -> list[tuple[int, bytes | dict[str, Any]]]:
        """One page after ``after``: (position, record) in ascending position order."""
        await self.start()
        assert self._session is not None
        headers = {"Accept": "application/json"}
        if self.settings.token is not None:
            headers["Authorization"] = f"Bearer {self.settings.token.get_secret_value()}"
        url = str(self.settings.url)
        where = f"provider endpoint of resource {self.code} ({url})"
        try:
            async with self._session.get(
                url, params={"after": str(after), "limit": str(limit)}, headers=headers
            ) as resp:
                if resp.status != 200:
                    raise SourceError(
                        f"{where} answered {resp.status} {resp.reason}", field="proxy.url"
                    )
                try:
                    doc = await resp.json(content_type=None)
                except ValueError:
                    raise SourceError(f"{where} answered with no JSON", field="proxy.url") from None
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise UnreachableError(
                f"{where} cannot be reached: {type(exc).__name__}", field="proxy.url"
            ) from None
        return _rows(doc, after, limit, where)


def _rows(doc: Any, after: int, limit: int, where: str) -> list[tuple[int, bytes | dict[str, Any]]]:
    items = doc.get("items") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise SourceError(f"{where}: the answer holds no 'items' list", field="items")
    if len(items) > limit:
        raise SourceError(f"{where}: {len(items)} items for a page of {limit}", field="items")
    out: list[tuple[int, bytes | dict[str, Any]]] = []
    last = after
    for i, item in enumerate(items):
        pos = item.get("position") if isinstance(item, dict) else None
        rec = item.get("record") if isinstance(item, dict) else None
        if not isinstance(pos, int) or isinstance(pos, bool) or not isinstance(rec, dict):
            raise SourceError(
                f"{where}: items[{i}] needs an integer 'position' and an object 'record'",
                field=f"items[{i}]",
            )
        if pos <= last:
            raise SourceError(
                f"{where}: items[{i}] position {pos} is not after {last} (ascending, > after)",
                field=f"items[{i}].position",
            )
        last = pos
        out.append((pos, rec))
    return out
