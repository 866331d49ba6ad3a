"""Dashboard labels in Chinese (default) and English."""

from __future__ import annotations

__all__ = ["LANGUAGES", "label"]

LANGUAGES = ("zh", "en")

_LABELS: dict[str, tuple[str, str]] = {
    "title": ("互联网+监管 交换枢纽 运维监控", "Internet+Supervision exchange hub — operations"),
    "overview": ("总览", "Overview"),
    "dlq": ("死信", "Dead letters"),
    "search": ("消息查询", "Message search"),
    "login": ("登录", "Log in"),
    "logout": ("退出", "Log out"),
    "token": ("访问令牌", "Access token"),
    "login_hint": ("请使用运维(ops)角色的令牌登录。", "Log in with a token of role ops."),
    "open_mode": (
        "未配置 security: 本枢纽在可信网络中开放运行，无需登录。",
        "No security: section: this hub runs open on a trusted network; no login needed.",
    ),
    "targets": ("目标系统", "Targets"),
    "systems": ("来源系统", "Source systems"),
    "target": ("目标", "Target"),
    "system": ("系统", "System"),
    "state": ("状态", "State"),
    "circuit": ("熔断器", "Circuit"),
    "queue": ("队列", "Queue"),
    "oldest": ("最久等待(秒)", "Oldest due (s)"),
    "dead": ("死信数", "Dead"),
    "throughput": ("吞吐", "Throughput"),
    "latency": ("延迟(毫秒)", "Latency (ms)"),
    "detail": ("说明", "Detail"),
    "accepted": ("已接收", "Accepted"),
    "rejected": ("已拒收", "Rejected"),
    "source_failures": ("采集失败", "Source failures"),
    "up": ("正常", "up"),
    "degraded": ("降级", "degraded"),
    "down": ("不可达", "down"),
    "circuit_open": ("熔断", "circuit open"),
    "closed": ("闭合", "closed"),
    "open": ("断开", "open"),
    "half-open": ("半开", "half-open"),
    "store": ("存储", "Store"),
    "store_ok": ("存储正常", "store ok"),
    "store_bad": ("存储异常", "store failing"),
    "message": ("消息", "Message"),
    "reason": ("原因", "Reason"),
    "attempts": ("尝试次数", "Attempts"),
    "dead_at": ("进入死信时间", "Dead since"),
    "replay": ("重新投递", "Replay"),
    "replay_confirm": (
        "确认重新投递该死信？此操作将被审计。",
        "Replay this dead letter? It is audited.",
    ),
    "replayed": ("已重新投递", "Replayed"),
    "none": ("无", "none"),
    "by_id": ("消息ID", "Message id"),
    "by_source": ("来源系统", "Source system"),
    "by_idem": ("幂等键", "Idempotency key"),
    "by_bkey": ("业务主键", "Business key"),
    "find": ("查询", "Find"),
    "results": ("查询结果", "Results"),
    "no_results": ("未找到消息", "No message found"),
    "dataset": ("数据集", "Dataset"),
    "accepted_at": ("接收时间", "Accepted at"),
    "trace": ("全程留痕", "Trace"),
    "status": ("状态", "Status"),
    "deliveries": ("投递", "Deliveries"),
    "payload": ("报文", "Payload"),
    "payload_withheld": ("无 payload.read 授权，报文不显示", "payload withheld: no payload.read"),
    "traceparent": ("链路追踪", "Traceparent"),
    "idem": ("幂等键", "Idempotency key"),
    "language": ("English", "中文"),
    "forbidden": ("无权访问", "Forbidden"),
    "adapters": ("适配器健康", "Adapter health"),
    "reporter": ("报告方", "Reporter"),
    "updated": ("更新于", "Updated"),
}


def label(key: str, lang: str) -> str:
    """The label ``key`` in ``lang`` (``zh`` or ``en``); the key itself when unknown."""
    pair = _LABELS.get(key)
    if pair is None:
        return key
    return pair[1] if lang == "en" else pair[0]
