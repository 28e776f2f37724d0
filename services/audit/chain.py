"""The audit log's rows and their hash chain: append-only, each row sealed by the one before it.

Every write to the audit log is a new row in `audit_rows`, never an UPDATE: an intent (a write about to be
made, or a one-shot row such as a refusal), then rows linked to it by `intent_id`: another attempt with the
same idempotency key ("attempt"), how it ended ("outcome", including "unknown" when its console died) and a
person's re-read of an unknown outcome ("settled", naming the unknown row in `settles_id`). The view
`audit_events` (migration 0004) folds them back into one line per write attempt: the intent with its latest
outcome. `audit_events` below describes that view for queries; it is not part of the schema's metadata
(autogenerate must not try to create it as a table).

Each row stores `row_hash`, the HMAC-SHA256 of its canonical content under the console's audit key
(services/audit/keys.py; the key's id is part of the content), or for rows written before the store had a key, the
plain SHA-256 (`canonical`: every column but the hash, the previous row's hash included), and `prev_hash`, the
hash of the row before it in id order. Changing a row
breaks its own hash; removing one breaks the link of the next; and a row slipped in between is not the one
its successor chains onto. services/audit/verify.py walks the chain.

Appending is serialised (`append_lock`), so two processes can't both chain onto the same previous row: on
PostgreSQL an advisory lock held until the inserting transaction ends, on SQLite the database's write lock
taken up front (BEGIN IMMEDIATE). Ids are assigned under that lock too (the last id + 1), so id order is
append order, which is what the chain follows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from ..store import StoreError, metadata, write_transaction
from .keys import AuditKeys

# The `prev_hash` of the first row.
GENESIS = "0" * 64
# pg_advisory_xact_lock's key for "appending to the audit chain": any fixed 64-bit number, the same in every
# replica, and not the migration lock's (services/store/migrations.py).
APPEND_LOCK_KEY = int.from_bytes(b"auditlog", "big") >> 1
# How long an append waits for the lock on PostgreSQL before the write is refused (AuditUnavailable), like
# SQLite's busy timeout: a stuck holder must not hang every page that writes.
APPEND_LOCK_TIMEOUT = "5s"
SUPPORTED = ("sqlite", "postgresql")  # the stores whose append lock this module knows
KINDS = ("intent", "attempt", "outcome", "settled")

audit_rows = Table(
    "audit_rows", metadata,
    # Assigned under the append lock (last id + 1), never by a sequence: id order must be chain order.
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(10), nullable=False),  # one of KINDS
    Column("intent_id", Integer, index=True),  # the intent a linked row belongs to; None on an intent
    Column("settles_id", Integer),  # on a "settled" row: the unknown outcome row a person re-read
    Column("at", DateTime(timezone=True), nullable=False, index=True),  # when this row was written
    Column("environment", String(10)),  # sandbox, test or live: which money a row is about
    Column("user", String(100), nullable=False, index=True),
    Column("subject", String(255)),  # the identity provider's id for the person, with single sign-on
    Column("role", String(20), nullable=False),
    Column("action", String(50), nullable=False, index=True),
    Column("organization_id", String(120), index=True),
    Column("parameters", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("error", Text),
    Column("request_id", String(100)),
    Column("idempotency_key", String(255), unique=True),  # on intents only: one intent per key
    Column("attempts", Integer, nullable=False),  # an intent's own count (rows before 0004 counted in place)
    Column("boot_id", String(40), nullable=False),  # the console process that wrote the row
    Column("completed_at", DateTime(timezone=True)),
    Column("prev_hash", String(64), nullable=False),
    Column("row_hash", String(64), nullable=False),
    Column("key_id", String(16)),  # the audit key the hash is an HMAC under (services/audit/keys.py); None: SHA-256
)
COLUMNS = tuple(column.name for column in audit_rows.columns)
HASHED = tuple(name for name in COLUMNS if name != "row_hash")

# The view (migration 0004): one line per write attempt. Its own MetaData, so it is never created as a table.
audit_events = Table(
    "audit_events", MetaData(),
    Column("id", Integer, primary_key=True),  # the intent's id
    Column("at", DateTime(timezone=True)),
    Column("environment", String(10)),
    Column("user", String(100)),
    Column("subject", String(255)),
    Column("role", String(20)),
    Column("action", String(50)),
    Column("organization_id", String(120)),  # the latest outcome's (the API may name the real organization)
    Column("parameters", Text),  # with the result, once it succeeded
    Column("reason", Text),
    Column("outcome", String(20)),  # the latest outcome, or the intent's own ("pending", "denied")
    Column("error", Text),
    Column("request_id", String(100)),
    Column("idempotency_key", String(255)),
    Column("attempts", Integer),
    Column("boot_id", String(40)),  # the intent's process
    Column("completed_at", DateTime(timezone=True)),
    Column("settled", Integer),  # 1 when the latest outcome is a person's re-read of an unknown one
    Column("outcome_row_id", Integer),  # the row the latest outcome came from (None: the intent's own)
)


# --- the hash -----------------------------------------------------------------------------------------------
def canonical(values: Mapping[str, Any]) -> bytes:
    """A row's content as fixed bytes: a JSON object of every column but `row_hash`, keys sorted, no spaces,
    ASCII only, times as UTC ISO 8601 with microseconds. Columns holding NULL are left out, so a nullable
    column added by a later migration leaves the hashes of older rows valid.

    Frozen: the hashes of every stored row depend on it (migration 0004 sealed the older rows with it)."""
    get = (values if isinstance(values, dict) else dict(values)).get  # a plain dict: verify hashes millions
    content = {}
    for name in HASHED:
        value = get(name)
        if value is not None:
            content[name] = value if type(value) in (str, int) else _plain(value)
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


class UnknownAuditKey(KeyError):
    """A row signed with a key this console doesn't hold (its id is named, never the key)."""


