"""Who is calling, as the key authorizer described it, and what that key may do.

Every scope and client check of the API is here: a key limited to some clients reads and
triggers only those, on every route.
"""

from collections.abc import Mapping

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from jobkit.adapters.keys import Grant, Scope
from jobkit.api.responses import ApiError


class Caller(Grant):
    """The key behind this request."""

    key_id: str

    def require(
        self, scope: Scope, job_type: str | None = None, client_ids: list[str] | None = None
    ) -> None:
        if not self.allows(scope, job_type, client_ids):
            raise ApiError(403, f"key {self.key_id} lacks {scope.value} scope for this request")

    def require_client(self, client_id: str) -> None:
        """Read scope, and for a key limited to some clients, this one among them."""
        self.require(Scope.READ)
        if self.clients and client_id not in self.clients and Scope.ADMIN not in self.scopes:
            raise ApiError(403, f"key {self.key_id} lacks read scope for client {client_id}")

    def readable(self, planners: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
        """Job type -> schedule, of the job types this key may read."""
        allowed = [job for job in planners if self.allows(Scope.READ, job)]
        return {job: planners[job].get("schedule", "") for job in sorted(allowed)}

    @property
    def reads_every_job(self) -> bool:
        return Scope.ADMIN in self.scopes or not self.job_types


def caller(event: APIGatewayProxyEvent) -> Caller:
    """The authorizer's context: key_id, and scopes, job_types, clients comma-separated."""
    request_context = event.get("requestContext") or {}
    context = request_context.get("authorizer") or {}

    def split(name: str) -> frozenset[str]:
        return frozenset(filter(None, str(context.get(name, "")).split(",")))

    return Caller.model_validate(
        {
            "key_id": str(context.get("key_id", "")),
            "scopes": split("scopes"),
            "job_types": split("job_types"),
            "clients": split("clients"),
        }
    )
