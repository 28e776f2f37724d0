"""Click-to-screen in Chromium, timed in the page, and the console's own time per page run.

The clock runs in the page: a capturing `click` listener notes `performance.now()` when the click reaches the
page, and a `requestAnimationFrame` loop notes the first frame whose DOM holds the expected text (so the figure
is frame-accurate, ~16 ms steps; Playwright's `expect` polls every ~100 ms and could not see below that).
The server's share comes from the console's run log (BILLING_DESK_LOG_LEVEL=DEBUG: one line per page run).
"""

from __future__ import annotations

import math
import os
import re
import statistics
import tempfile
from pathlib import Path
from typing import Any

from services.run_log import LOG_LEVEL_VARIABLE
from tests.support.browser import (LOOKUP_BOX, ROOT, Console, Server, launch_chromium, login, start_console,
                                   start_streamlit, wait_for_app, warm_up)

VIEWPORT = {"width": 1400, "height": 1000}
RUN_LINE = re.compile(r"run page=(?P<page>\S+) wall_ms=(?P<wall>[\d.]+) cpu_ms=(?P<cpu>[\d.]+)")
# Each page of the admin's menu, the way a person reaches it: its link in the sidebar.
# A page an older copy doesn't have (Approvals, before issue 15) is skipped for that copy.
PAGES = ["Customer", "Bulk lookup", "Plans", "Subscription actions", "Approvals", "Audit log"]

# Armed before each click. `selector`/`text`: what must be on screen; `idle`: also wait for the run to end.
ARM = """([selector, text, idle]) => {
    window.__clickedAt = null;
    document.addEventListener('click', () => { window.__clickedAt = performance.now(); },
                              {capture: true, once: true});
    const app = () => document.querySelector("[data-testid='stApp']");
    const shown = () => [...document.querySelectorAll(selector)].some((el) => el.textContent.trim() === text)
        && (!idle || app()?.dataset.testScriptState === 'notRunning');
    const armed = performance.now();
    window.__shown = new Promise((resolve) => {
        const frame = () => {
            const now = performance.now();
            if (window.__clickedAt !== null && shown()) resolve(now - window.__clickedAt);
            else if (now - armed > 30000) resolve(null);
            else requestAnimationFrame(frame);
        };
        requestAnimationFrame(frame);
    });
}"""


# Armed before an Enter, as ARM is before a click: the clock starts when the key reaches the page (a capturing
# keydown listener) and stops at the first frame whose DOM shows an element `selector` starting with `text`, with
# the page's run ended (bench/audit_scale.py, bench/directory_scale.py).
ARM_ENTER = """([selector, text]) => {
    window.__pressedAt = null;
    document.addEventListener('keydown', (event) => {
        if (event.key === 'Enter' && window.__pressedAt === null) window.__pressedAt = performance.now();
    }, {capture: true});
    const app = () => document.querySelector("[data-testid='stApp']");
    const shown = () => app()?.dataset.testScriptState === 'notRunning'
        && [...document.querySelectorAll(selector)].some((el) => el.textContent.trim().startsWith(text));
    const armed = performance.now();
    window.__shown = new Promise((resolve) => {
        const frame = () => {
            const now = performance.now();
            if (window.__pressedAt !== null && shown()) resolve(now - window.__pressedAt);
            else if (now - armed > 60000) resolve(null);
            else requestAnimationFrame(frame);
        };
        requestAnimationFrame(frame);
    });
}"""


def timed_click(page, button, selector: str, text: str, idle: bool = False) -> float:  # type: ignore[no-untyped-def]
    """Milliseconds from the click on `button` to the first frame showing `text` in an element `selector`."""
    page.bring_to_front()  # headless Chromium draws frames for the front window
    page.evaluate(ARM, [selector, text, idle])
    button.click()
    elapsed = page.evaluate("window.__shown")
    if elapsed is None:
        raise RuntimeError(f"{text!r} did not appear within 30 s of the click")
    return float(elapsed)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * share) - 1)]


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    return {"count": len(values), "p50_ms": round(statistics.median(values), 1),
            "p95_ms": round(percentile(values, 0.95), 1)}