def row_hash(values: Mapping[str, Any], keys: AuditKeys | None = None) -> str:
    """A keyed row's HMAC under the key it names; an unkeyed (pre-key) row's SHA-256."""
    identifier = values.get("key_id")
    if identifier is None:
        return hashlib.sha256(canonical(values)).hexdigest()
    if keys is None or not keys.knows(identifier):
        raise UnknownAuditKey(identifier)
    return keys.mac(identifier, canonical(values))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):  # SQLite hands times back naive; every stored time is UTC
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")
    if isinstance(value, (bool, int, str)):
        return value
    raise TypeError(f"audit rows hold no {type(value).__name__}")


# --- appending ----------------------------------------------------------------------------------------------
def require_supported(engine: Engine) -> None:
    """Refuses a store whose appends this module can't serialise: its chain would fork."""
    if engine.dialect.name not in SUPPORTED:
        raise StoreError(f"The audit log needs SQLite or PostgreSQL, not {engine.dialect.name}: its hash chain is "
                         f"appended to under a lock only those two are known to take.")


@contextlib.contextmanager
def append_lock(engine: Engine) -> Iterator[Connection]:
    """A transaction in which this process alone may append to the chain; committed when the block ends,
    rolled back if it raises. Whatever the block reads inside it is what the append will chain onto."""
    require_supported(engine)
    # SQLite: the database's write lock, taken before the last row is read (store.write_transaction), so two
    # appends can't both chain onto it. PostgreSQL: an advisory lock, released by the transaction's end, so a
    # crash or a lost connection can't leave it held.
    with write_transaction(engine) as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"SET LOCAL lock_timeout = '{APPEND_LOCK_TIMEOUT}'"))
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK_KEY})
        yield conn


CUT_OVER_ACTION = "audit key cut-over"


class NeedsCutOver(SQLAlchemyError):
    """A keyed row would chain onto an unkeyed one: the log was hashed without the key and must be cut over on
    purpose, once (`python -m services.audit cut-over`), or someone rewrote it without the key. An SQLAlchemyError,
    so every write path treats it as it treats a store it can't write: the write is refused, nothing is sent."""


def append(conn: Connection, values: Mapping[str, Any], keys: AuditKeys | None = None, cut_over: bool = False) -> int:
    """Appends one row, chained onto the last; returns its id. Call inside `append_lock`. `values` may leave
    out nullable columns; every column is hashed as it will read back. With `keys`, the row is signed with the
    current key (an HMAC naming it); without, it is a plain SHA-256 row (a store that has no key yet)."""
    unknown = set(values) - set(HASHED)
    if unknown:
        raise ValueError(f"not audit columns: {sorted(unknown)}")
    last = conn.execute(select(audit_rows.c.id, audit_rows.c.row_hash, audit_rows.c.key_id)
                        .order_by(audit_rows.c.id.desc()).limit(1)).first()
    if keys is not None and last is not None and last.key_id is None and not cut_over:
        raise NeedsCutOver(f"The audit log ends with unkeyed row {last.id}: run `python -m services.audit cut-over` "
                           "once if this store was hashed before it had a key; otherwise it was rewritten.")
    row: dict[str, Any] = {name: values.get(name) for name in HASHED}
    row["id"], row["prev_hash"] = (last.id + 1, last.row_hash) if last else (1, GENESIS)
    row["key_id"] = keys.current_id if keys is not None else None
    row["row_hash"] = row_hash(row, keys)
    conn.execute(audit_rows.insert().values(**row))
    return int(row["id"])


def cut_over(engine: Engine, keys: AuditKeys, boot_id: str, environment: str | None) -> int | None:
    """Once, for a store hashed before it had a key: one keyed cut-over row, chained onto the last unkeyed one
    (services/audit/keys.py). Returns its id, or None when the log is empty or already ends keyed."""
    with append_lock(engine) as conn:
        last = conn.execute(select(audit_rows.c.key_id).order_by(audit_rows.c.id.desc()).limit(1)).first()
        if last is None or last.key_id is not None:
            return None
        moment = datetime.now(timezone.utc)
        return append(conn, {"kind": "intent", "at": moment, "user": "billing-desk", "role": "system",
                             "action": CUT_OVER_ACTION, "parameters": json.dumps({"key_id": keys.current_id}),
                             "reason": "From this row on, every row's hash is an HMAC under the audit key.",
                             "outcome": "succeeded", "attempts": 1, "boot_id": boot_id, "completed_at": moment,
                             "environment": environment}, keys, cut_over=True)
