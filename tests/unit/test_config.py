"""Client configuration: validated rows, precise reasons for bad ones."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from jobkit.adapters.config import ClientConfig, InvalidClientConfig, parse_config_item
from jobkit.adapters.config_store import ConfigStore
from jobkit.domain.errors import ConfigNotFoundError

VALID = {"job_type": "sync-completed-records", "client_id": "acme", "group_id": "north"}


def test_minimal_row_gets_the_documented_defaults() -> None:
    config = parse_config_item(VALID)
    assert isinstance(config, ClientConfig)
    assert (config.route, config.page_size, config.enabled, config.pilot) == (
        "/v1",
        50,
        True,
        False,
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"days": "often"}, "days"),
        ({"page_size": 0}, "page_size"),
        ({"client_id": "has space"}, "client_id"),
        ({"route": "no-leading-slash"}, "route"),
        ({"year": 1999}, "year"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_invalid_row_is_reported_with_field_and_reason(change: dict[str, Any], field: str) -> None:
    parsed = parse_config_item({**VALID, **change})
    assert isinstance(parsed, InvalidClientConfig)
    assert parsed.reason.startswith(f"{field}: ")


def test_row_missing_its_group_is_invalid_not_a_crash() -> None:
    parsed = parse_config_item({"job_type": "sync-completed-records", "client_id": "acme"})
    assert isinstance(parsed, InvalidClientConfig)
    assert parsed.reason == "group_id: Field required"


FIELDS = ["job_type", "client_id", "group_id", "days", "enabled", "page_size", "settings", "route"]
values = (
    st.none()
    | st.integers()
    | st.text(max_size=12)
    | st.booleans()
    | st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=2)
)
any_fields = st.dictionaries(st.sampled_from(FIELDS), values)
# Rows a client could really have: the valid ones, so both answers are exercised
well_formed = st.fixed_dictionaries(
    {
        "job_type": st.just(VALID["job_type"]),
        "client_id": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,20}", fullmatch=True),
        "group_id": st.sampled_from(["north", "south"]),
    },
    optional={
        "days": st.integers(min_value=1, max_value=366),
        "enabled": st.booleans(),
        "page_size": st.integers(min_value=1, max_value=500),
        "route": st.sampled_from(["/v1", "/v2/records"]),
        "settings": st.dictionaries(
            st.text(max_size=5), st.integers() | st.text(max_size=5) | st.booleans(), max_size=3
        ),
    },
)


@given(any_fields | well_formed)
def test_any_row_parses_to_a_config_that_round_trips_or_a_reason_naming_its_field(
    row: dict[str, Any],
) -> None:
    parsed = parse_config_item(row)
    if isinstance(parsed, ClientConfig):
        assert (parsed.job_type, parsed.client_id, parsed.group_id) == (
            row["job_type"],
            row["client_id"],
            row["group_id"],
        )
        # What the store writes reads back as the same configuration
        assert parse_config_item(parsed.to_item()) == parsed
    else:
        assert isinstance(parsed, InvalidClientConfig)
        assert parsed.client_id == str(row.get("client_id", "?"))
        # "<field>: <reason>", the field one of the row's or one a row must have
        field, reason = parsed.reason.split(": ", 1)
        assert reason
        assert field.split(".", 1)[0] in {*row, "job_type", "client_id", "group_id"}


def test_store_round_trips_settings_and_state(aws: Any) -> None:
    store = ConfigStore(aws.tables["ConfigTable"])
    store.put(
        ClientConfig(**VALID, settings={"ratio": 0.5, "mode": "fast", "n": 3}, cursor="acme-r00010")
    )
    loaded = store.get("sync-completed-records", "acme")
    assert loaded.settings == {"ratio": 0.5, "mode": "fast", "n": 3}
    assert loaded.cursor == "acme-r00010"


def test_settings_at_dynamodbs_number_limits_are_stored_and_beyond_them_refused(aws: Any) -> None:
    # Given settings at the edges of what a DynamoDB number holds
    store = ConfigStore(aws.tables["ConfigTable"])
    edges = {"huge": 9.9e37, "digits": 2**53 - 1, "tiny": 1e-170, "half": 0.5}
    # When the client is stored and read back
    store.put(ClientConfig(**VALID, settings=edges))
    # Then their values are kept, and one too small for DynamoDB is stored as 0
    loaded = store.get("sync-completed-records", "acme").settings
    assert loaded == {"huge": 9.9e37, "digits": 2**53 - 1, "tiny": 0, "half": 0.5}
    # And numbers DynamoDB cannot hold are refused, naming the setting
    for too_big in (-3.3e62, 10**200, 1e38):
        with pytest.raises(ValidationError, match="settings.x"):
            ClientConfig(**VALID, settings={"x": too_big})


def test_enabling_an_unknown_client_says_so(aws: Any) -> None:
    store = ConfigStore(aws.tables["ConfigTable"])
    with pytest.raises(ConfigNotFoundError, match="no configuration for client 'ghost'"):
        store.set_enabled("sync-completed-records", "ghost", True)


def test_replacing_a_configuration_keeps_the_platforms_state(aws: Any) -> None:
    store = ConfigStore(aws.tables["ConfigTable"])
    store.put(ClientConfig(**VALID, year=2025, settings={"mode": "fast"}))
    store.save_cursor("sync-completed-records", "acme", "acme-r00042")
    store.record_result("sync-completed-records", "acme", failed=True)
    store.record_result("sync-completed-records", "acme", failed=True)

    store.put(ClientConfig(**VALID, page_size=20, settings={"mode": "slow"}))

    loaded = store.get("sync-completed-records", "acme")
    assert (loaded.page_size, loaded.settings, loaded.year) == (20, {"mode": "slow"}, None)
    assert (loaded.cursor, loaded.failure_streak) == ("acme-r00042", 2)  # the sync resumes
    assert (
        "year"
        not in aws.tables["ConfigTable"].get_item(
            Key={"job_type": "sync-completed-records", "client_id": "acme"}
        )["Item"]
    )


def test_replacing_a_configuration_never_brings_back_an_ended_streak(aws: Any) -> None:
    store = ConfigStore(aws.tables["ConfigTable"])
    store.put(ClientConfig(**VALID))
    store.record_result("sync-completed-records", "acme", failed=True)
    store.record_result("sync-completed-records", "acme", failed=True)
    stale = store.get("sync-completed-records", "acme")  # read while it was failing
    store.record_result("sync-completed-records", "acme", failed=False)
    # An edit made from that stale read must not write its streak back
    store.put(stale.model_copy(update={"page_size": 20}))
    loaded = store.get("sync-completed-records", "acme")
    assert (loaded.page_size, loaded.failure_streak) == (20, 0)
    assert list(store.streaks("sync-completed-records")) == []


def test_streaks_are_read_from_the_table_while_the_index_is_being_built(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    table = aws.tables["ConfigTable"]
    store = ConfigStore(table)
    for client_id in ("acme", "globex", "initech"):
        store.put(ClientConfig(**{**VALID, "client_id": client_id}))
    store.record_result("sync-completed-records", "globex", failed=True)
    query = table.query

    def refuse_the_index(**kwargs: Any) -> Any:
        # What DynamoDB answers while a new index is backfilled on a table that has rows
        if "IndexName" in kwargs:
            raise ClientError(
                {
                    "Error": {
                        "Code": "ValidationException",
                        "Message": "Cannot read from backfilling global secondary index: by-streak",
                    }
                },
                "Query",
            )
        return query(**kwargs)

    monkeypatch.setattr(table, "query", refuse_the_index)
    assert list(store.streaks("sync-completed-records")) == [("globex", 1)]
    assert list(store.streaks("sync-completed-records", client_prefix="acme")) == []
