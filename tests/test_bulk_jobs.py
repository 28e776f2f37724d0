"""Bulk jobs in the store and their workers, on SQLite and PostgreSQL, against a real sandbox: one worker per
job at a time, a worker killed mid-job and another taking over with every id fetched once but those in flight,
stop, the limits, the purge, and the desk's rules (who sees which job, what is audited)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from sandbox import RunningSandbox, SandboxSettings, start_sandbox
from sandbox.control_client import SandboxControl
from services.audit import AuditFilter, AuditLog
from services.auth.roles import Actor, PermissionDenied, Role
from services.desk import BillingDesk
from services.inputs import InputRefused
from services.jobs.store import (DONE, FAILED, IMPORT, QUEUED, REFRESH, RUNNING, STOPPED, JobStore, bulk_job_items,
                                 bulk_jobs)
from services.jobs.worker import API_DOWN, KEY_REFUSED, OUTAGE_STREAK, JobWorker
from services.payments.client import PaymentsClient
from services.store import open_store

FAST = {"lease": timedelta(seconds=1.2), "heartbeat_every": 0.2, "idle_poll": 0.05}


@pytest.fixture
def jobs(store_url: str) -> Iterator[JobStore]:
    engine = open_store(store_url)
    yield JobStore(engine)
    engine.dispose()


@pytest.fixture
def slow_sandbox(tmp_path: Path) -> Iterator[RunningSandbox]:
    running = start_sandbox(SandboxSettings(db_path=tmp_path / "slow.sqlite3", latency_ms=60))
    yield running
    running.stop()


def _ids(control: SandboxControl, count: int | None = None) -> list[str]:
    return [row["id"] for row in control.organizations()][:count]


def _reads(control: SandboxControl) -> dict[str, int]:
    return {path.split("organizationId=")[1]: count for path, count in control.calls("customer-info").items()}


def _wait(condition, seconds: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_job_runs_to_the_end_with_results_in_the_order_given(jobs: JobStore, client: PaymentsClient,
                                                               control: SandboxControl) -> None:
    ids = _ids(control, 12) + ["org_doesnotexist"]
    job_id = jobs.create("ann", "support", ids)
    assert jobs.job(job_id).status == QUEUED
    assert JobWorker(jobs, client, **FAST).run_once()
    job = jobs.job(job_id)
    assert job.status == DONE and job.done == 13 and job.not_found == 1 and job.failed == 0
    assert job.started_at is not None and job.finished_at is not None and job.worker_id is None
    results = jobs.results(job_id)
    assert [row["organization_id"] for row in results] == ids
    assert results[-1]["status"] == "not found" and results[-1]["error"] == "No such organization"
    assert set(_reads(control).values()) == {1} and len(_reads(control)) == 13
    assert not JobWorker(jobs, client, **FAST).run_once()  # nothing left to claim


def test_exactly_one_worker_holds_a_job_until_its_claim_expires(jobs: JobStore) -> None:
    first = jobs.create("ann", "support", ["org_a", "org_b"])
    claimed = jobs.claim("w1", timedelta(seconds=1))
    assert claimed is not None and claimed.id == first and claimed.status == RUNNING
    assert jobs.claim("w2", timedelta(seconds=1)) is None
    assert jobs.renew(first, "w1", timedelta(seconds=1)) == RUNNING
    assert jobs.renew(first, "w2", timedelta(seconds=1)) is None  # not its claim
    time.sleep(1.2)
    taken = jobs.claim("w2", timedelta(seconds=30))
    assert taken is not None and taken.id == first and taken.worker_id == "w2"
    assert jobs.renew(first, "w1", timedelta(seconds=1)) is None  # w1 lost it: it lets the job go
    assert not jobs.finish(first, "w1", DONE)


def test_workers_take_the_jobs_of_the_person_with_fewest_running_first(jobs: JobStore) -> None:
    first, second = jobs.create("ann", "support", ["org_a"]), jobs.create("ann", "support", ["org_b"])
    bobs = jobs.create("bob", "support", ["org_c"])
    assert jobs.claim("w1", timedelta(seconds=30)).id == first
    assert jobs.claim("w2", timedelta(seconds=30)).id == bobs  # not ann's second while her first runs
    assert jobs.claim("w3", timedelta(seconds=30)).id == second


def test_a_person_s_bulk_lookup_is_claimed_before_imports_and_refreshes(jobs: JobStore) -> None:
    """People first: a refresh or an import queued earlier waits for the next free worker after a person's job."""
    refresh = jobs.create("refresh", "admin", ["org_a"], kind=REFRESH)
    imported = jobs.create("ada", "admin", ["org_b"], kind=IMPORT)
    lookup = jobs.create("ann", "support", ["org_c"])
    assert [jobs.claim(worker, timedelta(seconds=30)).id for worker in ("w1", "w2", "w3")] == [  # type: ignore[union-attr]
        lookup, refresh, imported]


