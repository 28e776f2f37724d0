"""Cached reads around the desk. The cache is keyed on the person too, so the desk's role check runs before
anything is read for them, and on the organization's version in the store (the newest audit row about it), so
a write made on any replica is seen at once by every other: their cached entry no longer matches. Writes and
Refresh also clear this process's cache so pages re-read."""

from __future__ import annotations

import streamlit as st

from services.auth.roles import Actor
from services.payments.models import CustomerInfo, PlanCatalog

from .console import get_console

READ_TTL_SECONDS = 60  # also the most a read can lag when the store can't say the version (it is down)
# The menu's count of requests waiting for me: a request filed or decided on another replica shows within this
# (this replica's own writes clear it at once). Saves a store query on every page run.
WAITING_TTL_SECONDS = 15


def _api_identity() -> str:
    # Keeps cached reads of the sandbox and of a real API apart if one process ever serves both.
    return get_console().desk.api_url


@st.cache_data(ttl=READ_TTL_SECONDS, show_spinner=False, max_entries=5000)
def _customer(api: str, actor: Actor, organization_id: str, version: int | None) -> CustomerInfo:
    return get_console().desk.customer(actor, organization_id)


@st.cache_data(ttl=READ_TTL_SECONDS, show_spinner=False, max_entries=1000)
def _plans(api: str, actor: Actor, organization_id: str, version: int | None) -> PlanCatalog:
    return get_console().desk.plans(actor, organization_id)


def _version(actor: Actor, organization_id: str) -> int | None:
    return get_console().desk.organization_version(actor, organization_id)


def customer(actor: Actor, organization_id: str) -> CustomerInfo:
    return _customer(_api_identity(), actor, organization_id, _version(actor, organization_id))


def plans(actor: Actor, organization_id: str) -> PlanCatalog:
    return _plans(_api_identity(), actor, organization_id, _version(actor, organization_id))


@st.cache_data(ttl=WAITING_TTL_SECONDS, show_spinner=False, max_entries=1000)
def _waiting_for_me(actor: Actor) -> int:
    return get_console().desk.waiting_for_me(actor)


def waiting_for_me(actor: Actor) -> int:
    """The approval requests this person may decide, for the menu and the sidebar (every page run shows it)."""
    return _waiting_for_me(actor)


def forget_reads() -> None:
    """After a write, or when a person asks to refresh: the next read goes to the API."""
    _customer.clear()
    _plans.clear()
    _waiting_for_me.clear()
