"""Password sign-in, for a team without an identity provider (and the sandbox's demo users).

One attempt: reserve a try on the username's and the address's counters (services/auth/throttle.py), check the
password (an unknown username costs the same bcrypt work as a known one), then start a stored session
(services/auth/sessions.py). Every refusal is one sentence that doesn't say whether the username exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import bcrypt
from sqlalchemy.exc import SQLAlchemyError

from .directory import UsersDirectory
from .sessions import SIGN_IN_UNAVAILABLE, SignInSessions
from .throttle import LoginThrottle
from .users import User

PasswordCheck = Callable[[User, str], bool]
MAX_PASSWORD_LENGTH = 1024  # bcrypt reads 72 bytes; anything far longer is not a password


def bcrypt_check(user: User, password: str) -> bool:
    return bcrypt.checkpw(password.encode()[:72], user.password_hash.encode())


@dataclass(frozen=True)
class SignInResult:
    token: str | None = None  # the session's token, for the browser's cookie
    refusal: str | None = None


class PasswordSignIn:
    def __init__(self, directory: UsersDirectory, throttle: LoginThrottle, sessions: SignInSessions) -> None:
        self.directory, self.throttle, self.sessions = directory, throttle, sessions

    def attempt(self, typed_username: str, password: str, address: str | None,
                check: PasswordCheck = bcrypt_check) -> SignInResult:
        """A sign-in needs the store (the throttle's counters, the session row): while it is down, one
        sentence and no session, so no sign-in escapes the lockout."""
        try:
            return self._attempt(typed_username, password, address, check)
        except SQLAlchemyError:
            return SignInResult(refusal=SIGN_IN_UNAVAILABLE)

    def _attempt(self, typed_username: str, password: str, address: str | None,
                 check: PasswordCheck) -> SignInResult:
        username = typed_username.strip().lower()
        if not username or not password:
            return SignInResult(refusal="Enter your username and password.")
        if len(username) > 200 or len(password) > MAX_PASSWORD_LENGTH:
            return SignInResult(refusal="Wrong username or password.")
        user = self.directory.current().get(username)
        reserved = self.throttle.reserve(username, address, known=user is not None)
        if reserved.locked:
            until = f" until {reserved.unlocks_at:%H:%M} UTC" if reserved.unlocks_at else ""
            return SignInResult(refusal=f"Too many failed attempts: sign-in is locked{until}.")
        if user is None:
            self.directory.burn_password_check(password)
            matched = False
        else:
            try:
                matched = check(user, password)
            except ValueError:  # a malformed hash or password: to the person it is a failed sign-in
                matched = False
        if matched and user is not None:
            self.throttle.succeeded(username)
            return SignInResult(token=self.sessions.start(user))
        if self.throttle.failed(username, user is not None, reserved):
            minutes = int(self.throttle.lockout.total_seconds() // 60)
            return SignInResult(refusal=f"Too many failed attempts: sign-in is locked for {minutes} minutes.")
        return SignInResult(refusal="Wrong username or password.")
