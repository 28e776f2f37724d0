"""The console's configuration, from environment variables and `.streamlit/secrets.toml`.

With no API configured the console runs on the embedded sandbox (test mode). With an API URL and key it
drives that API, and production rules apply: a real cookie key, https (loopback excepted), no demo users.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Mapping, Union
from urllib.parse import urlsplit

from .approvals.policy import ApprovalPolicy, PolicyError
from .audit.keys import AuditKeyError, AuditKeys, check_secret
from .auth.roles import Role
from .auth.sso import SsoSettings
from .errors import ConfigError
from .payments import validation
from .payments.errors import InvalidInputError

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

MIN_COOKIE_KEY_LENGTH = 32
MIN_COOKIE_KEY_VARIETY = 16  # distinct characters: "a" * 32 is long but guessable
SANDBOX_FLAG = "BILLING_DESK_SANDBOX"
# Every environment variable the configuration reads (ui/console.py builds one console per distinct set).
ENVIRONMENT_VARIABLES = ("PAYMENTS_API_URL", "PAYMENTS_API_KEY", "PAYMENTS_API_TIMEOUT", SANDBOX_FLAG,
                         "BILLING_DESK_DATA_DIR", "BILLING_DESK_USERS", "BILLING_DESK_COOKIE_KEY",
                         "BILLING_DESK_PUBLIC_URL", "BILLING_DESK_TRUSTED_PROXIES", "BILLING_DESK_IDLE_MINUTES",
                         "BILLING_DESK_SESSION_HOURS", "AUDIT_DATABASE_URL", "CHECKOUT_SUCCESS_URL",
                         "CHECKOUT_CANCEL_URL", "CHECKOUT_ALLOWED_HOSTS", "SANDBOX_PORT", "SANDBOX_API_KEY",
                         "SANDBOX_DIALECT", "BILLING_DESK_JOB_WORKERS", "BILLING_DESK_JOB_LIMIT",
                         "BILLING_DESK_JOB_KEEP_DAYS", "BILLING_DESK_DIRECTORY_KEEP_DAYS",
                         "BILLING_DESK_REFRESH", "BILLING_DESK_REFRESH_HOUR", "BILLING_DESK_JOB_LEASE_SECONDS",
                         "BILLING_DESK_APPROVAL_ACTIONS",
                         "BILLING_DESK_APPROVAL_THRESHOLD", "BILLING_DESK_APPROVERS", "BILLING_DESK_APPROVAL_HOURS",
                         "BILLING_DESK_AUDIT_KEY", "BILLING_DESK_AUDIT_OLD_KEYS", "BILLING_DESK_AUDIT_VERIFY_MINUTES",
                         "BILLING_DESK_AUDIT_WITNESS", "BILLING_DESK_SMTP_HOST", "BILLING_DESK_SMTP_PORT",
                         "BILLING_DESK_SMTP_SENDER", "BILLING_DESK_SMTP_USERNAME", "BILLING_DESK_SMTP_PASSWORD",
                         "BILLING_DESK_SMTP_TLS")


def hide_password(url: str) -> str:
    """A database URL fit for logs and reprs: any password replaced."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


