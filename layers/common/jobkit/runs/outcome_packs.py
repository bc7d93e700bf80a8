"""Outcome packs: a batch's item outcomes of one client of a run, as one row.

One row per (batch, client), ``ITEM#<client>#<pack>``, written with a plain PutItem: its
write units follow its size (about 70 bytes an outcome), so fifty outcomes cost about 4 units
where one conditional row each, in the counting transaction, cost 2 units apiece.

A pack may repeat an outcome another pack holds (a batch counted, then delivered again in
another shape): the run's outcomes are the packs' union by envelope, in which an outcome that
is not ``failed`` wins over ``failed`` (a redriven dead letter). Closing counts that union,
so totals are exact whatever was written twice. Each entry is one string, its fields joined
by ``\\x1f`` (a JSON list where a field holds that character); the item key keeps only its
revision when it is the usual ``<job>#<client>#<record>#<revision>``.
"""

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from jobkit.runs.models import ItemOutcome, ItemRow, Outcome, item_prefix

_SEP = "\x1f"
_FULL_KEY = "="  # the entry holds the whole item key
_CODES = {
    (Outcome.PROCESSED, False): "p",
    (Outcome.SKIPPED, False): "s",
    (Outcome.FAILED, False): "f",
    (Outcome.FAILED, True): "d",  # failed and dead-lettered
}
_DECODED = {code: key for key, code in _CODES.items()}
MAX_PACK = 200  # outcomes per row: 200 x ~70 bytes stays far inside DynamoDB's 400 KB


def pack_sk(client_id: str, envelope_ids: Iterable[str], prefix: str = "") -> str:
    """The same outcomes make the same row: a batch counted again overwrites its pack."""
    digest = hashlib.sha256(_SEP.join(sorted(envelope_ids)).encode()).hexdigest()[:32]
    return f"{item_prefix(client_id)}{prefix}{digest}"


def pack_row(
    run_id: str, client_id: str, job_type: str, outcomes: Sequence[ItemOutcome], at: str
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "sk": pack_sk(client_id, (o.envelope_id for o in outcomes)),
        "client_id": client_id,
        "job_type": job_type,
        "at": at,
        "outcomes": [_entry(client_id, job_type, o) for o in outcomes],
    }


def job_type_of(outcomes: Sequence[ItemOutcome]) -> str:
    """The job type the item keys name (every record key of a run starts with it)."""
    return outcomes[0].item_key.split("#", 1)[0] if outcomes else ""


def unpack(row: dict[str, Any]) -> list[ItemRow]:
    if "outcomes" not in row:
        # A row of the layout before packs (``ITEM#<client>#<envelope>``, one outcome), from
        # a run counted across a deploy: a pack of one.
        envelope_id = str(row["sk"]).rsplit("#", 1)[-1]
        return [ItemRow.model_validate({**row, "envelope_id": envelope_id})]
    client_id, job_type = str(row["client_id"]), str(row.get("job_type", ""))
    return [_item(client_id, job_type, str(row["at"]), entry) for entry in row["outcomes"]]


def settled(rows: Iterable[dict[str, Any]]) -> dict[str, ItemRow]:
    """The outcome of each envelope over these packs: not ``failed`` wins over ``failed``
    (and is dead-lettered if either was)."""
    outcomes: dict[str, ItemRow] = {}
    for row in rows:
        for item in unpack(row):
            known = outcomes.get(item.envelope_id)
            if known is None:
                outcomes[item.envelope_id] = item
            elif known.outcome is Outcome.FAILED and item.outcome is not Outcome.FAILED:
                # A redriven dead letter is still one that was dead-lettered.
                dead = known.dead_lettered or item.dead_lettered
                outcomes[item.envelope_id] = item.model_copy(update={"dead_lettered": dead})
            elif item.dead_lettered and not known.dead_lettered:
                known.dead_lettered = True
    return outcomes


def totals(outcomes: Iterable[ItemRow]) -> dict[str, int]:
    """The counters a set of settled outcomes gives a client's row."""
    counts = {Outcome.PROCESSED.value: 0, Outcome.SKIPPED.value: 0, Outcome.FAILED.value: 0}
    dead = 0
    for item in outcomes:
        counts[item.outcome.value] += 1
        dead += item.dead_lettered
    return {**counts, "dead_lettered": dead}


def _entry(client_id: str, job_type: str, outcome: ItemOutcome) -> str:
    usual = f"{job_type}#{client_id}#{outcome.record_id}#"
    key = outcome.item_key
    key = key.removeprefix(usual) if key.startswith(usual) else _FULL_KEY + key
    code = _CODES[(outcome.outcome, outcome.dead_lettered)]
    fields = (outcome.envelope_id, outcome.record_id, key, code, outcome.reason)
    if any(_SEP in field for field in fields):
        return json.dumps(fields)  # an id holding the separator; envelope ids are hex, not "["
    return _SEP.join(fields)


def _item(client_id: str, job_type: str, at: str, entry: str) -> ItemRow:
    fields = json.loads(entry) if entry.startswith("[") else entry.split(_SEP, 4)
    envelope_id, record_id, key, code, reason = fields
    if key.startswith(_FULL_KEY):
        item_key = key.removeprefix(_FULL_KEY)
    else:
        item_key = f"{job_type}#{client_id}#{record_id}#{key}"
    outcome, dead_lettered = _DECODED[code]
    return ItemRow(
        envelope_id=envelope_id,
        client_id=client_id,
        record_id=record_id,
        item_key=item_key,
        outcome=outcome,
        reason=reason,
        dead_lettered=dead_lettered,
        at=at,  # pydantic parses the ISO string
    )
