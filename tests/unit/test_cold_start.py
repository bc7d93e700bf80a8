"""What a cold start imports and builds: only what every invocation needs.

The HTTP client (httpx), the SQS, Scheduler, Secrets Manager and EventBridge clients, Powertools
Parameters, the API's models and Powertools' parser models are for some paths only, or none:
each import is checked in a fresh interpreter, as Lambda starts one.
"""

import json
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest

from jobkit.adapters.config import ClientConfig
from jobkit.adapters.credentials import ExternalCredential
from jobkit.adapters.external import Connections
from tests.support import ROOT

ENV = {
    "JOB_TYPE": "sync-completed-records",
    "CONFIG_TABLE": "ConfigTable",
    "RUNS_TABLE": "RunsTable",
    "RECORDS_TABLE": "RecordsTable",
    "IDEMPOTENCY_TABLE": "IdempotencyTable",
    "CONTROL_TABLE": "ControlTable",
    "WORK_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/work",
    "WORK_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
    "EXTERNAL_BASE_URL": "http://127.0.0.1:9",
    "EVENT_BUS_NAME": "jobkit-events",
    "RETRY_FUNCTION_ARN": "arn:aws:lambda:us-east-1:123456789012:function:retry",
    "RETRY_ROLE_ARN": "arn:aws:iam::123456789012:role/retry",
    "RETRY_SCHEDULE_GROUP": "jobkit-schedules",
    "CREDENTIALS_SECRET_PREFIX": "jobkit/external",
    # The other functions' own settings
    "KEYS_TABLE": "KeysTable",
    "SUBSCRIPTIONS_TABLE": "SubscriptionsTable",
    "DELIVERIES_TABLE": "DeliveriesTable",
    "WEBHOOK_SECRET_PREFIX": "jobkit/webhooks",
    "WEBHOOK_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks",
    "WEBHOOK_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks-dlq",
    "PLANNERS": "{}",
}

PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
from jobkit.adapters import aws
print(json.dumps({
    "modules": sorted(sys.modules),
    "scheduler_clients": aws.scheduler_client.cache_info().currsize,
    "secrets_clients": aws.secrets_client.cache_info().currsize,
    "events_clients": aws.events_client.cache_info().currsize,
    "sqs_clients": aws.sqs_client.cache_info().currsize,
}))
"""

NOT_AT_COLD_START = (
    "httpx",
    "httpx_retries",
    "jobkit.adapters.http_client",
    "jobkit.api.models",
    "jobkit.ops.health_page",
    "aws_lambda_powertools.utilities.parameters",
    "aws_lambda_powertools.utilities.parser",
)


def _cold_start(module: str) -> dict[str, Any]:
    return _run(PROBE, module)


def _run(probe: str, module: str) -> dict[str, Any]:
    path = [str(ROOT / part) for part in ("functions", "layers/common")]
    env = {**os.environ, **ENV, "PYTHONPATH": os.pathsep.join(path)}
    done = subprocess.run(  # noqa: S603 - our interpreter, our probe
        [sys.executable, "-c", probe, module],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize("module", ["processor.app", "planner.app"])
def test_a_cold_start_loads_only_what_every_invocation_needs(module: str) -> None:
    started = _cold_start(module)
    loaded = set(started["modules"])
    assert module in loaded
    assert sorted(name for name in NOT_AT_COLD_START if name in loaded) == []
    assert started["scheduler_clients"] == 0
    assert started["secrets_clients"] == 0
    assert started["events_clients"] == 0  # made on the first publish
    assert started["sqs_clients"] == 0  # made on the first send: record batches send none
    # Job modules load on the first item of their type (jobs.JOBS is a lazy registry)
    assert [name for name in loaded if name.startswith("jobs.")] == []


GC_PROBE = """
import gc, importlib, json, sys
{before}
seen = []  # collections once the pause began (compiling a module without bytecode may run one)
paused = lambda: "jobkit.cold_start" in sys.modules
gc.callbacks.append(lambda phase, info: phase == "start" and paused() and seen.append(phase))
importlib.import_module(sys.argv[1])
print(json.dumps({{"collections": seen, "on": gc.isenabled(), "frozen": gc.get_freeze_count()}}))
"""
HANDLERS = sorted(path.parent.name for path in (ROOT / "functions").glob("*/app.py"))


@pytest.mark.parametrize("function", HANDLERS)
def test_an_init_collects_no_garbage_and_leaves_collection_on(function: str) -> None:
    # The handler module's first import pauses collection; lambda_entry resumes it
    first = (ROOT / "functions" / function / "app.py").read_text().split("\nimport ", 1)[1]
    assert first.startswith("jobkit.cold_start")
    started = _run(GC_PROBE.format(before=""), f"{function}.app")
    assert started["collections"] == []
    assert started["on"] is True
    assert started["frozen"] > 10_000  # the init's objects: never traversed again


def test_a_process_that_turned_collection_off_keeps_it_off() -> None:
    started = _run(GC_PROBE.format(before="gc.disable()"), "processor.app")
    assert started["on"] is False


def test_the_planner_does_not_load_the_processors_pipeline() -> None:
    # Each handler wires through its own module (jobkit.wiring.planner, .processor, ...)
    loaded = set(_cold_start("planner.app")["modules"])
    processor_only = (
        "jobkit.pipeline.process",
        "jobkit.wiring.processor",
        "aws_lambda_powertools.utilities.batch",
        "aws_lambda_powertools.utilities.idempotency",
    )
    assert sorted(name for name in processor_only if name in loaded) == []


def test_a_job_type_is_imported_on_first_use_and_must_be_the_one_registered(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobkit.domain.errors import JobModuleError, UnknownJobTypeError
    from jobkit.domain.job import JobRegistry
    from jobs import sync_contacts

    (tmp_path / "broken_job.py").write_text('import os\nTOKEN = os.environ["NOT_SET_ANYWHERE"]\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = JobRegistry(
        {
            "sync-contacts": "jobs.sync_contacts",
            "misfiled": "jobs.sync_completed_records",
            "broken": "broken_job",
        }
    )
    assert list(registry) == ["sync-contacts", "misfiled", "broken"]
    assert registry["sync-contacts"] is sync_contacts.JOB
    assert registry.get("never-registered") is None
    with pytest.raises(UnknownJobTypeError, match="declares job type 'sync-completed-records'"):
        registry["misfiled"]
    # A module that fails to load (even with a KeyError) is not taken for an unknown job type
    with pytest.raises(JobModuleError, match="broken_job failed to load: KeyError"):
        registry.get("broken")


def test_the_http_client_is_built_on_first_use_once_per_container() -> None:
    built: list[httpx.Client] = []

    def build() -> httpx.Client:
        built.append(httpx.Client(base_url="http://127.0.0.1:9"))
        return built[-1]

    def no_credentials(client_id: str, refresh: bool) -> ExternalCredential:
        raise AssertionError("no credential is read")

    connections = Connections(build, no_credentials)
    assert built == []
    acme = ClientConfig(job_type="sync-completed-records", client_id="acme", group_id="north")
    globex = acme.model_copy(update={"client_id": "globex", "credentials": True})
    connections.for_client(acme)
    connections.for_client(globex)
    connections.with_credential(ExternalCredential(client_id="acme", token="t" * 16))
    assert len(built) == 1