@dataclass(frozen=True)
class ConsoleConfig:
    api_url: str | None
    api_key: str | None = field(repr=False)
    sandbox: bool = False  # the embedded sandbox, asked for with BILLING_DESK_SANDBOX=1
    data_dir: Path = Path(".data")
    users_file: Path | None = None
    cookie_key: str | None = field(default=None, repr=False)
    audit_database_url: str = field(default="", repr=False)
    public_url: str | None = None  # the address people open; https makes the sign-in cookie Secure
    trusted_proxies: tuple[IPNetwork, ...] = ()
    idle_timeout: timedelta = timedelta(minutes=30)
    session_lifetime: timedelta = timedelta(hours=12)
    checkout_success_url: str | None = None
    checkout_cancel_url: str | None = None
    checkout_allowed_hosts: tuple[str, ...] = ()
    api_timeout_seconds: float = 10.0  # how long to wait for each answer of the API (reads are retried once)
    sandbox_port: int = 0  # 0: any free port; tests pin it to reach the sandbox's controls
    sandbox_api_key: str | None = field(default=None, repr=False)
    sandbox_dialect: str | None = None  # the sandbox's answer shapes (sandbox/ --dialect); tests try others
    sso: SsoSettings | None = None  # single sign-on through st.login, when secrets have an [auth] section
    directory_keep_days: float = 400  # an organization not read for this long leaves the customer directory
    refresh_hour: int | None = 3  # the UTC hour the directory's daily refresh is queued from; None: no refresh
    job_workers: int = 2  # bulk-job workers inside the console (each runs one job); 0: worker processes only
    job_limit: int = 3  # queued or running bulk jobs per person
    job_keep_days: float = 30  # a finished bulk job's results are purged after this
    job_lease_seconds: float = 30  # a worker's claim on a job lasts this without a heartbeat
    approvals: ApprovalPolicy = field(default_factory=ApprovalPolicy)  # which writes wait for a second person
    audit_keys: AuditKeys | None = field(default=None, repr=False)  # the audit chain's HMAC key (audit/keys.py)
    audit_verify_every: timedelta = timedelta(minutes=15)  # the whole chain re-hashed this often
    audit_witness: str | None = None  # a file or http(s) URL the chain's head is written to at each re-hash
    # E-mail to customers (portal links), through the outbox (services/outbox/); no host: nothing is e-mailed
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_sender: str | None = None
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_tls: str = "starttls"  # starttls, tls, or none (loopback only)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in ("api_url", "sandbox", "data_dir",
                                                                          "users_file", "public_url", "sso"))
        return f"ConsoleConfig({shown}, store={hide_password(self.audit_database_url)!r})"

    @property
    def environment(self) -> str:
        """"sandbox", "test" or "live": what the badge says and every audit row records."""
        if self.sandbox:
            return "sandbox"
        return validation.key_environment(self.api_key or "")

    @property
    def cookie_secure(self) -> bool:
        return (self.public_url or "").startswith("https://")

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The person's address: the peer's, unless the peer is a trusted proxy, in which case the nearest
        address in X-Forwarded-For that is not itself a trusted proxy."""
        if not peer or not forwarded_for or not _in(peer, self.trusted_proxies):
            return peer
        for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
            if not _in(hop, self.trusted_proxies):
                return hop
        return peer


def _in(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)


def _section(secrets: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = secrets.get(name) if secrets else None
    return value if isinstance(value, Mapping) else {}


def _refresh_hour(environ: Mapping[str, str]) -> int | None:
    """The directory's daily refresh: BILLING_DESK_REFRESH=off turns it off; BILLING_DESK_REFRESH_HOUR (UTC)."""
    switch = (environ.get("BILLING_DESK_REFRESH") or "on").strip().lower()
    if switch not in ("on", "off"):
        raise ConfigError("BILLING_DESK_REFRESH must be on or off.")
    hour = int(_number(environ.get("BILLING_DESK_REFRESH_HOUR"), "BILLING_DESK_REFRESH_HOUR", 3, 0, 23))
    return None if switch == "off" else hour


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


def _networks(raw: object) -> tuple[IPNetwork, ...]:
    items = raw if isinstance(raw, (list, tuple)) else str(raw or "").replace(",", " ").split()
    try:
        return tuple(ipaddress.ip_network(str(item).strip(), strict=False) for item in items if str(item).strip())
    except ValueError:
        raise ConfigError("BILLING_DESK_TRUSTED_PROXIES must list IP addresses or networks (e.g. 10.0.0.5, "
                          "10.1.0.0/16).") from None


def _hosts(raw: object, *urls: str | None) -> tuple[str, ...]:
    items = raw if isinstance(raw, (list, tuple)) else str(raw or "").replace(",", " ").split()
    hosts = [str(item).strip().lower() for item in items if str(item).strip()]
    hosts += [host for url in urls if url and (host := (urlsplit(url).hostname or "").lower())]
    return tuple(dict.fromkeys(hosts))


