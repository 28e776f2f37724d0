"""Single sign-on: who the identity provider says a person is, and which console role that makes them.

Streamlit's `st.login` does the OpenID Connect dance and keeps the identity in an HttpOnly cookie; `st.user`
holds the ID token's claims. This module turns those claims into an `Actor`: the role comes from a claim
(default `groups`; `roles` for Microsoft Entra app roles) mapped in configuration, the highest mapped role
wins, and someone with no mapped group gets no role at all (the console shows them a no-access page).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import requests

from .roles import Actor, Role

ROLE_ORDER = (Role.SUPPORT, Role.FINANCE, Role.ADMIN)  # lowest first: the highest mapped role wins


@dataclass(frozen=True)
class SsoSettings:
    roles_claim: str = "groups"
    groups_for_role: Mapping[Role, tuple[str, ...]] = field(default_factory=dict)
    provider_name: str = "your company account"
    # The role is read from the ID token at sign-in, and Streamlit keeps that token in its cookie: a group removed
    # at the provider reaches the console only when the person signs in again, which this forces.
    max_age: timedelta = timedelta(hours=1)

    def role_for(self, claims: Mapping[str, Any]) -> Role | None:
        granted = set(_as_list(claims.get(self.roles_claim)))
        mapped = [role for role in ROLE_ORDER if granted & set(self.groups_for_role.get(role, ()))]
        return mapped[-1] if mapped else None

    def all_groups(self) -> list[str]:
        return [group for role in ROLE_ORDER for group in self.groups_for_role.get(role, ())]


def identity(claims: Mapping[str, Any]) -> tuple[str, str]:
    """(what the audit log calls the person, who they are to the console).

    Who they are is the provider's subject *and* issuer (`sub` is unique only within one issuer); the name is
    the e-mail address only when the provider says it verified it (`email_verified`): an address a person may
    type into their own profile must not put someone else's name in the audit log. Otherwise the subject,
    qualified by the issuer's host."""
    subject = str(claims.get("sub") or "")
    issuer = str(claims.get("iss") or "")
    email = str(claims.get("email") or "").strip().lower()
    if not (email and claims.get("email_verified") is True):
        email = f"{subject}@{urlsplit(issuer).hostname or 'sso'}"[:100]
    return email, f"{issuer}|{subject}"


def actor_from(claims: Mapping[str, Any], settings: SsoSettings) -> Actor | None:
    role = settings.role_for(claims)
    if role is None:
        return None
    email, subject = identity(claims)
    return Actor(email, role, subject=subject)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):  # some providers send one group as a string, or a space-separated list
        return value.split()
    if isinstance(value, (list, tuple, set)):
        return [str(item) for item in value]
    return []


def provider_answers(metadata_url: str, timeout: float = 3.0) -> bool:
    """Whether the identity provider's discovery document answers: checked before sending a person there, so a
    provider that is down gets one clear sentence instead of an error page."""
    try:
        return requests.get(metadata_url, timeout=timeout).ok
    except requests.RequestException:
        return False
