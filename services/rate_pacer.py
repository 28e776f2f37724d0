"""Keeps a client under the API's rate limit by reading `X-RateLimit-*` and spacing requests.

While the API reports plenty of headroom, requests go at once (the local count of what is left drops with
each one, so concurrent callers don't all spend the same headroom). Near the bottom, requests are spaced at
the refill rate, `window / limit`, so that steady use settles just above empty and never meets a 429. A 429
that happens anyway pushes the next slot past its `Retry-After`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


class RatePacer:
    def __init__(self, window_seconds: float = 60.0, reserve_fraction: float = 0.05, min_reserve: int = 4,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.window_seconds = window_seconds
        self.reserve_fraction = reserve_fraction
        self.min_reserve = min_reserve
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self.limit: int | None = None
        self.remaining: int | None = None
        self._next_slot = 0.0
        self.waited_seconds = 0.0  # total time spent pacing, for benchmarks

    @property
    def reserve(self) -> int:
        return max(self.min_reserve, int((self.limit or 0) * self.reserve_fraction))

    def delay_for_next(self) -> float:
        """Reserves the next request's slot and returns how long to wait for it."""
        with self._lock:
            now = self._clock()
            if self.limit is None or self.remaining is None:
                delay = max(0.0, self._next_slot - now)
            elif self.remaining > self.reserve and self._next_slot <= now:
                self.remaining -= 1
                delay = 0.0
            else:
                slot = max(now, self._next_slot)
                self._next_slot = slot + self.window_seconds / max(1, self.limit)
                delay = slot - now
            self.waited_seconds += delay
            return delay

    def wait(self) -> None:
        delay = self.delay_for_next()
        if delay > 0:
            self._sleep(delay)

    def observe(self, headers: Mapping[str, str]) -> None:
        limit = _header_int(headers, "X-RateLimit-Limit")
        remaining = _header_int(headers, "X-RateLimit-Remaining")
        if limit is None or remaining is None or limit <= 0:
            return
        with self._lock:
            self.limit, self.remaining = limit, remaining

    def rate_limited(self, retry_after: float | None) -> None:
        with self._lock:
            self.remaining = 0
            self._next_slot = max(self._next_slot, self._clock() + (retry_after if retry_after else 1.0))
