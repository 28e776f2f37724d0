"""Keeps a client under the API's rate limit by mirroring its bucket from `X-RateLimit-*` headers.

The API refills `limit` requests per `window` (a minute). After each answer the pacer knows how many requests
were left (`X-RateLimit-Remaining`); it counts those still in flight against that, adds the refill since, and
lets a request go at once while at least one spare token would remain. When short, requests queue at exactly
the refill rate, so steady use runs at the limit and meets no 429. Until the first answer tells the limit, only
one request is in flight. A 429 that comes anyway holds every request until its `Retry-After` has passed.

That bucket belongs to the API key, not to this process: two processes using one key (console replicas) would
each believe they have the whole of it. An optional `shared` budget (`SharedBudget`, below; the console keeps
one in its store, services/store/rate_budget.py) spaces the requests of every process using the key: each request
waits for the later of the two places, this process's own and the shared one, and a 429 holds the shared
budget too, so every process waits. The shared budget is given the rate (from the headers, the default until
they are known) and a burst: the largest bucket the headers have shown (`Remaining` + 1 right after an
answer) less a spare tenth, none until then. This package knows nothing of the store: only the protocol.

**People first.** Work nobody waits for (refreshing the customer directory, importing ids) runs `in_background()`:
its requests keep a reserve of the bucket untouched (a tenth of it, at least BACKGROUND_RESERVE_LEAST tokens),
here and in the shared budget (where they wait as if their burst were smaller by the reserve). A person's request
may use the whole burst, so it goes at once while background requests wait their turn: the background keeps the
budget's schedule no further ahead than its smaller burst, which leaves the reserve's places to people, and every
request still books one place, so together they never exceed the rate. The background gets what people leave.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

log = logging.getLogger("billing_desk.payments")

DEFAULT_LIMIT = 1000  # requests per window until the API's headers tell the limit


class SharedBudget(Protocol):
    """A rate budget shared by every process using one API key.

    `reserve` books the next request's place at `rate_per_second` with a burst of `burst` requests beyond the
    steady rate (the budget keeps the largest any process asked for), and returns how many seconds the request
    must wait for it, leaving `keep_free` places of that burst to others (background work's reserve); `hold`
    makes every process wait at least `seconds` before sending again (after a 429). Both must return promptly and
    never raise: a budget that can't be reached answers 0, and the process paces itself alone.
    """

    def reserve(self, rate_per_second: float, burst: int, keep_free: int = 0) -> float: ...

    def hold(self, seconds: float) -> None: ...


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


class RatePacer:
    SPARE_TOKENS = 1.0  # absorbs the jitter between when we send and when the server counts
    PROBE_WAIT_SECONDS = 5.0
    # The shared budget's burst leaves this much of the bucket spare (at least SHARED_SPARE_LEAST tokens): it
    # absorbs the jitter between sending and the server counting, and requests the budget didn't book (retries).
    SHARED_SPARE_SHARE, SHARED_SPARE_LEAST = 0.1, 2
    # What background work leaves untouched for people: this share of the bucket, at least this many tokens.
    BACKGROUND_RESERVE_SHARE, BACKGROUND_RESERVE_LEAST = 0.1, 10

    def __init__(self, window_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, *, shared: SharedBudget | None = None,
                 default_limit: int = DEFAULT_LIMIT) -> None:
        self.window_seconds = window_seconds
        self.shared, self.default_limit = shared, default_limit
        self.capacity: int | None = None  # the largest bucket the headers have shown (Remaining + 1)
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Condition()
        self.limit: int | None = None
        self._tokens = 0.0  # tokens left at the last observation, less what was then in flight
        self._observed_at = 0.0
        self._sent_since = 0  # requests let go since that observation
        self._in_flight = 0
        self._hold_until = 0.0
        self.waited_seconds = 0.0  # total time spent pacing, for benchmarks
        self._background = threading.local()  # set by in_background() for the thread doing the work

    @property
    def rate(self) -> float:
        return (self.limit or 0) / self.window_seconds

    @property
    def shared_burst(self) -> int:
        """The burst the shared budget may allow beyond the first request: the bucket seen less a spare tenth
        (at least two tokens), none until a bucket is seen."""
        if not self.capacity:
            return 0
        spare = max(self.SHARED_SPARE_LEAST, math.ceil(self.capacity * self.SHARED_SPARE_SHARE))
        return max(0, self.capacity - 1 - spare)

    @property
    def background_reserve(self) -> int:
        """The tokens background work leaves for people: a tenth of the bucket seen, at least
        BACKGROUND_RESERVE_LEAST (the bucket's size is not known before the first answer: the least, then)."""
        return max(self.BACKGROUND_RESERVE_LEAST, math.ceil((self.capacity or 0) * self.BACKGROUND_RESERVE_SHARE))

    @property
    def background(self) -> bool:
        """Whether this thread's requests are background work."""
        return bool(getattr(self._background, "on", False))

    @contextlib.contextmanager
    def in_background(self) -> Iterator[None]:
        """This thread's requests, until the block ends, yield to people's (the module's docstring)."""
        before = self.background
        self._background.on = True
        try:
            yield
        finally:
            self._background.on = before

    def delay_for_next(self) -> float:
        """Reserves a place for the next request (here, and in the shared budget if there is one) and returns
        how long it must wait for it."""
        background = self.background
        delay = self._local_delay(background)
        if self.shared is None:
            return delay
        try:
            shared = self.shared.reserve((self.limit or self.default_limit) / self.window_seconds, self.shared_burst,
                                         self.background_reserve if background else 0)
        except Exception as problem:  # the protocol says it never raises; a lookup must not fail if it does
            log.warning("The shared rate budget failed (%s); pacing this request alone.", type(problem).__name__)
            shared = 0.0
        if shared > delay:
            with self._lock:
                self.waited_seconds += shared - delay
            delay = shared
        return delay

    def _local_delay(self, background: bool = False) -> float:
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
            needed = 1.0 + self.SPARE_TOKENS + (self.background_reserve if background else 0)
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
            self.capacity = max(self.capacity or 0, remaining + 1)
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
        seconds = retry_after if retry_after else 1.0
        with self._lock:
            now = self._clock()
            self._hold_until = max(self._hold_until, now + seconds)
            self._tokens, self._observed_at, self._sent_since = 0.0, self._hold_until, 0
        if self.shared is not None:  # every other process using the key waits too
            try:
                self.shared.hold(seconds)
            except Exception as problem:
                log.warning("The shared rate budget failed to hold (%s).", type(problem).__name__)
