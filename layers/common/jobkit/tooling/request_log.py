"""What each invocation asked of AWS, logged on the local stack (JOBKIT_LOG_REQUESTS=true).

`make bench` adds up the requests and DynamoDB capacity units per record, and the integration
tier checks the IAM permissions the requests needed against the deployed roles
(``jobkit.tooling.permissions``; MiniStack does not enforce IAM). On AWS the variable is
false: ``instrument`` hooks nothing and ``log_request_counts`` only calls the handler.

The one seam between the production path and this tooling: ``jobkit.adapters.aws`` passes
every client it makes through ``instrument``.
"""

import functools
import os
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

REQUESTS: Counter[str] = Counter()
# DynamoDB capacity units by table and operation ("<table>.<Operation>"), estimated from
# each request: what on-demand DynamoDB bills, where a request count alone under-prices
# transactions and large items. An item put is priced by its size (a write unit per KB
# started); an update or a read, as one item of at most 1 KB (ours are, but outcome packs,
# which are put).
CAPACITY_UNITS: defaultdict[str, float] = defaultdict(float)
# Entries of the requests that are billed per entry, not per request: EventBridge prices
# each event a PutEvents carries.
ENTRIES: Counter[str] = Counter()
# The IAM permissions requests needed ("<action> <kind> <resource>").
PERMISSIONS: Counter[str] = Counter()
# Requests may be made from several threads at once (``jobkit.adapters.aws.in_parallel``).
_COUNTING = threading.Lock()


def logging_requests() -> bool:
    return os.environ.get("JOBKIT_LOG_REQUESTS") == "true"


def dynamodb_units(operation: str, params: dict[str, Any]) -> float:
    """The capacity units (write units for a write, read units for a read) one DynamoDB
    request consumes: puts by their item's size, anything else as items of at most 1 KB."""
    return _UNITS.get(operation, _no_units)(params)


def _no_units(params: dict[str, Any]) -> float:
    return 0.0


def _put_units(params: dict[str, Any]) -> float:
    return float(_kilobytes(params.get("Item", {})))


def _one_unit(params: dict[str, Any]) -> float:
    return 1.0


def _transaction_units(params: dict[str, Any]) -> float:
    entries = params.get("TransactItems", [])
    return 2.0 * sum(_kilobytes(entry.get("Put", {}).get("Item", {})) for entry in entries)


def _batch_write_units(params: dict[str, Any]) -> float:
    requests = [r for v in params.get("RequestItems", {}).values() for r in v]
    return float(sum(_kilobytes(r.get("PutRequest", {}).get("Item", {})) for r in requests))


def _read_units(params: dict[str, Any]) -> float:
    return 1.0 if params.get("ConsistentRead") else 0.5


def _batch_get_units(params: dict[str, Any]) -> float:
    return 0.5 * sum(len(v.get("Keys", [])) for v in params.get("RequestItems", {}).values())


_UNITS = {
    "PutItem": _put_units,
    "UpdateItem": _one_unit,
    "DeleteItem": _one_unit,
    "TransactWriteItems": _transaction_units,
    "TransactGetItems": _transaction_units,
    "BatchWriteItem": _batch_write_units,
    "GetItem": _read_units,
    "Query": _read_units,
    "Scan": _read_units,
    "BatchGetItem": _batch_get_units,
}
_TYPES = frozenset({"S", "N", "B", "BOOL", "NULL", "L", "M", "SS", "NS", "BS"})


def _kilobytes(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item, in KB started (at least 1): names and values, as its
    developer guide counts them (numbers about a byte per two digits, lists and maps 3 bytes
    plus one per element). Typed (``{"S": …}``) or plain values alike."""
    size = sum(len(name.encode()) + _value_size(value) for name, value in item.items())
    return max(1, -(-size // 1024))


def _value_size(value: Any) -> int:
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _TYPES:
        kind, value = next(iter(value.items()))
        return _number_size(value) if kind == "N" else _plain_size(value)
    return _plain_size(value)


def _number_size(value: Any) -> int:
    return len(str(value)) // 2 + 2


def _plain_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int | float | Decimal):
        return _number_size(value)
    if isinstance(value, dict):
        return 3 + sum(len(str(k).encode()) + 1 + _value_size(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return 3 + sum(1 + _value_size(v) for v in value)
    return len(str(value).encode())


def _table_of(params: dict[str, Any]) -> str:
    if "TableName" in params:
        return str(params["TableName"])
    for entry in params.get("TransactItems", []):  # ours never span tables
        for action in entry.values():
            return str(action.get("TableName", "?"))
    return ",".join(sorted(params.get("RequestItems", {}))) or "?"


def instrument[ClientT](client: ClientT) -> ClientT:
    """Count the client's requests (and their units and permissions) while requests are
    logged; otherwise the client as it is."""
    if not logging_requests():
        return client
    meta: Any = getattr(client, "meta")  # noqa: B009 - typed stubs differ per service
    service = meta.service_model.service_name

    def count(model: Any, **_: Any) -> None:
        with _COUNTING:
            REQUESTS[f"{service}.{model.name}"] += 1

    def count_units(params: dict[str, Any], model: Any, **_: Any) -> None:
        units = dynamodb_units(model.name, params)
        with _COUNTING:
            CAPACITY_UNITS[f"{_table_of(params)}.{model.name}"] += units

    # Here, not at the top: only a client that logs its requests needs it.
    from jobkit.tooling.permissions import permissions_needed

    def note_permissions(params: dict[str, Any], model: Any, **_: Any) -> None:
        try:
            needed = [p.key() for p in permissions_needed(service, model.name, params)]
            with _COUNTING:
                PERMISSIONS.update(needed)
        except Exception:  # noqa: BLE001, S110 - a local aid: botocore judges the request
            pass

    def count_entries(params: dict[str, Any], model: Any, **_: Any) -> None:
        with _COUNTING:
            ENTRIES[f"{service}.{model.name}"] += len(params.get("Entries", []))

    meta.events.register("before-call", count)
    if service == "events":
        meta.events.register("before-parameter-build.events.PutEvents", count_entries)
    if service == "dynamodb":
        meta.events.register("before-parameter-build.dynamodb", count_units)
    meta.events.register("before-parameter-build", note_permissions)
    return client


def log_request_counts[**P, R](handler: Callable[P, R]) -> Callable[P, R]:
    """While requests are logged, one line per invocation: the AWS requests it made, by service
    and operation, their capacity units and the IAM permissions they needed."""

    @functools.wraps(handler)
    def counted(*args: P.args, **kwargs: P.kwargs) -> R:
        if not logging_requests():
            return handler(*args, **kwargs)
        # Here, not at the top: importing jobkit.observability builds Powertools' logger and
        # metrics, which read their POWERTOOLS_* variables then, and jobkit.adapters.aws
        # (which imports this module) is also used where those are not set yet (the CLI).
        from jobkit.observability import logger

        before, units_before = REQUESTS.copy(), dict(CAPACITY_UNITS)
        entries_before = ENTRIES.copy()
        permissions_before = PERMISSIONS.copy()
        try:
            return handler(*args, **kwargs)
        finally:
            logger.info(
                "aws requests",
                extra={
                    "requests": dict(REQUESTS - before),
                    "capacity_units": {
                        key: units - units_before.get(key, 0.0)
                        for key, units in CAPACITY_UNITS.items()
                        if units != units_before.get(key, 0.0)
                    },
                    "entries": dict(ENTRIES - entries_before),
                    "permissions": sorted(PERMISSIONS - permissions_before),
                },
            )

    return counted
