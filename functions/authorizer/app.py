"""Lambda REQUEST authorizer: x-api-key against the Keys table.

401 (by raising "Unauthorized", as API Gateway requires) for a missing, malformed, unknown,
expired or revoked key; otherwise Allow with the key's scopes in the context, which the API
checks per route (403 when out of scope). The key itself is never logged.
"""

# First: no garbage collection until the handler is built (jobkit.cold_start).
import jobkit.cold_start  # noqa: F401

# isort: split
from typing import Any

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponse,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobkit.adapters.aws import dynamodb_table
from jobkit.adapters.keys import KeyStore
from jobkit.observability import logger
from jobkit.settings import AuthorizerSettings, load_settings
from jobkit.wiring.entry import lambda_entry

settings = load_settings(AuthorizerSettings)
keys = KeyStore(dynamodb_table(settings.keys_table))


@lambda_entry(with_metrics=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = APIGatewayAuthorizerRequestEvent(event)
    headers = {name.lower(): value for name, value in (request.headers or {}).items()}
    key = keys.authenticate(headers.get("x-api-key"))
    if key is None:
        logger.info(
            "request refused", extra={"reason": "missing or invalid key", "path": request.path}
        )
        raise Exception("Unauthorized")  # noqa: TRY002 - the exact text API Gateway maps to 401
    arn = request.parsed_arn
    response = APIGatewayAuthorizerResponse(
        principal_id=key.key_id,
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        context={
            "key_id": key.key_id,
            "scopes": ",".join(sorted(key.scopes)),
            "job_types": ",".join(sorted(key.job_types)),
            "clients": ",".join(sorted(key.clients)),
        },
    )
    # Cached per key for every route: scopes are checked by the API, not by the policy.
    response.allow_all_routes()
    return response.asdict()
