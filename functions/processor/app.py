"""Processor Lambda, shared by every job type: work items from the work queue, in batches."""

# First: no garbage collection until the handler is built (jobkit.cold_start).
import jobkit.cold_start  # noqa: F401

# isort: split
from typing import Any

# First, before anything loads pydantic: Powertools' batch types import its parser's event
# models (SQS, Kinesis, DynamoDB streams, Kafka) when pydantic is already loaded, and building
# them is a sizeable share of a cold start; the processor reads SQS records as data classes.
import aws_lambda_powertools.utilities.batch  # noqa: F401
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobkit.observability import metrics
from jobkit.settings import ProcessorSettings, load_settings
from jobkit.wiring.entry import lambda_entry
from jobkit.wiring.parts import build_parts
from jobkit.wiring.processor import build_processor
from jobs import JOBS

settings = load_settings(ProcessorSettings)
processor = build_processor(settings, JOBS, build_parts(settings))


@lambda_entry()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(name="WorkItems", unit=MetricUnit.Count, value=len(event.get("Records", [])))
    return processor.handle(event, context)
