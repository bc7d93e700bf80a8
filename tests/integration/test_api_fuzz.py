"""API fuzzing: schemathesis generates requests from the published OpenAPI document and sends
them through API Gateway and the key authorizer on the local stack. No answer may be a 5xx,
and every answer must be one the document declares, with the body it declares.

A read key: writes are refused (403, documented) so fuzzing cannot start runs or rewrite
clients on the shared stack, but they still go through routing, validation and scopes.
"""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from schemathesis import openapi
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from jobkit.adapters.keys import KeyStore, Scope
from jobkit_cli.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def published(api_base: str) -> Iterator[Any]:
    document = httpx.get(f"{api_base}/swagger", params={"format": "json"}, timeout=30).json()
    yield openapi.from_dict(document)


@pytest.fixture(scope="module")
def read_key(stack: Stack, issued_keys: list[str]) -> str:
    _, plaintext = KeyStore(stack.table("KeysTableName")).create("fuzz", {Scope.READ})
    issued_keys.append(plaintext)  # scanned for in every log at the end of the suite
    return plaintext


def _name(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path}"


def test_every_answer_is_documented_and_none_is_a_server_error(
    published: Any, api_base: str, read_key: str
) -> None:
    # Each operation in turn (schemathesis' own pytest plugin does not load under this
    # pytest); hypothesis generates the cases, schemathesis sends and checks them.
    failures: dict[str, str] = {}
    answers: list[tuple[str, int]] = []  # (operation, status) of every case sent

    # Recorded by a hook, not in `call`: derandomized Hypothesis seeds from `call`'s source,
    # so editing it would change every case fuzzed.
    @published.hook  # type: ignore[untyped-decorator]
    def after_call(context: Any, case: Any, response: Any) -> None:
        answers.append((_name(case.operation), response.status_code))

    operations = [result.ok() for result in published.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @settings(
            max_examples=8,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def call(case: Any) -> None:
            case.call_and_validate(
                base_url=api_base,
                headers={"x-api-key": read_key},
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                ],
            )

        try:
            call()
        except Exception as exc:  # noqa: BLE001 - collected, so every operation is fuzzed
            failures[_name(operation)] = str(exc)[:600]
    assert not failures, "\n\n".join(f"{op}: {why}" for op, why in failures.items())
    # Every operation was sent cases, and each got past the authorizer: the read key was
    # accepted every time (401 is the authorizer's refusal), so what answered was the API's
    # routing, validation and scopes.
    assert {op for op, _ in answers} == {_name(operation) for operation in operations}
    assert sorted({op for op, status in answers if status == 401}) == []
    # A read key reads: no call that would change something succeeded
    changed = {op for op, status in answers if not op.startswith("GET ") and status < 300}
    assert sorted(changed) == []
