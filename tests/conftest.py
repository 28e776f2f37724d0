"""Shared fixtures: a fresh sandbox on loopback per test, a client bound to it, and its test controls."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import RunningSandbox, SandboxSettings, start_sandbox
from sandbox.control_client import SandboxControl
from services.payments.client import PaymentsClient


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[RunningSandbox]:
    running = start_sandbox(SandboxSettings(db_path=tmp_path / "sandbox.sqlite3"))
    yield running
    running.stop()


@pytest.fixture
def client(sandbox: RunningSandbox) -> Iterator[PaymentsClient]:
    with PaymentsClient(sandbox.base_url, sandbox.api_key, timeout=(2.0, 5.0), backoff_factor=0.05) as payments:
        yield payments


@pytest.fixture
def control(sandbox: RunningSandbox) -> SandboxControl:
    return SandboxControl(sandbox.root_url, sandbox.api_key)
