"""Many console processes, one store: each keeps a lease (services/store/leases.py), and only the writes in flight of
a process whose lease has expired become "unknown" (AuditLog.mark_interrupted). Two "processes" here are two
AuditLog + ConsoleLease pairs on one store, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, update
from sqlalchemy.engine import Engine

from services.audit import AuditLog, audit_events
from services.store.leases import KEEP_EXPIRED, ConsoleLease, console_leases, process_namespace, store_now
from services.store import open_store

ROOT = Path(__file__).resolve().parents[1]
LONG = timedelta(seconds=60)  # the production lease: never runs out during a test by itself


@pytest.fixture
def store(store_url: str) -> Iterator[Engine]:
    engine = open_store(store_url)
    yield engine
    engine.dispose()


@pytest.fixture
def leases() -> Iterator[list[ConsoleLease]]:
    """Every lease a test starts, stopped at its end (before its database goes)."""
    started: list[ConsoleLease] = []
    yield started
    for lease in started:
        lease.stop(release=False)


def _console(store: Engine, name: str, leases: list[ConsoleLease], *, heartbeat: timedelta = timedelta(seconds=10),
             expiry: timedelta = LONG) -> tuple[AuditLog, ConsoleLease]:
    """A console process as services/console.py builds one: its audit log, then its lease."""
    audit = AuditLog(store, boot_id=name)
    lease = ConsoleLease(store, audit.boot_id, on_beat=audit.mark_interrupted, heartbeat_every=heartbeat,
                         expires_after=expiry)
    leases.append(lease.start())
    return audit, lease


def _write_in_flight(audit: AuditLog, key: str) -> int:
    return audit.begin(user="finance", role="finance", action="cancel", organization_id="org_abc123",
                       parameters={}, reason="test", idempotency_key=key)


def _outcome(store: Engine, event_id: int) -> str:
    with store.connect() as conn:
        return str(conn.execute(select(audit_events.c.outcome).where(audit_events.c.id == event_id)).scalar_one())


def _expire(store: Engine, lease_id: str) -> None:
    """As if its minute had passed with no heartbeat."""
    with store.begin() as conn:
        conn.execute(update(console_leases).where(console_leases.c.lease_id == lease_id).values(
            expires_at=store_now(conn) - timedelta(seconds=1)))


def test_a_starting_console_leaves_a_live_consoles_write_alone_and_settles_it_once_its_lease_expires(
        store: Engine, leases: list[ConsoleLease]) -> None:
    a, a_lease = _console(store, "console-a", leases)
    in_flight = _write_in_flight(a, "a-1")

    b, b_lease = _console(store, "console-b", leases)  # B starts while A is alive

    assert _outcome(store, in_flight) == "pending"
    assert b.mark_interrupted() == 0
    a_lease.stop(release=False)  # A crashes: no more heartbeats, its lease stays until it runs out
    b_lease.beat()
    assert _outcome(store, in_flight) == "pending"  # not yet expired
    _expire(store, "console-a")
    b_lease.beat()  # B's next heartbeat finds A gone
    assert _outcome(store, in_flight) == "unknown"


def test_a_crashed_consoles_write_becomes_unknown_within_its_lease_without_a_restart(
        store: Engine, leases: list[ConsoleLease]) -> None:
    heartbeat, expiry = timedelta(seconds=0.2), timedelta(seconds=1.5)
    a, a_lease = _console(store, "console-a", leases, heartbeat=heartbeat, expiry=expiry)
    _console(store, "console-b", leases, heartbeat=heartbeat, expiry=expiry)
    in_flight = _write_in_flight(a, "a-1")
    time.sleep(1.5 * expiry.total_seconds())  # A keeps renewing: past one lease, its write is untouched
    assert _outcome(store, in_flight) == "pending"

    a_lease.stop(release=False)
    crashed = time.monotonic()
    while _outcome(store, in_flight) == "pending" and time.monotonic() - crashed < 10:
        time.sleep(0.05)

    assert _outcome(store, in_flight) == "unknown"  # settled by B's heartbeat thread
    assert time.monotonic() - crashed < expiry.total_seconds() + 1.0


def test_a_console_that_stops_releases_its_lease_so_the_others_settle_it_at_once(
        store: Engine, leases: list[ConsoleLease]) -> None:
    a, a_lease = _console(store, "console-a", leases)
    _, b_lease = _console(store, "console-b", leases)
    in_flight = _write_in_flight(a, "a-1")
    a_lease.stop()
    b_lease.beat()
    assert _outcome(store, in_flight) == "unknown"


def test_writes_of_a_console_without_a_lease_are_unknown_when_another_starts(
        store: Engine, leases: list[ConsoleLease]) -> None:
    """The previous release took no lease, nor does a process stopped before leases: gone by definition."""
    before_leases = AuditLog(store, boot_id="old-release")
    in_flight = _write_in_flight(before_leases, "old-1")
    _console(store, "console-b", leases)
    assert _outcome(store, in_flight) == "unknown"


def _lease_of_another_process(store: Engine, lease_id: str, pid: int, namespace: str | None) -> None:
    """A live lease (a minute left) held by process `pid`, as that process would have written it."""
    with store.begin() as conn:
        moment = store_now(conn)
        conn.execute(console_leases.insert().values(
            lease_id=lease_id, process_id=pid, host=socket.gethostname(), started_at=moment, heartbeat_at=moment,
            expires_at=moment + LONG, pid_namespace=namespace))


CONSOLE_PROCESS = """
import sys, time
from services.audit import AuditLog
from services.store.leases import ConsoleLease
from services.store import open_store
store = open_store(sys.argv[1])
audit = AuditLog(store, boot_id="crashed")
ConsoleLease(store, audit.boot_id, on_beat=audit.mark_interrupted).start()
audit.begin(user="fay", role="finance", action="cancel", organization_id="org_abc123", parameters={},
            reason="test", idempotency_key="crashed-1")
