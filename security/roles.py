"""Roles, the authenticated :class:`Principal`, and graded authorization (分级授权).

The policy is one table, :data:`POLICY`: for every action, the roles that may perform it and
the *scope* each role is held to:

* ``ANY`` — the role may act on any department's / system's object;
* ``OWN_DEPARTMENT`` — only when ``department=`` (the department the object belongs to, see
  the table below) is the principal's own department: a department's reviewer never acts on
  another department's data;
* ``OWN_SYSTEM`` — only when ``system=`` is the principal's own system name;
* ``GRANTED`` — only when the principal carries the action itself as an explicit grant
  (``ops`` reads payloads only with a ``payload.read`` grant).

Anything not in the table is refused (unknown actions included): deny by default.

=====================  ===========================================  ============================
action                 roles (scope)                                ``department=`` / ``system=``
=====================  ===========================================  ============================
records.send           system (own system)                          system: the sending system
records.receive        system (own system)                          system: the receiving system
messages.read          system (own system), ops, admin              system: the message's source
payload.read           system (own system), ops (granted)           system: the message's source
dlq.read               ops, admin                                   —
dlq.replay             ops                                          —
dlq.discard            ops                                          —
monitoring.read        ops, admin                                   —
catalog.read           every role                                   —
application.create     requester (own department)                   department: requesting dept
application.read       requester (own department)                   department: requesting dept
application.review     reviewer (own department)                    department: dataset owner
decision.create        reviewer (own department)                    department: dataset owner
grant.read             requester (own department)                   department: grant holder
grant.review           reviewer (own department), admin             department: dataset owner
grant.revoke           reviewer (own department), admin             department: dataset owner
data.read              requester (own department)                   department: grant holder
onboarding.change      admin                                        —
keys.manage            admin                                        —
tokens.manage          admin                                        —
audit.read             admin                                        —
=====================  ===========================================  ============================

``data.read`` here only says *who may ask*; whether a grant covers the dataset, fields and
period is the sharing workflow's check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from hub.errors import ForbiddenError

__all__ = [
    "POLICY",
    "Principal",
    "Role",
    "Scope",
    "authorize",
    "is_allowed",
    "parse_roles",
]


class Role(StrEnum):
    """What a principal is for."""

    SYSTEM = "system"  # a connected system (接入系统): sends / receives its own data
    REQUESTER = "requester"  # 申请方: applies for and uses shared data
    REVIEWER = "reviewer"  # 审核方: decides applications for its department's datasets
    OPS = "ops"  # 运维: monitoring, dead letters, replay; metadata, not payloads
    ADMIN = "admin"  # 管理员: onboarding, keys, tokens


class Scope(StrEnum):
    """How far a role's permission for an action reaches."""

    ANY = "any"
    OWN_DEPARTMENT = "own_department"
    OWN_SYSTEM = "own_system"
    GRANTED = "granted"


_ALL = {r: Scope.ANY for r in Role}

