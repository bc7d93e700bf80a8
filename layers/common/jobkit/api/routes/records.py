"""A record's history of status transitions, for keys that may read its client."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from jobkit.api.auth import caller
from jobkit.api.models import HistoryEntry
from jobkit.api.responses import ApiError, documented
from jobkit.api.services import services
from jobkit.domain.envelope import Identifier

router = APIGatewayRouter()  # type: ignore[no-untyped-call]


@router.get("/records/<record_id>/history", responses=documented())
def record_history(record_id: str, client_id: Annotated[Identifier, Query()]) -> list[HistoryEntry]:
    missing = ApiError(404, f"no history for record {record_id!r} of client {client_id!r}")
    caller(router.current_event).require_client(client_id, missing)
    rows = services(router).workflow.history(client_id, record_id)
    if not rows:
        raise missing
    return [HistoryEntry.model_validate(row) for row in rows]
