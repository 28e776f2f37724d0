"""Watching the audit chain: the whole of it re-hashed on a schedule, the result kept, its head witnessed.

The Audit page's own check (services/audit/verify.py `incremental`) re-hashes only the rows added since the last
verified one, so a row rewritten *before* that point would go unseen by it. So, every `every` (default 15 minutes)
one process among all replicas and workers re-hashes the whole chain (`full_verification`): which process is
settled by the store, each run taking a slot of time whose number is unique in `audit_verifications`. The result
is a row there (when, how many rows, up to which row and hash, what was found), which the page shows beside its
own check; a log small enough to re-hash in about 200 ms is re-hashed on every opening of the page instead.

At each full verification the chain's head (last row id, hash, time) is written to the console's log and, when
one is configured (`BILLING_DESK_AUDIT_WITNESS`: a file path or an http(s) URL), to an append-only witness outside
the database. Cutting rows off the end of the log (and its checkpoint with them) leaves a shorter chain that
verifies; the witness still names the rows that were there: `python -m services.audit verify --witness FILE`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from typing import Any

import requests
from sqlalchemy import Column, DateTime, Integer, String, Table, Text, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..store import metadata, now, utc
from .chain import audit_rows
from .keys import AuditKeys
from .verify import ChainReport, Finding, incremental, save_checkpoint, verify

log = logging.getLogger("billing_desk.audit")

VERIFY_EVERY = timedelta(minutes=15)
# Re-hashed whole on every opening of the Audit page up to this many rows: ~170 ms on SQLite here (keyed, 2 cores;
# 20,000 rows took ~430 ms), docs/performance.md.
FULL_CHECK_UP_TO_ROWS = 8_000

audit_verifications = Table(
    "audit_verifications", metadata,
    Column("id", String(32), primary_key=True),  # a random id: no sequence to grant the console role
    Column("slot", Integer, unique=True),  # the scheduled run's slot of time: one process per slot
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("by", String(100), nullable=False),  # the process that ran it
    Column("rows", Integer),
    Column("last_id", Integer),
    Column("last_hash", String(64)),
    Column("ok", Integer),  # 1 verified, 0 findings, None still running (or its process died)
    Column("findings", Text),  # one line each
    Column("mac", String(80)),  # "key id:HMAC" of the row's content: a result only the console can write
)


def _content(values: dict[str, Any]) -> bytes:
    names = ("id", "slot", "started_at", "finished_at", "by", "rows", "last_id", "last_hash", "ok", "findings")
    return json.dumps({name: (values.get(name).isoformat() if isinstance(values.get(name), datetime)
                              else values.get(name)) for name in names}, sort_keys=True).encode()


def _sealed(values: dict[str, Any], keys: AuditKeys | None) -> str | None:
    return f"{keys.current_id}:{keys.mac(keys.current_id, _content(values))}" if keys is not None else None


def _seal_holds(values: dict[str, Any], keys: AuditKeys | None) -> bool:
    if keys is None:
        return True  # a console without a key (tests, scripts) can't tell: it takes what is stored
    identifier, _, value = str(values.get("mac") or "").partition(":")
    return keys.knows(identifier) and value == keys.mac(identifier, _content(values))


@dataclass(frozen=True)
class Verification:
    """One full verification, as stored."""
    started_at: datetime
    finished_at: datetime | None
    rows: int | None
    last_id: int | None
    ok: bool | None
    findings: tuple[str, ...]

    @property
    def sentence(self) -> str:
        when = f"{self.finished_at or self.started_at:%d %b %Y, %H:%M} UTC"
        if self.ok:
            return f"the whole chain was re-hashed at {when}: {self.rows or 0:,} rows up to #{self.last_id or 0} verify"
        if self.ok is None:
            return f"a full re-hash started at {when} has not finished"
        more = f" (and {len(self.findings) - 1} more)" if len(self.findings) > 1 else ""
        return f"the whole chain was re-hashed at {when} and does NOT verify: {self.findings[0]}{more}"


@dataclass(frozen=True)
class ChainStatus:
    """What the Audit page says about the chain: never "verified" for rows that were not re-hashed."""
    checked: ChainReport  # what was re-hashed for this answer: the whole chain, or the rows since the checkpoint
    whole_chain_now: bool  # True: `checked` is every row, re-hashed now
    last_full: Verification | None  # the newest scheduled full verification

    @property
    def ok(self) -> bool:
        return self.checked.ok and (self.whole_chain_now or self.last_full is None or self.last_full.ok is not False)

    @property
    def summary(self) -> str:
        if not self.checked.ok:
            return self.checked.summary
        if self.whole_chain_now:
            if not self.checked.rows:
                return "Audit chain verified: no rows yet."
            return (f"Audit chain verified: all {self.checked.rows:,} rows re-hashed just now, last "
                    f"#{self.checked.last_id}.")
        since = self.checked.since
        first = (since.last_id + 1) if since else 1
        added = (f"rows #{first}–#{self.checked.last_id}, added since the last check, verify"
                 if self.checked.last_id >= first else "no rows were added since the last check")
        full = (self.last_full.sentence if self.last_full else
                f"the whole chain has not been re-hashed yet (that runs every {int(VERIFY_EVERY.total_seconds() // 60)} "
                f"minutes)")
        return f"Audit chain: {added}; {full[0].upper() + full[1:]}."


def latest(engine: Engine, keys: AuditKeys | None = None) -> Verification | None:
    """The newest full verification the console itself recorded: a row not sealed with the audit key (written
    with database access alone, say dated in the future and claiming success) is passed over."""
    with engine.connect() as conn:
        rows = conn.execute(select(audit_verifications).where(audit_verifications.c.started_at <= now())
                            .order_by(audit_verifications.c.started_at.desc()).limit(50)).all()
    for row in rows:
        values = dict(row._mapping)
        values["started_at"], values["finished_at"] = utc(row.started_at), utc(row.finished_at)
        if _seal_holds(values, keys):
            return Verification(values["started_at"], values["finished_at"], row.rows, row.last_id,
                                None if row.ok is None else bool(row.ok),
                                tuple(filter(None, (row.findings or "").split("\n"))))
    return None


def status(engine: Engine, keys: AuditKeys | None) -> ChainStatus:
    """The page's answer: a small log is re-hashed whole; a large one, the rows since the checkpoint, with the
    newest scheduled full verification beside them."""
    with engine.connect() as conn:
        newest = conn.execute(select(func.max(audit_rows.c.id))).scalar() or 0
    if newest <= FULL_CHECK_UP_TO_ROWS:
        report = verify(engine, None, keys)
        save_checkpoint(engine, report, keys)
        return ChainStatus(report, True, None)
    return ChainStatus(incremental(engine, keys), False, latest(engine, keys))


# --- the full verification ---------------------------------------------------------------------------------------
def full_verification(engine: Engine, keys: AuditKeys | None, witness: Witness | None = None, by: str = "console",
                      slot: int | None = None) -> Verification | None:
    """Re-hashes the whole chain, holds it against a file witness, and stores the result (sealed with the key);
    None if another process of the console's holds this `slot` already."""
    started = now()
    record: dict[str, Any] = {"id": uuid.uuid4().hex, "slot": slot, "started_at": started, "by": by[:100]}
    try:
        with engine.begin() as conn:
            conn.execute(audit_verifications.insert().values(**record, mac=_sealed(record, keys)))
    except IntegrityError:
        with engine.connect() as conn:
            holder = conn.execute(select(audit_verifications).where(audit_verifications.c.slot == slot)).first()
        values = dict(holder._mapping) if holder is not None else {}
        values.update(started_at=utc(values.get("started_at")), finished_at=utc(values.get("finished_at")))
        if holder is not None and _seal_holds(values, keys):
            return None  # another replica or worker took this slot
        log.error("The audit verification slot %s is held by a row the console didn't write; verifying anyway.", slot)
        return full_verification(engine, keys, witness, by, None)
    report = verify(engine, None, keys)
    findings = [finding.line for finding in report.findings]
    if witness is not None:
        findings += [finding.line for finding in witness.held_against(engine)]
    record.update(finished_at=now(), rows=report.rows, last_id=report.last_id, last_hash=report.last_hash,
                  ok=0 if findings else 1, findings="\n".join(findings))
    with engine.begin() as conn:
        conn.execute(audit_verifications.update().where(audit_verifications.c.id == record["id"]).values(
            **{name: value for name, value in record.items() if name != "id"}, mac=_sealed(record, keys)))
    save_checkpoint(engine, report, keys)
    head = {"id": report.last_id, "hash": report.last_hash, "at": report.last_at.isoformat() if report.last_at else None,
            "rows": report.rows, "verified": not findings, "verified_at": started.isoformat()}
    (log.info if not findings else log.error)("Audit chain head %s (full verification: %s)", json.dumps(head),
                                              "verified" if not findings else "; ".join(findings[:3]))
    if witness is not None:
        witness.record(head)
    return Verification(started, record["finished_at"], report.rows, report.last_id, not findings, tuple(findings))


