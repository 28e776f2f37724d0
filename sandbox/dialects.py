"""Answer dialects: the same sandbox state, shaped the way another plausible Payments API would send it.

The sandbox's rules (billing.py) produce one canonical answer, the "camel" dialect that docs/payments-api.md
documents and /openapi.json describes. `reshape` turns it into another dialect just before it is sent, so
both dialects always describe the same state and the client's contract tests can compare what it reads.

"stripe" is how an API passing Stripe's objects through might answer (docs/payments-api.md, "Dialects"):
snake_case; lists as list objects (`{"object": "list", "data": [...]}`); plans as products whose facts are
in text `metadata`, features as `marketing_features: [{"name": …}]`, prices as `{id, product, unit_amount,
recurring: {interval, interval_count}}`; times as epoch seconds; the customer as a Stripe customer whose
card is under `invoice_settings.default_payment_method.card` and whose subscriptions are a list, each with
its price under `items.data[].price` (the product expanded to `{id, name}`); and no current-plan marker in
the plans answer (the console finds it from customer-info). Errors keep the one envelope in every dialect.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from .store import parse_iso

_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def reshape(kind: str, body: Any, dialect: str) -> Any:
    """`body` (a canonical answer of `kind`: plans, customer, session, process, update, empty) in `dialect`."""
    return body if dialect == "camel" else _STRIPE[kind](body)


# --- stripe ---------------------------------------------------------------------------------------------
def _snake(name: str) -> str:
    return _CAMEL_HUMP.sub("_", name).lower()


def _epoch(moment: str | None) -> int | None:
    return int(parse_iso(moment).timestamp()) if moment else None


def _list(items: list[Any], url: str) -> dict[str, Any]:
    return {"object": "list", "url": url, "has_more": False, "data": items}


def _metadata(values: dict[str, Any]) -> dict[str, str]:
    """Stripe's metadata holds only text: numbers as digits, booleans as "true"/"false", nothing for null."""
    return {_snake(name): (str(value).lower() if isinstance(value, bool) else str(value))
            for name, value in values.items() if value is not None}


def _price(price_id: str, product: str | dict[str, Any], unit_amount: int, currency: str, interval: str,
           interval_count: int = 1) -> dict[str, Any]:
    return {"id": price_id, "object": "price", "active": True, "product": product, "currency": currency,
            "unit_amount": unit_amount, "type": "recurring",
            "recurring": {"interval": interval, "interval_count": interval_count}}


def _product(plan: dict[str, Any]) -> dict[str, Any]:
    product_id = plan["productId"]
    return {
        "id": product_id, "object": "product",
        "active": True,  # Stripe's "for sale": not this customer's plan
        "name": plan["name"], "description": plan["description"],
        "marketing_features": [{"name": feature} for feature in plan["features"]],
        "metadata": _metadata({name: plan[name] for name in ("tier", "credits", "overageRate", "seats", "trialDays",
                                                             "custom")}),
        "prices": _list([_price(price["priceId"], product_id, price["unitAmount"], price["currency"],
                                price["interval"], price["intervalCount"]) for price in plan["prices"]],
                        f"/v1/prices?product={product_id}"),
    }


def _plans(plans: list[dict[str, Any]]) -> dict[str, Any]:
    return _list([_product(plan) for plan in plans], "/v1/products")  # `current` dropped: Stripe has no such mark


def _subscription(subscription: dict[str, Any] | None) -> dict[str, Any] | None:
    if subscription is None:
        return None
    subscription_id = subscription["id"]
    product = {"id": subscription["productId"], "object": "product", "name": subscription["planName"]}
    price = _price(subscription["priceId"], product, subscription["unitAmount"], subscription["currency"],
                   subscription["interval"])
    scheduled = subscription["scheduledChange"]
    return {
        "id": subscription_id, "object": "subscription", "status": subscription["status"],
        "currency": subscription["currency"],
        "items": _list([{"id": "si_" + subscription_id.removeprefix("sub_"), "object": "subscription_item",
                         "price": price, "quantity": 1}], f"/v1/subscription_items?subscription={subscription_id}"),
        "current_period_start": _epoch(subscription["currentPeriodStart"]),
        "current_period_end": _epoch(subscription["currentPeriodEnd"]),
        "cancel_at_period_end": subscription["cancelAtPeriodEnd"],
        "canceled_at": _epoch(subscription["canceledAt"]), "trial_end": _epoch(subscription["trialEnd"]),
        "created": _epoch(subscription["createdAt"]),
        "scheduled_change": None if scheduled is None else {
            "product": scheduled["productId"], "price": scheduled["priceId"], "plan_name": scheduled["planName"],
            "interval": scheduled["interval"], "unit_amount": scheduled["unitAmount"],
            "effective_at": _epoch(scheduled["effectiveAt"])},
    }


def _customer(body: dict[str, Any]) -> dict[str, Any]:
    card = ({"object": "payment_method", "type": "card",
             "card": {"brand": body["defaultCardBrand"], "last4": body["defaultCardLast4"]}}
            if body["defaultCardLast4"] else None)
    address = body["address"]
    subscription = _subscription(body["subscription"])
    return {
        "id": body["customerId"], "object": "customer", "name": body["name"], "email": body["email"],
        "address": {_snake(name): value for name, value in address.items()} if address else None,
        "invoice_settings": {"default_payment_method": card},
        "metadata": _metadata({"organizationId": body["organizationId"],
                               "organizationName": body["organizationName"]}),
        # Every status, as `status=all` lists them: a canceled subscription still reads as canceled.
        "subscriptions": _list([subscription] if subscription else [],
                               f"/v1/subscriptions?customer={body['customerId']}&status=all"),
    }


def _result(body: dict[str, Any]) -> dict[str, Any]:
    """A write's answer: snake_case, times as epoch seconds, its subscription as Stripe's."""
    reshaped: dict[str, Any] = {}
    for name, value in body.items():
        if name == "subscription":
            value = _subscription(value)
        elif name.endswith("At"):
            value = _epoch(value)
        reshaped[_snake(name)] = value
    return reshaped


_STRIPE: dict[str, Callable[[Any], Any]] = {
    "plans": _plans, "customer": _customer, "session": _result, "process": _result, "update": _result,
    "empty": _result,
}
