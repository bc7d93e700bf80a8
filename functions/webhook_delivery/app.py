"""Webhook delivery worker: POSTs each delivery, signed, with backoff between attempts."""

# First: no garbage collection until the handler is built (jobkit.cold_start).
import jobkit.cold_start  # noqa: F401

# isort: split
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobkit.settings import DeliverySettings, load_settings
from jobkit.wiring.entry import lambda_entry
from jobkit.wiring.webhooks import build_delivery_worker

settings = load_settings(DeliverySettings)
worker = build_delivery_worker(settings)


@lambda_entry()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return worker.handle(event, context)