class RunLog:
    """The console's run lines since the last `take()`."""

    def __init__(self, server: Server | Console) -> None:
        self.path = server.log
        self.offset = self.path.stat().st_size

    def take(self) -> list[dict[str, Any]]:
        with self.path.open() as lines:
            lines.seek(self.offset)
            text = lines.read()
            self.offset = lines.tell()
        return [{"page": match["page"], "wall_ms": float(match["wall"]), "cpu_ms": float(match["cpu"])}
                for match in RUN_LINE.finditer(text)]


def _settle(page) -> None:  # type: ignore[no-untyped-def]
    wait_for_app(page, settle_ms=150)


PLAIN_NAME = re.compile(r"^[A-Za-z0-9 ,.'&-]+$")  # shown the same by a markdown heading and the console


def _server_share(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"runs_per_lookup": sorted({entry["runs"] for entry in entries}),
            "logged_as": sorted({page for entry in entries for page in entry["pages"]}),
            "wall": summary([entry["wall_ms"] for entry in entries]),
            "cpu": summary([entry["cpu_ms"] for entry in entries])}


def lookup_floor(browser, roots: dict[str, Path], lookups: int = 60,  # type: ignore[no-untyped-def]
                 warm: int = 4) -> dict[str, dict[str, Any]]:
    """Each console's Customer lookup (`roots`: name -> a copy of the repository) beside two references, click
    for click in turn so all share the machine's noise: the bare app (bench/bare_app.py: Streamlit's floor)
    and the bare app plus the one API read a lookup needs (bench/bare_api_app.py). One result per console."""
    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        servers: dict[str, Server | Console] = {}
        contexts = []
        try:
            for name in ("bare", "bare_api"):
                (scratch_dir / name).mkdir()
                servers[name] = start_streamlit(f"bench/{name}_app.py", scratch_dir / name,
                                                {**os.environ, "BENCH_DATA_DIR": str(scratch_dir / name)})
            for name, root in roots.items():
                (scratch_dir / name).mkdir()
                servers[name] = start_console(scratch_dir / name, {LOG_LEVEL_VARIABLE: "DEBUG"}, root)
                warm_up(servers[name], browser)  # type: ignore[arg-type]
            pages = {}
            for name, server in servers.items():
                contexts.append(browser.new_context(viewport=VIEWPORT))
                pages[name] = contexts[-1].new_page()
                if name in roots:
                    login(pages[name], server, "support")
                else:
                    pages[name].goto(server.url)
                    _settle(pages[name])
            first = servers[next(iter(roots))]
            organizations = [row for row in first.sandbox.organizations()  # type: ignore[union-attr]
                             if PLAIN_NAME.match(row["name"])]
            if len(organizations) < warm + lookups:  # each lookup a fresh read from the API, as a person's is
                raise RuntimeError(f"the sandbox has {len(organizations)} plainly named organizations; "
                                   f"{warm + lookups} needed")
            logs = {name: RunLog(servers[name]) for name in roots}
            timings: dict[str, list[float]] = {name: [] for name in pages}
            server_share: dict[str, list[dict[str, Any]]] = {name: [] for name in roots}
            names = list(pages)
            for index, organization in enumerate(organizations[:warm + lookups]):
                shift = index % len(names)  # each app goes first as often: no app always follows another's click
                for name in names[shift:] + names[:shift]:
                    page = pages[name]
                    page.get_by_role("textbox", name=LOOKUP_BOX).fill(organization["id"])
                    if name in logs:
                        logs[name].take()
                    # The bare app heads its answer with what was typed; the others with the organization's name.
                    elapsed = timed_click(page, page.get_by_role("button", name="Look up"), "h3",
                                          organization["id"] if name == "bare" else organization["name"])
                    _settle(page)
                    lines = logs[name].take() if name in logs else []
                    if index < warm:
                        continue
                    timings[name].append(elapsed)
                    if name in logs:
                        server_share[name].append({"runs": len(lines),
                                                   "pages": sorted({line["page"] for line in lines}),
                                                   "wall_ms": sum(line["wall_ms"] for line in lines),
                                                   "cpu_ms": sum(line["cpu_ms"] for line in lines)})
        finally:
            for context in contexts:
                context.close()
            for server in servers.values():
                server.stop()
    bare, bare_api = summary(timings["bare"]), summary(timings["bare_api"])
    results = {}
    for name in roots:
        console = summary(timings[name])
        results[name] = {
            "lookups": lookups, "bare": bare, "bare_api": bare_api, "console": console,
            "ratio_p50": round(console["p50_ms"] / bare["p50_ms"], 3),
            "ratio_p95": round(console["p95_ms"] / bare["p95_ms"], 3),
            "ratio_to_bare_api_p50": round(console["p50_ms"] / bare_api["p50_ms"], 3),
            "ratio_to_bare_api_p95": round(console["p95_ms"] / bare_api["p95_ms"], 3),
            "console_server": _server_share(server_share[name]),
            "samples_ms": {reference: [round(value, 1) for value in timings[reference]]
                           for reference in ("bare", "bare_api", name)}}
    return results


