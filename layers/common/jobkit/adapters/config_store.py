"""The Config table: one row per (job type, client), read for planning and the health page,
written by operators (add, enable, promote) and by runs (cursor, streak, freshness).

The rows' model is ``jobkit.adapters.config``.
"""

import itertools
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from jobkit.adapters.aws import batch_get, condition_failed, pages, refused_as
from jobkit.adapters.config import (
    DEFAULT_FREQUENCY_MINUTES,
    STALE_AFTER_FREQUENCIES,
    ClientConfig,
    InvalidClientConfig,
    epoch_minute,
    parse_config_item,
)
from jobkit.adapters.update_expression import UpdateExpression
from jobkit.domain.errors import ConfigNotFoundError, PromotionRefusedError

KEY_FIELDS = ("job_type", "client_id")
# The Config table's index of clients with a failure streak (partition job_type, sort
# failure_streak): rows hold the attribute only while a streak runs.
STREAK_INDEX = "by-streak"
# The Config table's index of when clients go stale (partition job_type, sort stale_at, the
# minute since the epoch at which a client with no newer clean run is stale).
STALE_INDEX = "by-stale-at"
# Written by the platform as runs go; kept when a client's configuration is replaced.
STATE_FIELDS = frozenset(
    {"cursor", "failure_streak", "healthy_runs", "last_success_at", "last_scheduled_at"}
)
# Of those, what only a run writes (``record_result``), never ``put``: a clean run removes the
# streak, so keeping it with if_not_exists would write back, from a stale read, one that ended.
RUN_WRITTEN_FIELDS = frozenset({"failure_streak", "last_success_at", "last_scheduled_at"})
# Worked out by ``put`` from the settings (and kept in step by runs): see ``_keep_fresh_from``.
FRESHNESS_FIELDS = frozenset({"fresh_since", "stale_window", "stale_at"})
# The seed's rollout rule: a pilot client is watched for two full cycles before it is expanded.
PILOT_HEALTHY_RUNS = 2


def _id_range(job_type: str, after: str | None, through: str | None) -> dict[str, Any]:
    """A Query's key condition for the ids after ``after`` and up to ``through`` (either
    None: unbounded on that side). BETWEEN includes ``after``: the caller drops it."""
    condition, values = "job_type = :job", {":job": job_type}
    if after is not None and through is not None:
        condition += " AND client_id BETWEEN :after AND :through"
        values.update({":after": after, ":through": through})
    elif after is not None:
        condition += " AND client_id > :after"
        values[":after"] = after
    elif through is not None:
        condition += " AND client_id <= :through"
        values[":through"] = through
    return {"KeyConditionExpression": condition, "ExpressionAttributeValues": values}


