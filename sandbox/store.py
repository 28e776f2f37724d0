"""SQLite state of the sandbox: organizations, customers, subscriptions, sessions, invoices.

One connection guarded by a lock: the sandbox is a test twin on loopback, and serialising writes keeps
each API call atomic, which is what makes idempotency and "process twice" guarantees simple and true.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import string
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mailbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received_at TEXT NOT NULL, mail_from TEXT NOT NULL,
    rcpt_to TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS organizations (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY, organization_id TEXT NOT NULL UNIQUE REFERENCES organizations(id),
    email TEXT NOT NULL, name TEXT NOT NULL, address TEXT NOT NULL,
    card_brand TEXT, card_last4 TEXT, card_exp_month INTEGER, card_exp_year INTEGER);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY, organization_id TEXT NOT NULL REFERENCES organizations(id),
    customer_id TEXT NOT NULL, product_id TEXT NOT NULL, price_id TEXT NOT NULL, status TEXT NOT NULL,
    current_period_start TEXT NOT NULL, current_period_end TEXT NOT NULL,
    cancel_at_period_end INTEGER NOT NULL DEFAULT 0, canceled_at TEXT, trial_end TEXT,
    scheduled_product_id TEXT, scheduled_price_id TEXT, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS subscriptions_by_org ON subscriptions(organization_id, created_at);
CREATE TABLE IF NOT EXISTS invoices (
    id TEXT PRIMARY KEY, organization_id TEXT NOT NULL, subscription_id TEXT, amount INTEGER NOT NULL,
    currency TEXT NOT NULL, status TEXT NOT NULL, description TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS invoices_by_org ON invoices(organization_id, created_at);
CREATE TABLE IF NOT EXISTS checkout_sessions (
    id TEXT PRIMARY KEY, organization_id TEXT NOT NULL, product_id TEXT NOT NULL, price_id TEXT NOT NULL,
    success_url TEXT, cancel_url TEXT, status TEXT NOT NULL, payment_status TEXT NOT NULL,
    expires_at TEXT NOT NULL, subscription_id TEXT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS portal_sessions (
    id TEXT PRIMARY KEY, organization_id TEXT NOT NULL, expires_at TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
    key_scope TEXT NOT NULL, idempotency_key TEXT NOT NULL, fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL, body TEXT NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (key_scope, idempotency_key));
CREATE TABLE IF NOT EXISTS mutations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, operation TEXT NOT NULL,
    organization_id TEXT, idempotency_key TEXT);
"""

_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    """A Stripe-like id: `cus_`, `sub_`, `cs_test_`, `bps_`, `in_` followed by random alphanumerics."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Store:
    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(SCHEMA)
        self.lock = threading.RLock()

    def close(self) -> None:
        with self.lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Serialised, atomic unit of work: all of an API call's writes land, or none."""
        with self.lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        with self.lock:
            return self._conn.execute(sql, params).fetchone()

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self._conn.execute(sql, params).fetchall()

    # --- the test clock: real time shifted by a persisted offset ---------------------------------
    def clock_offset(self) -> timedelta:
        row = self.one("SELECT value FROM meta WHERE key = 'clock_offset_seconds'")
        return timedelta(seconds=float(row["value"])) if row else timedelta(0)

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.clock_offset()

    def set_clock_offset(self, conn: sqlite3.Connection, offset: timedelta) -> None:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('clock_offset_seconds', ?)",
                     (str(offset.total_seconds()),))

    def is_seeded(self) -> bool:
        return self.one("SELECT 1 FROM meta WHERE key = 'seeded'") is not None

    # --- reads used by several parts -------------------------------------------------------------
    def organization(self, organization_id: str) -> sqlite3.Row | None:
        return self.one("SELECT * FROM organizations WHERE id = ?", (organization_id,))

    def customer(self, organization_id: str) -> sqlite3.Row | None:
        return self.one("SELECT * FROM customers WHERE organization_id = ?", (organization_id,))

    def latest_subscription(self, organization_id: str) -> sqlite3.Row | None:
        return self.one("SELECT * FROM subscriptions WHERE organization_id = ? "
                        "ORDER BY created_at DESC, rowid DESC LIMIT 1", (organization_id,))

    def invoices(self, organization_id: str, limit: int = 12) -> list[sqlite3.Row]:
        return self.all("SELECT * FROM invoices WHERE organization_id = ? ORDER BY created_at DESC, rowid DESC "
                        "LIMIT ?", (organization_id, limit))

    def record_mutation(self, conn: sqlite3.Connection, operation: str, organization_id: str | None,
                        idempotency_key: str | None) -> None:
        conn.execute("INSERT INTO mutations (at, operation, organization_id, idempotency_key) VALUES (?,?,?,?)",
                     (iso(self.now()), operation, organization_id, idempotency_key))

    def mutations(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self.all("SELECT * FROM mutations ORDER BY seq")]

    # --- idempotency -------------------------------------------------------------------------------
    def stored_response(self, scope: str, key: str) -> sqlite3.Row | None:
        return self.one("SELECT * FROM idempotency WHERE key_scope = ? AND idempotency_key = ?", (scope, key))

    def store_response(self, conn: sqlite3.Connection, scope: str, key: str, fingerprint: str,
                       status: int, body: dict[str, Any]) -> None:
        conn.execute("INSERT INTO idempotency VALUES (?,?,?,?,?,?)",
                     (scope, key, fingerprint, status, json.dumps(body), iso(self.now())))
