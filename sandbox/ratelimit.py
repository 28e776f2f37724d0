"""Per-key rate limit: a token bucket refilled at `per_minute / 60` tokens a second.

Headers follow the API: `X-RateLimit-Limit` (requests per minute), `X-RateLimit-Remaining` (whole tokens
left), `X-RateLimit-Reset` (Unix time at which the bucket is full again); a refusal adds `Retry-After`
(seconds until one token is back).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_epoch: int
    retry_after: int

    def headers(self) -> dict[str, str]:
        headers = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                   "X-RateLimit-Reset": str(self.reset_epoch)}
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class RateLimiter:
    def __init__(self, per_minute: int, burst: int | None = None) -> None:
        self.per_minute = per_minute
        self.capacity = float(burst or per_minute)
        self.refill_per_second = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at monotonic time)
        self._lock = threading.Lock()

    def take(self, key: str) -> RateDecision:
        with self._lock:
            now = time.monotonic()
            tokens, at = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.refill_per_second)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)
        seconds_to_full = (self.capacity - tokens) / self.refill_per_second
        retry_after = 0 if allowed else max(1, math.ceil((1.0 - tokens) / self.refill_per_second))
        return RateDecision(allowed, self.per_minute, int(tokens), math.ceil(time.time() + seconds_to_full),
                            retry_after)