class Witness:
    """An append-only record of chain heads outside the database: a file (one JSON line each) or an http(s)
    endpoint that takes each head as a JSON POST."""

    def __init__(self, where: str) -> None:
        self.where = where

    @property
    def is_file(self) -> bool:
        return not self.where.startswith(("http://", "https://"))

    @property
    def shown(self) -> str:
        """Where it is, for the log: an endpoint's scheme and host only (a token in its address stays out)."""
        if self.is_file:
            return self.where
        parts = urlsplit(self.where)
        return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}/…"

    def held_against(self, engine: Engine) -> list[Finding]:
        """A file witness read back: every head it recorded must still be in the log (an endpoint is write-only
        from here; check it with `verify --witness` on a copy)."""
        if not self.is_file or not Path(self.where).exists():
            return []
        try:
            return held_against_witness(engine, Path(self.where).read_text(encoding="utf-8").splitlines())
        except (OSError, ValueError):
            log.error("The audit witness at %s could not be read back.", self.shown)
            return []

    def record(self, head: dict[str, Any]) -> None:
        try:
            if self.where.startswith(("http://", "https://")):
                requests.post(self.where, json=head, timeout=(3, 10)).raise_for_status()
            else:
                with Path(self.where).open("a", encoding="utf-8") as out:
                    out.write(json.dumps(head, sort_keys=True) + "\n")
        except (OSError, requests.RequestException) as problem:  # the verification stands; the head is in the log
            log.error("The audit witness at %s could not be written (%s)", self.shown, type(problem).__name__)