class ConfigStore:
    """The Config table: partition key ``job_type``, sort key ``client_id``."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def clients(
        self, job_type: str, client_prefix: str = ""
    ) -> Iterator[ClientConfig | InvalidClientConfig]:
        """Every configured client of a job type (whose id starts with ``client_prefix``),
        page by page, valid or not."""
        yield from self._paged(self._table.query, **self._client_range(job_type, client_prefix))

    def client_range(
        self, job_type: str, after: str | None, through: str | None, limit: int | None
    ) -> tuple[list[ClientConfig | InvalidClientConfig], str | None]:
        """The clients whose ids come after ``after`` (None: from the first), up to and with
        ``through`` (None: to the last), at most ``limit`` of them (None: all). Returns them
        and, when more than ``limit`` were there, the last id returned (where the rest
        starts after)."""
        query = _id_range(job_type, after, through)
        # One row past the limit tells whether more follow: a range that ends exactly at the
        # limit is not followed by an empty one.
        wanted = None if limit is None else limit + 1
        clients: list[ClientConfig | InvalidClientConfig] = []
        while wanted is None or len(clients) < wanted:
            if wanted is not None:
                query["Limit"] = wanted - len(clients)
            page = self._table.query(**query)
            clients += [
                parse_config_item(item)
                for item in page.get("Items", [])
                if item["client_id"] != after  # BETWEEN includes its lower bound
            ]
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        if limit is None or len(clients) <= limit:
            return clients, None
        return clients[:limit], clients[limit - 1].client_id

    @staticmethod
    def _client_range(job_type: str, client_prefix: str) -> dict[str, Any]:
        condition, values = "job_type = :job", {":job": job_type}
        if client_prefix:
            condition += " AND begins_with(client_id, :prefix)"
            values[":prefix"] = client_prefix
        return {"KeyConditionExpression": condition, "ExpressionAttributeValues": values}

    def first_clients(
        self, job_type: str, client_prefix: str = "", page_size: int = 50
    ) -> Iterator[ClientConfig | InvalidClientConfig]:
        """The clients in id order, read ``page_size`` rows at a time: for callers that stop
        early, where ``clients`` would read up to a megabyte per page."""
        query = self._client_range(job_type, client_prefix)
        yield from self._paged(self._table.query, Limit=page_size, **query)

    def count(self, job_type: str, client_prefix: str = "") -> int:
        """How many clients are configured (DynamoDB counts; no row leaves the table)."""
        query = self._client_range(job_type, client_prefix)
        answered = pages(self._table.query, Select="COUNT", **query)
        return sum(int(page.get("Count", 0)) for page in answered)

    def streaks(self, job_type: str, client_prefix: str = "") -> Iterator[tuple[str, int]]:
        """(client id, failure streak) of every client whose streak runs, from the streak
        index: as many rows as there are failing clients."""
        items = self._indexed(STREAK_INDEX, ("failure_streak > :bound", 0), job_type, client_prefix)
        for item in items:
            yield str(item["client_id"]), int(item["failure_streak"])

    def stale(self, job_type: str, now: datetime, client_prefix: str = "") -> Iterator[str]:
        """The enabled clients that are stale at ``now``, from the stale index, longest stale
        first: as many rows as there are stale clients, not as there are clients."""
        items = self._indexed(
            STALE_INDEX, ("stale_at <= :bound", epoch_minute(now)), job_type, client_prefix
        )
        for item in items:
            if item.get("enabled", True):
                yield str(item["client_id"])

    def _indexed(
        self, index: str, sort_range: tuple[str, int], job_type: str, client_prefix: str
    ) -> Iterator[dict[str, Any]]:
        """The rows of a job type in a range of an index's sort key (a condition on it and
        its ``:bound``), in the index's order.

        While DynamoDB is still building the index (the first deploy that adds it, on a table
        that has rows), it refuses reads of it: the range is then read from the table itself,
        every row of the job type read and only those in range returned."""
        condition, bound = sort_range
        values: dict[str, Any] = {":job": job_type, ":bound": bound}
        query: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": f"job_type = :job AND {condition}",
            "ExpressionAttributeValues": values,
        }
        if client_prefix:
            query["FilterExpression"] = "begins_with(client_id, :prefix)"
            values[":prefix"] = client_prefix
        answered = pages(self._table.query, **query)
        try:
            first = next(answered)
        except ClientError as exc:
            if "backfilling" not in str(exc).lower():
                raise
            fallback = self._client_range(job_type, client_prefix)
            fallback["ExpressionAttributeValues"][":bound"] = bound
            answered = pages(self._table.query, FilterExpression=condition, **fallback)
            first = next(answered)
        for page in itertools.chain([first], answered):
            yield from page.get("Items", [])

    def get_many(
        self, job_type: str, client_ids: Sequence[str]
    ) -> dict[str, ClientConfig | InvalidClientConfig]:
        """These clients' configurations, by id (read by key; missing ones left out)."""
        keys = [{"job_type": job_type, "client_id": client_id} for client_id in client_ids]
        found = batch_get(self._table.meta.client, self._table.name, keys)
        return {str(item["client_id"]): parse_config_item(item) for item in found}

    def every_client(self) -> Iterator[ClientConfig | InvalidClientConfig]:
        """Every configured client of every job type (a scan: for the probe, not hot paths)."""
        yield from self._paged(self._table.scan)

    @staticmethod
    def _paged(
        read: Callable[..., Any], **kwargs: Any
    ) -> Iterator[ClientConfig | InvalidClientConfig]:
        """Every item a query or scan returns, page by page, parsed."""
        for page in pages(read, **kwargs):
            for item in page.get("Items", []):
                yield parse_config_item(item)

    def get(self, job_type: str, client_id: str) -> ClientConfig:
        item = self._table.get_item(Key={"job_type": job_type, "client_id": client_id}).get("Item")
        if item is None:
            raise not_configured(job_type, client_id)
        parsed = parse_config_item(item)
        if isinstance(parsed, InvalidClientConfig):
            raise ConfigNotFoundError(
                f"invalid configuration for client {client_id!r}: {parsed.reason}"
            )
        return parsed

    def put(self, config: ClientConfig) -> None:
        """Add a client, or replace its configuration. The platform's state on an existing
        row (sync cursor, failure streak, healthy runs) is kept: editing a client's page
        size must not restart its sync from the beginning, nor end its pilot's count."""
        item = config.to_item()
        update = UpdateExpression()
        for field in ClientConfig.model_fields:
            if field in KEY_FIELDS or field in RUN_WRITTEN_FIELDS or field in FRESHNESS_FIELDS:
                continue
            if field in STATE_FIELDS:
                if field in item:
                    update.set(field, item[field], if_absent=True)
            elif field in item:
                update.set(field, item[field])
            else:
                update.remove(field)  # unset now: gone from the row too
        _keep_fresh_from(update, config.stale_after, since=epoch_minute(datetime.now(UTC)))
        self._table.update_item(
            Key={field: item[field] for field in KEY_FIELDS}, **update.arguments()
        )

    def delete(self, job_type: str, client_id: str) -> None:
        with refused_as(lambda: not_configured(job_type, client_id)):
            self._table.delete_item(
                Key={"job_type": job_type, "client_id": client_id},
                ConditionExpression="attribute_exists(client_id)",
            )

    def save_cursor(self, job_type: str, client_id: str, cursor: str) -> None:
        """Where the client's next run resumes; only ever called once the items are enqueued."""
        self._table.update_item(
            Key={"job_type": job_type, "client_id": client_id},
            UpdateExpression="SET #cursor = :cursor",
            ConditionExpression="attribute_exists(client_id)",
            ExpressionAttributeNames={"#cursor": "cursor"},
            ExpressionAttributeValues={":cursor": cursor},
        )

    def record_result(
        self,
        job_type: str,
        client_id: str,
        failed: bool,
        *,
        started: datetime | None = None,
        scheduled_for: datetime | None = None,
    ) -> int | None:
        """A client's part of a run is over: extend or reset its consecutive-failure streak
        (and, the other way round, its run of healthy runs); a clean run that ``started`` then
        is its last success. ``scheduled_for``: the scheduled fire that planned it, which
        decides when it is next due. None if it has no row."""
        update = UpdateExpression()
        if failed:
            update.add("failure_streak", 1).set("healthy_runs", 0)
        else:
            # Removed, not zeroed: the row leaves the streak index (STREAK_INDEX).
            update.remove("failure_streak").add("healthy_runs", 1)
            started = started or datetime.now(UTC)
            update.set("last_success_at", started.isoformat())
            _fresh_at(update, epoch_minute(started))
        if scheduled_for is not None:
            update.set("last_scheduled_at", scheduled_for.isoformat())
        try:
            response = self._table.update_item(
                Key={"job_type": job_type, "client_id": client_id},
                ConditionExpression="attribute_exists(client_id)",
                ReturnValues="ALL_NEW",  # UPDATED_NEW would not tell a removed streak
                **update.arguments(),
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            return None
        return int(response["Attributes"].get("failure_streak", 0))

    def promote(self, job_type: str, client_id: str, force: bool = False) -> ClientConfig:
        """End a client's pilot. Expects PILOT_HEALTHY_RUNS clean runs in a row, and says how
        many it has when they are missing; ``force`` promotes without them."""
        config = self.get(job_type, client_id)
        if not config.pilot:
            raise PromotionRefusedError(
                f"client {client_id!r} of {job_type!r} is not a pilot: nothing to promote"
            )
        if not force and config.healthy_runs < PILOT_HEALTHY_RUNS:
            raise PromotionRefusedError(
                f"client {client_id!r} of {job_type!r} has {config.healthy_runs} healthy run(s)"
                f" in a row; promotion expects {PILOT_HEALTHY_RUNS} (--force to promote anyway)"
            )
        guard = "pilot = :true" + ("" if force else " AND healthy_runs >= :runs")
        with refused_as(
            lambda: PromotionRefusedError(
                f"client {client_id!r} of {job_type!r} changed while being promoted (a run"
                " closed, or it was edited): look at it again"
            )
        ):
            self._table.update_item(
                Key={"job_type": job_type, "client_id": client_id},
                UpdateExpression="SET pilot = :false, updated_at = :now",
                # What was read still holds: a run that failed meanwhile stops the promotion.
                ConditionExpression=guard,
                ExpressionAttributeValues={
                    ":true": True,
                    ":false": False,
                    ":now": datetime.now(UTC).isoformat(),
                    **({} if force else {":runs": PILOT_HEALTHY_RUNS}),
                },
            )
        return self.get(job_type, client_id)

    def set_enabled(self, job_type: str, client_id: str, enabled: bool) -> None:
        """Enable or disable a client. Enabling starts its freshness afresh: nothing was
        expected of it while it was disabled."""
        now = datetime.now(UTC)
        update = UpdateExpression().set("enabled", enabled).set("updated_at", now.isoformat())
        if enabled:
            _fresh_at(update, epoch_minute(now))
        with refused_as(lambda: not_configured(job_type, client_id)):
            self._table.update_item(
                Key={"job_type": job_type, "client_id": client_id},
                ConditionExpression="attribute_exists(client_id)",
                **update.arguments(),
            )


# A row written before rows kept their window: the default settings' window.
_DEFAULT_STALE_WINDOW = STALE_AFTER_FREQUENCIES * DEFAULT_FREQUENCY_MINUTES


def _fresh_at(update: UpdateExpression, minute: int) -> None:
    """Fresh as of ``minute`` (a clean run started, or the client was enabled): stale the
    row's own window later, summed by DynamoDB so the row is not read first."""
    update.set("fresh_since", minute)
    update.set_sum("stale_at", "stale_window", _DEFAULT_STALE_WINDOW, minute)


def _keep_fresh_from(update: UpdateExpression, window: int, since: int) -> None:
    """The row's freshness after its settings changed: fresh since its last clean run (or,
    for a new row, since ``since``), stale ``window`` minutes after that."""
    update.set("fresh_since", since, if_absent=True)
    update.set("stale_window", window)
    update.set_sum("stale_at", "fresh_since", since, window)


def not_configured(job_type: str, client_id: str) -> ConfigNotFoundError:
    return ConfigNotFoundError(f"no configuration for client {client_id!r} of {job_type!r}")
