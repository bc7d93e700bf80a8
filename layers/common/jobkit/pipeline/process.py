"""The processor: page items fan out into record items; record items get the job's rules once.

One invocation, in two stages:
- every message is routed (``jobkit.pipeline.route``), once the batch's messages are parsed
  and its records' states are to be read together when the first is needed: a page item
  fetches one page (``fetch``), a record item applies the job's rules (``apply``), each
  idempotent on its ``item_key`` (Powertools, DynamoDB), while the time budget allows
  (``budget``);
- then the batch is settled (``settle``): events, counts, acknowledgements, dead letters.

Every batch returns before the function's timeout: a message starts only while the time left
covers its worst case and the settling of the batch, and one that does not (or an
acknowledgement that does not) goes back to the queue for a later invocation.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from jobkit.adapters.aws import SQSClient
from jobkit.adapters.circuits import Circuits
from jobkit.adapters.config import ClientConfig
from jobkit.adapters.config_store import ConfigStore
from jobkit.adapters.events import EventPublisher
from jobkit.adapters.external import ExternalSystem
from jobkit.adapters.queue import DeadLetterQueue, WorkQueue
from jobkit.adapters.records import WorkflowStore
from jobkit.domain.job import Job
from jobkit.observability import logger
from jobkit.pipeline.acknowledge import Acknowledger
from jobkit.pipeline.apply import RecordApplier
from jobkit.pipeline.batch import Batch, PageResult, RecordResult
from jobkit.pipeline.budget import Clock, TimeBudget
from jobkit.pipeline.fetch import PageFetcher
from jobkit.pipeline.lookup import Lookups
from jobkit.pipeline.retry import ClientRetries
from jobkit.pipeline.route import Router
from jobkit.pipeline.settle import Settled, Settler
from jobkit.runs.counting import OutcomeCounting
from jobkit.tooling.chaos import NO_CHAOS, Chaos


@dataclass
class Dependencies:
    jobs: Mapping[str, Job[Any]]
    configs: ConfigStore
    counting: OutcomeCounting
    workflow: WorkflowStore
    queue: WorkQueue
    dead_letters: DeadLetterQueue
    sqs: Callable[[], SQSClient]  # a factory: most batches never need the client
    external: Callable[[ClientConfig], ExternalSystem]
    persistence: BasePersistenceLayer
    circuits: Circuits
    retries: ClientRetries
    max_receive_count: int
    key_prefix: str
    idempotency_ttl_seconds: int
    events: EventPublisher | None = None
    chaos: Chaos = NO_CHAOS
    budget: TimeBudget = field(default_factory=TimeBudget)


class Processor:
    def __init__(self, deps: Dependencies) -> None:
        self._budget = deps.budget
        self._queue = deps.queue
        self._lookups = Lookups(deps.jobs, deps.configs)
        self._applier = RecordApplier(self._lookups, deps.workflow, deps.chaos)
        fetcher = PageFetcher(
            self._lookups, deps.external, deps.circuits, deps.counting, deps.queue, deps.configs
        )
        self._idempotency = IdempotencyConfig(
            event_key_jmespath="item_key",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=deps.idempotency_ttl_seconds,
        )
        self._router = Router(
            _once(
                fetcher.fetch_once, PageResult, f"{deps.key_prefix}.page", deps, self._idempotency
            ),
            _once(
                self._applier.apply_once,
                RecordResult,
                record_key_prefix(deps.key_prefix),
                deps,
                self._idempotency,
            ),
            self._applier,
            deps.counting,
            deps.circuits,
            deps.retries,
            deps.max_receive_count,
        )
        acknowledger = Acknowledger(
            self._lookups,
            deps.external,
            deps.circuits,
            deps.queue,
            deps.dead_letters,
            deps.counting,
            deps.max_receive_count,
        )
        self._settler = Settler(
            acknowledger,
            deps.counting,
            deps.queue,
            deps.dead_letters,
            deps.sqs,
            deps.events,
            deps.max_receive_count,
        )

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        # In-progress idempotency records expire with this invocation, so an item left
        # IN_PROGRESS by a timeout becomes retryable.
        self._idempotency.register_lambda_context(context)
        for cached in (self._lookups, self._applier, self._router):
            cached.forget()
        clock = Clock(context, self._budget)
        batch = Batch()
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

        def handle_message(record: SQSRecord) -> None:  # BatchProcessor passes `record=`
            self._router.handle(record, batch, clock)

        records = event.get("Records") or []
        self._router.prepare(records)
        with processor(records=records, handler=handle_message):
            processor.process()
        failed = {str(f["itemIdentifier"]) for f in processor.response()["batchItemFailures"]}
        source = self._queue.source_url((records or [{}])[0].get("eventSourceARN"))
        settled = self._settler.settle(batch, clock, source)
        _log_early_stop(batch, settled, context)
        failed |= settled.unsettled
        return {"batchItemFailures": [{"itemIdentifier": mid} for mid in sorted(failed)]}


def record_key_prefix(key_prefix: str) -> str:
    """The idempotency key prefix of record items' work (read by a backfill's dry run)."""
    return f"{key_prefix}.record"


def _once[ItemT, ResultT: BaseModel](
    unit: Callable[[ItemT], ResultT],
    result: type[ResultT],
    key_prefix: str,
    deps: Dependencies,
    config: IdempotencyConfig,
) -> Callable[[ItemT], ResultT]:
    """``unit`` run once per item_key (Powertools idempotency), its result kept. The key
    prefix is pinned: Powertools would otherwise derive it from the function's and module's
    names, and a rename would silently drop deduplication."""
    guarded = idempotent_function(
        unit,
        data_keyword_argument="item",
        persistence_store=deps.persistence,
        config=config,
        output_serializer=PydanticSerializer(result),
        key_prefix=key_prefix,
    )
    return lambda item: guarded(item=item)


def _log_early_stop(batch: Batch, settled: Settled, context: LambdaContext) -> None:
    if settled.unstarted or settled.unacknowledged:
        logger.warning(
            "time budget: batch stopped early",
            extra={
                "unstarted": settled.unstarted,
                "unacknowledged": settled.unacknowledged,
                "started": batch.started,
                "ms_left_at_stop": batch.stopped_at_ms,
                "ms_left": context.get_remaining_time_in_millis(),
            },
        )
