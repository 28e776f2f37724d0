"""The audit log is append-only and hash-chained (services/audit/chain.py, verify.py, migration 0004): a
clean log verifies; a row altered, removed or forged by hand with raw SQL is named; appends racing from several
processes still make one chain; the store refuses UPDATE and DELETE; the desk's writes read back as before.
Every test runs on SQLite and on PostgreSQL (`store_url`)."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from streamlit.testing.v1 import AppTest

from sandbox import RunningSandbox
from sandbox.control_client import SandboxControl
from sandbox.settings import new_test_key
from services.audit import AuditLog, audit_rows
from services.audit.chain import GENESIS, row_hash
from services.audit import watch as audit_watch
from services.audit.command import main as verify_command
from services.audit.verify import verify
from services.auth.roles import Actor, Role
from services.revenue import take_snapshot
from services.directory import Directory
from services.desk import BillingDesk, WriteOutcomeUnknown
from services.payments.client import PaymentsClient
from services.auth.throttle import LoginThrottle
from services.store.leases import ConsoleLease
from services.jobs.store import JobStore
from services.payments.models import CustomerInfo
from services.store import (alembic_config, grant_console, head_revision, migration_lock, open_store, store_engine,
                            upgrade)
from tests.support.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[1]
FINANCE = Actor("fay", Role.FINANCE)


@pytest.fixture
def audit(store_url: str) -> Iterator[AuditLog]:
    log = AuditLog(store_url, boot_id="console-a")
    yield log
    log.engine.dispose()


def _write(audit: AuditLog, key: str, outcome: str | None = "succeeded", organization_id: str = "org_abc123") -> int:
    event_id = audit.begin(user="fay", role="finance", action="cancel subscription", organization_id=organization_id,
                           parameters={}, reason=f"ticket {key}", idempotency_key=key)
    if outcome:
        audit.complete(event_id, outcome, request_id=f"req_{key}")
    return event_id


def _log_of_ten_rows(audit: AuditLog) -> None:
    for n in range(5):
        _write(audit, f"k{n}")


def _by_hand(engine: Engine, statement: str, **parameters: Any) -> None:
    """Raw SQL past the append-only triggers: on PostgreSQL as the superuser, who can disable them (the attack
    the chain is there to catch); on SQLite whoever holds the file can drop them."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_rows DISABLE TRIGGER USER"))
        else:
            for operation in ("update", "delete"):
                conn.execute(text(f"DROP TRIGGER IF EXISTS audit_rows_no_{operation}"))
        conn.execute(text(statement), parameters)


def _findings(engine: Engine) -> list[str]:
    return [finding.line for finding in verify(engine).findings]


# --- a clean log -----------------------------------------------------------------------------------------------
def test_a_clean_log_of_every_kind_of_row_verifies(audit: AuditLog) -> None:
    done = _write(audit, "done")
    assert _write(audit, "done") == done  # a double click: an attempt row, still one intent
    _write(audit, "failed", outcome="failed")
    audit.record(user="sam", role="support", action="change plan", organization_id="org_abc123", outcome="denied",
                 error="Support may not change plans")
    crashed = _write(AuditLog(audit.engine, boot_id="crashed"), "in-flight", outcome=None)
    assert audit.mark_interrupted() == 1
    assert audit.settle(crashed, "org_abc123", "fay: status active, plan Growth")

    report = verify(audit.engine)

    assert report.ok and report.findings == ()
    with audit.engine.connect() as conn:
        rows = conn.execute(select(audit_rows.c.id, audit_rows.c.kind, audit_rows.c.intent_id, audit_rows.c.settles_id,
                                   audit_rows.c.prev_hash, audit_rows.c.row_hash).order_by(audit_rows.c.id)).all()
    assert [row.kind for row in rows] == ["intent", "outcome", "attempt", "outcome", "intent", "outcome", "intent",
                                          "intent", "outcome", "settled"]
    assert [row.intent_id for row in rows] == [None, 1, 1, 1, None, 5, None, None, 8, 8]
    assert rows[-1].settles_id == 9  # the settled row names the unknown one it settles
    assert all(row.prev_hash == before.row_hash for before, row in zip(rows, rows[1:]))
    assert report.rows == 10 and report.last_id == 10 and report.summary.startswith("Audit chain verified: 10 rows")


