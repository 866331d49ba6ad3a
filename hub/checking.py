"""``jghub check``: validate config files offline, before a system goes live.

A hub file (it has ``routes``, ``systems`` or ``store``) is loaded with every system it names
and built into a hub (plugins resolved, adapter and transport options validated, routes
compiled) without opening the store or the network. A system file alone is checked for its
keys and for its adapter's and transport's options.
"""

from __future__ import annotations

from pathlib import Path

from hub.config import load_config, load_system_file, load_yaml_file
from hub.errors import HubError
from hub.plugins import build_plugin_manager, load_registry

__all__ = ["check_file"]

_HUB_KEYS = {"routes", "systems", "store", "hub", "listen", "dispatcher", "limits"}


def check_file(path: Path) -> list[str]:
    """Problems found in ``path`` (empty when valid), each naming file, line and key."""
    try:
        located = load_yaml_file(path)
        if _HUB_KEYS & set(located.data):
            from hub.runtime import Hub
            from hub.store.memory import MemoryStore

            Hub(load_config(path), store=MemoryStore())  # builds everything, opens nothing
            return []
        from hub.runtime import resolve_system_plugins

        resolve_system_plugins(load_system_file(path), load_registry(build_plugin_manager()))
        return []
    except HubError as err:
        msg = err.message
        if not msg.startswith(str(path)):
            msg = f"{path}: {msg}"
        return [f"{err.code} {line}" for line in msg.splitlines()]
