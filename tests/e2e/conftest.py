"""Fixtures of the browser tests: the console as `make run` starts it, one Chromium, a fresh page per test.

The helpers themselves (start the console, log in, wait for the app, …) live in tests/support/browser.py, which
the benchmarks use too; they are re-exported here for the test modules that import them from `.conftest`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.support.browser import (CHROMIUM, CHROMIUM_ARGS, IDLE, PASSWORDS, ROOT, SCREENSHOTS, Console,  # noqa: F401
                                   choose, free_port, idle_for, launch_chromium, login, nav_links, open_page,
                                   open_tab, screenshot, start_console, wait_for_app, warm_up)


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Console]:
    running = start_console(tmp_path_factory.mktemp("console"))
    warm_up(running, browser)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    chromium = launch_chromium(playwright_instance)
    yield chromium
    chromium.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # type: ignore[no-untyped-def]
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    yield tab
    if request.node.stash.get(_FAILED, False):  # what the browser showed when the test failed
        failures = ROOT / "test-results" / "failures"
        failures.mkdir(parents=True, exist_ok=True)
        for index, browser_tab in enumerate(context.pages):
            browser_tab.screenshot(path=str(failures / f"{request.node.name}-{index}.png"), full_page=True)
    context.close()
