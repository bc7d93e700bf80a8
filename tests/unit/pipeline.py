"""The whole pipeline in-process: planner and processor on moto, the event source simulated."""

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import boto3

from jobkit.adapters.config import ClientConfig
from jobkit.adapters.events import EventPublisher, StatusChanged
from jobkit.adapters.records import STATE, record_pk
from jobkit.pipeline.plan import Planner
from jobkit.pipeline.plan_request import PlanRequest
from jobkit.pipeline.process import Dependencies, Processor
from jobkit.pipeline.retry import RetryRequest
from jobkit.pipeline.shard_range import ShardRequest
from jobkit.runs.models import RunHeader, RunView
from jobkit.settings import PlannerSettings, ProcessorSettings, RetryWorkerSettings
from jobkit.wiring.parts import build_parts
from jobkit.wiring.planner import build_planner
from jobkit.wiring.processor import processor_dependencies
from jobkit.wiring.retry_worker import build_retry_worker
from jobs import JOBS
from tests.support import LambdaContext

JOB = "sync-completed-records"
RETRY_TARGET = "arn:aws:lambda:us-east-1:123456789012:function:jobkit-retry-worker"
RETRY_ROLE = "arn:aws:iam::123456789012:role/jobkit-retry-scheduler"
RETRY_GROUP = "jobkit-test-schedules"  # the stack's own group, as the template gives it
RETRY_DLQ = "arn:aws:sqs:us-east-1:123456789012:jobkit-schedule-dlq"


