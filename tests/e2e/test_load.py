"""Load: 20 browser sessions doing lookups and checkout links against the console for two minutes.

No interaction may fail; p95 per interaction and the console's memory before and after are recorded in
test-results/load.json (docs/reliability.md keeps the figures). LOAD_SECONDS shortens the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import threading
import time
from pathlib import Path

import pytest
from playwright.async_api import Page as AsyncPage
from playwright.async_api import async_playwright, expect

from .conftest import CHROMIUM, CHROMIUM_ARGS, PASSWORDS, ROOT, Console

SESSIONS = int(os.environ.get("LOAD_SESSIONS", "20"))
SECONDS = float(os.environ.get("LOAD_SECONDS", "120"))
RAMP_SECONDS = 20.0
IDLE = "document.querySelector(\"[data-testid='stApp']\")?.dataset.testScriptState === 'notRunning'"


def rss_megabytes(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def settle(page: AsyncPage) -> None:
    await page.wait_for_function(f"() => {{ const now = performance.now();"
                                 f" if (!({IDLE})) {{ window.__busy = now; return false; }}"
                                 f" return now - (window.__busy ?? 0) > 300; }}", polling=50, timeout=60_000)


async def virtual_user(index: int, console: Console, browser, organizations: list[dict], unsubscribed: list[dict],
                       deadline: float, timings: dict[str, list[float]], errors: list[str]) -> None:
    await asyncio.sleep(index * RAMP_SECONDS / max(1, SESSIONS))  # people don't all arrive at once
    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    context.set_default_navigation_timeout(90_000)
    context.set_default_timeout(60_000)  # 20 browsers share two cores with the console: be patient, not flaky
    page = await context.new_page()
    try:
        for attempt in range(3):
            try:
                await page.goto(f"{console.url}/customer", wait_until="domcontentloaded")
                await settle(page)
                await page.get_by_label("Username").fill("support")
                await page.get_by_label("Password", exact=True).fill(PASSWORDS["support"])
                await page.get_by_role("button", name="Log in").click()
                await expect(page.get_by_role("button", name="Log out")).to_be_visible(timeout=60_000)
                await settle(page)
                break
            except Exception as problem:
                errors.append(f"user {index} login attempt {attempt + 1}: {type(problem).__name__}")
        else:
            return
        step = 0
        while time.monotonic() < deadline:
            step += 1
            try:
                if step % 4:
                    organization = organizations[(index * 7 + step) % len(organizations)]
                    box = page.get_by_role("textbox", name="Organization id")
                    await box.fill(organization["id"])
                    await expect(box).to_have_value(organization["id"])
                    started = time.perf_counter()
                    await page.get_by_role("button", name="Look up").click()
                    await expect(page.get_by_role("heading", name=organization["name"], exact=True)).to_be_visible(
                        timeout=60_000)
                    timings["lookup"].append((time.perf_counter() - started) * 1000)
                    await settle(page)
                else:  # a checkout link for an organization without a subscription, moving through the menu
                    target = unsubscribed[(index + step) % len(unsubscribed)]
                    box = page.get_by_role("textbox", name="Organization id")
                    await box.fill(target["id"])
                    await page.get_by_role("button", name="Look up").click()
                    # Its heading, not its id: the id may already be on screen among the recent lookups.
                    await expect(page.get_by_role("heading", name=target["name"], exact=True)).to_be_visible()
                    await settle(page)
                    await page.get_by_test_id("stSidebarNav").get_by_role("link", name="Plans").click()
                    await expect(page.get_by_role("heading", name="Plans", exact=True)).to_be_visible()
                    await settle(page)
                    for _ in range(5):
                        await page.get_by_role("combobox", name="Plan").click()
                        option = page.get_by_role("option", name="Starter · $179.00 per month", exact=True)
                        try:
                            await option.click(timeout=5000)
                            break
                        except Exception:
                            await page.keyboard.press("Escape")
                            await settle(page)
                    await settle(page)
                    started = time.perf_counter()
                    await page.get_by_role("button", name="Create checkout link").click()
                    await expect(page.get_by_role("link", name="Open checkout page")).to_be_visible()
                    timings["checkout link"].append((time.perf_counter() - started) * 1000)
                    await page.get_by_role("button", name="Done, hide it").click()
                    await expect(page.get_by_role("link", name="Open checkout page")).to_have_count(0)
                    await settle(page)
                    await page.get_by_test_id("stSidebarNav").get_by_role("link", name="Customer").click()
                    await expect(page.get_by_role("heading", name="Customer", exact=True)).to_be_visible()
                    await settle(page)
                if await page.get_by_text("Something went wrong").count() or await page.get_by_test_id(
                        "stException").count():
                    errors.append(f"user {index}: an error on screen")
            except Exception as problem:  # a failed interaction is a finding, recorded
                errors.append(f"user {index} step {step}: {type(problem).__name__}: {str(problem)[:160]}")
                shots = ROOT / "test-results" / "load-failures"
                shots.mkdir(parents=True, exist_ok=True)
                if not (shots / f"user-{index}.png").exists():
                    await page.screenshot(path=str(shots / f"user-{index}.png"))
                try:
                    await page.keyboard.press("Escape")
                    await page.get_by_test_id("stSidebarNav").get_by_role("link", name="Customer").click()
                    await settle(page)
                except Exception:
                    pass
    finally:
        await context.close()


@pytest.mark.load
@pytest.mark.timeout(900)
def test_twenty_sessions_for_two_minutes(console: Console) -> None:
    organizations = console.sandbox.organizations()
    unsubscribed = console.sandbox.organizations("none")
    timings: dict[str, list[float]] = {"lookup": [], "checkout link": []}
    errors: list[str] = []
    memory_before = rss_megabytes(console.process.pid)

    async def run() -> None:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            deadline = time.monotonic() + RAMP_SECONDS + SECONDS
            await asyncio.gather(*(virtual_user(index, console, browser, organizations, unsubscribed, deadline,
                                                timings, errors) for index in range(SESSIONS)))
            await browser.close()

    started = time.monotonic()
    # Its own thread: the session's synchronous Playwright already runs an event loop on this one.
    runner = threading.Thread(target=lambda: asyncio.run(run()), name="load")
    runner.start()
    runner.join()
    memory_after = rss_megabytes(console.process.pid)
    summary = {
        "sessions": SESSIONS, "seconds": round(time.monotonic() - started), "errors": errors,
        "memory_mb_before": memory_before, "memory_mb_after": memory_after,
        **{f"{name} count": len(values) for name, values in timings.items()},
        **{f"{name} p50 ms": round(statistics.median(values)) for name, values in timings.items() if values},
        **{f"{name} p95 ms": round(sorted(values)[max(0, int(len(values) * 0.95) - 1)])
           for name, values in timings.items() if values},
    }
    (ROOT / "test-results").mkdir(exist_ok=True)
    (ROOT / "test-results" / "load.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    assert errors == []
    assert timings["lookup"] and timings["checkout link"]