def _sso(secrets: Mapping[str, Any], sign_in: Mapping[str, Any]) -> SsoSettings | None:
    """Single sign-on is on when the secrets hold Streamlit's [auth] section (st.login reads it itself)."""
    auth = _section(secrets, "auth")
    if not auth:
        return None
    for name in ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url"):
        if not auth.get(name):
            raise ConfigError(f"Single sign-on needs [auth] {name} in secrets (see docs/security.md).")
    redirect = urlsplit(str(auth["redirect_uri"]))
    if redirect.scheme != "https" and not _is_loopback(redirect.hostname):
        raise ConfigError("[auth] redirect_uri must use https (only a loopback address may use http).")
    secret = str(auth["cookie_secret"])
    if len(secret) < MIN_COOKIE_KEY_LENGTH or len(set(secret)) < MIN_COOKIE_KEY_VARIETY:
        raise ConfigError(f"[auth] cookie_secret must be at least {MIN_COOKIE_KEY_LENGTH} random characters with "
                          f"at least {MIN_COOKIE_KEY_VARIETY} different ones.")
    sso = _section(sign_in, "sso")
    roles = _section(sso, "roles")
    groups = {role: tuple(str(group) for group in (roles.get(role.value) or ())) for role in Role}
    if not any(groups.values()):
        raise ConfigError("Map the identity provider's groups to roles: [sign_in.sso.roles] support = [...], "
                          "finance = [...], admin = [...] (see docs/security.md).")
    max_age = _number(sso.get("max_age_minutes"), "[sign_in.sso] max_age_minutes", 60, 1, 1440)
    return SsoSettings(roles_claim=str(sso.get("roles_claim") or "groups"), groups_for_role=groups,
                       provider_name=str(sso.get("provider_name") or "your company account"),
                       max_age=timedelta(minutes=max_age))


def _approvals(environ: Mapping[str, str], secrets: Mapping[str, Any]) -> ApprovalPolicy:
    try:
        return ApprovalPolicy.from_settings(environ, _section(secrets, "approvals"))
    except PolicyError as problem:
        raise ConfigError(str(problem)) from None


