"""The composition root: everything the console needs, assembled once per server process from its
configuration. The only module that imports the sandbox (in test mode the console starts its own)."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.engine import Engine

from .audit import AuditLog
from .audit.keys import AuditKeys
from .audit.watch import VerificationSchedule, Witness
from .auth.directory import UsersDirectory
from .auth.password import PasswordSignIn
from .auth.sessions import SignInSessions
from .auth.throttle import LoginThrottle
from .auth.users import User, demo_users
from .config import ConsoleConfig, shared_store
from .desk import BillingDesk
from .directory import SANDBOX_SEED, Directory, RefreshSchedule
from .jobs import claim_timing, job_store
from .jobs.store import JobStore
from .jobs.worker import JobWorker, start_workers
from .store.leases import ConsoleLease
from .outbox import Outbox, OutboxWorker, SmtpSettings
from .payments.client import PaymentsClient
from .payments.rate_pacer import RatePacer
from .revenue import SnapshotSchedule
from .store.rate_budget import SharedRateBudget
from .store import open_store

CONNECT_TIMEOUT_SECONDS = 3.05  # just over a TCP retransmission window, as requests' docs advise
log = logging.getLogger("billing_desk.console")


@dataclass
class Console:
    config: ConsoleConfig
    client: PaymentsClient
    store: Engine = field(repr=False)
    audit: AuditLog
    desk: BillingDesk
    directory: UsersDirectory
    sessions: SignInSessions
    password_sign_in: PasswordSignIn
    success_url: str | None
    cancel_url: str | None
    sandbox: object | None = None  # the RunningSandbox in sandbox mode
    lease: ConsoleLease | None = field(default=None, repr=False)  # this process's heartbeat in the store
    jobs: JobStore | None = field(default=None, repr=False)  # bulk lookups kept in the store
    workers: list[JobWorker] = field(default_factory=list, repr=False)  # this process's bulk-job workers
    verification: VerificationSchedule | None = field(default=None, repr=False)  # the chain's scheduled re-hash
    customers: Directory | None = field(default=None, repr=False)  # the customer directory
    refreshes: RefreshSchedule | None = field(default=None, repr=False)  # its daily refresh, queued by one process
    snapshots: SnapshotSchedule | None = field(default=None, repr=False)  # the daily revenue snapshot

    @property
    def environment(self) -> str:
        return self.config.environment

    @property
    def users(self) -> dict[str, User]:
        """The users right now (the users file is re-read when it changes)."""
        return self.directory.current()


def audit_keys(config: ConsoleConfig) -> AuditKeys:
    """The configured audit key (production and shared stores require one); in sandbox mode on its own SQLite
    store, one kept beside that store (made on first start, readable by this user only)."""
    if config.audit_keys is not None:
        return config.audit_keys
    path = config.data_dir / "audit.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return AuditKeys.of(path.read_text().strip())


def smtp_settings(config: ConsoleConfig, sandbox: object | None) -> SmtpSettings | None:
    """The configured mail server; in sandbox mode, the sandbox's own mailbox (its page shows what was sent)."""
    if config.smtp_host:
        return SmtpSettings(config.smtp_host, config.smtp_port, config.smtp_sender or "", config.smtp_username,
                            config.smtp_password, config.smtp_tls)
    smtp_port = getattr(sandbox, "smtp_port", None)
    if smtp_port:
        return SmtpSettings("127.0.0.1", smtp_port, "billing@sandbox.invalid", tls="none")
    return None


