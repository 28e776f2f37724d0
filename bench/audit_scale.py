"""The audit log at scale: a million events in a throwaway PostgreSQL, the Audit page's first filtered page and
the full export. `python -m bench --only audit-scale` (a `make bench` section), or alone:
`python -m bench.audit_scale [--events N]`.

The rows are made here, in Python, as the console would have appended them: ids in order, each row's hash over
its content and the previous row's (services/audit/chain.py's `row_hash`), and COPYed in, into the schema the
migrations made (the view and the append-only triggers stay in place; COPY is an INSERT to them). Half the
writes are an intent and its outcome row, as `begin` + `complete` write them, half a one-shot row, as `record`
writes a refusal; organizations `org_00000`…, users, actions and outcomes drawn from fixed lists, times spread
over the last year.

Measured: (a) the page's reads for a first page filtered by organization prefix, the last 30 days and an
outcome (`desk.audit_page`: the page and the count, `AuditLog.summary_and_page`), timed in-process, the
server-side time of a click; (b) the full export of every event (`desk.audit_export`) in a child process, its
wall time and its peak RSS growth (VmHWM over the RSS before); and, when Chromium is installed, in headless
Chromium on a console started on the store (signed in as admin): (c) Enter pressed on an organization prefix
until the filtered count is on screen and the run has ended, timed in the page as bench/latency.py times a click
(from the key reaching the page to the first frame showing it); (d) Download CSV clicked with every event
matching: the seconds to the file saved, its CSV records against the matching count, and the console process's
RSS before, after and at its peak (VmHWM reset at the click). `--console-root DIR` runs that console from
another copy of the repository.
"""

from __future__ import annotations

import argparse
import json
import io
import math
import os
import random
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from services.audit.chain import COLUMNS, GENESIS, row_hash
from .support import report

ROOT = Path(__file__).resolve().parents[1]
USERS = ("fay", "finn", "ada", "sam", "lee", "kim", "max", "ola")
ACTIONS = ("change plan", "cancel subscription", "process checkout", "create portal link", "create checkout link")
ONE_SHOT = (("denied", "Your role may not do this."), ("failed", "The API refused: card declined."),
            ("succeeded", None))
ORGANIZATIONS = 20_000  # org_00000 … org_19999: the prefix org_123 is 100 of them, org_12 1,000
EXPORT_TARGET_S, EXPORT_MEMORY_TARGET_MB, PAGE_TARGET_MS = 60.0, 300.0, 1000.0


def make_rows(events: int, *, first_id: int = 1, previous: str = GENESIS, end: datetime | None = None,
              span: timedelta = timedelta(days=365), seed: int = 12, organizations: int = ORGANIZATIONS,
              hostile_every: int = 0) -> Iterator[dict[str, Any]]:
    """`events` write attempts as chained audit rows, oldest first, from id `first_id` chaining onto
    `previous`. `hostile_every`: every so many events a user name and reason that read as formulas."""
    chance = random.Random(seed)
    end = end or datetime.now(timezone.utc)
    start, step = end - span, span / max(events, 1)
    row_id = first_id
    for number in range(events):
        at = start + step * number
        user, action = chance.choice(USERS), chance.choice(ACTIONS)
        organization = f"org_{chance.randrange(organizations):05d}"
        reason = f"ticket {chance.randrange(10**6)}"
        if hostile_every and number % hostile_every == 0:
            user, reason = "=HYPERLINK(\"http://x\")", "+1+1"
        base = {"kind": "intent", "at": at, "environment": "test", "user": user, "subject": None, "role": "admin",
                "action": action, "organization_id": organization, "reason": reason, "error": None,
                "request_id": None, "attempts": 1, "boot_id": "bench", "intent_id": None, "settles_id": None}
        if number % 2:  # begin + complete: an intent, then its outcome row
            intent = {**base, "parameters": json.dumps({"planId": f"price_{number % 7}"}), "outcome": "pending",
                      "idempotency_key": f"bench-{first_id}-{number}", "completed_at": None}
            outcome, error = ("succeeded", None) if chance.random() < 0.9 else ("failed", "The API refused.")
            moment = at + timedelta(milliseconds=300)
            linked = {**base, "kind": "outcome", "intent_id": row_id, "at": moment, "completed_at": moment,
                      "parameters": intent["parameters"], "outcome": outcome, "error": error,
                      "request_id": f"req_{number}", "idempotency_key": None}
            rows = [intent, linked]
        else:  # record: a one-shot row
            outcome, error = ONE_SHOT[chance.randrange(len(ONE_SHOT))]
            rows = [{**base, "parameters": "{}", "outcome": outcome, "error": error, "completed_at": at,
                     "idempotency_key": None}]
        for row in rows:
            row["id"], row["prev_hash"] = row_id, previous
            row["row_hash"] = previous = row_hash(row)
            row_id += 1
            yield row


