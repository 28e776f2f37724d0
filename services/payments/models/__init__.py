"""Typed results of the Payments API, parsed tolerantly.

The API's exact shapes are not published, so parsing reads any plausible answer: extra fields are ignored,
optional ones may be missing, and every field is read in camelCase or in snake_case (Stripe's spelling). Lists
may come bare or in a list object (`{"object": "list", "data": [...]}`), ids as text or as expanded objects,
times as ISO 8601 or epoch seconds, a price flat or Stripe-style (`unit_amount`, `recurring.interval`), a
subscription's price flat or under `items.data[].price`. A field the console cannot do without raises
`UnexpectedResponseError` naming it. docs/payments-api.md lists what is read, field by field.

| module         | what it reads                                                         |
|----------------|-----------------------------------------------------------------------|
| `reading.py`   | `Reader`: any spelling, envelope, time or amount; `cents_to_dollars`  |
| `plans.py`     | `PlanCatalog`, `Plan`, `Price`                                        |
| `customer.py`  | `CustomerInfo`, `Subscription`, `ScheduledChange`, `Address`          |
| `results.py`   | `SessionLink`, `ProcessResult`, `PlanChangeResult`                    |
"""

from __future__ import annotations

from .customer import Address, CustomerInfo, ScheduledChange, Subscription, parse_customer
from .plans import Plan, PlanCatalog, Price, parse_plans
from .reading import LIVE_STATUSES, cents_to_dollars
from .results import (PlanChangeResult, ProcessResult, SessionLink, parse_plan_change, parse_process,
                      parse_session_link)

__all__ = ["LIVE_STATUSES", "Address", "CustomerInfo", "Plan", "PlanCatalog", "PlanChangeResult", "Price",
           "ProcessResult", "ScheduledChange", "SessionLink", "Subscription", "cents_to_dollars", "parse_customer",
           "parse_plan_change", "parse_plans", "parse_process", "parse_session_link"]
