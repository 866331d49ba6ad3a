"""A proxied resource (代理查询): the provider keeps its records in its own system; the hub reads
them through the provider's query endpoint (a real aiohttp server on 127.0.0.1) with the same
grant, field, row, mask, cursor, quota and export enforcement — and tells an unreachable or
broken provider apart (E_UNREACHABLE, E_SOURCE)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.peers.provider_query import ProviderQueryService
from tests.sharing.kit import AiohttpClient, Sharing, approved_grant, start_sharing


def person(i: int) -> dict[str, Any]:
    """A 社保参保 (social insurance) record kept by the provider's own system."""
    return {
        "person_no": f"P{i:05d}",
        "name": f"李四{i}",
        "id_card": f"33010619900101{i:04d}",
        "region_code": "330106" if i % 2 else "330108",
        "insured": i % 3 != 0,
    }


@pytest.fixture
async def provider() -> AsyncIterator[ProviderQueryService]:
    svc = ProviderQueryService(records=[person(i) for i in range(1, 13)])
    await svc.start()
    try:
        yield svc
    finally:
        await svc.stop()


@pytest.fixture
async def s(
    tmp_path: Path, aiohttp_client: AiohttpClient, provider: ProviderQueryService
) -> AsyncIterator[Sharing]:
    resource = {
        "code": "330100-RSJ-0001",
        "name": "参保人员信息 (代理查询)",
        "dataset": "insured_persons",
        "provider": "杭州市人力社保局",
        "provider_code": "330100-scj",  # the reviewers of the kit's provider department
        "classification": {"category": "人力社保", "item": "参保"},
        "fields": [
            {"name": "person_no"},
            {"name": "name", "sensitivity": "sensitive", "mask": "name"},
            {"name": "id_card", "sensitivity": "secret", "mask": "id_card"},
            {"name": "region_code"},
            {"name": "insured", "type": "boolean"},
        ],
        "share_type": "conditional",
        "share_conditions": "用于社会保障核验",
        "share_methods": ["query", "download"],
        "published": "2026-02-01",
        "version": "3.0",
        "proxy": {"url": provider.url, "token": provider.token, "timeout": 2},
    }
    from tests.sharing.kit import HUB_CATALOG

    sharing = {"catalog": [*HUB_CATALOG, resource]}
    async for x in start_sharing(tmp_path, aiohttp_client, sharing=sharing):
        yield x


async def grant(s: Sharing) -> str:
    _, gid = await approved_grant(
        s,
        resource="330100-RSJ-0001",
        fields=["person_no", "name", "region_code", "insured"],
        row_filter="region_code = '330106'",
        methods=["query", "download"],
    )
    return gid


async def test_a_proxied_resource_is_read_through_the_grant(
    s: Sharing, provider: ProviderQueryService
) -> None:
    st, doc, _ = await s.call("GET", "/v1/catalog/330100-RSJ-0001", "requester")
    assert st == 200 and doc["proxied"] is True and "proxy" not in doc  # no address, no token
    gid = await grant(s)
    st, g, _ = await s.call("GET", f"/v1/grants/{gid}", "requester")
    assert g["dataset"] == "insured_persons" and g["dataset_version"] == "3.0"
    items: list[dict[str, Any]] = []
    cursor = None
    texts = []
    while True:
        path = "/v1/data/insured_persons?limit=2" + (f"&cursor={cursor}" if cursor else "")
        st, page, text = await s.call("GET", path, "requester")
        assert st == 200, page
        texts.append(text)
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [i["person_no"] for i in items] == [f"P{i:05d}" for i in range(1, 13, 2)]
    assert all(set(i) == {"person_no", "name", "region_code", "insured"} for i in items)
    assert all(i["name"].startswith("李") and "*" in i["name"] for i in items)
    for text in texts:
        for i in range(1, 13):
            assert person(i)["id_card"] not in text and person(i)["name"] not in text
    # the provider only ever saw positions and page sizes, never the query
    assert provider.seen and all(set(q) == {"after", "limit"} for q in provider.seen)
    # the same field rules
    for path, field in (
        ("/v1/data/insured_persons?fields=id_card", "fields"),
        ("/v1/data/insured_persons?filter=name%20like%20'%E6%9D%8E%25'", "filter"),
    ):
        st, doc, _ = await s.call("GET", path, "requester")
        assert st == 403 and doc["code"] == "E_FIELD_NOT_GRANTED" and doc["field"] == field
    # a download with its manifest
    r = await s.client.get(
        "/v1/data/insured_persons/export?format=jsonl", headers=s.auth("requester")
    )
    body = await r.read()
    assert r.status == 200 and len(body.splitlines()) == 6
    st, manifest, _ = await s.call("GET", r.headers["Link"].split(";")[0].strip("<>"), "requester")
    assert manifest["sha256"] == hashlib.sha256(body).hexdigest() and manifest["grant_id"] == gid
    # a proxied resource offers no subscription
    st, doc, _ = await s.call(
        "POST",
        "/v1/subscriptions",
        "requester",
        {"dataset": "insured_persons", "url": provider.url},
    )
    assert st == 403 and doc["code"] == "E_GRANT"


async def test_an_unreachable_or_broken_provider_is_told_apart(
    s: Sharing, provider: ProviderQueryService
) -> None:
    await grant(s)
    await provider.go_down()
    st, doc, _ = await s.call("GET", "/v1/data/insured_persons", "requester")
    assert st == 503 and doc["code"] == "E_UNREACHABLE" and doc["field"] == "proxy.url"
    await provider.come_up()
    provider.broken = True
    st, doc, _ = await s.call("GET", "/v1/data/insured_persons", "requester")
    assert st == 502 and doc["code"] == "E_SOURCE" and "items" in doc["detail"]
    provider.broken = False
    provider.token = "rotated-token-without-telling-the-hub"
    st, doc, _ = await s.call("GET", "/v1/data/insured_persons", "requester")
    assert st == 502 and doc["code"] == "E_SOURCE" and "401" in doc["detail"]
    # the provider is back as it should be: the same grant reads again
    provider.token = "provider-query-token-0123456789"
    st, page, _ = await s.call("GET", "/v1/data/insured_persons", "requester")
    assert st == 200 and page["count"] == 6
