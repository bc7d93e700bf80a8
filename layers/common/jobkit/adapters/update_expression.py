"""A DynamoDB UpdateExpression built clause by clause, its placeholders numbered for it.

Written by hand: boto3's resource layer builds conditions (``boto3.dynamodb.conditions``) but
not update expressions, and the stores write their counters and fields through plain
clients (``jobkit.adapters.aws.Table`` and transactions), which take the expression as text.
"""

from dataclasses import dataclass, field
from typing import Any


@dataclass
class UpdateExpression:
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    _sets: list[str] = field(default_factory=list)
    _adds: list[str] = field(default_factory=list)
    _removes: list[str] = field(default_factory=list)

    def set(self, attribute: str, value: Any, if_absent: bool = False) -> "UpdateExpression":
        """``attribute = value``; with ``if_absent``, only where the item has none yet."""
        name, placeholder = self._name(attribute), self._value(value)
        assigned = f"if_not_exists({name}, {placeholder})" if if_absent else placeholder
        self._sets.append(f"{name} = {assigned}")
        return self

    def set_sum(
        self, attribute: str, base: str, base_default: int, amount: int
    ) -> "UpdateExpression":
        """``attribute = base + amount``, counting from ``base_default`` where the item has
        no ``base``: DynamoDB does the sum, so a value kept on the row needs no read first."""
        name, base_name = self._name(attribute), self._name(base)
        default, added = self._value(base_default), self._value(amount)
        self._sets.append(f"{name} = if_not_exists({base_name}, {default}) + {added}")
        return self

    def add(self, attribute: str, amount: int | float) -> "UpdateExpression":
        """A counter: ``attribute`` grows by ``amount`` (from 0 on an item without it)."""
        self._adds.append(f"{self._name(attribute)} {self._value(amount)}")
        return self

    def remove(self, attribute: str) -> "UpdateExpression":
        self._removes.append(self._name(attribute))
        return self

    @property
    def expression(self) -> str:
        clauses = [("SET", self._sets), ("ADD", self._adds), ("REMOVE", self._removes)]
        return " ".join(f"{verb} {', '.join(parts)}" for verb, parts in clauses if parts)

    def arguments(self) -> dict[str, Any]:
        """UpdateExpression and its placeholders, as update_item and a transaction take them
        (DynamoDB refuses an empty ExpressionAttributeValues)."""
        if not self.expression:
            raise ValueError("an update needs at least one clause")
        arguments: dict[str, Any] = {
            "UpdateExpression": self.expression,
            "ExpressionAttributeNames": self.names,
        }
        if self.values:
            arguments["ExpressionAttributeValues"] = self.values
        return arguments

    def _name(self, attribute: str) -> str:
        placeholder = f"#u{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def _value(self, value: Any) -> str:
        placeholder = f":u{len(self.values)}"
        self.values[placeholder] = value
        return placeholder
