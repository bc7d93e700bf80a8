"""A preview of a job's rules on one page of a client's records: what a run would decide for
each, and whether it would acknowledge it. It writes nothing.

The page is fetched as a run's first page is (the job's own ``fetch_page``, the client's
credentials and circuit, the provider's rate limit, from the client's cursor); each record is
validated with the job's model and handed to ``process``, and a transition is checked against
the platform record's guard (``WorkflowStore.verdict``) instead of committed. No run,
record, idempotency row or acknowledgement is written; like any call to the provider, the
fetch takes rate-limit tokens and counts on the client's circuit.
"""

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from jobkit.adapters.circuits import Circuits
from jobkit.adapters.config import ClientConfig, InvalidClientConfig
from jobkit.adapters.config_store import ConfigStore
from jobkit.adapters.external import ExternalSystem
from jobkit.adapters.records import Allowed, NotAllowed, WorkflowStore
from jobkit.domain.envelope import content_hash
from jobkit.domain.errors import ConfigNotFoundError, JobkitError, PermanentError
from jobkit.domain.job import Job, PageRequest, Skip, raw_record_id
from jobkit.pipeline.apply import describe_outcome, parse_external_record, record_transition_id
from jobkit.runs.models import Outcome

Decision = Literal["transition", "skip", "error"]


class InvalidClientError(PermanentError):
    """The client's configuration row is invalid: no page can be asked for with it."""


class FetchFailedError(JobkitError):
    """The client's page could not be fetched; the message carries the external error."""


@dataclass(frozen=True)
class PreviewRow:
    record_id: str
    decision: Decision
    reason: str
    from_status: str | None = None
    to_status: str | None = None
    # A run would hand it to the job's acknowledge: it commits, or is skipped, there. A record
    # the run would dead-letter is not acknowledged.
    acknowledged: bool = False


@dataclass(frozen=True)
class Preview:
    client_id: str
    rows: list[PreviewRow]
    more: bool  # the page went on past the rows shown, or the feed has another page


class RulePreview:
    def __init__(
        self,
        jobs: Mapping[str, Job[Any]],
        configs: ConfigStore,
        external: Callable[[ClientConfig], ExternalSystem],
        circuits: Circuits,
        workflow: WorkflowStore,
    ) -> None:
        self._jobs = jobs
        self._configs = configs
        self._external = external
        self._circuits = circuits
        self._workflow = workflow

    def preview(self, job_type: str, client_id: str, limit: int) -> Preview:
        """The rules' decisions on the first ``limit`` records of the client's next page."""
        job = self._jobs[job_type]
        client = self._client(job_type, client_id)
        # A page no bigger than what is shown: the provider serves no more than is read.
        request = PageRequest(client.cursor, datetime.now(UTC))
        asked = client.model_copy(update={"page_size": min(limit, client.page_size)})
        try:
            page = self._circuits.call(
                client_id,
                functools.partial(job.fetch_page, self._external(client), asked, request),
            )
        except Exception as exc:  # noqa: BLE001 - whatever the fetch raised is the answer
            raise FetchFailedError(
                f"client {client_id}: its page could not be fetched: {type(exc).__name__}: {exc}"
            ) from exc
        rows = [self._row(job, client, raw) for raw in page.records[:limit]]
        return Preview(client_id, rows, len(page.records) > limit or page.next_cursor is not None)

    def _client(self, job_type: str, client_id: str) -> ClientConfig:
        found = self._configs.get_many(job_type, [client_id]).get(client_id)
        if found is None:
            raise ConfigNotFoundError(f"client {client_id} is not configured for job {job_type}")
        if isinstance(found, InvalidClientConfig):
            raise InvalidClientError(f"client {client_id}: invalid configuration: {found.reason}")
        return found

    def _row(self, job: Job[Any], client: ClientConfig, raw: dict[str, Any]) -> PreviewRow:
        record_id = raw_record_id(raw) or f"unidentified-{content_hash(raw)[:12]}"
        try:
            return self._decide(job, client, record_id, raw)
        except PermanentError as exc:
            # Malformed, another client's, or unknown to the platform: a run dead-letters it.
            return PreviewRow(record_id, "error", f"dead-lettered: {exc}")
        except Exception as exc:  # noqa: BLE001 - the rules' own failure is this row's
            return PreviewRow(record_id, "error", f"the rules raised {type(exc).__name__}: {exc}")

    def _decide(
        self, job: Job[Any], client: ClientConfig, record_id: str, raw: dict[str, Any]
    ) -> PreviewRow:
        record = parse_external_record(job, raw, client.client_id, record_id)
        decision = job.process(record, client)
        if isinstance(decision, Skip):
            return PreviewRow(record_id, "skip", decision.reason, acknowledged=True)
        tid = record_transition_id(client.client_id, record, decision, None)
        verdict = self._workflow.verdict(client.client_id, record.id, decision, tid)
        outcome, reason = describe_outcome(verdict, decision, None)
        if outcome is Outcome.PROCESSED:
            reason = decision.reason
        current = verdict.current_status if isinstance(verdict, NotAllowed) else None
        return PreviewRow(
            record_id,
            "transition" if outcome is Outcome.PROCESSED else "skip",
            reason,
            from_status=verdict.from_status if isinstance(verdict, Allowed) else current,
            to_status=decision.to_status,
            acknowledged=True,
        )
