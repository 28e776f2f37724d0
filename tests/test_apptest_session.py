"""Sessions in AppTest: logout forgets everything the tab held (its bulk job goes on, kept in the store); a session ended
elsewhere sends the tab back to the sign-in page with one sentence."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sandbox.control_client import SandboxControl
from tests.test_apptest import app, sandbox_control, texts  # noqa: F401  (the module's console and sandbox)


def _click(at, label: str):  # type: ignore[no-untyped-def]
    next(button for button in at.button if button.label == label).click()
    return at.run()


def test_logout_clears_the_whole_session_and_the_bulk_job_goes_on(sandbox_control: SandboxControl) -> None:
    at = app("support", org="org_abc123")
    at.switch_page("pages/bulk.py").run()
    at.text_area(key="bulk_text").input(" ".join(f"org_slow{index:04d}" for index in range(400))).run()
    at.button(key="bulk_start").click().run()
    job_id = at.query_params["job"]
    job_id = job_id[0] if isinstance(job_id, list) else job_id
    _click(at, "Log out")
    for key in ("bulk_text", "organization_id", "recent_organizations", "_session_token"):
        assert key not in at.session_state, key  # nothing of the previous person is left in the tab
    assert at.title[0].value == "Billing Desk"
    again = app("support")
    again.switch_page("pages/bulk.py").run()
    jobs = next(table.value for table in again.dataframe if "who" in table.value.columns)
    assert job_id in list(jobs.id), "the job is kept in the store, not in the tab"
    again.query_params["job"] = job_id
    again.run()
    for button in again.button:  # leave nothing running for the next tests
        if button.label == "Stop":
            button.click().run()
            break


def test_a_session_ended_elsewhere_shows_the_sign_in_page_with_a_reason(sandbox_control: SandboxControl,
                                                                         tmp_path: Path) -> None:
    import os

    at = app("finance", org="org_abc123")
    assert at.title[0].value == "Customer"
    store = Path(os.environ["BILLING_DESK_DATA_DIR"]) / "audit.sqlite3"
    with sqlite3.connect(store) as db:  # what a logout in another browser does to the store
        db.execute("UPDATE sign_in_sessions SET ended_at = started_at WHERE username = 'finance'")
    at.run()
    assert at.title[0].value == "Billing Desk" and "You were signed out" in texts(at)


def test_the_sign_in_cookie_is_strict_and_secure_behind_https() -> None:
    from datetime import datetime, timezone

    from ui.session import COOKIE_NAME, COOKIE_SCRIPT, _cookie_script

    moment = datetime(2030, 1, 1, tzinfo=timezone.utc)
    tag = _cookie_script("token.sig", moment, secure=True)  # a shipped script, no inline code: CSP script-src 'self'
    assert "/app/static/sign-in-cookie.js?v=" in tag and 'data-secure="1"' in tag and 'data-value="token.sig"' in tag
    assert 'data-secure="0"' in _cookie_script("token.sig", moment, secure=False)
    script = COOKIE_SCRIPT.read_text()
    assert f'"{COOKIE_NAME}="' in script and "SameSite=Strict" in script and 'location.protocol === "https:"' in script