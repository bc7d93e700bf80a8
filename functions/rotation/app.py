"""Credential rotation Lambda: Secrets Manager's four steps, or every client's on a schedule."""

# First: no garbage collection until the handler is built (jobkit.cold_start).
import jobkit.cold_start  # noqa: F401

# isort: split
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobkit.adapters.aws import secrets_client
from jobkit.ops.rotation import CredentialRotator, RotateRequest, RotationEvent
from jobkit.settings import RotationSettings, load_settings
from jobkit.wiring.entry import lambda_entry
from jobkit.wiring.parts import build_connections

settings = load_settings(RotationSettings)
rotator = CredentialRotator(
    secrets_client(),
    build_connections(settings).with_credential,
    settings.credentials_secret_prefix,
)


@lambda_entry()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any] | None:
    if "Step" in event:  # Secrets Manager, one step at a time
        rotator.run_step(RotationEvent.model_validate(event))
        return None
    return rotator.rotate_all(RotateRequest.model_validate(event))
