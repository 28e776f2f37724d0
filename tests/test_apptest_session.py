"""Sessions in AppTest: logout forgets everything the tab held and stops its bulk lookup; a session ended
elsewhere sends the tab back to the sign-in page with one sentence."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sandbox.control_client import SandboxControl
from tests.test_apptest import app, sandbox_control, texts  # noqa: F401  (the module's console and sandbox)


def _click(at, label: str):  # type: ignore[no-untyped-def]
    next(button for button in at.button if button.label == label).click()
    return at.run()


def test_logout_clears_the_whole_session_and_stops_the_bulk_lookup(sandbox_control: SandboxControl) -> None:
    at = app("support", org="org_abc123")
    at.switch_page("pages/bulk.py").run()
    at.text_area(key="bulk_text").input(" ".join(f"org_slow{index:04d}" for index in range(400))).run()
    at.button(key="bulk_start").click().run()
    job = at.session_state["bulk_job"]
    assert not job.progress().finished
    _click(at, "Log out")
    assert job.progress().stopped, "the lookup stops with the session"
    job.wait(30)
    assert job.progress().done < 400
    for key in ("bulk_job", "bulk_text", "organization_id", "recent_organizations", "_session_token"):
        assert key not in at.session_state, key  # nothing of the previous person is left in the tab
    assert at.title[0].value == "Billing Desk"


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