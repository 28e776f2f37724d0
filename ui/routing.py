"""Makes sure every run goes through app.py's router.

Streamlit keeps a relic of its first multipage design: while a folder named `pages/` sits beside the main
script, the first run of a fresh server process runs the requested page file *directly* (and lists every file
in the sidebar), until some run has called `st.navigation`. Our pages live in `pages/`, so each entry point
calls this first: if that legacy mode is still on, it is switched off and the run restarts through the router.
(Each page also checks the person's role itself, so even that first run could show nothing it shouldn't.)
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


def ensure_router_runs() -> None:
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