def test_a_worker_killed_mid_job_is_replaced_and_every_id_is_fetched_once(
        jobs: JobStore, slow_sandbox: RunningSandbox) -> None:
    control = SandboxControl(slow_sandbox.root_url, slow_sandbox.api_key)
    ids = _ids(control)
    with PaymentsClient(slow_sandbox.base_url, slow_sandbox.api_key) as client:
        job_id = jobs.create("ann", "support", ids)
        first = JobWorker(jobs, client, concurrency=3, **FAST).start()
        _wait(lambda: jobs.job(job_id).done >= 15)
        second = JobWorker(jobs, client, concurrency=3, **FAST).start()
        time.sleep(0.3)
        assert jobs.job(job_id).worker_id == first.worker_id  # the second waits: one worker per job
        first.kill()  # dies: what it has in flight is lost, the job is neither finished nor released
        killed_at = jobs.job(job_id).done
        assert jobs.job(job_id).status == RUNNING and killed_at < len(ids)
        _wait(lambda: jobs.job(job_id).status == DONE)
        second.stop()
    job = jobs.job(job_id)
    assert job.done == len(ids) and [row["organization_id"] for row in jobs.results(job_id)] == ids
    reads = _reads(control)
    assert set(reads) == set(ids)
    twice = [organization for organization, count in reads.items() if count > 1]
    assert len(twice) <= 3 and max(reads.values()) <= 2  # only those the dead worker had in flight


def test_stop_from_anywhere_keeps_what_was_fetched(jobs: JobStore, slow_sandbox: RunningSandbox) -> None:
    control = SandboxControl(slow_sandbox.root_url, slow_sandbox.api_key)
    with PaymentsClient(slow_sandbox.base_url, slow_sandbox.api_key) as client:
        queued = jobs.create("ann", "support", ["org_a"])
        assert jobs.request_stop(queued, "ann") and jobs.job(queued).status == STOPPED  # never ran
        job_id = jobs.create("ann", "support", _ids(control))
        worker = JobWorker(jobs, client, concurrency=2, **FAST).start()
        _wait(lambda: jobs.job(job_id).done >= 5)
        assert jobs.request_stop(job_id, "admin")
        _wait(lambda: jobs.job(job_id).status == STOPPED, 10)
        worker.stop()
    job = jobs.job(job_id)
    assert 5 <= job.done < job.total and job.stopped_by == "admin"
    assert len(jobs.results(job_id)) == job.done
    assert not jobs.request_stop(job_id, "ann")  # already finished


def test_a_job_whose_key_is_refused_fails_at_once_with_one_sentence_keeping_what_was_fetched(
        jobs: JobStore, client: PaymentsClient, control: SandboxControl) -> None:
    ids = _ids(control, 40)
    job_id = jobs.create("ann", "support", ids)
    worker = JobWorker(jobs, client, concurrency=1, **FAST)
    control.add_fault("customer-info", latencyMs=30)
    worker.start()
    _wait(lambda: jobs.job(job_id).done >= 5)
    control.clear_faults()
    control.add_fault("*", status=401, code="api_key_revoked")  # the key is revoked mid-job
    _wait(lambda: jobs.job(job_id).status == FAILED)
    worker.stop()
    job = jobs.job(job_id)
    assert job.failure == KEY_REFUSED and job.finished_at is not None and job.worker_id is None
    assert 5 <= job.done < 40 and job.failed <= 2  # it stopped at the first refusal, not after 40 of them
    fetched = [row for row in jobs.results(job_id) if row.get("status") != "error"]
    assert len(fetched) >= 5 and all(row["status"] for row in fetched)  # the results before it are kept
    assert len(jobs.pending(job_id)) == 40 - job.done
    assert not JobWorker(jobs, client, **FAST).run_once()  # a failed job is finished: nobody claims it again


def test_a_job_fails_when_the_api_stops_answering_but_not_for_a_few_errors(
        jobs: JobStore, client: PaymentsClient, control: SandboxControl) -> None:
    ids = _ids(control, 60)
    attempts = 3  # the client tries a 503 three times (its two retries) before the id counts as failed
    # A bad moment: one id short of the streak fails, then the API answers again, and the job goes on.
    control.add_fault("customer-info", status=503, count=(OUTAGE_STREAK - 1) * attempts)
    job_id = jobs.create("ann", "support", ids)
    assert JobWorker(jobs, client, concurrency=1, **FAST).run_once()
    job = jobs.job(job_id)
    assert (job.status, job.done, job.failure) == (DONE, 60, None) and job.failed == OUTAGE_STREAK - 1
    control.clear_faults()
    control.add_fault("customer-info", status=503)  # down for good
    second = jobs.create("ann", "support", ids)
    assert JobWorker(jobs, client, concurrency=1, **FAST).run_once()
    job = jobs.job(second)
    assert (job.status, job.done, job.failed, job.failure) == (FAILED, OUTAGE_STREAK, OUTAGE_STREAK, API_DOWN)


