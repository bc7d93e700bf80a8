"""Who is calling, as the key authorizer described it, and what that key may do and see.

Every scope, job and client check of the API is here, and every route asks it:
- an action outside the key's grant is a 403 (``require``);
- what a key may not read is not there for it: a run, record or client of none of its
  clients is a 404, like one that does not exist, and the rows of other clients are left
  out of every answer (``runs_seen``, ``reads_client``);
- figures over every tenant (the work DLQ's depth) are only for keys limited to nothing.
"""

from collections.abc import Mapping

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from jobkit.adapters.keys import Grant, Scope
from jobkit.api.responses import ApiError
from jobkit.api.visibility import EveryClient, RunsSeen, SomeClients
from jobkit.runs.models import RunHeader
from jobkit.runs.queries import RunQueries


class Caller(Grant):
    """The key behind this request."""

    key_id: str

    def require(
        self, scope: Scope, job_type: str | None = None, client_ids: list[str] | None = None
    ) -> None:
        """An action: 403 unless the key's scope and limits cover it."""
        if not self.allows(scope, job_type, client_ids):
            raise ApiError(403, f"key {self.key_id} lacks {scope.value} scope for this request")

    def reads_client(self, client_id: str) -> bool:
        return not self.clients or client_id in self.clients

    def require_client(self, client_id: str, missing: Exception) -> None:
        """Read scope, and this client among the key's: else ``missing``, the answer for a
        client that does not exist, so the answer does not tell whether it does."""
        self.require(Scope.READ)
        if not self.reads_client(client_id):
            raise missing

    def runs_seen(self, queries: RunQueries) -> RunsSeen:
        """The runs as this key sees them: only its clients' rows when it is limited."""
        return SomeClients(queries, self.clients) if self.clients else EveryClient(queries)

    def run(self, runs: RunsSeen, run_id: str, scope: Scope) -> RunHeader:
        """A run this key sees (404 otherwise, as for no run), within the scope asked for.
        Cancelling touches every client the run named: a client-limited key cancels only a
        run of its own clients."""
        header = runs.header(run_id)
        if header is None or not self.allows(Scope.READ, header.job_type):
            raise ApiError(404, f"no run {run_id!r}")
        touched = None if scope is Scope.READ else list(header.requested_clients)
        self.require(scope, header.job_type, touched)
        return header

    def readable(self, planners: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
        """Job type -> schedule, of the job types this key may read."""
        allowed = [job for job in planners if self.allows(Scope.READ, job)]
        return {job: planners[job].get("schedule", "") for job in sorted(allowed)}

    @property
    def sees_every_tenant(self) -> bool:
        """Limited to no job type and no client: figures summed over every tenant are its."""
        return not self.job_types and not self.clients


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
