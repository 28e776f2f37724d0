"""The directory's table: one row per organization the console has read, and what a row holds.

Only what the Customer page already shows, and of that only what finding a customer and its revenue need: no
address, no card data (not even the last four digits). `search_text` and `name_key` are the searchable text
folded (lower case, accents removed, spaces squeezed), so a search ignores case and accents on either store.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Boolean, Column, DateTime, Index, Integer, String, Table, Text

from ..finance import mrr_cents
from ..tables import finance_record
from ..payments.models import CustomerInfo
from ..store import metadata

# What read an organization (the "read by" a result shows).
LOOKUP, BULK_JOB, APPROVAL, REFRESH, IMPORT, SANDBOX_SEED = ("lookup", "bulk job", "approval re-read", "refresh",
                                                              "import", "sandbox seed")

directory_organizations = Table(
    "directory_organizations", metadata,
    # An explicit integer key: SQLite's FTS5 index points at it (VACUUM may renumber an implicit rowid).
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("organization_id", String(120), nullable=False),
    Column("customer_id", String(120)),
    Column("name", Text),
    Column("email", String(320)),
    Column("plan", String(200)),
    Column("price_cents", Integer),
    Column("currency", String(8)),
    Column("interval_unit", String(16)),
    Column("interval_count", Integer),
    Column("status", String(40), nullable=False),
    Column("cancel_at_period_end", Boolean, nullable=False),
    Column("scheduled_plan", String(200)),
    Column("scheduled_at", DateTime(timezone=True)),
    Column("scheduled_mrr_cents", Integer),  # the MRR the scheduled change leaves (migration 0017): what it puts at stake
    Column("period_end", DateTime(timezone=True)),
    Column("trial_end", DateTime(timezone=True)),
    Column("mrr_cents", Integer),  # rounded to the cent; None when counted but its price is unknown
    Column("first_read_at", DateTime(timezone=True), nullable=False),
    Column("last_read_at", DateTime(timezone=True), nullable=False),
    Column("last_read_by", String(40), nullable=False),
    # The last read a person caused (not the daily refresh): what the retention purge counts from.
    Column("last_used_at", DateTime(timezone=True), nullable=False),
    Column("gone_at", DateTime(timezone=True)),  # the API said it doesn't exist (at the last read)
    Column("search_text", Text, nullable=False),  # folded: organization id, customer id, name, email
    Column("name_key", Text, nullable=False),  # folded name, for typo-tolerant matching
)
Index("ix_directory_organizations_organization_id", directory_organizations.c.organization_id, unique=True)
Index("ix_directory_organizations_customer_id", directory_organizations.c.customer_id)
Index("ix_directory_organizations_last_used_at", directory_organizations.c.last_used_at)
# Newest read first: a broad search (thousands of matches) walks this and stops at the first page.
Index("ix_directory_organizations_last_read", directory_organizations.c.last_read_at, directory_organizations.c.id)

# The words of the names, for finding a misspelt one (services/directory/search.py): each word as it is and with
# each one of its letters left out ("kestrel": "kestrel", "estrel", "ktrel"…). A misspelling one letter off shares
# one of these keys with the word (a letter changed, added, missing), so finding the words like a typed one is an
# index probe per key, however many organizations there are. A word nobody's name holds any more is removed
# (forgetting, the purge) and a read brings back the words of what it read.
directory_name_words = Table(
    "directory_name_words", metadata,
    Column("variant", String(64), primary_key=True),
    Column("word", String(64), primary_key=True),
)
WORD_LETTERS = (4, 40)  # the words kept: shorter ones are too alike (a letter off is another word), longer rare
# The trigram indexes that make substring and similar-name searches fast are not SQLAlchemy objects: on
# PostgreSQL GIN indexes with pg_trgm's operator class, on SQLite an FTS5 table with the trigram tokenizer
# (migration 0013; services/schema.py leaves them out of the comparison with the models).
SEARCH_TABLE = "directory_search"  # SQLite's FTS5 table (and its shadow tables, directory_search_*)


def fold(text: str | None) -> str:
    """Lower case, accents removed, runs of whitespace as one space: "  Zoë  Ltd" -> "zoe ltd"."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(character for character in decomposed if not unicodedata.combining(character))
    return " ".join(bare.casefold().split())


def name_words(text: str) -> set[str]:
    """The words of a folded name (or query) kept for misspelling: letters and digits, 4 to 40 of them."""
    shortest, longest = WORD_LETTERS
    return {word for word in re.findall(r"\w+", text) if shortest <= len(word) <= longest}


def word_variants(word: str) -> set[str]:
    """A word and the word with each one of its letters left out."""
    return {word} | {word[:index] + word[index + 1:] for index in range(len(word))}


def row_of(customer: CustomerInfo, read_by: str, moment: datetime) -> dict[str, Any]:
    """The directory's row for a customer as just read (without `first_read_at`, which only an insert sets)."""
    subscription = customer.subscription
    scheduled = subscription.scheduled_change if subscription else None
    plan = (subscription.plan_name or subscription.product_id) if subscription else customer.active_product_id
    unit = subscription.interval if subscription else None
    count = subscription.interval_count if subscription and unit else None
    price = subscription.unit_amount if subscription else None
    mrr = mrr_cents(customer.status, price, unit, count)
    terms = finance_record(subscription)  # a scheduled change's price and interval, as the finance summary reads them
    name = customer.organization_name or customer.name
    return {
        "organization_id": customer.organization_id,
        "customer_id": customer.customer_id,
        "name": name,
        "email": customer.email,
        "plan": plan,
        "price_cents": price,
        "currency": (subscription.currency or "usd").upper() if subscription else None,
        "interval_unit": unit,
        "interval_count": count,
        "status": customer.status,
        "cancel_at_period_end": bool(subscription and subscription.cancel_at_period_end),
        "scheduled_plan": (scheduled.plan_name or scheduled.product_id) if scheduled else None,
        "scheduled_at": scheduled.effective_at if scheduled else None,
        "scheduled_mrr_cents": _cents(mrr_cents(customer.status, terms["scheduled_price_cents"],
                                                terms["scheduled_interval_unit"], terms["scheduled_interval_count"]))
        if scheduled else None,
        "period_end": subscription.current_period_end if subscription else None,
        "trial_end": subscription.trial_end if subscription else None,
        "mrr_cents": _cents(mrr),
        "last_read_at": moment,
        "last_read_by": read_by,
        "gone_at": None,
        "search_text": " ".join(part for part in (fold(customer.organization_id), fold(customer.customer_id),
                                                  fold(name), fold(customer.email)) if part),
        "name_key": fold(name),
    }


def _cents(exact: Decimal | None) -> int | None:
    return None if exact is None else int(exact.quantize(Decimal(1), ROUND_HALF_UP))
