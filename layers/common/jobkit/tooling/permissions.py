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
    if service == "dynamodb":
        return _dynamodb(operation, params)
    if service == "sqs" and "QueueUrl" in params:
        action = f"sqs:{_SQS_ACTION.get(operation, operation)}"
        return [Permission(action, QUEUE, params["QueueUrl"])]
    if service == "events" and operation == "PutEvents":
        buses = {entry.get("EventBusName", "default") for entry in params.get("Entries", [])}
        return [Permission("events:PutEvents", BUS, bus) for bus in sorted(buses)]
    if service == "secretsmanager" and (secret := params.get("SecretId") or params.get("Name")):
        return [Permission(f"secretsmanager:{operation}", SECRET, secret)]
    if service == "scheduler" and "Name" in params:
        schedule = f"{params.get('GroupName', 'default')}/{params['Name']}"
        needed = [Permission(f"scheduler:{operation}", SCHEDULE, schedule)]
        if role := params.get("Target", {}).get("RoleArn"):
            needed.append(Permission("iam:PassRole", ROLE, role))
        return needed
    if service == "lambda" and "FunctionName" in params:
        action = "lambda:InvokeFunction" if operation == "Invoke" else f"lambda:{operation}"
        return [Permission(action, FUNCTION, params["FunctionName"])]
    # botocore names these services as IAM prefixes them (dynamodb, sqs, events, ...).
    return [Permission(f"{service}:{operation}", ANY, "*")]


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
