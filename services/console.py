"""The composition root: everything the console needs, assembled once per server process from its
configuration. The only module that imports the sandbox (in test mode the console starts its own)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from .audit import AuditLog
from .auth.sign_ins import SignInRecords
from .auth.throttle import LoginThrottle
from .auth.users import User, demo_users, read_users, refuse_demo_credentials
from .config import ConsoleConfig
from .desk import BillingDesk
from .payments.client import PaymentsClient
from .store import open_store

CONNECT_TIMEOUT_SECONDS = 3.05  # just over a TCP retransmission window, as requests' docs advise


@dataclass
class Console:
    config: ConsoleConfig
    client: PaymentsClient
    store: Engine = field(repr=False)
    audit: AuditLog
    sign_ins: SignInRecords
    desk: BillingDesk
    throttle: LoginThrottle
    users: dict[str, User]
    cookie_key: str = field(repr=False)
    success_url: str | None
    cancel_url: str | None
    sandbox: object | None = None  # the RunningSandbox in sandbox mode

    @property
    def environment(self) -> str:
        return self.config.environment


def build_console(config: ConsoleConfig) -> Console:
    sandbox = None
    timeout = (CONNECT_TIMEOUT_SECONDS, config.api_timeout_seconds)
    success_url, cancel_url = config.checkout_success_url, config.checkout_cancel_url
    if config.sandbox:
        from sandbox import SandboxSettings, new_test_key, start_sandbox  # only the test mode needs the twin

        settings = SandboxSettings(api_key=config.sandbox_api_key or new_test_key(),
                                   db_path=config.data_dir / "sandbox.sqlite3",
                                   **({"dialect": config.sandbox_dialect} if config.sandbox_dialect else {}))
        sandbox = start_sandbox(settings, port=config.sandbox_port)
        client = PaymentsClient(sandbox.base_url, sandbox.api_key, timeout=timeout)
        success_url = success_url or f"{sandbox.root_url}/sandbox/checkout/{{CHECKOUT_SESSION_ID}}/success"
        cancel_url = cancel_url or f"{sandbox.root_url}/sandbox/checkout/cancelled"
        users = {**demo_users(), **(read_users(config.users_file) if config.users_file else {})}
    else:
        client = PaymentsClient(config.api_url or "", config.api_key or "", timeout=timeout)
        users = read_users(config.users_file) if config.users_file else {}
        refuse_demo_credentials(users)
    store = open_store(config.audit_database_url)
    audit = AuditLog(store)
    audit.mark_interrupted()
    sign_ins = SignInRecords(store)
    return Console(config=config, client=client, store=store, audit=audit, sign_ins=sign_ins,
                   desk=BillingDesk(client, audit), throttle=LoginThrottle(sign_ins, audit), users=users,
                   cookie_key=config.cookie_key or secrets.token_urlsafe(48), success_url=success_url,
                   cancel_url=cancel_url, sandbox=sandbox)
