"""Identifier validators: published vectors, real-world codes and check-character properties."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from contracts.validators import (
    PROVINCE_CODES,
    USCC,
    USCC_ALPHABET,
    IdCardNumber,
    RegionCode,
    id_card_check_char,
    id_card_error,
    is_valid_id_card,
    is_valid_org_code,
    is_valid_region_code,
    is_valid_region_code_12,
    is_valid_uscc,
    org_code_check_char,
    region_level,
    uscc_check_char,
    uscc_error,
)

_settings = settings(database=None, max_examples=300)

# --------------------------------------------------------------------------- USCC vectors

# Codes with correct check characters: DOMAIN.md's worked example and public codes.
VALID_USCC = [
    "91350200776049653A",  # DOMAIN.md worked example: Σ = 1261 → 'A'
    "12440600MB2C07549J",  # 事业单位 code with letters in the organisation code
    "91330100799655058B",
    "9144030071526726XG",  # organisation-code check character 'X'
]

# Legal codes from early pilot regions whose final check character is wrong (DOMAIN.md and
# hutool issues #2020 / #4119); their organisation-code part is still GB 11714-correct.
PILOT_USCC = [
    ("91350100M0001TGQXM", "1"),
    ("91350203M0001FUE2P", "J"),
    ("91350203M0001QKT19", "F"),
]


@pytest.mark.parametrize("code", VALID_USCC)
def test_valid_uscc_vectors(code: str) -> None:
    assert is_valid_uscc(code)
    assert uscc_error(code) is None
    assert uscc_check_char(code[:17]) == code[17]
    assert is_valid_org_code(code[8:17])


def test_worked_example_check_character() -> None:
    assert uscc_check_char("91350200776049653") == "A"
    assert org_code_check_char("77604965") == "3"


@pytest.mark.parametrize(("code", "expected"), PILOT_USCC)
def test_pilot_codes_fail_only_the_final_check(code: str, expected: str) -> None:
    assert not is_valid_uscc(code)
    assert uscc_check_char(code[:17]) == expected
    assert is_valid_org_code(code[8:17])
    assert uscc_error(code) == (
        f"统一社会信用代码 check character should be '{expected}', got '{code[17]}'"
    )


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("91350200776049653B", "check character should be 'A', got 'B'"),
        ("9135020077604965A", "must be 18 characters, got 17"),
        ("91350200776049653AA", "must be 18 characters, got 19"),
        ("91350200776O49653A", "character 'O' at position 12"),
        ("91350200776049653I", "character 'I' at position 18"),
        ("91350200776049653a", "character 'a' at position 18"),
        ("9135020A776049653A", "positions 3–8"),
        ("", "got 0"),
    ],
)
def test_invalid_uscc_messages(code: str, fragment: str) -> None:
    assert not is_valid_uscc(code)
    error = uscc_error(code)
    assert error is not None
    assert fragment in error


def test_organisation_code_check_is_enforced() -> None:
    # Change the organisation-code check character (position 17) and recompute position 18,
    # so only the GB 11714 check fails.
    first16 = "91350200776049653"[:16]
    first17 = first16 + "4"
    code = first17 + uscc_check_char(first17)
    assert not is_valid_uscc(code)
    assert uscc_error(code) == (
        "统一社会信用代码 organisation code (positions 9–17) check character should be '3', got '4'"
    )


def test_check_char_helpers_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="17 characters"):
        uscc_check_char("9135")
    with pytest.raises(ValueError, match="not in the GB 32100 alphabet"):
        uscc_check_char("9135020077604965I")
    with pytest.raises(ValueError, match="8 characters"):
        org_code_check_char("123")
    with pytest.raises(ValueError, match="17 digits"):
        id_card_check_char("1101")
    with pytest.raises(ValueError, match="not a digit"):
        id_card_check_char("1101051949123100A")
    assert not is_valid_org_code("7760496")


# --------------------------------------------------------------------------- USCC properties

_uscc_char = st.sampled_from(USCC_ALPHABET)
_digit = st.sampled_from("0123456789")


@st.composite
def valid_usccs(draw: st.DrawFn) -> str:
    head = draw(st.text(_uscc_char, min_size=2, max_size=2))
    region = draw(st.text(_digit, min_size=6, max_size=6))
    body = draw(st.text(_uscc_char, min_size=8, max_size=8))
    first17 = head + region + body + org_code_check_char(body)
    return first17 + uscc_check_char(first17)


@_settings
@given(valid_usccs())
def test_any_code_with_computed_check_chars_validates(code: str) -> None:
    assert is_valid_uscc(code), uscc_error(code)


@_settings
@given(valid_usccs(), st.integers(0, 17), _uscc_char)
def test_any_single_character_change_is_detected(code: str, pos: int, char: str) -> None:
    # Weights 3^i mod 31 are non-zero and 31 is prime, so every substitution changes Σ mod 31.
    if code[pos] == char:
        char = USCC_ALPHABET[(USCC_ALPHABET.index(char) + 1) % 31]
    changed = code[:pos] + char + code[pos + 1 :]
    assert not is_valid_uscc(changed)


@_settings
@given(st.text(min_size=0, max_size=20))
def test_uscc_functions_never_raise(text: str) -> None:
    assert is_valid_uscc(text) == (uscc_error(text) is None)


# --------------------------------------------------------------------------- ID card


def test_id_card_vector() -> None:
    assert is_valid_id_card("11010519491231002X")
    assert id_card_check_char("11010519491231002") == "X"
    assert id_card_error("11010519491231002X") is None


@pytest.mark.parametrize(
    ("num", "fragment"),
    [
        ("110105194912310021", "check character should be 'X', got '1'"),
        ("11010519491231002x", "check character should be 'X', got 'x'"),  # canonical is 'X'
        ("1101051949123100X", "must be 18 characters, got 17"),
        ("11010519491331002X", "birth date '19491331' is not a real date"),
        ("11010518000101002X", "is not a real date"),  # before 1850
        ("110105194912A1002X", "must be digits, got 'A' at position 13"),
        ("99010519491231002X", "unknown province code"),
    ],
)
def test_invalid_id_cards(num: str, fragment: str) -> None:
    assert not is_valid_id_card(num)
    error = id_card_error(num)
    assert error is not None
    assert fragment in error


def test_id_card_birth_date_in_future_is_rejected() -> None:
    tomorrow = date.today() + timedelta(days=1)
    first17 = f"110105{tomorrow:%Y%m%d}002"
    num = first17 + id_card_check_char(first17)
    assert id_card_error(num) == f"公民身份号码 birth date '{tomorrow:%Y%m%d}' is in the future"


def test_residence_permit_region_83_is_accepted() -> None:
    first17 = "83000019900101002"
    assert is_valid_id_card(first17 + id_card_check_char(first17))


@st.composite
def valid_id_cards(draw: st.DrawFn) -> str:
    province = draw(st.sampled_from(sorted(PROVINCE_CODES)))
    rest = draw(st.text(_digit, min_size=4, max_size=4))
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=date.today()))
    seq = draw(st.text(_digit, min_size=3, max_size=3))
    first17 = f"{province}{rest}{born:%Y%m%d}{seq}"
    return first17 + id_card_check_char(first17)


@_settings
@given(valid_id_cards())
def test_any_id_with_computed_check_char_validates(num: str) -> None:
    assert is_valid_id_card(num), id_card_error(num)


@_settings
@given(valid_id_cards(), st.integers(0, 17), st.sampled_from("0123456789X"))
def test_any_single_id_character_change_is_detected(num: str, pos: int, char: str) -> None:
    if pos < 17 and char == "X":
        char = "0"
    if num[pos] == char:
        char = "0123456789"[(int(char) + 1) % 10] if char != "X" else "0"
    changed = num[:pos] + char + num[pos + 1 :]
    assert not is_valid_id_card(changed)


# --------------------------------------------------------------------------- region codes


@pytest.mark.parametrize(
    ("code", "level"),
    [
        ("330000", "province"),
        ("330100", "prefecture"),
        ("330102", "county"),
        ("110000", "province"),
        ("820000", "province"),
        ("429004", "county"),  # 仙桃市, a county-level city directly under the province
    ],
)
def test_region_levels(code: str, level: str) -> None:
    assert is_valid_region_code(code)
    assert region_level(code) == level


@pytest.mark.parametrize(
    "code", ["", "33010", "3301021", "160000", "000000", "720000", "3301O2", "３３０１０２"]
)
def test_invalid_region_codes(code: str) -> None:
    assert not is_valid_region_code(code)
    with pytest.raises(ValueError, match="not a valid 行政区划代码"):
        region_level(code)


def test_province_list_is_the_real_one() -> None:
    expected = {
        *map(str, range(11, 16)),
        *map(str, range(21, 24)),
        *map(str, range(31, 38)),
        *map(str, range(41, 47)),
        *map(str, range(50, 55)),
        *map(str, range(61, 66)),
        "71",
        "81",
        "82",
    }
    assert expected == PROVINCE_CODES
    assert len(PROVINCE_CODES) == 34


def test_region_code_12() -> None:
    assert is_valid_region_code_12("330102001001")
    assert not is_valid_region_code_12("330102")
    assert not is_valid_region_code_12("990102001001")
    assert not is_valid_region_code_12("33010200100A")


# --------------------------------------------------------------------------- annotated types


class _Holder(BaseModel):
    uscc: USCC
    id_card: IdCardNumber
    region: RegionCode


def test_annotated_types_accept_and_normalise() -> None:
    holder = _Holder(uscc="91350200776049653a", id_card="11010519491231002x", region="330102")
    assert holder.uscc == "91350200776049653A"
    assert holder.id_card == "11010519491231002X"


def test_annotated_types_explain_what_is_wrong() -> None:
    with pytest.raises(ValidationError) as info:
        _Holder(uscc="91350200776049653B", id_card="110105194912310021", region="990102")
    errors = {e["loc"]: (e["type"], e["msg"]) for e in info.value.errors()}
    assert errors == {
        ("uscc",): ("uscc_check", "统一社会信用代码 check character should be 'A', got 'B'"),
        ("id_card",): ("id_card_check", "公民身份号码 check character should be 'X', got '1'"),
        ("region",): (
            "region_code_province",
            "行政区划代码 '990102' has an unknown province code '99'",
        ),
    }


def test_annotated_uscc_honours_the_strictness_context() -> None:
    data = {"uscc": "91350100M0001TGQXM", "id_card": "11010519491231002X", "region": "350100"}
    with pytest.raises(ValidationError):
        _Holder.model_validate(data)
    warnings: list[dict[str, str]] = []
    _Holder.model_validate(data, context={"uscc_strict": False, "warnings": warnings})
    assert [(w["type"], w["field"]) for w in warnings] == [("uscc_check", "uscc")]
