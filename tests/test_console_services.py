"""Configuration, users, login throttling, intents and formatting: the console's rules outside Streamlit."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from services import intents
from services.audit import AuditLog
from services.config import ConfigError, load_config
from services.auth.__main__ import main
from services.auth.sign_ins import SignInRecords
from services.formatting import money
from services.store import open_store
from ui.present import escape_markdown
from services.auth.throttle import LoginThrottle
from services.auth.roles import Action, Page, Role, allowed, pages_for
from services.auth.users import (DEMO_PASSWORDS, add_user, demo_users, hash_password, read_users,
                            refuse_demo_credentials)

LIVE_KEY = "bsk_live_" + "a1" * 16
COOKIE = "c" * 40


def test_roles() -> None:
    assert pages_for(Role.SUPPORT) == [Page.CUSTOMER, Page.BULK, Page.PLANS]
    assert pages_for(Role.FINANCE) == [Page.CUSTOMER, Page.BULK, Page.PLANS, Page.SUBSCRIPTION, Page.AUDIT]
    assert pages_for("admin") == pages_for(Role.FINANCE)
    assert allowed("support", Action.CREATE_PORTAL_LINK) and not allowed("support", Action.CANCEL_SUBSCRIPTION)
    assert not allowed(None, Action.VIEW_PLANS) and not allowed("superuser", Action.VIEW_PLANS)


def test_no_api_configured_means_sandbox() -> None:
    config = load_config({}, {})
    assert config.sandbox and config.environment == "sandbox"
    assert config.audit_database_url == "sqlite:///.data/audit.sqlite3"


def test_api_from_environment_or_secrets(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    env = {"PAYMENTS_API_URL": "https://api.example.com/api/v1/", "PAYMENTS_API_KEY": LIVE_KEY,
           "BILLING_DESK_COOKIE_KEY": COOKIE, "BILLING_DESK_USERS": str(users)}
    config = load_config(env, {})
    assert config.api_url == "https://api.example.com/api/v1" and config.environment == "live"
    assert LIVE_KEY not in repr(config) and COOKIE not in repr(config)
    secrets = {"payments": {"api_url": "https://api.example.com/api/v1", "api_key": "bsk_test_" + "0" * 32},
               "auth": {"cookie_key": COOKIE, "users_file": str(users)}}
    assert load_config({}, secrets).environment == "test"


@pytest.mark.parametrize(("env", "message"), [
    ({"PAYMENTS_API_URL": "https://api.example.com/api/v1"}, "both"),
    ({"PAYMENTS_API_URL": "http://api.example.com/api/v1", "PAYMENTS_API_KEY": LIVE_KEY}, "https"),
    ({"PAYMENTS_API_URL": "https://api.example.com", "PAYMENTS_API_KEY": "sk_live_x"}, "bsk_live_"),
    ({"PAYMENTS_API_URL": "https://api.example.com", "PAYMENTS_API_KEY": LIVE_KEY,
      "BILLING_DESK_COOKIE_KEY": "short"}, "cookie key"),
    ({"PAYMENTS_API_URL": "https://api.example.com", "PAYMENTS_API_KEY": LIVE_KEY,
      "BILLING_DESK_COOKIE_KEY": COOKIE}, "users file"),
])
def test_production_refuses_unsafe_configuration(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({"BILLING_DESK_USERS": "users.yaml", **env} if "users file" not in message else env, {})


def test_api_timeout_is_configurable_and_checked() -> None:
    assert load_config({}, {}).api_timeout_seconds == 10.0
    assert load_config({"PAYMENTS_API_TIMEOUT": "2.5"}, {}).api_timeout_seconds == 2.5
    assert load_config({}, {"payments": {"timeout_seconds": 30}}).api_timeout_seconds == 30.0
    for bad in ("0", "-1", "soon", "nan", "1e9"):
        with pytest.raises(ConfigError, match="PAYMENTS_API_TIMEOUT must be a number from 0.5 to 120"):
            load_config({"PAYMENTS_API_TIMEOUT": bad}, {})


def test_loopback_may_use_http(tmp_path: Path) -> None:
    env = {"PAYMENTS_API_URL": "http://127.0.0.1:8790/api/v1", "PAYMENTS_API_KEY": LIVE_KEY,
           "BILLING_DESK_COOKIE_KEY": COOKIE, "BILLING_DESK_USERS": "u.yaml"}
    assert load_config(env, {}).api_url == "http://127.0.0.1:8790/api/v1"


def test_users_file_round_trip_and_demo_refusal(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    add_user(path, "Jane", "finance", "a long secret phrase", name="Jane Doe", email="jane@example.com")
    users = read_users(path)
    assert users["jane"].role is Role.FINANCE and users["jane"].password_hash.startswith("$2b$")
    assert "a long secret phrase" not in path.read_text()
    with pytest.raises(ConfigError, match="demo"):
        add_user(path, "bob", "support", DEMO_PASSWORDS["support"])
    path.write_text(f"users:\n  finance:\n    role: finance\n    password_hash: '{hash_password('finance-demo', 4)}'\n")
    with pytest.raises(ConfigError, match="public demo password"):
        refuse_demo_credentials(read_users(path))
    path.write_text("users:\n  eve:\n    role: root\n    password_hash: '$2b$04$x'\n")
    with pytest.raises(ConfigError, match="role"):
        read_users(path)


def test_users_command_asks_for_the_password_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["correct horse battery", "correct horse battery"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["add", "kim", "--role", "admin", "--file", str(tmp_path / "u.yaml")]) == 0
    assert read_users(tmp_path / "u.yaml")["kim"].role is Role.ADMIN
    answers = iter(["one password here", "another password"])
    assert main(["add", "lee", "--role", "admin", "--file", str(tmp_path / "u.yaml")]) == 1


def test_demo_users_cover_the_three_roles() -> None:
    assert {user.role for user in demo_users().values()} == set(Role)


def _throttle(url: str, **settings: timedelta) -> LoginThrottle:
    store = open_store(url)  # a new one per call: like a new process on the same database
    return LoginThrottle(SignInRecords(store), AuditLog(store), **settings)  # type: ignore[arg-type]


def test_five_failures_lock_for_fifteen_minutes_across_restarts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    throttle = _throttle(url)
    for attempt in range(4):
        assert not throttle.failed("finance", "finance").locked
    state = throttle.failed("finance", "finance")
    assert state.locked and state.unlocks_at is not None
    restarted = _throttle(url)  # a new process, same store
    assert restarted.state("finance").locked and not restarted.state("support").locked
    events = restarted.audit.events()
    assert list(events.action) == ["login locked"] and events.iloc[0].outcome == "denied"
    expired = _throttle(url, lockout=timedelta(seconds=0))
    assert not expired.state("finance").locked


def test_a_success_clears_earlier_failures(tmp_path: Path) -> None:
    throttle = _throttle(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    for _ in range(4):
        throttle.failed("admin", "admin")
    throttle.succeeded("admin")
    assert not throttle.failed("admin", "admin").locked


def test_one_key_per_intent_until_it_is_retired() -> None:
    session: dict = {}
    first = intents.key_for(session, "cancel", {"organization": "org_a"})
    assert intents.key_for(session, "cancel", {"organization": "org_a"}) == first
    assert intents.key_for(session, "cancel", {"organization": "org_b"}) != first
    intents.retire(session, "cancel", {"organization": "org_a"})
    assert intents.key_for(session, "cancel", {"organization": "org_a"}) != first


def test_formatting() -> None:
    assert money(1790) == "$1,790.00" and money(None) == "—"
    assert escape_markdown("$5 **bold** <b>x</b> [link](javascript:x)") == (
        r"\$5 \*\*bold\*\* \<b\>x\<\/b\> \[link\]\(javascript\:x\)")
