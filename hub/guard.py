"""The hub's security at run time (统一身份认证、授权、审计): who is calling, may they, did the
sending system sign what it sent, and the audit trail of all of it.

Built by :class:`hub.runtime.Hub` from three optional parts of the hub file:

* ``keys:`` — the keystore (:mod:`security.keystore`): the hub's own keys sign outbound
  requests and audit checkpoints; peers' keys verify inbound RFC 9421 signatures;
* ``security:`` — the security database (tokens, audit log), token and OIDC settings, field
  encryption, the replay window. With this section every API route but the health checks needs
  a credential and a role (:mod:`security.roles`); without it the hub runs as before (systems'
  static ``inbound.token``, operations routes open on a trusted network);
* ``listen.tls:`` — TLS for the listener, with mutual TLS per system.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import BaseModel, ConfigDict, Field

from hub.config import HubConfig, SystemConfig, validate_loaded_section
from hub.errors import AuthError, HubError, SignatureError
from hub.plugins import Registry
from hub.specs import Signer
from hub.store.base import NonceClaim

__all__ = ["Guard", "SecuritySettings", "StoreNonces", "system_principal"]

log = logging.getLogger("jghub.guard")


class MaskRuleConfig(BaseModel):
    """One masking rule (security.masking): ``path`` masked as ``kind`` for every caller but
    the roles in ``reveal_to`` and holders of the ``reveal_grant`` grant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    kind: str = Field(description="id_card, phone, name, address, partial or full")
    reveal_to: list[str] = Field(default_factory=list)
    reveal_grant: str | None = None
    keep_start: int | None = Field(None, ge=0)
    keep_end: int | None = Field(None, ge=0)


class SecuritySettings(BaseModel):
    """The ``security:`` section of the hub file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    db: dict[str, Any] = Field(default_factory=dict, description="security database (SQLite)")
    tokens: dict[str, Any] = Field(default_factory=dict, description="bearer token settings")
    audit: dict[str, Any] = Field(default_factory=dict, description="audit log settings")
    oidc: dict[str, Any] | None = Field(None, description="provincial identity provider (JWT)")
    fieldcrypt: dict[str, Any] | None = Field(None, description="field encryption at rest")
    replay_window: float = Field(
        300.0, gt=0, le=3600, description="seconds a signed request is fresh (± clock skew)"
    )
    masking: dict[str, list[MaskRuleConfig]] = Field(
        default_factory=dict,
        description="dataset -> fields masked on output unless the caller's role reveals them",
    )


class StoreNonces:
    """The hub store as the nonce cache of :mod:`security.replay` (nonces live in the store,
    expiring with the signature window)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def remember(self, key_id: str, nonce: str, expires_at: float) -> bool:
        return bool(await self.store.remember_nonce(key_id, nonce, expires_at))


def system_principal(system: str) -> Any:
    """The principal of a system that authenticated with its static ``inbound.token``."""
    from security.roles import Principal, Role

    return Principal(
        f"system:{system}", system, frozenset({Role.SYSTEM}), system=system, via="static-token"
    )


@dataclass(slots=True)
class _Parts:
    settings: SecuritySettings
    db_settings: Any
    token_settings: Any
    audit_settings: Any
    oidc_settings: Any
    fieldcrypt_settings: Any