class FakeClock:
    """Time that passes only when something says so: a slow external system, a sleep."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


@dataclass
class ClockedContext(LambdaContext):
    """A Lambda context whose remaining time runs on a fake clock, from ``timeout_seconds``
    at the invocation's start (the template's processor Timeout by default)."""

    clock: FakeClock = field(default_factory=FakeClock)
    timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        self.started_at = self.clock.now

    def get_remaining_time_in_millis(self) -> int:
        deadline = self.started_at + self.timeout_seconds
        return max(0, int((deadline - self.clock.now) * 1000))

    def seconds_used(self) -> float:
        return self.clock.now - self.started_at


@dataclass
class Delivery:
    """What the simulated event source did, for assertions."""

    invocations: int = 0
    failures: list[str] = field(default_factory=list)


@dataclass
class Pipeline:
    aws: Any
    external: Any
    max_receive_count: int = 5
    # High by default so tests about other failures are not also about the circuit.
    circuit_threshold: int = 50
    circuit_cooldown: int = 30
    chaos: bool = False  # read the chaos rates from the Control table, as on the local stack

    def __post_init__(self) -> None:
        self.launched_shards: list[ShardRequest] = []
        # The functions' own wiring (jobkit.wiring), on moto: only the external system and
        # EventBridge are fakes, handed in as the processor's dependencies.
        self.events = RecordingEventBridge()
        self.scheduler = boto3.client("scheduler")
        self.scheduler.create_schedule_group(Name=RETRY_GROUP)
        self.settings = ProcessorSettings.model_validate(self.environment())
        self.parts = build_parts(self.settings)
        self.configs, self.ledger = self.parts.configs, self.parts.ledger
        self.queue, self.circuits = self.parts.queue, self.parts.circuits
        self.retry_worker = build_retry_worker(
            RetryWorkerSettings.model_validate(self.environment()), self.parts, RETRY_TARGET
        )
        self.planner = self.planner_for(JOB)
        self._dependencies = processor_dependencies(
            self.settings,
            JOBS,
            self.parts,
            external=lambda client: self.external,
            events=EventPublisher(lambda: self.events, "bus"),
        )
        self.workflow = self._dependencies.workflow
        self.processor = Processor(self._dependencies)

    def environment(self, **overrides: str) -> dict[str, str]:
        """The functions' settings, as the template gives them, over moto's resources."""
        return {
            "CONFIG_TABLE": "ConfigTable",
            "RUNS_TABLE": "RunsTable",
            "RECORDS_TABLE": "RecordsTable",
            "IDEMPOTENCY_TABLE": "IdempotencyTable",
            "CONTROL_TABLE": "ControlTable",
            "WORK_QUEUE_URL": self.aws.work_queue_url,
            "BACKFILL_QUEUE_URL": self.aws.backfill_queue_url,
            "WORK_DLQ_URL": self.aws.dlq_url,
            "EVENT_BUS_NAME": "bus",
            "EXTERNAL_BASE_URL": "https://external.example.com",
            "CREDENTIALS_SECRET_PREFIX": "jobkit/external",
            "RETRY_FUNCTION_ARN": RETRY_TARGET,
            "RETRY_ROLE_ARN": RETRY_ROLE,
            "RETRY_SCHEDULE_GROUP": RETRY_GROUP,
            "RETRY_DLQ_ARN": RETRY_DLQ,
            "RETRY_BASE_SECONDS": "5",
            "RETRY_MAX_SECONDS": "60",
            "RETRY_MAX_RETRIES": "2",
            "CIRCUIT_FAILURE_THRESHOLD": str(self.circuit_threshold),
            "CIRCUIT_COOLDOWN_SECONDS": str(self.circuit_cooldown),
            "CIRCUIT_SUCCESS_THRESHOLD": "1",
            "MAX_RECEIVE_COUNT": str(self.max_receive_count),
            "IDEMPOTENCY_TTL_SECONDS": "3600",
            # The chaos rates are read from the Control table, as on the local stack
            "CHAOS_ENABLED": "true" if self.chaos else "false",
            **overrides,
        }

    def planner_for(
        self,
        job_type: str,
        shard_clients: int = 10_000,
        launch_shard: Callable[[ShardRequest], None] | None = None,
    ) -> Planner:
        """The job's planner; the shards it starts are kept in ``launched_shards`` (``plan``
        plans them, in the order started, as Lambda would invoke them), or handed to
        ``launch_shard``."""
        settings = PlannerSettings.model_validate(
            self.environment(JOB_TYPE=job_type, PLAN_SHARD_CLIENTS=str(shard_clients))
        )
        return build_planner(
            settings,
            self.parts,
            lambda: JOBS[job_type].config_fields,
            launch_shard=launch_shard or self.launched_shards.append,
        )

    def scheduled_retries(self) -> list[RetryRequest]:
        """The one-off schedules created so far, as the requests they would send."""
        return [
            RetryRequest.model_validate_json(definition["Target"]["Input"])
            for definition in self.retry_schedules()
        ]

    def retry_schedules(self) -> list[dict[str, Any]]:
        """The one-off schedules' definitions, from the stack's group."""
        listed = self.scheduler.list_schedules(GroupName=RETRY_GROUP)["Schedules"]
        return [self.scheduler.get_schedule(Name=s["Name"], GroupName=RETRY_GROUP) for s in listed]

    def fire_retries(self) -> list[str]:
        """Time passes: every schedule fires once (then is deleted, as ours ask)."""
        results = []
        for definition in self.retry_schedules():
            self.scheduler.delete_schedule(Name=definition["Name"], GroupName=RETRY_GROUP)
            request = RetryRequest.model_validate_json(definition["Target"]["Input"])
            results.append(self.retry_worker.retry(request))
        return results

    def dependencies(self, **overrides: Any) -> Dependencies:
        """The processor's dependencies, some replaced (a crashing queue, a slow system)."""
        return replace(self._dependencies, **overrides)

    def seed(
        self,
        client_id: str,
        group_id: str = "north",
        count: int = 5,
        poison: tuple[str, ...] = (),
        **config: Any,
    ) -> list[str]:
        ids: list[str] = self.external.add_client(client_id, group_id, count, poison)
        table = self.aws.tables["RecordsTable"]
        for rid in ids:
            table.put_item(
                Item={
                    "pk": record_pk(client_id, rid),
                    "sk": STATE,
                    "status": "IN_PROGRESS",
                    "version": 0,
                    "pending_items": [f"{rid}-p1"],
                }
            )
        self.configs.put(
            ClientConfig(job_type=JOB, client_id=client_id, group_id=group_id, **config)
        )
        return ids

    def plan(self, **request: Any) -> RunHeader:
        return self.plan_request(PlanRequest(**request))

    def plan_request(self, request: PlanRequest, planner: Planner | None = None) -> RunHeader:
        """The run opened and its first shard planned, then every shard it started."""
        planner = planner or self.planner
        header = planner.plan(request)
        while self.launched_shards:
            planner.plan_shard(self.launched_shards.pop(0))
        return self.ledger.lifecycle.header(header.run_id) or header

    def receive(self, max_messages: int = 10, queue_url: str = "") -> list[dict[str, Any]]:
        """Messages of the live lane, or of ``queue_url`` (the backfill lane's), each marked
        with the queue it came from, as the event source marks its records."""
        queue_url = queue_url or self.aws.work_queue_url
        response = self.aws.sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=max_messages,
            AttributeNames=["All"],
            VisibilityTimeout=30,
        )
        messages = list(response.get("Messages", []))
        for message in messages:
            message["QueueUrl"] = queue_url
        return messages

    def receive_batch(self, size: int = 50) -> list[dict[str, Any]]:
        """Up to ``size`` messages, gathered as Lambda's poller does on AWS (10 per receive)."""
        messages: list[dict[str, Any]] = []
        while len(messages) < size:
            received = self.receive(min(10, size - len(messages)))
            if not received:
                break
            messages += received
        return messages

    def invoke(
        self, messages: list[dict[str, Any]], context: LambdaContext | None = None
    ) -> list[str]:
        """Hand messages to the processor as the event source mapping would."""
        event = {"Records": [to_sqs_record(m) for m in messages]}
        result = self.processor.handle(event, context or LambdaContext())  # type: ignore[arg-type]
        failed = [f["itemIdentifier"] for f in result["batchItemFailures"]]
        for message in messages:
            if message["MessageId"] in failed:
                # Time passes: the retry becomes visible again.
                self.aws.sqs.change_message_visibility(
                    QueueUrl=_queue_of(message, self.aws.work_queue_url),
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=0,
                )
            else:
                self.aws.sqs.delete_message(
                    QueueUrl=_queue_of(message, self.aws.work_queue_url),
                    ReceiptHandle=message["ReceiptHandle"],
                )
        return failed

    def release(self, messages: list[dict[str, Any]]) -> None:
        """Give received messages back to the queue untouched."""
        for message in messages:
            self.aws.sqs.change_message_visibility(
                QueueUrl=_queue_of(message, self.aws.work_queue_url),
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=0,
            )

    def drain(self, max_rounds: int = 200) -> Delivery:
        """Both lanes, each invocation one queue's messages (as each event source hands
        them): the live lane first, then the backfill lane, until both are empty."""
        delivery = Delivery()
        for _ in range(max_rounds):
            messages = self.receive() or self.receive(queue_url=self.aws.backfill_queue_url)
            if not messages:
                return delivery
            delivery.invocations += 1
            delivery.failures += self.invoke(messages)
        raise AssertionError("the work queue did not drain")

    def drain_with_retries(self, max_rounds: int = 10) -> Delivery:
        """Drain the queue, fire the retries scheduled meanwhile, again, until none is left."""
        delivery = Delivery()
        for _ in range(max_rounds):
            drained = self.drain()
            delivery.invocations += drained.invocations
            delivery.failures += drained.failures
            if not self.fire_retries():
                return delivery
        raise AssertionError("retries kept being scheduled")

    def failing_run(self) -> None:
        """A run whose client fails outright: every fetch of its page fails, client-level
        retries included."""
        self.plan(trigger="cli")
        self.external.fail_gets = 3  # the first try and both client-level retries fail
        self.drain_with_retries()

    def view(self, run_id: str) -> RunView:
        view = self.ledger.queries.view(run_id)
        assert view is not None
        return view

    def state(self, client_id: str, record_id: str) -> dict[str, Any]:
        key = {"pk": record_pk(client_id, record_id), "sk": STATE}
        return dict(self.aws.tables["RecordsTable"].get_item(Key=key)["Item"])

    def history(self, client_id: str, record_id: str) -> list[dict[str, Any]]:
        return self.workflow.history(client_id, record_id)

    def dead_letters(self) -> list[dict[str, Any]]:
        response = self.aws.sqs.receive_message(
            QueueUrl=self.aws.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        return [
            {
                "body": json.loads(m["Body"]) if m["Body"].startswith("{") else m["Body"],
                "reason": m["MessageAttributes"]["reason"]["StringValue"],
                "error_type": m["MessageAttributes"]["error_type"]["StringValue"],
            }
            for m in response.get("Messages", [])
        ]


class RecordingEventBridge:
    """EventBridge as the real EventPublisher sees it: keeps what was put, and can fail the
    next N entries (answering 200 with per-entry errors, as PutEvents does)."""

    def __init__(self) -> None:
        self.published: list[StatusChanged] = []
        self.requests = 0
        self.fail_next = 0

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.requests += 1
        answers: list[dict[str, Any]] = []
        for entry in Entries:
            if self.fail_next:
                self.fail_next -= 1
                answers.append({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
                continue
            self.published.append(StatusChanged.model_validate_json(entry["Detail"]))
            answers.append({"EventId": str(len(self.published))})
        failed = sum(1 for a in answers if "ErrorCode" in a)
        return {"FailedEntryCount": failed, "Entries": answers}


def _queue_of(message: dict[str, Any], default: str) -> str:
    return str(message.get("QueueUrl") or default)


def to_sqs_record(message: dict[str, Any]) -> dict[str, Any]:
    queue_name = _queue_of(message, "work").rsplit("/", 1)[-1]
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue_name}",
        "awsRegion": "us-east-1",
    }
