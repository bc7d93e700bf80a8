"""Rollout by config: a pilot client is promoted only after two healthy runs in a row."""

import pytest

from jobkit.domain.errors import ConfigNotFoundError, PromotionRefusedError
from tests.unit.pipeline import Pipeline

JOB = "sync-completed-records"


def _clean_run(pipeline: Pipeline) -> None:
    pipeline.plan(trigger="cli")
    pipeline.drain()


def test_a_pilot_is_promoted_after_two_healthy_runs_in_a_row(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=3, pilot=True)
    with pytest.raises(PromotionRefusedError, match="has 0 healthy run\\(s\\) in a row; .* 2"):
        pipeline.configs.promote(JOB, "acme")

    _clean_run(pipeline)
    with pytest.raises(PromotionRefusedError, match="has 1 healthy run"):
        pipeline.configs.promote(JOB, "acme")

    pipeline.failing_run()  # a failed run starts the count again
    assert pipeline.configs.get(JOB, "acme").healthy_runs == 0
    _clean_run(pipeline)
    _clean_run(pipeline)

    promoted = pipeline.configs.promote(JOB, "acme")
    assert (promoted.pilot, promoted.healthy_runs) == (False, 2)
    assert pipeline.configs.get(JOB, "acme").pilot is False
    with pytest.raises(PromotionRefusedError, match="is not a pilot"):
        pipeline.configs.promote(JOB, "acme")


def test_force_promotes_without_the_healthy_runs(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=1, pilot=True)
    assert pipeline.configs.promote(JOB, "acme", force=True).pilot is False


def test_a_run_failing_while_promoting_stops_the_promotion(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.seed("acme", count=1, pilot=True)
    _clean_run(pipeline)
    _clean_run(pipeline)
    read_before_the_failure = pipeline.configs.get(JOB, "acme")
    pipeline.configs.record_result(JOB, "acme", failed=True)
    monkeypatch.setattr(pipeline.configs, "get", lambda *_: read_before_the_failure)

    with pytest.raises(PromotionRefusedError, match="changed while being promoted"):
        pipeline.configs.promote(JOB, "acme")
    assert pipeline.aws.tables["ConfigTable"].get_item(Key={"job_type": JOB, "client_id": "acme"})[
        "Item"
    ]["pilot"]


def test_promoting_an_unknown_client_names_it(pipeline: Pipeline) -> None:
    with pytest.raises(ConfigNotFoundError, match="'ghost'"):
        pipeline.configs.promote(JOB, "ghost")
