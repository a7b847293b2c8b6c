"""Limits on failed authentication, per client address and per token id.

A sliding one-minute window in the API process: guessing secrets costs a client (or aims at
a token id) at most ``limit`` tries a minute, after which it gets 429 with Retry-After until
the window has room again. Only failures count, so a caller with a valid token is never
slowed by its own successes.
"""

from __future__ import annotations

import threading
import time
from collections import deque

__all__ = ["FailureLimiter"]

_WINDOW_SECONDS = 60.0
_MAX_KEYS = 100_000


class FailureLimiter:
    def __init__(self, limit: int, window: float = _WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, *keys: str) -> int | None:
        """Seconds to wait if any key has used up its failures, else None."""
        now = time.monotonic()
        with self._lock:
            waits = [self._recent(k, now)[0] + self.window - now for k in keys
                     if len(self._recent(k, now)) >= self.limit]
        return max(1, int(max(waits)) + 1) if waits else None

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > _MAX_KEYS:  # bounded under a flood of addresses
                self._failures.clear()
            for key in keys:
                self._failures.setdefault(key, deque()).append(now)
