"""Keeps a client under the API's rate limit by mirroring its bucket from `X-RateLimit-*` headers.

The API refills `limit` requests per `window` (a minute). After each answer the pacer knows how many requests
were left (`X-RateLimit-Remaining`); it counts those still in flight against that, adds the refill since, and
lets a request go at once while at least one spare token would remain. When short, requests queue at exactly
the refill rate, so steady use runs at the limit and meets no 429. Until the first answer tells the limit, only
one request is in flight. A 429 that comes anyway holds every request until its `Retry-After` has passed.
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
    SPARE_TOKENS = 1.0  # absorbs the jitter between when we send and when the server counts
    PROBE_WAIT_SECONDS = 5.0

    def __init__(self, window_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.window_seconds = window_seconds
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Condition()
        self.limit: int | None = None
        self._tokens = 0.0  # tokens left at the last observation, less what was then in flight
        self._observed_at = 0.0
        self._sent_since = 0  # requests let go since that observation
        self._in_flight = 0
        self._hold_until = 0.0
        self.waited_seconds = 0.0  # total time spent pacing, for benchmarks

    @property
    def rate(self) -> float:
        return (self.limit or 0) / self.window_seconds

    def delay_for_next(self) -> float:
        """Reserves a place for the next request and returns how long it must wait for it."""
        with self._lock:
            if self.limit is None:
                deadline = self._clock() + self.PROBE_WAIT_SECONDS
                while self.limit is None and self._in_flight > 0 and self._clock() < deadline:
                    self._lock.wait(0.05)  # one probe at a time until the limit is known
            now = self._clock()
            self._in_flight += 1
            if self.limit is None:
                return max(0.0, self._hold_until - now)
            available = min(float(self.limit), self._tokens + (now - self._observed_at) * self.rate) - self._sent_since
            needed = 1.0 + self.SPARE_TOKENS
            delay = max(self._hold_until - now, (needed - available) / self.rate if available < needed else 0.0)
            self._sent_since += 1
            self.waited_seconds += delay
            return max(0.0, delay)

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
            now = self._clock()
            # Requests still in flight (other than the one answered) will spend tokens this answer didn't see.
            self.limit, self._tokens = limit, float(remaining - max(0, self._in_flight - 1))
            self._observed_at, self._sent_since = max(now, self._hold_until), 0
            self._lock.notify_all()

    def release(self) -> None:
        """A request finished (answered or failed)."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            self._lock.notify_all()

    def rate_limited(self, retry_after: float | None) -> None:
        with self._lock:
            now = self._clock()
            self._hold_until = max(self._hold_until, now + (retry_after if retry_after else 1.0))
            self._tokens, self._observed_at, self._sent_since = 0.0, self._hold_until, 0
