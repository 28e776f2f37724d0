"""The users the console knows right now: the users file, re-read whenever it changes (no restart needed).

Each page run asks `current()`, which costs one `stat` of the file. A file that becomes unreadable or invalid
keeps the last good list (and says why in the log), so a half-saved edit can't lock everyone out. Users
removed, or whose role or password changed, are reported to `on_change`, which ends their sessions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import bcrypt

from ..errors import ConfigError
from .users import User, read_users, refuse_demo_credentials

log = logging.getLogger("billing_desk.auth")


class UsersDirectory:
    def __init__(self, path: Path | None = None, fixed: dict[str, User] | None = None,
                 on_change: Callable[[set[str]], None] | None = None, refuse_demo: bool = True) -> None:
        """`path`: the users file to follow; `fixed`: users that never change (the sandbox's demo users)."""
        self.path, self.on_change, self.refuse_demo = path, on_change, refuse_demo
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, User] = dict(fixed or {})
        if path is not None:
            self._users = self._read()  # at start a bad file stops the console (ConfigError)
            self._stamp = self._stat()
        self._dummy_hash = _dummy_hash_like(self._users)

    def current(self) -> dict[str, User]:
        if self.path is None:
            return self._users
        stamp = self._stat()
        if stamp == self._stamp:
            return self._users
        with self._lock:
            if stamp != self._stamp:
                self._reload(stamp)
        return self._users

    def _stat(self) -> tuple[int, int] | None:
        try:
            info = self.path.stat()  # type: ignore[union-attr]
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size)

    def _read(self) -> dict[str, User]:
        users = read_users(self.path)  # type: ignore[arg-type]
        if self.refuse_demo:
            refuse_demo_credentials(users)
        return users

    def _reload(self, stamp: tuple[int, int] | None) -> None:
        try:
            fresh = self._read()
        except ConfigError as problem:
            log.error("The users file changed but can't be used; keeping the previous users: %s", problem)
            self._stamp = stamp
            return
        changed = {name for name, user in self._users.items() if fresh.get(name) != user}
        self._users, self._stamp = fresh, stamp
        self._dummy_hash = _dummy_hash_like(fresh)
        log.info("Users file re-read: %d users, %d removed or changed", len(fresh), len(changed))
        if changed and self.on_change is not None:
            self.on_change(changed)

    def burn_password_check(self, password: str) -> None:
        """For an unknown username: a bcrypt check as costly as a real one, so a wrong username takes as long
        to refuse as a wrong password and usernames can't be found by timing."""
        bcrypt.checkpw(password.encode()[:72], self._dummy_hash)


def _dummy_hash_like(users: dict[str, User]) -> bytes:
    """A hash of a random password with the work factor the real users' hashes have (the most common one)."""
    costs = [user.password_hash.split("$")[2] for user in users.values() if user.password_hash.count("$") >= 3]
    rounds = int(max(set(costs), key=costs.count)) if costs else 12
    return bcrypt.hashpw(b"no user has this password", bcrypt.gensalt(rounds))
