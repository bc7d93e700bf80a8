"""Envelope parsing and item_key stability, including malformed input."""

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobkit.domain.envelope import (
    PageItem,
    RecordItem,
    content_hash,
    new_page_item,
    new_record_item,
    parse_work_item,
    record_item_key,
)
from jobkit.domain.errors import InvalidEnvelopeError
from tests.support import load_event


def _body(event: str) -> str:
    return str(load_event(event)["Records"][0]["body"])


def test_sample_events_parse_into_their_item_kinds() -> None:
    assert isinstance(parse_work_item(_body("processor-page-item")), PageItem)
    assert isinstance(parse_work_item(_body("processor-record-item")), RecordItem)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda b: b.pop("run_id"), "run_id: Field required"),
        (lambda b: b.update(client_id="../other"), "client_id: String should match pattern"),
        (lambda b: b.update(kind="teleport"), "does not match any of the expected tags"),
        (lambda b: b.update(schema_version=2), "schema_version: Input should be 1"),
        (lambda b: b.update(surprise=1), "surprise: Extra inputs are not permitted"),
        (lambda b: b.update(record="not an object"), "record.record: Input should be an object"),
    ],
)
def test_malformed_envelope_names_the_field(mutate: Any, expected: str) -> None:
    body = json.loads(_body("processor-record-item"))
    mutate(body)
    with pytest.raises(InvalidEnvelopeError, match=expected.replace(".", r"\.")):
        parse_work_item(json.dumps(body))


def test_not_json_at_all_is_an_invalid_envelope() -> None:
    with pytest.raises(InvalidEnvelopeError, match="Invalid JSON"):
        parse_work_item("{not json")


def test_error_message_never_echoes_the_input_values() -> None:
    body = json.loads(_body("processor-record-item"))
    body["client_id"] = "secret-token-abc123!"
    with pytest.raises(InvalidEnvelopeError) as raised:
        parse_work_item(json.dumps(body))
    assert "secret-token-abc123" not in str(raised.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

# Bodies no producer sends: any text, any JSON, and objects of a known kind with made-up fields
garbage_bodies = (
    st.text(max_size=300)
    | json_values.map(json.dumps)
    | st.builds(
        lambda kind, fields: json.dumps({**fields, "kind": kind}),
        st.sampled_from(["page", "record"]),
        st.dictionaries(st.text(max_size=10), json_values, max_size=6),
    )
)


@given(garbage_bodies)
def test_any_garbage_body_is_refused_as_an_invalid_envelope_naming_where(body: str) -> None:
    with pytest.raises(InvalidEnvelopeError) as raised:
        parse_work_item(body)
    # "<where>: <reason>": the body as a whole, or a field of the kind it claims to be
    where, reason = str(raised.value).split(": ", 1)
    assert reason
    assert where == "(root)" or where.split(".", 1)[0] == json.loads(body)["kind"]


identifiers = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,20}", fullmatch=True)


@given(
    job_type=st.from_regex(r"[a-z][a-z0-9\-]{0,20}", fullmatch=True),
    run_id=identifiers,
    client_id=identifiers,
    group_id=identifiers,
    cursor=st.none() | st.text(max_size=20),
    page_number=st.integers(min_value=1, max_value=10**6),
    record_id=st.text(min_size=1, max_size=30),
    record=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
)
def test_an_envelope_a_producer_sends_parses_back_to_the_same_item(
    job_type: str,
    run_id: str,
    client_id: str,
    group_id: str,
    cursor: str | None,
    page_number: int,
    record_id: str,
    record: dict[str, Any],
) -> None:
    page = new_page_item(
        job_type=job_type,
        run_id=run_id,
        client_id=client_id,
        group_id=group_id,
        correlation_id="c",
        cursor=cursor,
        page_number=page_number,
    )
    item = new_record_item(page, record_id, record)
    assert parse_work_item(page.model_dump_json()) == page
    assert parse_work_item(item.model_dump_json()) == item


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_content_hash_ignores_key_order(payload: dict[str, Any]) -> None:
    reordered = dict(reversed(list(payload.items())))
    assert content_hash(payload) == content_hash(reordered)


@given(
    st.integers(min_value=0, max_value=10**9),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
def test_record_item_key_depends_on_version_not_on_other_fields(
    version: int, extra: dict[str, int]
) -> None:
    raw = {"id": "r1", "version": version}
    assert record_item_key("job", "acme", "r1", raw) == record_item_key(
        "job", "acme", "r1", {**extra, **raw}
    )
    assert record_item_key("job", "acme", "r1", raw).endswith(f"#v{version}")


def test_record_without_valid_version_is_keyed_by_its_content() -> None:
    a = record_item_key("job", "acme", "r1", {"id": "r1", "version": "x", "n": 1})
    b = record_item_key("job", "acme", "r1", {"id": "r1", "version": "x", "n": 2})
    assert a != b and "#h" in a


def test_same_page_yields_the_same_record_envelopes() -> None:
    page = new_page_item(
        job_type="job", run_id="run-1", client_id="acme", group_id="g", correlation_id="c"
    )
    again = new_page_item(
        job_type="job", run_id="run-1", client_id="acme", group_id="g", correlation_id="c"
    )
    raw = {"id": "r1", "version": 3}
    first, second = new_record_item(page, "r1", raw), new_record_item(again, "r1", raw)
    assert (first.envelope_id, first.item_key) == (second.envelope_id, second.item_key)


def test_another_run_gives_another_envelope_but_the_same_item_key() -> None:
    raw = {"id": "r1", "version": 3}
    one = new_record_item(
        new_page_item(
            job_type="job", run_id="run-1", client_id="acme", group_id="g", correlation_id="c"
        ),
        "r1",
        raw,
    )
    two = new_record_item(
        new_page_item(
            job_type="job", run_id="run-2", client_id="acme", group_id="g", correlation_id="c"
        ),
        "r1",
        raw,
    )
    assert one.envelope_id != two.envelope_id
    assert one.item_key == two.item_key
