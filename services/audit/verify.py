"""Verifying the audit chain (services/audit/chain.py): the whole of it, or only what was added since the last
verified row (the schedule and the witness: services/audit/watch.py; `python -m services.audit verify`:
services/audit/command.py).

The walk goes through the rows in id order, a page at a time, and names each break it finds, one line each:
- a row **altered**: its content no longer matches its hash (its successor still chains onto it);
- rows **removed**: a row chains onto a hash no row in the log has, so what stood between it and the row
  before it is gone;
- a row **inserted**: it is not the row its successor chains onto (that one chains past it onto the row
  before), or its hash and its link are both wrong.
With the console's audit key (services/audit/keys.py) the hashes are HMACs the database can't recompute: every
row after the first keyed one (the cut-over) must be keyed, and with a key configured the newest row must be
too, so a chain recomputed with plain SHA-256 by someone with only database access is caught. Rows cut off the
end leave a valid, shorter chain: the witness (services/audit/watch.py) catches that.

Verified progress is remembered in `audit_chain_checkpoints` (the last verified id and hash, how many rows,
when), so the Audit page re-hashes only the rows added since, and every replica and restart shares it; on top
of that each AuditLog keeps its last answer in memory for a few seconds (AuditLog.chain_status). The page's
check also re-hashes the checkpoint row itself, so rewriting or truncating the log up to it shows. The full
walk, which re-hashes everything, runs on a schedule (services/audit/watch.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, Integer, String, Table, func, select, update
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from ..store import metadata, now, utc
from .chain import CUT_OVER_ACTION, GENESIS, UnknownAuditKey, audit_rows, row_hash
from .keys import AuditKeys

PAGE = 5000  # rows read per query: memory stays flat however long the log is
CHECKPOINT = "verified"

audit_chain_checkpoints = Table(
    "audit_chain_checkpoints", metadata,
    Column("name", String(20), primary_key=True),  # "verified": the chain is sound up to last_id
    Column("last_id", Integer, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("rows", Integer, nullable=False),  # rows in the chain up to last_id
    Column("last_at", DateTime(timezone=True)),  # when that row was written
    Column("verified_at", DateTime(timezone=True), nullable=False),
    Column("mac", String(80)),  # "key id:HMAC" of last_id, last_hash and rows: a checkpoint only the console makes
)


@dataclass(frozen=True)
class Finding:
    row_id: int  # the first row the problem shows at
    problem: str  # "altered", "removed" or "inserted"
    line: str  # what the command prints and the page shows


def _finding(row_id: int, problem: str, detail: str) -> Finding:
    where = f"rows removed before row {row_id}" if problem == "removed" else f"row {row_id} {problem}"
    return Finding(row_id, problem, f"{where}: {detail}")


@dataclass(frozen=True)
class Checkpoint:
    last_id: int
    last_hash: str
    rows: int
    last_at: datetime | None
    verified_at: datetime
    mac: str | None = None

    def sealed(self, keys: AuditKeys) -> str:
        return f"{keys.current_id}:{keys.mac(keys.current_id, self._content)}"

    def seal_holds(self, keys: AuditKeys) -> bool:
        identifier, _, value = (self.mac or "").partition(":")
        return keys.knows(identifier) and value == keys.mac(identifier, self._content)

    @property
    def _content(self) -> bytes:
        return f"{self.last_id}:{self.last_hash}:{self.rows}".encode()


@dataclass(frozen=True)
class ChainReport:
    rows: int  # rows in the chain (those before a checkpoint counted from it)
    last_id: int
    last_hash: str
    last_at: datetime | None
    findings: tuple[Finding, ...]
    since: Checkpoint | None  # the checkpoint the walk started from; None: from the first row

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def summary(self) -> str:
        """One sentence for the page and the command."""
        if not self.ok:
            first = self.findings[0]
            more = f" (and {len(self.findings) - 1} more)" if len(self.findings) > 1 else ""
            return f"Audit chain does not verify: {first.line}{more}."
        if not self.rows:
            return "Audit chain verified: no rows yet."
        when = f" at {self.last_at:%Y-%m-%d %H:%M:%S} UTC" if self.last_at else ""
        return f"Audit chain verified: {self.rows:,} rows, last #{self.last_id}{when}."


@dataclass
class _Link:
    """The last row accepted into the chain: what the next row must chain onto."""
    id: int
    hash: str


def verify(engine: Engine, since: Checkpoint | None = None, keys: AuditKeys | None = None) -> ChainReport:
    """Walks the chain from the first row, or only past `since` (after re-hashing that row). A full walk also
    holds the log against the stored checkpoint, which catches a log truncated or rewritten up to it. `keys`: the
    console's audit keys; without them keyed rows can't be checked (each is named)."""
    with engine.connect() as conn:
        findings: list[Finding] = []
        if since is not None:
            findings += _check_checkpoint_row(conn, since, keys)
        link = _Link(since.last_id, since.last_hash) if since else _Link(0, GENESIS)
        count, last_at = (since.rows, since.last_at) if since else (0, None)
        keyed_from: int | None = None
        newest = previous = None
        rows = _rows_after(conn, link.id)
        current = next(rows, None)
        while current is not None:
            following = next(rows, None)
            finding, accepted = _judge(conn, current, following, link, keys)
            if finding:
                findings.append(finding)
            if (current.key_id is not None and previous is not None and previous.key_id is None
                    and current.action != CUT_OVER_ACTION):
                findings.append(_finding(current.id, "inserted", f"a keyed row chained onto unkeyed row {previous.id} "
                                                                 "is not the cut-over row: the log before it was "
                                                                 "rewritten without the key"))
            if current.key_id is not None and keyed_from is None:
                keyed_from = current.id
            elif current.key_id is None and keyed_from is not None:
                findings.append(_finding(current.id, "altered", f"it has no key after the cut-over to keyed hashes "
                                                                f"at row {keyed_from}: written without the console"))
            if accepted:
                link = _Link(current.id, current.row_hash)
            count, last_at, newest, previous = count + 1, utc(current.at), current, current
            current = following
        if keys is not None and newest is not None and newest.key_id is None:
            findings.append(_finding(newest.id, "altered", "the newest row has no key although the console has one: "
                                                           "either the store predates the key and needs `python -m "
                                                           "services.audit cut-over` once, or the chain was "
                                                           "recomputed without the key"))
        if since is None:
            stored = read_checkpoint(conn)
            if stored is not None:
                findings += _check_checkpoint_row(conn, stored, keys)
    return ChainReport(count, link.id, link.hash, last_at, tuple(findings), since)


def _rows_after(conn: Connection, after: int) -> Iterator[Row[Any]]:
    while True:
        page = conn.execute(select(audit_rows).where(audit_rows.c.id > after).order_by(audit_rows.c.id)
                            .limit(PAGE)).all()
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1].id


def _content_ok(row: Row[Any], keys: AuditKeys | None) -> bool | str:
    """True or False: whether the row's content matches its hash; a sentence when it can't be told."""
    try:
        return row_hash(row._asdict(), keys) == row.row_hash
    except UnknownAuditKey:
        return (f"it is signed with audit key {row.key_id}, which this console doesn't hold (list it in "
                "BILLING_DESK_AUDIT_OLD_KEYS)") if keys is not None else \
            "it is signed with an audit key: give the console's key (BILLING_DESK_AUDIT_KEY) to check it"


def _judge(conn: Connection, row: Row[Any], following: Row[Any] | None, link: _Link,
           keys: AuditKeys | None = None) -> tuple[Finding | None, bool]:
    """What is wrong with `row`, if anything, given the chain so far (`link`) and the row after it; and
    whether the chain goes on from it (an inserted row is stepped over: its successor chains past it)."""
    content_ok = _content_ok(row, keys)
    if isinstance(content_ok, str):
        return _finding(row.id, "unchecked", content_ok), row.prev_hash == link.hash
    link_ok = row.prev_hash == link.hash
    skipped = following is not None and following.prev_hash == link.hash and following.prev_hash != row.row_hash
    if content_ok and link_ok:
        return None, True
    if link_ok:  # its content changed, or it was slipped in with the right link but not chained onto
        if skipped and following is not None:
            return _finding(row.id, "inserted", f"row {following.id} chains past it onto row {link.id}"), False
        return _finding(row.id, "altered", "its content no longer matches its hash"), True
    if not content_ok:
        return _finding(row.id, "inserted", f"neither its content matches its hash nor does it chain onto row "
                                            f"{link.id}"), not skipped
    chained_onto = _id_with_hash(conn, row.prev_hash)
    if chained_onto is not None and chained_onto < link.id:
        first = conn.execute(select(func.min(audit_rows.c.id)).where(audit_rows.c.id > chained_onto)).scalar_one()
        return _finding(first, "inserted", f"row {row.id} chains onto row {chained_onto}, past it"), True
    return _finding(row.id, "removed", f"it chains onto a row that is no longer in the log (the row before it is "
                                       f"now {link.id or 'none'})"), True


def _id_with_hash(conn: Connection, wanted: str) -> int | None:
    """Which row has this hash (0: the chain's start). Only asked when a link breaks: a scan is fine."""
    if wanted == GENESIS:
        return 0
    return conn.execute(select(func.min(audit_rows.c.id)).where(audit_rows.c.row_hash == wanted)).scalar_one()


def _check_checkpoint_row(conn: Connection, checkpoint: Checkpoint, keys: AuditKeys | None = None) -> list[Finding]:
    row = conn.execute(select(audit_rows).where(audit_rows.c.id == checkpoint.last_id)).first()
    verified = f"verified at {checkpoint.verified_at:%Y-%m-%d %H:%M:%S} UTC"
    if row is None:
        return [Finding(checkpoint.last_id, "removed", f"rows removed from the end: row {checkpoint.last_id}, "
                                                       f"{verified}, is no longer in the log")]
    # A checkpoint naming a keyed row is sealed with the key: one written with database access alone is not.
    if keys is not None and row.key_id is not None and not checkpoint.seal_holds(keys):
        return [_finding(row.id, "altered", "the record of verified rows naming it was not written by the console "
                                            "(it carries no valid seal of the audit key)")]
    if row.row_hash != checkpoint.last_hash:
        return [_finding(row.id, "altered", f"its hash is not the one {verified}: the chain was recomputed")]
    content_ok = _content_ok(row, keys)
    if isinstance(content_ok, str):
        return [_finding(row.id, "unchecked", content_ok)]
    if not content_ok:
        return [_finding(row.id, "altered", "its content no longer matches its hash")]
    return []


# --- the checkpoint ----------------------------------------------------------------------------------------
def read_checkpoint(conn: Connection) -> Checkpoint | None:
    row = conn.execute(select(audit_chain_checkpoints).where(audit_chain_checkpoints.c.name == CHECKPOINT)).first()
    if row is None:
        return None
    return Checkpoint(row.last_id, row.last_hash, row.rows, utc(row.last_at), utc(row.verified_at) or now(),
                      row.mac)


def save_checkpoint(engine: Engine, report: ChainReport, keys: AuditKeys | None = None) -> None:
    """Remembers a clean report's last row, only ever moving forward (replicas verify concurrently), sealed with
    the audit key when there is one."""
    if not report.ok or not report.last_id:
        return
    checkpoint = Checkpoint(report.last_id, report.last_hash, report.rows, report.last_at, now())
    values = {"last_id": report.last_id, "last_hash": report.last_hash, "rows": report.rows,
              "last_at": report.last_at, "verified_at": checkpoint.verified_at,
              "mac": checkpoint.sealed(keys) if keys is not None else None}
    table = audit_chain_checkpoints
    try:
        with engine.begin() as conn:
            if conn.execute(update(table).where((table.c.name == CHECKPOINT) & (table.c.last_id < report.last_id))
                            .values(**values)).rowcount:
                return
            if read_checkpoint(conn) is None:
                conn.execute(table.insert().values(name=CHECKPOINT, **values))
    except IntegrityError:
        pass  # another replica saved it first


def incremental(engine: Engine, keys: AuditKeys | None = None) -> ChainReport:
    """The page's check: the rows added since the checkpoint (all of them the first time), then the
    checkpoint moved to the end if they verify."""
    with engine.connect() as conn:
        since = read_checkpoint(conn)
    report = verify(engine, since, keys)
    save_checkpoint(engine, report, keys)
    return report
