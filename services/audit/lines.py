"""What a read of the audit log hands back: one line per write attempt (the `audit_events` view), in pages, and
the errors a page shows as one sentence."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, select
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import SQLAlchemyError

from ..store import utc as _utc
from .chain import audit_events
from .filters import AuditCursor

OUTCOMES = ("pending", "succeeded", "failed", "denied", "unknown")
AUDIT_COLUMNS = ["id", "at", "environment", "user", "subject", "role", "action", "organization_id", "parameters",
                 "reason", "outcome", "error", "request_id", "attempts", "completed_at"]
SETTLED_PREFIX = "Re-read by"  # a settled unknown outcome's note starts so (rows before 0004 are told by it)
PAGE_SIZE = 100  # lines per page of the Audit page
NEWEST_FIRST = (audit_events.c.at.desc(), audit_events.c.id.desc())


class AuditUnavailable(Exception):
    user_message = "The audit log can't be written right now, so nothing was changed. Try again shortly."


class AuditUnreadable(AuditUnavailable):
    """A read of the audit log failed (the store is down): the rest of the page still shows."""
    user_message = "The audit log can't be read right now (its database isn't answering). Try again shortly."


@contextmanager
def reading() -> Iterator[None]:
    """Around a read of the audit log: a store that isn't answering becomes one sentence, not a traceback."""
    try:
        yield
    except SQLAlchemyError:
        raise AuditUnreadable() from None


@dataclass(frozen=True)
class AuditPage:
    frame: pd.DataFrame
    next: AuditCursor | None  # the cursor of the page after this one; None: this is the last


@dataclass(frozen=True)
class AuditSummary:
    total: int
    outcomes: dict[str, int] | None  # lines per outcome; None when too many matched to fold them all
    newest: AuditCursor | None  # the newest matching line: the export goes no further


def page_of(rows: list[Row[Any]], size: int) -> AuditPage:
    """A page from up to `size` + 1 lines read newest first (`_page_rows`)."""
    more = len(rows) > size
    rows = rows[:size]
    return AuditPage(frame_of(rows), AuditCursor.of(rows[-1]) if more else None)


def frame_of(rows: Iterable[Row[Any]]) -> pd.DataFrame:
    frame = pd.DataFrame([dict(row._mapping) for row in rows],
                         columns=[column.name for column in audit_events.columns])[AUDIT_COLUMNS]
    for column in ("at", "completed_at"):
        frame[column] = pd.to_datetime(frame[column].map(_utc), utc=True)
    return frame


def approval_request_named(parameters: str | None) -> str | None:
    """The approval request an audit line is about (its parameters' "request"), if any."""
    try:
        value = json.loads(parameters or "{}").get("request")
    except (ValueError, AttributeError):
        return None
    return str(value) if value else None


def line_of(conn: Connection, event_id: int) -> Row[Any] | None:
    return conn.execute(select(audit_events).where(audit_events.c.id == event_id)).first()


def lines_of(conn: Connection, event_ids: Iterable[int], condition: ColumnElement[bool] | None = None,
             newest_first: bool = False) -> list[Row[Any]]:
    """The audit_events lines of these intents (that also meet `condition`), by id."""
    wanted = sorted(set(event_ids))
    if not wanted:
        return []
    query = select(audit_events).where(audit_events.c.id.in_(wanted))
    if condition is not None:
        query = query.where(condition)
    return list(conn.execute(query.order_by(audit_events.c.id.desc() if newest_first else audit_events.c.id)))


def json_text(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, default=str, ensure_ascii=False)
