"""The run's Location, resolved as a client resolves it, lands on the run under the stage."""

from typing import Any
from urllib.parse import urljoin

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from jobkit.api.urls import public_url

RUN = "/runs/sync-contacts.20261201T100000Z.1a2b3c4d"


def _event(domain: str | None, used_path: str, host: str, stage: str = "v1") -> Any:
    context: dict[str, Any] = {"path": used_path, "stage": stage, "apiId": "a1b2c3d4e5"}
    if domain:
        context["domainName"] = domain
    return APIGatewayProxyEvent(
        {
            "path": "/jobs/sync-contacts/runs",
            "httpMethod": "POST",
            "headers": {"Host": host},
            "requestContext": context,
        }
    )


def test_on_the_default_domain_the_location_keeps_the_stage() -> None:
    # Given a POST to https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/v1/jobs/…/runs
    domain = "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"
    event = _event(domain, "/v1/jobs/sync-contacts/runs", domain)
    # When its Location is resolved against the API's URL, or against the request's own
    location = public_url(event, RUN)
    # Then both land on the run under v1 (a bare /runs/… would drop the stage: 403)
    for base in (f"https://{domain}/v1/", f"https://{domain}/v1/jobs/sync-contacts/runs"):
        assert urljoin(base, location) == f"https://{domain}/v1{RUN}"


def test_behind_a_custom_domain_the_location_keeps_its_base_path() -> None:
    event = _event("api.example.com", "/jobkit/jobs/sync-contacts/runs", "api.example.com")
    assert public_url(event, RUN) == f"https://api.example.com/jobkit{RUN}"
    root = _event("api.example.com", "/jobs/sync-contacts/runs", "api.example.com")
    assert public_url(root, RUN) == f"https://api.example.com{RUN}"


def test_on_the_local_stack_the_location_is_the_emulators_address() -> None:
    event = _event(None, "/v1/jobs/sync-contacts/runs", "127.0.0.1:4566")
    base = "http://127.0.0.1:4566/restapis/a1b2c3d4e5/v1/_user_request_"
    assert urljoin(f"{base}/", public_url(event, RUN, emulator=True)) == f"{base}{RUN}"
