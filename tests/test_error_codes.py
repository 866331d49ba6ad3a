"""Meta-tests: every stable error code is listed in ``ERROR_CODES`` and reached by a test.

"Reached by a test" is checked by reading the test sources: a code counts when some other test
module holds it as a string literal (in practice inside an assertion on a response, a CLI
output or an exception). This was chosen over recording codes seen at run time because it
gives the same answer however the suite is run (one file, ``-k``, in parallel); a run-time
recorder would need every producing test to have run first. Comments do not count: the source
is parsed, not grepped.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from hub.errors import ERROR_CODES, HubError

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
CODE = re.compile(r"E_[A-Z][A-Z_]*")

#: Codes no test can produce yet. Keep this honest: the last test fails once one is reached.
NOT_YET_REACHABLE = {
    "E_INTERNAL",  # only for bugs: an unexpected exception in a handler
    "E_HTTP",  # the API's fallback for aiohttp HTTP errors other than 404/405/413
}


def _string_literals(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def _codes_in_tests() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(TESTS.rglob("*.py")):
        if path.resolve() == Path(__file__).resolve():
            continue
        for s in _string_literals(path):
            if CODE.fullmatch(s):
                found.setdefault(s, []).append(str(path.relative_to(ROOT)))
    return found


def _subclasses(cls: type[HubError]) -> list[type[HubError]]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def test_every_error_class_code_is_listed() -> None:
    codes = {c.code for c in [HubError, *_subclasses(HubError)]}
    assert codes - set(ERROR_CODES) == set()


def test_every_code_literal_in_the_source_is_listed() -> None:
    """Codes written by hand (the API middleware, the CLI) must be listed too."""
    unlisted: dict[str, list[str]] = {}
    for package in ("hub", "contracts", "adapters", "transforms", "security", "monitoring"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for s in _string_literals(path):
                if CODE.fullmatch(s) and s not in ERROR_CODES:
                    unlisted.setdefault(s, []).append(str(path.relative_to(ROOT)))
    assert unlisted == {}, "add these to hub.errors.ERROR_CODES (and the README)"


def test_every_code_has_a_meaning() -> None:
    assert all(CODE.fullmatch(c) and len(m) > 10 for c, m in ERROR_CODES.items())


def test_every_reachable_code_is_produced_by_a_test() -> None:
    assert set(ERROR_CODES) >= NOT_YET_REACHABLE
    found = _codes_in_tests()
    missing = set(ERROR_CODES) - NOT_YET_REACHABLE - set(found)
    assert missing == set(), f"no test produces {sorted(missing)}"


def test_not_yet_reachable_list_is_current() -> None:
    found = _codes_in_tests()
    now_tested = {c: found[c] for c in NOT_YET_REACHABLE if c in found}
    assert now_tested == {}, "these codes are tested now: remove them from NOT_YET_REACHABLE"
