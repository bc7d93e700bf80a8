"""Planning a run: read the job type's clients, open the run, enqueue one page item each.

A run is planned a shard of clients at a time (``PlannerSettings.plan_shard_clients``): the
first in the invocation that opens the run, each next one in an invocation of the planner's
own, started as soon as the one before has read its range (``jobkit.runs.shards``), so a
job's clients are never more than one invocation's time and memory can hold. A run that
names its clients is one shard.

A schedule fired twice for the same time opens one run: the run id is derived from the
scheduled time, and a planner that finds its run already planned does nothing more. A planner
that died half-way is resumed by the next attempt (client rows kept, page items re-sent and
deduplicated downstream).

A scheduled fire plans only the clients that are due (``is_due``): a client synced every day
is not synced on every fire of a job scheduled every half hour. A run asked for by hand plans
the clients it names, or every enabled one, whatever their frequency.
"""

import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime

from jobkit.adapters.circuits import Circuits, OpenCircuit
from jobkit.adapters.config import ClientConfig, InvalidClientConfig
from jobkit.adapters.config_store import ConfigStore
from jobkit.adapters.queue import WorkQueue
from jobkit.domain.envelope import PageItem, new_page_item
from jobkit.domain.replay import Replay
from jobkit.observability import logger
from jobkit.pipeline.plan_request import PlanRequest, opening_header, plan_run_id
from jobkit.pipeline.retry import ClientRetries, RetryRequest
from jobkit.pipeline.selection import Selection, named
from jobkit.pipeline.shard_range import ShardRanges, ShardRequest
from jobkit.runs.lifecycle import RunLifecycle
from jobkit.runs.models import ClientRun, ClientStatus, RunHeader, RunStatus
from jobkit.runs.shards import (
    AttemptLease,
    RunShards,
    ShardClaim,
    ShardPlanned,
    ShardRow,
    run_totals,
)
from jobkit.tooling.peak_memory import peak_mb, reset_peak

# Clients planned at a time: their rows written, then their page items sent.
PLAN_CHUNK = 2000
# What a run's header keeps of its shards' issues (each shard keeps ISSUES_PER_SHARD).
RUN_ISSUES = 500


