"""The monitoring plugin (entry point ``monitoring`` of the ``jghub.plugins`` group).

It builds one :class:`~monitoring.monitor.Monitor` per hub (``hub_instance_plugins``), and
reports the reachability of every target's endpoint (``hub_adapter_health``): a TCP connect to
the host of its ``url``, or a check that a file transport's ``directory`` exists and is
writable. Targets that real traffic showed within the probe interval are not probed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hub.events import AdapterHealth
from hub.plugins import hookimpl
from monitoring.monitor import Monitor, load_settings

__all__ = ["endpoint_of", "probe_endpoint"]

_DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    "amqp": 5672,
    "amqps": 5671,
    "postgresql": 5432,
    "postgres": 5432,
    "mysql": 3306,
    "mariadb": 3306,
}


@hookimpl
def hub_instance_plugins(hub: Any) -> list[object]:
    return [Monitor(hub)]


def endpoint_of(outbound: dict[str, Any]) -> tuple[str, str, int] | tuple[str, Path] | None:
    """What to probe for a target's ``outbound:`` section: ``("tcp", host, port)``,
    ``("dir", path)``, or None when nothing can be probed without sending data."""
    url = outbound.get("url")
    if isinstance(url, str) and url:
        parts = urlsplit(url)
        scheme = parts.scheme.split("+")[0].lower()
        if scheme == "sqlite":
            return ("dir", Path(parts.path).parent)
        host = parts.hostname
        if host:
            port = parts.port or _DEFAULT_PORTS.get(scheme)
            if port:
                return ("tcp", host, port)
    directory = outbound.get("directory")
    if isinstance(directory, str) and directory:
        return ("dir", Path(directory))
    return None


async def probe_endpoint(what: tuple[Any, ...], timeout: float) -> tuple[str, str]:
    """(status, detail) of one endpoint: a TCP connect (closed at once), or a folder check."""
    if what[0] == "dir":
        path: Path = what[1]
        if path.is_dir() and os.access(path, os.W_OK):
            return "up", f"{path} is writable"
        return "down", f"{path} is missing or not writable"
    _, host, port = what
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as exc:
        return "down", f"{host}:{port} unreachable: {type(exc).__name__}: {exc}"[:200]
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), timeout)
    return "up", f"{host}:{port} accepts connections"


@hookimpl
async def hub_adapter_health(hub: Any, fresh: frozenset[str]) -> list[AdapterHealth]:
    timeout = load_settings(hub).probe_timeout
    out: list[AdapterHealth] = []
    jobs = []
    names = []
    for name, t in hub.targets.items():
        if name in fresh:
            continue
        what = endpoint_of(dict(t.config.outbound or {}))
        if what is None:
            continue
        if what[0] == "dir" and not Path(what[1]).is_absolute():
            what = ("dir", hub.config.base_dir / what[1])
        names.append(name)
        jobs.append(probe_endpoint(what, timeout))
    for name, (status, detail) in zip(names, await asyncio.gather(*jobs), strict=True):
        out.append(AdapterHealth(name, status, detail, "probe"))
    return out
