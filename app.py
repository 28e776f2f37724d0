"""Billing Desk: the router. Builds the page list from the login state and role; pages render, services act."""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from services.auth.roles import Page, pages_for
from services.run_log import RunTimer, configure_logging
from ui import session, chrome
from ui.routing import router_started
from ui.console import get_console

run_timer = RunTimer()
configure_logging()
router_started()
# The icon ships with the console (a Material icon here would make every browser fetch it from fonts.gstatic.com);
# as bytes, which Streamlit serves without decoding the image on every run.
ICON = Path(__file__).parent / "static" / "billing-desk.png"
st.set_page_config(page_title="Billing Desk", page_icon=ICON.read_bytes(), layout="wide")

# Every page: its file, title, icon and URL. The login form answers at all of these URLs until login.
PAGES: dict[Page, tuple[str, str, str]] = {
    Page.CUSTOMER: ("pages/customer.py", "Customer", ":material/person_search:"),
    Page.ATTENTION: ("pages/attention.py", "Needs attention", ":material/priority_high:"),
    Page.BULK: ("pages/bulk.py", "Bulk lookup", ":material/checklist:"),
    Page.PLANS: ("pages/plans.py", "Plans", ":material/sell:"),
    Page.SUBSCRIPTION: ("pages/subscription.py", "Subscription actions", ":material/tune:"),
    Page.APPROVALS: ("pages/approvals.py", "Approvals", ":material/fact_check:"),
    Page.AUDIT: ("pages/audit.py", "Audit log", ":material/history:"),
    Page.REVENUE: ("pages/revenue.py", "Revenue", ":material/monitoring:"),
}
SECTIONS = {"Customers": (Page.CUSTOMER, Page.ATTENTION, Page.BULK, Page.PLANS, Page.SUBSCRIPTION),
            "Finance": (Page.REVENUE,), "Records": (Page.APPROVALS, Page.AUDIT)}

console = get_console()
actor = session.current_actor()  # the stored session, checked on every run

if actor is None:
    # The default page answers at "/"; every other address, /login included, shows the same form.
    login = [st.Page("pages/login.py", title="Log in", icon=":material/login:", url_path="sign-in", default=True)]
    login += [st.Page("pages/login.py", title="Log in", url_path=path, visibility="hidden")
              for path in ("login", *(page.value for page in PAGES))]
    page = st.navigation(login, position="hidden")
else:
    allowed = pages_for(actor.role)
    waiting = chrome.waiting_for_me(actor)  # the requests this person may decide, in the menu
    titles = {Page.APPROVALS: f"Approvals ({waiting})"} if waiting else {}
    built = {page: st.Page(path, title=titles.get(page, title), icon=icon, url_path=page.value)
             for page, (path, title, icon) in PAGES.items() if page in allowed}
    # "/" and "/login" show the role's first page directly (no redirect: a rerun right after login would
    # lose the authenticator's cookie), while every page keeps its own address for links and ?org=.
    first_path, first_title, _ = PAGES[allowed[0]]
    hidden = [st.Page(first_path, title=first_title, url_path="start", default=True, visibility="hidden"),
              st.Page(first_path, title=first_title, url_path="login", visibility="hidden")]
    hidden += [st.Page("pages/not_allowed.py", title="Not available", url_path=page.value, visibility="hidden")
               for page in PAGES if page not in allowed]
    sections = {name: [built[page] for page in members if page in built] for name, members in SECTIONS.items()}
    sections = {name: pages for name, pages in sections.items() if pages}
    first_section = next(iter(sections))
    sections[first_section] = sections[first_section] + hidden
    page = st.navigation(sections)
    chrome.sidebar(actor, console, waiting)

session.settle_cookie()
chrome.environment_banner(console)
try:
    page.run()
except Exception:  # st.stop/st.rerun are BaseExceptions and pass through
    logging.getLogger("billing_desk").exception("Page %s failed", page.title)
    st.error("Something went wrong on this page. Refresh to try again; if it persists, tell the engineering team.",
             icon=":material/error:")
finally:
    run_timer.finish(page.title)