#: action -> {role: scope}. Walked exhaustively by tests/security/test_roles_policy.py.
POLICY: Mapping[str, Mapping[Role, Scope]] = {
    "records.send": {Role.SYSTEM: Scope.OWN_SYSTEM},
    "records.receive": {Role.SYSTEM: Scope.OWN_SYSTEM},
    "messages.read": {Role.SYSTEM: Scope.OWN_SYSTEM, Role.OPS: Scope.ANY, Role.ADMIN: Scope.ANY},
    "payload.read": {Role.SYSTEM: Scope.OWN_SYSTEM, Role.OPS: Scope.GRANTED},
    "dlq.read": {Role.OPS: Scope.ANY, Role.ADMIN: Scope.ANY},
    "dlq.replay": {Role.OPS: Scope.ANY},
    "dlq.discard": {Role.OPS: Scope.ANY},
    "monitoring.read": {Role.OPS: Scope.ANY, Role.ADMIN: Scope.ANY},
    "catalog.read": _ALL,
    "application.create": {Role.REQUESTER: Scope.OWN_DEPARTMENT},
    "application.read": {Role.REQUESTER: Scope.OWN_DEPARTMENT},
    "application.review": {Role.REVIEWER: Scope.OWN_DEPARTMENT},
    "decision.create": {Role.REVIEWER: Scope.OWN_DEPARTMENT},
    "grant.read": {Role.REQUESTER: Scope.OWN_DEPARTMENT},
    "grant.review": {Role.REVIEWER: Scope.OWN_DEPARTMENT, Role.ADMIN: Scope.ANY},
    "grant.revoke": {Role.REVIEWER: Scope.OWN_DEPARTMENT, Role.ADMIN: Scope.ANY},
    "data.read": {Role.REQUESTER: Scope.OWN_DEPARTMENT},
    "onboarding.change": {Role.ADMIN: Scope.ANY},
    "keys.manage": {Role.ADMIN: Scope.ANY},
    "tokens.manage": {Role.ADMIN: Scope.ANY},
    "audit.read": {Role.ADMIN: Scope.ANY},
}


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``id`` is stable and goes into the audit log (a token id, or ``oidc:<subject>``);
    ``department`` is the tenant (部门) it acts for; ``system`` is set for role ``system``;
    ``grants`` are extra action names explicitly granted (e.g. ``payload.read`` for ops);
    ``via`` says how it authenticated (``token`` or ``oidc``).
    """

    id: str
    name: str
    roles: frozenset[Role]
    department: str | None = None
    system: str | None = None
    grants: frozenset[str] = field(default_factory=frozenset)
    via: str = "token"

    def has(self, role: Role) -> bool:
        return role in self.roles


def parse_roles(names: Iterable[str], *, field_name: str = "roles") -> frozenset[Role]:
    """Role names to :class:`Role` values; an unknown name is an error naming the field."""
    from hub.errors import BadParameter

    out = set()
    for n in names:
        try:
            out.add(Role(n))
        except ValueError:
            allowed = ", ".join(r.value for r in Role)
            raise BadParameter(f"unknown role {n!r}; roles: {allowed}", field=field_name) from None
    return frozenset(out)


def _scope_holds(
    scope: Scope, p: Principal, action: str, department: str | None, system: str | None
) -> bool:
    if scope is Scope.ANY:
        return True
    if scope is Scope.OWN_DEPARTMENT:
        return department is not None and p.department is not None and department == p.department
    if scope is Scope.OWN_SYSTEM:
        return system is not None and p.system is not None and system == p.system
    return action in p.grants  # Scope.GRANTED


def is_allowed(
    principal: Principal, action: str, *, department: str | None = None, system: str | None = None
) -> bool:
    """True when some role of ``principal`` allows ``action`` in the given scope."""
    rules = POLICY.get(action)
    if not rules:
        return False
    return any(
        role in rules and _scope_holds(rules[role], principal, action, department, system)
        for role in principal.roles
    )


def authorize(
    principal: Principal, action: str, *, department: str | None = None, system: str | None = None
) -> None:
    """Return when ``principal`` may perform ``action`` on an object of ``department`` /
    ``system``; otherwise raise :class:`~hub.errors.ForbiddenError` (E_FORBIDDEN, 403) naming
    what was missing."""
    if is_allowed(principal, action, department=department, system=system):
        return
    rules = POLICY.get(action)
    who = f"{principal.id} ({', '.join(sorted(principal.roles)) or 'no role'})"
    if not rules:
        raise ForbiddenError(f"unknown action {action!r} is refused", field="action")
    mine = [r for r in principal.roles if r in rules]
    if not mine:
        need = ", ".join(sorted(rules))
        raise ForbiddenError(f"{who} may not {action}; it needs role {need}", field="role")
    scopes = {rules[r] for r in mine}
    if Scope.OWN_SYSTEM in scopes:
        raise ForbiddenError(
            f"{who} may {action} only for its own system {principal.system!r}, not {system!r}",
            field="system",
        )
    if Scope.OWN_DEPARTMENT in scopes:
        raise ForbiddenError(
            f"{who} may {action} only for its own department {principal.department!r}, "
            f"not {department!r}",
            field="department",
        )
    raise ForbiddenError(
        f"{who} may {action} only with an explicit {action!r} grant", field="grant"
    )
