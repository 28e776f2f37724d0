"""`make bench`: bulk lookup against the rate-limit floor (in one process, and in two replicas sharing one key's
rate through the store: bench/shared_rate.py), console lookup latency, cache use, sandbox throughput, the Customer
lookup beside a bare Streamlit app, and every page's run time.

Every figure is printed beside its reference measured in the same run, and written to bench/results.json
(`--record` also rewrites docs/performance.md from docs/performance.template.md). Everything runs on loopback
against the sandbox. The browser helpers come from tests/support (not from the tests' conftest).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from services.bulk import BulkLookup
from services.payments.client import PaymentsClient

from .audit_scale import failures as audit_scale_failures, table as audit_scale_table
from .shared_rate import failures as shared_rate_failures, table as shared_rate_table
from .cluster import table as cluster_table
from .directory_refresh import failures as refresh_failures, table as refresh_table
from .directory_scale import failures as directory_scale_failures, table as directory_scale_table
from .revenue_scale import failures as revenue_scale_failures, table as revenue_scale_table
from .jobs import failures as jobs_failures, table as jobs_table
from .support import machine, sandbox_process

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 8


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

    from tests.support.browser import (LOOKUP_BOX, launch_chromium, login, open_page, start_console, wait_for_app,
                                       warm_up)

    with tempfile.TemporaryDirectory() as data, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        console = start_console(Path(data))
        try:
            warm_up(console, browser)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            login(page, console, "support")
            organizations = console.sandbox.organizations()[:lookups]
            timings = []
            box = page.get_by_role("textbox", name=LOOKUP_BOX)
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


def _figures(summary: dict[str, Any] | None) -> str:
    if not summary or not summary.get("count"):
        return "—"
    return f"{summary['p50_ms']:.0f} / {summary['p95_ms']:.0f}"


def table(results: dict[str, Any]) -> str:
    lines = ["| Benchmark | Measured | Reference (same run) | Target |", "|---|---|---|---|"]
    for run in results["bulk"]:
        lines.append(f"| Bulk {run['organizations']:,} orgs at {run['rate_per_minute']:,}/min, "
                     f"{run['latency_ms']} ms, burst {run['burst']:,} | {run['wall_seconds']} s, "
                     f"{run['429s_met']} 429s met, {run['failed_rows']} failed | floor {run['floor_seconds']} s "
                     f"(ratio **{run['ratio_to_floor']}**)"
                     + (f"; naive loop {run['naive_sequential_seconds']} s" if "naive_sequential_seconds" in run
                        else "") + " | ≤ 1.10× floor, 0 failed |")
    console = results.get("console") or {"lookups": 0, "p50_ms": "—", "p95_ms": "—",
                                          "api_calls_first_plans_view": "—", "api_calls_plans_revisits": "—"}
    lines.append(f"| Customer lookup in Chromium ({console['lookups']}) | p50 **{console['p50_ms']} ms**, p95 "
                 f"{console['p95_ms']} ms | — | p50 < 400 ms |")
    floor = (results.get("latency") or {}).get("floor")
    if floor:
        lines.append(f"| Customer lookup vs a bare Streamlit app, {floor['lookups']} clicks each, in turn "
                     f"(in-page clock) | p50 **{floor['console']['p50_ms']:.0f} ms**, p95 "
                     f"{floor['console']['p95_ms']:.0f} ms: **{floor['ratio_p50']}×** / {floor['ratio_p95']}× "
                     f"the bare app | bare app p50 {floor['bare']['p50_ms']:.0f} ms, p95 "
                     f"{floor['bare']['p95_ms']:.0f} ms | goal ≤ 1.10× p50, ≤ 1.25× p95 (not a gate) |")
        if floor.get("bare_api"):
            lines.append(f"| … the same lookup vs the bare app plus its one API read | "
                         f"**{floor['ratio_to_bare_api_p50']}×** / {floor['ratio_to_bare_api_p95']}× (p50 / p95) | "
                         f"bare app + API read p50 {floor['bare_api']['p50_ms']:.0f} ms, p95 "
                         f"{floor['bare_api']['p95_ms']:.0f} ms | — |")
    lines.append(f"| API calls per Plans view | first view {console['api_calls_first_plans_view']}, revisits "
                 f"{console['api_calls_plans_revisits']} | — | revisits 0 |")
    throughput = results.get("throughput")
    if throughput:
        lines.append(f"| Sandbox customer-info, {throughput['clients']} clients | "
                     f"**{throughput['requests_per_second']} req/s** | — | — |")
    return "\n".join(lines)


def page_table(results: dict[str, Any], baseline: dict[str, Any] | None, this_run: bool = False) -> str:
    """Every page's time, this run beside the baseline's (bench/baseline.json) when there is one."""
    latency = results.get("latency")
    if not latency:
        return "(not measured in this run)"
    before = (baseline or {}).get("latency") or {}
    if not baseline:
        when = ""
    elif this_run:
        when = "measured in this same run, click for click in turn with the code now"
    else:
        when = (f"measured {baseline.get('taken', 'earlier')}"
                + (", in turn with the code after the change" if baseline.get("same_run") else "")
                + ", not in this run: compare with care on a busy machine")
    lines = [f"Before: {baseline['label']}; {when} (bench/baseline.json, `{baseline.get('command', '')}`).\n"
             if baseline else "",
             "| Interaction | Server run, wall p50 / p95 ms | before | Server CPU p50 ms | before "
             "| Click to screen p50 / p95 ms | before |",
             "|---|---|---|---|---|---|---|"]

    def cpu(figures: dict[str, Any] | None) -> str:
        return f"{figures['p50_ms']:.1f}" if figures and figures.get("count") else "—"

    def row(name: str, now: dict[str, Any], then: dict[str, Any]) -> None:
        lines.append(f"| {name} | {_figures(now.get('wall'))} | {_figures(then.get('wall'))} | {cpu(now.get('cpu'))} "
                     f"| {cpu(then.get('cpu'))} | {_figures(now.get('screen'))} | {_figures(then.get('screen'))} |")

    floor, floor_before = latency["floor"], before.get("floor") or {}
    server_before = floor_before.get("console_server") or {}
    row("Customer: a lookup", {**floor["console_server"], "screen": floor["console"]},
        {**server_before, "screen": floor_before.get("console")})
    row("Bare Streamlit app: the same lookup (reference)", {"screen": floor["bare"]},
        {"screen": floor_before.get("bare")})
    row("Bare app + the lookup's API read (reference)", {"screen": floor.get("bare_api")},
        {"screen": floor_before.get("bare_api")})
    for name, figures in latency["pages"]["pages"].items():
        then = ((before.get("pages") or {}).get("pages") or {}).get(name) or {}
        row(f"{name}: opened from the sidebar",
            {"wall": figures["server_wall"], "cpu": figures["server_cpu"], "screen": figures["click_to_screen"]},
            {"wall": then.get("server_wall"), "cpu": then.get("server_cpu"), "screen": then.get("click_to_screen")})
    if floor_before:
        lines.append(f"| Lookup ratio to the bare app, p50 / p95 | | | | | **{floor['ratio_p50']}× / "
                     f"{floor['ratio_p95']}×** | {floor_before['ratio_p50']}× / {floor_before['ratio_p95']}× |")
    return "\n".join(line for line in lines if line)


def slower_pages(results: dict[str, Any], baseline: dict[str, Any] | None) -> list[str]:
    """Pages whose server run grew past noise since the baseline: wall p50 by 15 % and 5 ms, or CPU p50 (the
    steadier figure on a shared machine) by 10 % and 1 ms; and a Customer lookup slower to show by 10 % and 5 ms."""
    if not baseline or not results.get("latency") or not baseline.get("latency"):
        return []
    slower = []
    now_lookup = results["latency"]["floor"]["console"]
    then_lookup = (baseline["latency"].get("floor") or {}).get("console") or {}
    if then_lookup.get("count") and now_lookup["p50_ms"] > max(then_lookup["p50_ms"] * 1.10, then_lookup["p50_ms"] + 5):
        slower.append(f"Customer lookup slower to show than before ({then_lookup['p50_ms']} → "
                      f"{now_lookup['p50_ms']} ms)")
    for name, figures in results["latency"]["pages"]["pages"].items():
        then = baseline["latency"]["pages"]["pages"].get(name)
        if then and figures["server_wall"].get("count") and then["server_wall"].get("count"):
            now_ms, then_ms = figures["server_wall"]["p50_ms"], then["server_wall"]["p50_ms"]
            if now_ms > then_ms * 1.15 and now_ms > then_ms + 5:
                slower.append(f"{name} slower than before ({then_ms} → {now_ms} ms)")
            now_cpu, then_cpu = figures["server_cpu"].get("p50_ms"), (then.get("server_cpu") or {}).get("p50_ms")
            if now_cpu and then_cpu and now_cpu > then_cpu * 1.10 and now_cpu > then_cpu + 1:
                slower.append(f"{name} uses more CPU than before ({then_cpu} → {now_cpu} ms)")
    return slower


def without_samples(value: Any) -> Any:
    """The results as docs/performance.md shows them: every figure, but not each click's time (results.json)."""
    if isinstance(value, dict):
        return {key: without_samples(item) for key, item in value.items() if key != "samples_ms"}
    return value


