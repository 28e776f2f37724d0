"""One API key, several console processes: the key's rate budget in the store (services/store/rate_budget.py), shared by
every replica's RatePacer. The budget's own tests run on SQLite and on PostgreSQL (`store_url`); the last ones
send real lookups to a sandbox with a small bucket from two clients, each with its own pacer, as two replicas."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine, make_url

from sandbox import RunningSandbox, SandboxSettings, start_sandbox
from sandbox.control_client import SandboxControl
from services.payments.client import PaymentsClient
from services.payments.rate_pacer import RatePacer
from services.store.rate_budget import SharedRateBudget, key_fingerprint, rate_budgets
from services.store import open_store, store_engine
from tests.support.postgres import PostgresServer

KEY = "bsk_test_" + "ab" * 16
OTHER_KEY = "bsk_test_" + "cd" * 16


@pytest.fixture
def store(store_url: str) -> Iterator[Engine]:
    engine = open_store(store_url)
    yield engine
    engine.dispose()


def _budget(engine: Engine, **options: float) -> SharedRateBudget:
    return SharedRateBudget(engine, KEY, **options)


class FakeBudget:
    def __init__(self, wait: float = 0.0) -> None:
        self.wait, self.reserved, self.held, self.kept_free = wait, [], [], []

    def reserve(self, rate_per_second: float, burst: int, keep_free: int = 0) -> float:
        self.reserved.append((round(rate_per_second, 3), burst))
        self.kept_free.append(keep_free)
        return self.wait

    def hold(self, seconds: float) -> None:
        self.held.append(seconds)


# --- the pacer and its shared budget ------------------------------------------------------------------------
def test_the_pacer_books_every_request_in_the_shared_budget_and_waits_for_the_later_place() -> None:
    now = [0.0]
    shared = FakeBudget(wait=0.25)
    pacer = RatePacer(clock=lambda: now[0], shared=shared)
    assert pacer.delay_for_next() == 0.25  # the probe: the default rate (1,000 a minute), no burst yet
    pacer.observe({"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "99"})
    pacer.release()
    assert pacer.delay_for_next() == 0.25  # the local pacer has room; the shared place is later
    assert shared.reserved == [(16.667, 0), (10.0, 89)]  # a bucket of 100 seen: 100 - 1 - 10 spare
    shared.wait = 0.0
    pacer.observe({"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0"})
    assert pacer.delay_for_next() == pytest.approx(0.2)  # now the local pacer's place is the later one
    assert pacer.shared_burst == 89  # the largest bucket seen, not the last
    pacer.rate_limited(retry_after=3)
    assert shared.held == [3]  # every replica waits out the 429
    assert RatePacer(shared=shared).shared_burst == 0  # no bucket seen yet: no burst


def test_a_small_bucket_keeps_two_tokens_spare() -> None:
    pacer = RatePacer()
    for remaining, burst in [(0, 0), (2, 0), (9, 7), (19, 17), (999, 899)]:
        pacer.observe({"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": str(remaining)})
        assert pacer.shared_burst == burst


# --- the budget ---------------------------------------------------------------------------------------------
def test_two_replicas_booking_in_turn_get_the_burst_then_one_place_every_interval(store: Engine) -> None:
    replicas = [_budget(store), _budget(store)]
    rate, burst, count = 20.0, 4, 24
    sends = []
    for number in range(count):  # in turn, as fast as the store answers: far faster than 20 a second
        asked_at = time.time()
        sends.append(asked_at + replicas[number % 2].reserve(rate, burst))
    interval = 1 / rate
    assert all(send - sends[0] < interval for send in sends[:burst + 1])  # the burst: at once
    paced = sends[burst + 1:]  # then one every 50 ms, whichever replica asks
    assert paced[0] - sends[0] == pytest.approx(interval, abs=0.02)  # (the first step also connected)
    # Each send is estimated from the test's clock before the call: a busy machine delays the store's reading by a
    # few ms (6 ms seen under the full suite), still far from a wrong schedule (a whole 50 ms interval off).
    assert [send - paced[0] for send in paced] == pytest.approx([interval * number for number in range(len(paced))],
                                                                abs=0.01)
    assert [replica.steps for replica in replicas] == [count // 2] * 2
    assert [replica.failures for replica in replicas] == [0, 0]


def test_the_row_is_per_key_and_holds_a_fingerprint_never_the_key(store: Engine) -> None:
    mine, other = _budget(store), SharedRateBudget(store, OTHER_KEY)
    assert [mine.reserve(10.0, 0) for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2], abs=0.02)
    assert other.reserve(10.0, 0) == 0.0  # another key's budget is its own
    with store.connect() as conn:
        rows = conn.execute(select(rate_budgets)).all()
    assert sorted(row.key_id for row in rows) == sorted([key_fingerprint(KEY), key_fingerprint(OTHER_KEY)])
    assert all(len(row.key_id) == 24 and row.key_id not in KEY and KEY[9:] not in row.key_id for row in rows)


def test_every_replica_books_with_the_largest_burst_any_has_seen(store: Engine) -> None:
    """A replica that started while another's bulk run drained the bucket has only seen a small one: it must not
    queue behind the other's whole burst."""
    early, late = _budget(store), _budget(store)
    assert [early.reserve(10.0, 8) for _ in range(5)] == [0.0] * 5
    assert late.reserve(10.0, 1) == 0.0  # the 6th place of a burst of 8 + 1, not a burst of 1 + 1
    assert early.reserve(10.0, 8) == 0.0


