"""The console's logging set-up and its per-run timing lines, and the Streamlit settings they depend on."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import pytest

from services import run_log

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh_logging(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """configure_logging acts once per process: let each test configure it anew, and restore the level."""
    console_logger = logging.getLogger("billing_desk")
    level = console_logger.level
    monkeypatch.setattr(run_log, "_configured", False)
    yield console_logger
    console_logger.setLevel(level)


def test_each_run_is_logged_at_debug_with_its_page_and_times(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="billing_desk.runs")
    wall, cpu = run_log.RunTimer().finish("Subscription actions")
    assert 0 <= cpu and 0 <= wall < run_log.SLOW_RUN_SECONDS
    [record] = caplog.records
    assert record.levelno == logging.DEBUG
    # The load test parses this line: page names without spaces, times in milliseconds.
    assert record.getMessage().startswith("run page=Subscription_actions wall_ms=")
    assert "cpu_ms=" in record.getMessage()


def test_a_slow_run_is_a_warning(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO, logger="billing_desk.runs")
    timer = run_log.RunTimer()
    timer.started -= run_log.SLOW_RUN_SECONDS + 0.5  # as if the run began 2.5 s ago
    timer.finish("Customer")
    [record] = caplog.records  # the DEBUG line is below INFO: only the warning
    assert record.levelno == logging.WARNING
    assert "Slow run: page Customer took 2.5 s" in record.getMessage()


def test_log_level_comes_from_the_environment(fresh_logging: logging.Logger,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(run_log.LOG_LEVEL_VARIABLE, "debug")
    run_log.configure_logging()
    assert fresh_logging.level == logging.DEBUG
    assert logging.getLogger("urllib3").getEffectiveLevel() >= logging.INFO  # libraries don't follow


def test_an_unknown_log_level_keeps_info_and_says_so(fresh_logging: logging.Logger, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(run_log.LOG_LEVEL_VARIABLE, "loud")
    fresh_logging.setLevel(logging.INFO)
    run_log.configure_logging()
    assert fresh_logging.level == logging.INFO
    assert "BILLING_DESK_LOG_LEVEL='LOUD' is not a log level; using INFO" in caplog.text


def test_streamlit_settings_that_keep_the_console_fast_under_load() -> None:
    # Measured in docs/reliability.md (Load): with Streamlit's defaults a full garbage collection after every run
    # and a source watcher re-resolving module paths stalled every session once 20 people worked at once.
    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert settings["runner"]["postScriptGC"] is False
    assert settings["server"]["fileWatcherType"] == "none"
    assert settings["server"]["runOnSave"] is False
