"""Taking a day's snapshot of the directory: its rows, the movements since the day before, and the day's rollups,
in one transaction, once (a second process taking the same day is refused by the day's key and gives up).

Days the console took no snapshot on (it was down, or nothing ran) are filled in first as copies of the last day
taken, every row marked carried: nothing is known to have changed until the next day read.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import func, insert, literal, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from ..directory import directory_organizations as directory
from ..store import now, utc, write_transaction
from .movements import movement
from .tables import (MOVEMENT_COLUMNS, revenue_cohort_days, revenue_customers, revenue_days, revenue_movements,
                     revenue_snapshots)

log = logging.getLogger("billing_desk.revenue")
GONE = "gone"  # the status a snapshot gives an organization the API said doesn't exist
CARRIED_BY = "carried"  # revenue_days.taken_by of a day filled in from the day before it
INSERTED_PER_STATEMENT = 5000
REPORTING_CURRENCY = "USD"  # the currency of every total (the Payments API's catalog); others are not counted
SNAPSHOT_COLUMNS = ("organization_id", "plan", "price_cents", "currency", "interval_unit", "interval_count", "status",
                    "cancel_at_period_end", "mrr_cents")


@dataclass(frozen=True)
class TakenDay:
    """What taking a day wrote."""
    day: date
    organizations: int
    carried: int
    movements: int
    filled_days: int  # days before it filled in as carried


def take_snapshot(engine: Engine, day: date, by: str, clock: Any = now) -> TakenDay | None:
    """Writes `day`'s snapshot of the directory as it stands; None if that day is already taken (by anyone).
    Rows not read during `day` (UTC) are marked carried.

    The day is worked out from a read of the store, then written in one short transaction that checks first that
    no other process wrote a day meanwhile (on SQLite the write lock is held only for the inserts, not the
    reading: a directory of 100,000 takes seconds to read)."""
    with engine.connect() as conn:
        if conn.execute(select(revenue_days.c.day).where(revenue_days.c.day >= day).limit(1)).first():
            return None  # taken, or a later day is: a day is never written after the ones following it
        last = conn.execute(select(func.max(revenue_days.c.day))).scalar()
        last = None if last is None else as_day(last)
        worked = _work_out(conn, day, last)
    try:
        with write_transaction(engine) as conn:
            now_last = conn.execute(select(func.max(revenue_days.c.day))).scalar()
            if (None if now_last is None else as_day(now_last)) != last:
                return None  # another process wrote a day since: the next check works it out again
            filled = _fill_missing_days(conn, last, day, clock())
            return _write(conn, day, by, clock(), filled, worked)
    except IntegrityError:  # another process took it at the same moment
        return None


def _fill_missing_days(conn: Connection, last: date | None, day: date, moment: datetime) -> int:
    """Copies the last day taken into each day between it and `day`, every row carried; how many days."""
    if last is None:
        return 0
    totals = conn.execute(select(revenue_days).where(revenue_days.c.day == last)).one()._asdict()
    filled = 0
    missing = last + timedelta(days=1)
    while missing < day:
        conn.execute(insert(revenue_snapshots).from_select(
            ["day", *SNAPSHOT_COLUMNS, "carried"],
            select(literal(missing, revenue_snapshots.c.day.type),
                   *(revenue_snapshots.c[name] for name in SNAPSHOT_COLUMNS),
                   literal(True, revenue_snapshots.c.carried.type)).where(revenue_snapshots.c.day == last)))
        conn.execute(insert(revenue_cohort_days).from_select(
            ["day", "cohort", "customers", "mrr_cents"],
            select(literal(missing, revenue_cohort_days.c.day.type), revenue_cohort_days.c.cohort,
                   revenue_cohort_days.c.customers, revenue_cohort_days.c.mrr_cents)
            .where(revenue_cohort_days.c.day == last)))
        no_movements = {f"{kind}_{part}": 0 for kind in MOVEMENT_COLUMNS for part in ("cents", "count")}
        conn.execute(insert(revenue_days).values({**totals, **no_movements, "day": missing,
                                                  "carried": totals["organizations"], "taken_at": moment,
                                                  "taken_by": CARRIED_BY}))
        filled += 1
        missing += timedelta(days=1)
    return filled


@dataclass
class _Worked:
    """A day's rows, movements, newly paying organizations, cohorts and totals, ready to insert."""
    rows: list[dict[str, Any]]
    moves: list[dict[str, Any]]
    newly_paid: list[dict[str, Any]]
    cohorts: dict[date, list[int]]
    totals: dict[str, int]


