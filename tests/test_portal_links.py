"""Portal links go to the customer, not the staff member: e-mailed through the outbox to the customer's billing
address (a real SMTP server: the sandbox's aiosmtpd mailbox), each message once across workers; shown on screen
only to whoever may cancel the customer without a second person, and audited as "portal link shown". Both stores.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from sandbox.control_client import SandboxControl
from sandbox.server import RunningSandbox
from services.approvals.policy import ApprovalPolicy
from services.approvals.store import ApprovalBook
from services.audit import AuditLog
from services.audit.keys import AuditKeys
from services.auth.roles import Actor, PermissionDenied, Role
from services.desk import BillingDesk
from services.inputs import InputRefused
from services.outbox import FAILED, QUEUED, SENT, Outbox, OutboxWorker, SmtpSettings
from services.payments.client import PaymentsClient

SUPPORT, FINANCE = Actor("sam", Role.SUPPORT), Actor("fay", Role.FINANCE)
KEYS = AuditKeys.of(secrets.token_urlsafe(48))  # the console's audit key: the outbox seals bodies under it
ORG = "org_abc123"


@pytest.fixture
def audit(store_url: str) -> Iterator[AuditLog]:
    log = AuditLog(store_url)
    yield log
    log.engine.dispose()


@pytest.fixture
def mail(sandbox: RunningSandbox) -> SmtpSettings:
    return SmtpSettings("127.0.0.1", sandbox.smtp_port or 0, "billing@desk.example", tls="none", timeout=5)


def _desk(client: PaymentsClient, audit: AuditLog, policy: ApprovalPolicy | None = None) -> BillingDesk:
    return BillingDesk(client, audit, policy=policy, approvals=ApprovalBook(audit.engine), outbox=Outbox(audit.engine, KEYS))


def _stored(audit: AuditLog) -> str:
    with audit.engine.connect() as conn:
        return "\n".join(str(tuple(row)) for row in conn.execute(text("SELECT * FROM audit_rows")))


def test_support_e_mails_the_link_to_the_customer_who_alone_receives_it(
        client: PaymentsClient, audit: AuditLog, control: SandboxControl, mail: SmtpSettings) -> None:
    desk = _desk(client, audit, ApprovalPolicy())
    customer = client.get_customer(ORG)
    sent = desk.send_portal_link(SUPPORT, ORG, "mail-1")
    assert sent.recipient == customer.email
    assert desk.send_portal_link(SUPPORT, ORG, "mail-1").message_id == sent.message_id  # a double click: once
    with audit.engine.connect() as conn:  # waiting for the mail server, the link is sealed: the database can't use it
        stored = conn.execute(text("SELECT body FROM outbox_messages")).scalars().all()
    assert len(stored) == 1 and "/sandbox/portal/" not in stored[0] and stored[0].startswith(KEYS.current_id + ":")
    assert OutboxWorker(Outbox(audit.engine, KEYS), mail).deliver_once()
    assert not OutboxWorker(Outbox(audit.engine, KEYS), mail).deliver_once()  # nothing more to send

    received = control.mailbox()
    assert len(received) == 1 and received[0]["rcpt_to"] == customer.email
    assert "/sandbox/portal/bps_" in received[0]["body"] and received[0]["subject"] == "Your billing portal link"
    line = audit.events().iloc[0]
    assert line.action == "portal link e-mailed" and line.outcome == "succeeded" and customer.email in line.parameters
    assert "/sandbox/portal/" not in _stored(audit)  # the link is in no audit row …
    message = Outbox(audit.engine, KEYS).get(sent.message_id)
    assert message is not None and message.status == SENT and message.body == ""  # … and no longer in the outbox
    assert [m.status for m in desk.portal_links_sent(SUPPORT, ORG)] == [SENT]


def test_two_workers_deliver_a_message_once(client: PaymentsClient, audit: AuditLog, control: SandboxControl,
                                            mail: SmtpSettings) -> None:
    desk = _desk(client, audit)
    for number in range(3):
        desk.send_portal_link(SUPPORT, ORG, f"mail-{number}")
    workers = [OutboxWorker(Outbox(audit.engine, KEYS), mail) for _ in range(4)]
    threads = [threading.Thread(target=lambda worker=worker: [worker.deliver_once() for _ in range(3)])
               for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(control.mailbox()) == 3  # three messages, each once, whichever worker took it


def test_a_mail_server_that_is_down_is_retried_and_named_without_the_link(
        client: PaymentsClient, audit: AuditLog, mail: SmtpSettings) -> None:
    desk = _desk(client, audit)
    sent = desk.send_portal_link(SUPPORT, ORG, "mail-down")
    down = SmtpSettings("127.0.0.1", 9, "billing@desk.example", tls="none", timeout=2)  # nothing listens on 9
    assert OutboxWorker(Outbox(audit.engine, KEYS), down).deliver_once()
    message = Outbox(audit.engine, KEYS).get(sent.message_id)
    assert message is not None and message.status == QUEUED and message.attempts == 1
    assert "127.0.0.1:9" in (message.last_error or "") and "/sandbox/portal/" not in (message.last_error or "")
    with audit.engine.begin() as conn:  # the last of its tries, as if four had failed before
        conn.execute(text("UPDATE outbox_messages SET attempts = 4, next_attempt_at = created_at"))
    assert OutboxWorker(Outbox(audit.engine, KEYS), down).deliver_once()
    given_up = Outbox(audit.engine, KEYS).get(sent.message_id)
    assert given_up is not None and given_up.status == FAILED and given_up.body == ""


def test_a_customer_without_a_billing_address_gets_one_sentence_and_nothing_is_made(
        client: PaymentsClient, audit: AuditLog, control: SandboxControl) -> None:
    control.set_profile(ORG, email="")
    with pytest.raises(InputRefused) as refused:
        _desk(client, audit).send_portal_link(SUPPORT, ORG, "mail-none")
    assert "no billing e-mail address" in refused.value.message
    assert [m for m in control.mutations() if m["operation"] == "portal"] == []


def test_without_a_mail_server_nothing_is_made_and_the_admin_is_named(client: PaymentsClient, audit: AuditLog,
                                                                     control: SandboxControl) -> None:
    with pytest.raises(InputRefused, match="BILLING_DESK_SMTP_HOST"):
        BillingDesk(client, audit).send_portal_link(SUPPORT, ORG, "mail-nowhere")
    assert [m for m in control.mutations() if m["operation"] == "portal"] == []


def test_the_link_is_shown_only_to_whoever_may_cancel_without_a_second_person(
        client: PaymentsClient, audit: AuditLog, control: SandboxControl) -> None:
    with pytest.raises(PermissionDenied):
        _desk(client, audit).show_portal_link(SUPPORT, ORG, "show-support")  # support never cancels
    assert "second person's approval" in (_desk(client, audit, ApprovalPolicy()).portal_link_refusal(FINANCE, ORG) or "")
    held = _desk(client, audit, ApprovalPolicy(kinds=frozenset({"cancel"})))  # a cancel waits for a second person
    assert "cancelling this customer needs a second person's approval" in (held.portal_link_refusal(FINANCE, ORG) or "")
    with pytest.raises(InputRefused, match="second person"):
        held.show_portal_link(FINANCE, ORG, "show-held")
    assert [m for m in control.mutations() if m["operation"] == "portal"] == []  # nothing was made

    downgrades_held = _desk(client, audit, ApprovalPolicy(kinds=frozenset({"downgrade"})))  # the portal can downgrade
    assert "change the plan or cancel" in (downgrades_held.portal_link_refusal(FINANCE, ORG) or "")
    unheld = _desk(client, audit, ApprovalPolicy(kinds=frozenset()))  # nothing waits for a second person
    assert unheld.portal_link_refusal(FINANCE, ORG) is None
    link = unheld.show_portal_link(FINANCE, ORG, "show-ok")
    assert "/sandbox/portal/bps_" in link.url
    events = audit.events()
    assert list(events.action) == ["portal link shown", "portal link shown", "see a portal link"]  # the last: a role refusal
    assert list(events.outcome) == ["succeeded", "denied", "denied"]
    assert link.url not in _stored(audit)


def test_the_mail_server_setting_is_checked() -> None:
    from services.config import ConfigError, load_config

    sandbox = {"BILLING_DESK_SANDBOX": "1"}
    with pytest.raises(ConfigError, match="loopback"):  # portal links never cross a network in clear text
        load_config({**sandbox, "BILLING_DESK_SMTP_HOST": "mail.example.com", "BILLING_DESK_SMTP_TLS": "none",
                     "BILLING_DESK_SMTP_SENDER": "billing@example.com"})
    with pytest.raises(ConfigError, match="e-mailed from"):
        load_config({**sandbox, "BILLING_DESK_SMTP_HOST": "mail.example.com"})
    config = load_config({**sandbox, "BILLING_DESK_SMTP_HOST": "mail.example.com", "BILLING_DESK_SMTP_PASSWORD": "pw",
                          "BILLING_DESK_SMTP_SENDER": "billing@example.com", "BILLING_DESK_SMTP_USERNAME": "desk"})
    assert (config.smtp_host, config.smtp_port, config.smtp_tls) == ("mail.example.com", 587, "starttls")
    assert "pw" not in repr(config)


def test_a_message_sealed_under_a_key_no_longer_held_fails_with_a_sentence(
        client: PaymentsClient, audit: AuditLog, control: SandboxControl, mail: SmtpSettings) -> None:
    sent = _desk(client, audit).send_portal_link(SUPPORT, ORG, "mail-rotated")
    rotated = Outbox(audit.engine, AuditKeys.of(secrets.token_urlsafe(48)))  # the old key dropped too soon
    assert OutboxWorker(rotated, mail).deliver_once()
    message = rotated.get(sent.message_id)
    assert message is not None and message.status == FAILED and "no longer holds" in (message.last_error or "")
    assert control.mailbox() == []
