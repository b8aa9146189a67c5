"""Running a task again later: the exception task functions raise on purpose, and the backoff."""

from __future__ import annotations

import random
from dataclasses import dataclass

from tether.errors import RetryLater

__all__ = ["RetryLater", "RetryPolicy"]

DEFAULT_RETRIES = 5
DEFAULT_BACKOFF_BASE = 2.0  # seconds before the first retry (before jitter)
DEFAULT_BACKOFF_CAP = 600.0  # no retry waits longer than this


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a task is retried after :class:`RetryLater`."""

    retries: int = DEFAULT_RETRIES
    base: float = DEFAULT_BACKOFF_BASE
    cap: float = DEFAULT_BACKOFF_CAP

    def __post_init__(self) -> None:
        if self.retries < 0 or self.base < 0 or self.cap < 0:
            raise ValueError("retries, base and cap must not be negative")

    def delay(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (1-based): base·2^(attempt-1), capped,
        then jittered to between half and all of it so that retries do not march in step."""
        ceiling = min(self.cap, self.base * 2 ** max(attempt - 1, 0))
        return ceiling / 2 + random.uniform(0, ceiling / 2)
