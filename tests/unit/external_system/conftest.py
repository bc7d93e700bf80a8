"""A fresh fake external system per test, served on a free loopback port."""

from collections.abc import Iterator

import httpx
import pytest

from external_system import start_server


@pytest.fixture
def empty_api() -> Iterator[httpx.Client]:
    server, thread = start_server("127.0.0.1", 0)
    # Plain HTTP on loopback: verify=False skips loading the CA bundle (~40 ms per client).
    base_url = f"http://127.0.0.1:{server.port}"
    with httpx.Client(base_url=base_url, timeout=5.0, verify=False) as client:
        yield client
    server.shutdown()
    server.server_close()
    thread.join()


def seed(api: httpx.Client, *client_ids: str, records: int = 3) -> None:
    for client_id in client_ids:
        body = {"client_id": client_id, "group_id": "g1", "records": records}
        api.post("/_admin/clients", json=body).raise_for_status()
