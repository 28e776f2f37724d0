"""A replica refuses to start without the settings every replica must share, and says which."""

from __future__ import annotations

from pathlib import Path

import pytest

from services import preflight
from services.config import ConfigError, load_config

SHARED_KEY = "Vq3xZ8pL2mN7rT4wY9bC6dF1gH5jK0sA-_e"


def test_a_replica_on_a_shared_store_needs_the_shared_cookie_key() -> None:
    environ = {"BILLING_DESK_SANDBOX": "1", "AUDIT_DATABASE_URL": "postgresql://desk@db.internal/desk"}
    with pytest.raises(ConfigError, match="BILLING_DESK_COOKIE_KEY"):
        load_config(environ)  # each process would make its own key: signed out on every other replica
    with pytest.raises(ConfigError, match="BILLING_DESK_AUDIT_KEY"):  # and one audit key, or rows won't verify
        load_config({**environ, "BILLING_DESK_COOKIE_KEY": SHARED_KEY})
    shared = {**environ, "BILLING_DESK_COOKIE_KEY": SHARED_KEY, "BILLING_DESK_AUDIT_KEY": SHARED_KEY}
    assert load_config(shared).cookie_key == SHARED_KEY and load_config(shared).audit_keys is not None


def test_preflight_names_the_missing_setting_and_the_unreachable_store(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BILLING_DESK_SANDBOX", "1")
    monkeypatch.setenv("AUDIT_DATABASE_URL", "postgresql://desk:hunter2@127.0.0.1:9/desk")
    assert preflight.main(["--secrets", str(tmp_path / "none.toml")]) == 1
    assert "BILLING_DESK_COOKIE_KEY" in capsys.readouterr().err
    monkeypatch.setenv("BILLING_DESK_COOKIE_KEY", SHARED_KEY)
    monkeypatch.setenv("BILLING_DESK_AUDIT_KEY", SHARED_KEY)
    assert preflight.main(["--secrets", str(tmp_path / "none.toml")]) == 1
    said = capsys.readouterr().err
    assert "isn't answering" in said and "hunter2" not in said and SHARED_KEY not in said
    monkeypatch.setenv("AUDIT_DATABASE_URL", f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    assert preflight.main(["--secrets", str(tmp_path / "none.toml")]) == 0
    assert "would start" in capsys.readouterr().out


def test_the_shipped_environment_file_names_only_settings_the_console_reads() -> None:
    """A typo in deploy/billing-desk.env.example would leave a replica on a default nobody chose."""
    from services.config import ENVIRONMENT_VARIABLES

    example = Path(__file__).resolve().parent.parent / "deploy" / "billing-desk.env.example"
    names = {line.split("=", 1)[0] for line in example.read_text().splitlines() if line and not line.startswith("#")}
    assert names and names <= set(ENVIRONMENT_VARIABLES), names - set(ENVIRONMENT_VARIABLES)
    assert {"PAYMENTS_API_KEY", "AUDIT_DATABASE_URL", "BILLING_DESK_COOKIE_KEY", "BILLING_DESK_AUDIT_KEY"} <= names
