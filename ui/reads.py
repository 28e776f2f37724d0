"""Cached reads. Every read is role-checked before the cache; writes clear the cache so pages re-read."""

from __future__ import annotations

import streamlit as st

from services.desk import Actor
from services.payments.models import CustomerInfo, PlanCatalog
from services.auth.roles import Action, require

from .console import get_runtime

READ_TTL_SECONDS = 60


def _api_identity() -> str:
    # Keeps cached reads of the sandbox and of a real API apart if one process ever serves both.
    return get_runtime().client.base_url


@st.cache_data(ttl=READ_TTL_SECONDS, show_spinner=False, max_entries=5000)
def _customer(api: str, organization_id: str) -> CustomerInfo:
    return get_runtime().client.get_customer(organization_id)


@st.cache_data(ttl=READ_TTL_SECONDS, show_spinner=False, max_entries=1000)
def _plans(api: str, organization_id: str) -> PlanCatalog:
    return get_runtime().client.list_plans(organization_id)


def customer(actor: Actor, organization_id: str) -> CustomerInfo:
    require(actor.role, Action.LOOK_UP_CUSTOMER)
    return _customer(_api_identity(), organization_id)


def plans(actor: Actor, organization_id: str) -> PlanCatalog:
    require(actor.role, Action.VIEW_PLANS)
    return _plans(_api_identity(), organization_id)


def forget_reads() -> None:
    """After a write, or when a person asks to refresh: the next read goes to the API."""
    _customer.clear()
    _plans.clear()
