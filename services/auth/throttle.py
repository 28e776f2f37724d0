"""Login throttling, per username and per client address, kept in the store (so it holds across restarts and
replicas).

Each attempt first *reserves* a try on both counters in one statement per counter, inside one transaction:
`UPDATE … SET failures = failures + 1 WHERE key = … AND failures < limit`. The database serialises those
updates, so twenty attempts at once on one username get exactly `max_failures` tries between them, never
more. A success clears the username's counter (not the address's: one good account must not reset the
count of guesses at others). Reaching the limit locks that username or address for `lockout` from then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, DateTime, Integer, String, Table, case, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from ..audit import AuditLog
from ..store import metadata, now, utc

MAX_FAILURES = 5
MAX_ADDRESS_FAILURES = 20
LOCKOUT = timedelta(minutes=15)
UNKNOWN_USER = "(unknown user)"

login_throttles = Table(
    "login_throttles", metadata,
    Column("key", String(200), primary_key=True),  # "user:NAME" or "address:IP"
    Column("failures", Integer, nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class ThrottleState:
    locked: bool
    unlocks_at: datetime | None = None
    last_tries: tuple[tuple[str, int], ...] = ()  # counters this attempt used up: (key, limit)


def typed_username_marker(typed: str) -> str:
    """What the audit log keeps of a username nobody has: a short, harmless form of what was typed."""
    return re.sub(r"[^a-z0-9._@-]", "", typed.lower())[:24] or "—"


class LoginThrottle:
    def __init__(self, engine: Engine, audit: AuditLog, max_failures: int = MAX_FAILURES,
                 max_address_failures: int = MAX_ADDRESS_FAILURES, lockout: timedelta = LOCKOUT) -> None:
        self.engine, self.audit, self.lockout = engine, audit, lockout
        self.max_failures, self.max_address_failures = max_failures, max_address_failures

    def reserve(self, username: str, address: str | None, known: bool) -> ThrottleState:
        """Counts this attempt against the username and the address, or says which is locked (and counts
        nothing). Call before checking the password; call `succeeded` after a right one."""
        counters = [(f"user:{username}", self.max_failures)]
        if address:
            counters.append((f"address:{address}", self.max_address_failures))
        moment = now()
        last_tries: list[tuple[str, int]] = []
        try:
            with self.engine.begin() as conn:
                for key, limit in counters:
                    failures = self._take(conn, key, limit, moment)
                    if failures is None:
                        raise _Locked(self._unlocks_at(conn, key))
                    if failures == limit:
                        last_tries.append((key, limit))
        except _Locked as locked:  # the transaction is rolled back: nothing was counted
            return ThrottleState(True, locked.unlocks_at)
        return ThrottleState(False, last_tries=tuple(last_tries))

    def failed(self, username: str, known: bool, reserved: ThrottleState) -> bool:
        """After a wrong password: records in the audit log each lock this attempt caused; True if it did."""
        for key, limit in reserved.last_tries:
            self._record_lock(username, known, key, limit)
        return bool(reserved.last_tries)

    def succeeded(self, username: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(login_throttles).where(login_throttles.c.key == f"user:{username}").values(failures=0))

    def state(self, username: str) -> ThrottleState:
        with self.engine.connect() as conn:
            row = conn.execute(select(login_throttles).where(login_throttles.c.key == f"user:{username}")).first()
        if row is None or row.failures < self.max_failures:
            return ThrottleState(False)
        unlocks_at = utc(row.window_start) + self.lockout  # type: ignore[operator]
        return ThrottleState(unlocks_at > now(), unlocks_at if unlocks_at > now() else None)

    def _take(self, conn: Connection, key: str, limit: int, moment: datetime) -> int | None:
        """One more failure on `key` if it has tries left; returns the new count, or None when locked."""
        stale = moment - self.lockout
        try:
            with conn.begin_nested():
                conn.execute(login_throttles.insert().values(key=key, failures=0, window_start=moment))
        except IntegrityError:
            pass  # the counter exists
        restart = login_throttles.c.window_start < stale
        taken = conn.execute(update(login_throttles).where(
            (login_throttles.c.key == key) & (restart | (login_throttles.c.failures < limit))).values(
            failures=case((restart, 1), else_=login_throttles.c.failures + 1),
            # the lock lasts `lockout` from the attempt that reached the limit
            window_start=case((restart, moment), (login_throttles.c.failures + 1 >= limit, moment),
                              else_=login_throttles.c.window_start))).rowcount
        if not taken:
            return None
        return int(conn.execute(select(login_throttles.c.failures).where(login_throttles.c.key == key)).scalar_one())

    def _unlocks_at(self, conn: Connection, key: str) -> datetime | None:
        start = utc(conn.execute(select(login_throttles.c.window_start).where(login_throttles.c.key == key)).scalar())
        return start + self.lockout if start else None

    def _record_lock(self, username: str, known: bool, key: str, limit: int) -> None:
        minutes = int(self.lockout.total_seconds() // 60)
        what = "this username" if key.startswith("user:") else "this address"
        self.audit.record(user=username if known else UNKNOWN_USER, role="—", action="login locked",
                          organization_id=None, outcome="denied",
                          error=f"{limit} attempts; {what} is locked for {minutes} minutes",
                          parameters={} if known else {"typed": typed_username_marker(username)})


class _Locked(Exception):
    def __init__(self, unlocks_at: datetime | None) -> None:
        self.unlocks_at = unlocks_at
