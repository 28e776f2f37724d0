"""Typed results of the Payments API, parsed tolerantly.

The API's exact shapes are not published, so parsing reads any plausible answer: extra fields are ignored,
optional ones may be missing, and every field is read in camelCase or in snake_case (Stripe's spelling). Lists
may come bare or in a list object (`{"object": "list", "data": [...]}`), ids as text or as expanded objects,
times as ISO 8601 or epoch seconds, a price flat or Stripe-style (`unit_amount`, `recurring.interval`), a
subscription's price flat or under `items.data[].price`. A field the console cannot do without raises
`UnexpectedResponseError` naming it. docs/payments-api.md lists what is read, field by field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any, Mapping, NamedTuple

from .errors import UnexpectedResponseError

LIVE_STATUSES = frozenset({"active", "trialing", "past_due"})

_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
# Epoch seconds this large would be past the year 5000: such a number is epoch milliseconds (JavaScript's).
_EPOCH_MILLISECONDS_FROM = 100_000_000_000
# Interval spellings other than Stripe's day/week/month/year, as (interval, intervals per period).
_INTERVAL_SPELLINGS: dict[str, tuple[str, int]] = {
    "daily": ("day", 1), "weekly": ("week", 1), "monthly": ("month", 1), "quarter": ("month", 3),
    "quarterly": ("month", 3), "yearly": ("year", 1), "annual": ("year", 1), "annually": ("year", 1),
}
_MONTHS_PER_INTERVAL = {"month": Decimal(1), "year": Decimal(12), "week": Decimal(12) / 52, "day": Decimal(12) / 365}
# The keys of an envelope: a mapping of only these wraps the answer (or a page of a list) in `data`.
_ENVELOPE_KEYS = frozenset({"object", "data", "has_more", "url", "total_count", "next_page", "count", "meta"})


@cache
def _spellings(names: tuple[str, ...]) -> tuple[str, ...]:
    """Each name as given, then in snake_case: one list of aliases reads camelCase and Stripe-style answers."""
    spelled: list[str] = []
    for name in names:
        spelled += [name, _CAMEL_HUMP.sub("_", name).lower()]
    return tuple(dict.fromkeys(spelled))


def _list_items(value: Any) -> list[Any] | None:
    """A JSON array, or the array inside a list object (`{"object": "list", "data": [...]}`); else None."""
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("data"), list):
        return value["data"]
    return None


class _Reader:
    """Reads fields of one JSON object, turning a missing or ill-typed required field into a clear error.

    `fallback` is read for a field this object lacks: Stripe keeps a product's own facts in its `metadata`.
    """

    def __init__(self, data: Any, what: str, operation: str, fallback: "_Reader | None" = None) -> None:
        if not isinstance(data, Mapping):
            raise UnexpectedResponseError(f"{what} is not a JSON object", code="unexpected_shape", operation=operation)
        self.data, self.what, self.operation, self.fallback = data, what, operation, fallback

    def falling_back_to(self, fallback: "_Reader | None") -> "_Reader":
        return _Reader(self.data, self.what, self.operation, fallback) if fallback else self

    def _raw(self, names: tuple[str, ...]) -> Any:
        for name in _spellings(names):
            if self.data.get(name) is not None:
                return self.data[name]
        return self.fallback._raw(names) if self.fallback else None

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

    def reference(self, *names: str) -> str | None:
        """An id sent as text, or as the expanded object it names (Stripe's `product: "prod_…"` or `{id, name}`)."""
        value = self._raw(names)
        if isinstance(value, Mapping):
            return _Reader(value, f"{self.what}.{names[-1]}", self.operation).required_text("id")
        return self.text(*names)

    def decimal(self, *names: str) -> Decimal | None:
        value = self._raw(names)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise self.fail(names, "should be a number")
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite():
            raise self.fail(names, "should be a number")
        return number

    def integer(self, *names: str) -> int | None:
        value = self.decimal(*names)
        return None if value is None else int(value)

    def boolean(self, *names: str, default: bool = False) -> bool:
        value = self._raw(names)
        if value is None:
            return default
        if isinstance(value, str):  # Stripe's metadata holds only text
            return value.strip().lower() in ("true", "1", "yes")
        return bool(value)

    def moment(self, *names: str) -> datetime | None:
        """A time: ISO 8601 (no zone means UTC), or epoch seconds as a number or numeric text."""
        value = self._raw(names)
        if value is None or value == "":
            return None
        try:
            if isinstance(value, (bool, dict, list)):
                raise ValueError
            text = str(value).strip()
            if isinstance(value, (int, float)) or _NUMBER.fullmatch(text):
                seconds = float(text)
                if abs(seconds) >= _EPOCH_MILLISECONDS_FROM:
                    seconds /= 1000
                return datetime.fromtimestamp(seconds, tz=timezone.utc)
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except (ValueError, OverflowError, OSError):
            raise self.fail(names, "should be an ISO 8601 time or epoch seconds") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)

    def objects(self, *names: str, required: bool = False) -> list[Any]:
        """A list, bare or in a list object."""
        value = self._raw(names)
        if value is None:
            if required:
                raise self.fail(names, "is missing")
            return []
        items = _list_items(value)
        if items is None:
            raise self.fail(names, "should be a list")
        return items

    def readers(self, *names: str, required: bool = False) -> list["_Reader"]:
        """The objects of a list, each as a reader named by its place (`plans[2]`)."""
        return [_Reader(raw, f"{self.what}.{names[0]}[{index}]", self.operation)
                for index, raw in enumerate(self.objects(*names, required=required))]

    def child(self, *names: str) -> "_Reader | None":
        """A nested object; anything else in its place (text, a list) is an error."""
        value = self._raw(names)
        if value is None:
            return None
        return _Reader(value, f"{self.what}.{names[0]}", self.operation)

    def expanded(self, *names: str) -> "_Reader | None":
        """A nested object if the answer expanded it; None for an id in its place, or nothing."""
        value = self._raw(names)
        return _Reader(value, f"{self.what}.{names[0]}", self.operation) if isinstance(value, Mapping) else None

    def path(self, *steps: str) -> "_Reader | None":
        """Nested objects, one step at a time (`invoice_settings.default_payment_method.card`)."""
        reader: _Reader | None = self
        for step in steps:
            reader = reader.expanded(step) if reader else None
        return reader


