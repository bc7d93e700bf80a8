"""Runs API Lambda: the async job pattern over REST, behind the key authorizer.

The routes are jobkit.api's routers, one per resource (jobkit.api.resolver); scopes come from
the authorizer's context (jobkit.api.auth).
"""

# First: no garbage collection until the handler is built (jobkit.cold_start).
import jobkit.cold_start  # noqa: F401

# isort: split
from pathlib import Path
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobkit.api.resolver import build_app
from jobkit.observability import metrics
from jobkit.settings import ApiSettings, load_settings
from jobkit.wiring.api import build_services
from jobkit.wiring.entry import lambda_entry
from jobs import JOBS

settings = load_settings(ApiSettings)
DASHBOARD = (Path(__file__).parent / "dashboard.html").read_text()
# Every job module is imported at cold start (a few milliseconds for all of them): each job's
# client route takes a body of its own query fields.
app = build_app(build_services(settings, DASHBOARD, JOBS))


@lambda_entry(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(name="ApiRequests", unit="Count", value=1)
    return app.resolve(event, context)
