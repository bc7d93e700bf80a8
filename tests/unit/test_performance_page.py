"""docs/performance.md is generated from bench/results.json and cannot drift from it."""

import copy

from bench.performance_page import GOAL_LABELS, PAGE, RENDERED_KEYS, load, render
from bench.run import GOALS


def test_the_committed_page_is_what_the_committed_results_render() -> None:
    assert PAGE.read_text() == render(load()), (
        "docs/performance.md is out of date: run `python -m bench.performance_page`"
    )


def test_a_changed_figure_shows_in_the_page() -> None:
    results = load()
    changed = copy.deepcopy(results)
    changed["sqs_requests_per_item"] = 0.987
    changed["scale"]["1000"]["latency_ms_p95"] = 12345
    page = render(changed)
    assert "| SQS requests per record | <= 0.25 | 0.987 | no | `make bench` |" in page
    assert "12,345" in page
    assert page != render(results)


def test_a_missed_goal_reads_as_missed() -> None:
    results = load()
    results["throughput_ratio"] = 0.2
    assert "| >= 0.6 | 0.2 | no | `make bench` |" in render(results)


def test_every_figure_of_the_results_and_every_goal_has_its_place() -> None:
    assert set(load()) <= RENDERED_KEYS, "a new figure in bench/results.json: render it"
    assert set(GOALS) <= set(GOAL_LABELS), "a new goal in bench/run.py: name it"
