"""The audit chain against someone with the database but not the console's key, on both stores.

Each attack is run as it would be: raw SQL as the database superuser with the append-only triggers out of the
way (tests/test_audit_chain.py `_by_hand`). What must hold: an edit of the oldest row shows at the next full
verification (the page says so); a chain recomputed with plain SHA-256 is caught; rows cut off the end, with
the checkpoint, are caught against the witness; a store hashed before it had a key stays verifiable through
its cut-over row; rotated keys keep verifying the rows they signed.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from services.audit import watch as audit_watch
from services.audit import AuditLog, AuditUnavailable
from services.audit.chain import GENESIS, audit_rows, canonical
from services.audit.keys import AuditKeys, key_id
from services.audit.verify import audit_chain_checkpoints, verify
from services.audit.watch import VerificationSchedule, Witness, full_verification, held_against_witness
from tests.test_audit_chain import _by_hand, _log_of_ten_rows, _write

ROOT = Path(__file__).resolve().parents[1]
KEY, OLD_KEY = secrets.token_urlsafe(48), secrets.token_urlsafe(48)


@pytest.fixture
def keys() -> AuditKeys:
    return AuditKeys.of(KEY)


@pytest.fixture
def audit(store_url: str, keys: AuditKeys) -> Iterator[AuditLog]:
    log = AuditLog(store_url, boot_id="console-k", keys=keys)
    yield log
    log.engine.dispose()


def _findings(audit: AuditLog, keys: AuditKeys | None) -> list[str]:
    return [finding.line for finding in verify(audit.engine, None, keys).findings]


def test_keyed_rows_name_their_key_and_verify_only_with_it(audit: AuditLog, keys: AuditKeys) -> None:
    _log_of_ten_rows(audit)
    with audit.engine.connect() as conn:
        assert set(conn.execute(select(audit_rows.c.key_id)).scalars()) == {keys.current_id}
    assert _findings(audit, keys) == []
    assert KEY not in repr(keys) and keys.current_id == key_id(KEY)
    unchecked = _findings(audit, None)  # the operator forgot the key: every row says it can't be checked
    assert len(unchecked) == 10 and "give the console's key" in unchecked[0]


def test_an_edit_of_the_oldest_row_shows_on_the_page_within_one_verification(
        audit: AuditLog, keys: AuditKeys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_watch, "FULL_CHECK_UP_TO_ROWS", 0)  # a log too large to re-hash on every opening
    _log_of_ten_rows(audit)
    assert audit.chain_status().ok  # the checkpoint is now at row 10
    _by_hand(audit.engine, "UPDATE audit_rows SET reason = 'nothing happened' WHERE id = 1")
    assert audit.chain_status(ttl_seconds=0).ok  # the page's own check covers only rows after its checkpoint …
    assert "has not been re-hashed yet" in audit.chain_status(ttl_seconds=0).summary  # … and says so

    verification = full_verification(audit.engine, keys, by="test")  # the next scheduled run

    assert verification is not None and verification.ok is False
    page = audit.chain_status(ttl_seconds=0)
    assert not page.ok and "does NOT verify: row 1 altered" in page.summary


def test_a_chain_recomputed_with_sha256_by_the_superuser_is_caught(audit: AuditLog, keys: AuditKeys) -> None:
    _log_of_ten_rows(audit)
    audit.chain_status()  # a sealed checkpoint at row 10
    with audit.engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(select(audit_rows).order_by(audit_rows.c.id))]
    previous = GENESIS
    for row in rows:  # what someone with only the database can do: every hash anew, without the key
        row["reason"] = "rewritten" if row["id"] == 3 else row["reason"]
        row["key_id"], row["prev_hash"] = None, previous
        row["row_hash"] = previous = hashlib.sha256(canonical(row)).hexdigest()
        _by_hand(audit.engine, "UPDATE audit_rows SET reason = :reason, key_id = NULL, prev_hash = :prev_hash, "
                 "row_hash = :row_hash WHERE id = :id", **{k: row[k] for k in ("reason", "prev_hash", "row_hash", "id")})
    _by_hand(audit.engine, "UPDATE audit_chain_checkpoints SET last_hash = :hash", hash=previous)

    findings = _findings(audit, keys)

    assert any("the newest row has no key although the console has one" in line for line in findings), findings
    assert verify(audit.engine).ok  # without the key, the same log would have passed: that was the hole


def test_recomputing_with_the_key_id_kept_is_caught_row_by_row(audit: AuditLog, keys: AuditKeys) -> None:
    _log_of_ten_rows(audit)
    with audit.engine.connect() as conn:
        row = dict(conn.execute(select(audit_rows).where(audit_rows.c.id == 10)).first()._mapping)  # type: ignore
    row["reason"] = "rewritten"
    _by_hand(audit.engine, "UPDATE audit_rows SET reason = 'rewritten', row_hash = :hash WHERE id = 10",
             hash=hashlib.sha256(canonical(row)).hexdigest())
    assert any(line.startswith("row 10 altered") for line in _findings(audit, keys))


def test_rows_cut_off_the_end_with_the_checkpoint_are_caught_with_the_witness(
        audit: AuditLog, keys: AuditKeys, tmp_path: Path, store_url: str) -> None:
    witness = tmp_path / "witness.jsonl"
    _log_of_ten_rows(audit)
    full_verification(audit.engine, keys, Witness(str(witness)), by="test")
    head = json.loads(witness.read_text().splitlines()[-1])
    assert head["id"] == 10 and head["verified"] is True
    _by_hand(audit.engine, "DELETE FROM audit_rows WHERE id > 7")
    _by_hand(audit.engine, "DELETE FROM audit_chain_checkpoints")

    assert _findings(audit, keys) == []  # a shorter chain, every link sound: alone, it verifies
    found = held_against_witness(audit.engine, witness.read_text().splitlines())
    assert [finding.line.split(",")[0] for finding in found] == ["rows removed from the end: row 10"]
    done = subprocess.run([sys.executable, "-m", "services.audit", "verify", "--url", store_url, "--witness",
                           str(witness)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "BILLING_DESK_AUDIT_KEY": KEY})
    assert done.returncode == 1 and "rows removed from the end: row 10" in done.stdout


def test_a_store_hashed_before_it_had_a_key_is_sealed_by_a_cut_over_row(store_url: str, keys: AuditKeys) -> None:
    before = AuditLog(store_url, boot_id="old-release")  # no key: plain SHA-256 rows
    _log_of_ten_rows(before)
    upgraded = AuditLog(before.engine, boot_id="new-release", keys=keys)
    with pytest.raises(AuditUnavailable):  # a keyed row never chains onto an unkeyed one by itself …
        _write(upgraded, "before the cut-over")
    assert any("needs `python -m services.audit cut-over` once" in line for line in _findings(upgraded, keys))
    done = subprocess.run([sys.executable, "-m", "services.audit", "cut-over", "--url", store_url], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "BILLING_DESK_AUDIT_KEY": KEY})
    assert done.returncode == 0 and done.stdout.startswith("Cut over at row 11"), done.stderr  # … only on purpose
    assert upgraded.cut_over() is None  # once
    _write(upgraded, "after")
    assert _findings(upgraded, keys) == []
    with upgraded.engine.connect() as conn:
        cut_over = conn.execute(select(audit_rows).where(audit_rows.c.id == 11)).first()
    assert cut_over.action == "audit key cut-over" and cut_over.key_id == keys.current_id  # type: ignore[union-attr]
    _write(before, "written without the key")  # an old replica still running, or a forger
    assert any("no key after the cut-over" in line for line in _findings(upgraded, keys))


def test_rotated_keys_keep_verifying_what_they_signed(store_url: str) -> None:
    old = AuditLog(store_url, boot_id="old-key", keys=AuditKeys.of(OLD_KEY))
    _log_of_ten_rows(old)
    rotated = AuditKeys.of(KEY, [OLD_KEY])
    _write(AuditLog(old.engine, keys=rotated), "after rotation")
    assert _findings(old, rotated) == []
    dropped = _findings(old, AuditKeys.of(KEY))  # the old key no longer listed: its rows can't be checked
    assert len(dropped) == 10 and f"signed with audit key {key_id(OLD_KEY)}" in dropped[0]


def test_a_checkpoint_written_without_the_key_is_refused(audit: AuditLog, keys: AuditKeys) -> None:
    _log_of_ten_rows(audit)
    audit.chain_status()
    _by_hand(audit.engine, "UPDATE audit_chain_checkpoints SET mac = NULL")
    assert any("not written by the console" in line for line in _findings(audit, keys))


def test_one_process_runs_each_scheduled_slot(audit: AuditLog, keys: AuditKeys) -> None:
    _log_of_ten_rows(audit)
    first = VerificationSchedule(audit.engine, keys, by="replica-1")
    second = VerificationSchedule(AuditLog(audit.engine.url.render_as_string(hide_password=False), keys=keys).engine,
                                  keys, by="replica-2")
    results = [first.run_due(), second.run_due()]
    assert sum(result is not None for result in results) == 1  # the same slot: one of them ran it
    with audit.engine.connect() as conn:
        assert conn.execute(select(audit_watch.audit_verifications.c.by)).scalars().all() in (["replica-1"],
                                                                                              ["replica-2"])
    assert audit_watch.latest(audit.engine).ok is True  # type: ignore[union-attr]
    with audit.engine.connect() as conn:  # its checkpoint is sealed with the key
        assert conn.execute(select(audit_chain_checkpoints.c.mac)).scalar().startswith(keys.current_id)


def test_the_audit_key_is_required_in_production() -> None:
    from services.config import ConfigError, load_config

    production = {"PAYMENTS_API_URL": "https://api.example.com/api/v1", "PAYMENTS_API_KEY": "bsk_live_" + "a1" * 16,
                  "BILLING_DESK_USERS": "users.yaml", "BILLING_DESK_COOKIE_KEY": secrets.token_urlsafe(48),
                  "BILLING_DESK_PUBLIC_URL": "https://desk.example.com"}
    with pytest.raises(ConfigError, match="Set the audit key"):
        load_config(production, {})
    with pytest.raises(ConfigError, match="BILLING_DESK_AUDIT_KEY must be at least 32"):
        load_config({**production, "BILLING_DESK_AUDIT_KEY": "short"}, {})
    config = load_config({**production, "BILLING_DESK_AUDIT_KEY": KEY}, {})
    assert config.audit_keys is not None and KEY not in repr(config)


def test_the_witness_may_be_an_http_endpoint(audit: AuditLog, keys: AuditKeys) -> None:
    """Each full verification POSTs its head as JSON to the configured URL (here a server on loopback)."""
    import http.server
    import threading

    received: list[dict] = []  # type: ignore[type-arg]

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the standard library's name
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _log_of_ten_rows(audit)
        full_verification(audit.engine, keys, Witness(f"http://127.0.0.1:{server.server_port}/heads"), by="test")
    finally:
        server.shutdown()
    assert len(received) == 1 and received[0]["id"] == 10 and received[0]["verified"] is True
    with audit.engine.connect() as conn:
        assert received[0]["hash"] == conn.execute(select(audit_rows.c.row_hash).where(audit_rows.c.id == 10)).scalar()


def test_a_log_rewritten_without_the_key_stops_the_console_writing_and_is_caught_by_the_witness(
        audit: AuditLog, keys: AuditKeys, tmp_path: Path) -> None:
    """The attack a key alone can't stop: every row rewritten as unkeyed SHA-256, the checkpoint with it. The
    console refuses to chain onto it (it would otherwise seal the forgery with its next row), the page says why,
    and the next scheduled verification finds the rows the witness holds changed."""
    witness = Witness(str(tmp_path / "witness.jsonl"))
    _log_of_ten_rows(audit)
    full_verification(audit.engine, keys, witness, by="test")
    with audit.engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(select(audit_rows).order_by(audit_rows.c.id))]
    previous = GENESIS
    for row in rows:
        row["key_id"], row["prev_hash"] = None, previous
        row["row_hash"] = previous = hashlib.sha256(canonical(row)).hexdigest()
        _by_hand(audit.engine, "UPDATE audit_rows SET key_id = NULL, prev_hash = :prev_hash, row_hash = :row_hash "
                 "WHERE id = :id", **{k: row[k] for k in ("prev_hash", "row_hash", "id")})
    _by_hand(audit.engine, "DELETE FROM audit_chain_checkpoints")

    with pytest.raises(AuditUnavailable):
        _write(audit, "after the rewrite")
    verification = full_verification(audit.engine, keys, witness, by="test")
    assert verification is not None and verification.ok is False
    assert any("hash is not the one witnessed" in line for line in verification.findings), verification.findings


def test_a_verification_result_written_without_the_key_is_passed_over(audit: AuditLog, keys: AuditKeys) -> None:
    _log_of_ten_rows(audit)
    _by_hand(audit.engine, "UPDATE audit_rows SET reason = 'quietly' WHERE id = 2")
    real = full_verification(audit.engine, keys, by="test")
    assert real is not None and real.ok is False
    with audit.engine.begin() as conn:  # a forged all-clear, newer than the real result
        conn.execute(audit_watch.audit_verifications.insert().values(
            id="f" * 32, slot=None, started_at=real.started_at + timedelta(seconds=1), by="forger", rows=10,
            last_id=10, last_hash="0" * 64, ok=1, findings="", mac=f"{keys.current_id}:{'0' * 64}"))
    shown = audit_watch.latest(audit.engine, keys)
    assert shown is not None and shown.ok is False and shown.findings[0].startswith("row 2 altered")
