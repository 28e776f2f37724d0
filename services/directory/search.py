"""Searching the directory by whatever a person has: an id (whole or its start), an e-mail or part of it, part of a
name, misspelt or not.

In order, each kind of match ranked after the ones before it:
1. **exact**: the organization id or the customer id as typed;
2. **contains**: the folded text (ids, name, e-mail: services/directory/table.py `fold`) contains the folded query,
   newest-read first. A trigram index answers it on both stores (pg_trgm's GIN index on PostgreSQL, the FTS5
   trigram table on SQLite), so it costs an index probe, not a scan; a query shorter than a trigram (1-2
   characters) matches only the start of an id, through the ids' own indexes;
3. **similar name**, only when nothing above matched (a name that contains what was typed is the better
   answer): names whose words are like the query's (a typo, a letter missing), most similar first: on
   PostgreSQL pg_trgm's word similarity (`<%`, through the same index); on SQLite the FTS5 table finds the names
   sharing the most trigrams with it and the same word similarity is computed here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Select, bindparam, func, literal_column, or_, select, text
from sqlalchemy.engine import Connection

from .table import SEARCH_TABLE, directory_organizations, fold

EXACT, CONTAINS, SIMILAR = "exact", "contains", "similar name"
SIMILAR_NAME_AT_LEAST = 0.4  # word similarity a misspelt name must reach ("kestral" finds "Kestrel Labs")
SIMILAR_CANDIDATES = 200  # names SQLite's trigram table proposes for the similarity to rank
MAX_QUERY_CHARACTERS = 200

table = directory_organizations


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
        .order_by(table.c.last_read_at.desc()).limit(limit)).scalars(), EXACT)
    if len(hits) < limit and folded:
        take(conn.execute(_containing(conn, folded, limit)).scalars(), CONTAINS)
    if not hits and len(folded) >= 3:  # a typo's fallback: a name containing the text is the better answer
        for organization_id, score in _similar_names(conn, folded, limit):
            take([organization_id], SIMILAR, score)
    return list(hits.values())


def _containing(conn: Connection, folded: str, limit: int) -> Select[tuple[str]]:
    query = select(table.c.organization_id).order_by(table.c.last_read_at.desc(), table.c.id.desc()).limit(limit)
    if len(folded) < 3:  # shorter than a trigram: the start of an id, an index range
        return query.where(or_(_starts(table.c.organization_id, folded), _starts(table.c.customer_id, folded)))
    if conn.dialect.name == "postgresql":
        return query.where(table.c.search_text.like(bindparam("pattern", f"%{_escaped(folded)}%"), escape="\\"))
    ids = select(literal_column("rowid")).select_from(text(SEARCH_TABLE)).where(
        text(f"{SEARCH_TABLE} MATCH :phrase").bindparams(phrase=_phrase(folded)))
    return query.where(table.c.id.in_(ids))


def _similar_names(conn: Connection, folded: str, limit: int) -> list[tuple[str, float]]:
    if conn.dialect.name == "postgresql":
        # `<%` is what the GIN index answers; its threshold is a setting, set for this transaction only.
        conn.execute(text("SELECT set_config('pg_trgm.word_similarity_threshold', :least, true)"),
                     {"least": str(SIMILAR_NAME_AT_LEAST)})
        similarity = func.word_similarity(folded, table.c.name_key)
        rows = conn.execute(
            select(table.c.organization_id, similarity)
            .where(text("CAST(:query AS text) <% directory_organizations.name_key").bindparams(query=folded))
            .order_by(similarity.desc(), table.c.last_read_at.desc()).limit(limit))
        return [(organization_id, float(score)) for organization_id, score in rows]
    grams = sorted(_trigrams(folded) - {gram for gram in _trigrams(folded) if " " in gram})
    if not grams:
        return []
    proposal = " OR ".join(_phrase(gram) for gram in grams)
    candidates = conn.execute(text(
        f"SELECT d.organization_id, d.name_key, d.last_read_at FROM {SEARCH_TABLE} s "
        f"JOIN directory_organizations d ON d.id = s.rowid WHERE {SEARCH_TABLE} MATCH :proposal "
        "ORDER BY s.rank LIMIT :candidates"), {"proposal": f"name_key : ({proposal})",
                                             "candidates": SIMILAR_CANDIDATES}).all()
    scored = [(row.organization_id, word_similarity(folded, row.name_key), str(row.last_read_at or ""))
              for row in candidates]
    scored = [item for item in scored if item[1] >= SIMILAR_NAME_AT_LEAST]
    scored.sort(key=lambda item: (-item[1], _descending(item[2])))
    return [(organization_id, score) for organization_id, score, _ in scored[:limit]]


def word_similarity(query: str, target: str) -> float:
    """pg_trgm's word similarity, for SQLite: over each run of the target's words as long as the query, the
    trigrams shared with the query as a share of both sets together; the best run's (1.0: the query is one of
    its words)."""
    wanted = _trigrams(query)
    words = target.split()
    if not wanted or not words:
        return 0.0
    span = max(1, len(query.split()))
    best = 0.0
    for start in range(len(words)):
        run = _trigrams(" ".join(words[start:start + span]))
        best = max(best, len(wanted & run) / len(wanted | run))
    return round(best, 4)


def _trigrams(text_: str) -> set[str]:
    """pg_trgm's trigrams: each word padded with two spaces before and one after."""
    grams: set[str] = set()
    for word in text_.split():
        padded = f"  {word} "
        grams.update(padded[index:index + 3] for index in range(len(padded) - 2))
    return grams


def _phrase(value: str) -> str:
    """An FTS5 string: the value in double quotes, its own doubled (no operator in it is read)."""
    return '"' + value.replace('"', '""') + '"'


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _starts(column: object, prefix: str) -> object:
    return (column >= prefix) & (column < prefix + "\U0010ffff")  # type: ignore[operator]


def _descending(moment: str) -> str:
    """A sort key that puts later ISO times first."""
    return "".join(chr(0x10FFFF - ord(character)) for character in moment)