class Guard:
    """Keys, credentials, roles, replay protection and the audit log of one hub."""

    def __init__(
        self, config: HubConfig, registry: Registry, store: Any, clock: Callable[[], float]
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.keystore: Any = None
        self.verifier: Any = None
        self.parts: _Parts | None = None
        self.audit: Any = None
        self.authenticator: Any = None
        self.keyring: Any = None
        #: field ciphers by dataset (security.fieldcrypt), ready after start()
        self.ciphers: dict[str, Any] = {}
        self.mask_rules: dict[str, list[Any]] = {}
        self._db: Any = None
        self._oidc: Any = None
        self.nonces = StoreNonces(store)
        file = config.base_dir / "hub.yaml" if config.source_file is None else config.source_file
        if config.keys is not None:
            from security.keystore import KeysConfig, Keystore

            keys_cfg = self._section(KeysConfig, config.keys, ("keys",), file)
            self.keystore = Keystore.from_config(
                keys_cfg, base_dir=config.base_dir, signers=registry.signers.specs
            )
            # loaded now, not by the first signed request (its regular expressions compile
            # at import: a first request would wait for them)
            from security.httpsig import BatchVerifier
            from security.replay import nonce_claim

            self._nonce_claim = nonce_claim  # not imported by every signed request

            #: checks the signatures of concurrent requests in batches off the event loop
            self.verifier = BatchVerifier()
        if config.security is not None:
            from security.audit import AuditSettings
            from security.fieldcrypt import FieldCryptSettings
            from security.oidc import OidcSettings
            from security.secdb import SecurityDBSettings
            from security.tokens import TokenSettings

            s: SecuritySettings = self._section(
                SecuritySettings, config.security, ("security",), file
            )
            self.parts = _Parts(
                s,
                self._section(SecurityDBSettings, s.db, ("security", "db"), file),
                self._section(TokenSettings, s.tokens, ("security", "tokens"), file),
                self._section(AuditSettings, s.audit, ("security", "audit"), file),
                None
                if s.oidc is None
                else self._section(OidcSettings, s.oidc, ("security", "oidc"), file),
                None
                if s.fieldcrypt is None
                else self._section(
                    FieldCryptSettings, s.fieldcrypt, ("security", "fieldcrypt"), file
                ),
            )

    @staticmethod
    def _section(model: type[BaseModel], data: Any, prefix: tuple[Any, ...], file: Path) -> Any:
        return validate_loaded_section(model, data, file, prefix)

    # ------------------------------------------------------------------ lifecycle

    @property
    def enabled(self) -> bool:
        """Every route needs a credential and a role (the ``security:`` section is there)."""
        return self.parts is not None

    @property
    def replay_window(self) -> float:
        return self.parts.settings.replay_window if self.parts else 300.0

    async def start(self, *, record_changes: bool = True) -> None:
        """Open the security database and build the services. ``record_changes``: compare the
        systems' configuration and the keys with what the last start saw and audit every
        difference (``onboarding.changed``, ``key.changed``); once per node, not per process."""
        if self.parts is None:
            return
        from security.audit import AuditLog, verifier_from_keys
        from security.secdb import open_security_db
        from security.tokens import Authenticator, TokenService

        p = self.parts
        self._db = open_security_db(p.db_settings, self.config.base_dir)
        await self._db.open()
        signer = verify = None
        key_id = p.audit_settings.checkpoint_key
        if key_id is not None:
            if self.keystore is None:
                raise HubError(
                    f"security.audit.checkpoint_key {key_id!r} needs a keys: section",
                    field="security.audit.checkpoint_key",
                )
            signer = self.keystore.get(key_id).signer
            verify = verifier_from_keys({k.key_id: k.signer for k in self.keystore.entries()})
        self.audit = AuditLog.from_settings(
            self._db, p.audit_settings, signer=signer, verify=verify
        )
        tokens = TokenService(
            self._db,
            pepper=p.token_settings.pepper(),
            audit=self.audit,
            use_interval=p.token_settings.use_interval,
            clock=self.clock,
        )
        if p.oidc_settings is not None:
            from security.oidc import OidcVerifier

            self._oidc = OidcVerifier(
                p.oidc_settings, audit=self.audit, base_dir=self.config.base_dir
            )
        self.authenticator = Authenticator(tokens, self._oidc)
        if p.fieldcrypt_settings is not None:
            from security.fieldcrypt import KeyRing, MasterKey

            master = MasterKey.load(p.fieldcrypt_settings, self.config.base_dir)
            self.keyring = KeyRing(self._db, master, clock=self.clock)
            await self.keyring.load()
            await self.keyring.ensure(p.fieldcrypt_settings.datasets)
            self.ciphers = {
                ds: self.keyring.cipher(ds, paths)
                for ds, paths in p.fieldcrypt_settings.datasets.items()
            }
        if record_changes:
            await self._record_changes()
        if p.settings.masking:
            from security.masking import MaskRule
            from security.roles import parse_roles

            self.mask_rules = {
                ds: [
                    MaskRule(
                        r.path,
                        r.kind,  # type: ignore[arg-type]
                        parse_roles(r.reveal_to, field_name=f"security.masking.{ds}.reveal_to"),
                        r.reveal_grant,
                        r.keep_start,
                        r.keep_end,
                    )
                    for r in rules
                ]
                for ds, rules in p.settings.masking.items()
            }

    async def _record_changes(self) -> None:
        """全程留痕 of onboarding: a system added, changed or removed, a key added, rotated,
        revoked or removed since the last start is appended to the audit log."""
        import hashlib

        import orjson

        from security.roles import Principal, Role

        hub = Principal(f"hub:{self.config.hub.name}", "hub", frozenset({Role.ADMIN}), via="config")
        seen: dict[str, str] = {}
        for name, sc in self.config.loaded_systems.items():
            doc = sc.model_dump(mode="json", exclude={"source_file"})
            seen[f"system:{name}"] = hashlib.sha256(
                orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
            ).hexdigest()
        if self.keystore is not None:
            for k in self.keystore.entries():
                fp = getattr(k.signer, "fingerprint", "?")
                state = f"{fp}|{k.valid_from}|{k.valid_until}|{k.revoked}|{k.owner}"
                seen[f"key:{k.key_id}"] = hashlib.sha256(state.encode()).hexdigest()
        before_raw = await self._db.meta_get("config.digests")
        before: dict[str, str] = orjson.loads(before_raw) if before_raw else {}
        for item in sorted(set(before) | set(seen)):
            old, new = before.get(item), seen.get(item)
            if old == new:
                continue
            kind, _, name = item.partition(":")
            what = "added" if old is None else ("removed" if new is None else "changed")
            action = "onboarding.changed" if kind == "system" else "key.changed"
            await self.record(action, hub, object=f"{kind} {name}", details={"change": what})
        await self._db.meta_set("config.digests", orjson.dumps(seen).decode())

    async def stop(self) -> None:
        if self.verifier is not None:
            self.verifier.close()
        if self.audit is not None and self.audit.signer is not None:
            try:
                await self.audit.checkpoint()  # sign the tail before stopping
            except Exception:
                log.exception("could not write the closing audit checkpoint")
        if self._oidc is not None:
            await self._oidc.close()
            self._oidc = None
        if self._db is not None:
            await self._db.close()
            self._db = None

    # ------------------------------------------------------------------ identity and roles

    async def principal(
        self, authorization: str | None, *, static_for: SystemConfig | None = None
    ) -> Any:
        """Authenticate a request. ``static_for``: the system whose static ``inbound.token``
        may also be presented (the records routes)."""
        import hmac

        inbound = static_for.inbound if static_for is not None else None
        if inbound is not None and inbound.token is not None and authorization:
            given = authorization.removeprefix("Bearer ").strip()
            if hmac.compare_digest(given.encode(), inbound.token.encode()):
                assert static_for is not None
                return system_principal(static_for.name)
        if self.authenticator is None:
            raise AuthError("this route needs a bearer token", field="Authorization")
        return await self.authenticator.authenticate(authorization)

    async def record(
        self,
        action: str,
        principal: Any,
        *,
        object: str | None = None,
        outcome: str = "ok",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Append an audit entry (a no-op without the ``security:`` section)."""
        if self.audit is None:
            return
        from security.audit import Actor

        actor = Actor.of(principal) if principal is not None else Actor("anonymous", "anonymous")
        await self.audit.append(
            action, actor=actor, object=object, outcome=outcome, details=dict(details or {})
        )

    # ------------------------------------------------------------------ signatures

    async def verify_inbound(
        self,
        system: SystemConfig,
        method: str,
        url: str | Callable[[], str],
        headers: Mapping[str, str],
        body: bytes,
        *,
        peer_identity: str | None,
        claims: list[NonceClaim] | None = None,
    ) -> str | None:
        """Check a request from ``system``: its RFC 9421 signature (required when the system's
        ``inbound.signed`` is true, verified whenever one is present), that the key belongs to
        the system, freshness and replay; and that a TLS client certificate, if one was shown,
        names the same system. Returns the key id that signed, or None (unsigned, allowed).
        ``url`` may be a function that builds it: only a signed request needs it.

        With ``claims`` (a list) the nonce is not remembered here: its :class:`NonceClaim` is
        appended, for the caller to commit with the request's records (``store.enqueue``) —
        or, if nothing is stored, with :meth:`settle_nonce`."""
        inbound = system.inbound
        if isinstance(headers, (CIMultiDictProxy, CIMultiDict)):  # case-insensitive already
            signed = "Signature" in headers
        else:
            signed = "signature" in {k.lower() for k in headers}
        must = inbound is not None and inbound.signed
        if peer_identity is not None:
            want = (inbound.tls_identity if inbound else None) or system.name
            if peer_identity != want:
                raise AuthError(
                    f"the client certificate identifies {peer_identity!r}, but the request is "
                    f"for system {system.name!r} (expected certificate identity {want!r})",
                    field="tls_identity",
                )
        if not signed:
            if must:
                raise SignatureError(
                    f"system {system.name!r} must sign its requests (RFC 9421 Signature and "
                    "Signature-Input headers are missing)",
                    field="Signature",
                )
            return None
        if self.keystore is None:
            raise SignatureError(
                "the request is signed, but this hub has no keys: section to verify it",
                field="Signature",
            )
        now = self.clock()
        window = self.replay_window
        if callable(url):
            url = url()
        sig = await self.verifier.verify_request(
            method, url, headers, body, keys=self.keystore, now=now, window=window
        )
        if sig.owner != system.name:
            raise SignatureError(
                f"key {sig.key_id!r} belongs to {sig.owner or 'the hub'}, not to system "
                f"{system.name!r}",
                field="keyid",
            )
        claim = self._nonce_claim(str(sig.key_id), sig.nonce, sig.created, window)
        if claims is None:
            await claim.settle(self.nonces.remember)
        else:
            claims.append(claim)
        return str(sig.key_id)

    async def settle_nonce(self, claim: NonceClaim) -> None:
        """Remember a deferred nonce that no records carried to the store (a request refused
        or holding only rejected records), so its replay is refused too; ``E_REPLAY`` if it
        was seen before."""
        await claim.settle(self.nonces.remember)

    def readable(self, dataset: str, record: dict[str, Any], principal: Any) -> dict[str, Any]:
        """A stored record as ``principal`` may see it: encrypted fields opened, then masked
        by the dataset's masking rules unless the principal's role reveals them."""
        cipher = self.ciphers.get(dataset)
        if cipher is not None:
            record = cipher.decrypt_fields(record)
        rules = self.mask_rules.get(dataset)
        if rules:
            from security.masking import mask_record

            record = mask_record(record, rules, principal)
        return record

    def server_ssl_context(self) -> ssl.SSLContext | None:
        """The listener's TLS context from ``listen.tls`` (mutual TLS per its client_auth)."""
        tls = self.config.listen.tls
        if tls is None:
            return None
        from security.tls import TlsServerSettings, server_context

        file = self.config.source_file or self.config.base_dir / "hub.yaml"
        settings: TlsServerSettings = self._section(TlsServerSettings, tls, ("listen", "tls"), file)
        base = self.config.base_dir

        def rel(p: Path) -> Path:
            return p if p.is_absolute() else base / p

        settings = settings.model_copy(
            update={
                "cert": rel(settings.cert),
                "key": rel(settings.key),
                "client_ca": [rel(c) for c in settings.client_ca],
            }
        )
        return server_context(settings)

    def verify_detached(self, system: str, payload: bytes, signature: str) -> str:
        """A detached signature (file batches, staging rows) by one of ``system``'s keys;
        returns the key id. No freshness window: a batch may wait in a folder for hours; a
        file is recognised again by its digest, not by a nonce."""
        if self.keystore is None:
            raise SignatureError(
                "a signature is required, but this hub has no keys: section to verify it",
                field="signature",
            )
        from security.httpsig import verify_detached

        sig = verify_detached(payload, signature, keys=self.keystore, now=self.clock())
        if sig.owner != system:
            raise SignatureError(
                f"key {sig.key_id!r} belongs to {sig.owner or 'the hub'}, not to system {system!r}",
                field="keyid",
            )
        return str(sig.key_id)

    def outbound_signer(self) -> Callable[[], Signer] | None:
        """What transports call to get the key that signs now (None without own keys)."""
        ks = self.keystore
        if ks is None or not any(k.owner is None for k in ks.entries()):
            return None
        return lambda: ks.signer(time.time())