def held_against_witness(engine: Engine, lines: Iterable[str]) -> list[Finding]:
    """Each head the witness recorded must still be in the log with the same hash."""
    heads = [json.loads(line) for line in lines if line.strip()]
    findings: list[Finding] = []
    with engine.connect() as conn:
        newest = conn.execute(select(func.max(audit_rows.c.id))).scalar() or 0
        for head in heads:
            if not head.get("id"):
                continue
            stored = conn.execute(select(audit_rows.c.row_hash).where(audit_rows.c.id == head["id"])).scalar()
            if stored is None:
                findings.append(Finding(int(head["id"]), "removed", f"rows removed from the end: row {head['id']}, "
                                        f"witnessed on {head.get('verified_at', '?')[:19]}, is no longer in the log "
                                        f"(the log now ends at row {newest})"))
            elif stored != head.get("hash"):
                findings.append(Finding(int(head["id"]), "altered", f"row {head['id']} {'altered'}: its hash is not "
                                        f"the one witnessed on {head.get('verified_at', '?')[:19]}: the chain was "
                                        "recomputed"))
    return _first_each(findings)


def _first_each(findings: list[Finding]) -> list[Finding]:
    seen, kept = set(), []
    for finding in findings:
        if (finding.row_id, finding.problem) not in seen:
            seen.add((finding.row_id, finding.problem))
            kept.append(finding)
    return kept


# --- the schedule --------------------------------------------------------------------------------------------------
class VerificationSchedule:
    """A thread in each console and worker process; per slot of `every`, the one whose insert wins runs it."""

    def __init__(self, engine: Engine, keys: AuditKeys | None, every: timedelta = VERIFY_EVERY,
                 witness: Witness | None = None, by: str = "console") -> None:
        self.engine, self.keys, self.every, self.witness, self.by = engine, keys, every, witness, by
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> VerificationSchedule:
        self._thread = threading.Thread(target=self._run, name="audit-verification", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def run_due(self) -> Verification | None:
        """The current slot's run, if no process has taken it yet."""
        seconds = self.every.total_seconds()
        try:
            return full_verification(self.engine, self.keys, self.witness, self.by, int(time.time() // seconds))
        except SQLAlchemyError:
            log.warning("The scheduled audit verification could not reach the store; it runs at the next slot.")
            return None
        except Exception:  # the schedule must outlive any one run's failure
            log.exception("The scheduled audit verification failed; it runs again at the next slot.")
            return None

    def _run(self) -> None:
        seconds = self.every.total_seconds()
        while not self._stop.is_set():
            self.run_due()
            self._stop.wait(seconds - time.time() % seconds + 1)  # the start of the next slot
