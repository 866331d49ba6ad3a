"""Field-level encryption at rest with envelope keys.

* Each dataset has a **data key** (DEK), random, kept in the security database only *wrapped*
  (AEAD-encrypted) by the **master key** (KEK) read from a file or an environment variable.
  Rotating the master key re-wraps the data keys (:meth:`KeyRing.rewrap`) without touching
  any encrypted record; rotating a dataset's data key (:meth:`KeyRing.rotate_data_key`) makes
  new values use the new key while older keys stay to decrypt older values.
* A field value is replaced by ``enc:v1:<data key id>:<base64url(nonce ‖ ciphertext ‖ tag)>``;
  the plaintext is the value's JSON, so numbers, lists and objects come back as they were.
* The associated data is ``jghub-field:v1 \\0 dataset \\0 field path``: a value copied into
  another field or dataset does not decrypt (E_DECRYPT), nor does an altered one.

Algorithms: ``aes-256-gcm`` (default, 32-byte keys) and ``sm4-gcm`` (国密 SM4 in GCM mode,
16-byte keys, as in RFC 8998), both from ``cryptography`` — the OpenSSL under it provides
SM4-GCM here, so no extra library and no hand-built mode is needed; a build without SM4 is
refused at start (E_CONFIG). Nonces are 96 bits from ``os.urandom``, so one data key should
see fewer than 2^32 encryptions (rotate it long before that).

Field paths: dotted names, ``[]`` for every element of a list, e.g. ``法定代表人.证件号码`` or
``检查人员[].执法证号``. Missing fields and ``null`` are left alone; so is a plain (not
``enc:``) value met by :meth:`FieldCipher.decrypt_fields` (records written before encryption
was turned on).

Config (``security.fieldcrypt`` in hub.yaml)::

    fieldcrypt:
      algorithm: aes-256-gcm            # or sm4-gcm
      master_key_file: keys/master.key  # base64 of 32 (AES) / 16 (SM4) bytes; or master_key_env
      master_key_id: mk-2026
      datasets:
        penalty: [法定代表人证件号码, 行政相对人代码_1]
        inspection: ["检查人员[].执法证号"]
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.backends.openssl.backend import backend as _ossl
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.errors import ConfigError, DecryptError
from security.secdb import DataKeyRow, SecurityDB

__all__ = [
    "PREFIX",
    "Algorithm",
    "FieldCipher",
    "FieldCryptSettings",
    "KeyRing",
    "MasterKey",
    "is_encrypted",
    "map_path",
    "split_path",
]

Algorithm = Literal["aes-256-gcm", "sm4-gcm"]
PREFIX = "enc:v1:"
_KEY_LEN = {"aes-256-gcm": 32, "sm4-gcm": 16}
_NONCE = 12


class FieldCryptSettings(BaseModel):
    """``security.fieldcrypt`` in hub.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    algorithm: Algorithm = "aes-256-gcm"
    master_key_file: Path | None = Field(None, description="file with the base64 master key")
    master_key_env: str | None = Field(None, description="or an environment variable")
    master_key_id: str = Field("mk-1", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    datasets: dict[str, list[str]] = Field(
        default_factory=dict, description="dataset -> field paths to encrypt"
    )

    @model_validator(mode="after")
    def _one_source(self) -> FieldCryptSettings:
        if (self.master_key_file is None) == (self.master_key_env is None):
            raise ValueError("give exactly one of master_key_file and master_key_env")
        return self


class _AEAD(Protocol):
    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


class _SM4GCM:
    """SM4-GCM with the AESGCM calling convention (ciphertext ‖ 16-byte tag)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        enc = Cipher(algorithms.SM4(self._key), modes.GCM(nonce)).encryptor()
        if associated_data:
            enc.authenticate_additional_data(associated_data)
        return enc.update(data) + enc.finalize() + enc.tag

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        if len(data) < 16:
            raise InvalidTag()
        dec = Cipher(algorithms.SM4(self._key), modes.GCM(nonce, data[-16:])).decryptor()
        if associated_data:
            dec.authenticate_additional_data(associated_data)
        return dec.update(data[:-16]) + dec.finalize()


def _check_supported(algorithm: str) -> None:
    if algorithm not in _KEY_LEN:
        raise ConfigError(f"unknown algorithm {algorithm!r}", field="algorithm")
    if algorithm == "sm4-gcm" and not _ossl.cipher_supported(
        algorithms.SM4(b"\0" * 16), modes.GCM(b"\0" * _NONCE)
    ):
        raise ConfigError(
            "sm4-gcm needs an OpenSSL with SM4 under the cryptography package", field="algorithm"
        )


def _aead(algorithm: str, key: bytes) -> _AEAD:
    _check_supported(algorithm)
    if len(key) != _KEY_LEN[algorithm]:
        raise ConfigError(
            f"{algorithm} needs a {_KEY_LEN[algorithm]}-byte key, got {len(key)}", field="key"
        )
    return AESGCM(key) if algorithm == "aes-256-gcm" else _SM4GCM(key)


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class MasterKey:
    """The key-encryption key. Its bytes never appear in ``repr``."""

    id: str
    algorithm: Algorithm
    key: bytes

    def __repr__(self) -> str:
        return f"MasterKey(id={self.id!r}, algorithm={self.algorithm!r})"

    @classmethod
    def generate(cls, key_id: str, algorithm: Algorithm = "aes-256-gcm") -> MasterKey:
        """A new random master key (store ``base64.b64encode(mk.key)`` in a file or env var)."""
        return cls(key_id, algorithm, os.urandom(_KEY_LEN[algorithm]))

    @classmethod
    def from_text(cls, key_id: str, algorithm: Algorithm, text: str, *, where: str) -> MasterKey:
        """Parse base64 key text (as in a key file or environment variable)."""
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{where}: the master key is not base64", field=where) from None
        if len(raw) != _KEY_LEN[algorithm]:
            raise ConfigError(
                f"{where}: {algorithm} needs a {_KEY_LEN[algorithm]}-byte master key, "
                f"got {len(raw)}",
                field=where,
            )
        return cls(key_id, algorithm, raw)

    @classmethod
    def load(cls, settings: FieldCryptSettings, base_dir: Path = Path(".")) -> MasterKey:
        """Read the master key named by the settings (file or environment variable)."""
        _check_supported(settings.algorithm)
        if settings.master_key_env is not None:
            text = os.environ.get(settings.master_key_env)
            if text is None:
                raise ConfigError(
                    f"environment variable {settings.master_key_env} is not set",
                    field="master_key_env",
                )
            where = settings.master_key_env
        else:
            assert settings.master_key_file is not None
            f = settings.master_key_file
            f = f if f.is_absolute() else base_dir / f
            try:
                text = f.read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{f}: cannot read ({exc})", field="master_key_file") from None
            where = str(f)
        return cls.from_text(settings.master_key_id, settings.algorithm, text, where=where)


def _wrap_aad(row_id: str, dataset: str, algorithm: str) -> bytes:
    return f"jghub-data-key:v1\0{dataset}\0{row_id}\0{algorithm}".encode()


def _wrap(master: MasterKey, row_id: str, dataset: str, algorithm: str, key: bytes) -> str:
    nonce = os.urandom(_NONCE)
    aad = _wrap_aad(row_id, dataset, algorithm)
    return _b64e(nonce + _aead(master.algorithm, master.key).encrypt(nonce, key, aad))


def _unwrap(master: MasterKey, row: DataKeyRow) -> bytes:
    blob = _b64d(row.wrapped)
    aad = _wrap_aad(row.id, row.dataset, row.algorithm)
    try:
        return _aead(master.algorithm, master.key).decrypt(blob[:_NONCE], blob[_NONCE:], aad)
    except InvalidTag:
        raise ConfigError(
            f"data key {row.id} ({row.dataset}) does not unwrap with master key {master.id}: "
            "wrong master key, or the key row was altered",
            field="master_key",
        ) from None


@dataclass(frozen=True, slots=True)
class _DataKey:
    id: str
    dataset: str
    algorithm: str
    aead: _AEAD


class KeyRing:
    """The data keys of every dataset, unwrapped in memory after :meth:`load`.

    ``previous`` master keys (by id) let it read data keys a rotation has not re-wrapped yet.
    """

    def __init__(
        self,
        db: SecurityDB,
        master: MasterKey,
        *,
        previous: Iterable[MasterKey] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.master = master
        self._masters = {m.id: m for m in previous}
        self._masters[master.id] = master
        self.clock = clock
        self._keys: dict[str, _DataKey] = {}
        self._active: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"KeyRing(master={self.master.id!r}, data_keys={len(self._keys)})"

    async def load(self) -> None:
        """Read and unwrap every data key (E_CONFIG when one cannot be unwrapped)."""
        keys: dict[str, _DataKey] = {}
        active: dict[str, str] = {}
        for row in await self.db.data_keys():
            master = self._masters.get(row.master_key_id)
            if master is None:
                raise ConfigError(
                    f"data key {row.id} ({row.dataset}) is wrapped by master key "
                    f"{row.master_key_id!r}, which is not configured",
                    field="master_key_id",
                )
            keys[row.id] = _DataKey(row.id, row.dataset, row.algorithm,
                                    _aead(row.algorithm, _unwrap(master, row)))  # fmt: skip
            if row.active:
                active[row.dataset] = row.id
        self._keys, self._active = keys, active

    async def rotate_data_key(self, dataset: str) -> str:
        """Give ``dataset`` a new active data key (older ones stay to decrypt); its id."""
        algorithm = self.master.algorithm
        key = os.urandom(_KEY_LEN[algorithm])
        row_id = "dk-" + secrets.token_hex(8)
        row = DataKeyRow(
            id=row_id,
            dataset=dataset,
            algorithm=algorithm,
            wrapped=_wrap(self.master, row_id, dataset, algorithm, key),
            master_key_id=self.master.id,
            created_at=self.clock(),
            active=True,
        )
        await self.db.data_key_add(row)
        self._keys[row_id] = _DataKey(row_id, dataset, algorithm, _aead(algorithm, key))
        self._active[dataset] = row_id
        return row_id

    async def ensure(self, datasets: Iterable[str]) -> None:
        """Create a data key for every dataset that has none (call at start-up)."""
        for d in datasets:
            if d not in self._active:
                await self.rotate_data_key(d)

    async def rewrap(self, new_master: MasterKey) -> int:
        """Master key rotation: re-wrap every data key under ``new_master`` in one
        transaction; records are not touched. Returns how many keys were re-wrapped."""
        if new_master.algorithm != self.master.algorithm:
            raise ConfigError("a new master key must use the same algorithm", field="algorithm")
        rows = await self.db.data_keys()
        by_master: dict[str, list[DataKeyRow]] = {}
        for row in rows:
            master = self._masters.get(row.master_key_id)
            if master is None:
                raise ConfigError(
                    f"data key {row.id} is wrapped by unknown master key {row.master_key_id!r}",
                    field="master_key_id",
                )
            if row.master_key_id == new_master.id:
                continue
            plain = _unwrap(master, row)
            new = DataKeyRow(
                row.id, row.dataset, row.algorithm,
                _wrap(new_master, row.id, row.dataset, row.algorithm, plain),
                new_master.id, row.created_at, row.active,
            )  # fmt: skip
            by_master.setdefault(row.master_key_id, []).append(new)
        n = 0
        for old_id, batch in by_master.items():
            n += await self.db.data_keys_rewrap(batch, old_id)
        self._masters[new_master.id] = new_master
        self.master = new_master
        return n

    def cipher(self, dataset: str, paths: Iterable[str]) -> FieldCipher:
        """A :class:`FieldCipher` for one dataset's configured field paths."""
        return FieldCipher(self, dataset, paths)

    def _active_key(self, dataset: str) -> _DataKey:
        key_id = self._active.get(dataset)
        if key_id is None:
            raise ConfigError(
                f"dataset {dataset!r} has no data key (KeyRing.ensure at start-up)",
                field="dataset",
            )
        return self._keys[key_id]

    def _key(self, key_id: str) -> _DataKey | None:
        return self._keys.get(key_id)


def is_encrypted(value: Any) -> bool:
    """True for an ``enc:v1:…`` field value."""
    return isinstance(value, str) and value.startswith(PREFIX)


def _field_aad(dataset: str, path: str) -> bytes:
    return f"jghub-field:v1\0{dataset}\0{path}".encode()


def split_path(path: str) -> list[str]:
    """``a.b[].c`` -> ``["a", "b", "[]", "c"]`` (the field path syntax, shared by masking)."""
    parts: list[str] = []
    for seg in path.split("."):
        name = seg.rstrip("[]")
        lists = (len(seg) - len(name)) // 2
        if not name or seg != name + "[]" * lists:
            raise ConfigError(f"invalid segment {seg!r} in field path {path!r}", field="datasets")
        parts += [name, *(["[]"] * lists)]
    return parts


def map_path(node: Any, parts: list[str], fn: Callable[[Any], Any]) -> Any:
    """A copy of ``node`` with ``fn`` applied at ``parts`` (unchanged where absent)."""
    if not parts:
        return node if node is None else fn(node)
    head, rest = parts[0], parts[1:]
    if head == "[]":
        return [map_path(x, rest, fn) for x in node] if isinstance(node, list) else node
    if isinstance(node, Mapping) and head in node:
        out = dict(node)
        out[head] = map_path(node[head], rest, fn)
        return out
    return node


class FieldCipher:
    """Encrypts and decrypts the configured fields of one dataset's records."""

    def __init__(self, keyring: KeyRing, dataset: str, paths: Iterable[str]) -> None:
        self.keyring = keyring
        self.dataset = dataset
        self.paths = list(paths)
        self.split_path = {p: split_path(p) for p in self.paths}

    def __repr__(self) -> str:
        return f"FieldCipher({self.dataset!r}, {self.paths!r})"

    def encrypt_fields(
        self, record: Mapping[str, Any], paths: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """A copy of ``record`` with the values at ``paths`` (default: the configured ones)
        replaced by ``enc:v1:…`` strings. Values already encrypted are left as they are."""
        key = self.keyring._active_key(self.dataset)
        out: Any = dict(record)
        for path in self.paths if paths is None else list(paths):
            aad = _field_aad(self.dataset, path)

            def enc(value: Any, aad: bytes = aad) -> Any:
                if is_encrypted(value):
                    return value
                nonce = os.urandom(_NONCE)
                ct = key.aead.encrypt(nonce, orjson.dumps(value), aad)
                return f"{PREFIX}{key.id}:{_b64e(nonce + ct)}"

            out = map_path(out, self.split_path.get(path) or split_path(path), enc)
        result: dict[str, Any] = out
        return result

    def decrypt_fields(
        self, record: Mapping[str, Any], paths: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """A copy of ``record`` with the ``enc:v1:…`` values at ``paths`` decrypted;
        :class:`~hub.errors.DecryptError` (E_DECRYPT) names the field that does not open."""
        out: Any = dict(record)
        for path in self.paths if paths is None else list(paths):
            aad = _field_aad(self.dataset, path)

            def dec(value: Any, aad: bytes = aad, path: str = path) -> Any:
                if not is_encrypted(value):
                    return value
                key_id, _, blob = value[len(PREFIX) :].partition(":")
                key = self.keyring._key(key_id)
                if key is None:
                    raise DecryptError(f"unknown data key {key_id!r}", field=path)
                try:
                    raw = _b64d(blob)
                    return orjson.loads(key.aead.decrypt(raw[:_NONCE], raw[_NONCE:], aad))
                except (InvalidTag, ValueError, binascii.Error):
                    raise DecryptError(
                        f"the value of {path!r} in dataset {self.dataset!r} does not decrypt "
                        "(altered, or moved from another field or dataset)",
                        field=path,
                    ) from None

            out = map_path(out, self.split_path.get(path) or split_path(path), dec)
        result: dict[str, Any] = out
        return result
