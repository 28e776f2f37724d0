"""The revenue tables: a snapshot of every organization the directory holds, once a day, the MRR movements
between consecutive days, and the rollups the Revenue page reads.

Every table here is append-only for the console (INSERT and SELECT: services/store/grants.py): a day is written
once, in one transaction, and never changed; a later day corrects nothing before it. Money is integer cents.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Date, DateTime, Index, Integer, String, Table

from ..store import metadata

# One row per organization per day: its state as the directory last knew it on that day. `carried`: it was not
# read that day (no refresh, or the refresh couldn't read it), so the last known state stands.
revenue_snapshots = Table(
    "revenue_snapshots", metadata,
    Column("day", Date, primary_key=True),
    Column("organization_id", String(120), primary_key=True),
    Column("plan", String(200)),
    Column("price_cents", Integer),
    Column("currency", String(8)),
    Column("interval_unit", String(16)),
    Column("interval_count", Integer),
    Column("status", String(40), nullable=False),
    Column("cancel_at_period_end", Boolean, nullable=False),
    Column("mrr_cents", Integer),  # None: counted (active, past due) but its price is unknown: not in any total
    Column("carried", Boolean, nullable=False),
)
Index("ix_revenue_snapshots_organization", revenue_snapshots.c.organization_id, revenue_snapshots.c.day)

# What changed an organization's MRR from one day to the next (services/revenue/movements.py says which kind).
revenue_movements = Table(
    "revenue_movements", metadata,
    Column("day", Date, primary_key=True),
    Column("organization_id", String(120), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("from_mrr_cents", Integer, nullable=False),
    Column("to_mrr_cents", Integer, nullable=False),
    Column("from_plan", String(200)),
    Column("to_plan", String(200)),
)
Index("ix_revenue_movements_kind", revenue_movements.c.kind, revenue_movements.c.day)  # a month's ledger, by kind
Index("ix_revenue_movements_organization", revenue_movements.c.organization_id, revenue_movements.c.day)

# The first day each organization paid (MRR above zero in a snapshot): new or reactivation, and its cohort.
revenue_customers = Table(
    "revenue_customers", metadata,
    Column("organization_id", String(120), primary_key=True),
    Column("first_paid_day", Date, nullable=False),
)

# A day's totals, written with its snapshot: what the Revenue page charts without reading the snapshots. The
# movement sums are positive numbers of cents (contraction and churn included) with how many organizations.
MOVEMENT_COLUMNS = ("new", "expansion", "reactivation", "contraction", "churn", "first_counted", "no_longer_counted")
revenue_days = Table(
    "revenue_days", metadata,
    Column("day", Date, primary_key=True),
    Column("organizations", Integer, nullable=False),  # in the snapshot (the directory that day)
    Column("customers", Integer, nullable=False),  # paying: MRR above zero
    Column("mrr_cents", BigInteger, nullable=False),
    Column("unknown", Integer, nullable=False),  # counted but priced unknown: in no total
    Column("carried", Integer, nullable=False),  # rows not read that day
    Column("trialing", Integer, nullable=False),
    Column("scheduled_churn_cents", BigInteger, nullable=False),  # MRR cancelling at period end
    Column("scheduled_churn_customers", Integer, nullable=False),
    *(column for kind in MOVEMENT_COLUMNS for column in (
        Column(f"{kind}_cents", BigInteger, nullable=False), Column(f"{kind}_count", Integer, nullable=False))),
    Column("taken_at", DateTime(timezone=True), nullable=False),
    Column("taken_by", String(120), nullable=False),  # the process, or "carried" for a day filled in later
)

# Each cohort's MRR and paying customers on each day (a cohort: the month of the first paid day).
revenue_cohort_days = Table(
    "revenue_cohort_days", metadata,
    Column("day", Date, primary_key=True),
    Column("cohort", Date, primary_key=True),  # the first day of the cohort's month
    Column("customers", Integer, nullable=False),
    Column("mrr_cents", BigInteger, nullable=False),
)
