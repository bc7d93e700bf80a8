"""Backfills: re-running clients over a window of time, exactly once.

A backfill run's items carry a ``Replay``: the window its pages ask for, and the generation of
its work. Its lane is the backfill queue, whose event source has a concurrency cap of its own,
so a replay never holds back the scheduled runs.

Two modes:
- ``missing``: the records' work keeps its usual key (job, client, record, version), so a
  version already processed is found in its idempotency record and not processed again;
- ``all``: every record is processed again as a new *generation* (the backfill run's id is
  part of its work's key, and of its transition's), so the job's rules decide anew; a
  transition they refuse is a skip. The same request (same request id) is the same run, so
  it makes no second generation.
"""

import hashlib
import uuid
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class ReplayMode(StrEnum):
    MISSING = "missing"
    ALL = "all"


class TimeWindow(BaseModel):
    """Records completed from ``start`` (inclusive) to ``end`` (exclusive)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: AwareDatetime
    end: AwareDatetime


class Replay(BaseModel):
    """What a backfill run's page, record and retry carry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: TimeWindow
    # Mode ``all``: the backfill run's id, in every work key of the run; None in mode
    # ``missing``, whose work keys are the live runs' own.
    generation: str | None = Field(None, min_length=1, max_length=128)


class BackfillSpec(BaseModel):
    """A backfill as its run header keeps it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: TimeWindow
    mode: ReplayMode = ReplayMode.MISSING
    request_id: str | None = None

    def replay(self, run_id: str) -> Replay:
        return Replay(
            window=self.window, generation=run_id if self.mode is ReplayMode.ALL else None
        )


def window_error(start: datetime, end: datetime, now: datetime) -> tuple[str, str] | None:
    """The field to name and why, when a backfill window cannot be replayed: it must be
    non-empty and in the past (records not yet completed are the live runs')."""
    if start >= end:
        return "to", "must be after from"
    if end > now:
        return "to", "is in the future: a backfill replays the past"
    return None


def generation_suffix(replay: "Replay | None") -> str:
    """What a generation adds to a work key or a transition's revision ("" in mode
    ``missing``, and on live runs)."""
    if replay is None or replay.generation is None:
        return ""
    return f"#g:{replay.generation}"


def backfill_run_id(job_type: str, request_id: str | None, now: datetime) -> str:
    """A backfill's run: the same for the same request id (a request sent again is the same
    backfill, and in mode ``all`` the same generation); else unique, sorted by time."""
    if request_id is not None:
        digest = hashlib.sha256(f"{job_type}\x1f{request_id}".encode()).hexdigest()[:20]
        return f"{job_type}.backfill.{digest}"
    return f"{job_type}.backfill.{now.astimezone(UTC):%Y%m%dT%H%M%SZ}.{uuid.uuid4().hex[:8]}"
