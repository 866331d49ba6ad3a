"""The fast paths of the identifier checks agree with the step-by-step reference.

``_uscc_problem`` and ``_id_card_problem`` compute the check characters of well-formed codes in
C (``int`` in another base) and hand everything else to ``_uscc_problem_slow`` /
``_id_card_problem_slow``, which find the first problem position by position. Both must give
the same answer (error type, message template and values) for every input."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import validators as v
from contracts.samples import make_id_card, make_uscc
from contracts.validators import PROVINCE_CODES, USCC_ALPHABET, id_card_check_char

_settings = settings(database=None, max_examples=500)


def _uscc_fast(code: str) -> object:
    return v._uscc_problem_uncached(code)


# Characters that stress the fast path: the alphabet, letters it leaves out, lower case, what
# int() would accept in another base (sign, underscore, space), non-ASCII digits and letters.
_USCC_NOISE = USCC_ALPHABET + "IOSVZabcxyz+-_ \t!#²٣ＡＢ０中é"


@st.composite
def _usccs(draw: st.DrawFn) -> str:
    """Valid codes, codes with one to three characters changed, and any text."""
    kind = draw(st.integers(0, 3))
    if kind == 3:
        return draw(st.text(alphabet=_USCC_NOISE, min_size=0, max_size=20))
    code = list(
        make_uscc(
            draw(st.sampled_from(["91", "92", "11", "12"])), "330102", draw(st.integers(0, 10**6))
        )
    )
    for _ in range(kind):
        code[draw(st.integers(0, 17))] = draw(st.sampled_from(_USCC_NOISE))
    if draw(st.booleans()):
        del code[draw(st.integers(0, len(code) - 1))]
        code.insert(draw(st.integers(0, len(code))), draw(st.sampled_from(_USCC_NOISE)))
    return "".join(code)


@_settings
@given(_usccs())
def test_uscc_fast_path_agrees_with_reference(code: str) -> None:
    assert _uscc_fast(code) == v._uscc_problem_slow(code)


@_settings
@given(st.text(alphabet=USCC_ALPHABET, min_size=18, max_size=18))
def test_uscc_fast_path_agrees_on_random_codes_of_the_alphabet(code: str) -> None:
    assert _uscc_fast(code) == v._uscc_problem_slow(code)


@pytest.mark.parametrize(
    "code",
    [
        "91350200776049653A",
        "9144030071526726XG",
        "91350100M0001TGQXM",  # pilot code: wrong final check character
        "91350200776049653B",
        "9135020077604965XA",  # wrong organisation-code check character
        "91AB0200776049653A",  # letters in the region
        "91350200776049653",
        "913502007760496I3A",
        "913502007760496 3A",
        "9135020077604965_A",
        "+1350200776049653A",
        "91350200776049653Z",
        "91350200776049653é",
    ],
)
def test_uscc_fast_path_agrees_on_examples(code: str) -> None:
    assert _uscc_fast(code) == v._uscc_problem_slow(code)


_ID_NOISE = "0123456789Xx+-_ ²٣０a"


@st.composite
def _id_cards(draw: st.DrawFn) -> str:
    """Valid numbers (also born near today and around 1850), numbers with changes, any text."""
    kind = draw(st.integers(0, 4))
    if kind == 4:
        return draw(st.text(alphabet=_ID_NOISE, min_size=0, max_size=20))
    region = draw(st.sampled_from([*sorted(PROVINCE_CODES), "83", "00", "99"])) + "0102"
    if draw(st.booleans()):
        born = draw(
            st.dates(min_value=date(1849, 12, 20), max_value=date.today() + timedelta(days=5))
        )
        first17 = f"{region}{born:%Y%m%d}{draw(st.integers(0, 999)):03d}"
    else:  # any eight digits as the birth date: 20230229, 19991301, 00000000 …
        first17 = f"{region}{draw(st.integers(0, 99_999_999)):08d}{draw(st.integers(0, 999)):03d}"
    num = list(first17 + id_card_check_char(first17))
    for _ in range(kind):
        num[draw(st.integers(0, 17))] = draw(st.sampled_from(_ID_NOISE))
    return "".join(num)


@_settings
@given(_id_cards())
def test_id_card_fast_path_agrees_with_reference(num: str) -> None:
    assert v._id_card_problem(num) == v._id_card_problem_slow(num)


@pytest.mark.parametrize("days", [-3, -2, -1, 0, 1, 2])
def test_id_card_birth_dates_around_today(days: int) -> None:
    first17 = f"330102{date.today() + timedelta(days=days):%Y%m%d}001"
    num = first17 + id_card_check_char(first17)
    assert v._id_card_problem(num) == v._id_card_problem_slow(num)
    assert (v._id_card_problem(num) is None) == (days <= 0)


@pytest.mark.parametrize(
    "born", ["18491231", "18500101", "20000229", "19000229", "20230229", "20241301", "20240100"]
)
def test_id_card_fast_path_agrees_on_edge_birth_dates(born: str) -> None:
    first17 = f"330102{born}001"
    num = first17 + id_card_check_char(first17)
    assert v._id_card_problem(num) == v._id_card_problem_slow(num)


def test_the_cache_of_valid_codes_gives_the_same_answers() -> None:
    codes = [make_uscc("91", "330102", i) for i in range(50)]
    codes += ["91350100M0001TGQXM", "91350200776049653", "9135020077604965XA"]
    for _ in range(3):
        for code in codes:
            assert v._uscc_problem(code) == v._uscc_problem_slow(code)
    assert "91350100M0001TGQXM" not in v._USCC_VALID  # only valid codes are kept


def test_sample_codes_take_the_fast_path_and_pass() -> None:
    for i in range(200):
        assert _uscc_fast(make_uscc("91", "330102", i)) is None
        assert v._id_card_problem(make_id_card("330102", i)) is None
