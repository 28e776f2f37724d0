"""One API key, several console processes: the key's rate budget, kept in the store so every replica shares it.

The Payments API limits each key with a token bucket (`X-RateLimit-*`). Each process's RatePacer mirrors that
bucket from the answers it gets, but only counts its own requests: two replicas running bulk lookups on one key
would each spend the whole rate, and meet 429s. So every request also books a place here first.

**GCRA** (the generic cell rate algorithm, as in ATM networks and most rate limiters): one row per API key in
`rate_budgets` holds `tat`, the theoretical arrival time of the next request, in epoch seconds. Booking a place
at `rate` (one request every T = 1/rate seconds) with a burst of B is one atomic step:

    tat        = max(tat, now) + T
    allowed_at = tat - T - B·T          the request waits max(0, allowed_at - now)

so B + 1 requests may go at once after a quiet spell, and beyond that the requests of every process together go
at exactly `rate`. That is a token bucket of B + 1 kept by the clients: if it is no larger than the API's own,
what they send together never overdraws the API's. The pacer asks for the bucket the API's headers have shown
it (`Remaining` + 1 just after an answer) less a spare tenth, so a bulk lookup on one replica still spends the
API's whole bucket at once (a fixed small burst would make 300 lookups at 1,000/min take 18 s instead of 2),
and for no burst until it has seen one. The row keeps `burst`, the largest any replica has asked for, and
every replica books with it: one that started mid-run (and so never saw a full bucket) doesn't wait behind
the others' burst. `hold(seconds)`, after a 429, moves `tat` so that no one's next place comes before now +
seconds, with the bucket then counted empty.

**One clock.** On PostgreSQL the step is one statement (INSERT … ON CONFLICT DO UPDATE … RETURNING) that reads
the database's `clock_timestamp()`, so replicas on different hosts share its clock and its row lock. A SQLite
store lives on one host: the step runs in a BEGIN IMMEDIATE transaction (the write lock taken first) reading
that host's `time.time()`.

**The store is not needed to read.** The budget uses its own small connection pool with short timeouts (2 s to
connect, 1 s for a lock or a statement). If a step fails (the store is down, or locked too long), the budget
logs one warning, answers 0 (the process paces itself alone from the headers, as before) and leaves the store
alone for RETRY_AFTER_FAILURE seconds before trying again; lookups go on through a store outage.

The key itself is never stored: `key_id` is the first 24 hex digits of its SHA-256.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import Column, Double, Integer, String, Table, create_engine, text
from sqlalchemy.engine import Connection, Engine

from .engine import metadata

log = logging.getLogger("billing_desk.rate_budget")

RETRY_AFTER_FAILURE = 30.0  # seconds on the local pacer alone after the store failed a step
TIMEOUT_SECONDS = 1.0  # a lock or a statement; connecting gets CONNECT_TIMEOUT_SECONDS
CONNECT_TIMEOUT_SECONDS = 2  # psycopg's least
DEFAULT_RATE_PER_SECOND = 1000 / 60  # until a caller has booked a place (hold needs a rate)

rate_budgets = Table(
    "rate_budgets", metadata,
    Column("key_id", String(24), primary_key=True),  # SHA-256 of the API key, first 24 hex digits
    Column("tat", Double, nullable=False),  # theoretical arrival time of the next request, epoch seconds
    Column("burst", Integer, nullable=False, server_default="0"),  # the largest burst a replica has asked for
)

_PG_RESERVE = text("""
INSERT INTO rate_budgets (key_id, tat, burst)
VALUES (:key_id, extract(epoch FROM clock_timestamp())::float8 + :interval, :burst)
ON CONFLICT (key_id) DO UPDATE
SET tat = GREATEST(rate_budgets.tat, extract(epoch FROM clock_timestamp())::float8) + :interval,
    burst = GREATEST(rate_budgets.burst, EXCLUDED.burst)
RETURNING tat, burst, extract(epoch FROM clock_timestamp())::float8 AS now
""")
_PG_HOLD = text("""
INSERT INTO rate_budgets (key_id, tat, burst)
VALUES (:key_id, extract(epoch FROM clock_timestamp())::float8 + :seconds, 0)
ON CONFLICT (key_id) DO UPDATE
SET tat = GREATEST(rate_budgets.tat,
                   extract(epoch FROM clock_timestamp())::float8 + :seconds + rate_budgets.burst * :interval)
""")
# SQLite: run inside BEGIN IMMEDIATE, with :now read once the write lock is held.
_SQLITE_RESERVE = text("""
INSERT INTO rate_budgets (key_id, tat, burst) VALUES (:key_id, :now + :interval, :burst)
ON CONFLICT (key_id) DO UPDATE
SET tat = max(rate_budgets.tat, :now) + :interval, burst = max(rate_budgets.burst, excluded.burst)
RETURNING tat, burst
""")
_SQLITE_HOLD = text("""
INSERT INTO rate_budgets (key_id, tat, burst) VALUES (:key_id, :now + :seconds, 0)
ON CONFLICT (key_id) DO UPDATE
SET tat = max(rate_budgets.tat, :now + :seconds + rate_budgets.burst * :interval)
""")


def key_fingerprint(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()[:24]


def budget_engine(engine: Engine, timeout_seconds: float = TIMEOUT_SECONDS) -> Engine:
    """A pool of its own for the budget, on the store's database: one connection (steps are serialised per
    process anyway) with short timeouts, so a slow or unreachable store holds a lookup back by seconds, never
    minutes, and the console's other work keeps its own pool and timeouts."""
    if engine.dialect.name == "postgresql":
        milliseconds = int(timeout_seconds * 1000)
        return create_engine(engine.url, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=1,
                             pool_timeout=timeout_seconds, pool_pre_ping=True,
                             connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS,
                                           "options": f"-c statement_timeout={milliseconds} "
                                                      f"-c lock_timeout={milliseconds}"})
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        return create_engine(engine.url, pool_size=1, max_overflow=1, pool_timeout=timeout_seconds,
                             connect_args={"timeout": timeout_seconds})  # SQLite's busy timeout
    return engine  # in memory: only this engine's connections can see it