def _unwrap(data: Any, what: str, operation: str, *, one: bool = False) -> Any:
    """The answer inside an envelope (`{"data": {...}}`); with `one`, also the first object of a bare array or
    list object (a search's answer). Anything else is returned as it is, for the reader to judge."""
    envelope = isinstance(data, Mapping) and "data" in data and set(data) <= _ENVELOPE_KEYS
    if envelope and isinstance(data["data"], Mapping):
        return data["data"]
    if not one or not (isinstance(data, list) or (envelope and isinstance(data["data"], list))):
        return data
    items = _list_items(data) or []
    if not items:
        raise UnexpectedResponseError(f"{what} is an empty list", code="unexpected_shape", operation=operation)
    return items[0]


def cents_to_dollars(cents: int | None) -> Decimal | None:
    return None if cents is None else (Decimal(cents) / 100).quantize(Decimal("0.01"))


def _period(interval: str | None, count: int) -> str | None:
    """How often a price bills, as read on screen: "month", "year", "3 months"."""
    if interval is None or count == 1:
        return interval
    return f"{count} {interval}s"


# --- prices: flat, or Stripe's ------------------------------------------------------------------------
class _Terms(NamedTuple):
    interval: str | None = None
    interval_count: int | None = None  # None when not given: 1
    unit_amount: int | None = None
    currency: str | None = None

    def over(self, other: "_Terms") -> "_Terms":
        """These terms, each missing one taken from `other`."""
        return _Terms(*(mine if mine is not None else theirs for mine, theirs in zip(self, other)))


