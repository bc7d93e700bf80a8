"""The contacts change feed: resumable positions, touched contacts move to the end."""

import httpx


def _seed(api: httpx.Client, count: int) -> None:
    assert api.post("/_admin/clients/acme/contacts", json={"count": count}).status_code == 201


def test_feed_pages_by_change_and_reports_where_to_resume(empty_api: httpx.Client) -> None:
    _seed(empty_api, 5)
    first = empty_api.get("/v1/clients/acme/contacts", params={"limit": 3}).json()
    assert [c["version"] for c in first["contacts"]] == [1, 2, 3]
    assert first["next_cursor"] == first["position"] == "3"
    rest = empty_api.get("/v1/clients/acme/contacts", params={"cursor": 3}).json()
    assert [c["version"] for c in rest["contacts"]] == [4, 5]
    assert (rest["next_cursor"], rest["position"]) == (None, "5")
    nothing = empty_api.get("/v1/clients/acme/contacts", params={"cursor": 5}).json()
    assert (nothing["contacts"], nothing["position"]) == ([], "5")


def test_touched_and_resent_contacts_come_again_with_a_new_version(
    empty_api: httpx.Client,
) -> None:
    _seed(empty_api, 3)
    touched = empty_api.post("/_admin/clients/acme/contacts/acme-c00002/touch").json()
    resent = empty_api.post("/_admin/clients/acme/contacts/acme-c00003/resend").json()
    changed = empty_api.get("/v1/clients/acme/contacts", params={"cursor": 3}).json()
    assert [c["id"] for c in changed["contacts"]] == ["acme-c00002", "acme-c00003"]
    assert touched["email"].startswith("changed") and resent["email"] == "contact3@acme.example"


def test_unknown_client_and_bad_cursor_are_4xx(empty_api: httpx.Client) -> None:
    assert empty_api.get("/v1/clients/nobody/contacts").status_code == 404
    _seed(empty_api, 1)
    assert empty_api.get("/v1/clients/acme/contacts", params={"cursor": "x"}).status_code == 400
