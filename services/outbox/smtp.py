"""Sending one message over SMTP (smtplib): STARTTLS by default, implicit TLS, or none on loopback only."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage

TLS_MODES = ("starttls", "tls", "none")


class SmtpError(Exception):
    """The mail server refused or couldn't be reached; the message is retried later."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    sender: str = "billing@example.com"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: str = "starttls"  # "none" only to a loopback server (the sandbox's mailbox)
    timeout: float = 15.0


def send_message(settings: SmtpSettings, recipient: str, subject: str, body: str) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings.sender, recipient, subject
    message.set_content(body)
    try:
        if settings.tls == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout,
                                                     context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with client:
            if settings.tls == "starttls":
                client.starttls(context=ssl.create_default_context())
            if settings.username:
                client.login(settings.username, settings.password or "")
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as problem:  # the text may name the server; never the body
        raise SmtpError(f"The mail server at {settings.host}:{settings.port} didn't take the message "
                        f"({type(problem).__name__}).") from None
