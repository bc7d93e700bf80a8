"""The IAM permissions an AWS request needs, read from the request itself.

MiniStack does not enforce IAM and AWS does: a request a function's role does not allow works
on the local stack and fails as AccessDenied once deployed. With request logging on (the
local stack), every function logs the permissions its requests needed, and the integration
tier asks IAM's policy simulator whether the deployed role grants each of them.

The action is IAM's name, which is not always the operation's: a transaction needs the action
of each item it writes (there is no ``TransactWriteItems`` action), and a batch of SQS
messages needs ``SendMessage``. Resources are named as the request names them (a table, a
queue URL, a secret id): only the checker knows the account, and so the ARNs.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

# Kinds of resource, each turned into an ARN by the checker.
TABLE, INDEX, QUEUE, BUS, SECRET, SCHEDULE, ROLE, FUNCTION, ANY = (
    "table",
    "index",
    "queue",
    "bus",
    "secret",
    "schedule",
    "role",
    "function",
    "any",
)

# Batch operations authorised by the action of their single-message form.
_SQS_ACTION = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
_TRANSACT_ACTION = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


class Permission(NamedTuple):
    action: str  # "dynamodb:PutItem"
    kind: str  # one of the kinds above
    name: str  # the resource as the request names it; "*" for ANY

    def key(self) -> str:
        """One line for a log; ``parse`` reads it back (names hold no spaces)."""
        return f"{self.action} {self.kind} {self.name}"

    @classmethod
    def parse(cls, key: str) -> "Permission":
        action, kind, name = key.split(" ", 2)
        return cls(action, kind, name)


def permissions_needed(service: str, operation: str, params: dict[str, Any]) -> list[Permission]:
    """What IAM must allow for this request (``service`` as botocore names it)."""
    needed = _BY_SERVICE[service](operation, params) if service in _BY_SERVICE else None
    # botocore names these services as IAM prefixes them (dynamodb, sqs, events, ...).
    return needed or [Permission(f"{service}:{operation}", ANY, "*")]


def _sqs(operation: str, params: dict[str, Any]) -> list[Permission] | None:
    if "QueueUrl" not in params:
        return None
    return [Permission(f"sqs:{_SQS_ACTION.get(operation, operation)}", QUEUE, params["QueueUrl"])]


def _events(operation: str, params: dict[str, Any]) -> list[Permission] | None:
    if operation != "PutEvents":
        return None
    buses = {entry.get("EventBusName", "default") for entry in params.get("Entries", [])}
    return [Permission("events:PutEvents", BUS, bus) for bus in sorted(buses)]


def _secrets(operation: str, params: dict[str, Any]) -> list[Permission] | None:
    secret = params.get("SecretId") or params.get("Name")
    return [Permission(f"secretsmanager:{operation}", SECRET, secret)] if secret else None


def _scheduler(operation: str, params: dict[str, Any]) -> list[Permission] | None:
    if "Name" not in params:
        return None
    schedule = f"{params.get('GroupName', 'default')}/{params['Name']}"
    needed = [Permission(f"scheduler:{operation}", SCHEDULE, schedule)]
    if role := params.get("Target", {}).get("RoleArn"):
        needed.append(Permission("iam:PassRole", ROLE, role))
    return needed


def _lambda(operation: str, params: dict[str, Any]) -> list[Permission] | None:
    if "FunctionName" not in params:
        return None
    action = "lambda:InvokeFunction" if operation == "Invoke" else f"lambda:{operation}"
    return [Permission(action, FUNCTION, params["FunctionName"])]


def _dynamodb(operation: str, params: dict[str, Any]) -> list[Permission]:
    if operation in ("TransactWriteItems", "TransactGetItems"):
        needed = set()
        for entry in params.get("TransactItems", []):
            for kind, item in entry.items():
                action = f"dynamodb:{_TRANSACT_ACTION.get(kind, kind)}"
                needed.add(Permission(action, TABLE, str(item.get("TableName", "*"))))
        return sorted(needed)
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [
            Permission(f"dynamodb:{operation}", TABLE, table)
            for table in sorted(params.get("RequestItems", {}))
        ]
    if index := params.get("IndexName"):
        table = params.get("TableName", "*")
        return [Permission(f"dynamodb:{operation}", INDEX, f"{table}/index/{index}")]
    if "TableName" in params:
        return [Permission(f"dynamodb:{operation}", TABLE, params["TableName"])]
    return [Permission(f"dynamodb:{operation}", ANY, "*")]


_BY_SERVICE: dict[str, Callable[[str, dict[str, Any]], list[Permission] | None]] = {
    "dynamodb": _dynamodb,
    "sqs": _sqs,
    "events": _events,
    "secretsmanager": _secrets,
    "scheduler": _scheduler,
    "lambda": _lambda,
}
