"""Keystore: the hub's own signing keys and the keys of the systems it talks to.

Config (a ``keys:`` section of ``hub.yaml``; paths are relative to that file)::

    keys:
      own:
        - {id: hub-2026, algorithm: ed25519, private_key: keys/hub-2026.pem,
           passphrase_env: HUB_KEY_PASS, valid_until: 2027-01-31}
        - {id: hub-2027, algorithm: ed25519, private_key: keys/hub-2027.pem,
           passphrase_env: HUB_KEY_PASS, valid_from: 2027-01-01}
      peers:
        dept-a:
          - {id: dept-a-1, algorithm: ed25519, public_key: keys/dept-a-1.pub.pem,
             valid_until: 2027-01-31}
          - {id: dept-a-hmac, algorithm: hmac-sha256, secret_env: DEPT_A_SECRET}

Rules:

* A key verifies while it is valid (``valid_from`` ≤ t < end of ``valid_until``) and not
  ``revoked``. Bare dates and naive times are China Standard Time (UTC+8); ``valid_until`` is
  inclusive (the whole day).
* Of the own keys valid now, only the one with the latest ``valid_from`` signs. Rotation: add
  the new key with ``valid_from`` = the day peers have its public key, and give the old key a
  ``valid_until`` some days later; until then signatures of both verify (``jghub keys rotate``).
* Each key id is unique across own and peer keys (it is the ``keyid`` of RFC 9421).
* The options other than ``id``/``algorithm``/validity go to the algorithm's signer spec
  (:mod:`security.signing`), whose config model rejects unknown keys.

Secrets (private keys, shared secrets, passphrases) are read from files and environment
variables, never from YAML, and never appear in ``repr``, logs or error messages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hub.config import load_yaml_file, validate_section
from hub.errors import ConfigError, HubError, SignatureError
from hub.specs import Signer, SignerSpec
from security.signing import SIGNER_SPECS, ResolvedKey

__all__ = [
    "CHINA_TZ",
    "KeyEntry",
    "KeysConfig",
    "Keystore",
    "ManagedKey",
    "load_keys_section",
]

#: Time zone of bare dates and naive times in key validity (China Standard Time, no DST).
CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "CST")

KeyState = Literal["valid", "revoked", "expired", "not yet valid"]


class KeyEntry(BaseModel):
    """One key in YAML. Besides the fields below, the algorithm's own options (``private_key``,
    ``public_key``, ``passphrase_env``, ``secret_env`` ...) are checked by its signer spec."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str
    algorithm: str
    valid_from: dt.datetime | dt.date | None = Field(None, description="first moment it is valid")
    valid_until: dt.datetime | dt.date | None = Field(
        None, description="last moment (a date: the whole day) it is valid"
    )
    revoked: bool = Field(False, description="a revoked key never verifies nor signs")

    def options(self) -> dict[str, Any]:
        """The options handed to the algorithm's signer spec."""
        return {"id": self.id, **(self.model_extra or {})}


class KeysConfig(BaseModel):
    """The ``keys:`` section: ``own`` keys sign, ``peers`` (by system name) verify."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    own: list[KeyEntry] = Field(default_factory=list)
    peers: dict[str, list[KeyEntry]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_ids(self) -> KeysConfig:
        seen: set[str] = set()
        for entry in [*self.own, *(e for entries in self.peers.values() for e in entries)]:
            if entry.id in seen:
                raise ValueError(f"key id {entry.id!r} is used twice; key ids must be unique")
            seen.add(entry.id)
        return self


def _start(value: dt.datetime | dt.date | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=CHINA_TZ)
        return aware.timestamp()
    return dt.datetime(value.year, value.month, value.day, tzinfo=CHINA_TZ).timestamp()


def _end(value: dt.datetime | dt.date | None) -> float | None:
    """Exclusive end: a date means the end of that day."""
    if value is None or isinstance(value, dt.datetime):
        return _start(value)
    return _start(value + dt.timedelta(days=1))


@dataclass(slots=True)
class ManagedKey:
    """A key with its owner (``None`` = the hub itself), validity and revocation."""

    signer: Signer
    owner: str | None = None
    valid_from: float | None = None
    valid_until: float | None = None  # exclusive
    revoked: bool = False

    @property
    def key_id(self) -> str:
        """The key's id (``keyid``)."""
        return self.signer.key_id

    def state(self, at: float) -> KeyState:
        """``valid``, ``revoked``, ``expired`` or ``not yet valid`` at ``at`` (Unix seconds)."""
        if self.revoked:
            return "revoked"
        if self.valid_from is not None and at < self.valid_from:
            return "not yet valid"
        if self.valid_until is not None and at >= self.valid_until:
            return "expired"
        return "valid"


