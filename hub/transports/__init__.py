"""The transports and inbound sources that ship with the core: ``http_json``, ``http_pull``,
``soap_xml`` (+ the ``soap`` adapter), ``file_batch``, ``db_staging``, ``webhook``, ``amqp``.
Each registers through :mod:`hub.builtin`; ``docs/transports.md`` documents them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hub.errors import ConfigError
from hub.specs import Signer

__all__ = ["SignsWithHubKey"]


class SignsWithHubKey:
    """Mixin of transports with a ``sign: bool`` option. The hub calls :meth:`set_signer` once
    with a getter of its own key that signs now (rotation aware: a new key is picked up without
    a restart); ``self._signer`` is that getter when signing is on, else None."""

    target: str
    options: Any
    _signer: Callable[[], Signer] | None = None

    def set_signer(self, current: Callable[[], Signer] | None) -> None:
        """With ``sign: true`` and no own key in the hub file the hub refuses to start."""
        if self.options.sign and current is None:
            raise ConfigError(
                f"target {self.target}: outbound.sign needs one of the hub's own keys "
                "(keys.own in the hub file)",
                field="outbound.sign",
            )
        self._signer = current if self.options.sign else None