def load_config(environ: Mapping[str, str] | None = None, secrets: Mapping[str, Any] | None = None) -> ConsoleConfig:
    environ = os.environ if environ is None else environ
    secrets = secrets or {}
    payments, sign_in = _section(secrets, "payments"), _section(secrets, "sign_in")
    checkout, audit = _section(secrets, "checkout"), _section(secrets, "audit")
    api_url = environ.get("PAYMENTS_API_URL") or payments.get("api_url")
    api_key = environ.get("PAYMENTS_API_KEY") or payments.get("api_key")
    sandbox = environ.get(SANDBOX_FLAG, "").strip().lower() in ("1", "true", "yes")
    if bool(api_url) != bool(api_key):
        raise ConfigError("Set both the Payments API URL and key (PAYMENTS_API_URL and PAYMENTS_API_KEY, or "
                          "[payments] api_url and api_key in secrets).")
    if not api_url and not sandbox:
        raise ConfigError(f"No Payments API is configured. Set PAYMENTS_API_URL and PAYMENTS_API_KEY, or "
                          f"{SANDBOX_FLAG}=1 to run on the built-in test sandbox (make run does).")
    if api_url and sandbox:
        raise ConfigError(f"{SANDBOX_FLAG}=1 and a Payments API are both set; choose one.")
    data_dir = Path(environ.get("BILLING_DESK_DATA_DIR") or ".data")
    users_file = environ.get("BILLING_DESK_USERS") or sign_in.get("users_file")
    audit_url = (environ.get("AUDIT_DATABASE_URL") or secrets.get("audit_database_url")
                 or f"sqlite:///{(data_dir / 'audit.sqlite3').as_posix()}")
    success_url = environ.get("CHECKOUT_SUCCESS_URL") or checkout.get("success_url")
    cancel_url = environ.get("CHECKOUT_CANCEL_URL") or checkout.get("cancel_url")
    config = ConsoleConfig(
        api_url=None, api_key=None, sandbox=sandbox, data_dir=data_dir,
        users_file=Path(users_file) if users_file else None,
        cookie_key=environ.get("BILLING_DESK_COOKIE_KEY") or sign_in.get("cookie_key"),
        audit_database_url=str(audit_url),
        public_url=(environ.get("BILLING_DESK_PUBLIC_URL") or sign_in.get("public_url") or "").rstrip("/") or None,
        trusted_proxies=_networks(environ.get("BILLING_DESK_TRUSTED_PROXIES") or sign_in.get("trusted_proxies")),
        idle_timeout=timedelta(minutes=_number(environ.get("BILLING_DESK_IDLE_MINUTES") or
                                               sign_in.get("idle_minutes"), "BILLING_DESK_IDLE_MINUTES", 30, 0.1, 1440)),
        session_lifetime=timedelta(hours=_number(environ.get("BILLING_DESK_SESSION_HOURS") or
                                                 sign_in.get("session_hours"), "BILLING_DESK_SESSION_HOURS", 12, 1, 168)),
        checkout_success_url=success_url, checkout_cancel_url=cancel_url,
        checkout_allowed_hosts=_hosts(environ.get("CHECKOUT_ALLOWED_HOSTS") or checkout.get("allowed_hosts"),
                                      success_url, cancel_url),
        api_timeout_seconds=_number(environ.get("PAYMENTS_API_TIMEOUT") or payments.get("timeout_seconds"),
                                    "PAYMENTS_API_TIMEOUT", 10.0, 0.5, 120),
        sandbox_port=int(environ.get("SANDBOX_PORT") or 0), sandbox_api_key=environ.get("SANDBOX_API_KEY"),
        sandbox_dialect=environ.get("SANDBOX_DIALECT") or None, sso=_sso(secrets, sign_in),
        job_workers=int(_number(environ.get("BILLING_DESK_JOB_WORKERS"), "BILLING_DESK_JOB_WORKERS", 2, 0, 16)),
        job_limit=int(_number(environ.get("BILLING_DESK_JOB_LIMIT"), "BILLING_DESK_JOB_LIMIT", 3, 1, 100)),
        job_keep_days=_number(environ.get("BILLING_DESK_JOB_KEEP_DAYS"), "BILLING_DESK_JOB_KEEP_DAYS", 30, 1, 3650),
        directory_keep_days=_number(environ.get("BILLING_DESK_DIRECTORY_KEEP_DAYS"),
                                    "BILLING_DESK_DIRECTORY_KEEP_DAYS", 400, 1, 3650),
        refresh_hour=_refresh_hour(environ),
        job_lease_seconds=_number(environ.get("BILLING_DESK_JOB_LEASE_SECONDS"), "BILLING_DESK_JOB_LEASE_SECONDS",
                                  30, 2, 600),
        approvals=_approvals(environ, secrets), audit_keys=_audit_keys(environ, audit),
        audit_verify_every=timedelta(minutes=_number(environ.get("BILLING_DESK_AUDIT_VERIFY_MINUTES") or
                                                     audit.get("verify_minutes"), "BILLING_DESK_AUDIT_VERIFY_MINUTES",
                                                     15, 1, 1440)),
        audit_witness=str(environ.get("BILLING_DESK_AUDIT_WITNESS") or audit.get("witness") or "") or None,
        **_smtp(environ, _section(secrets, "smtp")))
    if sandbox:
        if config.users_file is not None or config.sso is not None:
            raise ConfigError("The sandbox's demo users never sit beside real ones: unset the users file "
                              f"(BILLING_DESK_USERS) and single sign-on ([auth]), or {SANDBOX_FLAG}.")
        if shared_store(config):  # a random key per process would sign people out on every other replica
            _require_cookie_key(config, "Replicas on a shared store must all sign sign-in cookies with one key. ")
            _require_audit_key(config)
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


def shared_store(config: ConsoleConfig) -> bool:
    """A store other processes may use too (PostgreSQL): then this is one replica of several."""
    return not config.audit_database_url.startswith("sqlite")


