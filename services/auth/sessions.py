"""Password sign-in sessions, kept in the store and checked on every page run.

A sign-in creates a session row and hands the browser a random token (only its SHA-256 is stored, so the
database holds nothing a thief could replay). Every page run checks the token's row: the session still open,
the user still in the users file with the same role and password (a fingerprint of both), the session begun
after the user's *sessions valid from* time, used within the idle timeout and younger than the absolute
lifetime. Logout moves the user's *valid from* time forward, which ends every session of that user in every
console process, open tabs included. Everything lives in the store, so every replica sees the same.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Column, DateTime, String, Table, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..store import metadata, now, utc
from .roles import Actor, Role
from .users import User

IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_LIFETIME = timedelta(hours=12)
TOUCH_EVERY = timedelta(seconds=30)  # last-seen is written at most this often: a run is a read, not a write
# While the store is down (a database restart, a failover) a tab the store confirmed this recently stays signed
# in, so people can keep reading; the cookie's seal is still checked, only a logout elsewhere waits for the store.
STORE_OUTAGE_GRACE = timedelta(minutes=5)
STORE_DOWN = ("Billing Desk can't reach its database right now, so it can't confirm your sign-in. Try again in a "
              "minute.")
SSO_TOO_OLD = "Your sign-in is due to be renewed, so your access is current. Sign in again to continue."
SIGN_IN_UNAVAILABLE = "Billing Desk can't reach its database right now, so you can't sign in. Try again in a minute."

sign_in_sessions = Table(
    "sign_in_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("username", String(100), nullable=False, index=True),
    Column("role", String(20), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
)
sessions_valid_from = Table(
    "sessions_valid_from", metadata,
    Column("username", String(100), primary_key=True),
    Column("valid_from", DateTime(timezone=True), nullable=False),
)


def fingerprint(user: User) -> str:
    """Changes when the user's role or password changes: either ends the user's sessions."""
    return hashlib.sha256(f"{user.role.value}\0{user.password_hash}".encode()).hexdigest()


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _seal(token: str, key: str) -> str:
    """The token as the browser keeps it: signed with the cookie key, so rotating the key signs everyone out
    and a made-up value is refused before the store is asked."""
    signature = hmac.new(key.encode(), token.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{token}.{signature}"


def _unseal(value: str, key: str) -> str | None:
    token, _, signature = value.rpartition(".")
    if not token or not hmac.compare_digest(_seal(token, key), value):
        return None
    return token


@dataclass(frozen=True)
class SessionCheck:
    actor: Actor | None
    ended_because: str | None = None  # a sentence for the sign-in page when a session has just ended
    confirmed_at: datetime | None = None  # when the store last said this session is good
    store_unreachable: bool = False  # nothing could be asked: the store is down


def ride_out(previous: SessionCheck | None, current: SessionCheck,
             grace: timedelta = STORE_OUTAGE_GRACE) -> SessionCheck:
    """`current` unless the store couldn't be asked: then the same session's previous verdict, if the store
    confirmed it within `grace` (the caller passes only a verdict on the same token or identity)."""
    if not current.store_unreachable or previous is None or previous.actor is None:
        return current
    if previous.confirmed_at is None or now() - previous.confirmed_at > grace:
        return current
    return previous


class SignInSessions:
    def __init__(self, engine: Engine, cookie_key: str, idle_timeout: timedelta = IDLE_TIMEOUT,
                 lifetime: timedelta = ABSOLUTE_LIFETIME) -> None:
        self.engine, self.idle_timeout, self.lifetime = engine, idle_timeout, lifetime
        self._cookie_key = cookie_key

    def __repr__(self) -> str:
        return f"SignInSessions(idle_timeout={self.idle_timeout}, lifetime={self.lifetime})"

    def start(self, user: User) -> str:
        """Opens a session for `user`; returns the value the browser keeps (the sealed token)."""
        token = secrets.token_urlsafe(32)
        moment = now()
        with self.engine.begin() as conn:
            conn.execute(sign_in_sessions.insert().values(
                token_hash=_hash(token), username=user.username, role=user.role.value, fingerprint=fingerprint(user),
                started_at=moment, last_seen_at=moment))
        return _seal(token, self._cookie_key)

    def check(self, sealed: str | None, users: dict[str, User], touch: bool = True) -> SessionCheck:
        """A password session: the cookie's token, against the users file as it is now. `touch=False`: the
        check doesn't count as activity (a page polling by itself)."""
        token = _unseal(sealed, self._cookie_key) if isinstance(sealed, str) and sealed else None
        if not token:
            return SessionCheck(None)
        try:
            return self._check_token(token, users, touch)
        except SQLAlchemyError:
            return SessionCheck(None, STORE_DOWN, store_unreachable=True)

    def _check_token(self, token: str, users: dict[str, User], touch: bool) -> SessionCheck:
        row, valid_from = self._read(_hash(token))
        if row is None:
            return SessionCheck(None)
        user = users.get(row.username)
        if user is None or fingerprint(user) != row.fingerprint or user.role.value != row.role:
            return SessionCheck(None, "Your account changed, so you were signed out. Sign in again to continue.")
        return self._verdict(_hash(token), row, valid_from, Actor(user.username, Role(row.role)), touch)

    def check_sso(self, actor: Actor, signed_in_at: float | None, touch: bool = True,
                  max_age: timedelta | None = None) -> SessionCheck:
        """A single sign-on session: the identity provider vouches for the person (st.user); the console still
        applies logout-everywhere, the idle timeout and the absolute lifetime. One row per provider sign-in,
        holding the role the claims gave at sign-in: claims that map to another role now (the mapping changed)
        end it, and so does `max_age` since sign-in, so a group removed at the provider takes effect then."""
        try:
            return self._check_sso(actor, signed_in_at, touch, max_age)
        except SQLAlchemyError:
            return SessionCheck(None, STORE_DOWN, store_unreachable=True)

    def _check_sso(self, actor: Actor, signed_in_at: float | None, touch: bool,
                   max_age: timedelta | None) -> SessionCheck:
        key = _hash(f"sso\0{actor.subject}\0{signed_in_at}")
        row, valid_from = self._read(key, actor.username)
        if row is None:
            began = datetime.fromtimestamp(signed_in_at, timezone.utc) if signed_in_at else now()
            if valid_from is not None and began <= valid_from:
                return SessionCheck(None, "You were signed out. Sign in again to continue.")
            if max_age is not None and now() - began > max_age:
                return SessionCheck(None, SSO_TOO_OLD)
            moment = now()
            try:
                with self.engine.begin() as conn:
                    conn.execute(sign_in_sessions.insert().values(
                        token_hash=key, username=actor.username, role=actor.role.value, fingerprint="sso",
                        started_at=moment, last_seen_at=moment))
            except IntegrityError:
                pass  # another tab or replica recorded this sign-in a moment ago
            return SessionCheck(actor, confirmed_at=moment)
        if row.role != actor.role.value:
            return SessionCheck(None, "Your access changed, so you were signed out. Sign in again to continue.")
        if max_age is not None and now() - utc(row.started_at) > max_age:  # type: ignore[operator]
            return SessionCheck(None, SSO_TOO_OLD)
        return self._verdict(key, row, valid_from, actor, touch)

    def _read(self, key: str, username: str | None = None) -> tuple[Any, datetime | None]:
        with self.engine.connect() as conn:
            row = conn.execute(select(sign_in_sessions).where(sign_in_sessions.c.token_hash == key)).first()
            name = row.username if row is not None else username
            valid_from = utc(conn.execute(select(sessions_valid_from.c.valid_from).where(
                sessions_valid_from.c.username == name)).scalar()) if name else None
        return row, valid_from

    def _verdict(self, key: str, row: Any, valid_from: datetime | None, actor: Actor, touch: bool = True) -> SessionCheck:
        moment = now()
        started, last_seen = utc(row.started_at), utc(row.last_seen_at)
        assert started is not None and last_seen is not None
        if row.ended_at is not None or (valid_from is not None and started <= valid_from):
            return SessionCheck(None, "You were signed out. Sign in again to continue.")
        if moment - started > self.lifetime:
            return SessionCheck(None, "Your session reached its time limit. Sign in again to continue.")
        if moment - last_seen > self.idle_timeout:
            return SessionCheck(None, "You were signed out after a period without activity. Sign in again.")
        if touch and moment - last_seen > min(TOUCH_EVERY, self.idle_timeout / 10):  # a short timeout is touched more often
            with self.engine.begin() as conn:
                conn.execute(update(sign_in_sessions).where(sign_in_sessions.c.token_hash == key).values(
                    last_seen_at=moment))
        return SessionCheck(actor, confirmed_at=moment)

    def end_everywhere(self, username: str) -> int:
        """Logout: every session of this user, in every process and tab, ends now. Returns how many were open."""
        moment = now()
        with self.engine.begin() as conn:
            ended = conn.execute(update(sign_in_sessions).where(
                (sign_in_sessions.c.username == username) & sign_in_sessions.c.ended_at.is_(None)).values(
                ended_at=moment)).rowcount
            self._move_valid_from(conn, username, moment)
        return int(ended or 0)

    def invalidate(self, username: str) -> None:
        """A user removed or changed in the users file: sessions begun before now no longer count."""
        with self.engine.begin() as conn:
            self._move_valid_from(conn, username, now())

    def invalidate_all(self, usernames: set[str]) -> None:
        for username in usernames:
            self.invalidate(username)

    @staticmethod
    def _move_valid_from(conn: object, username: str, moment: datetime) -> None:
        updated = conn.execute(update(sessions_valid_from).where(  # type: ignore[attr-defined]
            sessions_valid_from.c.username == username).values(valid_from=moment)).rowcount
        if not updated:
            try:
                with conn.begin_nested():  # type: ignore[attr-defined]
                    conn.execute(sessions_valid_from.insert().values(  # type: ignore[attr-defined]
                        username=username, valid_from=moment))
            except IntegrityError:  # another process inserted it first: move it instead
                conn.execute(update(sessions_valid_from).where(  # type: ignore[attr-defined]
                    sessions_valid_from.c.username == username).values(valid_from=moment))
