"""Shared fixtures: a fresh sandbox on loopback per test, a client bound to it, and its test controls; the
store on each backend (`store_url`: SQLite, and PostgreSQL on a throwaway server started once per session)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import RunningSandbox, SandboxSettings, start_sandbox
from sandbox.control_client import SandboxControl
from services.payments.client import PaymentsClient
from tests.support.postgres import PostgresMissing, PostgresServer

STORE_BACKENDS = ["sqlite", "postgresql"]
# The consoles the tests build in this process (AppTest) queue no daily directory refresh: it would read every
# organization behind a test's back. tests/test_directory.py runs the schedule where it is the subject.
os.environ.setdefault("BILLING_DESK_REFRESH", "off")


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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Started only if a test asks for PostgreSQL. Missing PostgreSQL fails those tests (never skips them):
    the store runs on it in production."""
    try:
        server = PostgresServer.start()
    except PostgresMissing as missing:
        pytest.fail(str(missing), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(params=STORE_BACKENDS, ids=STORE_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty store of its own, on each backend in turn."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite3'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create_database()
    yield url
    server.drop_database(url)
