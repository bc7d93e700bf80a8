"""The external system as jobs see it: calls mapped to our errors, each client's credential,
and the container's one HTTP client to the provider.

One ``httpx.Client`` per container (``Connections``), so connections are reused across invocations
and clients; ``for_client`` gives the view a job sees, carrying that client's credential. The client
itself (timeouts, retries, rate limit) is ``jobkit.adapters.http_client``'s; it is built on the
first external call, and httpx is imported only then: a cold start that makes no external call does
not pay for it.
"""

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from jobkit.adapters.config import ClientConfig
from jobkit.adapters.credentials import CredentialReader, ExternalCredential
from jobkit.domain.envelope import describe_validation_error
from jobkit.domain.errors import (
    ExternalAuthError,
    ExternalRejectedError,
    ExternalUnavailableError,
    InvalidPayloadError,
)

if TYPE_CHECKING:
    import httpx

RETRYABLE_STATUS = (408, 429, 500, 502, 503, 504)
# The retry policy's shape (``jobkit.adapters.http_client`` builds it), here so that the processor
# can reckon a call's worst case without importing httpx.
MAX_BACKOFF_SECONDS = 5.0  # the longest sleep between attempts, a Retry-After's included
MAX_CONNECT_SECONDS = 2.0


def longest_attempt_seconds(timeout_seconds: float) -> float:
    """The longest one HTTP attempt may take: its connect, then its answer, each bounded (a
    server that trickles its answer byte by byte could take longer: httpx bounds each read)."""
    return min(timeout_seconds, MAX_CONNECT_SECONDS) + timeout_seconds


def call_worst_case_seconds(
    timeout_seconds: float, max_attempts: int, patience_seconds: float
) -> float:
    """The longest one call may take as configured, outside of a time budget: every attempt
    waits its token up to the bucket's patience and runs to its timeout, with the longest
    backoff between attempts. A 401 reads the credential again and calls once more (twice
    this); under a time budget the whole, retry included, is cut to the budget."""
    per_attempt = patience_seconds + longest_attempt_seconds(timeout_seconds)
    return max_attempts * per_attempt + (max_attempts - 1) * MAX_BACKOFF_SECONDS


class ExternalSystem:
    """The external system's HTTP API, as seen by job modules."""

    def __init__(
        self,
        http: "httpx.Client",
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
        if response.status_code in RETRYABLE_STATUS:
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

    def _request(self, method: str, path: str, refresh: bool, **kwargs: Any) -> "httpx.Response":
        # Already loaded by the client this object holds: only a lookup, for the exceptions.
        import httpx

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


def _error_text(response: "httpx.Response") -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])[:200]
    return str(body)[:200]


class Connections:
    """The container's one HTTP client to the provider, and each client's view of it.

    ``http`` builds the client; it is called once, when the first view is asked for (just
    before the first external call), and the client is kept for the container's life.
    """

    def __init__(self, http: Callable[[], "httpx.Client"], credentials: CredentialReader) -> None:
        self._build_http = http
        self._credentials = credentials

    @cached_property
    def _http(self) -> "httpx.Client":
        return self._build_http()

    def for_client(self, client: ClientConfig) -> ExternalSystem:
        if not client.credentials:
            return ExternalSystem(self._http)
        client_id = client.client_id
        return ExternalSystem(self._http, lambda refresh: self._credentials(client_id, refresh))

    def with_credential(self, credential: ExternalCredential) -> ExternalSystem:
        """Calls made with this very credential (rotation registers and tests a new one)."""
        return ExternalSystem(self._http, lambda refresh: credential)
