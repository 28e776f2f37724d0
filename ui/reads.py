"""Cached reads around the desk. The cache is keyed on the person too, so the desk's role check runs before
anything is read for them; writes and Refresh clear it so pages re-read."""

from __future__ import annotations

import streamlit as st

from services.auth.roles import Actor
from services.payments.models import CustomerInfo, PlanCatalog

from .console import get_console

READ_TTL_SECONDS = 60


def _api_identity() -> str:
    # Keeps cached reads of the sandbox and of a real API apart if one process ever serves both.
    return get_console().desk.api_url


@st.cache_data(ttl=READ_TTL_SECONDS, show_spinner=False, max_entries=5000)
def _customer(api: str, actor: Actor, organization_id: str) -> CustomerInfo:
    return get_console().desk.customer(actor, organization_id)


@st.cache_data(ttl=READ_TTL_SECONDS, show_spinner=False, max_entries=1000)
def _plans(api: str, actor: Actor, organization_id: str) -> PlanCatalog:
    return get_console().desk.plans(actor, organization_id)


def customer(actor: Actor, organization_id: str) -> CustomerInfo:
    return _customer(_api_identity(), actor, organization_id)


def plans(actor: Actor, organization_id: str) -> PlanCatalog:
    return _plans(_api_identity(), actor, organization_id)


def forget_reads() -> None:
    """After a write, or when a person asks to refresh: the next read goes to the API."""
    _customer.clear()
    _plans.clear()
