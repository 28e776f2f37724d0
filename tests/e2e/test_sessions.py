"""Password sessions in the browser: a logout in one browser ends the same person's session in another at its
next click; the idle timeout signs an open tab out."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from .conftest import Console, login, open_page, screenshot, start_console, wait_for_app, warm_up


def test_a_logout_ends_the_other_browsers_session_at_its_next_click(browser: Browser, console: Console) -> None:
    laptop, phone = browser.new_context(), browser.new_context()  # two browsers: separate cookies, same person
    try:
        first, second = laptop.new_page(), phone.new_page()
        login(first, console, "finance", path="audit")
        login(second, console, "finance", path="audit")
        expect(second.get_by_role("heading", name="Audit log")).to_be_visible()
        first.get_by_role("button", name="Log out").click()
        expect(first.get_by_role("button", name="Log in")).to_be_visible()
        # The other browser's next click (any widget) is a run; its session is checked and found ended.
        second.get_by_role("button", name="Download CSV").hover()
        second.get_by_role("link", name="Customer").click()
        wait_for_app(second)
        expect(second.get_by_role("button", name="Log in")).to_be_visible()
        expect(second.get_by_text("You were signed out")).to_be_visible()
        expect(second.get_by_role("heading", name="Audit log")).to_have_count(0)
        screenshot(second, "signed-out-elsewhere")
        second.reload()  # its cookie signs nobody in either
        wait_for_app(second)
        expect(second.get_by_role("button", name="Log in")).to_be_visible()
    finally:
        laptop.close()
        phone.close()


def test_an_idle_tab_is_signed_out(browser: Browser, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    console = start_console(tmp_path_factory.mktemp("idle"), {"BILLING_DESK_IDLE_MINUTES": "0.15"})  # 9 s
    try:
        warm_up(console, browser)
        context = browser.new_context()
        page = context.new_page()
        login(page, console, "support")
        page.wait_for_timeout(12_000)  # longer than that without a click
        page.get_by_role("link", name="Plans").click()
        wait_for_app(page)
        expect(page.get_by_text("after a period without activity")).to_be_visible()
        expect(page.get_by_role("button", name="Log in")).to_be_visible()
        open_page(page, console, "plans")  # and the cookie no longer signs in
        expect(page.get_by_role("button", name="Log in")).to_be_visible()
        context.close()
    finally:
        console.stop()
