"""Graded authorization (分级授权), walked exhaustively: every action against every role, in
scope and out of scope. ``EXPECTED`` is written out by hand (not derived from POLICY), so a
change to the policy table fails here until someone agrees with it."""

from __future__ import annotations

import pytest

from hub.errors import ForbiddenError
from security.roles import POLICY, Principal, Role, authorize, is_allowed, parse_roles

S, RQ, RV, OPS, AD = Role.SYSTEM, Role.REQUESTER, Role.REVIEWER, Role.OPS, Role.ADMIN

#: action -> {role: "any" | "own_department" | "own_system" | "granted"}; absent = refused.
EXPECTED: dict[str, dict[Role, str]] = {
    "records.send": {S: "own_system"},
    "records.receive": {S: "own_system"},
    "messages.read": {S: "own_system", OPS: "any", AD: "any"},
    "payload.read": {S: "own_system", OPS: "granted"},
    "dlq.read": {OPS: "any", AD: "any"},
    "dlq.replay": {OPS: "any"},
    "dlq.discard": {OPS: "any"},
    "monitoring.read": {OPS: "any", AD: "any"},
    "catalog.read": {S: "any", RQ: "any", RV: "any", OPS: "any", AD: "any"},
    "application.create": {RQ: "own_department"},
    "application.read": {RQ: "own_department"},
    "application.review": {RV: "own_department"},
    "decision.create": {RV: "own_department"},
    "grant.read": {RQ: "own_department"},
    "grant.review": {RV: "own_department", AD: "any"},
    "grant.revoke": {RV: "own_department", AD: "any"},
    "data.read": {RQ: "own_department"},
    "onboarding.change": {AD: "any"},
    "keys.manage": {AD: "any"},
    "tokens.manage": {AD: "any"},
    "audit.read": {AD: "any"},
}


def who(role: Role, *, grants: frozenset[str] = frozenset()) -> Principal:
    return Principal(
        id=f"tok-{role}",
        name=f"a {role}",
        roles=frozenset({role}),
        department="dept-a",
        system="dept-a-sys" if role is Role.SYSTEM else None,
        grants=grants,
    )


def test_the_policy_is_exactly_the_expected_table() -> None:
    assert {a: {r: str(s) for r, s in rules.items()} for a, rules in POLICY.items()} == EXPECTED


CASES = [(action, role) for action in EXPECTED for role in Role]


@pytest.mark.parametrize(("action", "role"), CASES, ids=[f"{a}-{r}" for a, r in CASES])
def test_every_action_against_every_role(action: str, role: Role) -> None:
    scope = EXPECTED[action].get(role)
    p = who(role)
    own = {"department": "dept-a", "system": "dept-a-sys"}
    other = {"department": "dept-b", "system": "dept-b-sys"}
    if scope is None:
        # refused whatever the scope, even on its own department and system
        for where in (own, other, {}):
            with pytest.raises(ForbiddenError) as err:
                authorize(p, action, **where)
            assert err.value.code == "E_FORBIDDEN" and err.value.status == 403
            assert err.value.field == "role"
    elif scope == "any":
        for where in (own, other, {}):
            authorize(p, action, **where)
    elif scope in ("own_department", "own_system"):
        authorize(p, action, **own)
        field = "department" if scope == "own_department" else "system"
        for where in (other, {}):  # another tenant's object, or no scope named: refused
            with pytest.raises(ForbiddenError) as err:
                authorize(p, action, **where)
            assert err.value.field == field
    else:  # granted
        with pytest.raises(ForbiddenError) as err:
            authorize(p, action, **own)
        assert err.value.field == "grant"
        authorize(who(role, grants=frozenset({action})), action, **other)


def test_a_reviewer_never_decides_for_another_department() -> None:
    reviewer = who(RV)
    authorize(reviewer, "decision.create", department="dept-a")
    with pytest.raises(ForbiddenError) as err:
        authorize(reviewer, "decision.create", department="dept-b")
    assert "only for its own department 'dept-a'" in err.value.message


def test_ops_sees_metadata_but_not_payloads_unless_granted() -> None:
    ops = who(OPS)
    authorize(ops, "messages.read", system="dept-b-sys")
    assert not is_allowed(ops, "payload.read", system="dept-b-sys")
    assert is_allowed(who(OPS, grants=frozenset({"payload.read"})), "payload.read")


def test_several_roles_add_up_and_unknown_actions_are_refused() -> None:
    both = Principal("t", "n", frozenset({RQ, RV}), department="dept-a")
    authorize(both, "application.create", department="dept-a")
    authorize(both, "decision.create", department="dept-a")
    with pytest.raises(ForbiddenError) as err:
        authorize(who(AD), "payload.delete")
    assert err.value.field == "action"
    assert not is_allowed(Principal("t", "n", frozenset()), "catalog.read")


def test_principal_without_department_never_matches_own_department() -> None:
    p = Principal("t", "n", frozenset({RQ}), department=None)
    assert not is_allowed(p, "application.create", department=None)


def test_role_names_are_checked() -> None:
    assert parse_roles(["ops", "admin"]) == {OPS, AD}
    with pytest.raises(Exception) as err:
        parse_roles(["root"])
    assert getattr(err.value, "code", None) == "E_PARAM"
