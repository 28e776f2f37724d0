"""Searching the directory by whatever a person has: an id (whole or its start), an e-mail or part of it, part of a
name, misspelt or not.

In order, each kind of match ranked after the ones before it:
1. **exact**: the organization id or the customer id as typed;
2. **contains**: the folded text (ids, name, e-mail: services/directory/table.py `fold`) contains the folded query,
   newest-read first. A trigram index finds the matches on both stores (pg_trgm's GIN index on PostgreSQL, the FTS5
   trigram table on SQLite); a query shorter than a trigram (1-2 characters) matches only the start of an id,
   through the ids' own indexes. When more than `BROAD` match (the start of an id, a common word), sorting them all
   would cost more than the search: the newest-read index is walked instead, testing each row, up to a page or
   `WALKED_AT_MOST` rows;
3. **similar name**, only when nothing above matched (a name that contains what was typed is the better answer):
   names holding, for each word typed, a word one letter off it (a letter changed, added or missing), found
   through `directory_name_words`, then ranked by pg_trgm's word similarity (services/directory/similarity.py,
   the same on both stores), most similar first. Migration 0014 says why not pg_trgm's own `<%` (measured,
   docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal_column, or_, select, text
from sqlalchemy.engine import Connection

from .similarity import WORD, word_similarity
from .table import WORD_LETTERS, SEARCH_TABLE, directory_name_words, directory_organizations, fold, word_variants

EXACT, CONTAINS, SIMILAR = "exact", "contains", "similar name"
SIMILAR_NAME_AT_LEAST = 0.4  # word similarity a misspelt name must reach ("kestral" finds "Kestrel Labs")
SIMILAR_WORDS = 3  # for each word typed, the words most like it whose names are ranked
SIMILAR_TYPED_WORDS = 3  # the longest words typed that must each be matched
# More matches than this and the newest-read index is walked rather than every match sorted: walking finds a page
# of `limit` after about limit × rows ÷ matches rows, sorting costs about `matches`; at a million rows and a page
# of 20 the two meet near 4,500 (measured: docs/performance.md).
BROAD = 5000
NEWEST_TRIED_FIRST = 2000  # PostgreSQL: the newest reads tested before the index is probed (see `containing`)
# A broad search walks no further than this many of the newest reads; past them it takes the newest of the first
# `BROAD` matches the index gave (measured at a million: docs/performance.md).
WALKED_AT_MOST = 20_000
MAX_QUERY_CHARACTERS = 200

table = directory_organizations
NEWEST_FIRST = (table.c.last_read_at.desc(), table.c.id.desc())


@dataclass(frozen=True)
class Hit:
    organization_id: str
    kind: str  # EXACT, CONTAINS or SIMILAR
    score: float  # 1 for exact and contains; the word similarity of a similar name


def find(conn: Connection, query: str, limit: int) -> list[Hit]:
    """The organizations matching `query` (already trimmed, not empty), best first, at most `limit`."""
    folded = fold(query)
    hits: dict[str, Hit] = {}

    def take(found: Iterable[str], kind: str, score: float = 1.0) -> None:
        for organization_id in found:
            if organization_id not in hits and len(hits) < limit:
                hits[organization_id] = Hit(organization_id, kind, score)

    take(conn.execute(select(table.c.organization_id).where(
        or_(table.c.organization_id == query, table.c.customer_id == query))
        .order_by(*NEWEST_FIRST).limit(limit)).scalars(), EXACT)
    if len(hits) < limit and folded:
        take(containing(conn, [[folded]], limit), CONTAINS)
    if not hits:  # a typo's fallback: a name containing the text is the better answer
        for organization_id, score in _similar_names(conn, folded, limit):
            take([organization_id], SIMILAR, score)
    return list(hits.values())


def containing(conn: Connection, groups: Sequence[Sequence[str]], limit: int) -> list[str]:
    """The organizations whose folded text contains, for every group, one of its fragments (folded): newest read
    first, at most `limit`. A fragment shorter than a trigram matches the start of an id only."""
    groups = [group for group in groups if group]
    if not groups:
        return []
    if conn.dialect.name == "postgresql":
        # A GIN probe builds its whole bitmap before any LIMIT (25 ms for a word every sixteenth name holds, at a
        # million): the newest reads are tried first, and when they hold a page, that page is the answer.
        found = _newest_matching(conn, groups, limit, NEWEST_TRIED_FIRST)
        if len(found) == limit:
            return found
    probe = list(conn.execute(_indexed(conn, groups).limit(BROAD + 1)).scalars())
    if not probe:
        return []
    if len(probe) <= BROAD:
        return _newest_of(conn, probe, limit)
    # Broad: newest first along the index, each row tested, until a page is full, but never past the newest
    # `WALKED_AT_MOST` reads (thousands of matches that are all old would otherwise walk the whole directory).
    found = _newest_matching(conn, groups, limit, WALKED_AT_MOST)
    if len(found) < limit:  # every match within the walk's reach is in `found`: the rest from the probe's, newest first
        found += [organization_id for organization_id in _newest_of(conn, probe, limit)
                  if organization_id not in found][:limit - len(found)]
    return found


def _newest_of(conn: Connection, ids: Sequence[int], limit: int) -> list[str]:
    """The newest read of these rows, at most `limit`: the rows found by id, then sorted. The order is written so no
    index gives it (`coalesce`): a planner expecting the rows spread evenly would walk the newest-read index for
    them instead, reading the whole directory when they are all old (2 s at a million, docs/performance.md)."""
    return list(conn.execute(select(table.c.organization_id).where(table.c.id.in_(ids)).order_by(
        func.coalesce(table.c.last_read_at, table.c.last_read_at).desc(), table.c.id.desc()).limit(limit)).scalars())


def _newest_matching(conn: Connection, groups: Sequence[Sequence[str]], limit: int, window: int) -> list[str]:
    """The matches among the newest `window` reads, newest first, at most `limit`: the newest-read index walked,
    each row tested, stopping at a full page."""
    if conn.dialect.name == "postgresql":
        newest = select(table.c.id, table.c.organization_id, table.c.customer_id, table.c.search_text,
                        table.c.last_read_at).order_by(*NEWEST_FIRST).limit(window).subquery()
        return list(conn.execute(select(newest.c.organization_id).where(_every_group(conn, groups, newest))
                                 .order_by(newest.c.last_read_at.desc(), newest.c.id.desc()).limit(limit)).scalars())
    # SQLite sorts a subquery's rows again (its order isn't kept), so the whole window would be read: the walk stops
    # at the window's oldest read instead, found along the same index (it holds the row id: no table read).
    oldest = select(table.c.last_read_at).order_by(*NEWEST_FIRST).offset(window - 1).limit(1).scalar_subquery()
    return list(conn.execute(select(table.c.organization_id).where(
        _every_group(conn, groups, table), or_(oldest.is_(None), table.c.last_read_at >= oldest))
        .order_by(*NEWEST_FIRST).limit(limit)).scalars())


def _every_group(conn: Connection, groups: Sequence[Sequence[str]], rows: Any) -> ColumnElement[bool]:
    """Each row tested for every group (the directory's table, or a subquery of it), in a form no index answers."""
    return and_(*(or_(*(_each_row(conn, part, rows) for part in group)) for group in groups))


def _indexed(conn: Connection, groups: Sequence[Sequence[str]]) -> Select[Any]:
    """The ids of the matching rows, as the store's indexes find them (in no particular order)."""
    if conn.dialect.name == "postgresql" or any(len(part) < 3 for group in groups for part in group):
        return select(table.c.id).where(and_(*(or_(*(_indexed_part(conn, part) for part in group))
                                               for group in groups)))
    # SQLite: the FTS5 table itself, so a LIMIT stops it (an `id IN (…)` would gather every match first).
    phrase = " AND ".join("(" + " OR ".join(_phrase(part) for part in group) + ")" for group in groups)
    return select(literal_column("rowid")).select_from(text(SEARCH_TABLE)).where(
        text(f"{SEARCH_TABLE} MATCH :phrase").bindparams(phrase=phrase))


def _indexed_part(conn: Connection, part: str) -> ColumnElement[bool]:
    if len(part) < 3:  # shorter than a trigram: an index range on the ids
        return _starts_an_id(part)
    if conn.dialect.name == "postgresql":
        return table.c.search_text.like(f"%{_escaped(part)}%", escape="\\")
    return table.c.id.in_(select(literal_column("rowid")).select_from(text(SEARCH_TABLE)).where(
        text(f"{SEARCH_TABLE} MATCH :phrase").bindparams(phrase=_phrase(part))))


def _each_row(conn: Connection, folded: str, rows: Any = table) -> ColumnElement[bool]:
    """The same test for one row, in a form no index answers (so the newest-read index is the one walked)."""
    if len(folded) < 3:
        return _starts_an_id(folded, indexed=False, rows=rows)
    position = func.strpos if conn.dialect.name == "postgresql" else func.instr
    return position(rows.c.search_text, folded) > 0


def _starts_an_id(prefix: str, indexed: bool = True, rows: Any = table) -> ColumnElement[bool]:
    """The organization id or the customer id starts with `prefix`; `indexed=False`: written so that no index
    answers it (`|| ''`), for a walk along the newest-read index."""
    ids = (rows.c.organization_id, rows.c.customer_id)
    return or_(*(_starts(column if indexed else column.concat(""), prefix) for column in ids))


def _similar_names(conn: Connection, folded: str, limit: int) -> list[tuple[str, float]]:
    """Names holding, for each word typed, that word or one a letter off it (`directory_name_words`), ranked by
    word similarity to the whole text typed; a word typed that no name holds anything like is left out."""
    groups = []
    for typed in sorted(set(WORD.findall(folded)), key=len, reverse=True)[:SIMILAR_TYPED_WORDS]:
        if len(typed) < WORD_LETTERS[0]:
            groups.append([typed] if len(typed) >= 3 else [])  # too short to misspell: as typed
            continue
        known = conn.execute(select(directory_name_words.c.word).distinct().where(
            directory_name_words.c.variant.in_(sorted(word_variants(typed))))).scalars()
        alike = sorted(((word_similarity(typed, word), word) for word in known), key=lambda pair: (-pair[0], pair[1]))
        groups.append([word for score, word in alike if score >= SIMILAR_NAME_AT_LEAST][:SIMILAR_WORDS])
    candidates = containing(conn, groups, limit)  # measured: a page is enough to rank, and 4 pages cost 12 ms more
    if not candidates:
        return []
    rows = conn.execute(select(table.c.organization_id, table.c.name_key, table.c.last_read_at, table.c.id)
                        .where(table.c.organization_id.in_(candidates))).all()
    scored = [(row, word_similarity(folded, row.name_key)) for row in rows]
    scored = [(row, score) for row, score in scored if score >= SIMILAR_NAME_AT_LEAST]
    scored.sort(key=lambda item: (item[0].last_read_at, item[0].id), reverse=True)  # newest first among equals
    scored.sort(key=lambda item: item[1], reverse=True)  # a stable sort: most similar first
    return [(row.organization_id, score) for row, score in scored[:limit]]


def _phrase(value: str) -> str:
    """An FTS5 string: the value in double quotes, its own doubled (no operator in it is read)."""
    return '"' + value.replace('"', '""') + '"'


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _starts(column: object, prefix: str) -> object:
    return (column >= prefix) & (column < prefix + "\U0010ffff")  # type: ignore[operator]
