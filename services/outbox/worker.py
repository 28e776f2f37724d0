"""The delivery loop: a thread that claims one due message at a time, sends it, and marks how it went."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from .smtp import SmtpError, SmtpSettings, send_message
from .store import MAX_ATTEMPTS, Outbox

log = logging.getLogger("billing_desk.outbox")

LEASE = timedelta(seconds=60)  # longer than an SMTP exchange's timeouts
POLL_SECONDS = 1.0


class OutboxWorker:
    def __init__(self, outbox: Outbox, smtp: SmtpSettings, poll_seconds: float = POLL_SECONDS,
                 lease: timedelta = LEASE) -> None:
        self.outbox, self.smtp, self.poll_seconds, self.lease = outbox, smtp, poll_seconds, lease
        self.worker_id = f"{socket.gethostname()[:40]}:{os.getpid()}:outbox:{uuid.uuid4().hex[:8]}"
        self._stop, self._wake = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> OutboxWorker:
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        """A message was just queued by this process: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def deliver_once(self) -> bool:
        """Sends one due message, if any; True if one was handled."""
        message = self.outbox.claim(self.worker_id, self.lease)
        if message is None:
            return False
        if not message.readable:  # sealed under an audit key taken out of service since: it can never be sent
            self.outbox.failed(message.id, self.worker_id, "Its content was sealed under an audit key the console no "
                               "longer holds; send the link again.", MAX_ATTEMPTS)
            return True
        try:
            send_message(self.smtp, message.recipient, message.subject, message.body)
        except Exception as problem:  # SmtpError, or anything unforeseen: named, retried, never silent
            said = (str(problem) if isinstance(problem, SmtpError)
                    else f"Billing Desk failed sending it ({type(problem).__name__}).")
            log.warning("Outbox message %s (%s) not delivered, attempt %d: %s", message.id, message.kind,
                        message.attempts, said)
            self.outbox.failed(message.id, self.worker_id, said, message.attempts)
            return True
        self.outbox.sent(message.id, self.worker_id)
        log.info("Outbox message %s (%s) delivered", message.id, message.kind)  # never the recipient's link
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                while self.deliver_once() and not self._stop.is_set():
                    pass
            except SQLAlchemyError:
                log.warning("The outbox can't reach the store; delivery resumes when it answers.")
            except Exception:  # the loop must outlive any one message's failure
                log.exception("The outbox delivery loop hit an unexpected error; it goes on.")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
