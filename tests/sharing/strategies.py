"""Hypothesis strategies and sample records shared by the data-sharing tests."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import strategies as st

from hub.sharing.filterlang import And, Compare, Expr, In, IsNull, Like, Not, Or, Value

#: Characters that matter to LIKE/GLOB/regex/SQL quoting, plus non-ASCII ones.
TRICKY = "ab%_\\'\"*?[]{}1. 张丰é\n"
FIELDS = ["a", "b", "c", "o.x", "o", "missing"]

scalar_values: st.SearchStrategy[Value] = st.one_of(
    st.text(TRICKY, max_size=4),
    st.integers(-5, 5),
    st.sampled_from([0.5, -1.5, 2.0, 1e16, -0.0]),
    st.booleans(),
)
ordered_values: st.SearchStrategy[Value] = st.one_of(
    st.text(TRICKY, max_size=4), st.integers(-5, 5), st.sampled_from([0.5, -1.5, 2.0])
)


def leaf(fields: list[str]) -> st.SearchStrategy[Expr]:
    f = st.sampled_from(fields)
    return st.one_of(
        st.builds(Compare, f, st.sampled_from(["=", "!="]), scalar_values),
        st.builds(Compare, f, st.sampled_from(["<", "<=", ">", ">="]), ordered_values),
        st.builds(In, f, st.lists(scalar_values, min_size=1, max_size=3).map(tuple), st.booleans()),
        st.builds(Like, f, st.text(TRICKY, max_size=4), st.booleans()),
        st.builds(IsNull, f, st.booleans()),
    )


def exprs(fields: list[str] = FIELDS, max_leaves: int = 8) -> st.SearchStrategy[Expr]:
    return st.recursive(
        leaf(fields),
        lambda inner: st.one_of(
            st.builds(Not, inner),
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
        ),
        max_leaves=max_leaves,
    )


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(10 if depth == 0 else 8)
    if kind <= 2:
        return "".join(rng.choice(TRICKY) for _ in range(rng.randrange(5)))
    if kind == 3:
        return rng.randrange(-5, 6)
    if kind == 4:
        return rng.choice([0.5, -1.5, 2.0, 1e16, -0.0, 3.25])
    if kind == 5:
        return rng.choice([True, False])
    if kind == 6:
        return None
    if kind == 7:
        return rng.choice(["a%", "b_", "[x]", "张丰", "a\\b", '{"x":1}', "[1]", "1", "true"])
    if kind == 8:
        return {"x": _value(rng, 1), "y": _value(rng, 1)}
    return [_value(rng, 1) for _ in range(rng.randrange(3))]


def sample_records(n: int, seed: int = 6) -> list[dict[str, Any]]:
    """``n`` records over ``a``, ``b``, ``c``, ``o`` (some fields missing, some null, mixed
    types, strings full of characters that matter to LIKE, GLOB and quoting)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        rec = {k: _value(rng) for k in ("a", "b", "c", "o") if rng.random() < 0.85}
        if rng.random() < 0.5:
            rec["o"] = {"x": _value(rng, 1)}
        out.append(rec)
    return out