class SharedRateBudget:
    """The API key's rate budget in the store; a `SharedBudget` for RatePacer (services/payments/rate_pacer.py)."""

    def __init__(self, engine: Engine, api_key: str, *, retry_after_failure: float = RETRY_AFTER_FAILURE,
                 timeout_seconds: float = TIMEOUT_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        if engine.dialect.name not in ("postgresql", "sqlite"):
            raise ValueError(f"The shared rate budget needs SQLite or PostgreSQL, not {engine.dialect.name}.")
        self.key_id = key_fingerprint(api_key)
        self.engine = budget_engine(engine, timeout_seconds)
        self._own_engine = self.engine is not engine
        self.retry_after_failure, self.timeout_seconds, self._clock = retry_after_failure, timeout_seconds, clock
        self._lock = threading.Lock()  # one step at a time per process: the row is one lock in the store anyway
        self._interval = 1 / DEFAULT_RATE_PER_SECOND
        self._down_until: float | None = None  # while set, the store failed: local pacing only until then
        self.failures = 0  # steps the store failed (or that were skipped while it was failing)
        self.steps = 0  # steps the store performed

    def __repr__(self) -> str:
        return f"SharedRateBudget(key_id={self.key_id!r}, store={self.engine.url.render_as_string()!r})"

    @property
    def available(self) -> bool:
        """Whether the next step will try the store (False while backing off after a failure)."""
        return self._down_until is None or self._clock() >= self._down_until

    def reserve(self, rate_per_second: float, burst: int, keep_free: int = 0) -> float:
        """Books the next request's place; returns how many seconds it must wait for it (0 if the store can't
        be used now). `keep_free`: places of the burst this request leaves to others (background work leaves them
        to people's requests: services/payments/rate_pacer.py)."""
        interval = 1.0 / rate_per_second
        self._interval = interval
        found = self._step("reserve", interval=interval, burst=max(0, int(burst)))
        if found is None:
            return 0.0
        tat, row_burst, now = found
        return max(0.0, tat - interval - max(0, row_burst - max(0, int(keep_free))) * interval - now)

    def hold(self, seconds: float) -> None:
        """After a 429: no process books a place before now + seconds (the bucket then counted empty)."""
        self._step("hold", interval=self._interval, seconds=max(0.0, float(seconds)))

    def close(self) -> None:
        if self._own_engine:
            self.engine.dispose()

    # --- the store ------------------------------------------------------------------------------------------
    def _step(self, kind: str, **values: float) -> tuple[float, int, float] | None:
        if not self.available:
            self.failures += 1
            return None
        # A step stuck behind a slow store must not queue every lookup behind it: go alone this once.
        if not self._lock.acquire(timeout=self.timeout_seconds):
            self.failures += 1
            return None
        try:
            if not self.available:
                self.failures += 1
                return None
            try:
                with self.engine.connect() as conn:
                    found = (self._postgresql if conn.dialect.name == "postgresql" else self._sqlite)(
                        conn, kind, {"key_id": self.key_id, **values})
            except Exception as problem:
                self._failed(problem)
                return None
            if self._down_until is not None:
                log.info("The shared rate budget is back in the store; pacing with the other replicas again.")
                self._down_until = None
            self.steps += 1
            return found
        finally:
            self._lock.release()

    @staticmethod
    def _postgresql(conn: Connection, kind: str, values: dict[str, object]) -> tuple[float, int, float] | None:
        if kind == "hold":  # autocommit: each statement is its own transaction
            conn.execute(_PG_HOLD, values)
            return None
        row = conn.execute(_PG_RESERVE, values).one()
        return float(row.tat), int(row.burst), float(row.now)

    @staticmethod
    def _sqlite(conn: Connection, kind: str, values: dict[str, object]) -> tuple[float, int, float] | None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock first, then the clock (waits the busy timeout)
        try:
            now = time.time()
            if kind == "hold":
                conn.execute(_SQLITE_HOLD, {**values, "now": now})
                found = None
            else:
                row = conn.execute(_SQLITE_RESERVE, {**values, "now": now}).one()
                found = float(row.tat), int(row.burst), now
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        return found

    def _failed(self, problem: Exception) -> None:
        self.failures += 1
        first = self._down_until is None
        self._down_until = self._clock() + self.retry_after_failure
        original = getattr(problem, "orig", None) or problem  # the driver's error, without SQLAlchemy's SQL dump
        lines = str(original).strip().splitlines()
        cause = f"{type(original).__name__}: {lines[0][:200]}" if lines else type(original).__name__
        if first:
            log.warning("The shared rate budget can't use the store (%s); this process paces itself alone from the "
                        "API's headers and tries the store again in %.0f s.", cause, self.retry_after_failure)
        else:
            log.debug("The shared rate budget still can't use the store (%s).", cause)
