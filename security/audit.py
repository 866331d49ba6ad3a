"""Tamper-evident audit log (全程留痕): who did what to which object, and how it ended.

Every entry is chained to the one before it::

    hash(n) = H(bytes.fromhex(prev_hash) || canonical_json(entry n without its hashes))
    prev_hash(1) = 64 × "0"

with H = SHA-256 (default) or SM3 (``hash: sm3``; served by ``cryptography`` through OpenSSL,
checked at start). The canonical JSON (RFC 8785) covers ``seq``, ``at``, ``actor`` (id,
department, role), ``action``, ``object``, ``outcome`` and ``details``, so changing, removing,
inserting or reordering an entry breaks the chain at that entry.

A chain alone does not stop someone who can write the file and recompute every hash after an
edit. **Signed checkpoints** do: every ``checkpoint_every`` entries (and on demand) the hub
signs ``{seq, hash, ...}`` of the head with its own key (any object with ``key_id``,
``algorithm`` and ``sign(bytes) -> bytes``, e.g. a keystore signer). A rewritten history no
longer matches a signed hash; entries after the last checkpoint are protected only by the chain
(the report says how many).

Event kinds (``action``):

====================  =========================================================
action                meaning
====================  =========================================================
token.created         a bearer token was issued (object: token id)
token.used            a bearer token was presented (outcome ok, or denied + reason)
token.revoked         a bearer token was revoked
login                 a person or system signed in through the identity provider (JWT)
onboarding.changed    a connected system's configuration was added/changed/removed
key.changed           a key was generated, rotated, revoked or a peer key onboarded
application.*         sharing application steps (application.submitted, .withdrawn ...)
decision.*            reviewer decisions (decision.approved, decision.rejected ...)
grant.*               grants (grant.issued, grant.revoked, grant.expired ...)
data.access           shared data was read (object: dataset; details: grant, fields, rows)
dlq.replay            a dead letter was replayed
dlq.discard           a dead letter was discarded
====================  =========================================================

Outcomes: ``ok``, ``denied`` (refused by policy/authentication), ``failed`` (an error).
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, Protocol

import orjson
from cryptography.hazmat.backends.openssl.backend import backend as _ossl
from cryptography.hazmat.primitives import hashes
from pydantic import BaseModel, ConfigDict, Field

from hub.envelope import canonical_json
from hub.errors import BadParameter, ConfigError, StateError
from security.roles import Principal
from security.secdb import GENESIS, AuditEntry, CheckpointRow, SecurityDB

__all__ = [
    "EVENT_KINDS",
    "EXPORT_FORMAT",
    "Actor",
    "AuditEntry",
    "AuditLog",
    "AuditSettings",
    "CheckpointRow",
    "CheckpointSigner",
    "CheckpointVerifier",
    "HashName",
    "VerifyReport",
    "checkpoint_message",
    "entry_hash",
    "verifier_from_keys",
    "verify_export",
]

HashName = Literal["sha256", "sm3"]
Outcome = Literal["ok", "denied", "failed"]
EXPORT_FORMAT = "jghub-audit-export/1"

#: Event kinds: exact names, and families (``name.*``) whose members are ``name.<word>``.
EVENT_KINDS: dict[str, str] = {
    "token.created": "a bearer token was issued",
    "token.used": "a bearer token was presented (ok or denied)",
    "token.revoked": "a bearer token was revoked",
    "login": "sign-in through the identity provider (JWT)",
    "onboarding.changed": "a connected system's configuration changed",
    "key.changed": "a key was generated, rotated, revoked or onboarded",
    "application.*": "a sharing application step",
    "decision.*": "a reviewer's decision on an application",
    "grant.*": "a grant was issued, changed, revoked or expired",
    "data.access": "shared data was read",
    "dlq.replay": "a dead letter was replayed",
    "dlq.discard": "a dead letter was discarded",
    "signature.rejected": "an inbound request's signature did not verify (it was refused)",
    "access.denied": "an authenticated caller was refused by the role policy",
}
_FAMILY_MEMBER = re.compile(r"^([a-z]+)\.[a-z][a-z0-9_]*$")


class AuditSettings(BaseModel):
    """``security.audit`` in hub.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hash: HashName = Field("sha256", description="chain hash: sha256 or sm3")
    checkpoint_every: int = Field(
        1000, ge=1, description="sign a checkpoint after this many entries"
    )
    checkpoint_key: str | None = Field(
        None, description="id of the hub's own key that signs checkpoints (keys.own)"
    )


