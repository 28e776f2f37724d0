"""Configuration, users, login throttling, intents and formatting: the console's rules outside Streamlit."""

from __future__ import annotations

from pathlib import Path

import pytest

from services import intents
from services.config import ConfigError, load_config
from services.auth.__main__ import main
from services.formatting import money
from ui.present import escape_markdown
from services.auth.roles import Action, Page, Role, allowed, pages_for
from services.auth.users import (DEMO_PASSWORDS, add_user, demo_users, hash_password, read_users,
                            refuse_demo_credentials)

LIVE_KEY = "bsk_live_" + "a1" * 16
COOKIE = "Vq3xZ8pL2mN7rT4wY9bC6dF1gH5jK0sA-_e"
SANDBOX = {"BILLING_DESK_SANDBOX": "1"}
PRODUCTION = {"PAYMENTS_API_URL": "https://api.example.com/api/v1", "PAYMENTS_API_KEY": LIVE_KEY,
              "BILLING_DESK_COOKIE_KEY": COOKIE, "BILLING_DESK_USERS": "users.yaml", "BILLING_DESK_AUDIT_KEY": COOKIE,
              "BILLING_DESK_PUBLIC_URL": "https://desk.example.com"}


def test_roles() -> None:
    assert pages_for(Role.SUPPORT) == [Page.CUSTOMER, Page.BULK, Page.PLANS, Page.ATTENTION]
    assert pages_for(Role.FINANCE) == [Page.CUSTOMER, Page.BULK, Page.PLANS, Page.SUBSCRIPTION, Page.AUDIT,
                                       Page.APPROVALS, Page.REVENUE, Page.ATTENTION]
    assert allowed("support", Action.ADD_NOTE) and not allowed("support", Action.APPROVE_REQUESTS)
    assert pages_for("admin") == pages_for(Role.FINANCE)
    assert allowed("support", Action.SEND_PORTAL_LINK) and not allowed("support", Action.CANCEL_SUBSCRIPTION)
    assert not allowed("support", Action.SHOW_PORTAL_LINK) and allowed("finance", Action.SHOW_PORTAL_LINK)
    assert not allowed(None, Action.VIEW_PLANS) and not allowed("superuser", Action.VIEW_PLANS)


def test_the_sandbox_runs_only_when_asked_for() -> None:
    with pytest.raises(ConfigError, match="BILLING_DESK_SANDBOX=1"):
        load_config({}, {})
    config = load_config(SANDBOX, {})
    assert config.sandbox and config.environment == "sandbox"
    assert config.audit_database_url == "sqlite:///.data/audit.sqlite3"
    with pytest.raises(ConfigError, match="demo users never sit beside real ones"):
        load_config({**SANDBOX, "BILLING_DESK_USERS": "users.yaml"}, {})
    with pytest.raises(ConfigError, match="choose one"):
        load_config({**SANDBOX, "PAYMENTS_API_URL": "https://api.example.com", "PAYMENTS_API_KEY": LIVE_KEY}, {})


def test_the_configuration_repr_hides_secrets_and_database_passwords() -> None:
    config = load_config({**PRODUCTION, "AUDIT_DATABASE_URL": "postgresql+psycopg://desk:s3cret@db:5432/desk"}, {})
    shown = repr(config)
    assert "s3cret" not in shown and "desk:***@db" in shown and COOKIE not in shown and LIVE_KEY not in shown


def test_forwarded_addresses_are_believed_only_from_trusted_proxies() -> None:
    config = load_config({**PRODUCTION, "BILLING_DESK_TRUSTED_PROXIES": "10.0.0.5, 10.1.0.0/16"}, {})
    assert config.client_address("10.0.0.5", "203.0.113.9, 10.1.2.3") == "203.0.113.9"
    assert config.client_address("198.51.100.7", "203.0.113.9") == "198.51.100.7"  # not a proxy: ignored
    assert config.client_address("10.0.0.5", None) == "10.0.0.5"
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        load_config({**PRODUCTION, "BILLING_DESK_TRUSTED_PROXIES": "not-an-address"}, {})


def test_api_from_environment_or_secrets(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    env = {**PRODUCTION, "PAYMENTS_API_URL": "https://api.example.com/api/v1/", "BILLING_DESK_USERS": str(users)}
    config = load_config(env, {})
    assert config.api_url == "https://api.example.com/api/v1" and config.environment == "live"
    assert LIVE_KEY not in repr(config) and COOKIE not in repr(config)
    secrets = {"payments": {"api_url": "https://api.example.com/api/v1", "api_key": "bsk_test_" + "0" * 32},
               "sign_in": {"cookie_key": COOKIE, "users_file": str(users), "public_url": "https://desk.example.com"},
               "audit": {"key": COOKIE}}
    assert load_config({}, secrets).environment == "test"


@pytest.mark.parametrize(("env", "message"), [
    ({"PAYMENTS_API_URL": "https://api.example.com/api/v1"}, "both"),
    ({"PAYMENTS_API_URL": "http://api.example.com/api/v1", "PAYMENTS_API_KEY": LIVE_KEY}, "https"),
    ({"PAYMENTS_API_URL": "https://api.example.com", "PAYMENTS_API_KEY": "sk_live_x"}, "bsk_live_"),
    ({**PRODUCTION, "BILLING_DESK_COOKIE_KEY": "short"}, "cookie key"),
    ({**PRODUCTION, "BILLING_DESK_COOKIE_KEY": "a" * 32}, "different ones"),
    ({**PRODUCTION, "BILLING_DESK_COOKIE_KEY": "abab" * 10}, "different ones"),
    ({**PRODUCTION, "BILLING_DESK_USERS": ""}, "users file"),
    ({**PRODUCTION, "BILLING_DESK_PUBLIC_URL": ""}, "needs https"),
    ({**PRODUCTION, "BILLING_DESK_PUBLIC_URL": "http://desk.example.com"}, "needs https"),
])
def test_production_refuses_unsafe_configuration(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(env, {})


def test_api_timeout_is_configurable_and_checked() -> None:
    assert load_config(SANDBOX, {}).api_timeout_seconds == 10.0
    assert load_config({**SANDBOX, "PAYMENTS_API_TIMEOUT": "2.5"}, {}).api_timeout_seconds == 2.5
    assert load_config(SANDBOX, {"payments": {"timeout_seconds": 30}}).api_timeout_seconds == 30.0
    for bad in ("0", "-1", "soon", "nan", "1e9"):
        with pytest.raises(ConfigError, match="PAYMENTS_API_TIMEOUT must be a number from 0.5 to 120"):
            load_config({**SANDBOX, "PAYMENTS_API_TIMEOUT": bad}, {})


def test_loopback_may_use_http(tmp_path: Path) -> None:
    env = {**PRODUCTION, "PAYMENTS_API_URL": "http://127.0.0.1:8790/api/v1",
           "BILLING_DESK_PUBLIC_URL": "http://127.0.0.1:8501"}
    config = load_config(env, {})
    assert config.api_url == "http://127.0.0.1:8790/api/v1" and not config.cookie_secure
    assert load_config(PRODUCTION, {}).cookie_secure


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


def test_entities_are_escaped_so_markdown_never_decodes_them_into_an_address() -> None:
    escaped = escape_markdown("https&colon;//evil.example www&period;evil&period;example")
    assert "&colon;" not in escaped.replace("\\&", "") and "\\&colon;" in escaped and "\\&period;" in escaped
