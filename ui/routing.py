"""Makes sure every run goes through app.py's router.

Streamlit keeps a relic of its first multipage design: while a folder named `pages/` sits beside the main
script, a run may execute the requested page file *directly*, without the main script (the first run of a fresh
server process does, and AppTest does on every run). Our pages live in `pages/`, so:
- the router switches that legacy mode off as it starts;
- each page checks on entry: if the legacy mode is still on, the router did not run, so the page runs the
  router in its place, in this same run (a rerun would drop the click that started it), and stops.
(Each page also checks the person's role itself, so even such a run could show nothing it shouldn't.)
"""

from __future__ import annotations

import runpy
from pathlib import Path

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

ROUTER = Path(__file__).resolve().parents[1] / "app.py"


def router_started() -> None:
    """Called by app.py first thing."""
    PagesManager.uses_pages_directory = False


def ensure_router_runs() -> None:
    """Called by every page first thing."""
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        runpy.run_path(str(ROUTER), run_name="__main__")  # routes back to this page, now through the router
        st.stop()
