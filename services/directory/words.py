"""The words of the names kept for finding misspelt ones (services/directory/table.py `directory_name_words`):
added when a read brings a new name, removed when the last name holding one goes (forgotten, purged, or renamed):
a name that left the directory leaves nothing behind.

Keeping and removing words take one lock on PostgreSQL (a transaction-level advisory lock), so two processes
can't each think the other's organization still holds a word and both keep it, or remove a word a name just
read needs; SQLite's writers take turns anyway.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable

from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from .search import containing
from .table import directory_name_words, directory_organizations, name_words, word_variants

log = logging.getLogger("billing_desk.directory")
words = directory_name_words
organizations = directory_organizations
STILL_HELD_CHECKED = 50  # names containing a word looked at for holding it as a word
WORDS_LOCK = 0x5744_4952  # the advisory lock's key ("WDIR")


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WORDS_LOCK})


def changed(conn: Connection, name_key: str, before: str | None) -> None:
    """A name was just stored in place of `before` (None: a new organization): its new words are added, and the
    words of `before` that no kept name holds any more are removed."""
    if before == name_key:
        return
    _lock(conn)
    remember(conn, name_key)
    if before:
        forget(conn, [before], locked=True)


def remember(conn: Connection, name_key: str) -> None:
    """Adds the words of this (folded) name that aren't kept yet, with their variants."""
    held = name_words(name_key)
    if not held:
        return
    known = set(conn.execute(select(words.c.word).where(words.c.variant.in_(sorted(held)),
                                                        words.c.word == words.c.variant)).scalars())
    new = [{"variant": variant, "word": word}
           for word in sorted(held - known) for variant in sorted(word_variants(word))]
    if new:
        insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(words)
        conn.execute(insert.on_conflict_do_nothing(), new)


def forget(conn: Connection, name_keys: Iterable[str], locked: bool = False) -> int:
    """Removes the words of these names (already gone) that no name kept still holds; how many. A word still held
    by a name beyond the first `STILL_HELD_CHECKED` containing it is removed too: the next read of that name
    brings it back, and leaving a forgotten name's words behind is the worse mistake."""
    gone = set().union(*(name_words(name_key) for name_key in name_keys))
    if not gone:
        return 0
    if not locked:
        _lock(conn)
    removed = 0
    for word in sorted(gone):
        holders = containing(conn, [[word]], STILL_HELD_CHECKED)
        names = conn.execute(select(organizations.c.name_key).where(
            organizations.c.organization_id.in_(holders))).scalars() if holders else []
        if not any(word in name_words(name) for name in names):
            removed += conn.execute(words.delete().where(words.c.variant.in_(sorted(word_variants(word))),
                                                         words.c.word == word)).rowcount or 0
    return removed


class WordUpkeep:
    """Keeps the words of names just read in a thread of its own, after the read's upsert has committed, so a
    lookup doesn't wait for them (measured: a new name's words took a lookup's upsert past 2 ms on PostgreSQL,
    docs/performance.md). A name is taken only while its organization still holds it: a name queued just before
    its organization was forgotten or renamed again is not brought back. A full queue drops the change (logged):
    the words come with the organization's next read that changes its name, or its next import."""

    def __init__(self, engine: Engine, most_waiting: int = 10_000) -> None:
        self.engine = engine
        self._waiting: queue.Queue[tuple[str, str, str | None]] = queue.Queue(most_waiting)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def add(self, organization_id: str, name_key: str, before: str | None) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="directory-words", daemon=True)
                self._thread.start()
        try:
            self._waiting.put_nowait((organization_id, name_key, before))
        except queue.Full:
            log.warning("The directory's word upkeep is behind; the words of %s's name were not kept.",
                        organization_id)

    def settle(self) -> None:
        """Waits until every name queued so far is kept (tests; a process about to stop)."""
        self._waiting.join()

    def _run(self) -> None:
        while True:
            organization_id, name_key, before = self._waiting.get()
            try:
                with self.engine.begin() as conn:
                    _lock(conn)
                    held = conn.execute(select(organizations.c.name_key).where(
                        organizations.c.organization_id == organization_id)).scalar()
                    if held == name_key:
                        remember(conn, name_key)
                    if before and before != held:
                        forget(conn, [before], locked=True)
            except Exception:
                log.warning("The words of %s's name could not be kept.", organization_id, exc_info=True)
            finally:
                self._waiting.task_done()