def _terms(reader: _Reader | None) -> _Terms:
    """A price's terms: flat (`interval`, `unitAmount`) or Stripe's (`recurring.interval`, `unit_amount`).

    Intervals keep Stripe's unit plus a count, so quarterly reads as 3 × "month" and is never taken for
    monthly; "yearly", "annual" and the like read as "year".
    """
    if reader is None:
        return _Terms()
    source = reader.falling_back_to(reader.expanded("recurring"))
    spelled = (source.text("interval", "recurringInterval", "billingInterval") or "").strip().lower()
    interval, per = _INTERVAL_SPELLINGS.get(spelled, (spelled or None, 1))
    count = source.integer("intervalCount")
    if per != 1:  # "quarterly": 3 × "month"
        count = (count or 1) * per
    return _Terms(interval=interval, interval_count=count,
                  unit_amount=reader.integer("unitAmount", "amount", "unitAmountDecimal"),  # cents
                  currency=(reader.text("currency") or "").lower() or None)


class _PricedRefs(NamedTuple):
    price_id: str | None
    product_id: str | None
    plan_name: str | None
    terms: _Terms


def _priced(reader: _Reader, item: _Reader | None = None) -> _PricedRefs:
    """What something is priced at, flat (`priceId`, `productId`, `planName`, `interval`, `unitAmount`) or
    Stripe's (`price: {id, product, unit_amount, recurring}`, on the object or on its subscription item), with
    `product` as an id or an expanded `{id, name}`."""
    price = reader.expanded("price", "plan") or (item.expanded("price", "plan") if item else None)
    product = reader.expanded("product") or (price.expanded("product") if price else None)
    return _PricedRefs(
        price_id=reader.reference("priceId", "price") or (price.text("id") if price else None),
        product_id=reader.reference("productId", "product") or (price.reference("productId", "product")
                                                                 if price else None),
        plan_name=reader.text("planName", "productName") or (product.text("name") if product else None),
        terms=_terms(reader).over(_terms(price)))


# --- plans -------------------------------------------------------------------------------------------
class _Billed:
    """What a price and a subscription share: an amount in cents billed every `interval_count` intervals."""

    unit_amount: int | None
    interval: str | None
    interval_count: int

    @property
    def amount(self) -> Decimal | None:
        return cents_to_dollars(self.unit_amount)

    @property
    def period(self) -> str | None:
        """How often it bills, for people: "month", "year", "3 months"."""
        return _period(self.interval, self.interval_count)


@dataclass(frozen=True)
class Price(_Billed):
    price_id: str
    product_id: str
    interval: str | None  # "month", "year" (Stripe also has "week", "day"), or None for a one-off/custom price
    unit_amount: int | None  # cents
    currency: str = "usd"
    interval_count: int = 1  # billed every `interval_count` intervals: 3 × "month" is quarterly

    @property
    def months(self) -> Decimal | None:
        """Months one payment covers (12 for yearly, 3 for quarterly), to compare prices per month."""
        per = _MONTHS_PER_INTERVAL.get(self.interval or "")
        return None if per is None else per * self.interval_count


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
    current: bool = False  # the plans answer marks it as the organization's current plan


@dataclass(frozen=True)
class PlanCatalog:
    organization_id: str
    active_product_id: str | None  # as the plans answer marks it; None when it doesn't say
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
    data = _unwrap(data, "plans response", operation)
    if isinstance(data, list):  # a bare array of plans
        data = {"plans": data}
    reader = _Reader(data, "plans response", operation)
    plans = tuple(_parse_plan(plan) for plan in reader.readers("plans", "data", "products", required=True))
    # The current plan: a wrapper's field (older answers), else the plan flagged `current`.
    marked = reader.text("activeProductId", "currentProductId") or next(
        (plan.product_id for plan in plans if plan.current), None)
    return PlanCatalog(reader.text("organizationId") or organization_id, marked, plans)


