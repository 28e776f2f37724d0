"""What the writes answer: a checkout or portal link, a processed checkout, a plan change."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..errors import UnexpectedResponseError

from .customer import Subscription, parse_subscription
from .reading import Reader, cents_to_dollars, unwrap


@dataclass(frozen=True)
class SessionLink:
    """A hosted checkout or portal page. The URL is a bearer secret: it is never in repr, logs or audit rows."""

    url: str = field(repr=False)
    expires_at: datetime | None = None

    @property
    def checkout_session_id(self) -> str | None:
        """Stripe-style checkout URLs carry the session id (cs_…) as their last path segment."""
        last = self.url.split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        return last if last.startswith("cs_") else None


def parse_session_link(data: Any, operation: str) -> SessionLink:
    reader = Reader(unwrap(data, f"{operation} response", operation), f"{operation} response", operation)
    url = reader.required_text("url")
    if not url.startswith(("https://", "http://")):
        raise UnexpectedResponseError(f"{operation} response: field 'url' is not a web address",
                                      code="unexpected_shape", operation=operation)
    return SessionLink(url=url, expires_at=reader.moment("expiresAt"))


@dataclass(frozen=True)
class ProcessResult:
    organization_id: str | None
    subscription_id: str | None
    status: str | None
    already_processed: bool
    subscription: Subscription | None


def parse_process(data: Any, operation: str = "process checkout") -> ProcessResult:
    reader = Reader(unwrap(data, f"{operation} response", operation), f"{operation} response", operation)
    subscription_reader = reader.expanded("subscription")
    subscription = parse_subscription(subscription_reader, reader.text("status")) if subscription_reader else None
    return ProcessResult(reader.text("organizationId"), reader.text("subscriptionId") or reader.reference(
        "subscription") or (subscription.id if subscription else None), reader.text("status") or (
        subscription.status if subscription else None), reader.boolean("alreadyProcessed"), subscription)


@dataclass(frozen=True)
class PlanChangeResult:
    organization_id: str | None
    change: str | None  # "upgrade" or "downgrade"
    effective: str | None  # "immediately" or "period_end"
    effective_at: datetime | None
    proration_amount: int | None  # cents charged now
    currency: str
    subscription: Subscription | None

    @property
    def proration(self) -> Decimal | None:
        return cents_to_dollars(self.proration_amount)


def parse_plan_change(data: Any, operation: str = "change plan") -> PlanChangeResult:
    reader = Reader(unwrap(data, f"{operation} response", operation), f"{operation} response", operation)
    subscription_reader = reader.expanded("subscription")
    return PlanChangeResult(
        organization_id=reader.text("organizationId"), change=reader.text("change"),
        effective=reader.text("effective"), effective_at=reader.moment("effectiveAt"),
        proration_amount=reader.integer("prorationAmount", "amountDue"),
        currency=(reader.text("currency") or "usd").lower(),
        subscription=parse_subscription(subscription_reader, None) if subscription_reader else None)
