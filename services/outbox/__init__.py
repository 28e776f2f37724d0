"""E-mail the console sends (portal links to customers, and later notifications), through a durable outbox.

A message is a row in the store (`outbox_messages`) before anything is sent, so it survives a restart and is
seen by every replica; the delivery workers (`OutboxWorker`, a thread in each console process) each claim one
message at a time with a guarded update and a lease, send it over SMTP, and mark it sent, so each message goes
out once across replicas (a worker that dies mid-send leaves its claim to expire; the message is then sent again,
the one case of a duplicate). A sent message's body is emptied: a portal link is a bearer capability and is kept
no longer than it takes to deliver it. Failed sends are retried with back-off, then marked failed with the reason.

Small face: `Outbox` (the store), `SmtpSettings` and `send_message` (the wire), `OutboxWorker` (the loop).
"""

from .smtp import SmtpError, SmtpSettings, send_message
from .store import FAILED, QUEUED, SENT, Message, Outbox, outbox_messages
from .worker import OutboxWorker

__all__ = ["FAILED", "QUEUED", "SENT", "Message", "Outbox", "OutboxWorker", "SmtpError", "SmtpSettings",
           "outbox_messages", "send_message"]