def _parse_plan(reader: _Reader) -> Plan:
    reader = reader.falling_back_to(reader.expanded("metadata"))  # Stripe: a product's own facts, as text
    product_id = reader.required_text("productId", "id")
    prices = tuple(_parse_price(price, product_id) for price in reader.readers("prices", "pricing"))
    return Plan(product_id=product_id, name=reader.text("name", "productName") or product_id,
                description=reader.text("description") or "",
                features=tuple(_feature(item, f"{reader.what}.features[{index}]", reader.operation)
                               for index, item in enumerate(reader.objects("features", "marketingFeatures"))),
                credits=reader.integer("credits", "monthlyCredits"), overage_rate=reader.decimal("overageRate"),
                seats=reader.integer("seats", "maxSeats"),
                trial_days=reader.integer("trialDays", "trialPeriodDays") or 0,
                custom=reader.boolean("custom", "isCustom", "contactSales"), tier=reader.integer("tier"),
                # Not Stripe's `active`: that says a product is for sale, not that it is this customer's.
                current=reader.boolean("current", "isCurrent"), prices=prices)


def _feature(item: Any, what: str, operation: str) -> str:
    """A feature as text: given as text, or as an object naming it (Stripe's `marketing_features`)."""
    if isinstance(item, Mapping):
        return _Reader(item, what, operation).required_text("name")
    if isinstance(item, list) or item is None:
        raise UnexpectedResponseError(f"{what} should be text or an object with a name", code="unexpected_shape",
                                      operation=operation)
    return str(item)


def _parse_price(reader: _Reader, product_id: str) -> Price:
    terms = _terms(reader)
    return Price(price_id=reader.required_text("priceId", "id"),
                 product_id=reader.reference("productId", "product") or product_id,
                 interval=terms.interval, interval_count=terms.interval_count or 1, unit_amount=terms.unit_amount,
                 currency=terms.currency or "usd")


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
    interval_count: int = 1


@dataclass(frozen=True)
class Subscription(_Billed):
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


def _parse_subscription(reader: _Reader, fallback_status: str | None) -> Subscription:
    items = reader.readers("items")
    item = items[0] if items else None  # Stripe: the subscription's price is on its (first) item
    priced = _priced(reader, item)
    scheduled = None
    scheduled_reader = reader.child("scheduledChange", "pendingUpdate")
    if scheduled_reader is not None:
        next_price = _priced(scheduled_reader)
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


def _subscription_reader(reader: _Reader) -> _Reader | None:
    """The customer's subscription: `subscription`, or from a list of them (`subscriptions: {data: [...]}`)
    the first live one, else the first (Stripe lists the newest first)."""
    single = reader.expanded("subscription")
    if single is not None:
        return single
    listed = reader.readers("subscriptions")
    live = (candidate for candidate in listed if (candidate.text("status") or "").lower() in LIVE_STATUSES)
    return next(live, listed[0] if listed else None)


def parse_customer(data: Any, organization_id: str, operation: str = "look up customer") -> CustomerInfo:
    data = _unwrap(data, "customer-info response", operation, one=True)
    reader = _Reader(data, "customer-info response", operation)
    reader = reader.falling_back_to(reader.expanded("metadata"))  # Stripe: the organization, in metadata
    status = reader.text("subscriptionStatus", "status")
    subscription_reader = _subscription_reader(reader)
    subscription = _parse_subscription(subscription_reader, status) if subscription_reader else None
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
    reader = _Reader(_unwrap(data, f"{operation} response", operation), f"{operation} response", operation)
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
    reader = _Reader(_unwrap(data, f"{operation} response", operation), f"{operation} response", operation)
    subscription_reader = reader.expanded("subscription")
    subscription = _parse_subscription(subscription_reader, reader.text("status")) if subscription_reader else None
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
    reader = _Reader(_unwrap(data, f"{operation} response", operation), f"{operation} response", operation)
    subscription_reader = reader.expanded("subscription")
    return PlanChangeResult(
        organization_id=reader.text("organizationId"), change=reader.text("change"),
        effective=reader.text("effective"), effective_at=reader.moment("effectiveAt"),
        proration_amount=reader.integer("prorationAmount", "amountDue"),
        currency=(reader.text("currency") or "usd").lower(),
        subscription=_parse_subscription(subscription_reader, None) if subscription_reader else None)
