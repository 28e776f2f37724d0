"""A customer as the API describes it: billing details, card, subscription, a scheduled change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .reading import Billed, LIVE_STATUSES, Reader, priced_refs, unwrap


@dataclass(frozen=True)
class Address:
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None

    def one_line(self) -> str:
        locality = " ".join(part for part in (self.city, self.state, self.postal_code) if part)
        return ", ".join(part for part in (self.line1, self.line2, locality, self.country) if part)


@dataclass(frozen=True)
class ScheduledChange:
    product_id: str
    price_id: str | None
    plan_name: str | None
    interval: str | None
    unit_amount: int | None
    effective_at: datetime | None
    interval_count: int = 1


@dataclass(frozen=True)
class Subscription(Billed):
    id: str | None
    status: str
    product_id: str | None
    price_id: str | None
    plan_name: str | None = None
    interval: str | None = None
    unit_amount: int | None = None
    currency: str = "usd"
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    canceled_at: datetime | None = None
    trial_end: datetime | None = None
    scheduled_change: ScheduledChange | None = None
    interval_count: int = 1

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES


@dataclass(frozen=True)
class CustomerInfo:
    organization_id: str
    customer_id: str | None
    email: str | None = None
    name: str | None = None
    organization_name: str | None = None
    address: Address | None = None
    card_brand: str | None = None
    card_last4: str | None = None
    active_product_id: str | None = None  # the live subscription's product
    status: str = "none"
    subscription: Subscription | None = None

    @property
    def display_name(self) -> str:
        return self.organization_name or self.name or self.organization_id


def parse_subscription(reader: Reader, fallback_status: str | None) -> Subscription:
    items = reader.readers("items")
    item = items[0] if items else None  # Stripe: the subscription's price is on its (first) item
    priced = priced_refs(reader, item)
    scheduled = None
    scheduled_reader = reader.child("scheduledChange", "pendingUpdate")
    if scheduled_reader is not None:
        next_price = priced_refs(scheduled_reader)
        if next_price.product_id is None:
            raise scheduled_reader.fail(("productId",), "is missing")
        scheduled = ScheduledChange(product_id=next_price.product_id, price_id=next_price.price_id,
                                    plan_name=next_price.plan_name or scheduled_reader.text("name"),
                                    interval=next_price.terms.interval, unit_amount=next_price.terms.unit_amount,
                                    interval_count=next_price.terms.interval_count or 1,
                                    effective_at=scheduled_reader.moment("effectiveAt"))
    # Stripe's newer API versions keep the current period on the item rather than the subscription.
    period = reader.falling_back_to(item)
    return Subscription(
        id=reader.text("id", "subscriptionId"),
        status=(reader.text("status") or fallback_status or "unknown").lower(),
        product_id=priced.product_id, price_id=priced.price_id, plan_name=priced.plan_name,
        interval=priced.terms.interval, interval_count=priced.terms.interval_count or 1,
        unit_amount=priced.terms.unit_amount, currency=priced.terms.currency or "usd",
        current_period_start=period.moment("currentPeriodStart"),
        current_period_end=period.moment("currentPeriodEnd"),
        cancel_at_period_end=reader.boolean("cancelAtPeriodEnd"),
        canceled_at=reader.moment("canceledAt"), trial_end=reader.moment("trialEnd"),
        scheduled_change=scheduled)


def _subscription_reader(reader: Reader) -> Reader | None:
    """The customer's subscription: `subscription`, or from a list of them (`subscriptions: {data: [...]}`)
    the first live one, else the first (Stripe lists the newest first)."""
    single = reader.expanded("subscription")
    if single is not None:
        return single
    listed = reader.readers("subscriptions")
    live = (candidate for candidate in listed if (candidate.text("status") or "").lower() in LIVE_STATUSES)
    return next(live, listed[0] if listed else None)


def parse_customer(data: Any, organization_id: str, operation: str = "look up customer") -> CustomerInfo:
    data = unwrap(data, "customer-info response", operation, one=True)
    reader = Reader(data, "customer-info response", operation)
    reader = reader.falling_back_to(reader.expanded("metadata"))  # Stripe: the organization, in metadata
    status = reader.text("subscriptionStatus", "status")
    subscription_reader = _subscription_reader(reader)
    subscription = parse_subscription(subscription_reader, status) if subscription_reader else None
    active_product_id = reader.text("activeProductId") or (
        subscription.product_id if subscription and subscription.is_live else None)
    if subscription is None and status and status.lower() not in ("none", ""):
        # Only a status came back: keep what is known so the page can still say it.
        subscription = Subscription(id=None, status=status.lower(), product_id=active_product_id, price_id=None)
    address_reader = reader.child("address")
    address = None
    if address_reader is not None:
        address = Address(address_reader.text("line1"), address_reader.text("line2"), address_reader.text("city"),
                          address_reader.text("state"), address_reader.text("postalCode"),
                          address_reader.text("country"))
    resolved_status = (status or (subscription.status if subscription else "none")).lower()
    # Stripe: the card is the default payment method's, under invoice_settings (or on the customer).
    card = (reader.path("invoiceSettings", "defaultPaymentMethod", "card")
            or reader.path("defaultPaymentMethod", "card"))
    brand = reader.text("defaultCardBrand", "cardBrand") or (card.text("brand") if card else None)
    last4 = reader.text("defaultCardLast4", "cardLast4") or (card.text("last4") if card else None)
    customer_id = reader.text("customerId") or reader.reference("customer") or (
        reader.text("id") if reader.data.get("object") == "customer" else None)
    return CustomerInfo(
        organization_id=reader.text("organizationId") or organization_id,
        customer_id=customer_id, email=reader.text("email"), name=reader.text("name"),
        organization_name=reader.text("organizationName"), address=address,
        card_brand=brand, card_last4=last4[-4:] if last4 else None,
        active_product_id=active_product_id, status=resolved_status, subscription=subscription)
