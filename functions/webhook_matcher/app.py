"""Webhook matcher: the bus puts domain events on its queue; it enqueues deliveries, a batch
at a time."""

# First: no garbage collection until the handler is built (jobkit.cold_start).
import jobkit.cold_start  # noqa: F401

# isort: split
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobkit.settings import MatcherSettings, load_settings
from jobkit.wiring.entry import lambda_entry
from jobkit.wiring.webhooks import build_matcher

settings = load_settings(MatcherSettings)
matcher = build_matcher(settings)


@lambda_entry()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return matcher.handle(event, context)
