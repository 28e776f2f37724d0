"""The production shape's figures (`python -m bench.cluster`, also `make bench`'s `cluster` section):
`deploy/cluster.py` (PostgreSQL, two replicas, nginx) on the sandbox API, measured in Chromium.

- start-up: a fresh cluster folder to `Billing Desk cluster on …` (initdb, migrations, two replicas, nginx);
- the Customer lookup click-to-screen (timed in the page, bench/latency.py) through nginx and straight to the
  same replica, click for click in turn: what nginx and the per-read version check in the store cost;
- failover: kill -9 the replica a signed-in browser is on, then the time from the next page load to the page
  drawn signed in by the other replica;
- the store restart: PostgreSQL stopped and started again, then the time until a write is accepted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from playwright.sync_api import Page, expect, sync_playwright

from deploy.cluster import Cluster, free_port
from sandbox.control_client import SandboxControl
from services.audit import AuditLog
from services.auth.roles import Actor, Role
from services.desk import BillingDesk
from services.payments.client import PaymentsClient

from .latency import PLAIN_NAME, VIEWPORT, summary, timed_click
from tests.support.cluster import pinned, sign_in
from tests.support.browser import LOOKUP_BOX, launch_chromium, login, wait_for_app


def _lookups(pages: dict[str, Page], organizations: list[dict[str, Any]], warm: int) -> dict[str, Any]:
    timings: dict[str, list[float]] = {name: [] for name in pages}
    names = list(pages)
    for index, organization in enumerate(organizations):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            page = pages[name]
            page.get_by_role("textbox", name=LOOKUP_BOX).fill(organization["id"])
            elapsed = timed_click(page, page.get_by_role("button", name="Look up"), "h3", organization["name"])
            wait_for_app(page, settle_ms=150)
            if index >= warm:
                timings[name].append(elapsed)
    return {name: summary(values) for name, values in timings.items()}


def _version_checks(cluster: Cluster, organization_id: str, rounds: int = 500) -> dict[str, Any]:
    """What each cached read adds: the organization's newest audit row, read from PostgreSQL."""
    audit = AuditLog(cluster.postgres.url("billing_desk_console"))
    timings = []
    for _ in range(rounds):
        began = time.perf_counter()
        audit.organization_version(organization_id)
        timings.append((time.perf_counter() - began) * 1000)
    audit.engine.dispose()
    return summary(timings)


def table(results: dict[str, Any]) -> str:
    """The section of docs/performance.md."""
    if not results:
        return "_Not measured in this run (`python -m bench --only cluster`)._"
    lookup, restart = results["lookup"], results["store_restart"]
    return "\n".join([
        "| The cluster (deploy/cluster.py: PostgreSQL, 2 replicas, nginx), in Chromium | p50 | p95 |",
        "|---|---:|---:|",
        f"| Start-up, a fresh folder to `Billing Desk cluster on …` | {results['start_seconds']} s | |",
        f"| Customer lookup click-to-screen through nginx ({lookup['via_nginx']['count']} clicks) | "
        f"{lookup['via_nginx']['p50_ms']:.0f} ms | {lookup['via_nginx']['p95_ms']:.0f} ms |",
        f"| The same, straight to the replica, click for click in turn | {lookup['direct']['p50_ms']:.0f} ms | "
        f"{lookup['direct']['p95_ms']:.0f} ms |",
        f"| The per-read version check (the organization's newest audit row, PostgreSQL) | "
        f"{results['version_check']['p50_ms']:.2f} ms | {results['version_check']['p95_ms']:.2f} ms |",
        f"| kill -9 of the browser's replica → next page load drawn signed in by the other | "
        f"{results['failover_page_load_seconds']} s | |",
        f"| PostgreSQL stopped; `pg_ctl start` → the first write accepted | {restart['restart_seconds']} s + "
        f"{restart['first_write_after_start_seconds']} s | |",
    ])


def measure(lookups: int = 30, warm: int = 4) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="billing-desk-bench-cluster-"))
    folder.chmod(0o755)  # PostgreSQL runs as postgres
    cluster = Cluster(folder, port=free_port(), replica_ports=[free_port(), free_port()],
                      postgres_port=free_port(), sandbox_port=free_port(), mailbox_port=free_port())
    results: dict[str, Any] = {"replicas": 2}
    began = time.perf_counter()
    cluster.start()
    results["start_seconds"] = round(time.perf_counter() - began, 1)
    try:
        control = SandboxControl(cluster.api_url.removesuffix("/api/v1"), cluster.api_key)
        organizations = [row for row in control.organizations() if PLAIN_NAME.match(row["name"])]
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            via_nginx = pinned(browser, cluster, "replica-1").new_page()
            direct_context = browser.new_context(viewport=VIEWPORT)
            direct = direct_context.new_page()
            sign_in(via_nginx, cluster, "customer")
            replica_one = SimpleNamespace(url=f"http://127.0.0.1:{cluster.replica_ports[0]}")  # nginx bypassed
            login(direct, replica_one, "finance", "customer", password=cluster.passwords["finance"])  # type: ignore[arg-type]
            results["lookup"] = _lookups({"via_nginx": via_nginx, "direct": direct},
                                         organizations[:warm + lookups], warm)
            results["version_check"] = _version_checks(cluster, organizations[0]["id"])

            # Failover: the browser on replica 1, replica 1 killed, the next page load.
            cluster.replicas[0].kill()
            began = time.perf_counter()
            via_nginx.reload()
            wait_for_app(via_nginx)
            expect(via_nginx.get_by_role("button", name="Log out")).to_be_visible()
            results["failover_page_load_seconds"] = round(time.perf_counter() - began, 2)
            cluster.restart_replica(1)

            # The store restart: how long until a write is accepted again (through the desk, as a page does).
            desk = BillingDesk(PaymentsClient(cluster.api_url, cluster.api_key),
                               AuditLog(cluster.postgres.url("billing_desk_console")))
            finance = Actor("finance", Role.FINANCE)
            organization = next(row["id"] for row in control.organizations("active", canceling=False))
            cluster.postgres.stop("fast")
            down_at = time.perf_counter()
            cluster.postgres.start()
            started = time.perf_counter()  # start() returns once the server accepts connections
            while True:
                try:
                    desk.show_portal_link(finance, organization, f"bench-{time.time_ns()}")
                    break
                except Exception:
                    if time.perf_counter() - started > 60:
                        raise
                    time.sleep(0.05)
            results["store_restart"] = {"restart_seconds": round(started - down_at, 2),
                                        "first_write_after_start_seconds": round(time.perf_counter() - started, 2)}
            browser.close()
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = measure(args.lookups)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
