"""One API key, two replicas: two bulk lookups started together in two OS processes, sharing the key's rate through
the store. `python -m bench --only shared-rate` (a `make bench` section), or alone: `python -m bench.shared_rate`.

A sandbox as its own process (1,000/min, 40 ms latency), a throwaway PostgreSQL migrated to head as the store, and
two child processes, each one "replica": its own PaymentsClient, RatePacer and SharedRateBudget on the store (as
services/console.py builds them), running services/bulk.py's BulkLookup over 1,000 organization ids of its own
(8 workers). Both build everything, say they are ready, and start on the same signal. Measured: each process's wall
time, the pair's (first start to last finish), failed rows, the 429s the sandbox sent (its own counter, including
any the client retried), and the pair's time over the floor for 2,000 ids at the key's rate (2,000 / (1,000/60) =
120 s, as for the single-process rows, not counting the bucket's burst). Twice: with the sandbox's default bucket
(a minute's worth, so the first ~900 go at once) and with a bucket of 20, where the floor binds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from .support import report

ROOT = Path(__file__).resolve().parent.parent
RATE_PER_MINUTE, LATENCY_MS, PER_REPLICA, REPLICAS, CONCURRENCY = 1000, 40, 1000, 2, 8
RATIO_TARGET = 1.05
SCENARIOS = (("default bucket", None), ("bucket of 20", 20))


def replica(base_url: str, store_url: str, ids_file: str) -> None:
    """One replica, in this process: builds its client and budget, says ready, waits for "go", runs, reports.
    The API key comes in the environment (BENCH_API_KEY), not on the command line."""
    from services.bulk import BulkLookup
    from services.payments.client import PaymentsClient
    from services.payments.rate_pacer import RatePacer
    from services.store.rate_budget import SharedRateBudget
    from services.store import store_engine

    ids, api_key = json.loads(Path(ids_file).read_text()), os.environ["BENCH_API_KEY"]
    engine = store_engine(store_url)  # migrated by the parent
    budget = SharedRateBudget(engine, api_key)
    client = PaymentsClient(base_url, api_key, pacer=RatePacer(shared=budget))
    print("ready", flush=True)
    sys.stdin.readline()
    started_at, started = time.time(), time.perf_counter()
    job = BulkLookup(client, ids, concurrency=CONCURRENCY).run()
    wall = time.perf_counter() - started
    progress = job.progress()
    client.close()
    budget.close()
    engine.dispose()
    print(json.dumps({"wall_seconds": round(wall, 2), "started_at": started_at, "finished_at": started_at + wall,
                      "rows": progress.done, "failed_rows": progress.failed, "not_found": progress.not_found,
                      "429s_surfaced": progress.rate_limited, "budget_steps": budget.steps,
                      "budget_failures": budget.failures}), flush=True)


def pair(name: str, burst: int | None, store_url: str) -> dict[str, Any]:
    from .support import sandbox_process

    flags = ["--rate-limit", str(RATE_PER_MINUTE), "--latency-ms", str(LATENCY_MS)]
    if burst:
        flags += ["--rate-burst", str(burst)]
    count = PER_REPLICA * REPLICAS
    with sandbox_process(*flags, organizations=count) as sandbox, tempfile.TemporaryDirectory() as scratch:
        ids = [row["id"] for row in sandbox.control.organizations()][:count]
        assert len(set(ids)) == count, "the sandbox seeded too few organizations"
        children = []
        for number in range(REPLICAS):
            ids_file = Path(scratch) / f"replica-{number}.json"
            ids_file.write_text(json.dumps(ids[number::REPLICAS]))  # distinct ids for each replica
            children.append(subprocess.Popen(
                [sys.executable, "-m", "bench.shared_rate", "--replica", sandbox.base_url, store_url, str(ids_file)],
                cwd=ROOT, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                env={**os.environ, "BENCH_API_KEY": sandbox.key}))
        for child in children:  # every one has built its client and budget…
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("a replica did not start")
        for child in children:  # …and they start together
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=900)[0] for child in children]
        if any(child.returncode for child in children):
            raise RuntimeError(f"a replica failed: {[child.returncode for child in children]}")
        replicas = [json.loads(output.strip().splitlines()[-1]) for output in outputs]
        refused = sandbox.control.stats()["rateLimited"]
    wall = max(run["finished_at"] for run in replicas) - min(run["started_at"] for run in replicas)
    floor = count / (RATE_PER_MINUTE / 60)
    return {"name": name, "organizations": count, "replicas": REPLICAS, "rate_per_minute": RATE_PER_MINUTE,
            "burst": burst or RATE_PER_MINUTE, "latency_ms": LATENCY_MS, "concurrency": CONCURRENCY,
            "replica_wall_seconds": [run["wall_seconds"] for run in replicas], "pair_wall_seconds": round(wall, 2),
            "start_spread_seconds": round(max(run["started_at"] for run in replicas)
                                          - min(run["started_at"] for run in replicas), 3),
            "floor_seconds": round(floor, 1), "ratio_to_floor": round(wall / floor, 3),
            "failed_rows": sum(run["failed_rows"] for run in replicas),
            "rows": sum(run["rows"] for run in replicas), "429s_met": refused,
            "429s_surfaced": sum(run["429s_surfaced"] for run in replicas),
            "budget_failures": sum(run["budget_failures"] for run in replicas)}


def run() -> dict[str, Any]:
    from tests.support.postgres import PostgresServer

    from services.store import open_store

    server = PostgresServer.start()
    try:
        results: dict[str, Any] = {"store": "PostgreSQL (throwaway, tests/support/postgres.py)", "runs": []}
        for name, burst in SCENARIOS:
            url = server.create_database()  # a fresh budget for each pair
            open_store(url).dispose()
            print(f"… two replicas, one key: {name}", flush=True)
            results["runs"].append(pair(name, burst, url))
            print(f"… {results['runs'][-1]}", flush=True)
        return results
    finally:
        server.stop()


def table(results: dict[str, Any]) -> str:
    """The section of docs/performance.md."""
    if not results:
        return "_Not measured in this run (`python -m bench --only shared-rate`)._"
    lines = ["| Two replicas, one API key, started together | each replica | the pair | floor | ratio | failed rows "
             "| 429s met | Target |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for run in results["runs"]:
        lines.append(f"| {run['organizations'] // run['replicas']:,} orgs each at {run['rate_per_minute']:,}/min, "
                     f"{run['latency_ms']} ms, burst {run['burst']:,} ({run['name']}) | "
                     f"{' / '.join(f'{seconds} s' for seconds in run['replica_wall_seconds'])} | "
                     f"**{run['pair_wall_seconds']} s** | {run['floor_seconds']} s for {run['organizations']:,} | "
                     f"**{run['ratio_to_floor']}** | {run['failed_rows']} | {run['429s_met']} | ≤ {RATIO_TARGET}× "
                     f"floor, 0 failed |")
    return "\n".join(lines)


def failures(results: dict[str, Any]) -> list[str]:
    if not results:
        return []
    return [f"shared rate: {run['name']}" for run in results["runs"]
            if run["failed_rows"] or run["rows"] != run["organizations"] or run["ratio_to_floor"] > RATIO_TARGET]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shared_rate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--replica", nargs=3, metavar=("BASE_URL", "STORE_URL", "IDS_FILE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.replica:
        replica(*args.replica)
        return 0
    results = run()
    return report(results, table, failures, args.json)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
