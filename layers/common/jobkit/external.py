"""HTTP client for the external system: timeouts, retries with backoff honouring Retry-After,
the provider's rate limit, and each client's credential.

One ``httpx.Client`` per container (``Connections``), so connections are reused across
invocations and clients; ``for_client`` gives the view a job sees, carrying that client's
credential. Retries are httpx-retries' transport; we only map the final answer to our errors.
"""

from collections.abc import Callable
from typing import Any

import httpx
from httpx_retries import Retry, RetryTransport
from pydantic import BaseModel, ValidationError

from jobkit.config import ClientConfig
from jobkit.credentials import CredentialReader, ExternalCredential
from jobkit.envelope import describe_validation_error
from jobkit.errors import (
    ExternalAuthError,
    ExternalRejectedError,
    ExternalUnavailableError,
    InvalidPayloadError,
)
from jobkit.ratelimit import RateLimitedTransport, TokenBucket

_RETRYABLE_STATUS = (408, 429, 500, 502, 503, 504)


class ExternalSystem:
    """The external system's HTTP API, as seen by job modules."""

    def __init__(
        self,
        http: httpx.Client,
        credential: Callable[[bool], ExternalCredential] | None = None,
    ) -> None:
        self._http = http
        self._credential = credential

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
        response = self._request(method, path, refresh=False, **kwargs)
        if response.status_code == 401 and self._credential is not None:
            # Perhaps rotated since we cached it: read it again, once.
            response = self._request(method, path, refresh=True, **kwargs)
        if response.status_code == 401:
            raise ExternalAuthError(f"{method} {path}: HTTP 401: credentials refused")
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

    def _request(self, method: str, path: str, refresh: bool, **kwargs: Any) -> httpx.Response:
        headers = self._credential(refresh).header() if self._credential is not None else None
        try:
            return self._http.request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise ExternalUnavailableError(f"{method} {path}: timed out") from exc
        except httpx.TransportError as exc:
            raise ExternalUnavailableError(f"{method} {path}: {type(exc).__name__}") from exc


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


def build_http_client(
    base_url: str,
    timeout_seconds: float,
    max_attempts: int,
    bucket: TokenBucket | None = None,
) -> httpx.Client:
    """An httpx client that retries transient answers, bounded so a Lambda never waits long,
    and takes a rate-limit token before every attempt."""
    retry = Retry(
        total=max_attempts - 1,
        allowed_methods=["GET", "POST"],  # our POSTs (acks) are idempotent on the other side
        status_forcelist=_RETRYABLE_STATUS,
        backoff_factor=0.2,
        respect_retry_after_header=True,
        max_backoff_wait=5.0,
        total_timeout=timeout_seconds * max_attempts,
    )
    inner: httpx.BaseTransport = httpx.HTTPTransport()
    if bucket is not None:
        inner = RateLimitedTransport(bucket, inner)
    return httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 2.0)),
        transport=RetryTransport(transport=inner, retry=retry),
        headers={"user-agent": "jobkit"},
    )


class Connections:
    """The container's one HTTP client to the provider, and each client's view of it."""

    def __init__(self, http: httpx.Client, credentials: CredentialReader) -> None:
        self._http = http
        self._credentials = credentials

    def for_client(self, client: ClientConfig) -> ExternalSystem:
        if not client.credentials:
            return ExternalSystem(self._http)
        client_id = client.client_id
        return ExternalSystem(self._http, lambda refresh: self._credentials(client_id, refresh))

    def with_credential(self, credential: ExternalCredential) -> ExternalSystem:
        """Calls made with this very credential (rotation registers and tests a new one)."""
        return ExternalSystem(self._http, lambda refresh: credential)
