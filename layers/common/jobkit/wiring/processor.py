"""The processor Lambda, from its settings."""

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from jobkit.adapters.aws import dynamodb_client, dynamodb_table, events_client, sqs_client
from jobkit.adapters.events import EventPublisher
from jobkit.adapters.queue import DeadLetterQueue
from jobkit.adapters.records import WorkflowStore
from jobkit.domain.job import Job
from jobkit.pipeline.budget import TimeBudget
from jobkit.pipeline.process import Dependencies, Processor
from jobkit.settings import ProcessorSettings
from jobkit.wiring.parts import Parts, build_connections, build_retries


def processor_dependencies(
    settings: ProcessorSettings, jobs: Mapping[str, Job[Any]], parts: Parts, **overrides: Any
) -> Dependencies:
    """What the processor is made of; ``overrides`` replace parts of it (the unit tier's
    fakes of the external system and of EventBridge)."""
    defaults = Dependencies(
        jobs=jobs,
        configs=parts.configs,
        counting=parts.ledger.counting,
        workflow=WorkflowStore(dynamodb_table(settings.records_table)),
        queue=parts.queue,
        dead_letters=DeadLetterQueue(sqs_client, settings.work_dlq_url),
        sqs=sqs_client,
        external=build_connections(settings).for_client,
        persistence=DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table, boto3_client=dynamodb_client()
        ),
        circuits=parts.circuits,
        retries=build_retries(settings, parts.ledger.retry_state),
        max_receive_count=settings.max_receive_count,
        key_prefix=settings.idempotency_key_prefix,
        idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
        events=EventPublisher(events_client, settings.event_bus_name),
        chaos=parts.chaos,
        budget=TimeBudget.from_settings(settings),
    )
    return replace(defaults, **overrides)


def build_processor(
    settings: ProcessorSettings, jobs: Mapping[str, Job[Any]], parts: Parts
) -> Processor:
    return Processor(processor_dependencies(settings, jobs, parts))
