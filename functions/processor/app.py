"""Processor Lambda, shared by every job type: work items from the work queue, in batches."""

from typing import Any

# First, before anything loads pydantic: Powertools' batch types import its parser's event
# models (SQS, Kinesis, DynamoDB streams, Kafka) when pydantic is already loaded, and building
# them is a sizeable share of a cold start; the processor reads SQS records as data classes.
import aws_lambda_powertools.utilities.batch  # noqa: F401
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobkit.adapters.aws import dynamodb_client, dynamodb_table, events_client, sqs_client
from jobkit.adapters.config import ConfigStore
from jobkit.adapters.events import EventPublisher
from jobkit.adapters.queue import DeadLetterQueue, WorkQueue
from jobkit.adapters.records import WorkflowStore
from jobkit.observability import logger, metrics, tracer
from jobkit.pipeline.budget import TimeBudget
from jobkit.pipeline.process import Dependencies, Processor
from jobkit.settings import ProcessorSettings, load_settings
from jobkit.tooling.request_log import log_request_counts
from jobkit.wiring import (
    build_chaos,
    build_circuits,
    build_connections,
    build_ledger,
    build_retries,
)
from jobs import JOBS

settings = load_settings(ProcessorSettings)
chaos = build_chaos(settings.control_table, settings.chaos_enabled)
configs = ConfigStore(dynamodb_table(settings.config_table))
ledger = build_ledger(settings, configs)
processor = Processor(
    Dependencies(
        jobs=JOBS,
        configs=configs,
        counting=ledger.counting,
        workflow=WorkflowStore(dynamodb_table(settings.records_table)),
        queue=WorkQueue(sqs_client, settings.work_queue_url, chaos),
        dead_letters=DeadLetterQueue(sqs_client, settings.work_dlq_url),
        sqs=sqs_client,
        queue_url=settings.work_queue_url,
        external=build_connections(settings).for_client,
        persistence=DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table, boto3_client=dynamodb_client()
        ),
        circuits=build_circuits(settings),
        retries=build_retries(settings, ledger.retry_state),
        max_receive_count=settings.max_receive_count,
        key_prefix=settings.idempotency_key_prefix,
        idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
        events=EventPublisher(events_client, settings.event_bus_name),
        chaos=chaos,
        budget=TimeBudget.from_settings(settings),
    )
)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@log_request_counts
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(name="WorkItems", unit=MetricUnit.Count, value=len(event.get("Records", [])))
    return processor.handle(event, context)
