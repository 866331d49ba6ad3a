"""The dict fast path of NDJSON validation (``hub.validation.DictChecker``) agrees with the
reference path (``validate_line`` + ``checked``: a model instance, then its serialisation),
record for record: the same canonical bytes, partition key and dict for valid records, the
same error (class, code, message, field, details) for invalid ones."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, field_validator, model_validator

from adapters.market.contracts import AbnormalListEntry, InspectionTask, MarketEntity, TaskResult
from contracts import CatalogItem, InspectionRecord
from contracts.penalty import PenaltyRecord
from contracts.samples import sample_catalog_item, sample_inspection
from hub.errors import HubError
from hub.validation import DictChecker, checked, dict_checker, validate_line
from tests.adapters.market.test_contracts import ENTITY, LISTING, RESULT, TASK

_settings = settings(
    database=None, max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

#: (model, partition field, valid records to start from)
CASES: list[tuple[type[BaseModel], str | None, list[dict[str, Any]]]] = [
    (InspectionRecord, None, [sample_inspection(i) for i in range(12)]),
    (InspectionRecord, "inspection_no", [sample_inspection(i) for i in range(12, 15)]),
    (CatalogItem, "code", [sample_catalog_item(i, v) for i in range(4) for v in (1, 2)]),
    (MarketEntity, "uscc", [ENTITY]),
    (InspectionTask, None, [TASK]),
    (TaskResult, None, [RESULT]),
    (AbnormalListEntry, "entry_id", [LISTING]),
]


def _stable_refusal(outcome: tuple[Any, ...]) -> bool:
    """A valid record, or a refusal with a stable code and a message (what every refusal
    must carry, fast path or reference)."""
    if outcome[0] == "ok":
        return True
    _, _kind, code, message, _field, _extra = outcome
    return str(code).startswith("E_") and bool(message)


def _outcome(f: Any) -> tuple[Any, ...]:
    try:
        return ("ok", f())
    except HubError as err:
        return ("error", type(err), err.code, err.message, err.field, err.extra)


def _agree(
    model: type[BaseModel],
    raw: bytes,
    pfield: str | None,
    want_dict: bool,
    max_bytes: int | None = None,
    depth: int = 32,
) -> tuple[Any, ...]:
    fast = dict_checker(model)
    assert fast is not None
    for single in (False, True):
        ref = _outcome(
            lambda single=single: checked(
                validate_line(model, raw, 7, 9, single, max_bytes, depth), pfield, want_dict
            )
        )
        got = _outcome(
            lambda single=single: fast.check(raw, 7, 9, single, max_bytes, depth, pfield, want_dict)
        )
        assert got == ref, raw
    return ref


@pytest.mark.parametrize(("model", "pfield", "records"), CASES)
def test_valid_records_agree(
    model: type[BaseModel], pfield: str | None, records: list[dict[str, Any]]
) -> None:
    for rec in records:
        for want_dict in (False, True):
            assert _agree(model, orjson.dumps(rec), pfield, want_dict)[0] == "ok"


# What a field's value may be replaced with: JSON of every type, and text that validation
# changes (whitespace it strips, lower case it upper-cases, datetimes in other spellings).
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _respell(value: Any) -> list[Any]:
    if not isinstance(value, str):
        return [value, str(value)]
    out = [f" {value}", f"{value}\t", value.lower(), value.upper(), value[:-1], value + "0"]
    if "T" in value and ":" in value:  # a datetime
        out += [
            value.replace("T", " "),
            value.replace("+08:00", ""),
            value.replace("+08:00", "Z"),
            value.replace("+08:00", "+00:00"),
            value.replace(":00+", ":00.123456+"),
            value.replace(":00+", ":00.5+"),
            value[:10],
        ]
    return out


@st.composite
def _mutated(draw: st.DrawFn) -> tuple[type[BaseModel], str | None, bytes]:
    model, pfield, records = draw(st.sampled_from(CASES))
    rec: dict[str, Any] = json.loads(json.dumps(draw(st.sampled_from(records))))
    for _ in range(draw(st.integers(0, 3))):
        target = rec
        for value in rec.values():  # sometimes mutate inside a nested object of a list
            if (
                isinstance(value, list)
                and value
                and isinstance(value[0], dict)
                and draw(st.integers(0, 4)) == 0
            ):
                item = value[draw(st.integers(0, len(value) - 1))]
                if isinstance(item, dict):
                    target = item
                break
        keys = sorted(target)
        action = draw(st.integers(0, 5))
        if action == 0 and keys:
            del target[draw(st.sampled_from(keys))]
        elif action == 1:
            target[draw(st.sampled_from([*keys, "extra", "Inspection_No"]))] = draw(_json_values)
        elif keys:
            key = draw(st.sampled_from(keys))
            target[key] = draw(st.sampled_from(_respell(target[key])))
    spelling = draw(st.integers(0, 2))
    if spelling == 0:
        raw = orjson.dumps(rec)
    elif spelling == 1:
        raw = json.dumps(rec).encode()  # \u escapes, spaces after separators
    else:
        items = list(rec.items())
        raw = orjson.dumps(dict(reversed(items)))  # another key order
    return model, pfield, raw


@_settings
@given(_mutated(), st.booleans())
def test_mutated_records_agree(case: tuple[type[BaseModel], str | None, bytes], want: bool) -> None:
    model, pfield, raw = case
    assert _stable_refusal(_agree(model, raw, pfield, want))


@pytest.mark.parametrize(
    "raw",
    [
        b"[1, 2]",
        b"1",
        b'"text"',
        b"null",
        b"{}",
        b"{not json",
        b'{"a": 1,}',
        b"",
        orjson.dumps({**sample_inspection(1), "inspectors": [1, 2]}),
        orjson.dumps({**sample_inspection(1), "inspectors": [{}]}),
        orjson.dumps({**sample_inspection(1), "inspectors": []}),
        orjson.dumps({**sample_inspection(1), "inspectors": None}),
        orjson.dumps({**sample_inspection(1), "submitted_at": None}),
        orjson.dumps({**sample_inspection(1), "counterpart_code": "330102196003150024"}),
        orjson.dumps({**sample_inspection(1), "submitted_at": "2020-01-01T00:00:00+08:00"}),
        orjson.dumps(sample_inspection(1)) + b"  ",
    ],
)
def test_odd_lines_agree(raw: bytes) -> None:
    first = _agree(InspectionRecord, raw, None, False)
    second = _agree(InspectionRecord, raw, "inspection_no", True)
    assert first[0] == second[0]  # the partition field does not change the verdict
    assert _stable_refusal(first) and _stable_refusal(second)
    if raw.strip() == orjson.dumps(sample_inspection(1)):
        assert first[0] == "ok"
    elif not raw.strip().startswith(b"{") or raw.strip() == b"{}":
        assert first[0] == "error"


def test_size_and_depth_limits_agree() -> None:
    raw = orjson.dumps(sample_inspection(3))
    assert _agree(InspectionRecord, raw, None, False, max_bytes=100)[2] == "E_TOO_LARGE"
    assert _agree(InspectionRecord, raw, None, False, depth=2)[0] == "error"
    assert _agree(InspectionRecord, raw, None, False, depth=3)[0] == "ok"


def test_models_a_dict_cannot_stand_in_for_take_the_reference_path() -> None:
    class AfterModel(BaseModel):
        a: int

        @model_validator(mode="after")
        def _check(self) -> AfterModel:
            return self

    class Allow(BaseModel, extra="allow"):
        a: int

    assert dict_checker(PenaltyRecord) is None  # a model validator
    assert dict_checker(AfterModel) is None
    assert dict_checker(Allow) is None
    assert isinstance(dict_checker(InspectionRecord), DictChecker)


def test_field_validators_see_earlier_fields() -> None:
    class Pair(BaseModel):
        low: int
        high: int

        @field_validator("high")
        @classmethod
        def _above(cls, value: int, info: Any) -> int:
            if value <= info.data.get("low", value - 1):
                raise ValueError("high must be above low")
            return value

    verdicts = [
        _agree(Pair, raw, "low", True)[0]
        for raw in (b'{"low": 1, "high": 2}', b'{"low": 3, "high": 2}', b'{"high": 2}')
    ]
    assert verdicts == ["ok", "error", "error"]


@settings(database=None, max_examples=300)
@given(
    st.lists(st.sampled_from([b"", b" ", b"\t\r", b"\x0b\x0c", b"\x1c", b"\xa0", b"{}", b" {} "]))
)
def test_ndjson_split_keeps_the_lines_strip_keeps(parts: list[bytes]) -> None:
    """The adapter tests a line for content without copying it (``isspace``): the same lines,
    with the same numbers, as ``line.strip()`` would keep."""
    from hub.json_adapter import JsonAdapter

    body = b"\n".join(parts)
    got = JsonAdapter._ndjson(body)
    expected = [(n, x) for n, x in enumerate(body.split(b"\n"), start=1) if x.strip()]
    assert list(zip(got.line_numbers, got, strict=True)) == expected


def _agree_value(
    model: type[BaseModel], raw: bytes, pfield: str | None, want: bool
) -> list[tuple[Any, ...]]:
    """``DictChecker.check_value`` (a single ``application/json`` record, parsed already)
    agrees with the reference ``Hub._validate_value`` + ``checked``: the same result for a
    valid record; None (the reference decides) for every record the reference refuses.
    Returns the reference outcomes compared (none for a body the adapter refuses first)."""
    from hub.runtime import Hub

    fast = dict_checker(model)
    assert fast is not None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []  # the adapter refuses the body before validation
    if type(value) is not dict:
        return []
    seen = []
    for max_bytes in (None, 10_000):
        ref = _outcome(
            lambda max_bytes=max_bytes: checked(
                Hub._validate_value(model, value, 0, True, max_bytes, 32), pfield, want
            )
        )
        seen.append(ref)
        got = fast.check_value(value, max_bytes, 32, pfield, want)
        if got is None:
            continue  # the caller takes the reference path
        assert ref == ("ok", got), raw
    return seen


@_settings
@given(_mutated(), st.booleans())
def test_parsed_single_records_agree(
    case: tuple[type[BaseModel], str | None, bytes], want: bool
) -> None:
    model, pfield, raw = case
    outcomes = _agree_value(model, raw, pfield, want)
    assert all(_stable_refusal(o) for o in outcomes)
    if len(outcomes) == 2:  # a size limit the record is under does not change the verdict
        assert outcomes[0][0] == outcomes[1][0] or len(raw) > 10_000


@pytest.mark.parametrize(("model", "pfield", "records"), CASES)
def test_parsed_valid_records_take_the_fast_path(
    model: type[BaseModel], pfield: str | None, records: list[dict[str, Any]]
) -> None:
    fast = dict_checker(model)
    assert fast is not None
    for rec in records:
        value = orjson.loads(orjson.dumps(rec))
        got = fast.check_value(value, None, 32, pfield, True)
        from hub.runtime import Hub

        assert got is not None and got == checked(
            Hub._validate_value(model, value, 0, True, None, 32), pfield, True
        )
