"""`python -m services.jobs worker [--threads N]`: bulk-job workers in a process of their own.

Reads the console's configuration (PAYMENTS_API_URL and PAYMENTS_API_KEY, AUDIT_DATABASE_URL, the
BILLING_DESK_JOB_* limits), keeps a process lease in the store like a console, and works jobs until SIGTERM or
Ctrl-C, when it gives back the job it holds (another worker resumes it at once).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import uuid
from collections.abc import Sequence

from ..config import ConfigError, load_config
from ..audit import AuditLog
from ..directory import Directory, RefreshSchedule
from ..revenue import SnapshotSchedule
from ..run_log import configure_logging
from ..store.leases import ConsoleLease
from ..payments.client import PaymentsClient
from ..payments.rate_pacer import RatePacer
from ..store.rate_budget import SharedRateBudget
from ..store import StoreError, open_store
from . import claim_timing, job_store
from .worker import start_workers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.jobs", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["worker"])
    parser.add_argument("--threads", type=int, default=1, help="workers in this process (each runs one job)")
    args = parser.parse_args(argv)
    configure_logging("%(asctime)s %(levelname)s %(name)s: %(message)s")  # BILLING_DESK_LOG_FORMAT=json too
    try:
        config = load_config()
        if not config.api_url:
            raise ConfigError("A separate worker needs the Payments API (PAYMENTS_API_URL and PAYMENTS_API_KEY); "
                              "the embedded sandbox lives inside a console, whose own worker runs its jobs.")
        store = open_store(config.audit_database_url)
    except (ConfigError, StoreError) as problem:
        print(f"The bulk-job worker would not start: {problem}", file=sys.stderr)
        return 2
    lease = ConsoleLease(store, f"jobs-{uuid.uuid4().hex[:32]}").start()
    client = PaymentsClient(config.api_url, config.api_key or "", timeout=(3.05, config.api_timeout_seconds),
                            pacer=RatePacer(shared=SharedRateBudget(store, config.api_key or "")))
    jobs, customers = job_store(store, config), Directory(store)
    workers = start_workers(args.threads, jobs, client, lease_id=lease.lease_id, on_read=customers.note_job_read,
                            **claim_timing(config))
    if config.refresh_hour is not None:  # the directory's daily refresh, queued by one process among all
        RefreshSchedule(store, customers, jobs, AuditLog(store, environment=config.environment, keys=config.audit_keys),
                        hour=config.refresh_hour, by=f"worker {lease.lease_id[:16]}",
                        on_queued=lambda: [worker.wake() for worker in workers]).start()
    SnapshotSchedule(store, jobs, refresh_on=config.refresh_hour is not None,
                     by=f"worker {lease.lease_id[:16]}").start()  # the day's revenue snapshot, by one process
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(f"Bulk-job worker running ({args.threads} thread{'s' if args.threads != 1 else ''}).", flush=True)
    done.wait()
    for worker in workers:
        worker.stop(timeout=30)
    lease.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