def _require_cookie_key(config: ConsoleConfig, why: str = "") -> None:
    key = config.cookie_key or ""
    if len(key) < MIN_COOKIE_KEY_LENGTH or len(set(key)) < MIN_COOKIE_KEY_VARIETY:
        raise ConfigError(f"{why}Set a random cookie key of at least {MIN_COOKIE_KEY_LENGTH} characters with at "
                          f"least {MIN_COOKIE_KEY_VARIETY} different ones (BILLING_DESK_COOKIE_KEY or [sign_in] "
                          "cookie_key in secrets), e.g. from: python -c 'import secrets; print(secrets.token_urlsafe(48))'")


def _smtp(environ: Mapping[str, str], smtp: Mapping[str, Any]) -> dict[str, Any]:
    """BILLING_DESK_SMTP_* or [smtp]: the mail server portal links go to customers through."""
    def get(name: str) -> str | None:
        value = environ.get(f"BILLING_DESK_SMTP_{name.upper()}") or smtp.get(name)
        return str(value).strip() if value not in (None, "") else None

    host = get("host")
    if host is None:
        return {}
    tls = (get("tls") or "starttls").lower()
    if tls not in ("starttls", "tls", "none"):
        raise ConfigError("BILLING_DESK_SMTP_TLS must be starttls, tls or none.")
    if tls == "none" and not _is_loopback(host) and host != "localhost":
        raise ConfigError("E-mail to customers carries portal links: BILLING_DESK_SMTP_TLS may be none only for a "
                          "mail server on this machine (loopback).")
    sender = get("sender")
    if not sender or "@" not in sender:
        raise ConfigError("Set the address portal links are e-mailed from (BILLING_DESK_SMTP_SENDER or [smtp] sender).")
    return {"smtp_host": host, "smtp_port": int(_number(get("port"), "BILLING_DESK_SMTP_PORT", 587, 1, 65535)),
            "smtp_sender": sender, "smtp_username": get("username"), "smtp_password": get("password"),
            "smtp_tls": tls}


def _audit_keys(environ: Mapping[str, str], audit: Mapping[str, Any]) -> AuditKeys | None:
    current = environ.get("BILLING_DESK_AUDIT_KEY") or audit.get("key")
    if not current:
        return None
    older = environ.get("BILLING_DESK_AUDIT_OLD_KEYS") or audit.get("old_keys") or ""
    older_list = older.split(",") if isinstance(older, str) else [str(item) for item in older]
    try:
        return AuditKeys.of(check_secret(str(current), "BILLING_DESK_AUDIT_KEY"),
                            [check_secret(item, "BILLING_DESK_AUDIT_OLD_KEYS") for item in older_list if item.strip()])
    except AuditKeyError as problem:
        raise ConfigError(str(problem)) from None


def _require_audit_key(config: ConsoleConfig) -> None:
    if config.audit_keys is None:
        raise ConfigError("Set the audit key (BILLING_DESK_AUDIT_KEY, or [audit] key in secrets): at least 32 random "
                          "characters, the same on every replica and worker, kept out of the database, e.g. from: "
                          "python -c 'import secrets; print(secrets.token_urlsafe(48))' (docs/security.md).")


def check_production(config: ConsoleConfig) -> None:
    """Rules for driving a real API: refuse to start rather than run unsafely."""
    parts = urlsplit(config.api_url or "")
    if parts.scheme != "https" and not _is_loopback(parts.hostname):
        raise ConfigError("The Payments API URL must use https (only a loopback address may use http).")
    _require_audit_key(config)
    if config.sso is not None:
        return  # [auth] was checked in _sso; password sign-in is off
    _require_cookie_key(config)
    if config.users_file is None:
        raise ConfigError("Set the users file (BILLING_DESK_USERS or [sign_in] users_file in secrets); "
                          "add users with: python -m services.auth add NAME --role ROLE")
    public = urlsplit(config.public_url or "")
    if public.scheme != "https" and not _is_loopback(public.hostname):
        raise ConfigError("Password sign-in needs https: set BILLING_DESK_PUBLIC_URL to the https address people "
                          "open (served by the console or by a proxy in front of it); only a loopback address "
                          "may use http.")