def test_limits_each_refused_with_one_sentence(jobs: JobStore) -> None:
    for _ in range(3):
        jobs.create("ann", "support", ["org_a"])
    with pytest.raises(InputRefused, match=r"^You already have 3 bulk lookups queued or running \(at most 3\)"):
        jobs.create("ann", "support", ["org_a"])
    jobs.create("bob", "support", ["org_a"])  # a limit per person
    with pytest.raises(InputRefused, match="at most 5,000 organization ids; this one has 5,001"):
        jobs.create("bob", "support", [f"org_{index}" for index in range(5001)])
    with pytest.raises(InputRefused, match="at least one"):
        jobs.create("bob", "support", [])


def test_finished_jobs_are_purged_after_the_retention(jobs: JobStore, client: PaymentsClient,
                                                     control: SandboxControl) -> None:
    old, recent = jobs.create("ann", "support", _ids(control, 2)), jobs.create("ann", "support", _ids(control, 2))
    worker = JobWorker(jobs, client, **FAST)
    assert worker.run_once() and worker.run_once()
    with jobs.engine.begin() as conn:
        conn.execute(update(bulk_jobs).where(bulk_jobs.c.id == old).values(
            finished_at=jobs.job(old).finished_at - timedelta(days=31)))
    assert jobs.purge() == 1
    assert jobs.job(old) is None and jobs.results(old) == [] and jobs.job(recent) is not None
    assert [job.id for job in jobs.jobs("ann")] == [recent]  # no longer listed or opened
    with jobs.engine.connect() as conn:  # the customer data is gone; which organizations it looked up is not
        kept = conn.execute(select(bulk_job_items.c.organization_id, bulk_job_items.c.result, bulk_job_items.c.error)
                            .where(bulk_job_items.c.job_id == old)).all()
    assert len(kept) == 2 and all(result is None and error is None for _, result, error in kept)
    [purged] = [job for job in jobs.jobs_including(kept[0].organization_id) if job.id == old]
    assert purged.purged_at is not None and purged.username == "ann" and purged.total == 2
    assert jobs.jobs_including(kept[0].organization_id, username="bob") == []  # one person's, in the query
    assert len(jobs.jobs_including(kept[0].organization_id, limit=1)) == 1
    assert jobs.purge() == 0  # once


