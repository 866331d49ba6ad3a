"""The security plugin: registered through the ``jghub.plugins`` entry point (``security``),
like any third-party plugin. It provides the built-in signature algorithms."""

from __future__ import annotations

from hub.plugins import hookimpl
from hub.specs import SignerSpec
from security.signing import SIGNER_SPECS

__all__: list[str] = []


@hookimpl
def hub_register_signers() -> list[SignerSpec]:
    """``ed25519``, ``ecdsa-p256-sha256``, ``rsa-pss-sha512``, ``hmac-sha256`` and ``sm2-sm3``
    (the last needs ``jghub[sm]``; without it, configuring it fails with a clear E_CONFIG)."""
    return list(SIGNER_SPECS)
