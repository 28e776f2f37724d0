"""The outbox's table and the guarded updates that hand each message to one worker at a time.

A message's body is stored encrypted (Fernet, under a key derived from the console's audit key, which the database
never holds): a portal link in it is a bearer capability, so someone who reads the database or a backup while a
message waits for the mail server gets nothing usable.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Column, DateTime, Integer, String, Table, Text, or_, select, update
from sqlalchemy.engine import Engine
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.exc import IntegrityError

from ..audit.keys import AuditKeys

from ..store import metadata, now, utc

QUEUED, SENDING, SENT, FAILED = "queued", "sending", "sent", "failed"
MAX_ATTEMPTS = 5
RETRY_AFTER = (timedelta(seconds=10), timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15))

outbox_messages = Table(
    "outbox_messages", metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("kind", String(40), nullable=False),  # e.g. "portal link"
    Column("organization_id", String(120), index=True),
    Column("requested_by", String(100), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("body", Text, nullable=False),  # emptied once sent or given up: a link in it is a capability
    Column("status", String(10), nullable=False, index=True),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("claimed_by", String(120)),
    Column("claimed_until", DateTime(timezone=True)),
    Column("sent_at", DateTime(timezone=True)),
    Column("last_error", Text),
)


@dataclass(frozen=True)
class Message:
    id: str
    kind: str
    organization_id: str | None
    recipient: str
    subject: str
    body: str = ""
    status: str = QUEUED
    attempts: int = 0
    created_at: datetime | None = None
    sent_at: datetime | None = None
    last_error: str | None = None
    readable: bool = True  # False: its body was sealed under a key the console no longer holds

    def __repr__(self) -> str:  # never the body
        return f"Message(id={self.id!r}, kind={self.kind!r}, recipient={self.recipient!r}, status={self.status!r})"


class Outbox:
    def __init__(self, engine: Engine, keys: AuditKeys | None = None) -> None:
        """`keys`: the console's audit keys, which bodies are encrypted under (None only in tests and scripts,
        whose bodies are then stored as written)."""
        self.engine, self.keys = engine, keys

    def _fernet(self, identifier: str) -> Fernet:
        assert self.keys is not None
        return Fernet(base64.urlsafe_b64encode(bytes.fromhex(self.keys.mac(identifier, b"billing-desk outbox"))))

    def _seal(self, body: str) -> str:
        if self.keys is None:
            return body
        identifier = self.keys.current_id
        return f"{identifier}:{self._fernet(identifier).encrypt(body.encode()).decode()}"

    def _open(self, stored: str) -> str | None:
        """The body as written; None when it can't be read (its key is no longer held)."""
        if self.keys is None or not stored:
            return stored
        identifier, _, token = stored.partition(":")
        try:
            return self._fernet(identifier).decrypt(token.encode()).decode() if self.keys.knows(identifier) else None
        except InvalidToken:
            return None

    def enqueue(self, *, kind: str, organization_id: str | None, requested_by: str, recipient: str, subject: str,
                body: str, message_id: str | None = None) -> str:
        """Queues a message; with `message_id` (derived from the write's idempotency key), a second call for the
        same intent queues nothing more."""
        message_id = message_id or uuid.uuid4().hex
        moment = now()
        try:
            with self.engine.begin() as conn:
                conn.execute(outbox_messages.insert().values(
                    id=message_id, created_at=moment, kind=kind, organization_id=organization_id,
                    requested_by=requested_by, recipient=recipient, subject=subject, body=self._seal(body), status=QUEUED,
                    attempts=0, next_attempt_at=moment))
        except IntegrityError:
            pass  # queued already by the same intent
        return message_id

    def claim(self, worker_id: str, lease: timedelta) -> Message | None:
        """The oldest message due (queued, or claimed by a worker whose lease ran out), now this worker's."""
        moment = now()
        due = or_((outbox_messages.c.status == QUEUED) & (outbox_messages.c.next_attempt_at <= moment),
                  (outbox_messages.c.status == SENDING) & (outbox_messages.c.claimed_until < moment))
        with self.engine.begin() as conn:
            candidates = conn.execute(select(outbox_messages.c.id).where(due).order_by(
                outbox_messages.c.created_at).limit(5)).scalars().all()
            for candidate in candidates:  # a guarded update: of two workers, one gets it
                taken = conn.execute(update(outbox_messages).where((outbox_messages.c.id == candidate) & due).values(
                    status=SENDING, claimed_by=worker_id, claimed_until=moment + lease,
                    attempts=outbox_messages.c.attempts + 1)).rowcount
                if taken:
                    row = conn.execute(select(outbox_messages).where(outbox_messages.c.id == candidate)).one()
                    message = _message(row)
                    body = self._open(message.body)
                    return replace(message, body=body if body is not None else "", readable=body is not None)
        return None

    def sent(self, message_id: str, worker_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(outbox_messages).where((outbox_messages.c.id == message_id)
                                                       & (outbox_messages.c.claimed_by == worker_id)).values(
                status=SENT, sent_at=now(), body="", claimed_until=None, last_error=None))

    def failed(self, message_id: str, worker_id: str, error: str, attempts: int) -> None:
        """Back in the queue after a pause, or given up after MAX_ATTEMPTS (the body emptied)."""
        final = attempts >= MAX_ATTEMPTS
        values = {"status": FAILED, "body": ""} if final else {
            "status": QUEUED, "next_attempt_at": now() + RETRY_AFTER[min(attempts, len(RETRY_AFTER)) - 1]}
        with self.engine.begin() as conn:
            conn.execute(update(outbox_messages).where((outbox_messages.c.id == message_id)
                                                       & (outbox_messages.c.claimed_by == worker_id)).values(
                claimed_until=None, last_error=error[:500], **values))

    def get(self, message_id: str) -> Message | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(outbox_messages).where(outbox_messages.c.id == message_id)).first()
        return _message(row) if row is not None else None

    def recent(self, organization_id: str, kind: str | None = None, limit: int = 5) -> list[Message]:
        """This organization's newest messages, without their bodies."""
        columns = [column for column in outbox_messages.columns if column.name != "body"]
        query = select(*columns).where(outbox_messages.c.organization_id == organization_id)
        if kind is not None:
            query = query.where(outbox_messages.c.kind == kind)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(outbox_messages.c.created_at.desc()).limit(limit)).all()
        return [_message(row, with_body=False) for row in rows]


def _message(row: object, with_body: bool = True) -> Message:
    return Message(row.id, row.kind, row.organization_id, row.recipient, row.subject,  # type: ignore
                   row.body if with_body else "",  # type: ignore
                   row.status, row.attempts, utc(row.created_at), utc(row.sent_at), row.last_error)  # type: ignore
