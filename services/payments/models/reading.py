"""Reading any plausible shape of an answer: field spellings, list envelopes, amounts, prices flat or Stripe's."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any, Mapping, NamedTuple

from ..errors import UnexpectedResponseError

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
MONTHS_PER_INTERVAL = {"month": Decimal(1), "year": Decimal(12), "week": Decimal(12) / 52,
                       "day": Decimal(12) / 365}
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


class Reader:
    """Reads fields of one JSON object, turning a missing or ill-typed required field into a clear error.

    `fallback` is read for a field this object lacks: Stripe keeps a product's own facts in its `metadata`.
    """

    def __init__(self, data: Any, what: str, operation: str, fallback: "Reader | None" = None) -> None:
        if not isinstance(data, Mapping):
            raise UnexpectedResponseError(f"{what} is not a JSON object", code="unexpected_shape", operation=operation)
        self.data, self.what, self.operation, self.fallback = data, what, operation, fallback

    def falling_back_to(self, fallback: "Reader | None") -> "Reader":
        return Reader(self.data, self.what, self.operation, fallback) if fallback else self

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
            return Reader(value, f"{self.what}.{names[-1]}", self.operation).required_text("id")
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

    def readers(self, *names: str, required: bool = False) -> list["Reader"]:
        """The objects of a list, each as a reader named by its place (`plans[2]`)."""
        return [Reader(raw, f"{self.what}.{names[0]}[{index}]", self.operation)
                for index, raw in enumerate(self.objects(*names, required=required))]

    def child(self, *names: str) -> "Reader | None":
        """A nested object; anything else in its place (text, a list) is an error."""
        value = self._raw(names)
        if value is None:
            return None
        return Reader(value, f"{self.what}.{names[0]}", self.operation)

    def expanded(self, *names: str) -> "Reader | None":
        """A nested object if the answer expanded it; None for an id in its place, or nothing."""
        value = self._raw(names)
        return Reader(value, f"{self.what}.{names[0]}", self.operation) if isinstance(value, Mapping) else None

    def path(self, *steps: str) -> "Reader | None":
        """Nested objects, one step at a time (`invoice_settings.default_payment_method.card`)."""
        reader: Reader | None = self
        for step in steps:
            reader = reader.expanded(step) if reader else None
        return reader


def unwrap(data: Any, what: str, operation: str, *, one: bool = False) -> Any:
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
class Terms(NamedTuple):
    interval: str | None = None
    interval_count: int | None = None  # None when not given: 1
    unit_amount: int | None = None
    currency: str | None = None

    def over(self, other: "Terms") -> "Terms":
        """These terms, each missing one taken from `other`."""
        return Terms(*(mine if mine is not None else theirs for mine, theirs in zip(self, other)))


def read_terms(reader: Reader | None) -> Terms:
    """A price's terms: flat (`interval`, `unitAmount`) or Stripe's (`recurring.interval`, `unit_amount`).

    Intervals keep Stripe's unit plus a count, so quarterly reads as 3 × "month" and is never taken for
    monthly; "yearly", "annual" and the like read as "year".
    """
    if reader is None:
        return Terms()
    source = reader.falling_back_to(reader.expanded("recurring"))
    spelled = (source.text("interval", "recurringInterval", "billingInterval") or "").strip().lower()
    interval, per = _INTERVAL_SPELLINGS.get(spelled, (spelled or None, 1))
    count = source.integer("intervalCount")
    if per != 1:  # "quarterly": 3 × "month"
        count = (count or 1) * per
    return Terms(interval=interval, interval_count=count,
                 unit_amount=reader.integer("unitAmount", "amount", "unitAmountDecimal"),  # cents
                 currency=(reader.text("currency") or "").lower() or None)


class PricedRefs(NamedTuple):
    price_id: str | None
    product_id: str | None
    plan_name: str | None
    terms: Terms


def priced_refs(reader: Reader, item: Reader | None = None) -> PricedRefs:
    """What something is priced at, flat (`priceId`, `productId`, `planName`, `interval`, `unitAmount`) or
    Stripe's (`price: {id, product, unit_amount, recurring}`, on the object or on its subscription item), with
    `product` as an id or an expanded `{id, name}`."""
    price = reader.expanded("price", "plan") or (item.expanded("price", "plan") if item else None)
    product = reader.expanded("product") or (price.expanded("product") if price else None)
    return PricedRefs(
        price_id=reader.reference("priceId", "price") or (price.text("id") if price else None),
        product_id=reader.reference("productId", "product") or (price.reference("productId", "product")
                                                                 if price else None),
        plan_name=reader.text("planName", "productName") or (product.text("name") if product else None),
        terms=read_terms(reader).over(read_terms(price)))


# --- what a price and a subscription share -------------------------------------------------------------
class Billed:
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
