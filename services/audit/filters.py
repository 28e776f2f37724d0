"""Which lines of the audit log a read wants: the filters and the keyset bounds of a page, as conditions on the
`audit_events` view that PostgreSQL pushes down to the intent rows and their indexes (time, user and action are
the intent's own columns; the organization is found through the rows that carry it, then checked on the folded
line)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import (ColumnElement, CompoundSelect, Index, Integer, String, any_, bindparam, false, func, literal,
                        select, true, tuple_, union, union_all)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row

from .chain import audit_events, audit_rows

# The read indexes of migration 0005, declared with the conditions they serve so the models match the schema.
def _declare_read_indexes() -> None:
    intents = audit_rows.c.kind == "intent"
    for name, columns in (("intents_newest", ("at", "id")), ("intents_user_at", ("user", "at")),
                          ("intents_action_at", ("action", "at"))):
        Index(f"ix_audit_rows_{name}", *(audit_rows.c[column] for column in columns),
              postgresql_where=intents, sqlite_where=intents)


_declare_read_indexes()
Index("ix_audit_rows_organization_at", audit_rows.c.organization_id, audit_rows.c.at,
      postgresql_ops={"organization_id": "varchar_pattern_ops"})


@dataclass(frozen=True)
class AuditFilter:
    users: tuple[str, ...] = ()
    organization: str = ""
    actions: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None
    # "exact", or "prefix": the organization ids that start with it. A trailing "*" also means prefix.
    organization_match: str = "exact"

    def organization_filter(self) -> tuple[str, bool]:
        """The organization to match and whether as a prefix ("", False: no organization filter)."""
        value = self.organization.strip()
        prefix = self.organization_match == "prefix" or value.endswith("*")
        value = value.rstrip("*").strip()
        return value, prefix and bool(value)


@dataclass(frozen=True)
class AuditCursor:
    """Where a page ends: the (at, id) of its last line, as the store handed them back."""
    at: datetime
    id: int

    @classmethod
    def of(cls, row: Row[Any]) -> AuditCursor:
        return cls(row.at, int(row.id))


def conditions_for(filters: AuditFilter, dialect: str, after: AuditCursor | None = None,
                   upto: AuditCursor | None = None, candidates: Sequence[int] | None = None
                   ) -> list[ColumnElement[bool]]:
    """The filters, and the keyset bounds (older than `after`, no newer than `upto`), as conditions on the view
    (`dialect`: the store's, for the organization prefix). `candidates`: the intents `carriers_of` found for the
    organization filter, already read (None: found again by this query)."""
    view = audit_events
    conditions: list[ColumnElement[bool]] = [true()]
    since = _since(filters)
    if filters.users:
        conditions.append(view.c.user.in_(filters.users))
    if filters.actions:
        conditions.append(view.c.action.in_(filters.actions))
    if filters.outcomes:
        conditions.append(view.c.outcome.in_(filters.outcomes))
    if since is not None:
        conditions.append(view.c.at >= since)
    if filters.until:
        conditions.append(view.c.at < datetime.combine(filters.until + timedelta(days=1), time.min, timezone.utc))
    organization, prefix = filters.organization_filter()
    if "\x00" in organization:  # no id holds one, and PostgreSQL text can't
        conditions.append(false())
    elif organization:
        # The folded line must match too: the candidates are the intents whose rows carry it (`carriers_of`).
        conditions += [_among(view.c.id, candidates) if candidates is not None
                       else view.c.id.in_(carriers_of(filters, dialect)),
                       _matches(view.c.organization_id, organization, prefix, dialect)]
    if after is not None:
        conditions.append(tuple_(view.c.at, view.c.id) < tuple_(literal(after.at, audit_events.c.at.type),
                                                                 literal(after.id)))
    if upto is not None:
        conditions.append(tuple_(view.c.at, view.c.id) <= tuple_(literal(upto.at, audit_events.c.at.type),
                                                                  literal(upto.id)))
    return conditions


def _since(filters: AuditFilter) -> datetime | None:
    return datetime.combine(filters.since, time.min, timezone.utc) if filters.since else None


def carriers_of(filters: AuditFilter, dialect: str, distinct: bool = True) -> CompoundSelect | None:
    """The ids of the intents an organization filter can match (None: no organization filter). A line's
    organization is its latest outcome's, else the intent's: the candidates are the intents that carry it and
    the intents of outcome rows that do (an index range on each). An outcome is written after its intent, so
    `since` bounds both. `distinct=False`: an id may come twice, and a LIMIT stops the read early."""
    organization, prefix = filters.organization_filter()
    if not organization or "\x00" in organization:
        return None
    rows, since = audit_rows, _since(filters)
    carrying = ([_matches(rows.c.organization_id, organization, prefix, dialect)]
                + ([rows.c.at >= since] if since is not None else []))
    return (union if distinct else union_all)(
        select(rows.c.id).where(rows.c.kind == "intent", *carrying),
        select(rows.c.intent_id).where(rows.c.kind.in_(("outcome", "settled")), *carrying))


def _among(column: ColumnElement[int], ids: Sequence[int]) -> ColumnElement[bool]:
    """`column` is one of `ids`, as one PostgreSQL array parameter (`= ANY`): a list of thousands of
    parameters costs it more to plan than to run."""
    return column == any_(bindparam(None, list(ids), type_=postgresql.ARRAY(Integer)))


def _matches(column: ColumnElement[Any], organization: str, prefix: bool, dialect: str) -> ColumnElement[bool]:
    return _starts_with(column, organization, dialect) if prefix else column == organization


def _starts_with(column: ColumnElement[Any], prefix: str, dialect: str) -> ColumnElement[bool]:
    """`column` starts with `prefix`, taken literally (`%`, `_` and the escape character are escaped), in a
    form each store answers with an index range: LIKE 'prefix%' on PostgreSQL (its 0005 pattern index); on
    SQLite, whose LIKE ignores case and so skips the index, a range of the binary-ordered index, checked
    exactly by substr."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    # Inlined, not a parameter: a prepared statement's generic plan can't turn `LIKE $1` into a range.
    like = column.like(bindparam(None, escaped + "%", String(), literal_execute=True), escape="\\")
    ranged = ((column >= prefix) & (column < prefix + "\U0010ffff")
              & (func.substr(column, 1, len(prefix)) == prefix))
    return like if dialect == "postgresql" else ranged


def folds(filters: AuditFilter) -> bool:
    """Whether matching `filters` reads each line's latest outcome (its outcome and organization are the
    latest outcome row's), so every candidate line is folded whatever is asked of it."""
    return bool(filters.outcomes) or bool(filters.organization_filter()[0])
