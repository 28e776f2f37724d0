"""Checks on what a person types that is the console's own, not the API's (the API's ids and URLs are checked
in services/payments/validation.py). A refusal names its field and says what to do, in one sentence."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .payments import validation
from .payments.errors import InvalidInputError

MAX_REASON_LENGTH = 500


class InputRefused(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message

    @property
    def user_message(self) -> str:
        return self.message


def reason_text(raw: object) -> str:
    """The reason recorded with a write: one line, printable, at most MAX_REASON_LENGTH characters."""
    if not isinstance(raw, str) or not raw.strip():
        raise InputRefused("reason", "Give a reason: it goes in the audit log with your name.")
    text = " ".join(raw.split())
    if len(text) > MAX_REASON_LENGTH:
        raise InputRefused("reason", f"Keep the reason under {MAX_REASON_LENGTH} characters.")
    if any(not ch.isprintable() for ch in text):
        raise InputRefused("reason", "The reason contains control characters.")
    return text


MAX_NOTE_LENGTH = 2000


def note_text(raw: object) -> str:
    """An internal note on a customer: printable text (line breaks kept), at most MAX_NOTE_LENGTH characters."""
    if not isinstance(raw, str) or not raw.strip():
        raise InputRefused("note", "Write the note first: it is kept with your name and can't be edited.")
    text = "\n".join(" ".join(line.split()) for line in raw.strip().splitlines())
    if len(text) > MAX_NOTE_LENGTH:
        raise InputRefused("note", f"Keep a note under {MAX_NOTE_LENGTH:,} characters; add a second one for more.")
    if any(not ch.isprintable() and ch != "\n" for ch in text):
        raise InputRefused("note", "The note contains control characters.")
    return text


def typed_confirmation(typed: object, organization_id: str) -> None:
    """A destructive write asks the person to type the organization id they mean."""
    if not isinstance(typed, str) or typed.strip() != organization_id:
        raise InputRefused("confirmation", f"Type the organization id ({organization_id}) exactly to confirm.")


def checkout_redirect(raw: str, field: str, allowed_hosts: tuple[str, ...], allow_loopback: bool) -> str:
    """Where a checkout sends the customer afterwards: https, on a host the company allows (the hosts of the
    configured success and cancel URLs, plus CHECKOUT_ALLOWED_HOSTS), so nobody can mint a genuine checkout
    link that lands a paying customer on a stranger's site. The sandbox may also use http on loopback."""
    try:
        url = validation.redirect_url(raw, field)
    except InvalidInputError as problem:
        raise InputRefused(field, problem.message) from None
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if allow_loopback and _is_loopback(host):
        return url
    if parts.scheme.lower() != "https":
        raise InputRefused(field, f"The {field} must start with https://.")
    if host not in allowed_hosts:
        allowed = ", ".join(allowed_hosts) or "none configured"
        raise InputRefused(field, f"The {field} must be on one of the company's sites ({allowed}).")
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
