"""Single sign-on settings and the mapping from the identity provider's groups to console roles."""

from __future__ import annotations

from typing import Any

import pytest

from services.auth.roles import Role
from services.auth.sso import SsoSettings, actor_from, identity
from services.config import ConfigError, load_config

LIVE = {"PAYMENTS_API_URL": "https://api.example.com/api/v1", "PAYMENTS_API_KEY": "bsk_live_" + "a1" * 16,
        "BILLING_DESK_AUDIT_KEY": "Vq3xZ8pL2mN7rT4wY9bC6dF1gH5jK0sA-_e"}
AUTH = {"redirect_uri": "https://desk.example.com/oauth2callback", "cookie_secret": "Vq3xZ8pL2mN7rT4wY9bC6dF1gH5jK0sA",
        "client_id": "billing-desk", "client_secret": "s3cret",
        "server_metadata_url": "https://login.example.com/.well-known/openid-configuration"}
ROLES = {"support": ["billing-support"], "finance": ["billing-finance"], "admin": ["billing-admin"]}


def secrets(**changes: Any) -> dict[str, Any]:
    return {"auth": {**AUTH, **changes}, "sign_in": {"sso": {"roles": ROLES}}}


def test_sso_needs_no_users_file_or_cookie_key() -> None:
    config = load_config(LIVE, secrets())
    assert config.sso is not None and config.users_file is None
    assert config.sso.groups_for_role[Role.FINANCE] == ("billing-finance",) and config.sso.roles_claim == "groups"
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize(("changes", "message"), [
    ({"client_id": ""}, "client_id"), ({"redirect_uri": "http://desk.example.com/oauth2callback"}, "https"),
    ({"cookie_secret": "x" * 40}, "different ones")])
def test_sso_settings_are_checked(changes: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(LIVE, secrets(**changes))


def test_sso_needs_a_role_mapping_and_never_runs_beside_the_sandbox() -> None:
    with pytest.raises(ConfigError, match="Map the identity provider's groups"):
        load_config(LIVE, {"auth": AUTH})
    with pytest.raises(ConfigError, match="never sit beside real ones"):
        load_config({"BILLING_DESK_SANDBOX": "1"}, secrets())


@pytest.mark.parametrize(("groups", "role"), [
    (["billing-finance"], Role.FINANCE), (["billing-support", "billing-admin"], Role.ADMIN),
    (["billing-support", "billing-finance"], Role.FINANCE), (["engineering"], None), ([], None), (None, None),
    ("billing-support other", Role.SUPPORT)])
def test_the_highest_mapped_role_wins(groups: Any, role: Role | None) -> None:
    settings = SsoSettings(groups_for_role={Role(name): tuple(value) for name, value in ROLES.items()})
    claims = {"sub": "00u1", "iss": "https://login.example.com", "email": "Fay@Example.com", "email_verified": True,
              "groups": groups}
    assert settings.role_for(claims) == role
    actor = actor_from(claims, settings)
    assert (actor.role if actor else None) == role
    if actor:
        assert (actor.username, actor.subject) == ("fay@example.com", "https://login.example.com|00u1")


def test_entra_app_roles_come_from_the_roles_claim() -> None:
    settings = SsoSettings(roles_claim="roles", groups_for_role={Role.ADMIN: ("BillingDesk.Admin",)})
    assert settings.role_for({"roles": ["BillingDesk.Admin"], "groups": []}) == Role.ADMIN


@pytest.mark.parametrize("claims", [
    {"sub": "abc", "iss": "https://login.example.com", "preferred_username": "lee@example.com"},
    {"sub": "abc", "iss": "https://login.example.com", "email": "lee@example.com"},
    {"sub": "abc", "iss": "https://login.example.com", "email": "lee@example.com", "email_verified": False},
    {"sub": "abc", "iss": "https://login.example.com", "email": "lee@example.com", "email_verified": "true"}])
def test_an_address_the_provider_did_not_verify_never_names_the_person(claims: dict[str, Any]) -> None:
    """A person may type any address into their own profile at some providers: the audit log must not name
    someone else. The subject, qualified by the issuer, names them instead."""
    assert identity(claims) == ("abc@login.example.com", "https://login.example.com|abc")


def test_the_same_subject_at_two_issuers_is_two_people() -> None:
    first = identity({"sub": "42", "iss": "https://a.example.com", "email": "x@example.com", "email_verified": True})
    second = identity({"sub": "42", "iss": "https://b.example.com", "email": "x@example.com", "email_verified": True})
    assert first[1] != second[1]


def test_sso_sign_ins_last_an_hour_unless_configured() -> None:
    from datetime import timedelta
    assert load_config(LIVE, secrets()).sso.max_age == timedelta(hours=1)  # type: ignore[union-attr]
    configured = {"auth": AUTH, "sign_in": {"sso": {"roles": ROLES, "max_age_minutes": 15}}}
    assert load_config(LIVE, configured).sso.max_age == timedelta(minutes=15)  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="max_age_minutes"):
        load_config(LIVE, {"auth": AUTH, "sign_in": {"sso": {"roles": ROLES, "max_age_minutes": 0}}})