SECTIONS = ("bulk", "shared-rate", "jobs", "refresh", "console", "latency", "throughput", "audit-scale",
            "directory-scale", "revenue-scale", "cluster")
BASELINE = ROOT / "bench" / "baseline.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--record", action="store_true", help="also rewrite docs/performance.md")
    parser.add_argument("--skip-browser", action="store_true", help="leave out every section that needs Chromium")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only this section (repeatable)")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="a copy of the repository before a change: its console is measured in this same run, "
                             "click for click in turn with this one, and kept in bench/baseline.json as 'before'")
    parser.add_argument("--save-baseline", metavar="LABEL",
                        help="keep this run's page and lookup times (or with --before, that copy's) in "
                             "bench/baseline.json as the 'before' column, under this label")
    args = parser.parse_args(argv)
    sections = set(args.only or SECTIONS) - ({"console", "latency"} if args.skip_browser else set())
    command = shlex.join(["python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])])
    results: dict[str, Any] = {"machine": machine(), "command": command, "bulk": []}
    if "bulk" in sections:
        for spec in [("bulk-1000-default", 1000, 6000, 40, None, True),
                     ("bulk-1000-smooth", 1000, 6000, 40, 20, False),
                     ("bulk-300-real-limit", 300, 1000, 40, None, False),
                     ("bulk-300-real-limit-smooth", 300, 1000, 40, 20, False)]:
            print(f"… {spec[0]}", flush=True)
            results["bulk"].append(bulk_run(*spec))
    results["shared_rate"] = {}
    if "shared-rate" in sections:  # bench/shared_rate.py: two replicas' bulk lookups on one key, through the store
        from . import shared_rate
        results["shared_rate"] = shared_rate.run()
    results["jobs"] = {}
    if "jobs" in sections:  # bench/jobs.py: two people's bulk jobs on one key, two worker processes
        from . import jobs
        print("… two people's bulk jobs on one key", flush=True)
        results["jobs"] = jobs.run()
    results["refresh"] = {}
    if "refresh" in sections:  # bench/directory_refresh.py: the directory's refresh beside a person's lookups
        from . import directory_refresh
        print("… the directory's refresh beside a person's lookups", flush=True)
        results["refresh"] = directory_refresh.run()
    results["console"] = {}
    if "console" in sections:
        print("… console lookups in Chromium", flush=True)
        results["console"] = console_lookups()
    results["latency"] = {}
    saved = None
    if "latency" in sections:
        from .latency import browser_figures
        figures = browser_figures(before=args.before.resolve() if args.before else None)
        results["latency"] = figures["now"]
        if args.before:
            saved = {"label": args.save_baseline or f"the copy at {args.before}", "same_run": True,
                     "latency": figures["before"]}
        elif args.save_baseline:
            saved = {"label": args.save_baseline, "same_run": False, "latency": figures["now"]}
    results["throughput"] = {}
    if "throughput" in sections:
        print("… sandbox throughput", flush=True)
        results["throughput"] = sandbox_throughput()
    results["audit_scale"] = {}
    if "audit-scale" in sections:  # bench/audit_scale.py: a million audit events in a throwaway PostgreSQL
        from . import audit_scale
        print("… audit log at scale", flush=True)
        results["audit_scale"] = audit_scale.run(browser=not args.skip_browser)
    results["directory_scale"] = {}
    if "directory-scale" in sections:  # bench/directory_scale.py: a million organizations on both stores
        from . import directory_scale
        print("… the customer directory at a million organizations", flush=True)
        results["directory_scale"] = directory_scale.run(browser=not args.skip_browser)
    results["cluster"] = {}
    results["revenue_scale"] = {}
    if "revenue-scale" in sections:  # bench/revenue_scale.py: 100,000 organizations, 365 days of snapshots
        from . import revenue_scale

        results["revenue_scale"] = revenue_scale.run(browser=not args.skip_browser)
    if "cluster" in sections and not args.skip_browser:  # bench/cluster.py: PostgreSQL, 2 replicas, nginx
        from . import cluster
        print("… the cluster: nginx, failover, a store restart", flush=True)
        results["cluster"] = cluster.measure()
    (ROOT / "bench").mkdir(exist_ok=True)
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2))
    if saved:
        taken = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        BASELINE.write_text(json.dumps({**saved, "taken": taken, "machine": results["machine"], "command": command},
                                       indent=2))
    baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() else None
    if baseline and saved and not saved["same_run"]:
        baseline = None  # this run is the baseline: nothing to compare it with
    rendered, pages = table(results), page_table(results, baseline, this_run=bool(saved))
    print(rendered)
    print()
    print(pages)
    if results["shared_rate"]:
        print()
        print(shared_rate_table(results["shared_rate"]))
    if results["refresh"]:
        print()
        print(refresh_table(results["refresh"]))
    if args.record:
        template = (ROOT / "docs" / "performance.template.md").read_text()
        (ROOT / "docs" / "performance.md").write_text(
            template.replace("{{table}}", rendered).replace("{{pages}}", pages)
            .replace("{{audit_scale}}", audit_scale_table(results["audit_scale"]))
            .replace("{{shared_rate}}", shared_rate_table(results["shared_rate"]))
            .replace("{{cluster}}", cluster_table(results["cluster"]))
            .replace("{{jobs}}", jobs_table(results["jobs"]))
            .replace("{{refresh}}", refresh_table(results["refresh"]))
            .replace("{{directory_scale}}", directory_scale_table(results["directory_scale"]))
            .replace("{{revenue_scale}}", revenue_scale_table(results["revenue_scale"]))
            .replace("{{machine}}", json.dumps(results["machine"])).replace("{{command}}", results["command"])
            .replace("{{json}}", json.dumps(without_samples(results), indent=2)))
    failures = [run["name"] for run in results["bulk"] if run["failed_rows"] or run["ratio_to_floor"] > 1.10]
    if results["console"] and results["console"]["p50_ms"] >= 400:
        failures.append("console p50")
    if results["console"] and any(results["console"]["api_calls_plans_revisits"]):
        failures.append("plans revisits made API calls")
    floor = (results["latency"] or {}).get("floor")
    if floor and (floor["ratio_p50"] > 1.10 or floor["ratio_p95"] > 1.25):
        # A goal, not a gate: out of reach with Streamlit's own rendering (docs/performance.md says why), so it
        # is reported on every run without failing it; a lookup that got slower fails through the check below.
        print(f"Goal missed: lookup at {floor['ratio_p50']}× / {floor['ratio_p95']}× the bare app (p50 / p95; "
              f"goal ≤ 1.10× / 1.25×)")
    failures += audit_scale_failures(results["audit_scale"]) + shared_rate_failures(results["shared_rate"])
    failures += jobs_failures(results["jobs"]) + refresh_failures(results["refresh"])
    failures += directory_scale_failures(results["directory_scale"]) + revenue_scale_failures(results["revenue_scale"])
    slower = slower_pages(results, baseline)
    if saved and saved["same_run"]:
        failures += slower  # measured in turn in this run: a real difference
    elif slower:  # an earlier run on a machine that may have been busier or idler: worth a look, not a verdict
        print(f"Compared with bench/baseline.json from another run (check with --before): {', '.join(slower)}")
    if failures:
        print(f"Targets missed: {', '.join(failures)}")
    return 1 if failures else 0