def test_the_command_verifies_and_exits_0(audit: AuditLog, store_url: str) -> None:
    _log_of_ten_rows(audit)
    done = subprocess.run([sys.executable, "-m", "services.audit", "verify"], cwd=ROOT, text=True,
                          capture_output=True, timeout=60, env={**os.environ, "AUDIT_DATABASE_URL": store_url})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Audit chain verified: 10 rows, last #10 at ") and done.stdout.count("\n") == 1


# --- tampering ---------------------------------------------------------------------------------------------
def test_a_reason_changed_by_hand_names_that_row(audit: AuditLog, store_url: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _log_of_ten_rows(audit)
    _by_hand(audit.engine, "UPDATE audit_rows SET reason = 'nothing to see' WHERE id = 5")

    assert _findings(audit.engine) == ["row 5 altered: its content no longer matches its hash"]
    assert verify_command(["verify", "--url", store_url]) == 1
    assert capsys.readouterr().out == "row 5 altered: its content no longer matches its hash\n"


def test_a_deleted_row_is_named_as_a_gap(audit: AuditLog) -> None:
    _log_of_ten_rows(audit)
    _by_hand(audit.engine, "DELETE FROM audit_rows WHERE id = 4")

    assert _findings(audit.engine) == ["rows removed before row 5: it chains onto a row that is no longer in the log "
                                       "(the row before it is now 3)"]


def test_rows_removed_from_the_end_are_caught_by_the_checkpoint(audit: AuditLog) -> None:
    _log_of_ten_rows(audit)
    assert audit.chain_status().ok  # the page's check remembers row 10 as verified
    _by_hand(audit.engine, "DELETE FROM audit_rows WHERE id > 8")

    [finding] = _findings(audit.engine)
    assert finding.startswith("rows removed from the end: row 10, verified at ") and "no longer in the log" in finding


def test_a_forged_row_is_named_as_inserted(audit: AuditLog) -> None:
    _log_of_ten_rows(audit)
    # A forger copies a real row under the next id, with another reason, its hashes made up or copied.
    columns = '"kind", "at", "user", "role", "action", "organization_id", "parameters", "outcome", "attempts", ' \
              '"boot_id", "completed_at", "prev_hash", "row_hash"'
    _by_hand(audit.engine, f'INSERT INTO audit_rows (id, reason, {columns}) SELECT 11, :reason, {columns} '
                           f'FROM audit_rows WHERE id = 9', reason="approved by phone")
    _write(audit, "after")  # the console goes on appending after it

    assert _findings(audit.engine) == [
        "row 11 inserted: neither its content matches its hash nor does it chain onto row 10"]


def test_a_forged_row_chained_onto_the_last_is_still_named(audit: AuditLog) -> None:
    """A forger who links it to the last row's hash but can't reproduce its own hash."""
    _log_of_ten_rows(audit)
    _by_hand(audit.engine, 'INSERT INTO audit_rows (id, kind, at, "user", role, action, parameters, reason, outcome, '
                           'attempts, boot_id, prev_hash, row_hash) SELECT 11, kind, at, "user", role, action, '
                           'parameters, :reason, outcome, attempts, boot_id, row_hash, :made_up FROM audit_rows '
                           'WHERE id = 10', reason="refund approved", made_up="ab" * 32)

    [finding] = _findings(audit.engine)
    assert finding.startswith("row 11 ")


def test_a_row_replaced_by_one_with_a_correct_hash_of_its_own_is_caught_at_its_successor(audit: AuditLog) -> None:
    """A forger who knows how rows are hashed deletes row 5 and writes their own under its id, chained onto
    row 4: row 6 still chains onto the original."""
    _log_of_ten_rows(audit)
    with audit.engine.connect() as conn:
        original = dict(conn.execute(select(audit_rows).where(audit_rows.c.id == 5)).one()._mapping)
    forged = {**original, "reason": "approved by the CFO"}
    forged["row_hash"] = row_hash(forged)
    _by_hand(audit.engine, "DELETE FROM audit_rows WHERE id = 5")
    with audit.engine.begin() as conn:
        conn.execute(audit_rows.insert().values(**forged))

    assert _findings(audit.engine) == ["rows removed before row 6: it chains onto a row that is no longer in the log "
                                       "(the row before it is now 5)"]


def _chain_by_hand(engine: Engine, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Rows with these ids, each chained onto the one before, written straight into the table."""
    rows, previous = {}, GENESIS
    for event_id in ids:
        row = {"id": event_id, "kind": "intent", "at": datetime(2026, 11, 27, tzinfo=timezone.utc), "user": "fay",
               "role": "finance", "action": "cancel", "parameters": "{}", "reason": f"row {event_id}",
               "outcome": "denied", "attempts": 1, "boot_id": "by-hand", "prev_hash": previous}
        row["row_hash"] = previous = row_hash(row)
        rows[event_id] = row
    with engine.begin() as conn:
        conn.execute(audit_rows.insert(), list(rows.values()))
    return rows


@pytest.mark.parametrize("forger", ["hashes it", "makes its hash up"])
def test_a_row_slipped_between_two_others_is_named_as_inserted(audit: AuditLog, forger: str) -> None:
    """Ids have no gaps when the console writes them; a forger who renumbers rows to make one is caught too."""
    chain = _chain_by_hand(audit.engine, [1, 2, 4, 5])
    slipped = {**chain[2], "id": 3, "reason": "refund approved", "prev_hash": chain[2]["row_hash"]}
    slipped["row_hash"] = row_hash(slipped) if forger == "hashes it" else "ab" * 32
    with audit.engine.begin() as conn:
        conn.execute(audit_rows.insert().values(**slipped))

    expected = ("row 3 inserted: row 4 chains onto row 2, past it" if forger == "hashes it"
                else "row 3 inserted: row 4 chains past it onto row 2")
    assert _findings(audit.engine) == [expected]


# --- appending --------------------------------------------------------------------------------------------------
APPENDER = """
import sys, threading
from services.audit import AuditLog
from services.store import store_engine
audit = AuditLog(store_engine(sys.argv[1]), boot_id=sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
def writes(thread):
    for n in range(int(sys.argv[3])):
        event = audit.begin(user="fay", role="finance", action="cancel", organization_id="org_abc123",
                            parameters={"n": n}, reason="race", idempotency_key=f"{sys.argv[2]}-{thread}-{n}")
        audit.complete(event, "succeeded", request_id=f"req-{thread}-{n}")
threads = [threading.Thread(target=writes, args=(thread,)) for thread in range(2)]
for thread in threads: thread.start()
for thread in threads: thread.join()
print("done", flush=True)
"""


def test_appends_racing_from_two_processes_and_their_threads_make_one_chain(audit: AuditLog, store_url: str) -> None:
    each = 15  # two processes × two threads × 15 writes × (intent + outcome) rows
    processes = [subprocess.Popen([sys.executable, "-c", APPENDER, store_url, name, str(each)], cwd=ROOT, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for name in ("console-a", "console-b")]
    for process in processes:  # both have imported everything…
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    for process in processes:  # …then they race
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    results = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], [err for _, err in results]

    report = verify(audit.engine)
    assert report.ok and report.rows == 2 * 2 * each * 2
    lines = audit.events()
    assert len(lines) == 2 * 2 * each and set(lines.outcome) == {"succeeded"} and set(lines.attempts) == {1}


def _guide_sql() -> list[str]:
    """The SQL blocks of docs/deployment.md, as an operator would paste them into psql."""
    guide = (ROOT / "docs/deployment.md").read_text()
    return [block.split("```", 1)[0] for block in guide.split("```sql\n")[1:]]


def _run(engine: Engine, sql: str) -> None:
    """Statement by statement, each committed, as psql does."""
    lines = (line.split("--", 1)[0] for line in sql.replace("…", "").splitlines())
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        for statement in " ".join(lines).split(";"):
            if statement.strip():
                conn.exec_driver_sql(statement)


def test_the_roles_of_the_deployment_guide_let_the_console_work_but_not_rewrite_the_log(
        postgres_server: PostgresServer) -> None:
    (as_superuser,) = _guide_sql()
    before_database, in_database = as_superuser.split("\\c billing_desk\n")
    superuser = store_engine(postgres_server.url("postgres"))
    _run(superuser, before_database)
    url = postgres_server.url("billing_desk")
    try:
        _run(store_engine(url), in_database)
        owner = store_engine(url.replace("postgres@", "billing_desk_owner@"))
        upgrade(owner)  # `python -m services.store upgrade` as the owner
        with owner.begin() as conn:  # what the release before migration 0010 granted: DELETE on the job tables
            conn.execute(text("GRANT SELECT, INSERT, UPDATE, DELETE ON bulk_jobs, bulk_job_items TO "
                              "billing_desk_console"))
        grant_console(owner, "billing_desk_console")  # `python -m services.store grant billing_desk_console`
        owner.dispose()

        console = open_store(url.replace("postgres@", "billing_desk_console@"))  # nothing to apply: it starts
        audit = AuditLog(console, boot_id="console-a")
        lease = ConsoleLease(console, audit.boot_id, on_beat=audit.mark_interrupted).start()
        _write(audit, "done")
        _write(audit, "done")
        _write(AuditLog(console, boot_id="crashed"), "lost", outcome=None)
        lease.beat()  # marks the crashed console's write unknown
        assert audit.settle(5, "org_abc123", "fay: status active")
        LoginThrottle(console, audit).reserve("fay", "10.0.0.1", known=True)
        assert audit.chain_status().ok and len(audit.events()) == 2
        jobs = JobStore(console, keep=timedelta(0))  # bulk jobs: created, claimed, saved, finished, purged
        job_id = jobs.create("fay", "support", ["org_abc123"])
        assert jobs.claim("worker", timedelta(seconds=30)) is not None
        assert jobs.save(job_id, 0, {"organization_id": "org_abc123", "status": "active", "error": None})
        assert jobs.finish(job_id, "worker", "done") and jobs.purge() == 1
        refresh = jobs.create("directory", "admin", ["org_abc123"], kind="refresh")  # its rows: the owner's function
        assert jobs.claim("worker", timedelta(seconds=30)) is not None
        assert jobs.finish(refresh, "worker", "done")
        assert jobs.purge_background_items(timedelta(seconds=-1)) == 1 and jobs.pending(refresh) == []
        directory = Directory(console)  # the customer directory: noted (its key's sequence), searched, forgotten
        assert directory.note(CustomerInfo("org_abc123", "cus_abc123", email="ap@acme.example",
                                           organization_name="Acme Analytics"), "lookup")
        assert [entry.organization_id for entry in directory.search("acme")] == ["org_abc123"]
        assert directory.note(CustomerInfo("org_def456", "cus_def456"), "lookup")
        assert take_snapshot(console, date.today(), "console") is not None  # revenue: inserted, never rewritten
        assert directory.forget("org_abc123") and directory.purge() == 0
        lease.stop()
        for statement in ("UPDATE audit_rows SET reason = 'x'", "DELETE FROM audit_rows", "TRUNCATE audit_rows",
                          "ALTER TABLE audit_rows DISABLE TRIGGER USER", "DROP VIEW audit_events",
                          "DELETE FROM bulk_job_items", "DELETE FROM approval_requests",
                          "UPDATE revenue_days SET mrr_cents = 0", "DELETE FROM revenue_snapshots"):
            with pytest.raises(DBAPIError, match="permission denied|must be owner"), console.begin() as conn:
                conn.exec_driver_sql(statement)
        assert verify(console).ok
        console.dispose()
    finally:
        _run(superuser, "DROP DATABASE IF EXISTS billing_desk WITH (FORCE); DROP ROLE IF EXISTS billing_desk_console; "
                        "DROP ROLE IF EXISTS billing_desk_owner")
        superuser.dispose()


def test_the_store_refuses_updates_and_deletes_of_audit_rows(audit: AuditLog) -> None:
    _log_of_ten_rows(audit)
    refused = ["UPDATE audit_rows SET reason = 'x' WHERE id = 1", "DELETE FROM audit_rows WHERE id = 10"]
    if audit.engine.dialect.name == "postgresql":
        refused.append("TRUNCATE audit_rows")
    for statement in refused:
        with pytest.raises(DBAPIError, match="append-only"), audit.engine.begin() as conn:
            conn.execute(text(statement))
    assert verify(audit.engine).rows == 10 and verify(audit.engine).ok


# --- reading -------------------------------------------------------------------------------------------------
def test_the_page_check_of_a_large_log_hashes_only_the_rows_added_since_it_last_verified(
        audit: AuditLog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_watch, "FULL_CHECK_UP_TO_ROWS", 0)  # every log is "large"
    _log_of_ten_rows(audit)
    first = audit.chain_status()
    assert first.ok and first.checked.since is None and first.checked.rows == 10  # no checkpoint yet: all of it
    assert first.summary == ("Audit chain: rows #1–#10, added since the last check, verify; The whole chain has not "
                             "been re-hashed yet (that runs every 15 minutes).")
    _write(audit, "more")
    assert audit.chain_status() is first  # within the TTL: the same answer, nothing read

    second = audit.chain_status(ttl_seconds=0)

    assert second.ok and second.checked.since is not None and second.checked.since.last_id == 10
    assert second.checked.rows == 12 and "rows #11–#12, added since the last check, verify" in second.summary
    _by_hand(audit.engine, "UPDATE audit_rows SET error = 'edited' WHERE id = 12")  # the checkpoint's row
    broken = audit.chain_status(ttl_seconds=0)
    assert not broken.ok and broken.summary == ("Audit chain does not verify: row 12 altered: its content no longer "
                                                "matches its hash.")


def test_a_small_log_is_re_hashed_whole_on_every_check(audit: AuditLog) -> None:
    """Below FULL_CHECK_UP_TO_ROWS the page re-hashes every row: an edit before the checkpoint shows at once."""
    _log_of_ten_rows(audit)
    assert audit.chain_status().summary == "Audit chain verified: all 10 rows re-hashed just now, last #10."
    _by_hand(audit.engine, "UPDATE audit_rows SET reason = 'quietly' WHERE id = 1")
    broken = audit.chain_status(ttl_seconds=0)
    assert not broken.ok and broken.summary.startswith("Audit chain does not verify: row 1 altered")


def test_the_desks_writes_read_back_as_before(sandbox: RunningSandbox, control: SandboxControl,
                                              audit: AuditLog) -> None:
    client = PaymentsClient(sandbox.base_url, sandbox.api_key, timeout=(1.0, 0.5), backoff_factor=0.05)
    desk = BillingDesk(client, audit)
    desk.change_plan(FINANCE, "org_abc123", "price_ScaleMonthly01", "prod_Scale0001", "more seats", "k-change")
    control.add_fault("subscription-cancel", hangSeconds=1.5, count=2)  # the retry too
    with pytest.raises(WriteOutcomeUnknown):
        desk.cancel_subscription(FINANCE, "org_abc123", "closing", "org_abc123", "k-cancel")
    control.clear_faults()
    desk.cancel_subscription(FINANCE, "org_abc123", "closing", "org_abc123", "k-cancel")  # the same intent again
    organization_id = control.organizations("none")[0]["id"]
    lost = _write(AuditLog(audit.engine, boot_id="crashed"), "k-lost", outcome=None, organization_id=organization_id)
    assert audit.mark_interrupted() == 1
    [unknown] = audit.unsettled(organization_id)
    assert unknown["id"] == lost and unknown["outcome"] == "unknown"

    desk.settle_unknown(FINANCE, lost, organization_id)

    assert audit.unsettled(organization_id) == [] and not audit.settle(lost, organization_id, "twice")
    settled, cancel, change = (line for _, line in audit.events().iterrows())  # newest first
    assert (change.action, change.outcome, change.attempts) == ("change plan", "succeeded", 1)
    assert '"prorationAmount"' in change.parameters and change.reason == "more seats"
    assert (cancel.action, cancel.outcome, cancel.attempts) == ("cancel subscription", "succeeded", 2)
    assert pd.isna(cancel.error)  # the retry's success is the latest outcome: the unknown one is history
    assert (settled.id, settled.outcome, settled.organization_id) == (lost, "unknown", organization_id)
    assert settled.error.startswith("Re-read by fay: status ") and settled.completed_at >= settled["at"]
    assert verify(audit.engine).ok


def test_downgrading_folds_the_rows_back_into_one_per_intent_and_upgrading_seals_them_again(audit: AuditLog) -> None:
    _write(audit, "done")
    _write(audit, "done")
    _write(audit, "failed", outcome="failed")
    before = audit.events()
    with migration_lock(audit.engine) as conn:
        command.downgrade(alembic_config(conn), "0003")
        conn.commit()
    with audit.engine.connect() as conn:
        folded = conn.execute(text("SELECT id, outcome, attempts, request_id FROM audit_events ORDER BY id")).all()
    assert [tuple(row) for row in folded] == [(1, "succeeded", 2, "req_done"), (5, "failed", 1, "req_failed")]

    applied = upgrade(audit.engine)
    assert applied[:2] == ["0004", "0005"] and applied[-1] == head_revision()  # and whatever came after

    assert verify(audit.engine).ok and verify(audit.engine).rows == 2
    kept = ["id", "outcome", "attempts", "request_id"]
    assert audit.events()[kept].equals(before[kept])


# --- the Audit page ---------------------------------------------------------------------------------------------
@pytest.fixture
def console_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A console of its own for AppTest (in sandbox mode, its store in tmp_path); returns the store's file."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for name, value in {"BILLING_DESK_SANDBOX": "1", "BILLING_DESK_DATA_DIR": str(tmp_path),
                        "SANDBOX_PORT": str(port), "SANDBOX_API_KEY": new_test_key()}.items():
        monkeypatch.setenv(name, value)
    store = tmp_path / "audit.sqlite3"
    audit = AuditLog(f"sqlite:///{store}")
    _log_of_ten_rows(audit)
    audit.engine.dispose()
    return store


def _audit_page(as_user: str = "finance") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    at.text_input(key="login_username").input(as_user)
    at.text_input(key="login_password").input(f"{as_user}-demo")
    next(button for button in at.button if button.label == "Log in").click()
    return at.run().switch_page("pages/audit.py").run()


def test_the_audit_page_says_the_chain_verifies(console_store: Path) -> None:
    at = _audit_page()
    assert not at.exception and not at.error
    # 11: the console holds an audit key, so it sealed the ten unkeyed rows with a keyed cut-over row at start
    assert any(caption.value == ":material/verified_user: Audit chain verified: all 11 rows re-hashed just now, "
                                "last #11." for caption in at.caption), [caption.value for caption in at.caption]


def test_the_audit_page_names_the_first_bad_row(console_store: Path) -> None:
    with sqlite3.connect(console_store) as db:
        db.execute("DROP TRIGGER audit_rows_no_update")
        db.execute("UPDATE audit_rows SET reason = 'nothing to see' WHERE id = 3")
    at = _audit_page()
    assert not at.exception
    assert at.error[0].value.startswith("Audit chain does not verify: row 3 altered: its content no longer matches "
                                        "its hash.")