class Planner:
    def __init__(
        self,
        job_type: str,
        configs: ConfigStore,
        runs: RunLifecycle,
        queue: WorkQueue,
        *,
        shards: RunShards,
        ranges: ShardRanges,
        circuits: Circuits,
        retries: ClientRetries,
        config_fields: Callable[[], frozenset[str]] = frozenset,
    ):
        self._job_type = job_type
        self._configs = configs
        self._runs = runs
        self._queue = queue
        self._shards = shards
        self._ranges = ranges
        self._circuits = circuits
        self._retries = retries
        # The query fields the job uses, asked for on the first plan: the job's module is
        # not imported at cold start (``jobs.JOBS`` imports each on first use).
        self._config_fields = config_fields

    def plan(self, request: PlanRequest, ends_by: datetime | None = None) -> RunHeader:
        """Open the run and plan its first shard; the header as it then is (PLANNING while
        later shards are planned). ``ends_by``: when this invocation ends at the latest
        (``AttemptLease``)."""
        reset_peak()
        cpu_started = time.process_time()
        now = datetime.now(UTC)
        run_id = plan_run_id(self._job_type, request, now)
        header, created = self._runs.open_run(opening_header(self._job_type, request, run_id, now))
        if not created and header.status is not RunStatus.PLANNING:
            logger.info("run already planned", extra={"run_id": run_id, "status": header.status})
            return header
        logger.info(
            "run started",
            extra={
                "run_id": run_id,
                "job_type": self._job_type,
                "trigger": request.trigger.value,
                "time": now.isoformat(),
                "resumed": not created,
            },
        )
        wanted = set(request.client_ids) if request.client_ids is not None else None
        if request.dry_run:
            selection = Selection(self._job_type, header.scheduled_for, self._config_fields())
            configs = self._ranges.named(wanted) if wanted is not None else self._ranges.every()
            clients = self._selected(configs, selection, wanted)
            self._close_dry_run(run_id, selection, clients)
        else:
            self._plan_shard(header, 0, wanted, cpu_started, ends_by)
        return self._runs.header(run_id) or header

    def plan_shard(self, request: ShardRequest, ends_by: datetime | None = None) -> None:
        """Plan one of a run's later shards; nothing once the run has left PLANNING (a
        repeated invocation, or a cancelled run)."""
        reset_peak()
        cpu_started = time.process_time()
        header = self._runs.header(request.run_id)
        if header is None or header.status is not RunStatus.PLANNING:
            status = header.status.value if header else None
            logger.info("shard not planned", extra={"run_id": request.run_id, "status": status})
            return
        self._plan_shard(header, request.shard, None, cpu_started, ends_by)

    def _close_dry_run(
        self, run_id: str, selection: Selection, clients: list[ClientConfig]
    ) -> None:
        names = ", ".join(c.client_id for c in clients) or "none"
        nothing = _nothing_planned(
            self._job_type, len(clients), len(selection.invalid), selection.not_due
        )
        issues = [
            *selection.issues,
            *nothing,
            f"dry run: {len(clients)} client(s) would run: {names}",
        ]
        self._runs.close_dry_run(run_id, len(clients) + len(selection.invalid), issues)
        logger.info("dry run planned", extra={"run_id": run_id, "clients": len(clients)})

    def _plan_shard(
        self,
        header: RunHeader,
        index: int,
        wanted: set[str] | None,
        cpu_started: float,
        ends_by: datetime | None,
    ) -> None:
        """The shard claimed for this attempt, then planned; its lease let go at once if the
        attempt fails, so that the retry need not wait for it."""
        lease = AttemptLease.until_deadline(ends_by)
        claim = self._shards.claim(header.run_id, index, lease)
        if claim.row.finished_at is not None:
            self._planned_before(header.run_id)
            return
        try:
            self._plan_claimed(header, claim, wanted, cpu_started)
        except BaseException:
            with suppress(Exception):  # the error that stopped the attempt is the one to tell
                self._shards.release(header.run_id, index, lease)
            raise

    def _plan_claimed(
        self, header: RunHeader, claim: ShardClaim, wanted: set[str] | None, cpu_started: float
    ) -> None:
        """The shard's clients read (those named, for a run that names them: one shard), the
        next shard started, then its clients planned; the run marked running by the shard
        that finishes last."""
        index = claim.row.index
        if wanted is not None:
            configs = self._ranges.named(wanted)
        else:
            configs = self._ranges.read(header.run_id, claim.row)
        selection = Selection(self._job_type, header.scheduled_for, self._config_fields())
        clients = self._selected(configs, selection, wanted)
        planned, invalid_rows = self._start(header, selection, clients, resume=not claim.first)
        rows = self._shards.finish(header.run_id, index, planned)
        logger.info(
            "shard planned",
            extra={
                "run_id": header.run_id,
                "shard": index,
                "peak_memory_mb": peak_mb(),  # local stack only (jobkit.tooling.peak_memory)
                # Against the fire's duration: how much of planning is the planner's own work,
                # and how much waiting on DynamoDB and SQS.
                "cpu_seconds": round(time.process_time() - cpu_started, 2),
                "clients": planned.planned,
                "waiting_clients": planned.waiting,
                "invalid_clients": planned.invalid,
                "not_due_clients": planned.not_due,
                "issues": planned.issues[:50],
            },
        )
        if rows is not None:
            self._mark_running(header.run_id, rows)
        if claim.first:
            for row in invalid_rows:  # closed as they open
                self._runs.client_closed(header, row)

    def _planned_before(self, run_id: str) -> None:
        """A shard an attempt before planned whole (a repeated fire, a repeated invocation):
        the shards whose invocation was lost are started, and the run is marked running if
        every shard is planned and that was not done."""
        rows = self._shards.rows(run_id)
        self._ranges.start_lost(rows, run_id)
        if all(row.finished_at is not None for row in rows):
            self._mark_running(run_id, rows)

    def _start(
        self, header: RunHeader, selection: Selection, clients: list[ClientConfig], resume: bool
    ) -> tuple[ShardPlanned, list[ClientRun]]:
        """Client rows, then one page item per ready client, a chunk of clients at a time;
        what was planned, and the rows of invalid configurations."""
        now = datetime.now(UTC)
        planned = waiting_count = 0
        for start in range(0, len(clients), PLAN_CHUNK):
            chunk = clients[start : start + PLAN_CHUNK]
            ready, waiting = self._hold_back_open_circuits(header, chunk)
            selection.issues += [
                f"client {c.client_id}: circuit open, retry scheduled at {at}" for c, at in waiting
            ]
            self._runs.add_clients(
                header, _ready_rows(ready) + _waiting_rows(waiting), resume=resume
            )
            self._queue.send([self._first_page(header, c, now) for c in ready])
            planned += len(ready)
            waiting_count += len(waiting)
        invalid_rows = [
            ClientRun(client_id=bad.client_id, status=ClientStatus.INVALID_CONFIG, error=bad.reason)
            for bad in selection.invalid
        ]
        self._runs.add_clients(header, invalid_rows, resume=resume)
        shard = ShardPlanned(
            planned=planned,
            waiting=waiting_count,
            invalid=len(invalid_rows),
            not_due=selection.not_due,
            issues=selection.issues,
        )
        return shard, invalid_rows

    def _mark_running(self, run_id: str, rows: list[ShardRow]) -> None:
        """Every shard planned: the run's totals, summed over its shards."""
        totals = run_totals(rows)
        counts = (totals.planned, totals.waiting, totals.invalid, totals.not_due)
        issues = [*totals.issues, *_nothing_planned(self._job_type, *counts)]
        if len(issues) > RUN_ISSUES:  # the header stays far below DynamoDB's 400 KB
            issues = [*issues[:RUN_ISSUES], f"... and {len(issues) - RUN_ISSUES} more issues"]
        marked = self._runs.mark_running(
            run_id,
            clients=totals.planned + totals.waiting + totals.invalid,
            invalid=totals.invalid,
            issues=issues,
            not_due=totals.not_due,
        )
        if not marked:
            return  # another shard's attempt did, at the same time
        logger.info(
            "run planned",
            extra={
                "run_id": run_id,
                "shards": len(rows),
                "clients": totals.planned,
                "waiting_clients": totals.waiting,
                "invalid_clients": totals.invalid,
                "not_due_clients": totals.not_due,
            },
        )

    def _hold_back_open_circuits(
        self, header: RunHeader, clients: list[ClientConfig]
    ) -> tuple[list[ClientConfig], list[tuple[ClientConfig, str]]]:
        """A client whose endpoint's circuit is open is not fetched now: it waits for a retry
        scheduled when the circuit lets a trial call through. Returns the ready clients, and
        the waiting ones with when they are retried."""
        blocked = self._circuits.open_circuits([c.client_id for c in clients])
        ready = [c for c in clients if c.client_id not in blocked]
        waiting = [
            (c, self._schedule_retry(header.run_id, header, c, blocked[c.client_id]))
            for c in clients
            if c.client_id in blocked
        ]
        return ready, waiting

    def _first_page(self, header: RunHeader, client: ClientConfig, now: datetime) -> PageItem:
        return new_page_item(
            job_type=self._job_type,
            run_id=header.run_id,
            client_id=client.client_id,
            group_id=client.group_id,
            correlation_id=header.correlation_id,
            now=now,
            cursor=_first_cursor(header, client),
            as_of=run_as_of(header),
            replay=run_replay(header),
        )

    def _schedule_retry(
        self, run_id: str, header: RunHeader, client: ClientConfig, circuit: OpenCircuit | None
    ) -> str:
        return self._retries.schedule(
            RetryRequest(
                job_type=self._job_type,
                run_id=run_id,
                client_id=client.client_id,
                group_id=client.group_id,
                correlation_id=header.correlation_id,
                attempt=1,
                cursor=_first_cursor(header, client),
                reason="circuit open",
                as_of=run_as_of(header),
                replay=run_replay(header),
            ),
            wait_at_least=circuit.retry_in_seconds if circuit else 0,
        )

    def _selected(
        self,
        configs: list[ClientConfig | InvalidClientConfig],
        selection: Selection,
        wanted: set[str] | None,
    ) -> list[ClientConfig]:
        """The enabled clients to plan of these rows: those named (None: all); on a scheduled
        fire, only those due at its time. ``selection`` keeps what else it met (invalid rows,
        those not due, disabled ones named) and what to say."""
        seen: set[str] = set()
        for config in configs:
            if named(config.client_id, wanted, seen):
                selection.take(config)
        if wanted is not None:
            selection.report_named(wanted - seen)
        return selection.take_clients()

    def stale_count(self) -> int:
        """How many of the job's enabled clients are stale (no clean run for longer than their
        stale age), logged by id: read from the stale index, one row per stale client."""
        stale = list(self._configs.stale(self._job_type, datetime.now(UTC)))
        if stale:
            logger.warning(
                "clients stale",
                extra={"job_type": self._job_type, "count": len(stale), "clients": stale[:50]},
            )
        return len(stale)

    def stuck_planning_count(self) -> int:
        """How many of the job's runs of the last day are stuck planning (``RunLifecycle.
        stuck_in_planning``), logged by id: each is recovered by firing it again (the same
        ``run_id``), which starts the shards whose invocation was lost."""
        stuck = self._runs.stuck_in_planning(self._job_type, datetime.now(UTC))
        if stuck:
            logger.warning(
                "runs stuck planning",
                extra={"job_type": self._job_type, "count": len(stuck), "runs": stuck[:50]},
            )
        return len(stuck)


