"""Per-client credentials for the external system, kept in Secrets Manager.

One secret per client, ``<prefix>/<client_id>``, holding an ``ExternalCredential`` as JSON.
Reads go through Powertools Parameters, cached per container; a refused credential is read
again without the cache once (it may just have been rotated) before the call fails.
"""

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobkit.adapters.aws import secrets_client
from jobkit.domain.envelope import Identifier, describe_validation_error
from jobkit.domain.errors import ExternalAuthError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

CACHE_SECONDS = 300


class ExternalCredential(BaseModel):
    """What a client's secret holds: the bearer token and where it is valid."""

    # Built on first use: only clients with credentials need it, once per container.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    client_id: Identifier
    token: str = Field(min_length=16, max_length=256, repr=False)
    route: str = Field("/v1", pattern=r"^/[A-Za-z0-9_\-/]*$", max_length=128)

    def header(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


def secret_name(prefix: str, client_id: str) -> str:
    return f"{prefix}/{client_id}"


def parse_credential(raw: Any, name: str) -> ExternalCredential:
    try:
        return ExternalCredential.model_validate_json(raw)
    except ValidationError as exc:
        # The reason names fields only: pydantic's own message would echo the token.
        raise ExternalAuthError(
            f"secret {name}: not a valid credential: {describe_validation_error(exc)}"
        ) from exc


CredentialReader = Callable[[str, bool], ExternalCredential]


class CredentialSource:
    """Reads a client's credential; ``refresh`` bypasses the cache.

    Powertools Parameters and the Secrets Manager client are loaded on the first read, not at
    cold start: only clients with credentials need them, and only when a call is made.
    """

    def __init__(self, prefix: str, max_age: int = CACHE_SECONDS) -> None:
        self._prefix = prefix
        self._max_age = max_age

    @cached_property
    def _provider(self) -> "SecretsProvider":
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        return SecretsProvider(boto3_client=secrets_client())

    def __call__(self, client_id: str, refresh: bool = False) -> ExternalCredential:
        # Imported on the first read, like the provider; from then on only a lookup.
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        name = secret_name(self._prefix, client_id)
        provider = self._provider
        try:
            # The stage named although it is the default: some emulators (moto) otherwise
            # keep answering the version a secret was created with.
            raw = provider.get(
                name, max_age=self._max_age, force_fetch=refresh, VersionStage="AWSCURRENT"
            )
        except GetParameterError as exc:
            raise ExternalAuthError(f"no credential readable at {name}") from exc
        return parse_credential(raw, name)
