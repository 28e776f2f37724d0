"""Typed results of the Payments API, parsed tolerantly.

The API's exact shapes are not published, so parsing accepts extra fields, missing optional ones, and a few
spellings of the same field (camelCase first, snake_case as a fallback). A field the console cannot do
without raises `UnexpectedResponseError` naming it. docs/payments-api.md lists what is read, field by field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from .errors import UnexpectedResponseError

LIVE_STATUSES = frozenset({"active", "trialing", "past_due"})


class _Reader:
    """Reads fields of one JSON object, turning a missing or ill-typed required field into a clear error."""

    def __init__(self, data: Any, what: str, operation: str) -> None:
        if not isinstance(data, Mapping):
            raise UnexpectedResponseError(f"{what} is not a JSON object", operation=operation)
        self.data, self.what, self.operation = data, what, operation

    def _raw(self, names: tuple[str, ...]) -> Any:
        for name in names:
            if name in self.data and self.data[name] is not None:
                return self.data[name]
        return None

    def fail(self, names: tuple[str, ...], problem: str) -> UnexpectedResponseError:
        return UnexpectedResponseError(f"{self.what}: field '{names[0]}' {problem}", code="unexpected_shape",
                                       operation=self.operation)

    def text(self, *names: str, required: bool = False) -> str | None:
        value = self._raw(names)
        if value is None:
            if required:
                raise self.fail(names, "is missing")
            return None
        if isinstance(value, (dict, list)):
            raise self.fail(names, "should be text")
        return str(value)

    def required_text(self, *names: str) -> str:
        value = self.text(*names, required=True)
        assert value is not None
        return value

    def integer(self, *names: str) -> int | None:
        value = self._raw(names)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise self.fail(names, "should be a number")
        try:
            return int(Decimal(str(value)))
        except InvalidOperation:
            raise self.fail(names, "should be a number") from None

    def decimal(self, *names: str) -> Decimal | None:
        value = self._raw(names)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise self.fail(names, "should be a number")
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise self.fail(names, "should be a number") from None

    def boolean(self, *names: str, default: bool = False) -> bool:
        value = self._raw(names)
        if value is None:
            return default
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1", "yes")
        return bool(value)

    def moment(self, *names: str) -> datetime | None:
        value = self._raw(names)
        if value is None or value == "":
            return None
        try:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return datetime.fromtimestamp(value, tz=timezone.utc)  # Stripe's epoch seconds
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except (ValueError, OverflowError, OSError):
            raise self.fail(names, "should be an ISO 8601 time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)

    def objects(self, *names: str, required: bool = False) -> list[Any]:
        value = self._raw(names)
        if value is None:
            if required:
                raise self.fail(names, "is missing")
            return []
        if not isinstance(value, list):
            raise self.fail(names, "should be a list")
        return value

    def child(self, *names: str) -> "_Reader | None":
        value = self._raw(names)
        if value is None:
            return None
        return _Reader(value, f"{self.what}.{names[0]}", self.operation)


def cents_to_dollars(cents: int | None) -> Decimal | None:
    return None if cents is None else (Decimal(cents) / 100).quantize(Decimal("0.01"))


# --- plans -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Price:
    price_id: str
    product_id: str
    interval: str | None  # "month", "year", or None for a one-off/custom price
    unit_amount: int | None  # cents
    currency: str = "usd"

    @property
    def amount(self) -> Decimal | None:
        return cents_to_dollars(self.unit_amount)


@dataclass(frozen=True)
class Plan:
    product_id: str
    name: str
    description: str = ""
    features: tuple[str, ...] = ()
    credits: int | None = None
    overage_rate: Decimal | None = None
    seats: int | None = None
    trial_days: int = 0
    custom: bool = False
    tier: int | None = None
    prices: tuple[Price, ...] = ()

    def price_for(self, interval: str) -> Price | None:
        return next((price for price in self.prices if price.interval == interval), None)


@dataclass(frozen=True)
class PlanCatalog:
    organization_id: str
    active_product_id: str | None
    plans: tuple[Plan, ...]

    def plan(self, product_id: str | None) -> Plan | None:
        return next((plan for plan in self.plans if plan.product_id == product_id), None)

    def find_price(self, price_id: str | None) -> tuple[Plan, Price] | None:
        for plan in self.plans:
            for price in plan.prices:
                if price.price_id == price_id:
                    return plan, price
        return None

    def rank(self, plan: Plan) -> int:
        """Where a plan stands in the catalog: its tier when the API gives one, else its order."""
        return plan.tier if plan.tier is not None else self.plans.index(plan)


def parse_plans(data: Any, organization_id: str, operation: str = "list plans") -> PlanCatalog:
    if isinstance(data, list):  # a bare list of plans is accepted too
        data = {"plans": data}
    reader = _Reader(data, "plans response", operation)
    raw_plans = reader.objects("plans", "data", "products", required=True)
    plans = tuple(_parse_plan(_Reader(raw, f"plans[{index}]", operation))
                  for index, raw in enumerate(raw_plans))
    return PlanCatalog(reader.text("organizationId", "organization_id") or organization_id,
                       reader.text("activeProductId", "active_product_id", "currentProductId"), plans)


def _parse_plan(reader: _Reader) -> Plan:
    product_id = reader.required_text("productId", "product_id", "id")
    prices = tuple(_parse_price(_Reader(raw, f"{reader.what}.prices[{index}]", reader.operation), product_id)
                   for index, raw in enumerate(reader.objects("prices", "pricing")))
    return Plan(product_id=product_id, name=reader.text("name", "productName") or product_id,
                description=reader.text("description") or "",
                features=tuple(str(item) for item in reader.objects("features")),
                credits=reader.integer("credits", "monthlyCredits"), overage_rate=reader.decimal("overageRate"),
                seats=reader.integer("seats", "maxSeats"), trial_days=reader.integer("trialDays") or 0,
                custom=reader.boolean("custom", "isCustom", "contactSales"), tier=reader.integer("tier"),
                prices=prices)


def _parse_price(reader: _Reader, product_id: str) -> Price:
    return Price(price_id=reader.required_text("priceId", "price_id", "id"),
                 product_id=reader.text("productId", "product_id") or product_id,
                 interval=reader.text("interval", "recurringInterval"),
                 unit_amount=reader.integer("unitAmount", "unit_amount", "amount"),
                 currency=(reader.text("currency") or "usd").lower())


# --- customer ------------------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class Subscription:
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

    @property
    def amount(self) -> Decimal | None:
        return cents_to_dollars(self.unit_amount)

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
    active_product_id: str | None = None
    status: str = "none"
    subscription: Subscription | None = None

    @property
    def display_name(self) -> str:
        return self.organization_name or self.name or self.organization_id


def _parse_subscription(reader: _Reader, fallback_status: str | None) -> Subscription:
    scheduled_reader = reader.child("scheduledChange", "pendingUpdate", "scheduled_change")
    scheduled = None
    if scheduled_reader is not None:
        scheduled = ScheduledChange(product_id=scheduled_reader.required_text("productId", "product_id"),
                                    price_id=scheduled_reader.text("priceId", "price_id"),
                                    plan_name=scheduled_reader.text("planName", "name"),
                                    interval=scheduled_reader.text("interval"),
                                    unit_amount=scheduled_reader.integer("unitAmount", "amount"),
                                    effective_at=scheduled_reader.moment("effectiveAt", "effective_at"))
    return Subscription(
        id=reader.text("id", "subscriptionId"),
        status=(reader.text("status") or fallback_status or "unknown").lower(),
        product_id=reader.text("productId", "product_id"), price_id=reader.text("priceId", "price_id"),
        plan_name=reader.text("planName", "productName"), interval=reader.text("interval"),
        unit_amount=reader.integer("unitAmount", "unit_amount", "amount"),
        currency=(reader.text("currency") or "usd").lower(),
        current_period_start=reader.moment("currentPeriodStart", "current_period_start"),
        current_period_end=reader.moment("currentPeriodEnd", "current_period_end"),
        cancel_at_period_end=reader.boolean("cancelAtPeriodEnd", "cancel_at_period_end"),
        canceled_at=reader.moment("canceledAt", "canceled_at"), trial_end=reader.moment("trialEnd", "trial_end"),
        scheduled_change=scheduled)


def parse_customer(data: Any, organization_id: str, operation: str = "look up customer") -> CustomerInfo:
    reader = _Reader(data, "customer-info response", operation)
    status = reader.text("subscriptionStatus", "status", "subscription_status")
    subscription_reader = reader.child("subscription")
    subscription = _parse_subscription(subscription_reader, status) if subscription_reader else None
    if subscription is None and status and status.lower() not in ("none", ""):
        # Only a status came back: keep what is known so the page can still say it.
        subscription = Subscription(id=None, status=status.lower(),
                                    product_id=reader.text("activeProductId", "active_product_id"), price_id=None)
    address_reader = reader.child("address")
    address = None
    if address_reader is not None:
        address = Address(address_reader.text("line1"), address_reader.text("line2"), address_reader.text("city"),
                          address_reader.text("state"), address_reader.text("postalCode", "postal_code"),
                          address_reader.text("country"))
    resolved_status = (status or (subscription.status if subscription else "none")).lower()
    last4 = reader.text("defaultCardLast4", "default_card_last4", "cardLast4")
    return CustomerInfo(
        organization_id=reader.text("organizationId", "organization_id") or organization_id,
        customer_id=reader.text("customerId", "customer_id"), email=reader.text("email"), name=reader.text("name"),
        organization_name=reader.text("organizationName"), address=address,
        card_brand=reader.text("defaultCardBrand", "cardBrand"), card_last4=last4[-4:] if last4 else None,
        active_product_id=reader.text("activeProductId", "active_product_id"), status=resolved_status,
        subscription=subscription)


# --- writes -----------------------------------------------------------------------------------------------
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
    reader = _Reader(data, f"{operation} response", operation)
    url = reader.required_text("url")
    if not url.startswith(("https://", "http://")):
        raise UnexpectedResponseError(f"{operation} response: field 'url' is not a web address",
                                      code="unexpected_shape", operation=operation)
    return SessionLink(url=url, expires_at=reader.moment("expiresAt", "expires_at"))


@dataclass(frozen=True)
class ProcessResult:
    organization_id: str | None
    subscription_id: str | None
    status: str | None
    already_processed: bool
    subscription: Subscription | None


def parse_process(data: Any, operation: str = "process checkout") -> ProcessResult:
    reader = _Reader(data, f"{operation} response", operation)
    subscription_reader = reader.child("subscription")
    subscription = _parse_subscription(subscription_reader, reader.text("status")) if subscription_reader else None
    return ProcessResult(reader.text("organizationId"), reader.text("subscriptionId") or (
        subscription.id if subscription else None), reader.text("status") or (
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
    reader = _Reader(data, f"{operation} response", operation)
    subscription_reader = reader.child("subscription")
    return PlanChangeResult(
        organization_id=reader.text("organizationId"), change=reader.text("change"),
        effective=reader.text("effective"), effective_at=reader.moment("effectiveAt", "effective_at"),
        proration_amount=reader.integer("prorationAmount", "proration_amount", "amountDue"),
        currency=(reader.text("currency") or "usd").lower(),
        subscription=_parse_subscription(subscription_reader, None) if subscription_reader else None)