class Keystore:
    """Keys by id. Implements :class:`security.signing.KeyResolver` for
    :func:`security.httpsig.verify_request`; :meth:`signer` picks the key that signs now."""

    def __init__(self, keys: Iterable[ManagedKey] = ()) -> None:
        self._keys: dict[str, ManagedKey] = {}
        self._order: list[str] = []
        for key in keys:
            self.add(key)

    def add(self, key: ManagedKey) -> None:
        """Add a key; its id must be new."""
        if key.key_id in self._keys:
            raise ConfigError(f"key id {key.key_id!r} is used twice", field="keys")
        self._keys[key.key_id] = key
        self._order.append(key.key_id)

    @classmethod
    def from_config(
        cls,
        config: KeysConfig,
        *,
        base_dir: Path,
        signers: Mapping[str, SignerSpec] | None = None,
    ) -> Keystore:
        """Load every key of ``config``. ``signers`` are the registered signer specs (the
        hub's ``registry.signers.specs``); the built-in ones by default."""
        specs = signers if signers is not None else {s.name: s for s in SIGNER_SPECS}
        store = cls()
        located: list[tuple[str, str | None, int, KeyEntry]] = [
            (f"keys.own[{i}]", None, i, e) for i, e in enumerate(config.own)
        ]
        for system, entries in config.peers.items():
            located += [(f"keys.peers.{system}[{i}]", system, i, e) for i, e in enumerate(entries)]
        for where, owner, _, entry in located:
            signer = _build(entry, specs, base_dir, where)
            store.add(
                ManagedKey(
                    signer,
                    owner=owner,
                    valid_from=_start(entry.valid_from),
                    valid_until=_end(entry.valid_until),
                    revoked=entry.revoked,
                )
            )
        return store

    def entries(self) -> list[ManagedKey]:
        """Every key, own keys first, in config order."""
        return [self._keys[k] for k in self._order]

    def get(self, key_id: str) -> ManagedKey:
        """The key named ``key_id`` whatever its state; :class:`SignatureError` if unknown."""
        try:
            return self._keys[key_id]
        except KeyError:
            raise SignatureError(f"unknown key id {key_id!r}", field="keyid") from None

    def revoke(self, key_id: str) -> None:
        """Revoke a key at once (in memory; also set ``revoked: true`` in the config)."""
        self.get(key_id).revoked = True

    def signer(self, at: float) -> Signer:
        """The own key that signs at ``at``: the valid one with the latest ``valid_from``."""
        best: ManagedKey | None = None
        for key in self.entries():
            if key.owner is not None or key.state(at) != "valid":
                continue
            if best is None or (key.valid_from or float("-inf")) >= (
                best.valid_from or float("-inf")
            ):
                best = key
        if best is None:
            raise ConfigError(
                "no own key is valid now: add one under keys.own (jghub keys generate)",
                field="keys.own",
            )
        return best.signer

    def resolve_key(self, key_id: str, at: float) -> ResolvedKey:
        """The key named ``key_id`` if it may verify at ``at``; else :class:`SignatureError`
        (field ``keyid``) saying whether it is unknown, revoked, expired or not yet valid."""
        key = self.get(key_id)
        state = key.state(at)
        if state != "valid":
            raise SignatureError(f"key {key_id!r} is {state}", field="keyid", key_state=state)
        return ResolvedKey(key.signer, key.owner)

    def __repr__(self) -> str:
        return f"<Keystore {len(self._keys)} keys: {', '.join(self._order)}>"


def _build(entry: KeyEntry, specs: Mapping[str, SignerSpec], base_dir: Path, where: str) -> Signer:
    spec = specs.get(entry.algorithm)
    if spec is None:
        raise ConfigError(
            f"{where}.algorithm: unknown algorithm {entry.algorithm!r}; "
            f"registered: {', '.join(sorted(specs))}",
            field=f"{where}.algorithm",
        )
    options = entry.options()
    for name in ("private_key", "public_key", "secret_file"):
        if isinstance(options.get(name), str):
            options[name] = base_dir / options[name]
    try:
        model = spec.config_model.model_validate(options)
    except ValidationError as exc:
        allowed = ["id", "algorithm", "valid_from", "valid_until", "revoked"]
        allowed += [k for k in spec.config_model.model_fields if k not in allowed]
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(entry)'}: {err['msg']}"
            for err in exc.errors(include_input=False)
        )
        first = exc.errors()[0]["loc"][0] if exc.errors() and exc.errors()[0]["loc"] else ""
        raise ConfigError(
            f"{where} ({entry.algorithm}): {problems}; allowed keys: {', '.join(allowed)}",
            field=f"{where}.{first}" if first else where,
        ) from None
    try:
        signer = spec.factory(model)
    except HubError as err:
        raise ConfigError(
            f"{where} (key {entry.id!r}): {err.message}",
            field=f"{where}.{err.field}" if err.field else where,
        ) from None
    if signer.key_id != entry.id or signer.algorithm != entry.algorithm:
        raise ConfigError(
            f"{where}: the {entry.algorithm!r} signer built key {signer.key_id!r} "
            f"({signer.algorithm}), expected {entry.id!r}",
            field=where,
        )
    return signer


def load_keys_section(path: Path) -> tuple[KeysConfig, Path]:
    """Read only the ``keys:`` section of a hub config file (the CLI's ``--config``); return
    it with the folder that relative key paths start from."""
    located = load_yaml_file(path)
    data = located.data.get("keys") or {}
    config: KeysConfig = validate_section(KeysConfig, data, path, located, prefix=("keys",))
    return config, path.parent
