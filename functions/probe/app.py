"""Health probe Lambda: on a schedule, probes every client endpoint through its circuit."""

# First: no garbage collection until the handler is built (jobkit.cold_start).
import jobkit.cold_start  # noqa: F401

# isort: split
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobkit.adapters.aws import dynamodb_table
from jobkit.adapters.config_store import ConfigStore
from jobkit.ops.probe import HealthProbe, ProbeRequest
from jobkit.settings import ProbeSettings, load_settings
from jobkit.wiring.entry import lambda_entry
from jobkit.wiring.parts import build_circuits, build_connections

settings = load_settings(ProbeSettings)
probe = HealthProbe(
    ConfigStore(dynamodb_table(settings.config_table)),
    build_connections(settings),
    build_circuits(settings),
    dynamodb_table(settings.control_table),
)


@lambda_entry()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    results = probe.probe_all(ProbeRequest.model_validate(event))
    return {"probes": [result.model_dump(mode="json") for result in results]}
