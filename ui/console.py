"""The console's runtime, built once per server process (and per distinct configuration)."""

from __future__ import annotations

import os
from typing import Any

import streamlit as st

from services.config import ConfigError, load_config
from services.console import ConsoleRuntime, build_runtime


def _secrets() -> dict[str, Any]:
    try:
        return {key: (dict(value) if hasattr(value, "items") else value) for key, value in st.secrets.items()}
    except Exception:  # no secrets file: configuration comes from the environment, or the sandbox
        return {}


@st.cache_resource(show_spinner="Starting Billing Desk…")
def _runtime_for(signature: tuple[tuple[str, str], ...]) -> ConsoleRuntime:
    return build_runtime(load_config(dict(signature), _secrets()))


def get_runtime() -> ConsoleRuntime:
    """The runtime for the current environment; stops the page with a clear message if misconfigured."""
    relevant = ("PAYMENTS_API_URL", "PAYMENTS_API_KEY", "BILLING_DESK_DATA_DIR", "BILLING_DESK_USERS",
                "BILLING_DESK_COOKIE_KEY", "AUDIT_DATABASE_URL", "CHECKOUT_SUCCESS_URL", "CHECKOUT_CANCEL_URL",
                "SANDBOX_PORT", "SANDBOX_API_KEY", "PAYMENTS_API_TIMEOUT")
    signature = tuple(sorted((name, os.environ[name]) for name in relevant if name in os.environ))
    try:
        return _runtime_for(signature)
    except ConfigError as problem:
        st.error(f"Billing Desk can't start: {problem}")
        st.stop()
        raise  # unreachable: st.stop() ends the run
