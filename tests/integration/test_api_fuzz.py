"""API fuzzing: schemathesis generates requests from the published OpenAPI document and sends
them through API Gateway and the key authorizer on the local stack, with every check
schemathesis has, positive and negative cases. No answer may be a 5xx, and every answer must
be one the document declares, with the body it declares.

With keys of every scope:
- a read key, and a read key limited to one client;
- a trigger key and an admin key limited to a client of the fuzz's own and one job type,
  their path parameters pinned to them: their writes land, on data the fuzz creates and
  removes at the end.
"""

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, openapi
from schemathesis.config import SchemathesisConfig

from jobkit.adapters.config_store import ConfigStore
from jobkit.adapters.keys import KeyStore, Scope
from jobkit.domain.errors import ConfigNotFoundError
from jobkit.webhooks.subscriptions import SubscriptionStore
from jobkit_cli.stack import Stack

pytestmark = pytest.mark.integration


# Rules a JSON Schema cannot state, which a case valid by the document may break, and whose
# 422 naming the field is the right answer: a backfill's window across its fields (to after
# from, and not in the future: tests/integration/test_backfill_on_stack.py), and a webhook
# URL's host outside private networks (tests/integration/test_webhooks.py).
_ACCEPTED = '["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]'
CROSS_FIELD_RULES = SchemathesisConfig.from_str(
    "".join(
        f"""
[[operations]]
include-path = "{path}"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = {_ACCEPTED}
"""
        for path in ("/jobs/{job_type}/backfills", "/webhooks/subscriptions")
    )
)


@pytest.fixture(scope="module")
def published(api_base: str) -> Iterator[Any]:
    document = httpx.get(f"{api_base}/swagger", params={"format": "json"}, timeout=30).json()
    yield openapi.from_dict(document, config=CROSS_FIELD_RULES)


FUZZ_CLIENT, FUZZ_JOB = "fuzz-client", "sync-contacts"
OWN_DATA = {"client_id": FUZZ_CLIENT, "job_type": FUZZ_JOB}
# name: (scopes, limited to the fuzz's own client and job type)
KEYS = {
    "read": ({Scope.READ}, False),
    "read-one-client": ({Scope.READ}, True),
    "trigger-own-data": ({Scope.TRIGGER}, True),
    "admin-own-data": ({Scope.ADMIN}, True),
}


class Keys(dict[str, str]):
    """The fuzz's keys by name; shown as their names only, so a failing test's report, which
    prints its arguments, never holds a key."""

    def __repr__(self) -> str:
        return f"Keys({sorted(self)})"


@pytest.fixture(scope="module")
def fuzz_keys(stack: Stack, issued_keys: list[str]) -> Iterator[Keys]:
    store = KeyStore(stack.table("KeysTableName"))
    keys = Keys()
    for name, (scopes, limited) in KEYS.items():
        limits: dict[str, Any] = (
            {"clients": {FUZZ_CLIENT}, "job_types": {FUZZ_JOB}} if limited else {}
        )
        _, keys[name] = store.create(f"fuzz-{name}", scopes, **limits)
        issued_keys.append(keys[name])  # scanned for in every log at the end of the suite
    yield keys
    # What the admin key created: the fuzz client's configuration and subscriptions.
    with contextlib.suppress(ConfigNotFoundError):
        ConfigStore(stack.table("ConfigTableName")).delete(FUZZ_JOB, FUZZ_CLIENT)
    subscriptions = SubscriptionStore(
        stack.table("SubscriptionsTableName"),
        stack.client("secretsmanager"),
        stack.outputs["WebhookSecretPrefix"],
    )
    for subscription in subscriptions.for_client(FUZZ_CLIENT):
        subscriptions.remove(FUZZ_CLIENT, subscription.subscription_id)


def _name(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path}"


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("key_name", list(KEYS))
def test_every_answer_is_documented_and_none_is_a_server_error(
    published: Any, api_base: str, fuzz_keys: Keys, key_name: str, mode: Any
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
    limited = KEYS[key_name][1]
    for operation in operations:
        names = set(re.findall(r"\{(\w+)\}", operation.path))
        pinned = {n: v for n, v in OWN_DATA.items() if n in names} if limited else None

        @settings(
            max_examples=6,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(mode, path_parameters=pinned or None))
        def call(case: Any) -> None:
            # Every check schemathesis has (none named: all of them).
            case.call_and_validate(base_url=api_base, headers={"x-api-key": fuzz_keys[key_name]})

        try:
            call()
        except Exception as exc:  # noqa: BLE001 - collected, so every operation is fuzzed
            failures[_name(operation)] = str(exc)[:600]
    assert not failures, "\n\n".join(f"{op}: {why}" for op, why in failures.items())
    # Every operation was sent cases. Valid ones all got past the authorizer: the key was
    # accepted every time (401 is the authorizer's refusal), so what answered was the API's
    # routing, validation and scopes (negative cases may garble the key header itself).
    assert {op for op, _ in answers} == {_name(operation) for operation in operations}
    if mode is GenerationMode.POSITIVE:
        assert sorted({op for op, status in answers if status == 401}) == []
    changed = {op for op, status in answers if not op.startswith("GET ") and status < 300}
    if KEYS[key_name][0] == {Scope.READ}:
        assert sorted(changed) == []  # a read key reads: nothing it sent changed anything
    elif key_name == "admin-own-data" and mode is GenerationMode.POSITIVE:
        # its writes land, on the fuzz's own client
        puts = {op for op in changed if op.startswith("PUT /jobs/") and "/clients/" in op}
        assert puts, changed  # a client PUT (each job type has its own)
