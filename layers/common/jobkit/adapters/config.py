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
# Written by the platform as runs go; kept when a client's configuration is replaced.
STATE_FIELDS = frozenset({"cursor", "failure_streak", "healthy_runs"})
# Of those, what only a run writes (``record_result``), never ``put``: a clean run removes the
# streak, so keeping it with if_not_exists would write back, from a stale read, one that ended.
RUN_WRITTEN_FIELDS = frozenset({"failure_streak"})
# The seed's rollout rule: a pilot client is watched for two full cycles before it is expanded.
PILOT_HEALTHY_RUNS = 2


# A client's settings, as the Config table and the API's client body both constrain them.
Route = Annotated[str, Field(pattern=r"^/[A-Za-z0-9_\-/]*$", max_length=128)]
Script = Annotated[str, Field(min_length=1, max_length=64)]
Days = Annotated[int, Field(ge=1, le=366)]
Year = Annotated[int, Field(ge=2000, le=2100)]
FrequencyMinutes = Annotated[int, Field(ge=1, le=10080)]
PageSize = Annotated[int, Field(ge=1, le=500)]


class ClientSettings(BaseModel):
    """What an operator sets of a client: the Config table's row, and the API's client body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group_id: Identifier
    route: Route = "/v1"
    script: Script = "GET_COMPLETED"
    days: Days = 7
    year: Year | None = None
    frequency_minutes: FrequencyMinutes = 30
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
        index: as many rows as there are failing clients.

        While DynamoDB is still building the index (the first deploy that adds it, on a
        table that has rows), it refuses reads of it: the streaks are then read from the
        table itself, every row of the job type read and only the failing ones returned."""
        values: dict[str, Any] = {":job": job_type, ":zero": 0}
        query: dict[str, Any] = {
            "IndexName": STREAK_INDEX,
            "KeyConditionExpression": "job_type = :job AND failure_streak > :zero",
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
            fallback["ExpressionAttributeValues"][":zero"] = 0
            pages = self._pages(
                self._table.query, FilterExpression="failure_streak > :zero", **fallback
            )
            first = next(pages)
        for page in itertools.chain([first], pages):
            for item in page.get("Items", []):
                yield str(item["client_id"]), int(item["failure_streak"])

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
            if field in KEY_FIELDS or field in RUN_WRITTEN_FIELDS:
                continue
            if field in STATE_FIELDS:
                if field in item:
                    update.set(field, item[field], if_absent=True)
            elif field in item:
                update.set(field, item[field])
            else:
                update.remove(field)  # unset now: gone from the row too
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

    def record_result(self, job_type: str, client_id: str, failed: bool) -> int | None:
        """Extend or reset the client's consecutive-failure streak (and, the other way round,
        its run of healthy runs); None if it has no row."""
        if failed:
            update = "ADD failure_streak :one SET healthy_runs = :zero"
            values = {":one": 1, ":zero": 0}
        else:
            # Removed, not zeroed: the row leaves the streak index (STREAK_INDEX).
            update, values = "REMOVE failure_streak ADD healthy_runs :one", {":one": 1}
        try:
            response = self._table.update_item(
                Key={"job_type": job_type, "client_id": client_id},
                UpdateExpression=update,
                ConditionExpression="attribute_exists(client_id)",
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",  # UPDATED_NEW would not tell a removed streak
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
        with refused_as(lambda: not_configured(job_type, client_id)):
            self._table.update_item(
                Key={"job_type": job_type, "client_id": client_id},
                UpdateExpression="SET enabled = :enabled, updated_at = :now",
                ConditionExpression="attribute_exists(client_id)",
                ExpressionAttributeValues={
                    ":enabled": enabled,
                    ":now": datetime.now(UTC).isoformat(),
                },
            )


def not_configured(job_type: str, client_id: str) -> ConfigNotFoundError:
    return ConfigNotFoundError(f"no configuration for client {client_id!r} of {job_type!r}")
