"""Login throttling: five failed attempts lock a username for fifteen minutes, across restarts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ..audit import AuditLog
from .sign_ins import SignInRecords

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)


@dataclass(frozen=True)
class ThrottleState:
    locked: bool
    unlocks_at: datetime | None
    failures: int


class LoginThrottle:
    def __init__(self, sign_ins: SignInRecords, audit: AuditLog, max_failures: int = MAX_FAILURES,
                 lockout: timedelta = LOCKOUT) -> None:
        self.sign_ins, self.audit, self.max_failures, self.lockout = sign_ins, audit, max_failures, lockout

    def state(self, username: str) -> ThrottleState:
        failures = self.sign_ins.recent_failures(username, self.lockout)
        if len(failures) >= self.max_failures:
            unlocks_at = failures[-self.max_failures] + self.lockout
            if unlocks_at > datetime.now(timezone.utc):
                return ThrottleState(True, unlocks_at, len(failures))
        return ThrottleState(False, None, len(failures))

    def failed(self, username: str, role: str) -> ThrottleState:
        self.sign_ins.record_login(username, succeeded=False)
        state = self.state(username)
        if state.locked and state.failures == self.max_failures:
            self.audit.record(user=username, role=role, action="login locked", organization_id=None,
                              outcome="denied", error=f"{self.max_failures} failed attempts; locked for "
                                                      f"{int(self.lockout.total_seconds() // 60)} minutes")
        return state

    def succeeded(self, username: str) -> None:
        self.sign_ins.record_login(username, succeeded=True)
