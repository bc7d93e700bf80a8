"""The webhook delivery worker: POST each delivery the matcher made, signed.

Powertools idempotency on the delivery id (a duplicate event never delivers twice), the
body (Standard Webhooks' ``type``, ``timestamp``, ``data``) signed with each of the
subscription's secrets that signs now (``signing_keys``), sent only to an address outside
private networks, checked after resolving the host (``destinations``) and connected to as
checked. The answer is classified: 2xx delivered; 410
disables the subscription; other 4xx (but 408/429) dead-letter at once; the rest retries
with exponential backoff and jitter through message visibility (429 honours Retry-After),
and the 8th failed attempt dead-letters with a failure record.
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ValidationError

from jobkit.adapters.aws import SQSClient
from jobkit.adapters.queue import DeadLetterQueue, receive_count
from jobkit.adapters.ratelimit import RateLimitedError, TokenBucket
from jobkit.domain.backoff import backoff_seconds
from jobkit.domain.envelope import describe_validation_error
from jobkit.observability import logger, metrics
from jobkit.webhooks.destinations import (
    ForbiddenDestination,
    UnresolvableDestination,
    resolve_checked,
)
from jobkit.webhooks.matcher import Delivery
from jobkit.webhooks.payload import WebhookPayload
from jobkit.webhooks.signing import (
    ID_HEADER,
    MAX_ATTEMPTS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Verdict,
    classify,
    signature_header,
)
from jobkit.webhooks.signing_keys import SigningKeys
from jobkit.webhooks.subscriptions import DeliveryLog, Subscription, SubscriptionStore


@dataclass(frozen=True)
class _Signed:
    """One attempt's body and its Standard Webhooks headers, signed now by every key that
    signs now; ``versions``: theirs, for the delivery log."""

    body: bytes
    headers: dict[str, str]
    versions: tuple[int, ...]

    @classmethod
    def now(cls, stored_keys: str, delivery: Delivery) -> "_Signed":
        signing = SigningKeys.parse(stored_keys).signing(datetime.now(UTC))
        body = WebhookPayload.of(delivery.event).body()
        timestamp = int(time.time())
        signatures = signature_header(
            [key.secret for key in signing], delivery.delivery_id, timestamp, body
        )
        headers = {
            ID_HEADER: delivery.delivery_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signatures,
        }
        return cls(body, headers, tuple(key.version for key in signing))


# What a delivery that will not be retried ends as.
_FINAL = {
    Verdict.DELIVERED: "delivered",
    Verdict.GONE: "gone",
    Verdict.PERMANENT: "dead_lettered",
}


class DeliveryOutcome(BaseModel):
    """Kept in the idempotency record: a final answer for this delivery."""

    status: str
    http_status: int | None = None


class RetryDelivery(Exception):  # noqa: N818 - a signal, not an error condition
    def __init__(self, reason: str, http_status: int | None, retry_after: float | None) -> None:
        super().__init__(reason)
        self.http_status = http_status
        self.retry_after = retry_after


class EndpointPacer:
    """Each endpoint's ``rate_per_second``, held by every delivery container together: one
    token bucket per subscription, in the Control table with the external system's, and
    requests spaced evenly (no burst)."""

    def __init__(
        self,
        table: Any,
        max_wait_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._table = table
        self._max_wait = max_wait_seconds
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[tuple[str, float], TokenBucket] = {}

    def wait(self, subscription: Subscription, max_wait_seconds: float | None = None) -> None:
        """Return once the endpoint may take one more request; RateLimitedError past the
        patience (this pacer's, or shorter when given; the delivery is then retried later)."""
        key = (subscription.subscription_id, subscription.rate_per_second)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(
                self._table,
                f"webhook:{subscription.subscription_id}",
                rate=subscription.rate_per_second,
                burst=1,
                max_wait_seconds=self._max_wait,
                clock=self._clock,
                sleep=self._sleep,
            )
        bucket.acquire(max_wait_seconds)


@dataclass
class WorkerDeps:
    subscriptions: SubscriptionStore
    log: DeliveryLog
    secret: Callable[[str], str]
    http: httpx.Client
    sqs: SQSClient
    queue_url: str
    dead_letters: DeadLetterQueue
    persistence: BasePersistenceLayer
    backoff_base: float
    backoff_cap: float
    pacer: EndpointPacer
    post_timeout_seconds: float
    max_attempts: int = MAX_ATTEMPTS
    key_prefix: str = "jobkit.webhook"
    # Loopback receivers are the local stack's only; every other private address is refused.
    allow_loopback: bool = False
    resolve: Callable[[str, int, bool], list[str]] = resolve_checked


class DeliveryWorker:
    def __init__(self, deps: WorkerDeps) -> None:
        self._deps = deps
        self._pacing_ends = float("inf")  # set by each invocation
        self._config = IdempotencyConfig(
            event_key_jmespath="delivery_id",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=7 * 24 * 3600,
        )
        self._deliver = idempotent_function(
            self._deliver_once,
            data_keyword_argument="delivery",
            persistence_store=deps.persistence,
            config=self._config,
            output_serializer=PydanticSerializer(DeliveryOutcome),
            key_prefix=deps.key_prefix,
        )

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        records = event.get("Records", [])
        metrics.add_metric(name="WebhookAttempts", unit=MetricUnit.Count, value=len(records))
        self._config.register_lambda_context(context)
        # A slow endpoint's pace must not run the invocation into its timeout: waiting for
        # the endpoint stops in time for the request itself (its timeout) and a margin.
        self._pacing_ends = (
            time.monotonic()
            + context.get_remaining_time_in_millis() / 1000
            - self._deps.post_timeout_seconds
            - 1.0
        )
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

        def handle_message(record: SQSRecord) -> None:  # BatchProcessor passes `record=`
            self._handle(record)

        with processor(records=records, handler=handle_message):
            processor.process()
        return dict(processor.response())

    def _handle(self, message: SQSRecord) -> None:
        attempt = receive_count(message)
        try:
            delivery = Delivery.model_validate_json(message.body)
        except ValidationError as exc:
            self._dead_letter(message, None, f"invalid delivery: {describe_validation_error(exc)}")
            return
        try:
            self._deliver(delivery=delivery)
        except RetryDelivery as retry:
            if attempt >= self._deps.max_attempts:
                reason = f"gave up after {attempt} attempts: {retry}"
                self._deps.log.give_up(delivery.delivery_id, reason)
                self._dead_letter(message, delivery, reason)
                return
            delay = retry.retry_after or backoff_seconds(
                attempt, self._deps.backoff_base, self._deps.backoff_cap
            )
            self._deps.sqs.change_message_visibility(
                QueueUrl=self._deps.queue_url,
                ReceiptHandle=message.receipt_handle,
                VisibilityTimeout=max(1, int(delay)),
            )
            raise

    def _deliver_once(self, delivery: Delivery) -> DeliveryOutcome:
        subscription = self._deps.subscriptions.get(delivery.client_id, delivery.subscription_id)
        if subscription is None or not subscription.enabled:
            logger.info(
                "delivery skipped: subscription gone or disabled",
                extra={"delivery_id": delivery.delivery_id},
            )
            return DeliveryOutcome(status="skipped")
        # Paced first: a delivery refused by its endpoint's pace reads no secret, and the
        # signature's timestamp is the sending time, not the start of the wait.
        try:
            self._deps.pacer.wait(subscription, self._pacing_ends - time.monotonic())
        except RateLimitedError as exc:
            raise RetryDelivery(f"endpoint busy: {exc}", None, None) from exc
        address = self._checked_address(subscription, delivery)
        if address is None:
            return DeliveryOutcome(status="dead_lettered")
        signed = _Signed.now(self._deps.secret(subscription.secret_name), delivery)
        status, retry_after, error, latency = self._post(subscription.url, address, signed)
        answer = classify(status, retry_after)
        keys = self._log_keys(delivery)
        if answer.verdict is Verdict.RETRY:
            self._deps.log.attempt(
                **keys,
                status="retrying",
                http_status=status,
                latency_ms=latency,
                error=error,
                signed_with=signed.versions,
            )
            raise RetryDelivery(error or "retry", status, answer.retry_after)
        if answer.verdict is Verdict.GONE:
            self._deps.subscriptions.disable(
                delivery.client_id, delivery.subscription_id, "endpoint answered 410 Gone"
            )
        final = _FINAL[answer.verdict]
        self._deps.log.attempt(
            **keys,
            status=final,
            http_status=status,
            latency_ms=latency,
            error=error,
            signed_with=signed.versions,
        )
        if answer.verdict is Verdict.PERMANENT:
            self._dead_letter_refused(delivery, error)
        return DeliveryOutcome(status=final, http_status=status)

    def _checked_address(self, subscription: Subscription, delivery: Delivery) -> str | None:
        """The address to connect to: the endpoint's host resolved now, every address it has
        outside private networks (a name may have been re-pointed since it was accepted).
        None when it is not: the delivery is dead-lettered with the reason."""
        url = httpx.URL(subscription.url)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            return self._deps.resolve(url.host, port, self._deps.allow_loopback)[0]
        except UnresolvableDestination as exc:
            raise RetryDelivery(str(exc), None, None) from exc
        except ForbiddenDestination as exc:
            reason = f"endpoint refused: {exc}"
            self._deps.log.give_up(delivery.delivery_id, reason)
            self._dead_letter_forbidden(delivery, reason)
            return None

    def _post(
        self, url: str, address: str, signed: "_Signed"
    ) -> tuple[int | None, str | None, str | None, float]:
        """One signed POST to ``address`` (the host's checked address: a second lookup could
        answer another), with the URL's own host as Host and TLS server name: its status,
        Retry-After and error, and how long it took."""
        target = httpx.URL(url)
        headers = {
            "host": target.netloc.decode(),
            "content-type": "application/json",
            **signed.headers,
        }
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        started = time.perf_counter()
        status: int | None
        try:
            response = self._deps.http.post(
                target.copy_with(host=address),
                content=signed.body,
                headers=headers,
                extensions=extensions,
            )
            status, retry_after = response.status_code, response.headers.get("retry-after")
            error = None if response.is_success else f"HTTP {status}"
        except httpx.HTTPError as exc:  # timeouts and refused connections are failed attempts
            status, retry_after, error = None, None, type(exc).__name__
        return status, retry_after, error, 1000 * (time.perf_counter() - started)

    def _dead_letter_forbidden(self, delivery: Delivery, reason: str) -> None:
        logger.error("delivery refused", extra={"delivery_id": delivery.delivery_id})
        self._deps.dead_letters.send(
            json.dumps(delivery.model_dump(mode="json")),
            reason=reason,
            error_type="ForbiddenDestination",
            source_message_id=delivery.delivery_id,
            attempts=1,
            client_id=delivery.client_id,
        )

    def _dead_letter_refused(self, delivery: Delivery, error: str | None) -> None:
        self._deps.dead_letters.send(
            json.dumps(delivery.model_dump(mode="json")),
            reason=f"receiver refused: {error}",
            error_type="DeliveryRefused",
            source_message_id=delivery.delivery_id,
            attempts=1,
            client_id=delivery.client_id,
        )

    @staticmethod
    def _log_keys(delivery: Delivery) -> dict[str, str]:
        return {
            "delivery_id": delivery.delivery_id,
            "client_id": delivery.client_id,
            "subscription_id": delivery.subscription_id,
            "event_id": delivery.event_id,
        }

    def _dead_letter(self, message: SQSRecord, delivery: Delivery | None, reason: str) -> None:
        logger.error(
            "delivery dead-lettered", extra={"reason": reason, "message_id": message.message_id}
        )
        self._deps.dead_letters.send(
            message.body,
            reason=reason,
            error_type="DeliveryFailed",
            source_message_id=message.message_id,
            attempts=receive_count(message),
            client_id=delivery.client_id if delivery else "",
        )
