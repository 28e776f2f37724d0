"""Everything the console needs, assembled once per server process from its configuration."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from .audit import AuditLog
from .config import ConsoleConfig
from .desk import BillingDesk
from .auth.throttle import LoginThrottle
from .payments.client import PaymentsClient
from .auth.users import User, demo_users, read_users, refuse_demo_credentials


@dataclass
class ConsoleRuntime:
    config: ConsoleConfig
    client: PaymentsClient
    audit: AuditLog
    desk: BillingDesk
    throttle: LoginThrottle
    users: dict[str, User]
    cookie_key: str = field(repr=False)
    success_url: str | None
    cancel_url: str | None
    sandbox: object | None = None  # the RunningSandbox in sandbox mode
    interrupted_writes: int = 0

    @property
    def environment(self) -> str:
        return self.config.environment


def build_runtime(config: ConsoleConfig) -> ConsoleRuntime:
    sandbox = None
    timeout = (3.05, config.api_timeout_seconds)  # (connect, read)
    success_url, cancel_url = config.checkout_success_url, config.checkout_cancel_url
    if config.sandbox:
        from sandbox import SandboxSettings, new_test_key, start_sandbox  # only the test mode needs the twin

        settings = SandboxSettings(api_key=config.sandbox_api_key or new_test_key(),
                                   db_path=config.data_dir / "sandbox.sqlite3")
        sandbox = start_sandbox(settings, port=config.sandbox_port)
        client = PaymentsClient(sandbox.base_url, sandbox.api_key, timeout=timeout)
        success_url = success_url or f"{sandbox.root_url}/sandbox/checkout/{{CHECKOUT_SESSION_ID}}/success"
        cancel_url = cancel_url or f"{sandbox.root_url}/sandbox/checkout/cancelled"
        users = {**demo_users(), **(read_users(config.users_file) if config.users_file else {})}
    else:
        client = PaymentsClient(config.api_url or "", config.api_key or "", timeout=timeout)
        users = read_users(config.users_file) if config.users_file else {}
        refuse_demo_credentials(users)
    audit = AuditLog(config.audit_database_url)
    interrupted = audit.mark_interrupted()
    return ConsoleRuntime(config=config, client=client, audit=audit, desk=BillingDesk(client, audit),
                          throttle=LoginThrottle(audit), users=users,
                          cookie_key=config.cookie_key or secrets.token_urlsafe(48),
                          success_url=success_url, cancel_url=cancel_url, sandbox=sandbox,
                          interrupted_writes=interrupted)
