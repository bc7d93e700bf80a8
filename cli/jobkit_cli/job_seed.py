"""`jobkit seed JOB CLIENT`: a client of any job type on the local stack, ready to run.

The fake external system gets the client, with records shaped as the job declares
(``Job.fake_records``). The platform gets the records the job's rules expect to find: the
seeded records are read back through the job's own fetch and handed to its rules, and each
one a transition would move gets its platform record, in the first status (by name) the
transition may come from; none where the rules create the record (``NEW``), skip it, or a
run would dead-letter it. Then the config row, and the faults asked for.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError

from external_system.models import FaultConfig
from jobkit.adapters.config import ClientConfig
from jobkit.adapters.config_store import ConfigStore
from jobkit.adapters.external import ExternalSystem
from jobkit.domain.envelope import describe_validation_error
from jobkit.domain.errors import PermanentError
from jobkit.domain.job import NEW, Job, PageRequest, Transition, raw_record_id
from jobkit.pipeline.apply import parse_external_record
from jobkit_cli.seed import external_admin, record_ids, write_platform_records
from jobkit_cli.stack import Stack

# --faults names, and what the fake external system's fault plan calls them.
FAULTS = {
    "5xx": "error_rate",
    "timeout": "timeout_rate",
    "429": "throttle_rate",
    "ack-5xx": "ack_error_rate",
    "latency-ms": "latency_ms",
}
_MAX_PAGES = 10_000


class SeedRefused(ValueError):
    """The seeding cannot be done as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Seeded:
    records: int
    poison: list[str]
    platform: dict[str, int] = field(default_factory=dict)  # status -> records written
    faults: dict[str, float] = field(default_factory=dict)  # by their --faults names


def parse_faults(text: str | None) -> dict[str, float]:
    """``5xx=0.05,latency-ms=200`` by name; SeedRefused naming a wrong one."""
    faults: dict[str, float] = {}
    for part in filter(None, (text or "").split(",")):
        name, _, value = part.strip().partition("=")
        if name not in FAULTS:
            raise SeedRefused(f"--faults: unknown fault {name!r} (faults: {', '.join(FAULTS)})")
        try:
            faults[name] = float(value)
        except ValueError as exc:
            raise SeedRefused(f"--faults: {name}={value!r} is not a number") from exc
    try:
        FaultConfig.model_validate(_fault_plan(faults, "check"))
    except ValidationError as exc:
        raise SeedRefused(f"--faults: {describe_validation_error(exc)}") from exc
    return faults


def _fault_plan(faults: dict[str, float], client_id: str) -> dict[str, Any]:
    plan: dict[str, Any] = {FAULTS[name]: value for name, value in faults.items()}
    return plan | {"seed": 7, "clients": [client_id]}


def poison_ids(ids: list[str], count: int) -> list[str]:
    """``count`` of the records, spread over them, to be served malformed."""
    if count > len(ids):
        raise SeedRefused(f"--poison {count}: more than the {len(ids)} records seeded")
    return [ids[(n * len(ids)) // count] for n in range(count)] if count else []


def seed_job_client(
    stack: Stack,
    job: Job[Any],
    client: ClientConfig,
    records: int,
    poison: int = 0,
    faults: dict[str, float] | None = None,
) -> Seeded:
    if not stack.is_local:
        raise SeedRefused(
            f"it writes fake records, so it runs on the local stack only (stack"
            f" {stack.name} is on AWS); add a real client with `jobkit clients add`"
        )
    # The fake external system has one fault plan. A seeding replaces it, for its client
    # alone: cleared first, so the records are read back unharmed, then what was asked for.
    _set_faults(stack, client.client_id, {})
    poisoned = _seed_external(stack, job, client, records, poison)
    platform = _write_expected_records(stack, job, client)
    ConfigStore(stack.table("ConfigTableName")).put(client)
    _set_faults(stack, client.client_id, faults or {})
    return Seeded(records, poisoned, platform, faults or {})


def _set_faults(stack: Stack, client_id: str, faults: dict[str, float]) -> None:
    with external_admin(stack) as admin:
        admin.put("/_admin/faults", json=_fault_plan(faults, client_id)).raise_for_status()


def _seed_external(
    stack: Stack, job: Job[Any], client: ClientConfig, records: int, poison: int
) -> list[str]:
    shape = job.fake_records
    with external_admin(stack) as admin:
        if shape.feed == "contacts":
            if poison:
                raise SeedRefused(f"--poison: {job.name}'s fake feed (contacts) has none")
            admin.post(
                f"/_admin/clients/{client.client_id}/contacts", json={"count": records}
            ).raise_for_status()
            return []
        poisoned = poison_ids(record_ids(client.client_id, records), poison)
        body: dict[str, Any] = {
            "client_id": client.client_id,
            "group_id": client.group_id,
            "records": records,
            "poison": poisoned,
        }
        if shape.fields is not None:
            body["fields"] = [dict(shape.fields(n)) for n in range(1, records + 1)]
        admin.post("/_admin/clients", json=body).raise_for_status()
        return poisoned


def _write_expected_records(stack: Stack, job: Job[Any], client: ClientConfig) -> dict[str, int]:
    """Each served record's platform record, where the rules' transition expects one."""
    expected: dict[str, list[str]] = {}
    assert stack.external_url is not None  # a local stack's
    with httpx.Client(base_url=stack.external_url, timeout=10.0) as http:
        external = ExternalSystem(http)
        cursor = client.cursor
        for _ in range(_MAX_PAGES):
            page = job.fetch_page(external, client, PageRequest(cursor, datetime.now(UTC)))
            for raw in page.records:
                status = expected_status(job, client, raw)
                if status is not None:
                    expected.setdefault(status, []).append(str(raw["id"]))
            if page.next_cursor is None or page.next_cursor == cursor:
                break
            cursor = page.next_cursor
    for status, ids in expected.items():
        write_platform_records(stack, client.client_id, ids, status=status)
    return {status: len(ids) for status, ids in expected.items()}


def expected_status(job: Job[Any], client: ClientConfig, raw: dict[str, Any]) -> str | None:
    record_id = raw_record_id(raw)
    if record_id is None:
        return None
    try:
        decision = job.process(parse_external_record(job, raw, client.client_id, record_id), client)
    except PermanentError:
        return None  # poison: a run dead-letters it, whatever the platform holds
    except Exception:  # noqa: BLE001 - rules that raise are `jobkit try`'s to show, not seed's
        return None
    if not isinstance(decision, Transition) or NEW in decision.allowed_from:
        return None
    return sorted(decision.allowed_from)[0]