def test_background_work_leaves_the_reserve_of_the_burst_to_people(store: Engine) -> None:
    """A place booked for background work (keep_free) waits where a person's, booked after it, goes at once."""
    refresh, person = _budget(store), _budget(store)
    for _ in range(15):  # 10 a second with a burst of 20: 15 places taken at once, the schedule 1.5 s ahead
        refresh.reserve(10.0, 20)
    assert refresh.reserve(10.0, 20, keep_free=10) > 0.3  # leaves 10 of the 20 to people: waits
    assert person.reserve(10.0, 20) == 0.0  # a person's: at once, though booked after it


def test_the_pacer_books_background_requests_with_its_reserve_kept_free() -> None:
    shared = FakeBudget()
    pacer = RatePacer(shared=shared)
    pacer.observe({"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "999"})
    pacer.delay_for_next()
    with pacer.in_background():
        pacer.delay_for_next()
    pacer.delay_for_next()
    assert shared.kept_free == [0, 100, 0]  # a tenth of the bucket, only while in the background
    assert pacer.background is False


def test_a_hold_after_a_429_is_seen_by_the_other_replica(store: Engine) -> None:
    one, two = _budget(store), _budget(store)
    assert one.reserve(10.0, 3) == 0.0
    one.hold(1.5)  # one replica met a 429 with Retry-After: 1.5
    waits = [two.reserve(10.0, 3) for _ in range(3)]
    assert waits[0] == pytest.approx(1.5, abs=0.05)  # the bucket counts empty after the hold: no burst
    assert waits[1] - waits[0] == pytest.approx(0.1, abs=0.01) and waits[2] - waits[1] == pytest.approx(0.1, abs=0.01)


# --- a store that fails -------------------------------------------------------------------------------------
@contextmanager
def _store_unavailable(store_url: str, request: pytest.FixtureRequest) -> Iterator[None]:
    """SQLite: another process holds the write lock (the budget waits its busy timeout, then gives up).
    PostgreSQL: the database refuses connections and those open are ended, as in a restart."""
    if store_url.startswith("sqlite"):
        holder = sqlite3.connect(str(make_url(store_url).database), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    database = make_url(store_url).database
    with psycopg.connect(server.admin_dsn, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')


def test_a_store_that_fails_is_left_alone_and_lookups_go_on_then_it_is_used_again(
        store: Engine, store_url: str, request: pytest.FixtureRequest, sandbox: RunningSandbox,
        caplog: pytest.LogCaptureFixture) -> None:
    budget = _budget(store, retry_after_failure=1.0, timeout_seconds=0.5)
    pacer = RatePacer(shared=budget)
    organizations = [row["id"] for row in SandboxControl(sandbox.root_url, sandbox.api_key).organizations()][:6]
    with PaymentsClient(sandbox.base_url, sandbox.api_key, pacer=pacer) as client:
        client.get_customer(organizations[0])
        assert budget.steps == 1 and budget.failures == 0
        caplog.set_level(logging.DEBUG, logger="billing_desk.rate_budget")
        with _store_unavailable(store_url, request):
            started = time.monotonic()
            for organization in organizations[1:]:  # reads go on, paced from the headers alone
                assert client.get_customer(organization).organization_id == organization
            assert time.monotonic() - started < 3.0  # one step waits out the store's timeout; the rest skip it
            assert budget.steps == 1 and budget.failures == len(organizations) - 1 and not budget.available
            warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
            assert len(warnings) == 1 and "paces itself alone" in warnings[0].getMessage()
            assert KEY not in caplog.text and sandbox.api_key not in caplog.text
        time.sleep(1.0)  # back, and the budget's back-off over
        client.get_customer(organizations[0])
        assert budget.steps == 2 and budget.available
        assert "back in the store" in caplog.text
    budget.close()


def test_an_unreachable_store_answers_at_once() -> None:
    engine = store_engine("postgresql://billing@127.0.0.1:1/billing")  # nothing listens on port 1
    budget = _budget(engine)
    started = time.monotonic()
    assert budget.reserve(10.0, 0) == 0.0 and budget.reserve(10.0, 0) == 0.0
    budget.hold(5)
    assert time.monotonic() - started < 2.5 and budget.failures == 3 and budget.steps == 0
    budget.close()


# --- two replicas, one key, a real sandbox ------------------------------------------------------------------
RATE_PER_MINUTE, BUCKET = 600, 10  # 10 a second, 10 at once: a bucket that lasts a second of lookups


def _two_replicas(tmp_path: Path, name: str, lookups_each: int, shared: bool) -> tuple[int, int, float]:
    """Two clients (each its own pacer, as two processes have), each running concurrent lookups; with `shared`
    each pacer books in its own SharedRateBudget on one store. Returns (429s the sandbox sent, failed lookups,
    seconds)."""
    running = start_sandbox(SandboxSettings(db_path=tmp_path / f"{name}.sqlite3", rate_limit=RATE_PER_MINUTE,
                                            rate_burst=BUCKET))
    store = open_store(f"sqlite:///{tmp_path / name}-store.sqlite3") if shared else None
    try:
        control = SandboxControl(running.root_url, running.api_key)
        organizations = [row["id"] for row in control.organizations()]
        budgets = [SharedRateBudget(store, running.api_key) for _ in range(2)] if store is not None else []
        clients = [PaymentsClient(running.base_url, running.api_key, backoff_factor=0.05,
                                  pacer=RatePacer(shared=budgets[number] if budgets else None)) for number in range(2)]
        failed = []

        def look_up(client: PaymentsClient, organization: str) -> None:
            try:
                client.get_customer(organization)
            except Exception as problem:  # noqa: BLE001 - counted, and the assertion shows them
                failed.append(problem)

        def replica(client: PaymentsClient) -> None:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda number: look_up(client, organizations[number % len(organizations)]),
                              range(lookups_each)))

        started = time.monotonic()
        threads = [threading.Thread(target=replica, args=(client,)) for client in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.monotonic() - started
        for client in clients:
            client.close()
        for budget in budgets:
            budget.close()
        return control.stats()["rateLimited"], len(failed), seconds
    finally:
        running.stop()
        if store is not None:
            store.dispose()


def test_two_replicas_sharing_the_budget_meet_no_429_at_the_keys_rate(tmp_path: Path) -> None:
    lookups = 2 * 36
    refused, failed, seconds = _two_replicas(tmp_path, "shared", lookups // 2, shared=True)
    assert (refused, failed) == (0, 0)
    floor = (lookups - BUCKET) / (RATE_PER_MINUTE / 60)  # after the bucket, the key's rate, for both together
    assert floor * 0.95 <= seconds <= floor * 1.3


def test_without_the_shared_budget_the_same_replicas_meet_429s(tmp_path: Path) -> None:
    """The check the test above can fail: each pacer alone believes it has the whole rate."""
    refused, _failed, _seconds = _two_replicas(tmp_path, "alone", 18, shared=False)
    assert refused > 0
