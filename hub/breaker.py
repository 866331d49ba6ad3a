"""Retry timing and the per-target circuit breaker."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from enum import Enum

from hub.config import CircuitPolicy, RetryPolicy

__all__ = ["BreakerState", "CircuitBreaker", "backoff_delay"]


def backoff_delay(
    policy: RetryPolicy,
    attempt: int,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds until the next attempt after ``attempt`` failed.

    Exponential backoff with *full jitter* (AWS architecture blog, "Exponential Backoff and
    Jitter"): uniform in ``[0, min(max_delay, base * 2**(attempt-1))]``. A target's
    ``Retry-After`` wins when given (capped by ``max_delay``)."""
    if retry_after is not None:
        return min(policy.max_delay, max(0.0, retry_after))
    ceiling = min(policy.max_delay, policy.base_delay * (2.0 ** max(0, attempt - 1)))
    return float(rand()) * ceiling


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive transient failures. While open nothing is
    sent; after ``reset_timeout`` one probe goes out (half-open). A successful probe closes the
    circuit; a failed one re-opens it with the timeout doubled (up to ``max_reset_timeout``)."""

    def __init__(self, policy: CircuitPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.open_until = 0.0
        self.timeout = policy.reset_timeout
        self.opened_count = 0

    def ready_in(self) -> float:
        """Seconds until sending is allowed (0 when closed or ready to probe)."""
        if self.state is BreakerState.OPEN:
            wait = self.open_until - self.clock()
            if wait > 0:
                return wait
            self.state = BreakerState.HALF_OPEN
        return 0.0

    @property
    def probing(self) -> bool:
        return self.state is BreakerState.HALF_OPEN

    def record_success(self) -> None:
        self.failures = 0
        if self.state is not BreakerState.CLOSED:
            self.state = BreakerState.CLOSED
            self.timeout = self.policy.reset_timeout

    def record_failure(self) -> None:
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN:
            self.timeout = min(self.policy.max_reset_timeout, self.timeout * 2)
            self._open()
        elif self.state is BreakerState.CLOSED and self.failures >= self.policy.failure_threshold:
            self._open()

    def _open(self) -> None:
        self.state = BreakerState.OPEN
        self.open_until = self.clock() + self.timeout
        self.opened_count += 1