def copy_rows(url: str, rows: Iterator[dict[str, Any]], chunk: int = 50_000) -> int:
    """COPYs the rows into audit_rows of the store at `url` (PostgreSQL); returns how many."""
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    names = ", ".join(f'"{name}"' for name in COLUMNS)
    count = 0
    with psycopg.connect(dsn) as conn, conn.cursor() as cursor:
        with cursor.copy(f"COPY audit_rows ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[name] for name in COLUMNS])
                count += 1
        conn.commit()
        conn.execute("ANALYZE audit_rows")
        conn.commit()
    return count


def _export_child(url: str, upto_at: str, upto_id: int, filters_json: str) -> None:
    """In a child process: the export as the console makes it on a click, timed, with the RSS it added."""
    from services.audit import AuditCursor, AuditFilter, AuditLog

    def rss_kb(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
        return 0

    audit = AuditLog(url)
    filters = AuditFilter(**json.loads(filters_json))
    before = rss_kb("VmRSS:")
    began = time.perf_counter()
    exported = audit.export_file(filters, AuditCursor(datetime.fromisoformat(upto_at), upto_id))
    written = time.perf_counter() - began
    generating = rss_kb("VmHWM:") - before
    # What Streamlit then does with a download's file: reads it into bytes, kept in its media file store.
    data = exported.read()
    exported.close()
    handed = time.perf_counter() - began
    held = rss_kb("VmRSS:") - before
    print(json.dumps({"seconds": round(written, 2), "seconds_with_read": round(handed, 2), "bytes": len(data),
                      "lines": data.count(b"\n") - 1, "rss_before_mb": round(before / 1024, 1),
                      "generating_growth_mb": round(generating / 1024, 1), "held_growth_mb": round(held / 1024, 1),
                      "peak_growth_mb": round((rss_kb("VmHWM:") - before) / 1024, 1)}))


def page_reads(url: str, rounds: int = 20) -> dict[str, Any]:
    """The Audit page's reads for a filtered first page (organization prefix + last 30 days + an outcome), as a
    click makes them: the filter choices, the count and the page. Milliseconds, after one uncounted round."""
    from datetime import date

    from services.audit import AuditFilter, AuditLog
    from services.auth.roles import Actor, Role
    from services.desk import BillingDesk

    audit = AuditLog(url)
    desk = BillingDesk(None, audit)  # type: ignore[arg-type]  # the audit reads never call the API
    actor = Actor("admin", Role.ADMIN)
    today = date.today()
    cases = {
        "org prefix + 30 days + outcome": AuditFilter(organization="org_12*", outcomes=("succeeded",),
                                                      since=today - timedelta(days=30), until=today),
        "30 days (the page as opened)": AuditFilter(since=today - timedelta(days=30), until=today),
        "one organization, all time": AuditFilter(organization="org_01234"),
    }
    figures: dict[str, Any] = {}
    for name, filters in cases.items():
        samples, summary, page = [], None, None
        for round_number in range(rounds + 1):
            began = time.perf_counter()
            desk.audit_choices(actor, "user"), desk.audit_choices(actor, "action")
            summary, page = desk.audit_page(actor, filters)
            if round_number:
                samples.append((time.perf_counter() - began) * 1000)
        deep = None
        if page is not None and page.next is not None:  # the next page, by keyset
            began = time.perf_counter()
            desk.audit_page(actor, filters, page.next)
            deep = round((time.perf_counter() - began) * 1000, 1)
        samples.sort()
        figures[name] = {"matches": summary.total if summary else 0, "seq_scan": _seq_scan(audit, filters),
                         "p50_ms": round(statistics.median(samples), 1),
                         "p95_ms": round(samples[math.ceil(len(samples) * 0.95) - 1], 1), "next_page_ms": deep}
    return figures


def _seq_scan(audit: Any, filters: Any) -> bool:
    """Whether PostgreSQL's plan for the page's query or its count reads audit_rows by a sequential scan."""
    from sqlalchemy import func, select, text

    from services.audit.filters import conditions_for
    from services.audit.lines import NEWEST_FIRST
    from services.audit.chain import audit_events

    conditions = conditions_for(filters, "postgresql")
    with audit.engine.connect() as conn:
        for query in (select(audit_events).where(*conditions).order_by(*NEWEST_FIRST).limit(101),
                      select(func.count()).select_from(audit_events).where(*conditions)):
            compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
            if any("Seq Scan on audit_rows" in line for line in conn.execute(text(f"EXPLAIN {compiled}")).scalars()):
                return True
    return False


DOWNLOAD_WAIT_S = 200  # the page's own wait for a deferred file is 180 s (Streamlit 1.67's frontend), then an error


def browser_page(url: str, rounds: int = 20, root: Path = ROOT) -> dict[str, Any] | None:
    """Click to screen in headless Chromium, timed in the page as bench/latency.py times a click: on the Audit
    page (a console on the store, signed in as admin, `root`: the copy of the repository it runs from), an
    organization prefix typed and Enter pressed; the clock runs from the key reaching the page to the first
    frame showing the filtered count (known beforehand) with the run ended. Then the Download CSV click
    (`_browser_download`). None when Chromium or Playwright is missing."""
    try:
        from playwright.sync_api import sync_playwright

        from tests.support.browser import launch_chromium, login, start_console, wait_for_app, warm_up

        from .latency import ARM_ENTER
    except Exception:
        return None
    import secrets
    import tempfile

    from datetime import date

    from services.audit import AuditFilter, AuditLog

    today = date.today()
    audit = AuditLog(url)
    month = {"since": today - timedelta(days=30), "until": today}
    totals = {f"org_1{digit}": audit.summary(AuditFilter(organization=f"org_1{digit}*", **month)).total
              for digit in range(10)}
    everything = audit.summary().total
    audit.engine.dispose()
    samples: list[float] = []
    # A console on a shared store (AUDIT_DATABASE_URL) refuses to start without a shared cookie key.
    env = {"AUDIT_DATABASE_URL": url, "BILLING_DESK_COOKIE_KEY": secrets.token_urlsafe(48),
           "BILLING_DESK_AUDIT_KEY": secrets.token_urlsafe(48)}
    with tempfile.TemporaryDirectory() as data_dir:
        console = start_console(Path(data_dir), env, root=root)
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                warm_up(console, browser)
                page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
                login(page, console, "admin", path="audit")
                box = page.get_by_role("textbox", name="Organization")
                for round_number in range(rounds + 1):
                    box.fill("")
                    page.keyboard.press("Enter")
                    wait_for_app(page, settle_ms=200)
                    prefix = f"org_1{round_number % 10}"
                    box.fill(f"{prefix}*")
                    page.bring_to_front()  # headless Chromium draws frames for the front window
                    page.evaluate(ARM_ENTER, ["[data-testid='stMarkdownContainer']", f"{totals[prefix]:,} event"])
                    page.keyboard.press("Enter")
                    elapsed = page.evaluate("window.__shown")
                    if elapsed is None:
                        raise RuntimeError(f"{totals[prefix]:,} events for {prefix}* not on screen within 60 s")
                    wait_for_app(page, settle_ms=0)
                    if round_number:
                        samples.append(float(elapsed))
                download = _browser_download(page, console.process.pid, everything)
                browser.close()
        finally:
            console.stop()
    samples.sort()
    return {"rounds": rounds, "p50_ms": round(statistics.median(samples), 1),
            "p95_ms": round(samples[math.ceil(len(samples) * 0.95) - 1], 1), "max_ms": round(samples[-1], 1),
            "download": download}


def _browser_download(page: Any, pid: int, expected: int) -> dict[str, Any]:
    """Every event downloaded from the page (organization cleared, dates widened to all time): seconds from the
    click to the download starting and to the file saved, its data rows (csv records after the header), and the
    console process's RSS before the click, after the file is saved, and its peak in between (VmHWM reset at the
    click through /proc/PID/clear_refs; else an RSS sample every 50 ms)."""
    import csv
    import threading

    from datetime import date

    from tests.support.browser import wait_for_app

    status_file = Path(f"/proc/{pid}/status")

    def status(field: str) -> float:
        for line in status_file.read_text().splitlines():
            if line.startswith(field):
                return round(int(line.split()[1]) / 1024, 1)
        return 0.0

    try:
        page.get_by_role("textbox", name="Organization").fill("")
        page.keyboard.press("Enter")
        wait_for_app(page, settle_ms=200)
        # The range's start date, typed segment by segment (year, month, day) on January 1st of last year.
        year = page.get_by_role("group", name="Dates start date").get_by_role("spinbutton").first
        year.wait_for()
        year.click()
        page.keyboard.type(f"{date.today().year - 1}0101")
        page.keyboard.press("Tab")
        page.keyboard.press("Escape")
        note = page.get_by_text(f"Download all {expected:,} matching events")
        note.wait_for(timeout=120_000)
        wait_for_app(page, settle_ms=300)
        note_text = note.inner_text()
        # The page's own requests for the file: Streamlit's frontend fetches the new URL once to check it (not
        # awaited) as well as clicking a link to it; the download itself is the browser's and is not listed here.
        media: list[str] = []
        page.on("request", lambda request: media.append(request.url) if "/media/" in request.url else None)
        downloads: list[Any] = []
        page.once("download", lambda started: downloads.append(started))
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
            peak_scope = "since the click"
        except OSError:
            peak_scope = "sampled"
        sampled, stop = [status("VmRSS:")], threading.Event()

        def sample() -> None:
            while not stop.wait(0.05):
                sampled.append(status("VmRSS:"))

        sampler = threading.Thread(target=sample, daemon=True)
        before = sampled[0]
        sampler.start()
        button, error = (page.get_by_role("button", name="Download CSV"),
                         page.get_by_test_id("stDownloadButtonError"))
        began = time.perf_counter()
        try:
            button.click()
            while not downloads:  # the download, or the error the button shows instead (for 5 s)
                if error.count():
                    raise RuntimeError(f"the page said {error.first.inner_text()!r} after "
                                       f"{time.perf_counter() - began:.1f} s and no download started")
                if time.perf_counter() - began > DOWNLOAD_WAIT_S:
                    raise TimeoutError(f"no download and no error within {DOWNLOAD_WAIT_S} s of the click")
                page.wait_for_timeout(50)
            started = time.perf_counter() - began
            download = downloads[0]
            path = download.path()  # waits for the whole file
            saved = time.perf_counter() - began
        finally:
            stop.set()
            sampler.join()
        after, hwm = status("VmRSS:"), status("VmHWM:")
        if download.failure():
            raise RuntimeError(f"the download failed: {download.failure()}")
        if zipfile.is_zipfile(path):  # over exports.ZIP_ABOVE_ROWS the page hands the CSV over zipped
            with zipfile.ZipFile(path) as archive, archive.open(archive.namelist()[0]) as member:
                records = sum(1 for _ in csv.reader(io.TextIOWrapper(member, encoding="utf-8", newline=""))) - 1
        else:
            with open(path, newline="", encoding="utf-8") as saved_file:
                records = sum(1 for _ in csv.reader(saved_file)) - 1
        peak = hwm if peak_scope == "since the click" else max(sampled)
        return {"note": note_text, "expected": expected, "lines": records, "bytes": Path(path).stat().st_size,
                "file_name": download.suggested_filename, "started_s": round(started, 1), "seconds": round(saved, 1),
                "media_requests": len(media), "rss_before_mb": before, "rss_after_mb": after, "peak_mb": peak,
                "peak_scope": peak_scope, "growth_mb": round(peak - before, 1)}
    except Exception as problem:  # reported, not fatal: the in-process export figures stand on their own
        return {"error": f"{type(problem).__name__}: {str(problem)[:300]}"}


def run(events: int = 1_000_000, browser: bool = True, console_root: Path = ROOT) -> dict[str, Any]:
    from tests.support.postgres import PostgresServer

    from services.audit import AuditLog
    from services.audit.verify import incremental
    from services.store import store_engine, upgrade

    server = PostgresServer.start()
    try:
        url = server.create_database()
        engine = store_engine(url)
        upgrade(engine)
        began = time.perf_counter()
        rows = copy_rows(url, make_rows(events))
        load_s = time.perf_counter() - began
        began = time.perf_counter()
        report = incremental(engine)  # the page's first chain check hashes every row once, then a checkpoint
        verify_s = time.perf_counter() - began
        engine.dispose()
        print(f"… {events:,} events ({rows:,} rows) loaded in {load_s:.0f} s; chain verified in {verify_s:.0f} s",
              flush=True)
        results: dict[str, Any] = {"events": events, "rows": rows, "load_s": round(load_s, 1),
                                   "verify_s": round(verify_s, 1), "chain_ok": report.ok}
        results["page"] = page_reads(url)
        print(f"… page reads {results['page']}", flush=True)
        newest = AuditLog(url).summary().newest
        assert newest is not None
        child = subprocess.run(
            [sys.executable, "-m", "bench.audit_scale", "--export-child", url, newest.at.isoformat(), str(newest.id),
             "{}"], capture_output=True, text=True, cwd=ROOT, timeout=900, check=True)
        results["export"] = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"… export {results['export']}", flush=True)
        results["browser"] = browser_page(url, root=console_root) if browser else None
        if browser and console_root.resolve() != ROOT:
            results["console_root"] = str(console_root)
        print(f"… browser {results['browser']}", flush=True)
        return results
    finally:
        server.stop()


def table(results: dict[str, Any]) -> str:
    """The section of docs/performance.md."""
    if not results:
        return "_Not measured in this run (`python -m bench --only audit-scale`)._"
    export, lines = results["export"], []
    lines.append(f"{results['events']:,} events ({results['rows']:,} rows), COPYed in {results['load_s']} s; "
                 f"the first chain check hashed them in {results['verify_s']} s (then only new rows).")
    lines += ["", "| Audit page reads (server side, 20 rounds) | matches | p50 | p95 | next page | plan |",
              "|---|---:|---:|---:|---:|---|"]
    for name, figures in results["page"].items():
        lines.append(f"| {name} | {figures['matches']:,} | {figures['p50_ms']} ms | {figures['p95_ms']} ms | "
                     f"{str(figures['next_page_ms']) + ' ms' if figures['next_page_ms'] else '–'} | "
                     f"{'a Seq Scan' if figures['seq_scan'] else 'index scans only'} |")
    browser = results.get("browser")
    lines += ["", "| Measure | Figure | Target |", "|---|---:|---:|"]
    if browser:
        lines.append(f"| Filtered first page (organization prefix + 30 days), Enter to screen in Chromium, timed in "
                     f"the page (p50 / p95, {browser['rounds']} rounds; slowest {browser['max_ms']} ms) | "
                     f"{browser['p50_ms']} / {browser['p95_ms']} ms | p95 ≤ {PAGE_TARGET_MS:.0f} ms |")
    download = (browser or {}).get("download") or {}
    if "lines" in download:
        lines.append(f"| Download CSV clicked in Chromium, every event ({download['lines']:,} CSV records of "
                     f"{download['expected']:,} matching, {download['bytes'] / 1e6:.0f} MB): click to file saved "
                     f"(download started after {download['started_s']} s) | {download['seconds']} s | "
                     f"≤ {EXPORT_TARGET_S:.0f} s |")
        lines.append(f"| … the console process's RSS before → after (peak {download['peak_scope']}) | "
                     f"{download['rss_before_mb']} → {download['rss_after_mb']} MB ({download['peak_mb']} MB): "
                     f"+{download['growth_mb']} MB | growth ≤ {EXPORT_MEMORY_TARGET_MB:.0f} MB |")
    elif download:
        lines.append(f"| Download CSV clicked in Chromium | not measured: {download['error']} | |")
    lines.append(f"| Full export: {export['lines']:,} events, {export['bytes'] / 1e6:.0f} MB of CSV | "
                 f"{export['seconds']} s | ≤ {EXPORT_TARGET_S:.0f} s |")
    lines.append(f"| Export's memory growth while writing the file (child process, VmHWM − RSS before) | "
                 f"{export['generating_growth_mb']} MB | ≤ {EXPORT_MEMORY_TARGET_MB:.0f} MB |")
    lines.append(f"| … and once read into bytes, as Streamlit serves a download (peak; "
                 f"{export['seconds_with_read']} s in all) | {export['peak_growth_mb']} MB | |")
    if results.get("console_root"):
        lines += ["", f"The console in Chromium ran from another copy of the repository: `{results['console_root']}`."]
    return "\n".join(lines)


def failures(results: dict[str, Any]) -> list[str]:
    if not results:
        return []
    missed = []
    if results["export"]["lines"] != results["events"]:
        missed.append("audit export incomplete")
    if results["export"]["seconds"] > EXPORT_TARGET_S:
        missed.append("audit export time")
    if results["export"]["peak_growth_mb"] > EXPORT_MEMORY_TARGET_MB:
        missed.append("audit export memory")
    browser = results.get("browser")
    if browser and browser["p95_ms"] > PAGE_TARGET_MS:
        missed.append("audit page p95")
    download = (browser or {}).get("download") or {}
    if "error" in download:
        missed.append("audit download in Chromium")
    elif download:
        if download["lines"] != download["expected"]:
            missed.append("audit download incomplete")
        if download["seconds"] > EXPORT_TARGET_S:
            missed.append("audit download time")
        if download["growth_mb"] > EXPORT_MEMORY_TARGET_MB:
            missed.append("audit download memory")
    return missed


def _machine() -> dict[str, Any]:
    from .support import machine

    return machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--console-root", type=Path, default=ROOT, metavar="DIR",
                        help="run the console measured in Chromium from this copy of the repository (e.g. a "
                             "proposed change); the store, the reads and the export are this one's")
    parser.add_argument("--export-child", nargs=4, metavar=("URL", "UPTO_AT", "UPTO_ID", "FILTERS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.export_child:
        url, upto_at, upto_id, filters = args.export_child
        _export_child(url, upto_at, int(upto_id), filters)
        return 0
    results = run(args.events, browser=not args.skip_browser, console_root=args.console_root)
    command = ["python", "-m", "bench.audit_scale", *(argv if argv is not None else sys.argv[1:])]
    results["machine"], results["command"] = _machine(), " ".join(command)
    return report(results, table, failures, args.json)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
