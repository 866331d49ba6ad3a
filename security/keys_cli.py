"""``jghub keys``: generate, list, rotate and export signing keys (typer sub-app).

Private keys are written as PKCS#8 PEM files with mode 0600 (encrypted when
``--passphrase-env`` names a set variable); HMAC secrets as base64 text. Nothing here prints
a secret: ``list`` shows ids, algorithms, validity and fingerprints only. The commands never
rewrite ``hub.yaml`` (comments would be lost): they print the YAML to paste.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer
import yaml

from hub.errors import HubError
from security.keystore import CHINA_TZ, Keystore, load_keys_section
from security.signing import ALGORITHMS, KeySigner, generate_key, private_pem

__all__ = ["app"]

app = typer.Typer(
    help="Signing keys (密钥): generate, list, rotate, export-public.", no_args_is_help=True
)

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="hub config file", envvar="JGHUB_CONFIG")
]


def _fail(err: HubError | str) -> NoReturn:
    typer.echo(str(err), err=True)
    raise typer.Exit(1)


def _write_private(signer: KeySigner, out: Path, passphrase_env: str | None) -> Path:
    passphrase = None
    if passphrase_env is not None:
        value = os.environ.get(passphrase_env)
        if not value:
            _fail(f"E_CONFIG: environment variable {passphrase_env} is not set (--passphrase-env)")
        passphrase = value.encode()
    out.mkdir(parents=True, exist_ok=True)
    suffix = ".secret" if signer.algorithm == "hmac-sha256" else ".pem"
    path = out / f"{signer.key_id}{suffix}"
    if path.exists():
        _fail(f"E_CONFIG: {path} exists; choose another --id (field: id)")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem(signer, passphrase))
    public = signer.public_pem()
    if public is not None:
        (out / f"{signer.key_id}.pub.pem").write_bytes(public)
    return path


def _entry(signer: KeySigner, path: Path, passphrase_env: str | None) -> dict[str, object]:
    entry: dict[str, object] = {"id": signer.key_id, "algorithm": signer.algorithm}
    if signer.algorithm == "hmac-sha256":
        entry["secret_file"] = str(path)
    else:
        entry["private_key"] = str(path)
        if passphrase_env:
            entry["passphrase_env"] = passphrase_env
    return entry


def _generate(algorithm: str, key_id: str) -> KeySigner:
    if algorithm not in ALGORITHMS:
        _fail(f"E_CONFIG: unknown algorithm {algorithm!r}; one of: {', '.join(ALGORITHMS)}")
    try:
        return generate_key(algorithm, key_id)
    except HubError as err:
        _fail(err)


@app.command()
def generate(
    algorithm: Annotated[str, typer.Option("--algorithm", "-a", help=", ".join(ALGORITHMS))],
    key_id: Annotated[str, typer.Option("--id", help="key id (the RFC 9421 keyid)")],
    out: Annotated[Path, typer.Option("--out", help="folder for the key files")],
    passphrase_env: Annotated[
        str | None, typer.Option("--passphrase-env", help="encrypt with this env var's value")
    ] = None,
) -> None:
    """Generate a key pair (or an HMAC secret) and print its ``keys.own`` YAML entry."""
    signer = _generate(algorithm, key_id)
    path = _write_private(signer, out, passphrase_env)
    typer.echo(f"wrote {path}" + ("" if signer.public_pem() is None else f" and {key_id}.pub.pem"))
    typer.echo(f"fingerprint {signer.fingerprint}")
    typer.echo("add to hub.yaml under keys.own:")
    typer.echo(yaml.safe_dump([_entry(signer, path, passphrase_env)], sort_keys=False).rstrip())


def _load(config: Path) -> Keystore:
    try:
        cfg, base = load_keys_section(config)
        return Keystore.from_config(cfg, base_dir=base)
    except HubError as err:
        _fail(err)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, tz=CHINA_TZ).strftime("%Y-%m-%d %H:%M")


@app.command("list")
def list_keys(config: ConfigOpt) -> None:
    """List keys: id, owner, algorithm, validity, state and fingerprint (never secrets)."""
    store = _load(config)
    now = time.time()
    signing = store.signer(now).key_id if any(k.owner is None for k in store.entries()) else None
    rows = [("ID", "OWNER", "ALGORITHM", "FROM", "VALID BEFORE", "STATE", "FINGERPRINT")]
    for key in store.entries():
        state = key.state(now) + (" (signs)" if key.key_id == signing else "")
        fp = getattr(key.signer, "fingerprint", "-")
        rows.append(
            (
                key.key_id,
                key.owner or "(hub)",
                key.signer.algorithm,
                _when(key.valid_from),
                _when(key.valid_until),
                state,
                fp,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        typer.echo(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1]
        )


@app.command()
def rotate(
    config: ConfigOpt,
    key_id: Annotated[str, typer.Option("--id", help="id of the new key")],
    out: Annotated[Path, typer.Option("--out", help="folder for the new key files")],
    starts: Annotated[
        str | None,
        typer.Option(help="when the new key starts signing (YYYY-MM-DD; default: now)"),
    ] = None,
    overlap_days: Annotated[
        int, typer.Option(help="days the old key still verifies after the new one starts")
    ] = 30,
    passphrase_env: Annotated[str | None, typer.Option("--passphrase-env")] = None,
) -> None:
    """Generate the successor of the current signing key (same algorithm) and print the
    ``keys.own`` entries to put in hub.yaml: the old key ends ``overlap_days`` after the new
    one starts, so peers accept both meanwhile. Send peers the new public key first."""
    store = _load(config)
    now = time.time()
    try:
        current = store.signer(now)
    except HubError as err:
        _fail(err)
    try:
        start = (
            dt.datetime.fromisoformat(starts).replace(tzinfo=CHINA_TZ)
            if starts
            else dt.datetime.fromtimestamp(now, tz=CHINA_TZ).replace(microsecond=0)
        )
    except ValueError:
        _fail(f"E_PARAM: --starts {starts!r} is not a date (YYYY-MM-DD) (field: starts)")
    signer = _generate(current.algorithm, key_id)
    path = _write_private(signer, out, passphrase_env)
    new_entry = _entry(signer, path, passphrase_env)
    new_entry["valid_from"] = start.isoformat()
    end = start + dt.timedelta(days=overlap_days)
    typer.echo(f"wrote {path}; fingerprint {signer.fingerprint}")
    typer.echo(
        f"in hub.yaml keys.own: give {current.key_id} valid_until: {end.isoformat()} and add:"
    )
    typer.echo(yaml.safe_dump([new_entry], sort_keys=False).rstrip())
    typer.echo(f"send peers the public key: jghub keys export-public {key_id} --config ...")


@app.command("export-public")
def export_public(key_id: Annotated[str, typer.Argument(help="key id")], config: ConfigOpt) -> None:
    """Print a key's public key as PEM (what a peer needs to verify our signatures)."""
    store = _load(config)
    try:
        key = store.get(key_id)
    except HubError as err:
        _fail(err)
    public = getattr(key.signer, "public_pem", lambda: None)()
    if public is None:
        _fail(
            f"E_CONFIG: key {key_id!r} ({key.signer.algorithm}) is a shared secret: it has "
            "no public part; hand the secret over out of band (field: id)"
        )
    typer.echo(public.decode().rstrip())
