"""Tenant isolation through API Gateway and the key authorizer on the local stack: keys
limited to client A, created as an operator creates them, read a run of A and B."""

from typing import Any

import httpx
import pytest

from jobkit.adapters.keys import Scope
from tests.integration.conftest import JOB, wait_until

pytestmark = pytest.mark.integration


def test_keys_limited_to_one_client_read_only_that_client(
    api_base: str, make_key: Any, new_client: Any
) -> None:
    # Given a run of two tenants' clients, A and B
    a, b = new_client("tenant-a", records=2), new_client("tenant-b", records=3)
    admin = httpx.Client(base_url=api_base, headers={"x-api-key": make_key(Scope.ADMIN)})
    run_id = admin.post(f"/jobs/{JOB}/runs", json={"clientIds": [a, b]}).json()["run_id"]

    def finished() -> bool:
        status: str = admin.get(f"/runs/{run_id}").json()["status"]
        return status == "SUCCEEDED"

    wait_until(finished, what="the run of A and B to finish")
    for scope in (Scope.READ, Scope.TRIGGER):
        # When keys limited to A (read, and trigger) read the run, its pages and the health page
        key = make_key(scope, clients={a})
        api = httpx.Client(base_url=api_base, headers={"x-api-key": key}, timeout=30.0)
        bodies = {
            path: api.get(path, params=params)
            for path, params in (
                (f"/runs/{run_id}", {}),
                (f"/runs/{run_id}/clients", {}),
                (f"/runs/{run_id}/items", {}),
                (f"/jobs/{JOB}/runs", {"limit": 200}),
                ("/health", {"client": "tenant-"}),
                ("/webhooks/deliveries", {"client_id": b}),
            )
        }
        # Then every answer is a 200 that never names B, or B's records
        for path, answer in bodies.items():
            assert answer.status_code == 200, (path, answer.text)
            assert b not in answer.text, f"{scope.value} key limited to A saw B on {path}"
        # And they show A's own share: its row, its two items, its totals
        run = bodies[f"/runs/{run_id}"].json()
        assert [c["client_id"] for c in run["clients"]] == [a]
        assert (run["counts"]["clients"], run["counts"]["processed"]) == (1, 2)
        items = bodies[f"/runs/{run_id}/items"].json()["items"]
        assert sorted(i["record_id"] for i in items) == [f"{a}-r00001", f"{a}-r00002"]
        health = bodies["/health"].json()
        assert health["dlq_depth"] is None
        [job] = [j for j in health["jobs"] if j["job_type"] == JOB]
        assert [c["client_id"] for c in job["clients"]] == [a]
        # And B's record is not there for them
        history = api.get(f"/records/{b}-r00001/history", params={"client_id": b})
        assert history.status_code == 404