class CheckpointSigner(Protocol):
    """What signs checkpoints: the hub's own key (the keystore's signers fit)."""

    @property
    def key_id(self) -> str: ...

    @property
    def algorithm(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


#: ``verify(key_id, data, signature)``: returns when the signature is good, raises otherwise
#: (hub.errors.SignatureError, or any exception: all count as "does not verify").
CheckpointVerifier = Callable[[str, bytes, bytes], None]


class _VerifiesBytes(Protocol):
    def verify(self, data: bytes, signature: bytes) -> None: ...


def verifier_from_keys(keys: Mapping[str, _VerifiesBytes]) -> CheckpointVerifier:
    """A :data:`CheckpointVerifier` over ``{key id: object with verify(data, signature)}``;
    an unknown key id does not verify."""

    def verify(key_id: str, data: bytes, signature: bytes) -> None:
        key = keys.get(key_id)
        if key is None:
            raise LookupError(f"unknown checkpoint key {key_id!r}")
        key.verify(data, signature)

    return verify


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: a principal id (token id, JWT subject, ``system:<name>``, ``cli:<user>``)."""

    id: str
    department: str | None = None
    role: str | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        """The actor for an authenticated principal (its roles joined with ``,``)."""
        return cls(principal.id, principal.department, ",".join(sorted(principal.roles)) or None)


def _check_action(action: str) -> None:
    if action in EVENT_KINDS:
        return
    m = _FAMILY_MEMBER.match(action)
    if m and f"{m.group(1)}.*" in EVENT_KINDS:
        return
    raise BadParameter(
        f"unknown audit action {action!r}; known: {', '.join(EVENT_KINDS)}", field="action"
    )


def _digest(hash_name: str, data: bytes) -> bytes:
    h = hashes.Hash(hashes.SM3() if hash_name == "sm3" else hashes.SHA256())
    h.update(data)
    return h.finalize()


def _check_hash_supported(hash_name: str) -> None:
    if hash_name == "sm3" and not _ossl.hash_supported(hashes.SM3()):
        raise ConfigError(
            "hash: sm3 needs an OpenSSL with SM3 under the cryptography package", field="hash"
        )
    if hash_name not in ("sha256", "sm3"):
        raise ConfigError(f"unknown audit hash {hash_name!r}; use sha256 or sm3", field="hash")


def _entry_body(e: AuditEntry, details: Any) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "at": e.at,
        "actor": {"id": e.actor_id, "department": e.actor_department, "role": e.actor_role},
        "action": e.action,
        "object": e.object,
        "outcome": e.outcome,
        "details": details,
    }


def entry_hash(hash_name: str, entry: AuditEntry) -> str:
    """The hash an entry must carry: H(prev_hash bytes || canonical JSON of its content)."""
    details = orjson.loads(entry.details)
    body = canonical_json(_entry_body(entry, details))
    return _digest(hash_name, bytes.fromhex(entry.prev_hash) + body).hex()


def checkpoint_message(hash_name: str, seq: int, entry_hash_hex: str, at: str, key_id: str,
                       algorithm: str) -> bytes:  # fmt: skip
    """The exact bytes a checkpoint signature covers (RFC 8785 canonical JSON)."""
    return canonical_json(
        {
            "type": "jghub-audit-checkpoint",
            "hash_alg": hash_name,
            "seq": seq,
            "hash": entry_hash_hex,
            "at": at,
            "key_id": key_id,
            "algorithm": algorithm,
        }
    )


def _now_text(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class VerifyReport:
    """What :meth:`AuditLog.verify` / :func:`verify_export` found.

    ``ok`` only when the chain is whole and every checkpoint matches and (when a verifier was
    given) verifies. ``first_bad_seq`` names the first entry found bad and ``problem`` says
    why; ``problems`` lists all findings (seq, text). ``unsigned_tail`` counts entries after
    the last good checkpoint (protected by the chain only).
    """

    ok: bool = True
    entries: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    first_bad_seq: int | None = None
    problem: str | None = None
    problems: list[tuple[int, str]] = field(default_factory=list)
    checkpoints: int = 0
    checkpoints_verified: int = 0
    signatures_checked: bool = False
    last_signed_seq: int | None = None
    unsigned_tail: int = 0

    def __str__(self) -> str:
        if not self.ok:
            return f"audit log BAD at entry {self.first_bad_seq}: {self.problem}"
        sig = (
            f"{self.checkpoints_verified}/{self.checkpoints} checkpoint signature(s) verified"
            if self.signatures_checked
            else f"{self.checkpoints} checkpoint(s), signatures NOT checked (no keys given)"
        )
        return (
            f"audit log OK: {self.entries} entries, head {self.head_seq} {self.head_hash[:16]}…; "
            f"{sig}; {self.unsigned_tail} entr(y/ies) after the last signed checkpoint"
        )


class _ChainChecker:
    """Walks entries in seq order and checkpoints; shared by the database and the export."""

    def __init__(
        self,
        hash_name: str,
        checkpoints: list[CheckpointRow],
        verify: CheckpointVerifier | None,
        *,
        first_seq: int = 1,
        prev_hash: str = GENESIS,
    ) -> None:
        self.hash_name = hash_name
        self.verify = verify
        self.first_seq = first_seq
        self.expected = first_seq
        self.prev = prev_hash
        self.broken = False
        self.by_seq = {cp.seq: cp for cp in checkpoints}
        self.report = VerifyReport(checkpoints=len(checkpoints), signatures_checked=bool(verify))
        self.good_cp: list[int] = []

    def _bad(self, seq: int, text: str) -> None:
        self.report.problems.append((seq, text))

    def feed(self, e: AuditEntry) -> None:
        if self.broken:
            return
        r = self.report
        if e.seq != self.expected:
            self._bad(self.expected, f"entry {self.expected} is missing (the next is {e.seq})")
            self.broken = True
            return
        if e.prev_hash != self.prev:
            self._bad(e.seq, f"entry {e.seq} does not link to entry {e.seq - 1} (prev_hash)")
            self.broken = True
            return
        try:
            computed = entry_hash(self.hash_name, e)
        except (orjson.JSONDecodeError, ValueError, TypeError):
            computed = ""
        if computed != e.hash:
            self._bad(e.seq, f"entry {e.seq} was changed (its content does not match its hash)")
            self.broken = True
            return
        cp = self.by_seq.get(e.seq)
        if cp is not None:
            self._check_checkpoint(cp, e.hash)
        r.entries += 1
        r.head_seq, r.head_hash = e.seq, e.hash
        self.prev = e.hash
        self.expected = e.seq + 1

    def _check_checkpoint(self, cp: CheckpointRow, actual: str) -> None:
        if cp.hash != actual:
            self._bad(
                cp.seq,
                f"entry {cp.seq} differs from the signed checkpoint (the log was rewritten "
                f"at or before entry {cp.seq})",
            )
            return
        if self.verify is not None:
            msg = checkpoint_message(
                self.hash_name, cp.seq, cp.hash, cp.at, cp.key_id, cp.algorithm
            )
            try:
                self.verify(cp.key_id, msg, base64.b64decode(cp.signature, validate=True))
            except Exception as exc:
                self._bad(
                    cp.seq,
                    f"checkpoint at entry {cp.seq}: signature by {cp.key_id!r} does not verify "
                    f"(forged or wrong key: {exc.__class__.__name__})",
                )
                return
            self.report.checkpoints_verified += 1
        self.good_cp.append(cp.seq)

    def finish(self) -> VerifyReport:
        r = self.report
        if not self.broken:
            beyond = [seq for seq in self.by_seq if seq > r.head_seq]
            if beyond:
                self._bad(
                    r.head_seq + 1,
                    f"entries {r.head_seq + 1}..{max(beyond)} were removed from the end (a "
                    f"signed checkpoint names entry {max(beyond)}; the log ends at {r.head_seq})",
                )
        if r.problems:
            r.ok = False
            r.problems.sort()
            r.first_bad_seq, r.problem = r.problems[0]
        r.last_signed_seq = max(self.good_cp) if self.good_cp else None
        signed_upto = r.last_signed_seq if r.last_signed_seq is not None else self.first_seq - 1
        r.unsigned_tail = max(0, r.head_seq - signed_upto) if r.entries else 0
        return r


class AuditLog:
    """The audit log over a :class:`~security.secdb.SecurityDB`.

    ``signer`` signs a checkpoint every ``checkpoint_every`` entries (inside the append's
    transaction, so no entry slips between the head and its checkpoint); without a signer no
    checkpoints are written. ``verify`` checks checkpoint signatures in :meth:`verify`.
    """

    def __init__(
        self,
        db: SecurityDB,
        *,
        hash_name: HashName = "sha256",
        checkpoint_every: int = 1000,
        signer: CheckpointSigner | None = None,
        verify: CheckpointVerifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _check_hash_supported(hash_name)
        self.db = db
        self.hash_name: HashName = hash_name
        self.checkpoint_every = checkpoint_every
        self.signer = signer
        self.verifier = verify
        self.clock = clock
        self._checked = False

    @classmethod
    def from_settings(
        cls,
        db: SecurityDB,
        settings: AuditSettings,
        *,
        signer: CheckpointSigner | None = None,
        verify: CheckpointVerifier | None = None,
    ) -> AuditLog:
        """Build from the ``security.audit`` config section."""
        return cls(
            db,
            hash_name=settings.hash,
            checkpoint_every=settings.checkpoint_every,
            signer=signer,
            verify=verify,
        )

    async def _check_algorithm(self) -> None:
        if self._checked:
            return
        stored = await self.db.meta_setdefault("audit.hash", self.hash_name)
        if stored != self.hash_name:
            raise StateError(
                f"the audit log is chained with {stored}, the configuration says "
                f"{self.hash_name}; a chain cannot change its hash",
                field="hash",
            )
        self._checked = True

    def _checkpoint_for(self, seq: int, head_hash: str, at: str) -> CheckpointRow | None:
        if self.signer is None:
            return None
        s = self.signer
        msg = checkpoint_message(self.hash_name, seq, head_hash, at, s.key_id, s.algorithm)
        sig = base64.b64encode(s.sign(msg)).decode()
        return CheckpointRow(seq, at, head_hash, s.key_id, s.algorithm, sig)

    async def append(
        self,
        action: str,
        *,
        actor: Actor | Principal,
        object: str | None = None,
        outcome: Outcome = "ok",
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Append one entry (and a signed checkpoint when one is due); return it.

        ``details`` must be JSON (it is stored as RFC 8785 canonical JSON). Unknown ``action``
        names are refused (E_PARAM) so that the event vocabulary stays documented.
        """
        _check_action(action)
        if outcome not in ("ok", "denied", "failed"):
            raise BadParameter(f"unknown outcome {outcome!r}", field="outcome")
        await self._check_algorithm()
        who = actor if isinstance(actor, Actor) else Actor.of(actor)
        try:
            details_text = canonical_json(dict(details or {})).decode()
        except Exception as exc:  # rfc8785 raises its own errors for non-JSON values
            raise BadParameter(f"details must be JSON: {exc}", field="details") from None
        at = _now_text(self.clock())

        def make(seq: int, prev: str) -> tuple[AuditEntry, CheckpointRow | None]:
            draft = AuditEntry(
                seq, at, who.id, who.department, who.role, action, object, outcome,
                details_text, prev, "",
            )  # fmt: skip
            entry = replace(draft, hash=entry_hash(self.hash_name, draft))
            cp = None
            if seq % self.checkpoint_every == 0:
                cp = self._checkpoint_for(seq, entry.hash, at)
            return entry, cp

        return await self.db.audit_append(make)

    async def checkpoint(self) -> CheckpointRow | None:
        """Sign a checkpoint for the current head now (e.g. at shutdown or before an export).
        None when the log is empty or no signer is configured."""
        if self.signer is None:
            return None
        await self._check_algorithm()
        at = _now_text(self.clock())
        return await self.db.audit_checkpoint(lambda seq, h: self._checkpoint_for(seq, h, at))

    async def _entries(self, after: int, upto: int, page: int = 1000) -> AsyncIterator[AuditEntry]:
        while True:
            rows = await self.db.audit_page(after, upto, page)
            for r in rows:
                yield r
            if len(rows) < page:
                return
            after = rows[-1].seq

    async def verify(self) -> VerifyReport:
        """Walk the whole log and its checkpoints; see :class:`VerifyReport`."""
        stored = await self.db.meta_get("audit.hash") or self.hash_name
        head = await self.db.audit_head()
        last = head[0] if head else 0
        cps = await self.db.audit_checkpoints(1, 2**62)
        checker = _ChainChecker(stored, cps, self.verifier)
        async for e in self._entries(0, last):
            checker.feed(e)
        return checker.finish()

    async def export(self, start: date, end: date) -> AsyncIterator[str]:
        """JSON Lines for inspectors: the entries written from ``start`` to ``end`` (whole UTC
        days, inclusive), preceded by a header holding the hash algorithm and the ``prev_hash``
        the first entry chains to, followed by the signed checkpoints in that range. With the
        hub's public key, :func:`verify_export` re-verifies it offline."""
        if end < start:
            raise BadParameter("--to is before --from", field="to")
        t0 = datetime(start.year, start.month, start.day, tzinfo=UTC)
        t1 = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
        fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
        stored = await self.db.meta_get("audit.hash") or self.hash_name
        rng = await self.db.audit_seq_range(t0.strftime(fmt), t1.strftime(fmt))
        first, last = rng if rng else (0, -1)
        head = await self.db.audit_page(first - 1, last, 1) if rng else []
        header = {
            "type": "header",
            "format": EXPORT_FORMAT,
            "hash_alg": stored,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "first_seq": first if rng else None,
            "last_seq": last if rng else None,
            "prev_hash": head[0].prev_hash if head else None,
            "hash_rule": "hash = H(bytes.fromhex(prev_hash) || RFC 8785 JSON of "
            "{seq, at, actor, action, object, outcome, details})",
            "checkpoint_rule": "signature over RFC 8785 JSON of {type: jghub-audit-checkpoint, "
            "hash_alg, seq, hash, at, key_id, algorithm}",
        }
        yield orjson.dumps(header).decode()
        if not rng:
            return
        async for e in self._entries(first - 1, last):
            doc = _entry_body(e, orjson.loads(e.details))
            doc.update(type="entry", prev_hash=e.prev_hash, hash=e.hash)
            yield orjson.dumps(doc).decode()
        for cp in await self.db.audit_checkpoints(first, last):
            yield orjson.dumps({"type": "checkpoint", **_cp_dict(cp)}).decode()


def _cp_dict(cp: CheckpointRow) -> dict[str, Any]:
    return {
        "seq": cp.seq,
        "at": cp.at,
        "hash": cp.hash,
        "key_id": cp.key_id,
        "algorithm": cp.algorithm,
        "signature": cp.signature,
    }


def verify_export(
    lines: Iterable[str | bytes], verify: CheckpointVerifier | None = None
) -> VerifyReport:
    """Re-verify an export offline (what an inspector runs): the chain from the header's
    ``prev_hash``, every entry's hash, and every checkpoint's hash and signature."""
    header: dict[str, Any] | None = None
    entries: list[AuditEntry] = []
    cps: list[CheckpointRow] = []
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadParameter(f"line {n} is not JSON: {exc}", field=f"line {n}") from None
        kind = doc.get("type") if isinstance(doc, dict) else None
        if kind == "header":
            header = doc
        elif kind == "entry":
            a = doc.get("actor") or {}
            entries.append(
                AuditEntry(
                    seq=doc["seq"],
                    at=doc["at"],
                    actor_id=str(a.get("id") or ""),
                    actor_department=a.get("department"),
                    actor_role=a.get("role"),
                    action=doc["action"],
                    object=doc.get("object"),
                    outcome=doc["outcome"],
                    details=canonical_json(doc.get("details")).decode(),
                    prev_hash=doc["prev_hash"],
                    hash=doc["hash"],
                )
            )
        elif kind == "checkpoint":
            cps.append(CheckpointRow(**{k: doc[k] for k in CheckpointRow.__slots__}))
        else:
            raise BadParameter(f"line {n}: unknown line type {kind!r}", field=f"line {n}")
    if header is None or header.get("format") != EXPORT_FORMAT:
        raise BadParameter(f"not a {EXPORT_FORMAT} file (no header line)", field="header")
    first = header.get("first_seq") or 1
    checker = _ChainChecker(
        str(header["hash_alg"]),
        cps,
        verify,
        first_seq=first,
        prev_hash=header.get("prev_hash") or GENESIS,
    )
    for e in entries:
        checker.feed(e)
    report = checker.finish()
    last = header.get("last_seq")
    if last is not None and not report.problems and report.head_seq != last:
        report.problems.append(
            (report.head_seq + 1, f"entries after {report.head_seq} are missing")
        )
        report.ok = False
        report.first_bad_seq, report.problem = report.problems[0]
    return report