def build_console(config: ConsoleConfig) -> Console:
    sandbox = None
    timeout = (CONNECT_TIMEOUT_SECONDS, config.api_timeout_seconds)
    success_url, cancel_url = config.checkout_success_url, config.checkout_cancel_url
    store = open_store(config.audit_database_url)  # first: the client's pacer shares the key's rate through it

    def pacer(api_key: str) -> RatePacer:  # every replica using the key books its requests in one budget
        return RatePacer(shared=SharedRateBudget(store, api_key))

    if config.sandbox:
        from sandbox import SandboxSettings, new_test_key, start_sandbox  # only the test mode needs the twin

        settings = SandboxSettings(api_key=config.sandbox_api_key or new_test_key(),
                                   db_path=config.data_dir / "sandbox.sqlite3",
                                   **({"dialect": config.sandbox_dialect} if config.sandbox_dialect else {}))
        sandbox = start_sandbox(settings, port=config.sandbox_port)
        client = PaymentsClient(sandbox.base_url, sandbox.api_key, timeout=timeout,
                                pacer=pacer(sandbox.api_key))
        success_url = success_url or f"{sandbox.root_url}/sandbox/checkout/{{CHECKOUT_SESSION_ID}}/success"
        cancel_url = cancel_url or f"{sandbox.root_url}/sandbox/checkout/cancelled"
    else:
        client = PaymentsClient(config.api_url or "", config.api_key or "", timeout=timeout,
                                pacer=pacer(config.api_key or ""))
    audit = AuditLog(store, environment=config.environment, keys=audit_keys(config))
    if config.sandbox and not shared_store(config):  # a test store of one's own: sealed at start (production: by hand)
        audit.cut_over()
    # The whole chain re-hashed on a schedule, by one process among all replicas and workers per slot.
    witness = Witness(config.audit_witness) if config.audit_witness else None
    verification = VerificationSchedule(store, audit.keys, config.audit_verify_every, witness,
                                        by=f"console {audit.boot_id[:8]}").start()
    # Pending rows of console processes whose lease has expired become unknown, now and on every heartbeat.
    lease = ConsoleLease(store, audit.boot_id, on_beat=audit.mark_interrupted).start()
    sessions = SignInSessions(store, config.cookie_key or secrets.token_urlsafe(48), config.idle_timeout,
                              config.session_lifetime)
    if config.sandbox:
        directory = UsersDirectory(fixed=demo_users())
    else:  # a user removed or changed in the file is signed out everywhere at once
        directory = UsersDirectory(config.users_file, on_change=sessions.invalidate_all)
    throttle = LoginThrottle(store, audit)
    jobs = job_store(store, config)
    # Every customer read, wherever it happens, is noted in it; the words of new names after the read, in a thread.
    customers = Directory(store, words_in_background=True)
    customers.keep_purging(timedelta(days=config.directory_keep_days))  # personal data: kept while it is read
    # Bulk jobs run in this process's worker threads (and in any separate `python -m services.jobs worker`).
    workers = start_workers(config.job_workers, jobs, client, lease_id=lease.lease_id, on_read=customers.note_job_read,
                            **claim_timing(config))
    mail = smtp_settings(config, sandbox)
    outbox = Outbox(store, audit.keys) if mail is not None else None  # bodies sealed under the audit key
    # E-mail (portal links to customers) is delivered by a thread in each console process, once per message.
    mailer = OutboxWorker(outbox, mail).start() if outbox is not None and mail is not None else None
    desk = BillingDesk(client, audit, redirect_hosts=config.checkout_allowed_hosts, loopback_redirects=config.sandbox,
                       jobs=jobs, on_job_started=lambda: [worker.wake() for worker in workers],
                       policy=config.approvals, outbox=outbox, on_mail_queued=mailer.wake if mailer else lambda: None,
                       directory=customers)
    refreshes = RefreshSchedule(store, customers, jobs, audit, hour=config.refresh_hour or 0,
                                by=f"console {audit.boot_id[:8]}",
                                on_queued=lambda: [worker.wake() for worker in workers])
    if sandbox is not None and customers.size(max_age=0) == 0:  # `make run` shows a full directory at once
        if fill_from_sandbox(sandbox, client, customers):
            refreshes.claim_today("sandbox fill")  # just read, every one: today's refresh is done
    if config.refresh_hour is not None:  # the directory's daily refresh, queued by one process among all
        refreshes.start()
    # The day's revenue snapshot of the directory, once its refresh has finished (one process among all takes it).
    snapshots = SnapshotSchedule(store, jobs, refresh_on=config.refresh_hour is not None,
                                 by=f"console {audit.boot_id[:8]}").start()
    return Console(config=config, client=client, store=store, audit=audit, desk=desk, directory=directory,
                   sessions=sessions, password_sign_in=PasswordSignIn(directory, throttle, sessions),
                   success_url=success_url, cancel_url=cancel_url, sandbox=sandbox, lease=lease, jobs=jobs,
                   workers=workers, verification=verification, customers=customers, refreshes=refreshes,
                   snapshots=snapshots)


def fill_from_sandbox(sandbox: object, client: PaymentsClient, customers: Directory) -> int:
    """On a sandbox console's first start, its directory is filled from the sandbox's own organizations, each read
    through the API as any read is; returns how many. Before the console answers (about 80 local reads, a few
    tenths of a second), so the first search finds them all and no read runs behind a person's back."""
    from sandbox.control_client import SandboxControl  # only the test mode has one

    filled = 0
    try:
        control = SandboxControl(getattr(sandbox, "root_url"), getattr(sandbox, "api_key"))
        for organization in control.organizations():
            customers.note(client.get_customer(organization["id"]), SANDBOX_SEED)
            filled += 1
    except Exception:  # a half-filled directory fills up as people look customers up
        log.warning("The sandbox's organizations could not all be read into the directory.", exc_info=True)
    return filled
