"""The second reference `make bench` compares the console's lookup with: the bare app (bench/bare_app.py) plus
the one API read a lookup needs, made the console's way (the same client, a sandbox in the same process).

The console's lookup can't be faster than this; what it takes beyond it is the console's own page.
"""

import os
from pathlib import Path

import streamlit as st

from sandbox import SandboxSettings, start_sandbox
from services.payments.client import PaymentsClient


@st.cache_resource
def client() -> PaymentsClient:
    running = start_sandbox(SandboxSettings(db_path=Path(os.environ["BENCH_DATA_DIR"]) / "sandbox.sqlite3"))
    return PaymentsClient(running.base_url, running.api_key)


client()  # the sandbox starts with the first session, not with the first lookup
with st.form("lookup", border=False, enter_to_submit=True):
    value = st.text_input("Organization id")
    st.form_submit_button("Look up")
if value:
    st.subheader(client().get_customer(value).display_name)
