"""The trace of a message (全程留痕) as JSON and as text, shared by the API, CLI and demo."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from hub.store import MessageTrace

__all__ = ["format_ts", "render_trace", "trace_to_dict"]


def trace_to_dict(tr: MessageTrace) -> dict[str, Any]:
    """The whole life of a message (全程留痕) as JSON."""
    steps: list[dict[str, Any]] = [
        {"at": tr.created_at, "step": "received", "detail": f"from {tr.source}"},
        {
            "at": tr.accepted_at,
            "step": "accepted",
            "detail": f"validated as {tr.dataset} v{tr.dataset_version}; committed",
        },
    ]
    steps += [e.to_dict() for e in tr.events]
    return {
        "id": tr.message_id,
        "status": tr.status(),
        "source": tr.source,
        "dataset": tr.dataset,
        "dataset_version": tr.dataset_version,
        "idempotency_key": tr.idempotency_key,
        "partition_key": tr.partition_key,
        "traceparent": tr.traceparent,
        "created_at": tr.created_at,
        "accepted_at": tr.accepted_at,
        "payload": orjson.loads(tr.payload),
        "payload_sha256": tr.envelope().digest(),
        "deliveries": [
            {
                "delivery_id": d.delivery_id,
                "target": d.target,
                "route": d.route,
                "state": d.state.name.lower(),
                "attempts": d.attempts,
                "next_at": d.next_at,
                "last_status": d.last_status,
                "last_error": d.last_error,
                "delivered_at": d.delivered_at,
            }
            for d in tr.deliveries
        ],
        "trace": steps,
    }


def format_ts(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def render_trace(doc: dict[str, Any]) -> str:
    """Readable text of :func:`trace_to_dict`'s document."""
    lines = [
        f"message  {doc['id']}  [{doc['status']}]",
        f"source   {doc['source']}   dataset {doc['dataset']} v{doc['dataset_version']}",
        f"idem key {doc['idempotency_key'] or '-'}   partition {doc['partition_key'] or '-'}",
        f"trace    {doc['traceparent']}",
        f"payload  sha256 {doc['payload_sha256']} (RFC 8785 canonical JSON)",
        "",
    ]
    for step in doc["trace"]:
        bits = [format_ts(step["at"]), f"{step['step']:<14}"]
        if step.get("target"):
            bits.append(f"-> {step['target']}")
        if step.get("attempt"):
            bits.append(f"attempt {step['attempt']}")
        if step.get("status") is not None:
            bits.append(f"status {step['status']}")
        if step.get("latency_ms") is not None:
            bits.append(f"{step['latency_ms']:.1f} ms")
        if step.get("detail"):
            bits.append(f"| {step['detail']}")
        lines.append("  ".join(bits))
    lines.append("")
    for d in doc["deliveries"]:
        lines.append(
            f"delivery {d['delivery_id']} -> {d['target']} ({d['route']}): {d['state']}, "
            f"{d['attempts']} attempt(s)"
        )
    return "\n".join(lines)
