"""The webhook matcher: a domain event in, one delivery per matching subscription out.

The delivery id is the event id + the subscription id, so a duplicate event makes the same
delivery, which the worker (``jobkit.webhooks.delivery``) delivers once.
"""

import hashlib
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, ValidationError

from jobkit.adapters.events import BusEvent, StatusChanged
from jobkit.adapters.queue import WorkQueue
from jobkit.domain.envelope import describe_validation_error
from jobkit.observability import logger, metrics
from jobkit.webhooks.subscriptions import Subscription, SubscriptionStore


class Delivery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    delivery_id: str
    subscription_id: str
    client_id: str
    event_id: str
    event_type: str
    event: dict[str, Any]


def delivery_id(event_id: str, subscription_id: str) -> str:
    return hashlib.sha256(f"{event_id}#{subscription_id}".encode()).hexdigest()[:32]


class Matcher:
    """Domain events in, one delivery per matching subscription out, a queue batch at a time.

    A client's subscriptions are read once per batch: a batch of a run's events (mostly one
    client's) costs one query, not one per event. A subscription made mid-batch is matched
    from the next batch on.
    """

    def __init__(self, subscriptions: SubscriptionStore, queue: WorkQueue) -> None:
        self._subscriptions = subscriptions
        self._queue = queue
        self._batch = BatchProcessor(event_type=EventType.SQS)
        self._by_client: dict[str, list[Subscription]] = {}

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        """An SQS batch of bus events; a message that fails is retried alone, then
        dead-lettered by the queue's redrive policy."""
        matched = len(event.get("Records", []))
        metrics.add_metric(name="DomainEventsMatched", unit=MetricUnit.Count, value=matched)
        self._by_client.clear()
        response = process_partial_response(
            event=event, record_handler=self._match_message, processor=self._batch, context=context
        )
        return dict(response)

    def _match_message(self, record: SQSRecord) -> int:
        try:
            domain_event = BusEvent.model_validate_json(record.body).detail
        except ValidationError as exc:
            logger.error(
                "invalid bus event",
                extra={"message_id": record.message_id, "reason": describe_validation_error(exc)},
            )
            raise
        logger.append_keys(correlation_id=domain_event.correlation_id)
        try:
            return self.match(domain_event)
        finally:
            logger.remove_keys(["correlation_id"])

    def match(self, event: StatusChanged) -> int:
        if event.client_id not in self._by_client:
            self._by_client[event.client_id] = self._subscriptions.for_client(event.client_id)
        wanted = [s for s in self._by_client[event.client_id] if s.wants(event.type)]
        self._queue.send_bodies(
            [
                (
                    s.subscription_id,
                    Delivery(
                        delivery_id=delivery_id(event.event_id, s.subscription_id),
                        subscription_id=s.subscription_id,
                        client_id=event.client_id,
                        event_id=event.event_id,
                        event_type=event.type,
                        event=event.model_dump(mode="json"),
                    ).model_dump_json(),
                )
                for s in wanted
            ]
        )
        return len(wanted)