def page_runs(browser, roots: dict[str, Path],  # type: ignore[no-untyped-def]
              rounds: int = 10) -> dict[str, dict[str, Any]]:
    """Every page of the admin's menu, reached from the sidebar round after round, in each console in turn:
    the console's time per run (its run log) and click-to-screen (until the page's title is on screen and
    its run has ended). One result per console."""
    with tempfile.TemporaryDirectory() as scratch:
        consoles: dict[str, Console] = {}
        contexts = []
        try:
            for name, root in roots.items():
                (Path(scratch) / name).mkdir()
                consoles[name] = start_console(Path(scratch) / name, {LOG_LEVEL_VARIABLE: "DEBUG"}, root)
                warm_up(consoles[name], browser)
            pages = {}
            for name, console in consoles.items():
                contexts.append(browser.new_context(viewport=VIEWPORT))
                pages[name] = contexts[-1].new_page()
                login(pages[name], console, "admin", "customer?org=org_abc123")
            logs = {name: RunLog(console) for name, console in consoles.items()}
            screen: dict[str, dict[str, list[float]]] = {name: {page: [] for page in PAGES} for name in roots}
            server: dict[str, dict[str, list[dict]]] = {name: {page: [] for page in PAGES} for name in roots}
            order = PAGES[1:] + PAGES[:1]  # from Customer, where login landed, to the next page
            names = list(pages)
            for round_index in range(rounds + 1):  # the first round warms every page up and is not counted
                for step, title in enumerate(order):
                    shift = (round_index * len(order) + step) % len(names)  # each console goes first as often
                    for name in names[shift:] + names[:shift]:
                        page = pages[name]
                        link = page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True)
                        if not link.count():
                            continue
                        logs[name].take()
                        elapsed = timed_click(page, link, "h1", title, idle=True)
                        _settle(page)
                        lines = logs[name].take()
                        if round_index:
                            screen[name][title].append(elapsed)
                            server[name][title].extend(lines)
        finally:
            for context in contexts:
                context.close()
            for console in consoles.values():
                console.stop()
    return {name: {"rounds": rounds, "pages": {
        title: {"click_to_screen": summary(screen[name][title]),
                "server_runs": len(server[name][title]),
                "server_wall": summary([line["wall_ms"] for line in server[name][title]]),
                "server_cpu": summary([line["cpu_ms"] for line in server[name][title]])} for title in PAGES}}
        for name in roots}


def browser_figures(lookups: int = 60, rounds: int = 20, before: Path | None = None) -> dict[str, dict[str, Any]]:
    """This tree's figures ("now"), and with `before` (a copy of the repository before a change) the same
    figures for it, measured in the same run, click for click in turn."""
    from playwright.sync_api import sync_playwright

    roots = {"now": ROOT, **({"before": before} if before else {})}
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            print(f"… lookup floor: bare Streamlit app vs the Customer lookup ({', '.join(roots)}), in turn",
                  flush=True)
            floor = lookup_floor(browser, roots, lookups)
            print(f"… every page's run time ({', '.join(roots)})", flush=True)
            pages = page_runs(browser, roots, rounds)
        finally:
            browser.close()
    return {name: {"floor": floor[name], "pages": pages[name]} for name in roots}
