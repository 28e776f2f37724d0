"""The e-mail that takes a billing-portal link to the customer, and the outcome the console shows for it.

A portal link is a bearer capability: whoever holds it can change the card and cancel the subscription. So by
default the console hands it to the customer's billing address, never to the staff member who asked for it
(services/desk/ `send_portal_link`); showing it on screen is for the roles that may cancel without a second
person under the approval policy (`show_portal_link`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from .inputs import InputRefused
from .payments.models import CustomerInfo, SessionLink

SUBJECT = "Your billing portal link"
# A billing address the console will send to: one address, no display name or header tricks.
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


@dataclass(frozen=True)
class PortalLinkSent:
    recipient: str
    message_id: str
    expires_at: datetime | None


def recipient_of(customer: CustomerInfo) -> str:
    """The customer's billing e-mail address, or one sentence saying why there is none to send to."""
    email = (customer.email or "").strip()
    if not email:
        raise InputRefused("portal", "This customer has no billing e-mail address, so the portal link can't be sent: "
                                     "ask them to add one, or ask someone who may cancel to open the portal.")
    if len(email) > 254 or not _ADDRESS.match(email):
        raise InputRefused("portal", "This customer's billing e-mail address isn't one the console can send to; "
                                     "correct it with the customer first.")
    return email


def message_id_for(idempotency_key: str) -> str:
    """The same intent (a double click, a retry) queues the same message once."""
    return hashlib.sha256(f"portal link\0{idempotency_key}".encode()).hexdigest()[:32]


def body(customer: CustomerInfo, link: SessionLink) -> str:
    name = customer.display_name or "there"
    expires = f" It works until {link.expires_at:%d %b %Y, %H:%M} UTC." if link.expires_at else ""
    return (f"Hello {name},\n\n"
            "Here is the link to your billing portal, where you can update your card, see your invoices or change "
            f"your subscription:\n\n{link.url}\n\n"
            f"Anyone with this link can manage your subscription, so don't forward it.{expires} If you didn't ask "
            "for it, you can ignore this e-mail.\n\nThe billing team\n")