def test_the_rows_of_imports_and_refreshes_leave_a_week_after_them_a_person_s_lookup_keeps_its(
        jobs: JobStore, client: PaymentsClient, control: SandboxControl, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.jobs import store as job_store

    ids = _ids(control, 5)
    refresh = jobs.create("directory", "admin", ids, kind=REFRESH)
    lookup = jobs.create("ann", "support", ids[:2])
    recent = jobs.create("directory", "admin", ids[:3], kind=REFRESH)
    worker = JobWorker(jobs, client, **FAST)
    assert worker.run_once() and worker.run_once() and worker.run_once()
    with jobs.engine.begin() as conn:
        conn.execute(update(bulk_jobs).where(bulk_jobs.c.id.in_([refresh, lookup])).values(
            finished_at=jobs.job(refresh).finished_at - timedelta(days=8)))
    monkeypatch.setattr(job_store, "ITEMS_PURGED_PER_TRANSACTION", 2)  # three transactions: 2, 2, 1
    assert jobs.purge_background_items() == 5

    def rows(job_id: str) -> int:
        with jobs.engine.connect() as conn:
            return len(conn.execute(select(bulk_job_items.c.position).where(bulk_job_items.c.job_id == job_id)).all())

    assert (rows(refresh), rows(lookup), rows(recent)) == (0, 2, 3)
    assert jobs.purge_background_items() == 0


def test_the_desk_audits_starts_stops_and_downloads_and_shows_jobs_to_their_owner_or_admin(
        store_url: str, client: PaymentsClient, control: SandboxControl) -> None:
    desk = BillingDesk(client, AuditLog(store_url))
    ann, bob, admin = Actor("ann", Role.SUPPORT), Actor("bob", Role.SUPPORT), Actor("root", Role.ADMIN)
    job_id = desk.start_bulk_job(ann, _ids(control, 4))
    assert [job.id for job in desk.bulk_jobs(ann)] == [job_id] and desk.bulk_jobs(bob) == []
    assert [job.id for job in desk.bulk_jobs(admin, everyone=True)] == [job_id]
    with pytest.raises(PermissionDenied):
        desk.bulk_jobs(ann, everyone=True)
    with pytest.raises(InputRefused, match="no bulk lookup with that id that you may see"):
        desk.bulk_job(bob, job_id)
    assert JobWorker(desk.jobs, client, **FAST).run_once()
    view = desk.bulk_job(admin, job_id)
    assert view.job.status == DONE and len(view.results) == 4
    csv = desk.bulk_job_export(ann, job_id, "results", "csv").decode()
    assert csv.splitlines()[0].startswith('"organization_id","name","status"') and len(csv.splitlines()) == 5
    with pytest.raises(PermissionDenied):
        desk.bulk_job_export(ann, job_id, "summary", "csv")
    summary = desk.bulk_job_export(admin, job_id, "summary", "csv").decode()
    assert summary.startswith('"table",') and len(summary.splitlines()) > 2
    assert desk.bulk_job_export(admin, job_id, "summary", "xlsx")[:2] == b"PK"  # a zip: an .xlsx workbook
    with pytest.raises(InputRefused, match="as CSV or Excel"):
        desk.bulk_job_export(ann, job_id, "results", "pdf")
    assert not desk.stop_bulk_job(admin, job_id)  # it had finished
    events = desk.audit.events(AuditFilter())
    start = events[events.action == "start bulk lookup"].iloc[0]
    assert start.user == "ann" and job_id in start.parameters and '"organizations": 4' in start.parameters
    downloads = events[events.action == "download bulk lookup"]
    assert len(downloads) == 3 and set(downloads.user) == {"ann", "root"}
    assert all('"rows": 4' in parameters and job_id in parameters for parameters in downloads.parameters)


def test_a_separate_worker_process_runs_jobs_and_gives_its_job_back_on_sigterm(tmp_path: Path,
                                                                            slow_sandbox: RunningSandbox) -> None:
    """`python -m services.jobs worker`, as `make cluster` starts it, on the production settings."""
    import os
    import signal
    import subprocess
    import sys

    from services.auth.users import add_user

    add_user(tmp_path / "users.yaml", "ann", "support", "a-long-password-1")
    store_url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    engine = open_store(store_url)
    jobs = JobStore(engine)
    control = SandboxControl(slow_sandbox.root_url, slow_sandbox.api_key)
    ids = _ids(control)
    job_id = jobs.create("ann", "support", ids)
    env = {**os.environ, "PAYMENTS_API_URL": slow_sandbox.base_url, "PAYMENTS_API_KEY": slow_sandbox.api_key,
           "AUDIT_DATABASE_URL": store_url, "BILLING_DESK_USERS": str(tmp_path / "users.yaml"),
           "BILLING_DESK_COOKIE_KEY": "k" * 8 + "abcdefghijklmnopqrstuvwxyz012345",
           "BILLING_DESK_AUDIT_KEY": "a" * 8 + "abcdefghijklmnopqrstuvwxyz012345",
           "BILLING_DESK_PUBLIC_URL": "http://127.0.0.1:8501", "BILLING_DESK_JOB_LEASE_SECONDS": "3"}
    env.pop("BILLING_DESK_SANDBOX", None)
    root = Path(__file__).resolve().parents[1]
    worker = subprocess.Popen([sys.executable, "-m", "services.jobs", "worker"], cwd=root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: jobs.job(job_id).done >= 10, 60)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        job = jobs.job(job_id)
        assert job.status == RUNNING and job.worker_id is None and job.done < len(ids)  # given back at once
        worker = subprocess.Popen([sys.executable, "-m", "services.jobs", "worker"], cwd=root, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        _wait(lambda: jobs.job(job_id).status == DONE, 60)
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0].decode()
    assert "Bulk-job worker running" in output, output
    reads = _reads(control)
    assert set(reads) == set(ids) and max(reads.values()) == 1  # a clean stop fetches nothing twice
    engine.dispose()


def test_a_refresh_being_worked_gives_its_worker_to_a_person_s_lookup(
        jobs: JobStore, slow_sandbox: RunningSandbox) -> None:
    """One worker, busy with a refresh: a person's bulk lookup queued meanwhile is done first, then the refresh
    resumes where it stopped (each id read once)."""
    control = SandboxControl(slow_sandbox.root_url, slow_sandbox.api_key)
    ids = _ids(control)
    with PaymentsClient(slow_sandbox.base_url, slow_sandbox.api_key) as client:
        refresh = jobs.create("refresh", "system", ids, kind=REFRESH)
        worker = JobWorker(jobs, client, concurrency=2, **FAST).start()
        try:
            _wait(lambda: jobs.job(refresh).done >= 5)
            lookup = jobs.create("ann", "support", ids[:3])
            _wait(lambda: jobs.job(lookup).status == DONE)
            assert jobs.job(refresh).status != DONE  # the person's job did not wait for the whole refresh
            _wait(lambda: jobs.job(refresh).status == DONE)
        finally:
            worker.stop()
    assert jobs.job(refresh).done == len(ids)