print("in flight", flush=True)
time.sleep(120)
"""


def test_a_console_restarted_on_the_same_machine_settles_the_killed_ones_writes_at_once(
        store_url: str, store: Engine, leases: list[ConsoleLease]) -> None:
    """The killed console's lease has most of a minute left, but this machine can see its process is gone."""
    killed = subprocess.Popen([sys.executable, "-c", CONSOLE_PROCESS, store_url], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE)
    assert killed.stdout is not None and killed.stdout.readline().strip() == "in flight"
    killed.kill()  # SIGKILL: no atexit, the lease is not released
    killed.wait()
    with store.connect() as conn:
        assert conn.execute(select(console_leases.c.expires_at)).scalar_one() is not None
        in_flight = conn.execute(select(audit_events.c.id).where(audit_events.c.boot_id == "crashed")).scalar_one()
    assert _outcome(store, in_flight) == "pending"
    _console(store, "restarted", leases)
    assert _outcome(store, in_flight) == "unknown"


@pytest.mark.parametrize("where", ["a live process here", "a process on another machine"])
def test_a_lease_whose_process_can_not_be_seen_dead_runs_its_course(
        store: Engine, leases: list[ConsoleLease], where: str) -> None:
    running = subprocess.Popen(["sleep", "60"])
    try:
        gone = subprocess.Popen(["true"])
        gone.wait()
        if where == "a live process here":
            _lease_of_another_process(store, "other", running.pid, process_namespace())
        else:  # its process id means nothing here, whatever runs under that number on this machine
            _lease_of_another_process(store, "other", gone.pid, "another-machine/4026531836")
        in_flight = _write_in_flight(AuditLog(store, boot_id="other"), "other-1")
        _console(store, "starting", leases)
        assert _outcome(store, in_flight) == "pending"
    finally:
        running.kill()
        running.wait()


def test_a_completed_write_is_never_touched(store: Engine, leases: list[ConsoleLease]) -> None:
    a, a_lease = _console(store, "console-a", leases)
    done = _write_in_flight(a, "a-1")
    a.complete(done, "succeeded", request_id="req_1")
    a_lease.stop()
    _, b_lease = _console(store, "console-b", leases)
    assert _outcome(store, done) == "succeeded"


def test_the_lease_row_says_which_process_on_which_host_and_when(store: Engine, leases: list[ConsoleLease]) -> None:
    _, lease = _console(store, "console-a", leases)
    with store.connect() as conn:
        row = conn.execute(select(console_leases)).one()
    assert (row.lease_id, row.process_id, row.host) == ("console-a", os.getpid(), socket.gethostname())
    assert row.started_at <= row.heartbeat_at < row.expires_at
    first_beat = row.heartbeat_at
    time.sleep(0.01)
    lease.beat()
    with store.connect() as conn:
        assert conn.execute(select(console_leases.c.heartbeat_at)).scalar_one() > first_beat


def test_leases_expired_for_a_day_are_cleared_and_a_stalled_console_takes_its_lease_again(
        store: Engine, leases: list[ConsoleLease]) -> None:
    _, a_lease = _console(store, "console-a", leases)
    _, b_lease = _console(store, "console-b", leases)
    with store.begin() as conn:
        conn.execute(update(console_leases).where(console_leases.c.lease_id == "console-a").values(
            expires_at=store_now(conn) - KEEP_EXPIRED - timedelta(minutes=1)))
    b_lease.beat()
    with store.connect() as conn:
        assert set(conn.execute(select(console_leases.c.lease_id)).scalars()) == {"console-b"}
    a_lease.beat()  # A was only stalled: its next heartbeat takes the lease again
    with store.connect() as conn:
        assert set(conn.execute(select(console_leases.c.lease_id)).scalars()) == {"console-a", "console-b"}


def test_a_lease_must_outlive_two_heartbeats() -> None:
    with pytest.raises(ValueError):
        ConsoleLease(create_engine("sqlite://"), "x", heartbeat_every=timedelta(seconds=10),
                     expires_after=timedelta(seconds=15))
