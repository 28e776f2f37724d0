"""The sandbox's mailbox: a real SMTP server on loopback (aiosmtpd) that keeps every message it is handed, and a
hosted page listing them (`/sandbox/mailbox`), so in test mode the e-mails the console sends customers (portal
links) can be read as a customer would, without any mail leaving the machine."""

from __future__ import annotations

import html
import sqlite3
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from .store import Store, iso


class _Keep:
    """aiosmtpd's handler: every message delivered is a row of the sandbox's store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        assert isinstance(message, EmailMessage)
        part = message.get_body(preferencelist=("plain",))
        body = part.get_content() if part is not None else ""
        with self.store.transaction() as conn:
            conn.execute("INSERT INTO mailbox (received_at, mail_from, rcpt_to, subject, body) VALUES (?, ?, ?, ?, ?)",
                         (iso(self.store.now()), envelope.mail_from or "", ", ".join(envelope.rcpt_tos),
                          str(message.get("Subject", "")), body))
        return "250 Message accepted for delivery"


class Mailbox:
    """The SMTP server, started on a free loopback port beside the sandbox's HTTP server."""

    def __init__(self, store: Store, host: str = "127.0.0.1", port: int = 0) -> None:
        self.store = store  # its `mailbox` table is in sandbox/store.py's schema
        self._controller = Controller(_Keep(store), hostname=host, port=port or _free_port(host))

    def start(self) -> Mailbox:
        self._controller.start()
        return self

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def stop(self) -> None:
        self._controller.stop()

    def messages(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self.store.all("SELECT * FROM mailbox ORDER BY id DESC")]


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def page_body(messages: list[sqlite3.Row] | list[dict[str, Any]]) -> str:
    """The mailbox page's main part: newest first, each message as the customer would read it."""
    if not messages:
        return ("<main class='mailbox'><h1>Mailbox</h1><p class='muted'>No e-mail has been sent from the console yet. "
                "Portal links sent to customers arrive here.</p></main>")
    items = "".join(
        f"<section><p class='muted'>{html.escape(row['received_at'][:19].replace('T', ' '))} UTC · "
        f"to <strong>{html.escape(row['rcpt_to'])}</strong> · from {html.escape(row['mail_from'])}</p>"
        f"<h2>{html.escape(row['subject'])}</h2><pre>{_linked(row['body'])}</pre></section>"
        for row in messages)
    return (f"<main class='mailbox'><h1>Mailbox</h1><p class='muted'>What the console e-mailed customers, newest "
            f"first. Test mode: nothing leaves this machine.</p>{items}</main>")


def _linked(text: str) -> str:
    """The body escaped, with the sandbox's own portal links clickable (as a mail client would show them)."""
    import re

    escaped = html.escape(text)
    return re.sub(r"(https?://127\.0\.0\.1:\d+/sandbox/portal/[\w-]+)", r"<a href='\1'>\1</a>", escaped)
