"""People first: a refresh of the customer directory beside a person looking customers up, on one API key.
`python -m bench --only refresh` (a `make bench` section), or alone: `python -m bench.directory_refresh`.

A sandbox as its own process (1,000 requests a minute, its default bucket of a minute's worth, 20 ms latency,
5,000 organizations), a SQLite store holding the key's shared rate budget, and two clients on it as two console
processes would build them (services/console.py): the job worker's (8 threads, running the refresh as a job of
kind "refresh", so in the background) and the person's. First the person alone: a lookup every 2 s, 30 of them
(the reference). Then the refresh of all 5,000 with the person's lookups every 2 s beside it until it ends.

Measured: the person's lookup times (p50, p95) alone and beside the refresh; the refresh's wall time against its
floor for the rate the person leaves (5,000 / (1,000 - 30) a minute, not counting the bucket's first burst, as the
shared-rate rows count); the 429s the sandbox sent. Targets: refresh within 1.10x that floor, the person's lookups
no slower than 1.10x alone, no 429.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .support import sandbox_process

ORGANIZATIONS, RATE_PER_MINUTE, PERSON_EVERY, REFERENCE_LOOKUPS, CONCURRENCY = 5000, 1000, 2.0, 30, 8
TARGET = 1.10


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def _lookups(client: Any, ids: list[str], until: threading.Event | None, count: int | None) -> list[float]:
    """A person's lookups, one every PERSON_EVERY seconds: `count` of them, or until `until` is set."""
    times, index = [], 0
    while (count is None or index < count) and not (until is not None and until.is_set()):
        started = time.perf_counter()
        client.get_customer(ids[index % len(ids)])
        times.append((time.perf_counter() - started) * 1000)
        index += 1
        time.sleep(max(0.0, PERSON_EVERY - (time.perf_counter() - started)))
    return times


def run() -> dict[str, Any]:
    from services.directory import Directory
    from services.jobs.store import REFRESH, JobStore
    from services.jobs.worker import JobWorker
    from services.payments.client import PaymentsClient
    from services.payments.rate_pacer import RatePacer
    from services.store import open_store
    from services.store.rate_budget import SharedRateBudget

    with sandbox_process("--latency-ms", "20", organizations=ORGANIZATIONS) as sandbox, \
            tempfile.TemporaryDirectory() as scratch:
        store = open_store(f"sqlite:///{scratch}/store.sqlite3")
        ids = [row["id"] for row in sandbox.control.organizations()]

        def client() -> PaymentsClient:
            return PaymentsClient(sandbox.base_url, sandbox.key,
                                  pacer=RatePacer(shared=SharedRateBudget(store, sandbox.key)))

        person, refresher = client(), client()
        alone = _lookups(person, ids[::-1], None, REFERENCE_LOOKUPS)
        jobs, directory = JobStore(store), Directory(store)
        job_id = jobs.create("bench", "system", ids, kind=REFRESH)
        rate_limited_before = sandbox.control.stats()["rateLimited"]
        finished = threading.Event()
        beside: list[float] = []
        looking = threading.Thread(target=lambda: beside.extend(_lookups(person, ids[::-1], finished, None)))
        worker = JobWorker(jobs, refresher, concurrency=CONCURRENCY, on_read=directory.note_job_read,
                           heartbeat_every=1.0)
        started = time.perf_counter()
        looking.start()
        assert worker.run_once()
        wall = time.perf_counter() - started
        finished.set()
        looking.join()
        job = jobs.job(job_id)
        rate_left = (RATE_PER_MINUTE - 60 / PERSON_EVERY) / 60
        floor = ORGANIZATIONS / rate_left
        result = {
            "organizations": ORGANIZATIONS, "refresh_seconds": round(wall, 1), "floor_seconds": round(floor, 1),
            "ratio_to_floor": round(wall / floor, 3), "rows": job.done if job else None,
            "directory": directory.size(),
            "alone_ms": {"n": len(alone), "p50": round(statistics.median(alone), 1),
                         "p95": round(_percentile(alone, 0.95), 1)},
            "beside_ms": {"n": len(beside), "p50": round(statistics.median(beside), 1),
                          "p95": round(_percentile(beside, 0.95), 1)},
            "429s": sandbox.control.stats()["rateLimited"] - rate_limited_before,
            "person_waited_for_rate_seconds": round(person.pacer.waited_seconds, 3),
        }
        result["ratio_p50"] = round(result["beside_ms"]["p50"] / result["alone_ms"]["p50"], 3)
        result["ratio_p95"] = round(result["beside_ms"]["p95"] / result["alone_ms"]["p95"], 3)
        person.close()
        refresher.close()
        store.dispose()
        return result


def failures(result: dict[str, Any]) -> list[str]:
    if not result:
        return []
    missed = []
    if result["ratio_to_floor"] > TARGET:
        missed.append("directory refresh slower than 1.10x its floor")
    if result["ratio_p50"] > TARGET or result["ratio_p95"] > TARGET:
        missed.append("a person's lookups slower beside the refresh")
    if result["429s"]:
        missed.append("429s during the refresh")
    return missed


def table(result: dict[str, Any]) -> str:
    if not result:
        return "(not run: `python -m bench --only refresh`)"
    alone, beside = result["alone_ms"], result["beside_ms"]
    return "\n".join([
        "| Measure | Result | Target |",
        "|---|---|---|",
        f"| Refresh of {result['organizations']:,} organizations (8 threads, background) | "
        f"**{result['refresh_seconds']} s**, {result['ratio_to_floor']}x its floor of {result['floor_seconds']} s | "
        f"<= {TARGET}x |",
        f"| A person's lookup, every 2 s: alone ({alone['n']}) / beside the refresh ({beside['n']}), p50 | "
        f"{alone['p50']} / **{beside['p50']} ms** ({result['ratio_p50']}x) | <= {TARGET}x |",
        f"| … p95 | {alone['p95']} / **{beside['p95']} ms** ({result['ratio_p95']}x) | <= {TARGET}x |",
        f"| The person's time waiting for the rate | {result['person_waited_for_rate_seconds']} s | 0 |",
        f"| 429s sent by the sandbox | {result['429s']} | 0 |",
    ])


if __name__ == "__main__":
    measured = run()
    print(json.dumps(measured, indent=2))
    print(table(measured))
    Path(__file__).with_name("directory_refresh.json").write_text(json.dumps(measured, indent=2))
