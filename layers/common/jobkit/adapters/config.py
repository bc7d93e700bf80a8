"""Per-client job configuration: one DynamoDB item per (job type, client), validated by pydantic.

Adding a client is adding one item. A malformed item is reported with its field and reason,
and the other clients of the run carry on.
"""

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from jobkit.adapters.aws import batch_get, condition_failed, refused_as
from jobkit.adapters.update_expression import UpdateExpression
from jobkit.domain.envelope import Identifier, JobType, describe_validation_error
from jobkit.domain.errors import ConfigNotFoundError, PromotionRefusedError

# Free settings are stored as DynamoDB numbers, which hold 38 digits: a float up to 9.9e37 reads
# back whole however the table writes it out (plain digits, not an exponent). Integers are
# JSON's safe ones, which every client's parser reads exactly.
SAFE_INTEGER = 2**53 - 1
SettingValue = (
    str
    | Annotated[int, Field(ge=-SAFE_INTEGER, le=SAFE_INTEGER)]
    | Annotated[float, Field(allow_inf_nan=False, ge=-9.9e37, le=9.9e37)]
    | bool
)
# Below this magnitude DynamoDB cannot hold a number (it underflows): such a float is 0.
_SMALLEST_NUMBER = 1e-128
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
# Worked out by ``put`` from the settings (and kept in step by runs): see ``Freshness``.
FRESHNESS_FIELDS = frozenset({"fresh_since", "stale_window", "stale_at"})
# The seed's query fields: a job declares which of them it uses (``Job.config_fields``), and a
# row that sets one its job does not use is refused. The others apply to every job.
QUERY_FIELDS = ("script", "days", "year")
# A client is stale when its last clean run is older than this many times its frequency.
STALE_AFTER_FREQUENCIES = 3
DEFAULT_FREQUENCY_MINUTES = 30
# The seed's rollout rule: a pilot client is watched for two full cycles before it is expanded.
PILOT_HEALTHY_RUNS = 2


# A client's settings, as the Config table and the API's client body both constrain them.
Route = Annotated[str, Field(pattern=r"^/[A-Za-z0-9_\-/]*$", max_length=128)]
Script = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
Days = Annotated[int, Field(ge=1, le=366)]
Year = Annotated[int, Field(ge=2000, le=2100)]
FrequencyMinutes = Annotated[int, Field(ge=1, le=10080)]
PageSize = Annotated[int, Field(ge=1, le=500)]
StaleAfterMinutes = Annotated[int, Field(ge=1, le=43200)]  # 30 days


