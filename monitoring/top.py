"""``jghub top``: a live terminal view of a running hub, read from its ``/metrics``.

Targets (health, circuit, queue, oldest due, dead letters, deliveries and their rate) and
source systems (accepted, rejected, duplicates and their rate), refreshed every second until
Ctrl-C; ``--once`` prints one frame. ``/metrics`` is complete under ``serve --workers``, so
the figures are those of the whole node. Rates need two frames: the first shows ``-``.
"""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from hub.errors import AuthError, UnreachableError

__all__ = ["Frame", "fetch_metrics", "parse_frame", "render", "run_top"]

_Labels = tuple[tuple[str, str], ...]
_HEALTH = ("up", "degraded", "down", "circuit_open")


@dataclass(slots=True)
class Frame:
    """One reading of ``/metrics``: every sample by (name, sorted labels), and when."""

    at: float
    values: dict[tuple[str, _Labels], float] = field(default_factory=dict)

    def get(self, name: str, **labels: str) -> float:
        return self.values.get((name, tuple(sorted(labels.items()))), 0.0)

    def label_values(self, name: str, label: str) -> list[str]:
        """The distinct values of ``label`` among the samples of ``name``, sorted."""
        return sorted({dict(k)[label] for n, k in self.values if n == name and label in dict(k)})

    def total(self, name: str, **match: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``match``."""
        return sum(
            v
            for (n, k), v in self.values.items()
            if n == name and all(dict(k).get(a) == b for a, b in match.items())
        )


def parse_frame(text: str, at: float) -> Frame:
    """A frame from a Prometheus text exposition."""
    frame = Frame(at)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            frame.values[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return frame


def fetch_metrics(url: str, token: str | None, timeout: float, cafile: str | None) -> str:
    """``GET {url}/metrics`` (with a bearer token of role ``ops`` when given)."""
    req = urllib.request.Request(url.rstrip("/") + "/metrics")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    ctx = ssl.create_default_context(cafile=cafile) if url.startswith("https") else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            return bytes(r.read()).decode("utf-8")
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise AuthError(
                f"{url}/metrics refused the credential ({exc.code}): give --token "
                "(or JGHUB_TOKEN) of a principal with role ops",
                field="token",
            ) from None
        raise UnreachableError(f"{url}/metrics answered {exc.code}", field="url") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UnreachableError(f"cannot read {url}/metrics: {reason}", field="url") from None


def _rate(now: Frame, prev: Frame | None, name: str, **match: str) -> str:
    if prev is None or now.at <= prev.at:
        return "-"
    delta = now.total(name, **match) - prev.total(name, **match)
    return f"{max(delta, 0.0) / (now.at - prev.at):.1f}/s"


def _state(frame: Frame, name: str, target: str, states: tuple[str, ...]) -> str:
    for s in states:
        if frame.get(name, target=target, state=s) == 1:
            return s
    return "?"


def render(now: Frame, prev: Frame | None, url: str) -> str:
    """One frame as text (fixed-width columns)."""
    info = next((dict(k) for n, k in now.values if n == "jghub_build_info"), {})
    version, node = info.get("version", "?"), info.get("node", "?")
    store = "up" if now.get("jghub_store_up") == 1 else "DOWN"
    disp = "running" if now.get("jghub_dispatcher_running") == 1 else "STOPPED"
    lines = [
        f"jghub top — {url}  node {node}  jghub {version}  {time.strftime('%H:%M:%S')}",
        f"store {store}  dispatcher {disp}  ingest workers {int(now.get('jghub_ingest_workers'))}",
        "",
        f"{'TARGET':<16} {'HEALTH':<12} {'CIRCUIT':<9} {'PENDING':>7} {'INFL':>5} "
        f"{'OLDEST s':>8} {'DLQ':>5} {'DELIVERED':>9} {'RATE':>8} {'RETRIED':>7} "
        f"{'TO-DLQ':>7}",
    ]
    for t in now.label_values("jghub_queue_depth", "target"):
        lines.append(
            f"{t[:16]:<16} "
            f"{_state(now, 'jghub_target_health', t, _HEALTH):<12} "
            f"{_state(now, 'jghub_circuit_state', t, ('closed', 'open', 'half-open')):<9} "
            f"{int(now.get('jghub_queue_depth', target=t, state='pending')):>7} "
            f"{int(now.get('jghub_queue_depth', target=t, state='inflight')):>5} "
            f"{now.get('jghub_queue_oldest_due_age_seconds', target=t):>8.1f} "
            f"{int(now.get('jghub_dead_letters', target=t)):>5} "
            f"{int(now.get('jghub_deliveries_total', target=t, outcome='succeeded')):>9} "
            f"{_rate(now, prev, 'jghub_deliveries_total', target=t, outcome='succeeded'):>8} "
            f"{int(now.get('jghub_deliveries_total', target=t, outcome='retried')):>7} "
            f"{int(now.get('jghub_deliveries_total', target=t, outcome='dead_lettered')):>7}"
        )
    lines += [
        "",
        f"{'SYSTEM':<16} {'ACCEPTED':>9} {'RATE':>8} {'REJECTED':>8} {'RATE':>8} {'DUPLICATE':>9}",
    ]
    systems = set(now.label_values("jghub_records_accepted_total", "system"))
    systems |= set(now.label_values("jghub_records_rejected_total", "system"))
    for s in sorted(systems):
        lines.append(
            f"{s[:16]:<16} "
            f"{int(now.total('jghub_records_accepted_total', system=s)):>9} "
            f"{_rate(now, prev, 'jghub_records_accepted_total', system=s):>8} "
            f"{int(now.total('jghub_records_rejected_total', system=s)):>8} "
            f"{_rate(now, prev, 'jghub_records_rejected_total', system=s):>8} "
            f"{int(now.total('jghub_records_duplicate_total', system=s)):>9}"
        )
    expiring = [
        (v, dict(k)) for (n, k), v in now.values.items() if n == "jghub_certificate_expiry_days"
    ]
    soon = sorted((v, sorted(d.items())) for v, d in expiring if v < 30)
    for days, items in soon[:5]:
        lab = dict(items)
        lines.append(
            f"certificate {lab.get('subject')} ({lab.get('use')} {lab.get('system')}) "
            f"expires in {days:.1f} days"
        )
    return "\n".join(lines)


def run_top(
    url: str,
    token: str | None,
    *,
    once: bool,
    interval: float = 1.0,
    cafile: str | None = None,
    out: Callable[[str], None] = print,
) -> None:
    """Print frames until Ctrl-C (``once``: one frame, no screen clearing)."""
    prev: Frame | None = None
    while True:
        frame = parse_frame(fetch_metrics(url, token, max(interval, 2.0), cafile), time.monotonic())
        text = render(frame, prev, url)
        out(text if once else "\x1b[H\x1b[2J" + text)
        if once:
            return
        prev = frame
        time.sleep(interval)
