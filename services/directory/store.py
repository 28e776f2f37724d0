"""The directory in the store: noting every customer read, searching, forgetting, the retention purge."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, Row

from ..inputs import InputRefused
from ..payments.models import CustomerInfo
from ..store import now, utc
from .search import MAX_QUERY_CHARACTERS, Hit, find
from . import words
from .table import BULK_JOB, IMPORT, REFRESH, directory_organizations, row_of

log = logging.getLogger("billing_desk.directory")
table = directory_organizations
KEEP_UNREAD = timedelta(days=400)
PURGE_BATCH = 500  # an organization not read for this long is purged (docs/security.md)


NAME_KEY_OF = select(table.c.name_key).where(table.c.organization_id == bindparam("organization_id"))


def _upsert(dialect: str) -> Any:
    """A lookup's insert-or-update, built once: its values are bound per call and the columns an existing row
    takes are the ones offered (`excluded`), all but `first_read_at`. Building the statement per read (values
    and `set_` as literals) cost about 0.4 ms of Python on each lookup (docs/performance.md)."""
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    kept = {column.name: insert.excluded[column.name] for column in table.columns
            if column.name not in ("id", "first_read_at")}
    return insert.on_conflict_do_update(index_elements=[table.c.organization_id], set_=kept)


@dataclass(frozen=True)
class DirectoryEntry:
    """An organization as the console last read it."""
    organization_id: str
    customer_id: str | None
    name: str | None
    email: str | None
    plan: str | None
    status: str
    mrr_cents: int | None
    currency: str | None
    cancel_at_period_end: bool
    scheduled_plan: str | None
    period_end: datetime | None
    last_read_at: datetime
    last_read_by: str
    gone_at: datetime | None = None
    match: str = ""  # how a search found it: "exact", "contains", "similar name"

    @classmethod
    def of(cls, row: Row[Any], match: str = "") -> DirectoryEntry:
        return cls(row.organization_id, row.customer_id, row.name, row.email, row.plan, row.status, row.mrr_cents,
                   row.currency, bool(row.cancel_at_period_end), row.scheduled_plan, utc(row.period_end),
                   utc(row.last_read_at), row.last_read_by, utc(row.gone_at), match)  # type: ignore[arg-type]


class Directory:
    """The organizations the console has read, in `engine`'s store."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = now, words_in_background: bool = False) -> None:
        """`words_in_background`: the words of a name just read are kept by a thread after the read's upsert
        (services/directory/words.py `WordUpkeep`; what the console does), not in the read's own transaction."""
        self.engine, self.clock = engine, clock
        self.word_upkeep = words.WordUpkeep(engine) if words_in_background else None
        self._size: tuple[float, int] = (float("-inf"), 0)  # (when, how many): size() counts once a minute
        self._upsert = _upsert(engine.dialect.name)

    # --- what every customer read leaves here ---------------------------------------------------------------
    def note(self, customer: CustomerInfo, read_by: str) -> bool:
        """Records a customer as just read (one upsert). A read must never fail for the directory's sake: a store
        that can't take it is logged and the read goes on. Returns whether it was recorded.

        The daily refresh only brings known rows up to date: it never adds one (an organization forgotten or
        purged since the refresh was queued stays out) and it doesn't count as use, so an organization nobody
        reads still leaves at the end of its retention."""
        try:
            moment = self.clock()
            values = row_of(customer, read_by, moment)
            name_key = values["name_key"]
            with self.engine.begin() as conn:
                # The name it replaces (None: a new organization): the words kept for misspellings follow it.
                before = conn.execute(NAME_KEY_OF, {"organization_id": customer.organization_id}).scalar()
                if read_by == REFRESH:
                    if before is None or not conn.execute(update(table).where(
                            table.c.organization_id == customer.organization_id).values(**values)).rowcount:
                        return False
                else:
                    conn.execute(self._upsert, {**values, "last_used_at": moment, "first_read_at": moment})
                if self.word_upkeep is None:
                    words.changed(conn, name_key, before)
            if self.word_upkeep is not None and before != name_key:
                self.word_upkeep.add(customer.organization_id, name_key, before)
            return True
        except Exception:
            log.warning("The directory could not record a read of %s.", customer.organization_id, exc_info=True)
            return False

    def note_gone(self, organization_id: str, read_by: str) -> None:
        """The API said this organization doesn't exist: a known one is marked gone (an unknown one isn't added)."""
        try:
            moment = self.clock()
            used = {} if read_by == REFRESH else {"last_used_at": moment}
            with self.engine.begin() as conn:
                conn.execute(update(table).where(table.c.organization_id == organization_id).values(
                    gone_at=moment, last_read_at=moment, last_read_by=read_by, **used))
        except Exception:
            log.warning("The directory could not mark %s gone.", organization_id, exc_info=True)

    def note_job_read(self, kind: str, organization_id: str, customer: CustomerInfo | None) -> None:
        """A job worker's read (services/jobs/worker.py `on_read`): an import's, or a person's bulk lookup's."""
        read_by = {"import": IMPORT, "refresh": REFRESH}.get(kind, BULK_JOB)
        if customer is None:
            self.note_gone(organization_id, read_by)
        else:
            self.note(customer, read_by)

    # --- reading it -----------------------------------------------------------------------------------------
    def search(self, query: str, limit: int = 20) -> list[DirectoryEntry]:
        """The best matches for whatever a person typed (services/directory/search.py), best first."""
        query = " ".join((query or "").split())
        if not query:
            raise InputRefused("search", "Type an organization id, a customer id, an e-mail or part of a name.")
        if len(query) > MAX_QUERY_CHARACTERS:
            raise InputRefused("search", f"A search takes at most {MAX_QUERY_CHARACTERS} characters; this one has "
                                         f"{len(query):,}.")
        if "\x00" in query:
            raise InputRefused("search", "The search holds a character no name or id has; type it again.")
        with self.engine.connect() as conn:  # the hits and their rows in one snapshot of the store
            hits = find(conn, query, limit)
            rows = {row.organization_id: row for row in conn.execute(select(table).where(
                table.c.organization_id.in_([hit.organization_id for hit in hits])))} if hits else {}
        return [DirectoryEntry.of(rows[hit.organization_id], hit.kind) for hit in hits
                if hit.organization_id in rows]

    def entry(self, organization_id: str) -> DirectoryEntry | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(table).where(table.c.organization_id == organization_id)).first()
        return DirectoryEntry.of(row) if row is not None else None

    def size(self, max_age: float = 60.0) -> int:
        """How many organizations it holds, counted at most `max_age` seconds ago: a count of a million rows takes
        tens of milliseconds, and the Customer page shows it on every run (docs/performance.md)."""
        counted_at, counted = self._size
        if time.monotonic() - counted_at <= max_age:
            return counted
        with self.engine.connect() as conn:
            counted = int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)
        if max_age > 0:  # an exact count asked for (max_age=0) isn't kept for the page's count
            self._size = (time.monotonic(), counted)
        return counted

    def organization_ids(self, batch: int = 1000) -> Iterator[str]:
        """Every organization id, in batches (keyset on the id): what a refresh re-reads."""
        after = ""
        while True:
            with self.engine.connect() as conn:
                found = list(conn.execute(select(table.c.organization_id).where(table.c.organization_id > after)
                                          .order_by(table.c.organization_id).limit(batch)).scalars())
            yield from found
            if len(found) < batch:
                return
            after = found[-1]

    def entries(self, batch: int = 1000) -> Iterator[DirectoryEntry]:
        """Every entry, by organization id, in batches: what an export writes."""
        after = ""
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(select(table).where(table.c.organization_id > after)
                                    .order_by(table.c.organization_id).limit(batch)).all()
            yield from (DirectoryEntry.of(row) for row in rows)
            if len(rows) < batch:
                return
            after = rows[-1].organization_id

    # --- privacy ----------------------------------------------------------------------------------------------
    def forget(self, organization_id: str) -> bool:
        """Removes one organization (it comes back only if read again); whether there was one."""
        with self.engine.begin() as conn:
            names = list(conn.execute(delete(table).where(table.c.organization_id == organization_id)
                                      .returning(table.c.name_key)).scalars())
            words.forget(conn, names)
        self._size = (float("-inf"), 0)
        return bool(names)

    def purge(self, not_read_for: timedelta = KEEP_UNREAD) -> int:
        """Removes every organization no person's work has read for `not_read_for` (the daily refresh doesn't
        count); how many."""
        if not_read_for <= timedelta(0):
            raise ValueError("The retention must be at least a day.")
        cutoff, removed = self.clock() - not_read_for, 0
        while True:  # a few hundred at a time: each batch a short transaction, so reads noted meanwhile don't wait
            with self.engine.begin() as conn:
                batch = select(table.c.id).where(table.c.last_used_at < cutoff).limit(PURGE_BATCH)
                names = list(conn.execute(delete(table).where(table.c.id.in_(batch))
                                          .returning(table.c.name_key)).scalars())
                words.forget(conn, names)
            removed += len(names)
            if len(names) < PURGE_BATCH:
                break
        self._size = (float("-inf"), 0)
        return removed

    def keep_purging(self, not_read_for: timedelta = KEEP_UNREAD, every: timedelta = timedelta(hours=6)
                     ) -> threading.Thread:
        """The retention purge now and every `every`, in a daemon thread (any replica may run it: a delete of
        what is past the limit is the same whoever runs it)."""
        def purge_forever() -> None:
            while True:
                try:
                    if removed := self.purge(not_read_for):
                        log.info("Removed %d organizations not read for %d days from the directory.", removed,
                                 not_read_for.days)
                except Exception:
                    log.warning("The directory's retention purge failed; it runs again later.", exc_info=True)
                time.sleep(every.total_seconds())

        thread = threading.Thread(target=purge_forever, name="directory-retention", daemon=True)
        thread.start()
        return thread


__all__ = ["Directory", "DirectoryEntry", "Hit", "KEEP_UNREAD"]
