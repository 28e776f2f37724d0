"""The claim loop: a worker claims one job at a time, fetches its pending ids, and keeps its claim alive.

While it works a job, the worker renews its claim every `heartbeat_every` (the claim lasts `lease`); a worker
that dies stops renewing, and once the claim expires (or at once, when the worker's process lease is seen
ended) another worker claims the job and fetches the ids still pending: each result is saved as it arrives,
so only the few in flight when it died are fetched twice. A renewal that finds the job `stopping` ends it as
`stopped`; one that finds the claim gone (this worker stalled past its lease) quietly lets the job go.

A job ends as `failed`, with one sentence saying why, when going on could only fill it with the same error: the
API refused the key (every later id would be refused too), or it did not answer `OUTAGE_STREAK` ids in a row.
What was fetched before is kept.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta

from ..bulk import DEFAULT_CONCURRENCY, BulkRow, fetch_row, row_record
from ..payments.client import PaymentsClient
from ..payments.errors import ApiConnectionError, AuthenticationError, PaymentsError, ServerError
from ..payments.models import CustomerInfo, PlanCatalog
from .store import DONE, FAILED, IMPORT, REFRESH, STOPPED, STOPPING, Job, JobStore

log = logging.getLogger("billing_desk.jobs")

LEASE = timedelta(seconds=30)
HEARTBEAT_EVERY = 5.0
IDLE_POLL = 1.0  # how often an idle worker looks for a job
PURGE_EVERY = 3600.0
OUTAGE_STREAK = 25  # ids in a row the API didn't answer (unreachable, timed out, 5xx) before the job fails
KEY_REFUSED = ("The Payments API refused Billing Desk's API key, so the job stopped: an administrator must check "
               "the configured key, then start a new job for the ids not looked up.")
API_DOWN = (f"The Payments API did not answer {OUTAGE_STREAK} lookups in a row, so the job stopped: start a new "
            "job for the ids not looked up once it answers again.")


class FailureWatch:
    """Tells, result by result, whether a job should end as failed (shared by a job's fetching threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streak = 0
        self.reason: str | None = None

    def note(self, problem: PaymentsError | None) -> bool:
        """Records one id's outcome; True once the job should fail."""
        with self._lock:
            if isinstance(problem, AuthenticationError):
                self.reason = self.reason or KEY_REFUSED
            elif isinstance(problem, (ApiConnectionError, ServerError)):
                self._streak += 1
                if self._streak >= OUTAGE_STREAK:
                    self.reason = self.reason or API_DOWN
            else:
                self._streak = 0
            return self.reason is not None


class JobWorker:
    def __init__(self, jobs: JobStore, client: PaymentsClient, *, concurrency: int = DEFAULT_CONCURRENCY,
                 lease: timedelta = LEASE, heartbeat_every: float = HEARTBEAT_EVERY, idle_poll: float = IDLE_POLL,
                 lease_id: Callable[[], str | None] | str | None = None, name: str = "worker",
                 on_read: Callable[[str, str, CustomerInfo | None], object] | None = None) -> None:
        """`lease_id`: this process's console lease (services/store/leases.py), so a restarted console on the same
        machine takes over its jobs without waiting out the claim. `on_read(kind, organization_id, customer)`: told
        of every customer read (None: the API said there is no such organization); the composition root notes
        them in the customer directory. Its failure never fails the job."""
        if lease.total_seconds() < 2 * heartbeat_every:
            raise ValueError("A claim must outlive at least two heartbeats, or one late beat loses it.")
        self.jobs, self.client, self.concurrency = jobs, client, concurrency
        self.on_read = on_read
        self.lease, self.heartbeat_every, self.idle_poll = lease, heartbeat_every, idle_poll
        self._lease_id = lease_id
        self.worker_id = f"{socket.gethostname()[:30]}:{os.getpid()}:{name}:{uuid.uuid4().hex[:8]}"
        self._shutdown = threading.Event()  # stop after the current job, releasing it
        self._dead = threading.Event()  # tests: die as if killed (nothing saved, finished or released)
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_purge = 0.0
        self.current: str | None = None  # the job being worked, if any

    @property
    def lease_id(self) -> str | None:
        return self._lease_id() if callable(self._lease_id) else self._lease_id

    # --- the loop -----------------------------------------------------------------------------------------
    def start(self) -> JobWorker:
        self._thread = threading.Thread(target=self.run_forever, name=f"bulk-jobs-{self.worker_id}", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        """A job was just created: look now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Finishes the items in flight, gives the job back (another worker resumes it) and ends the loop."""
        self._shutdown.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def kill(self) -> None:
        """Plays a crash: the loop ends without saving what is in flight, finishing or releasing the job."""
        self._dead.set()
        self.stop(timeout=10.0)

    def run_forever(self) -> None:
        while not self._shutdown.is_set():
            try:
                self._purge_now_and_then()
                worked = self.run_once()
            except Exception:  # the loop outlives a store outage
                log.warning("Bulk job worker %s: the store failed; trying again.", self.worker_id, exc_info=True)
                worked = False
            if not worked:
                self._wake.wait(self.idle_poll)
                self._wake.clear()

    def run_once(self) -> bool:
        """Claims one job and works it to its end (or until this worker stops); False when none was waiting."""
        job = self.jobs.claim(self.worker_id, self.lease, self.lease_id)
        if job is None:
            return False
        self.current = job.id
        try:
            self._work(job)
        finally:
            self.current = None
        return True

    def _purge_now_and_then(self) -> None:
        if time.monotonic() - self._last_purge >= PURGE_EVERY or not self._last_purge:
            self._last_purge = time.monotonic()
            purged = self.jobs.purge()
            if purged:
                log.info("Purged %d bulk jobs past their retention.", purged)
            items = self.jobs.purge_background_items()
            if items:
                log.info("Deleted %d rows of imports and refreshes finished over a week ago.", items)

    # --- one job ------------------------------------------------------------------------------------------
    def _work(self, job: Job) -> None:
        if job.status == STOPPING:
            self.jobs.finish(job.id, self.worker_id, STOPPED)
            return
        halt = threading.Event()  # stop taking ids: stop asked, claim lost, or this worker stopping
        items: Iterator[tuple[int, str]] = iter(self.jobs.pending(job.id))
        take = threading.Lock()
        catalog: list[PlanCatalog | None] = []
        failures: list[BaseException] = []
        watch = FailureWatch()

        def plans(customer: CustomerInfo) -> PlanCatalog | None:  # fetched once, only if a plan has no name
            subscription = customer.subscription
            if subscription is None or subscription.plan_name or not subscription.product_id:
                return None
            with take:
                if not catalog:
                    try:
                        catalog.append(self.client.list_plans(customer.organization_id))
                    except PaymentsError:
                        return None
            return catalog[0]

        # An import or a refresh is work nobody waits for: it leaves the key's rate to people first.
        background = job.kind in (IMPORT, REFRESH)

        def fetch() -> None:
            try:
                with self.client.in_background() if background else contextlib.nullcontext():
                    fetch_all()
            except BaseException as problem:  # the store failed: give the job back
                failures.append(problem)
                halt.set()

        def fetch_all() -> None:
            while not halt.is_set():
                with take:
                    item = next(items, None)
                if item is None:
                    return
                position, organization_id = item
                row = fetch_row(self.client, organization_id, halt.is_set)
                if row is None or self._dead.is_set():
                    return
                self._tell(job, row)
                # A person's lookup keeps its results table; an import or a refresh only how each read went (the
                # directory holds what it needs, and no card data or address).
                record = (row_record(row, plans) if not background else
                          {"organization_id": row.organization_id, "status": row.status, "error": row.error})
                self.jobs.save(job.id, position, record)
                if watch.note(row.problem):
                    halt.set()

        threads = [threading.Thread(target=fetch, name=f"bulk-job-{job.id[:8]}-{index}", daemon=True)
                   for index in range(self.concurrency)]
        for thread in threads:
            thread.start()
        status: str | None = job.status
        while any(thread.is_alive() for thread in threads):
            if self._wait(threads, self.heartbeat_every):
                break
            if self._dead.is_set():
                halt.set()
                continue
            try:
                status = self.jobs.renew(job.id, self.worker_id, self.lease)
            except Exception:
                log.warning("Bulk job %s: the claim could not be renewed.", job.id, exc_info=True)
                continue
            if status is None or status == STOPPING or self._shutdown.is_set():
                halt.set()
            elif background and self.jobs.person_waiting():  # people first: this job waits for the next worker
                log.info("Bulk job %s (%s) gives its worker to a person's bulk lookup.", job.id, job.kind)
                halt.set()
        for thread in threads:
            thread.join()
        if self._dead.is_set() or status is None:
            return  # killed, or the claim went to another worker
        if failures:
            log.warning("Bulk job %s: the store failed mid-job; it will be resumed.", job.id,
                        exc_info=failures[0])
            self.jobs.release(job.id, self.worker_id)
            return
        status = self.jobs.renew(job.id, self.worker_id, self.lease)
        if status == STOPPING:
            self.jobs.finish(job.id, self.worker_id, STOPPED)
        elif status is not None and watch.reason:
            log.warning("Bulk job %s failed: %s", job.id, watch.reason)
            self.jobs.finish(job.id, self.worker_id, FAILED, watch.reason)
        elif status is not None and not self.jobs.pending(job.id):
            self.jobs.finish(job.id, self.worker_id, DONE)
        elif status is not None:
            self.jobs.release(job.id, self.worker_id)  # this worker stopped, or a person's job came: resumed later

    def _tell(self, job: Job, row: BulkRow) -> None:
        if self.on_read is None or (row.customer is None and row.status != "not found"):
            return
        try:
            self.on_read(job.kind, row.organization_id, row.customer)
        except Exception:
            log.warning("Bulk job %s: a read of %s could not be noted.", job.id, row.organization_id, exc_info=True)

    @staticmethod
    def _wait(threads: list[threading.Thread], seconds: float) -> bool:
        """Waits up to `seconds` for every thread to end; True when they have."""
        deadline = time.monotonic() + seconds
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)


def start_workers(count: int, jobs: JobStore, client: PaymentsClient, **options: object) -> list[JobWorker]:
    return [JobWorker(jobs, client, name=f"w{index}", **options).start()  # type: ignore[arg-type]
            for index in range(count)]

