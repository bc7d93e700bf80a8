"""Which configuration rows a planning shard plans (``jobkit.runs.shards``): those of the
clients a run names, read by key; or the next range of the job's rows, its end fixed before
the next shard is started, so that a repeated attempt reads the same range."""

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from jobkit.adapters.config import ClientConfig, InvalidClientConfig
from jobkit.adapters.config_store import ConfigStore
from jobkit.observability import logger
from jobkit.runs.shards import RunShards, ShardRow

ConfigRows = list[ClientConfig | InvalidClientConfig]


class ShardRequest(BaseModel):
    """The planner's input for a run's next shard: sent by the planner to itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
    shard: int = Field(ge=1)


class ShardRanges:
    def __init__(
        self,
        job_type: str,
        configs: ConfigStore,
        shards: RunShards,
        launch_shard: Callable[[ShardRequest], None],
        shard_clients: int,
    ) -> None:
        self._job_type = job_type
        self._configs = configs
        self._shards = shards
        self._launch_shard = launch_shard
        self._shard_clients = shard_clients

    def named(self, wanted: set[str]) -> ConfigRows:
        """The rows of the clients a run names, read by key, in id order: as many rows as
        are named, however many the job has."""
        found = self._configs.get_many(self._job_type, sorted(wanted))
        return [found[client_id] for client_id in sorted(found)]

    def every(self) -> ConfigRows:
        """Every row of the job (a dry run: it enqueues nothing)."""
        return self._configs.client_range(self._job_type, None, None, None)[0]

    def read(self, run_id: str, row: ShardRow) -> ConfigRows:
        """The shard's range of rows; when more follow, its end fixed and the next shard
        started before the rows are returned."""
        end = row.end_after
        if end is None:
            configs, end = self._configs.client_range(
                self._job_type, row.start_after, None, self._shard_clients
            )
            if end is None:
                return configs  # the last shard
            fixed = self._shards.hand_off(run_id, row.index, end)
            if fixed != end:  # an attempt at the same time read more, or less
                end = fixed
                configs = self._range(row.start_after, end)
        else:  # an attempt before fixed it
            configs = self._range(row.start_after, end)
            self._shards.create_successor(run_id, row.index, end)
        if not self._shards.started(run_id, row.index + 1):
            self.start(run_id, row.index + 1)
        return configs

    def start_lost(self, rows: list[ShardRow], run_id: str) -> None:
        """Start every shard handed off and not started: its invocation may have been lost."""
        for row in rows:
            if row.started_at is None:
                self.start(run_id, row.index)

    def start(self, run_id: str, index: int) -> None:
        self._launch_shard(ShardRequest(run_id=run_id, shard=index))
        logger.info("shard started", extra={"run_id": run_id, "shard": index})

    def _range(self, after: str | None, through: str) -> ConfigRows:
        return self._configs.client_range(self._job_type, after, through, None)[0]
