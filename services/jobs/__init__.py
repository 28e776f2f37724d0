"""Bulk lookups as durable jobs: kept in the store, run by workers that claim them with a lease.

A job is a row in `bulk_jobs` and one row per organization id in `bulk_job_items` (store.py). A person starts
one through the desk (services/desk/ `start_bulk_job`); it waits `queued` until a worker claims it. Workers
(worker.py) run inside each console process (`BILLING_DESK_JOB_WORKERS`, 2 by default) and, in production, as
separate processes too (`python -m services.jobs worker`, started by `make cluster`). A worker claims one job at
a time for a lease it renews while working, fetches the ids still pending through the one PaymentsClient (whose
pacer books every request in the key's rate budget shared through the store, services/store/rate_budget.py, so the
jobs of every worker and replica together stay under the key's limit), saves each result as it arrives, ends
the job `done`, or `stopped` when someone asked it to stop from any session. A worker that dies stops renewing:
once its claim expires (or at once when its process's console lease is seen ended, as after a kill -9 and a
restart on the same machine) another worker takes the job over with the pending ids only. A finished job's
results are purged after `BILLING_DESK_JOB_KEEP_DAYS` (30) by the workers; the job and the ids it looked up stay
(marked purged, no longer listed), so each customer's history still says who looked them up in bulk.

Why a claim loop of our own rather than procrastinate or pgqueuer: both are PostgreSQL-only (LISTEN/NOTIFY,
PL/pgSQL, their own schema), while the embedded default runs on SQLite and must work without PostgreSQL; a
second queue for one backend would mean two code paths for one feature. The loop is about a hundred lines on
both backends: on PostgreSQL the claim is `SELECT … FOR UPDATE SKIP LOCKED` (workers never block each other),
on SQLite an UPDATE guarded by the same "unclaimed or claim expired" condition (one writer at a time anyway).
Our jobs are few (at most a few per person) and long (minutes), so polling every second costs nothing, and
the state a job needs (per-id progress, resumable results, who may see it) lives in our own tables, which a
generic queue would not hold for us.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine

from .store import JobStore


def job_store(engine: Engine, config: object) -> JobStore:
    """The jobs' store with the limits of this configuration (services/config.py ConsoleConfig)."""
    return JobStore(engine, max_active=int(getattr(config, "job_limit", 3)),
                    keep=timedelta(days=float(getattr(config, "job_keep_days", 30))))


def claim_timing(config: object) -> dict[str, object]:
    """The worker's lease and heartbeat (six beats a lease, as the console leases)."""
    lease = float(getattr(config, "job_lease_seconds", 30))
    return {"lease": timedelta(seconds=lease), "heartbeat_every": max(0.3, lease / 6)}