def _work_out(conn: Connection, day: date, last: date | None) -> _Worked:
    """`day` from the directory, against the last day taken (the days between, if any, are its copies)."""
    before: dict[str, tuple[int | None, str | None]] = {} if last is None else {
        row.organization_id: (row.mrr_cents if (row.currency or REPORTING_CURRENCY) == REPORTING_CURRENCY else None,
                              row.plan) for row in conn.execute(
            select(revenue_snapshots.c.organization_id, revenue_snapshots.c.mrr_cents, revenue_snapshots.c.plan,
                   revenue_snapshots.c.currency).where(revenue_snapshots.c.day == last))}
    first_paid = {row.organization_id: as_day(row.first_paid_day) for row in conn.execute(select(revenue_customers))}
    starts = datetime.combine(day, time(0), tzinfo=timezone.utc)

    rows, moves, newly_paid = [], [], []
    totals: dict[str, int] = defaultdict(int)
    cohorts: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    for entry in conn.execute(select(directory.c.organization_id, directory.c.plan, directory.c.price_cents,
                                     directory.c.currency, directory.c.interval_unit, directory.c.interval_count,
                                     directory.c.status, directory.c.cancel_at_period_end, directory.c.mrr_cents,
                                     directory.c.last_read_at, directory.c.gone_at)):
        gone = entry.gone_at is not None
        row = {"day": day, "organization_id": entry.organization_id, "plan": None if gone else entry.plan,
               "price_cents": None if gone else entry.price_cents, "currency": None if gone else entry.currency,
               "interval_unit": None if gone else entry.interval_unit,
               "interval_count": None if gone else entry.interval_count, "status": GONE if gone else entry.status,
               "cancel_at_period_end": bool(entry.cancel_at_period_end) and not gone,
               "mrr_cents": 0 if gone else entry.mrr_cents, "carried": utc(entry.last_read_at) < starts}
        rows.append(row)
        # MRR in another currency than the figures' is kept on its row but counted in no total (as the finance
        # summary leaves it out): not converted at a rate the console doesn't have.
        mrr = row["mrr_cents"] if (row["currency"] or REPORTING_CURRENCY) == REPORTING_CURRENCY else None
        totals["organizations"] += 1
        totals["carried"] += row["carried"]
        totals["trialing"] += row["status"] == "trialing"
        if mrr is None:
            totals["unknown"] += 1
        elif mrr > 0:
            totals["customers"] += 1
            totals["mrr_cents"] += mrr
            if row["cancel_at_period_end"]:
                totals["scheduled_churn_cents"] += mrr
                totals["scheduled_churn_customers"] += 1
            if entry.organization_id not in first_paid:
                first_paid[entry.organization_id] = day
                newly_paid.append({"organization_id": entry.organization_id, "first_paid_day": day})
            cohort = cohorts[first_paid[entry.organization_id].replace(day=1)]
            cohort[0] += 1
            cohort[1] += mrr
        was, plan_before = before.pop(entry.organization_id, (None, None))
        paid_before = entry.organization_id in first_paid and first_paid[entry.organization_id] < day
        kind = movement(was, mrr, paid_before)
        if kind is not None:
            moves.append(_movement(day, entry.organization_id, kind, was, mrr, plan_before, row["plan"]))
    for organization_id, (was, plan_before) in before.items():  # left the directory since the day before
        kind = movement(was, None, True)
        if kind is not None:
            moves.append(_movement(day, organization_id, kind, was, None, plan_before, None))
    for move in moves:
        kind = move["kind"]
        totals[f"{kind}_cents"] += abs(move["to_mrr_cents"] - move["from_mrr_cents"])
        totals[f"{kind}_count"] += 1
    return _Worked(rows, moves, newly_paid, cohorts, totals)


def _write(conn: Connection, day: date, by: str, moment: datetime, filled: int, worked: _Worked) -> TakenDay:
    rows, moves, newly_paid, cohorts, totals = (worked.rows, worked.moves, worked.newly_paid, worked.cohorts,
                                                worked.totals)
    _insert(conn, revenue_snapshots, rows)
    _insert(conn, revenue_movements, moves)
    _insert(conn, revenue_customers, newly_paid)
    _insert(conn, revenue_cohort_days, [{"day": day, "cohort": cohort, "customers": customers, "mrr_cents": mrr}
                                        for cohort, (customers, mrr) in cohorts.items()])
    conn.execute(insert(revenue_days).values(
        day=day, taken_at=moment, taken_by=by,
        **{column.name: totals[column.name] for column in revenue_days.columns
           if column.name not in ("day", "taken_at", "taken_by")}))
    log.info("Took the revenue snapshot of %s: %d organizations (%d carried), %d movements.", day,
             totals["organizations"], totals["carried"], len(moves))
    return TakenDay(day, totals["organizations"], totals["carried"], len(moves), filled)


def _movement(day: date, organization_id: str, kind: str, was: int | None, mrr: int | None, plan_before: str | None,
              plan: str | None) -> dict[str, Any]:
    # Not counted (None) is written as zero: first counted comes from it and no longer counted goes to it.
    return {"day": day, "organization_id": organization_id, "kind": kind, "from_mrr_cents": was or 0,
            "to_mrr_cents": mrr or 0, "from_plan": plan_before, "to_plan": plan}


def _insert(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), INSERTED_PER_STATEMENT):
        conn.execute(insert(table), rows[start:start + INSERTED_PER_STATEMENT])


def as_day(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
