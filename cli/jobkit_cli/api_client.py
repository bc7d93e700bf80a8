"""The runs API as the CLI uses it: base URL from the stack, key from --key or JOBKIT_API_KEY."""

import os
from typing import Any
from urllib.parse import urljoin

import httpx

from jobkit.api.models import BackfillDryRunOut, PreviewOut, RunOut
from jobkit_cli.stack import Stack


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def api_url(stack: Stack) -> str:
    """The base URL: API Gateway's on AWS, MiniStack's user-request path locally."""
    if stack.is_local:
        return f"{stack.endpoint_url}/restapis/{stack.outputs['ApiId']}/v1/_user_request_"
    return stack.outputs["ApiUrl"]


class ApiClient:
    def __init__(self, stack: Stack, key: str | None = None) -> None:
        key = key or os.environ.get("JOBKIT_API_KEY")
        if not key:
            raise SystemExit("jobkit: an API key is needed: --key or JOBKIT_API_KEY")
        self._base = api_url(stack)
        self._http = httpx.Client(base_url=self._base, headers={"x-api-key": key}, timeout=30.0)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.is_error:
            try:
                body = response.json()
                message = body.get("error") or body.get("message") or body
            except ValueError:
                message = response.text[:200]
            raise ApiError(response.status_code, str(message))
        return response

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        return response.json() if response.content else None

    def start_run(self, job_type: str, client_ids: list[str] | None, dry_run: bool) -> RunOut:
        return self.start_run_at(job_type, client_ids, dry_run)[0]

    def start_run_at(
        self, job_type: str, client_ids: list[str] | None, dry_run: bool
    ) -> tuple[RunOut, str]:
        """The accepted run and its URL (the answer's Location)."""
        body = {"clientIds": client_ids, "dryRun": dry_run}
        response = self._send("POST", f"/jobs/{job_type}/runs", json=body)
        return RunOut.model_validate(response.json()), response.headers["location"]

    def run(self, run_id: str) -> RunOut:
        return RunOut.model_validate(self._call("GET", f"/runs/{run_id}"))

    def run_at(self, url: str) -> RunOut:
        """The run at a URL the API gave (a Location), resolved against the API's own."""
        return RunOut.model_validate(self._call("GET", urljoin(f"{self._base}/", url)))

    def cancel(self, run_id: str) -> RunOut:
        return RunOut.model_validate(self._call("DELETE", f"/runs/{run_id}"))

    def backfill(
        self,
        job_type: str,
        client_ids: list[str],
        window_from: str,
        window_to: str,
        *,
        mode: str = "missing",
        dry_run: bool = False,
        request_id: str | None = None,
    ) -> RunOut | BackfillDryRunOut:
        """The backfill's run (202), or its dry run's counts (200)."""
        body: dict[str, Any] = {
            "clientIds": client_ids,
            "from": window_from,
            "to": window_to,
            "mode": mode,
            "dryRun": dry_run,
        }
        if request_id is not None:
            body["requestId"] = request_id
        answer = self._call("POST", f"/jobs/{job_type}/backfills", json=body)
        if dry_run:
            return BackfillDryRunOut.model_validate(answer)
        return RunOut.model_validate(answer)

    def preview(self, job_type: str, client_id: str, limit: int = 20) -> PreviewOut:
        """The job's rules on the client's next page (``POST /jobs/{type}/preview``)."""
        body = {"clientId": client_id, "limit": limit}
        return PreviewOut.model_validate(self._call("POST", f"/jobs/{job_type}/preview", json=body))
