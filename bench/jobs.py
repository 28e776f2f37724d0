"""Two people's bulk jobs on one API key: `python -m bench.jobs`.

A sandbox as its own process (1,000/min, 40 ms latency, a bucket of 20 so the floor binds), a throwaway
PostgreSQL store migrated to head, two 1,000-id jobs of two people created together, and two worker processes
(`python -m services.jobs worker`, as `make cluster` and the systemd unit start them) on the production
settings. Measured from the store: the first job's start to the last one's finish, against the floor for 2,000
ids at the key's rate (120 s); failed rows; the 429s the sandbox sent. Target (issue 14): within 1.05× the floor,
0 failed rows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RATE_PER_MINUTE, LATENCY_MS, BURST, PER_JOB, WORKERS = 1000, 40, 20, 1000, 2


def run() -> dict[str, Any]:
    from services.auth.users import add_user
    from services.jobs.store import JobStore
    from services.store import open_store
    from tests.support.postgres import PostgresServer

    from .support import sandbox_process

    server = PostgresServer.start()
    flags = ["--rate-limit", str(RATE_PER_MINUTE), "--latency-ms", str(LATENCY_MS), "--rate-burst", str(BURST)]
    workers: list[subprocess.Popen[bytes]] = []
    try:
        url = server.create_database()
        engine = open_store(url)
        jobs = JobStore(engine)
        with sandbox_process(*flags, organizations=PER_JOB * 2) as sandbox, tempfile.TemporaryDirectory() as scratch:
            ids = [row["id"] for row in sandbox.control.organizations()][:PER_JOB * 2]
            add_user(Path(scratch) / "users.yaml", "ann", "support", "a-long-password-1")
            env = {**os.environ, "PAYMENTS_API_URL": sandbox.base_url, "PAYMENTS_API_KEY": sandbox.key,
                   "AUDIT_DATABASE_URL": url, "BILLING_DESK_USERS": str(Path(scratch) / "users.yaml"),
                   "BILLING_DESK_COOKIE_KEY": "bench-cookie-key-abcdefghijklmnopqrstuvwxyz",
                   "BILLING_DESK_AUDIT_KEY": "bench-audit-key-abcdefghijklmnopqrstuvwxyz",
                   "BILLING_DESK_PUBLIC_URL": "http://127.0.0.1:8501", "BILLING_DESK_DATA_DIR": scratch}
            env.pop("BILLING_DESK_SANDBOX", None)
            job_ids = [jobs.create("ann", "support", ids[:PER_JOB]), jobs.create("bob", "finance", ids[PER_JOB:])]
            workers = [subprocess.Popen([sys.executable, "-m", "services.jobs", "worker"], cwd=ROOT, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                       for _ in range(WORKERS)]
            while not all(jobs.job(job_id).status == "done" for job_id in job_ids):
                time.sleep(0.5)
            finished = [jobs.job(job_id) for job_id in job_ids]
            refused = sandbox.control.stats()["rateLimited"]
        wall = (max(job.finished_at for job in finished) - min(job.started_at for job in finished)).total_seconds()
        floor = PER_JOB * 2 / (RATE_PER_MINUTE / 60)
        engine.dispose()
        return {"jobs": len(job_ids), "ids": PER_JOB * 2, "workers": WORKERS, "rate_per_minute": RATE_PER_MINUTE,
                "burst": BURST, "latency_ms": LATENCY_MS, "wall_seconds": round(wall, 1),
                "job_wall_seconds": [round((job.finished_at - job.started_at).total_seconds(), 1) for job in finished],
                "floor_seconds": floor, "ratio_to_floor": round(wall / floor, 3),
                "failed_rows": sum(job.failed for job in finished), "429s_met": refused}
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
        server.stop()


def table(results: dict[str, Any]) -> str:
    """The section of docs/performance.md."""
    if not results:
        return "_Not measured in this run (`python -m bench --only jobs`)._"
    return "\n".join([
        "| Jobs | Ids | Floor (2,000 at 1,000/min) | Both done in | Each job | Ratio to floor | Failed rows | 429s |",
        "|---|---|---|---|---|---|---|---|",
        f"| {results['jobs']} × {results['ids'] // results['jobs']:,} | {results['ids']:,} | "
        f"{results['floor_seconds']:.0f} s | {results['wall_seconds']} s | "
        f"{', '.join(f'{seconds} s' for seconds in results['job_wall_seconds'])} | {results['ratio_to_floor']}× | "
        f"{results['failed_rows']} | {results['429s_met']} |"])


def failures(results: dict[str, Any]) -> list[str]:
    if not results:
        return []
    return ["bulk jobs on one key"] if results["failed_rows"] or results["ratio_to_floor"] > 1.05 else []


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
