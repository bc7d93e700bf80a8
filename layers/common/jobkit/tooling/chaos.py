"""Fault injection for the chaos test, on the local stack only.

Two faults the external system cannot inject: SQS delivering a work message twice (each
message sent is sent again with ``duplicate_rate``), and the processor dying after a record's
transition is written but before it is acknowledged (``crash_after_commit_rate``). Rates live
in the Control table (item ``chaos``) so a test turns them on and off without a redeploy; the
functions read it only when the stack enables chaos (``CHAOS_ENABLED``, true only locally).
"""

import random
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

CHAOS_KEY = {"id": "chaos"}
_CACHE_SECONDS = 2.0


class ChaosConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    duplicate_rate: float = Field(0.0, ge=0, le=1)
    crash_after_commit_rate: float = Field(0.0, ge=0, le=1)


class InjectedCrash(Exception):  # noqa: N818 - named for what it stands for
    """The processor "dies" here: the item is retried as after a real crash."""


class Chaos:
    def __init__(self, table: Any | None) -> None:
        self._table = table  # None: chaos disabled, nothing is ever read
        self._config = ChaosConfig()
        self._read_at = 0.0

    def config(self) -> ChaosConfig:
        if self._table is None:
            return self._config
        if time.monotonic() - self._read_at > _CACHE_SECONDS:
            item = self._table.get_item(Key=CHAOS_KEY).get("Item") or {}
            self._config = ChaosConfig.model_validate(
                {k: float(v) for k, v in item.items() if k != "id"}
            )
            self._read_at = time.monotonic()
        return self._config

    def duplicate(self) -> bool:
        rate = self.config().duplicate_rate
        return rate > 0 and random.random() < rate  # noqa: S311

    def crash_after_commit(self, what: str) -> None:
        rate = self.config().crash_after_commit_rate
        if rate > 0 and random.random() < rate:  # noqa: S311
            raise InjectedCrash(f"injected crash after committing {what}")


NO_CHAOS = Chaos(None)
