"""Seed data for the local stack: clients on both sides, platform records, and a clean slate."""

import secrets
from typing import Any

import httpx

from jobkit.adapters.config import ClientConfig
from jobkit.adapters.config_store import ConfigStore
from jobkit.adapters.credentials import ExternalCredential, secret_name
from jobkit.adapters.records import STATE, record_pk
from jobkit_cli.stack import Stack

TABLE_OUTPUTS = (
    "ConfigTableName",
    "RunsTableName",
    "RecordsTableName",
    "IdempotencyTableName",
    "ControlTableName",
)
QUEUE_OUTPUTS = (
    "WorkQueueUrl",
    "BackfillQueueUrl",
    "WorkDLQUrl",
    "ScheduleDLQUrl",
    "DomainEventsDLQUrl",
)


def external_admin(stack: Stack) -> httpx.Client:
    if not stack.external_url:
        raise SystemExit("jobkit: the fake external system only exists on the local stack")
    return httpx.Client(base_url=stack.external_url, timeout=10.0)


def record_ids(client_id: str, count: int) -> list[str]:
    """The ids the fake external system gives a client's records."""
    return [f"{client_id}-r{n:05d}" for n in range(1, count + 1)]


def seed_client(
    stack: Stack,
    *,
    job_type: str,
    client_id: str,
    group_id: str,
    records: int,
    poison: list[str] | None = None,
    pending_items: int = 2,
    completed_days_ago: float = 0,
    **config: Any,
) -> ClientConfig:
    """One client: its records in the external system and on the platform, and its config row;
    with ``credentials=True``, a bearer token the external system requires, kept in Secrets
    Manager where the platform reads it. The records completed in the second before seeding,
    one a second, or ``completed_days_ago`` earlier."""
    seed: dict[str, Any] = {
        "client_id": client_id,
        "group_id": group_id,
        "records": records,
        "poison": poison or [],
        "pending_items_per_record": pending_items,
        "completed_days_ago": completed_days_ago,
    }
    if config.get("credentials"):
        seed["credential"] = store_credential(stack, client_id)
    with external_admin(stack) as admin:
        admin.post("/_admin/clients", json=seed).raise_for_status()
    write_platform_records(stack, client_id, record_ids(client_id, records), pending_items)
    client = ClientConfig(job_type=job_type, client_id=client_id, group_id=group_id, **config)
    ConfigStore(stack.table("ConfigTableName")).put(client)
    return client


def write_platform_records(
    stack: Stack,
    client_id: str,
    ids: list[str],
    pending_items: int = 2,
    status: str = "IN_PROGRESS",
) -> None:
    """The platform's side of these records: in ``status``, with their pending items (named
    as the fake external system names them)."""
    with stack.table("RecordsTableName").batch_writer() as batch:
        for record_id in ids:
            batch.put_item(
                Item={
                    "pk": record_pk(client_id, record_id),
                    "sk": STATE,
                    "client_id": client_id,
                    "record_id": record_id,
                    "status": status,
                    "version": 0,
                    "pending_items": [f"{record_id}-p{k}" for k in range(1, pending_items + 1)],
                }
            )


def store_credential(stack: Stack, client_id: str) -> str:
    """A new token for the client, stored as its secret (created or replaced); returns it."""
    token = secrets.token_urlsafe(32)
    name = secret_name(stack.outputs["CredentialsSecretPrefix"], client_id)
    value = ExternalCredential(client_id=client_id, token=token).model_dump_json()
    client = stack.client("secretsmanager")
    try:
        client.create_secret(Name=name, SecretString=value)
    except client.exceptions.ResourceExistsException:
        client.put_secret_value(SecretId=name, SecretString=value)
    return token


def reset_data(stack: Stack) -> None:
    """Empty every table and queue of the stack and the external system (local stack only)."""
    if not stack.is_local:
        raise SystemExit("jobkit: refusing to wipe data on a stack that is not local")
    for output in TABLE_OUTPUTS:
        _empty_table(stack.table(output))
    sqs = stack.client("sqs")
    for output in QUEUE_OUTPUTS:
        sqs.purge_queue(QueueUrl=stack.outputs[output])
    with external_admin(stack) as admin:
        admin.post("/_admin/reset").raise_for_status()


def _empty_table(table: Any) -> None:
    keys = [key["AttributeName"] for key in table.key_schema]
    kwargs: dict[str, Any] = {
        "ProjectionExpression": ", ".join(f"#k{i}" for i in range(len(keys))),
        "ExpressionAttributeNames": {f"#k{i}": k for i, k in enumerate(keys)},
    }
    with table.batch_writer() as batch:
        while True:
            page = table.scan(**kwargs)
            for item in page.get("Items", []):
                batch.delete_item(Key={k: item[k] for k in keys})
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