def epoch_minute(when: datetime) -> int:
    """Whole minutes since the epoch: how the Config table keeps times it sums and sorts."""
    return int(when.timestamp() // 60)


class PlatformSettings(BaseModel):
    """What an operator sets of a client, whatever its job: the API's client body has these
    and the query fields its job uses (``jobkit.api.models.client_body``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group_id: Identifier
    route: Route = "/v1"
    frequency_minutes: FrequencyMinutes = Field(
        DEFAULT_FREQUENCY_MINUTES,
        description=(
            "Minutes between scheduled syncs: a scheduled fire plans the client only when"
            " this long has passed since the last scheduled fire that planned it."
        ),
    )
    stale_after_minutes: StaleAfterMinutes | None = Field(
        None,
        description=(
            "The client is stale when its last clean run started longer ago than this;"
            f" unset: {STALE_AFTER_FREQUENCIES} times its frequency."
        ),
    )
    page_size: PageSize = 50
    # Strict: a JSON 0 or "yes" is not a boolean, whatever pydantic's lax mode would make of it.
    enabled: StrictBool = True
    pilot: StrictBool = False
    settings: dict[str, SettingValue] = Field(default_factory=dict)
    # The client authenticates with a bearer token kept in Secrets Manager
    # (``<credential prefix>/<client_id>``), rotated by the platform.
    credentials: StrictBool = Field(
        False, description="Call with the bearer token stored for this client (Secrets Manager)."
    )

    @property
    def stale_after(self) -> int:
        """Minutes without a clean run after which the client is stale."""
        return self.stale_after_minutes or STALE_AFTER_FREQUENCIES * self.frequency_minutes


class ClientSettings(PlatformSettings):
    """What an operator sets of a client: the Config table's row, query fields included."""

    # Unset: the job's own default, for a job that uses the field (``QUERY_FIELDS``).
    script: Script | None = Field(None, description="The external system's query.")
    days: Days | None = Field(None, description="Look back this many days from the run's time.")
    year: Year | None = Field(None, description="Only what the external system dates that year.")

    def query_fields_set(self) -> list[str]:
        """The query fields this row sets (``QUERY_FIELDS``), for a job to accept or refuse."""
        return [name for name in QUERY_FIELDS if getattr(self, name) is not None]


class ClientConfig(ClientSettings):
    """One client of one job type: what to fetch, and the client's own sync state."""

    job_type: JobType
    client_id: Identifier
    created_by: str = Field("jobkit", max_length=128)
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # Per-client state, written by the platform.
    cursor: str | None = None
    failure_streak: int = Field(0, ge=0)
    healthy_runs: int = Field(0, ge=0)  # clean runs in a row, what promoting a pilot expects
    last_success_at: datetime | None = None  # when its last clean run started
    last_scheduled_at: datetime | None = None  # the scheduled time of the last fire that planned it
    # Freshness, in minutes since the epoch: when it was last known fresh (its last clean
    # run's start, else when it was configured or enabled), and when it goes stale from there.
    fresh_since: int | None = None
    stale_window: int | None = None
    stale_at: int | None = None

    def is_stale(self, now: datetime) -> bool:
        """A disabled client is expected not to sync: it is never stale."""
        return self.enabled and self.stale_at is not None and self.stale_at <= epoch_minute(now)

    def to_item(self) -> dict[str, Any]:
        item = self.model_dump(mode="json", exclude_none=True)
        # DynamoDB rejects Python floats: numbers in free settings travel as strings of JSON.
        item["settings"] = {key: _to_dynamo(value) for key, value in self.settings.items()}
        if not self.failure_streak:
            del item["failure_streak"]  # held only while a streak runs: see STREAK_INDEX
        return item


@dataclass(frozen=True)
class InvalidClientConfig:
    """A config item that failed validation, with the reason to report on the run."""

    job_type: str
    client_id: str
    reason: str


def _to_dynamo(value: SettingValue) -> Any:
    if not isinstance(value, float):
        return value
    return Decimal(str(value)) if abs(value) >= _SMALLEST_NUMBER else Decimal(0)


def _from_dynamo(value: Any) -> Any:
    # DynamoDB numbers come back as Decimal: a whole one of at most 38 digits is the int it was
    # written as (a float holds 17 digits only).
    if not isinstance(value, Decimal):
        return value
    exponent = value.as_tuple().exponent
    whole = isinstance(exponent, int) and exponent >= 0 and value.copy_abs() < 10**38
    return int(value) if whole else float(value)


def parse_config_item(item: dict[str, Any]) -> ClientConfig | InvalidClientConfig:
    """Validate one stored item; never raises for bad data."""
    settings = item.get("settings")
    if isinstance(settings, dict):
        item = {**item, "settings": {key: _from_dynamo(v) for key, v in settings.items()}}
    try:
        return ClientConfig.model_validate(item)
    except ValidationError as exc:
        return InvalidClientConfig(
            job_type=str(item.get("job_type", "?")),
            client_id=str(item.get("client_id", "?")),
            reason=describe_validation_error(exc),
        )


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
        pages = self._pages(self._table.query, Select="COUNT", **query)
        return sum(int(page.get("Count", 0)) for page in pages)

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
        pages = self._pages(self._table.query, **query)
        try:
            first = next(pages)
        except ClientError as exc:
            if "backfilling" not in str(exc).lower():
                raise
            fallback = self._client_range(job_type, client_prefix)
            fallback["ExpressionAttributeValues"][":bound"] = bound
            pages = self._pages(self._table.query, FilterExpression=condition, **fallback)
            first = next(pages)
        for page in itertools.chain([first], pages):
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
        for page in ConfigStore._pages(read, **kwargs):
            for item in page.get("Items", []):
                yield parse_config_item(item)

    @staticmethod
    def _pages(read: Callable[..., Any], **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every page a query or scan answers, as DynamoDB returns it."""
        while True:
            page = read(**kwargs)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

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
            # The window kept on the row by ``put``: no read of the row first.
            minute = epoch_minute(started)
            update.set("fresh_since", minute)
            update.set_sum("stale_at", "stale_window", _DEFAULT_STALE_WINDOW, minute)
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
            minute = epoch_minute(now)
            update.set("fresh_since", minute)
            update.set_sum("stale_at", "stale_window", _DEFAULT_STALE_WINDOW, minute)
        with refused_as(lambda: not_configured(job_type, client_id)):
            self._table.update_item(
                Key={"job_type": job_type, "client_id": client_id},
                ConditionExpression="attribute_exists(client_id)",
                **update.arguments(),
            )


# A row written before rows kept their window: the default settings' window.
_DEFAULT_STALE_WINDOW = STALE_AFTER_FREQUENCIES * DEFAULT_FREQUENCY_MINUTES


def _keep_fresh_from(update: UpdateExpression, window: int, since: int) -> None:
    """The row's freshness after its settings changed: fresh since its last clean run (or,
    for a new row, since ``since``), stale ``window`` minutes after that."""
    update.set("fresh_since", since, if_absent=True)
    update.set("stale_window", window)
    update.set_sum("stale_at", "fresh_since", since, window)


def not_configured(job_type: str, client_id: str) -> ConfigNotFoundError:
    return ConfigNotFoundError(f"no configuration for client {client_id!r} of {job_type!r}")
