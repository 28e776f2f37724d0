"""`make bench`: bulk lookup against the rate-limit floor, console lookup latency, cache use, sandbox throughput.

Every figure is printed beside its reference measured in the same run, and written to bench/results.json
(`--record` also rewrites docs/performance.md). Everything runs on loopback against the sandbox.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import requests

from sandbox.control_client import SandboxControl
from sandbox.settings import new_test_key
from services.bulk import BulkLookup
from services.payments.client import PaymentsClient

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 8


@dataclass
class SandboxProcess:
    base_url: str
    control: SandboxControl
    key: str


@contextmanager
def sandbox_process(*flags: str, organizations: int = 74) -> Iterator[SandboxProcess]:
    """The sandbox as its own process, like a real API: no shared interpreter with the client."""
    from tests.e2e.conftest import free_port

    port, key = free_port(), new_test_key()
    with tempfile.TemporaryDirectory() as data:
        process = subprocess.Popen([sys.executable, "-m", "sandbox", "--port", str(port), "--api-key", key,
                                    "--db", f"{data}/sandbox.sqlite3", "--organizations", str(organizations),
                                    *flags], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        control = SandboxControl(f"http://127.0.0.1:{port}", key)
        deadline = time.monotonic() + 60
        while True:
            try:
                control.stats()
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the sandbox did not start") from None
                time.sleep(0.1)
        try:
            yield SandboxProcess(f"http://127.0.0.1:{port}/api/v1", control, key)
        finally:
            process.terminate()
            process.wait(timeout=10)


def bulk_run(name: str, count: int, rate_per_minute: int, latency_ms: int, burst: int | None,
             naive: bool) -> dict[str, Any]:
    flags = ["--rate-limit", str(rate_per_minute), "--latency-ms", str(latency_ms)]
    if burst:
        flags += ["--rate-burst", str(burst)]
    with sandbox_process(*flags, organizations=count) as sandbox:
        ids = [row["id"] for row in sandbox.control.organizations()][:count]
        floor = max(count / (rate_per_minute / 60), count * latency_ms / 1000 / CONCURRENCY)
        with PaymentsClient(sandbox.base_url, sandbox.key) as client:
            started = time.perf_counter()
            job = BulkLookup(client, ids, concurrency=CONCURRENCY).run()
            wall = time.perf_counter() - started
        progress = job.progress()
        result = {"name": name, "organizations": count, "rate_per_minute": rate_per_minute, "latency_ms": latency_ms,
                  "burst": burst or rate_per_minute, "concurrency": CONCURRENCY, "wall_seconds": round(wall, 2),
                  "floor_seconds": round(floor, 2), "ratio_to_floor": round(wall / floor, 3),
                  "429s_met": sandbox.control.stats()["rateLimited"], "429s_surfaced": progress.rate_limited,
                  "failed_rows": progress.failed, "rows": progress.done}
        if naive:
            before = sandbox.control.stats()["rateLimited"]
            with PaymentsClient(sandbox.base_url, sandbox.key) as client:
                started = time.perf_counter()
                for organization_id in ids:
                    client.get_customer(organization_id)
                result["naive_sequential_seconds"] = round(time.perf_counter() - started, 2)
            result["naive_429s_met"] = sandbox.control.stats()["rateLimited"] - before
    return result


def console_lookups(lookups: int = 30) -> dict[str, Any]:
    """In Chromium: log in, then look organizations up on the Customer page; and API calls per page view."""
    from playwright.sync_api import expect, sync_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, login, open_page, start_console, wait_for_app, warm_up

    with tempfile.TemporaryDirectory() as data, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        console = start_console(Path(data))
        try:
            warm_up(console, browser)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            login(page, console, "support")
            organizations = console.sandbox.organizations()[:lookups]
            timings = []
            box = page.get_by_role("textbox", name="Organization id")
            for organization in organizations:
                expect(box).to_have_value("")  # the previous lookup has cleared the box
                box.fill(organization["id"])
                expect(box).to_have_value(organization["id"])
                started = time.perf_counter()
                page.get_by_role("button", name="Look up").click()
                expect(page.get_by_role("heading", name=organization["name"], exact=True)).to_be_visible()
                timings.append((time.perf_counter() - started) * 1000)
                wait_for_app(page, settle_ms=100)
            target = organizations[0]["id"]
            calls = []
            for _visit in range(3):  # first view, then two revisits within the cache TTL
                before = console.sandbox.stats()["requests"]
                open_page(page, console, f"plans?org={target}")
                expect(page.get_by_test_id("stDataFrame")).to_be_visible()
                wait_for_app(page)
                calls.append(console.sandbox.stats()["requests"] - before)
            browser.close()
        finally:
            console.stop()
    ordered = sorted(timings)
    return {"lookups": len(timings), "p50_ms": round(statistics.median(ordered)),
            "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)]),
            "api_calls_first_plans_view": calls[0], "api_calls_plans_revisits": calls[1:]}


def sandbox_throughput(clients: int = 8, seconds: float = 5.0) -> dict[str, Any]:
    with sandbox_process("--rate-limit", "100000000") as sandbox:
        stop_at = time.perf_counter() + seconds
        counts = [0] * clients

        def hammer(index: int) -> None:
            session = requests.Session()
            session.headers["X-API-Key"] = sandbox.key
            while time.perf_counter() < stop_at:
                response = session.get(f"{sandbox.base_url}/payment/customer-info",
                                       params={"organizationId": "org_abc123"}, timeout=10)
                response.raise_for_status()
                counts[index] += 1

        threads = [threading.Thread(target=hammer, args=(index,)) for index in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    return {"clients": clients, "seconds": round(elapsed, 2), "requests": sum(counts),
            "requests_per_second": round(sum(counts) / elapsed)}


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}


def table(results: dict[str, Any]) -> str:
    lines = ["| Benchmark | Measured | Reference (same run) | Target |", "|---|---|---|---|"]
    for run in results["bulk"]:
        lines.append(f"| Bulk {run['organizations']:,} orgs at {run['rate_per_minute']:,}/min, "
                     f"{run['latency_ms']} ms, burst {run['burst']:,} | {run['wall_seconds']} s, "
                     f"{run['429s_met']} 429s met, {run['failed_rows']} failed | floor {run['floor_seconds']} s "
                     f"(ratio **{run['ratio_to_floor']}**)"
                     + (f"; naive loop {run['naive_sequential_seconds']} s" if "naive_sequential_seconds" in run
                        else "") + " | ≤ 1.10× floor, 0 failed |")
    console = results["console"] or {"lookups": 0, "p50_ms": "—", "p95_ms": "—", "api_calls_first_plans_view": "—",
                                      "api_calls_plans_revisits": "—"}
    lines.append(f"| Customer lookup in Chromium ({console['lookups']}) | p50 **{console['p50_ms']} ms**, p95 "
                 f"{console['p95_ms']} ms | — | p50 < 400 ms |")
    lines.append(f"| API calls per Plans view | first view {console['api_calls_first_plans_view']}, revisits "
                 f"{console['api_calls_plans_revisits']} | — | revisits 0 |")
    throughput = results["throughput"]
    lines.append(f"| Sandbox customer-info, {throughput['clients']} clients | "
                 f"**{throughput['requests_per_second']} req/s** | — | — |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--record", action="store_true", help="also rewrite docs/performance.md")
    parser.add_argument("--skip-browser", action="store_true")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"machine": machine(), "command": "make bench", "bulk": []}
    for spec in [("bulk-1000-default", 1000, 6000, 40, None, True), ("bulk-1000-smooth", 1000, 6000, 40, 20, False),
                 ("bulk-300-real-limit", 300, 1000, 40, None, False),
                 ("bulk-300-real-limit-smooth", 300, 1000, 40, 20, False)]:
        print(f"… {spec[0]}", flush=True)
        results["bulk"].append(bulk_run(*spec))
    print("… console lookups in Chromium", flush=True)
    results["console"] = {} if args.skip_browser else console_lookups()
    print("… sandbox throughput", flush=True)
    results["throughput"] = sandbox_throughput()
    (ROOT / "bench").mkdir(exist_ok=True)
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2))
    rendered = table(results)
    print(rendered)
    if args.record:
        template = (ROOT / "docs" / "performance.template.md").read_text()
        (ROOT / "docs" / "performance.md").write_text(template.replace("{{table}}", rendered).replace(
            "{{machine}}", json.dumps(results["machine"])).replace("{{json}}", json.dumps(results, indent=2)))
    failures = [run["name"] for run in results["bulk"] if run["failed_rows"] or run["ratio_to_floor"] > 1.10]
    if results["console"] and results["console"]["p50_ms"] >= 400:
        failures.append("console p50")
    if results["console"] and any(results["console"]["api_calls_plans_revisits"]):
        failures.append("plans revisits made API calls")
    if failures:
        print(f"Targets missed: {', '.join(failures)}")
    return 1 if failures else 0
