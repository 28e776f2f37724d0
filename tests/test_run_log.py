"""The console's logging set-up and its per-run timing lines, and the Streamlit settings they depend on."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import pytest

from sandbox import RunningSandbox
from services import run_log
from services.payments.client import PaymentsClient

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


def test_api_calls_log_as_json_lines_with_their_request_id_and_never_the_key(
        client: PaymentsClient, sandbox: RunningSandbox) -> None:
    import io
    import json

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(run_log.JsonLines())
    payments_logger = logging.getLogger("billing_desk.payments")
    payments_logger.addHandler(handler)
    level = payments_logger.level
    payments_logger.setLevel(logging.INFO)
    try:
        client.get_customer("org_abc123")
    finally:
        payments_logger.removeHandler(handler)
        payments_logger.setLevel(level)
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["level"] == "INFO" and line["logger"] == "billing_desk.payments" and line["time"].endswith("+00:00")
    assert (line["method"], line["endpoint"], line["status"]) == ("GET", "/payment/customer-info", 200)
    assert line["request_id"] and line["request_id"] in line["message"] and line["elapsed_ms"] >= 0
    assert sandbox.api_key not in stream.getvalue()


def test_the_log_format_comes_from_the_environment_in_each_process(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    script = ("from services.run_log import configure_logging; import logging; configure_logging(); "
              "logging.getLogger('billing_desk.test').warning('a \"quoted\" word')")
    for wanted, parse in (("json", json.loads), ("text", str), ("yaml", str)):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60,
                              env={**os.environ, "BILLING_DESK_LOG_FORMAT": wanted})
        lines = done.stderr.strip().splitlines()
        if wanted == "json":
            [entry] = [parse(line) for line in lines]
            assert entry["message"] == 'a "quoted" word' and entry["level"] == "WARNING"
        else:
            assert lines[-1].endswith('billing_desk.test a "quoted" word')
            assert (wanted == "yaml") == any("is not a log format" in line for line in lines)
