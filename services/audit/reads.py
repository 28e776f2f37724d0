"""Reading the audit log: the Audit page's pages and counts, the export, a customer's unsettled writes, the choices
its filters offer. `AuditLog` (log.py) is these reads and the writes."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from datetime import datetime
from typing import Any, BinaryIO

import pandas as pd
from sqlalchemy import func, or_, select, text, union
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import SQLAlchemyError

from ..exports import SafeCsvWriter
from ..store import utc as _utc
from .chain import audit_events, audit_rows
from .filters import AuditCursor, AuditFilter, carriers_of, conditions_for, folds
from .lines import (AUDIT_COLUMNS, NEWEST_FIRST, PAGE_SIZE, AuditPage, AuditSummary, AuditUnreadable, frame_of,
                    lines_of, page_of)

# On PostgreSQL an organization filter's candidate intents are read once per page and handed to its reads as
# one array of ids, up to this many (more: each read finds them itself, as on SQLite).
READ_CANDIDATES_UP_TO = 100_000
EXPORT_BATCH = 5000  # lines per query of an export
DISTINCT_COLUMNS = ("user", "action")


class AuditReads:
    """The reads of the audit log in `engine`."""
    engine: Engine

    # The page and the export read through `conditions_for`: every filter as a condition on the view that PostgreSQL
    # pushes down to the intent rows and their 0005 indexes (time, user and action are the intent's own
    # columns; the organization is found through the rows that carry it, then checked on the folded line).
    def events(self, filters: AuditFilter | None = None, limit: int = 5000) -> pd.DataFrame:
        """One line per write attempt, newest first: the intent with its latest outcome (the view). At most
        `limit` lines: the page reads `page`, the download `export`, which have no cap."""
        view = audit_events
        conditions = conditions_for(filters or AuditFilter(), self.engine.dialect.name)
        query = select(view).where(*conditions).order_by(*NEWEST_FIRST).limit(limit)
        with self.engine.connect() as conn:
            return frame_of(conn.execute(query))

    def page(self, filters: AuditFilter | None = None, after: AuditCursor | None = None,
             size: int = PAGE_SIZE, upto: AuditCursor | None = None) -> AuditPage:
        """The `size` newest matching lines older than `after` (None: the first page), by keyset on (at, id):
        an index range however deep the page. `next` is the cursor for the page after it (None: the last)."""
        with self.engine.connect() as conn:
            return page_of(self._page_rows(conn, filters or AuditFilter(), after, upto, size), size)

    def summary_and_page(self, filters: AuditFilter | None = None, after: AuditCursor | None = None,
                         size: int = PAGE_SIZE, outcome_breakdown_up_to: int = 10_000
                         ) -> tuple[AuditSummary, AuditPage]:
        """What the Audit page shows: `summary` and `page(filters, after, size, upto=summary.newest)`, in fewer
        and cheaper reads. On the first page its top line *is* the newest match, so that needs no query of its
        own, and the count is bounded by it (the page and the count agree either way); an organization
        filter's candidates are read once for all the reads (`_candidates`). On a million events each read of
        a filter by organization folded every candidate again: most of a click's time (docs/performance.md)."""
        filters = filters or AuditFilter()
        with self.engine.connect() as conn:
            candidates = self._candidates(conn, filters)
            if after is None:  # the first page: its top line is the newest match
                rows = self._page_rows(conn, filters, None, None, size, candidates)
                top = AuditCursor.of(rows[0]) if rows else None
            else:
                top = self._newest(conn, filters, candidates)
                rows = self._page_rows(conn, filters, after, top, size, candidates) if top else []
            if top is None:
                return AuditSummary(0, {}, None), page_of(rows, size)
            summary = self._counted(conn, filters, top, outcome_breakdown_up_to, candidates)
        return summary, page_of(rows, size)

    def _candidates(self, conn: Connection, filters: AuditFilter) -> list[int] | None:
        """The intents an organization filter can match (`carriers_of`), read once for all of a page's reads:
        each read then looks them up by id. Found again by each read instead, PostgreSQL's plan walks every
        intent of the date range to join them (tens of ms a read on a million events). None: no organization
        filter, not PostgreSQL (SQLite plans the subquery well), or over READ_CANDIDATES_UP_TO."""
        carriers = carriers_of(filters, self.engine.dialect.name, distinct=False)
        if carriers is None or self.engine.dialect.name != "postgresql":
            return None
        # Not deduplicated by the store, so a filter with too many candidates costs a short read, not a full one.
        found = list(conn.execute(carriers.limit(READ_CANDIDATES_UP_TO + 1)).scalars())
        return sorted(set(found)) if len(found) <= READ_CANDIDATES_UP_TO else None

    def summary(self, filters: AuditFilter | None = None, outcome_breakdown_up_to: int = 10_000) -> AuditSummary:
        """How many lines match, the newest of them (the export's upper bound, so the file holds exactly the
        lines counted), and, when there are at most `outcome_breakdown_up_to`, how many of each outcome."""
        filters = filters or AuditFilter()
        with self.engine.connect() as conn:
            top = self._newest(conn, filters)
            if top is None:
                return AuditSummary(0, {}, None)
            return self._counted(conn, filters, top, outcome_breakdown_up_to)

    def _newest(self, conn: Connection, filters: AuditFilter,
                candidates: list[int] | None = None) -> AuditCursor | None:
        view = audit_events
        conditions = conditions_for(filters, self.engine.dialect.name, candidates=candidates)
        newest = conn.execute(select(view.c.at, view.c.id).where(*conditions).order_by(*NEWEST_FIRST)
                              .limit(1)).first()
        return None if newest is None else AuditCursor.of(newest)

    def _page_rows(self, conn: Connection, filters: AuditFilter, after: AuditCursor | None,
                   upto: AuditCursor | None, size: int, candidates: list[int] | None = None) -> list[Row[Any]]:
        """Up to `size` + 1 matching lines, newest first: the extra one says whether there is a next page."""
        conditions = conditions_for(filters, self.engine.dialect.name, after, upto, candidates)
        return list(conn.execute(select(audit_events).where(*conditions).order_by(*NEWEST_FIRST).limit(size + 1)))

    def _counted(self, conn: Connection, filters: AuditFilter, top: AuditCursor,
                 outcome_breakdown_up_to: int, candidates: list[int] | None = None) -> AuditSummary:
        """The summary of the lines matching `filters` no newer than `top` (the newest of them). Each outcome
        needs the line folded, so the outcomes are counted over a large match only if matching folds anyway."""
        view = audit_events
        bounded = conditions_for(filters, self.engine.dialect.name, upto=top, candidates=candidates)
        by_outcome = (select(view.c.outcome, func.count()).where(*bounded).group_by(view.c.outcome)
                      .order_by(func.count().desc(), view.c.outcome))
        if folds(filters):  # the fold is paid to match each line: count the outcomes in the same pass
            outcomes = {outcome: int(count) for outcome, count in conn.execute(by_outcome)}
            total = sum(outcomes.values())
            return AuditSummary(total, outcomes if total <= outcome_breakdown_up_to else None, top)
        # Nothing to fold to match: PostgreSQL counts the intents alone (it drops the outcome join).
        total = int(conn.execute(select(func.count()).select_from(view).where(*bounded)).scalar() or 0)
        if total > outcome_breakdown_up_to:
            return AuditSummary(total, None, top)
        return AuditSummary(total, {outcome: int(count) for outcome, count in conn.execute(by_outcome)}, top)

    def export(self, filters: AuditFilter | None, out: BinaryIO, upto: AuditCursor | None = None,
               batch: int = EXPORT_BATCH) -> int:
        """Writes every matching line (newest first, none newer than `upto`) to `out` as formula-safe CSV,
        `batch` lines per query (keyset on (at, id), each a short read), so memory holds one batch whatever
        the size. Returns how many lines it wrote."""
        filters = filters or AuditFilter()
        view = audit_events
        names = [column.name for column in view.columns]
        picks = [names.index(column) for column in AUDIT_COLUMNS]
        times = {AUDIT_COLUMNS.index("at"), AUDIT_COLUMNS.index("completed_at")}
        writer = SafeCsvWriter(out, AUDIT_COLUMNS)
        after: AuditCursor | None = None
        try:
            while True:
                with self.engine.connect() as conn:
                    conditions = conditions_for(filters, self.engine.dialect.name, after, upto)
                    rows = conn.execute(select(view).where(*conditions).order_by(*NEWEST_FIRST).limit(batch)).all()
                for row in rows:
                    writer.write([_utc(row[pick]) if index in times else row[pick]
                                  for index, pick in enumerate(picks)])
                if len(rows) < batch:
                    return writer.rows
                after = AuditCursor.of(rows[-1])
        finally:
            writer.close()

    def export_file(self, filters: AuditFilter | None, upto: AuditCursor | None = None) -> BinaryIO:
        """The export in a temporary file (deleted when closed), rewound: what a download hands over."""
        spool = tempfile.TemporaryFile()
        try:
            self.export(filters, spool, upto)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool

    def job_downloads(self, job_ids: Iterable[str], limit: int = 200) -> pd.DataFrame:
        """The downloads of these bulk jobs' results or summaries, newest first (a customer's history: which
        exports held it). Found among the download rows (an index range on the action) by the job they name."""
        job_ids = [job_id for job_id in job_ids if job_id and job_id.isalnum()]
        if not job_ids:
            return frame_of([])
        view = audit_events
        naming = or_(*(view.c.parameters.like(f'%"job": "{job_id}"%') for job_id in job_ids))
        query = (select(view).where(view.c.action == "download bulk lookup", naming)
                 .order_by(*NEWEST_FIRST).limit(limit))
        with self.engine.connect() as conn:
            return frame_of(conn.execute(query))

    def distinct(self, column: str) -> list[str]:
        """The values of an intent column (user, action) the filters can offer: a loose index scan (the
        next value after the last, each an index probe), not a pass over every row."""
        if column not in DISTINCT_COLUMNS:
            raise ValueError(f"no choices for {column!r}")
        quoted = self.engine.dialect.identifier_preparer.quote(column)
        walk = text(f"""WITH RECURSIVE v(value) AS (
                            SELECT min({quoted}) FROM audit_rows
                            UNION ALL
                            SELECT (SELECT min({quoted}) FROM audit_rows WHERE {quoted} > v.value) FROM v
                            WHERE v.value IS NOT NULL)
                        SELECT value FROM v WHERE value IS NOT NULL""")
        with self.engine.connect() as conn:
            return sorted(value for (value,) in conn.execute(walk) if value)

    def organization_version(self, organization_id: str) -> int | None:
        """The newest audit row about this organization: it changes whenever any console process records a
        write on it (intent, outcome, settlement), so a cached read keyed on it is never older than the last
        write another replica made. None when the store can't be read (reads then fall back to their TTL)."""
        try:
            with self.engine.connect() as conn:  # the organization index: a few rows per organization
                return conn.execute(select(func.max(audit_rows.c.id)).where(
                    audit_rows.c.organization_id == organization_id)).scalar() or 0
        except SQLAlchemyError:
            return None

    def count_since(self, user: str, action: str, since: datetime) -> int:
        """How many `action` events this person recorded since `since` (e.g. notes in the last hour); read through
        the (user, at) index of intents. AuditUnreadable when the store can't be read."""
        try:
            with self.engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(audit_rows).where(
                    (audit_rows.c.kind == "intent") & (audit_rows.c.user == user) & (audit_rows.c.at >= since)
                    & (audit_rows.c.action == action))).scalar() or 0)
        except SQLAlchemyError:
            raise AuditUnreadable() from None

    def unsettled(self, organization_id: str) -> list[dict[str, Any]]:
        """Writes on an organization whose outcome is unknown and not yet settled by a re-read, newest first."""
        rows = audit_rows
        # Found through the indexed organization of the rows that can say "unknown", then folded.
        candidates = union(
            select(rows.c.id).where((rows.c.organization_id == organization_id) & (rows.c.kind == "intent")
                                    & (rows.c.outcome == "unknown")),
            select(rows.c.intent_id).where((rows.c.organization_id == organization_id) & (rows.c.kind == "outcome")
                                           & (rows.c.outcome == "unknown")))
        view = audit_events
        with self.engine.connect() as conn:
            lines = lines_of(conn, conn.execute(candidates).scalars(), (view.c.organization_id == organization_id)
                             & (view.c.outcome == "unknown") & (view.c.settled == 0), newest_first=True)
            return [dict(line._mapping) for line in lines]
