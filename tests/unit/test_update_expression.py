"""One UpdateExpression builder for every store: what DynamoDB does with what it builds."""

from typing import Any

import pytest

from jobkit.adapters.update_expression import UpdateExpression


def test_sets_counters_removals_and_first_values_in_one_write(aws: Any) -> None:
    # Given a config row with a streak, a cursor and a setting
    table = aws.tables["ConfigTable"]
    key = {"job_type": "sync-contacts", "client_id": "acme"}
    table.put_item(Item={**key, "cursor": "c1", "failure_streak": 2, "page_size": 50})
    # When one update sets, counts, removes and sets only-if-absent
    update = (
        UpdateExpression()
        .set("page_size", 100)
        .add("failure_streak", 1)
        .add("healthy_runs", 1)
        .remove("cursor")
        .set("group_id", "north", if_absent=True)
    )
    table.update_item(Key=key, **update.arguments())
    table.update_item(
        Key=key, **UpdateExpression().set("group_id", "south", if_absent=True).arguments()
    )
    # Then each clause did its part, and a value given once is not overwritten after
    item = table.get_item(Key=key)["Item"]
    assert (item["page_size"], item["failure_streak"], item["healthy_runs"]) == (100, 3, 1)
    assert "cursor" not in item and item["group_id"] == "north"


def test_an_update_without_a_clause_is_refused_before_it_is_sent() -> None:
    with pytest.raises(ValueError, match="at least one clause"):
        UpdateExpression().arguments()
    # A removal alone has no values: DynamoDB refuses an empty ExpressionAttributeValues
    assert "ExpressionAttributeValues" not in UpdateExpression().remove("cursor").arguments()
