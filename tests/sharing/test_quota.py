"""Daily quotas per grant: requests and records, the local day boundary, Retry-After."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from hub.sharing.quota import MemoryCounterStore, Quota, QuotaExceeded, QuotaMeter, Usage
from hub.workdays import CalendarSettings

SH = ZoneInfo("Asia/Shanghai")


def at(text: str, zone: dt.tzinfo = SH) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=zone)


async def test_requests_per_day_then_retry_after_until_local_midnight() -> None:
    meter = QuotaMeter(MemoryCounterStore(), CalendarSettings())
    quota = Quota(requests_per_day=3)
    now = at("2026-03-02T23:59:00")
    for _ in range(3):
        a = await meter.admit("g1", quota, 50, now)
        assert a.records_allowed is None  # no records quota
    with pytest.raises(QuotaExceeded) as exc:
        await meter.admit("g1", quota, 50, now)
    err = exc.value
    assert err.code == "E_QUOTA" and err.status == 429 and err.field == "requests_per_day"
    assert err.retry_after == 60 and err.to_problem()["retry_after"] == 60
    assert "3 requests per day" in err.message
    # another grant has its own counter; the next local day starts afresh
    await meter.admit("g2", quota, 50, now)
    await meter.admit("g1", quota, 50, at("2026-03-03T00:00:00"))


async def test_the_day_is_the_calendar_time_zones_not_utc() -> None:
    meter = QuotaMeter(MemoryCounterStore(), CalendarSettings(timezone="Asia/Shanghai"))
    quota = Quota(requests_per_day=1)
    # 15:59 UTC is 23:59 in Shanghai; 16:00 UTC is already the next day there
    await meter.admit("g", quota, 1, at("2026-03-02T15:59:30", dt.UTC))
    with pytest.raises(QuotaExceeded) as exc:
        await meter.admit("g", quota, 1, at("2026-03-02T15:59:59.5", dt.UTC))
    assert exc.value.retry_after == 1  # rounded up, never 0
    await meter.admit("g", quota, 1, at("2026-03-02T16:00:00", dt.UTC))
    assert meter.day_of(at("2026-03-02T16:00:00", dt.UTC)) == dt.date(2026, 3, 3)
    utc_meter = QuotaMeter(MemoryCounterStore(), "UTC")
    assert utc_meter.day_of(at("2026-03-02T16:00:00", dt.UTC)) == dt.date(2026, 3, 2)
    assert utc_meter.retry_after(at("2026-03-02T16:00:00", dt.UTC)) == 8 * 3600
    with pytest.raises(ValueError, match="timezone-aware"):
        meter.day_of(dt.datetime(2026, 3, 2))


def test_retry_after_across_a_dst_change() -> None:
    meter = QuotaMeter(MemoryCounterStore(), "Europe/Berlin")
    # 2026-03-29: clocks go from 02:00 to 03:00, the day has 23 hours
    assert meter.retry_after(at("2026-03-29T00:00:00", ZoneInfo("Europe/Berlin"))) == 23 * 3600


async def test_records_are_reserved_capped_and_settled() -> None:
    counters = MemoryCounterStore()
    meter = QuotaMeter(counters)
    quota = Quota(records_per_day=250)
    now = at("2026-03-02T10:00:00")
    a = await meter.admit("g", quota, 100, now)
    assert a.records_allowed == 100 and a.usage == Usage(1, 100)
    assert await meter.settle(a, 60) == Usage(1, 60)  # 40 reserved but not served come back
    b = await meter.admit("g", quota, 100, now)
    c = await meter.admit("g", quota, 100, now)
    assert (b.records_allowed, c.records_allowed) == (100, 90)  # the last page is cut short
    assert await meter.usage("g", now) == Usage(3, 250)
    with pytest.raises(QuotaExceeded) as exc:
        await meter.admit("g", quota, 1, now)
    assert exc.value.field == "records_per_day" and exc.value.retry_after == 14 * 3600
    assert await meter.usage("g", now) == Usage(4, 250)  # nothing reserved for the refusal
    with pytest.raises(ValueError, match="reserved"):
        await meter.settle(c, 91)
    await meter.settle(c, 90)
    assert (await meter.admit("g", quota, 10, at("2026-03-03T00:00:01"))).records_allowed == 10


async def test_concurrent_requests_never_serve_more_than_the_quota() -> None:
    meter = QuotaMeter(MemoryCounterStore())
    quota = Quota(requests_per_day=1000, records_per_day=1000)
    now = at("2026-03-02T10:00:00")
    served = 0

    async def one() -> None:
        nonlocal served
        try:
            a = await meter.admit("g", quota, 70, now)
        except QuotaExceeded:
            return
        await asyncio.sleep(0)
        served += a.records_allowed or 0
        await meter.settle(a, a.records_allowed or 0)

    await asyncio.gather(*(one() for _ in range(40)))
    assert served == 1000
    assert (await meter.usage("g", now)).records == 1000


def test_quota_values_are_checked() -> None:
    with pytest.raises(ValueError, match="requests_per_day"):
        Quota(requests_per_day=-1)
    with pytest.raises(ValueError, match="records_per_day"):
        Quota(records_per_day=True)
    with pytest.raises(ValueError, match="want_records"):
        asyncio.run(QuotaMeter(MemoryCounterStore()).admit("g", Quota(), -1, at("2026-03-02")))
