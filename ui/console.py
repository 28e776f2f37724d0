"""The console (services/console.py), built once per server process and per distinct configuration."""

from __future__ import annotations

import logging
import os
from typing import Any

import streamlit as st

from services.config import ENVIRONMENT_VARIABLES, ConfigError, load_config
from services.console import Console, build_console

log = logging.getLogger("billing_desk")


def _secrets() -> dict[str, Any]:
    try:
        return {key: (dict(value) if hasattr(value, "items") else value) for key, value in st.secrets.items()}
    except Exception:  # no secrets file: configuration comes from the environment, or the sandbox
        return {}


@st.cache_resource(show_spinner="Starting Billing Desk…")
def _console_for(signature: tuple[tuple[str, str], ...]) -> Console:
    return build_console(load_config(dict(signature), _secrets()))


def _signature() -> tuple[tuple[str, str], ...]:
    return tuple(sorted((name, os.environ[name]) for name in ENVIRONMENT_VARIABLES if name in os.environ))


def start_console_now() -> None:
    """Builds the console before any browser asks (ui/serve.py), so its bulk-job workers resume at once; a
    misconfiguration is logged here and shown to the first visitor by `get_console`."""
    try:
        _console_for(_signature())
    except ConfigError as problem:
        log.error("Billing Desk can't start: %s", problem)
    except Exception:
        log.exception("Billing Desk could not start its console; the first page opened will try again.")


def get_console() -> Console:
    """The console for the current environment; stops the page with a clear message if misconfigured."""
    try:
        return _console_for(_signature())
    except ConfigError as problem:
        # The detail (file paths, user names, which setting) is for the operator, in the log; a visitor
        # who may not even be signed in learns only that the console isn't ready.
        log.error("Billing Desk can't start: %s", problem)
        st.error("Billing Desk isn't configured correctly, so it can't start. The operators have the details "
                 "in the console's log.", icon=":material/settings_alert:")
        st.stop()
        raise  # unreachable: st.stop() ends the run

