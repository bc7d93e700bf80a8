"""The body of every webhook delivery: Standard Webhooks' recommended shape, the domain event
under ``data``."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobkit.adapters.events import EventType, StatusChanged


class WebhookPayload(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: EventType
    timestamp: datetime = Field(description="When the event happened (its occurred_at).")
    data: StatusChanged = Field(description="The domain event.")

    @classmethod
    def of(cls, event: dict[str, Any]) -> "WebhookPayload":
        """From a delivery's event, as the matcher put it on the delivery queue."""
        data = StatusChanged.model_validate(event)
        return cls(type=data.type, timestamp=data.occurred_at, data=data)

    def body(self) -> bytes:
        return self.model_dump_json().encode()


def inline_schema() -> dict[str, Any]:
    """The payload's JSON schema with its references inlined, for the API document (where a
    ``$defs`` reference would point into the document, not into this schema)."""
    schema = WebhookPayload.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined
