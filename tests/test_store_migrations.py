"""The store's schema lives in Alembic migrations (services/store/, migrations/): from scratch, from the last
release that used create_all, under a lock when replicas start together, and loudly when a migration fails.
Every test runs on SQLite and on PostgreSQL (`store_url`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, MetaData, String, create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url

from services.audit import AuditLog
from services.audit.verify import verify
from services.config import ConfigError
from services.schema import compared, model_metadata
from services.store import (alembic_config, current_revision, head_revision, migration_lock, open_store,
                            store_engine, upgrade)
from services.store.command import main
from tests.fixtures.make_audit_release_3f600a6 import OLD_TABLES, fill, old_release

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests/fixtures/audit-release-3f600a6.sqlite3"
EVERY_REVISION = ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010", "0011", "0012", "0013", "0014", "0015", "0016", "0017"]


def _differences(engine: Engine, models: MetaData) -> list[Any]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True,
                                                                          "include_name": compared}), models))


def _tables(engine: Engine) -> set[str]:
    """The store's tables, but those a store builds beside the models (SQLite's FTS5 tables: services/schema.py)."""
    return {name for name in inspect(engine).get_table_names() if compared(name, "table", None)}


def _old_release_store(url: str) -> None:
    """A store as the last create_all release left it: the committed SQLite file (made by that release's
    code), or on PostgreSQL the same rows written by that code now."""
    if url.startswith("sqlite"):
        shutil.copy(FIXTURE, str(make_url(url).database))
    else:
        fill(url)


def _audit_rows(url: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text("SELECT * FROM audit_events ORDER BY id"))]
    finally:
        engine.dispose()


def test_an_empty_store_runs_every_migration_and_matches_the_models(store_url: str) -> None:
    engine = store_engine(store_url)
    assert upgrade(engine) == EVERY_REVISION
    assert current_revision(engine) == head_revision() == EVERY_REVISION[-1]
    assert _tables(engine) == set(model_metadata().tables) | {"alembic_version"}
    # The guard for the next engineer: a model changed without a migration (or the reverse) fails here.
    assert _differences(engine, model_metadata()) == []
    assert upgrade(engine) == []  # at head, a start applies nothing


def test_migration_0001_is_exactly_the_old_releases_create_all_schema(store_url: str) -> None:
    engine = store_engine(store_url)
    assert upgrade(engine, "0001") == ["0001"]
    assert _differences(engine, old_release().metadata) == []


def test_a_store_of_the_old_release_upgrades_in_place_keeping_every_audit_row(store_url: str) -> None:
    _old_release_store(store_url)
    before = _audit_rows(store_url)
    assert {row["outcome"] for row in before} == {"succeeded", "failed", "denied", "unknown", "pending"}
    assert _tables(store_engine(store_url)) == set(OLD_TABLES)

    engine = open_store(store_url)  # unversioned with the old tables: stamped 0001, then upgraded

    assert current_revision(engine) == head_revision()
    assert _differences(engine, model_metadata()) == []
    assert "login_attempts" not in _tables(engine) and "logouts" not in _tables(engine)
    after = _audit_rows(store_url)  # audit_events is now a view of the append-only rows: the same lines
    assert [{key: row[key] for key in before[0]} for row in after] == before  # every row, every value
    assert all(row["environment"] is None and row["subject"] is None for row in after)
    sealed = verify(engine)  # migration 0004 hashed them into the chain, in id order
    assert sealed.ok and sealed.rows == len(before) and sealed.last_id == before[-1]["id"]
    # The old release's pending write belongs to a process that is long gone (no lease): now unknown.
    console = AuditLog(engine, boot_id="after-upgrade", environment="live")
    assert console.mark_interrupted() == 1
    assert set(console.events()["outcome"]) == {"succeeded", "failed", "denied", "unknown"}
    assert len(console.events()) == len(before)
    console.record(user="admin", role="admin", action="cancel", organization_id="org_abc123", outcome="denied",
                   subject="sso|42")
    assert console.events().iloc[0][["environment", "subject"]].tolist() == ["live", "sso|42"]
    assert verify(engine).ok  # the new rows chain onto the migrated ones


def test_an_unversioned_store_made_by_create_all_after_that_release_is_recognised(store_url: str) -> None:
    """Between 3f600a6 and the migrations the console still ran create_all with some of 0002's tables (its audit
    table was still audit_events, one row per intent)."""
    engine = store_engine(store_url)
    models = model_metadata()
    era = MetaData()
    events = old_release().audit_events.to_metadata(era)
    events.append_column(Column("environment", String(10)))
    events.append_column(Column("subject", String(255)))
    for name in ("sign_in_sessions", "sessions_valid_from", "login_throttles"):
        models.tables[name].to_metadata(era)
    era.create_all(engine)
    with engine.begin() as conn:
        conn.execute(events.insert().values(at=datetime.now(timezone.utc), user="finance", role="finance",
                                            action="cancel", organization_id="org_abc123", parameters="{}", reason="",
                                            outcome="denied", attempts=1, boot_id="create-all-era",
                                            environment="live"))
    assert upgrade(engine) == EVERY_REVISION[1:]
    assert _differences(engine, models) == []
    assert len(AuditLog(engine).events()) == 1
    assert verify(engine).ok


RACE = """
import sys
from services.store import store_engine, upgrade
engine = store_engine(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
print(",".join(upgrade(engine)), flush=True)
"""


def test_replicas_starting_together_migrate_once(store_url: str) -> None:
    replicas = [subprocess.Popen([sys.executable, "-c", RACE, store_url], cwd=ROOT, text=True, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    for replica in replicas:  # every one has imported everything…
        assert replica.stdout is not None and replica.stdout.readline().strip() == "ready"
    for replica in replicas:  # …and they race for the store
        assert replica.stdin is not None
        replica.stdin.write("go\n")
        replica.stdin.flush()
    results = [replica.communicate(timeout=60) for replica in replicas]
    assert [replica.returncode for replica in replicas] == [0, 0, 0], [err for _, err in results]
    assert sorted(out.strip() for out, _ in results) == ["", "", ",".join(EVERY_REVISION)]
    assert current_revision(store_engine(store_url)) == head_revision()


def test_a_failing_migration_stops_the_console_with_a_sentence_naming_it(store_url: str,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    if store_url.startswith("postgresql"):  # trust authentication ignores it; the sentence must not show it
        store_url = store_url.replace("postgres@", "postgres:hunter2@")
    engine = store_engine(store_url)
    upgrade(engine, "0002")
    with engine.begin() as conn:  # broken by hand: 0003's table is already there, in another shape
        conn.execute(text("CREATE TABLE console_leases (made_by_hand INTEGER)"))

    with pytest.raises(ConfigError) as raised:  # ui/console.py logs it and shows a generic sentence
        open_store(store_url)

    sentence = str(raised.value)
    assert sentence.startswith("The store's migration 0003 (Console leases")
    assert "console_leases" in sentence and "stays at 0002" in sentence and "services.store upgrade" in sentence
    assert "hunter2" not in sentence and "\n" not in sentence
    assert current_revision(engine) == "0002"
    assert main(["--url", store_url, "upgrade"]) == 1
    assert capsys.readouterr().err.startswith("The store's migration 0003")


def test_an_unreachable_store_is_one_sentence_without_its_password() -> None:
    with pytest.raises(ConfigError) as raised:
        open_store("postgresql://billing:hunter2@127.0.0.1:1/billing")
    sentence = str(raised.value)
    assert sentence.startswith("The store at postgresql+psycopg://billing:***@127.0.0.1:1/billing can't be opened")
    assert "hunter2" not in sentence


def test_the_command_upgrades_by_hand_and_says_where_the_store_is(store_url: str,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", store_url, "current"]) == 0
    assert capsys.readouterr().out.strip() == f"The store is at no revision; the newest is {head_revision()}."
    upgraded = subprocess.run([sys.executable, "-m", "services.store", "upgrade"], cwd=ROOT, text=True,
                              capture_output=True, timeout=60, env={**os.environ, "AUDIT_DATABASE_URL": store_url})
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == f"Applied {', '.join(EVERY_REVISION)}. The store is at {head_revision()}."
    assert main(["--url", store_url, "current"]) == 0
    assert capsys.readouterr().out.strip() == f"The store is at {head_revision()}; the newest is {head_revision()}."


def test_every_migration_downgrades_and_upgrades_again(store_url: str) -> None:
    engine = open_store(store_url)
    with migration_lock(engine) as conn:
        command.downgrade(alembic_config(conn), "base")
        conn.commit()
    assert _tables(engine) == {"alembic_version"}
    assert upgrade(engine) == EVERY_REVISION
    assert _differences(engine, model_metadata()) == []


def test_without_postgresql_the_store_tests_fail_saying_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import deploy.postgres
    from tests.support import postgres

    monkeypatch.setattr(deploy.postgres.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(deploy.postgres.shutil, "which", lambda program: None)
    with pytest.raises(postgres.PostgresMissing, match="make test"):
        postgres.PostgresServer.start()


def test_the_store_and_audit_commands_run_as_modules(tmp_path: Path) -> None:
    """`python -m services.store` and `python -m services.audit` are the packages' __main__: what an operator
    types, run as they would run it."""
    url = f"sqlite:///{tmp_path}/commands.sqlite3"
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("AUDIT_DATABASE_URL", "BILLING_DESK_AUDIT_KEY", "BILLING_DESK_AUDIT_OLD_KEYS")}

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", *arguments], cwd=ROOT, env=environment, capture_output=True,
                              text=True, timeout=120)

    upgraded = run("services.store", "--url", url, "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"The store is at {head_revision()}." in upgraded.stdout
    assert run("services.store", "--url", url, "current").stdout.strip() == (
        f"The store is at {head_revision()}; the newest is {head_revision()}.")
    verified = run("services.audit", "--url", url, "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("Audit chain verified"), verified.stderr
    refused = run("services.store", "--url", url, "grant", "billing_desk_console")
    assert refused.returncode == 1 and "Grants are for PostgreSQL" in refused.stderr
