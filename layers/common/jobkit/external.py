"""HTTP client for the external system: timeouts, retries with backoff honouring Retry-After.

One ``httpx.Client`` per container (``external_system()``), so connections are reused across
invocations. Retries are httpx-retries' transport; we only map the final answer to our errors.
"""

from functools import cache
from typing import Any

import httpx
from httpx_retries import Retry, RetryTransport
from pydantic import BaseModel, ValidationError

from jobkit.envelope import describe_validation_error
from jobkit.errors import ExternalRejectedError, ExternalUnavailableError, InvalidPayloadError

_RETRYABLE_STATUS = (408, 429, 500, 502, 503, 504)


class ExternalSystem:
    """The external system's HTTP API, as seen by job modules."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._send("GET", path, params=params)

    def post(self, path: str, body: Any) -> Any:
        return self._send("POST", path, json=body)

    def get_as[ModelT: BaseModel](
        self, model: type[ModelT], path: str, params: dict[str, Any] | None = None
    ) -> ModelT:
        """GET and validate the answer; a malformed one is a permanent error naming the field."""
        return _validated(model, self.get(path, params), f"GET {path}")

    def post_as[ModelT: BaseModel](self, model: type[ModelT], path: str, body: Any) -> ModelT:
        return _validated(model, self.post(path, body), f"POST {path}")

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ExternalUnavailableError(f"{method} {path}: timed out") from exc
        except httpx.TransportError as exc:
            raise ExternalUnavailableError(f"{method} {path}: {type(exc).__name__}") from exc
        if response.status_code in _RETRYABLE_STATUS:
            raise ExternalUnavailableError(
                f"{method} {path}: HTTP {response.status_code} after retries"
            )
        if response.is_error:
            raise ExternalRejectedError(
                f"{method} {path}: HTTP {response.status_code}: {_error_text(response)}"
            )
        try:
            return response.json()
        except ValueError as exc:
            raise ExternalRejectedError(f"{method} {path}: response is not JSON") from exc


def _validated[ModelT: BaseModel](model: type[ModelT], body: Any, what: str) -> ModelT:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidPayloadError(f"{what}: {describe_validation_error(exc)}") from exc


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])[:200]
    return str(body)[:200]


def build_http_client(base_url: str, timeout_seconds: float, max_attempts: int) -> httpx.Client:
    """An httpx client that retries transient answers, bounded so a Lambda never waits long."""
    retry = Retry(
        total=max_attempts - 1,
        allowed_methods=["GET", "POST"],  # our POSTs (acks) are idempotent on the other side
        status_forcelist=_RETRYABLE_STATUS,
        backoff_factor=0.2,
        respect_retry_after_header=True,
        max_backoff_wait=5.0,
        total_timeout=timeout_seconds * max_attempts,
    )
    return httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 2.0)),
        transport=RetryTransport(retry=retry),
        headers={"user-agent": "jobkit"},
    )


@cache
def external_system(base_url: str, timeout_seconds: float, max_attempts: int) -> ExternalSystem:
    return ExternalSystem(build_http_client(base_url, timeout_seconds, max_attempts))