def _nothing_planned(job_type: str, *counts: int) -> list[str]:
    """What a run says when it met no client at all (planned, waiting, invalid or not due)."""
    return [] if any(counts) else [f"no enabled clients configured for {job_type}"]


def run_as_of(header: RunHeader) -> datetime:
    """The time a run's queries are relative to: its fire's, or when it was asked for."""
    return header.scheduled_for or header.created_at


def run_replay(header: RunHeader) -> Replay | None:
    """What a backfill run's items carry (its window and generation); None for a live run."""
    return header.backfill.replay(header.run_id) if header.backfill is not None else None


def _first_cursor(header: RunHeader, client: ClientConfig) -> str | None:
    """Change feeds resume where the last live run stopped; a backfill pages its window from
    the start, on a cursor of its own."""
    return None if header.backfill is not None else client.cursor


def _ready_rows(ready: list[ClientConfig]) -> list[ClientRun]:
    return [ClientRun(client_id=c.client_id, group_id=c.group_id, pages_open=1) for c in ready]


def _waiting_rows(waiting: list[tuple[ClientConfig, str]]) -> list[ClientRun]:
    return [
        ClientRun(
            client_id=c.client_id,
            group_id=c.group_id,
            status=ClientStatus.WAITING,
            next_retry_at=retry_at,
            last_error="circuit open",
        )
        for c, retry_at in waiting
    ]
