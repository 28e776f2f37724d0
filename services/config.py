"""The console's configuration, from environment variables and `.streamlit/secrets.toml`.

With no API configured the console runs on the embedded sandbox (test mode). With an API URL and key it
drives that API, and production rules apply: a real cookie key, https (loopback excepted), no demo users.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from .payments import validation
from .payments.errors import InvalidInputError

MIN_COOKIE_KEY_LENGTH = 32
# Every environment variable the configuration reads (ui/console.py builds one console per distinct set).
ENVIRONMENT_VARIABLES = ("PAYMENTS_API_URL", "PAYMENTS_API_KEY", "PAYMENTS_API_TIMEOUT", "BILLING_DESK_DATA_DIR",
                         "BILLING_DESK_USERS", "BILLING_DESK_COOKIE_KEY", "AUDIT_DATABASE_URL", "CHECKOUT_SUCCESS_URL",
                         "CHECKOUT_CANCEL_URL", "SANDBOX_PORT", "SANDBOX_API_KEY", "SANDBOX_DIALECT")


class ConfigError(Exception):
    """The console can't start with this configuration; the message says what to change."""


@dataclass(frozen=True)
class ConsoleConfig:
    api_url: str | None
    api_key: str | None = field(repr=False)
    data_dir: Path = Path(".data")
    users_file: Path | None = None
    cookie_key: str | None = field(default=None, repr=False)
    audit_database_url: str = ""
    checkout_success_url: str | None = None
    checkout_cancel_url: str | None = None
    api_timeout_seconds: float = 10.0  # how long to wait for each answer of the API (reads are retried once)
    sandbox_port: int = 0  # 0: any free port; tests pin it to reach the sandbox's controls
    sandbox_api_key: str | None = field(default=None, repr=False)
    sandbox_dialect: str | None = None  # the sandbox's answer shapes (sandbox/ --dialect); tests try others

    @property
    def sandbox(self) -> bool:
        return self.api_url is None

    @property
    def environment(self) -> str:
        """"sandbox", "test" or "live": what the badge says."""
        if self.sandbox:
            return "sandbox"
        return validation.key_environment(self.api_key or "")


def _section(secrets: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = secrets.get(name) if secrets else None
    return value if isinstance(value, Mapping) else {}


def _number(raw: object, name: str, default: float, low: float, high: float) -> float:
    if raw in (None, ""):
        return default
    try:
        value = float(str(raw))
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # also refuses nan
        raise ConfigError(f"{name} must be a number from {low:g} to {high:g}.")
    return value


def load_config(environ: Mapping[str, str] | None = None, secrets: Mapping[str, Any] | None = None) -> ConsoleConfig:
    environ = os.environ if environ is None else environ
    secrets = secrets or {}
    payments, auth, checkout = _section(secrets, "payments"), _section(secrets, "auth"), _section(secrets, "checkout")
    api_url = environ.get("PAYMENTS_API_URL") or payments.get("api_url")
    api_key = environ.get("PAYMENTS_API_KEY") or payments.get("api_key")
    if bool(api_url) != bool(api_key):
        raise ConfigError("Set both the Payments API URL and key (PAYMENTS_API_URL and PAYMENTS_API_KEY, or "
                          "[payments] api_url and api_key in secrets), or neither to use the sandbox.")
    data_dir = Path(environ.get("BILLING_DESK_DATA_DIR") or ".data")
    users_file = environ.get("BILLING_DESK_USERS") or auth.get("users_file")
    audit_url = (environ.get("AUDIT_DATABASE_URL") or secrets.get("audit_database_url")
                 or f"sqlite:///{(data_dir / 'audit.sqlite3').as_posix()}")
    config = ConsoleConfig(
        api_url=None, api_key=None, data_dir=data_dir, users_file=Path(users_file) if users_file else None,
        cookie_key=environ.get("BILLING_DESK_COOKIE_KEY") or auth.get("cookie_key"), audit_database_url=str(audit_url),
        checkout_success_url=environ.get("CHECKOUT_SUCCESS_URL") or checkout.get("success_url"),
        checkout_cancel_url=environ.get("CHECKOUT_CANCEL_URL") or checkout.get("cancel_url"),
        api_timeout_seconds=_number(environ.get("PAYMENTS_API_TIMEOUT") or payments.get("timeout_seconds"),
                                    "PAYMENTS_API_TIMEOUT", 10.0, 0.5, 120),
        sandbox_port=int(environ.get("SANDBOX_PORT") or 0), sandbox_api_key=environ.get("SANDBOX_API_KEY"),
        sandbox_dialect=environ.get("SANDBOX_DIALECT") or None)
    if not api_url:
        return config
    try:
        url, key = validation.api_base_url(api_url), validation.api_key(api_key)
    except InvalidInputError as problem:
        raise ConfigError(problem.message) from None
    config = ConsoleConfig(**{**config.__dict__, "api_url": url, "api_key": key})
    check_production(config)
    return config


def _is_loopback(host: str | None) -> bool:
    if host in ("localhost", None):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_production(config: ConsoleConfig) -> None:
    """Rules for driving a real API: refuse to start rather than run unsafely."""
    parts = urlsplit(config.api_url or "")
    if parts.scheme != "https" and not _is_loopback(parts.hostname):
        raise ConfigError("The Payments API URL must use https (only a loopback address may use http).")
    if not config.cookie_key or len(config.cookie_key) < MIN_COOKIE_KEY_LENGTH:
        raise ConfigError(f"Set a cookie key of at least {MIN_COOKIE_KEY_LENGTH} random characters "
                          "(BILLING_DESK_COOKIE_KEY or [auth] cookie_key in secrets).")
    if config.users_file is None:
        raise ConfigError("Set the users file (BILLING_DESK_USERS or [auth] users_file in secrets); "
                          "add users with: python -m services.auth add NAME --role ROLE")
