"""Schemathesis against the sandbox's own OpenAPI, over real HTTP: no 5xx, no answer outside the schema.

(Driven through its Python API: its pytest plugin does not load under this pytest.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from sandbox import RunningSandbox, SandboxSettings, start_sandbox

CHECKS = [schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance,
          schemathesis.checks.content_type_conformance, schemathesis.checks.response_schema_conformance]


@pytest.fixture(scope="module")
def live_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    running = start_sandbox(SandboxSettings(db_path=tmp_path_factory.mktemp("schema") / "s.db",
                                            rate_limit=1_000_000))
    yield running
    running.stop()


def test_every_operation_keeps_its_schema(live_sandbox: RunningSandbox) -> None:
    schema = schemathesis.openapi.from_url(f"{live_sandbox.root_url}/openapi.json").include(
        path_regex="^/api/v1/")  # the sandbox's test controls are not the API
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 7
    calls = []
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(headers={"X-API-Key": live_sandbox.api_key})
            calls.append(response.status_code)
            case.validate_response(response, checks=CHECKS)

        check()
    assert calls and max(calls) < 500
