"""Per-client job configuration: one DynamoDB item per (job type, client), validated by pydantic.

Adding a client is adding one item. A malformed item is reported with its field and reason,
and the other clients of the run carry on. The Config table itself is
``jobkit.adapters.config_store``.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from jobkit.domain.envelope import Identifier, JobType, describe_validation_error

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
# The seed's query fields: a job declares which of them it uses (``Job.config_fields``), and a
# row that sets one its job does not use is refused. The others apply to every job.
QUERY_FIELDS = ("script", "days", "year")
# A client is stale when its last clean run is older than this many times its frequency.
STALE_AFTER_FREQUENCIES = 3
DEFAULT_FREQUENCY_MINUTES = 30


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
