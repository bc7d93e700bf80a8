"""Webhook URLs never reach into a private network: at subscription and again at delivery."""

import ipaddress
import socket
from typing import Any

import pytest

from jobkit.webhooks.destinations import (
    ForbiddenDestination,
    UnresolvableDestination,
    address_refusal,
    check_url_host,
    host_refusal,
    resolve_checked,
)

METADATA = "a cloud metadata address"
UNSPECIFIED = "an unspecified address"
LINK_LOCAL = "a link-local address"
MULTICAST = "a multicast address"
PRIVATE = "a private address"
SHARED = "a shared (carrier-grade NAT) address"
UNIQUE_LOCAL = "a unique-local address"
SITE_LOCAL = "a site-local address"
BROADCAST = "a broadcast address"
RESERVED = "a reserved address"
LOOPBACK = "a loopback address"
ZONE = "an address with a zone id"

REFUSED = [
    # IPv4
    ("10.0.0.5", PRIVATE),
    ("10.255.255.255", PRIVATE),
    ("172.16.0.1", PRIVATE),
    ("172.31.255.254", PRIVATE),
    ("192.168.1.1", PRIVATE),
    ("169.254.0.1", LINK_LOCAL),
    ("169.254.169.254", METADATA),
    ("100.100.100.200", METADATA),
    ("100.64.0.1", SHARED),
    ("100.127.255.254", SHARED),
    ("0.0.0.0", UNSPECIFIED),
    ("0.1.2.3", RESERVED),
    ("224.0.0.1", MULTICAST),
    ("239.255.255.250", MULTICAST),
    ("255.255.255.255", BROADCAST),
    ("240.0.0.1", RESERVED),
    ("192.0.2.1", RESERVED),
    ("198.51.100.7", RESERVED),
    ("203.0.113.9", RESERVED),
    ("198.18.0.1", RESERVED),
    ("192.0.0.8", RESERVED),
    # IPv6
    ("::", UNSPECIFIED),
    ("fe80::1", LINK_LOCAL),
    ("febf::1", LINK_LOCAL),
    ("fd00:ec2::254", METADATA),
    ("fc00::1", UNIQUE_LOCAL),
    ("fd12:3456:789a::1", UNIQUE_LOCAL),
    ("fec0::1", SITE_LOCAL),
    ("ff02::1", MULTICAST),
    ("ff0e::1", MULTICAST),
    ("2001:db8::1", RESERVED),
    ("3fff::1", RESERVED),
    ("100::1", RESERVED),
    ("2001::1", RESERVED),  # Teredo
    ("64:ff9b:1::1", RESERVED),  # local-use NAT64
    # IPv6 forms carrying an IPv4 address are judged by that address
    ("::ffff:10.0.0.5", PRIVATE),
    ("::ffff:169.254.169.254", METADATA),
    ("::ffff:100.64.0.1", SHARED),
    ("::ffff:0.0.0.0", UNSPECIFIED),
    ("::ffff:0:10.0.0.5", PRIVATE),  # IPv4-translated
    ("::10.0.0.5", PRIVATE),  # IPv4-compatible
    ("::192.168.0.1", PRIVATE),
    ("2002:a00:5::1", PRIVATE),  # 6to4 of 10.0.0.5
    ("2002:a9fe:a9fe::", METADATA),  # 6to4 of 169.254.169.254
    ("64:ff9b::a00:5", PRIVATE),  # NAT64 of 10.0.0.5
    ("64:ff9b::169.254.169.254", METADATA),
    ("64:ff9b::c0a8:101", PRIVATE),
]

PUBLIC = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "172.32.0.1",  # just past 172.16/12
    "100.128.0.1",  # just past 100.64/10
    "169.253.255.255",
    "2606:2800:220:1:248:1893:25c8:1946",
    "2001:4860:4860::8888",
    "::ffff:93.184.216.34",
    "::93.184.216.34",
    "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
    "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34
]

LOOPBACK_ADDRESSES = [
    "127.0.0.1",
    "127.255.255.254",
    "::1",
    "::ffff:127.0.0.1",
    "64:ff9b::7f00:1",
    "2002:7f00:1::",
]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(("address", "reason"), REFUSED)
@pytest.mark.parametrize("allow_loopback", [False, True])
def test_address_outside_the_public_internet_is_refused_with_its_class(
    address: str, reason: str, allow_loopback: bool
) -> None:
    assert address_refusal(_ip(address), allow_loopback) == reason


@pytest.mark.parametrize("address", PUBLIC)
@pytest.mark.parametrize("allow_loopback", [False, True])
def test_public_address_is_allowed(address: str, allow_loopback: bool) -> None:
    assert address_refusal(_ip(address), allow_loopback) is None


@pytest.mark.parametrize("address", LOOPBACK_ADDRESSES)
def test_loopback_is_allowed_only_where_the_stack_is_local(address: str) -> None:
    assert address_refusal(_ip(address), allow_loopback=False) == LOOPBACK
    assert address_refusal(_ip(address), allow_loopback=True) is None


@pytest.mark.parametrize("address", ["fe80::1%eth0", "2606:2800:220:1:248:1893:25c8:1946%1"])
def test_scoped_address_is_refused(address: str) -> None:
    assert address_refusal(_ip(address), allow_loopback=True) == ZONE


@pytest.mark.parametrize(("host", "reason"), REFUSED)
def test_ip_literal_host_is_refused(host: str, reason: str) -> None:
    assert host_refusal(host, allow_loopback=False) == reason


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("[fe80::1]", LINK_LOCAL),
        ("[fd00:ec2::254]", METADATA),
        ("[::ffff:10.0.0.5]", PRIVATE),
        ("[::]", UNSPECIFIED),
        ("[::1]", LOOPBACK),
        ("fe80::1%eth0", ZONE),
        ("[fe80::1%eth0]", ZONE),
        ("fe80::1%25eth0", ZONE),
        ("2606:2800:220:1:248:1893:25c8:1946%eth0", ZONE),
        ("fe80::1%", ZONE),
        # What the resolver would read as IPv4 is judged as IPv4, not waved through as a name.
        ("127.1", LOOPBACK),
        ("0x7f000001", LOOPBACK),
        ("2130706433", LOOPBACK),
        ("0177.0.0.1", LOOPBACK),
        ("10.1", PRIVATE),
        ("0xa9.0xfe.0xa9.0xfe", METADATA),
        ("0", UNSPECIFIED),
    ],
)
def test_bracketed_scoped_and_legacy_literals_are_refused(host: str, reason: str) -> None:
    assert host_refusal(host, allow_loopback=False) == reason


@pytest.mark.parametrize("host", PUBLIC + ["[2606:2800:220:1:248:1893:25c8:1946]"])
def test_public_literal_host_is_allowed(host: str) -> None:
    assert host_refusal(host, allow_loopback=False) is None


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "localhost.", "api.localhost"])
def test_localhost_names_only_where_the_stack_is_local(host: str) -> None:
    assert host_refusal(host, allow_loopback=False) == "a loopback name"
    assert host_refusal(host, allow_loopback=True) is None


@pytest.mark.parametrize("host", ["[::1]", "127.0.0.1", "127.1"])
def test_loopback_literals_only_where_the_stack_is_local(host: str) -> None:
    assert host_refusal(host, allow_loopback=False) == LOOPBACK
    assert host_refusal(host, allow_loopback=True) is None


@pytest.mark.parametrize(
    "host", ["hooks.example.com", "localhost.example.com", "mylocalhost", "10.0.0.5.example.com"]
)
def test_other_names_wait_for_resolution(host: str) -> None:
    assert host_refusal(host, allow_loopback=False) is None


@pytest.mark.parametrize(
    ("url", "host", "reason"),
    [
        ("https://10.0.0.5/hooks", "10.0.0.5", PRIVATE),
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254", METADATA),
        ("https://[fd00:ec2::254]/latest", "fd00:ec2::254", METADATA),
        ("https://[::ffff:10.0.0.5]:8443/", "::ffff:10.0.0.5", PRIVATE),
        ("https://[fe80::1%25eth0]/", "fe80::1%25eth0", ZONE),
        ("http://127.0.0.1:8080/hook", "127.0.0.1", LOOPBACK),
        ("http://LocalHost/hook", "localhost", "a loopback name"),
        ("https://100.64.1.2/", "100.64.1.2", SHARED),
    ],
)
def test_subscription_url_to_a_private_host_is_refused(url: str, host: str, reason: str) -> None:
    with pytest.raises(ForbiddenDestination) as refused:
        check_url_host(url, allow_loopback=False)
    assert refused.value.host == host
    assert refused.value.reason == reason
    assert refused.value.field == "url"


@pytest.mark.parametrize(
    ("url", "allow_loopback"),
    [
        ("https://hooks.example.com/in?token=abc", False),
        ("https://93.184.216.34/", False),
        ("https://[2606:2800:220:1:248:1893:25c8:1946]/", False),
        ("http://127.0.0.1:8080/hook", True),
        ("http://localhost:8080/hook", True),
        ("http://[::1]:8080/hook", True),
    ],
)
def test_subscription_url_to_an_allowed_host_passes(url: str, allow_loopback: bool) -> None:
    check_url_host(url, allow_loopback)


def test_subscription_url_without_a_host_is_refused() -> None:
    with pytest.raises(ValueError, match="^url: must name a host$"):
        check_url_host("https:///hooks", allow_loopback=False)


def test_refusal_names_the_host_but_never_the_credentials_path_or_query() -> None:
    url = "https://alice:hunter2@10.0.0.5:8443/hooks/s3cr3t-path?token=t0ken#frag"
    with pytest.raises(ForbiddenDestination) as refused:
        check_url_host(url, allow_loopback=False)
    message = str(refused.value)
    assert message == (
        "url: 10.0.0.5 is a private address: webhooks are not delivered into private networks"
    )
    for secret in ("alice", "hunter2", "s3cr3t-path", "t0ken", "frag", "8443"):
        assert secret not in message


def test_refusal_is_a_value_error_for_the_422_handler() -> None:
    with pytest.raises(ValueError, match="^url: "):
        check_url_host("https://192.168.0.10/x", allow_loopback=False)


class FakeResolver:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers[host]


def test_name_resolving_to_a_public_address_is_returned_for_pinning() -> None:
    resolve = FakeResolver({"hooks.example.com": ["93.184.216.34", "2606:2800:220:1::1"]})
    addresses = resolve_checked("hooks.example.com", 8443, False, resolve)
    assert addresses == ["93.184.216.34", "2606:2800:220:1::1"]
    assert resolve.calls == [("hooks.example.com", 8443)]


def test_duplicate_answers_are_returned_once_in_order() -> None:
    resolve = FakeResolver({"h.example": ["93.184.216.34", "8.8.8.8", "93.184.216.34"]})
    assert resolve_checked("h.example", 443, False, resolve) == ["93.184.216.34", "8.8.8.8"]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.5", PRIVATE),
        ("169.254.169.254", METADATA),
        ("fd00:ec2::254", METADATA),
        ("::ffff:192.168.0.1", PRIVATE),
        ("127.0.0.1", LOOPBACK),
        ("fe80::1%eth0", ZONE),
        ("not-an-address", "an address that could not be read"),
    ],
)
def test_name_resolving_to_a_private_address_is_refused(address: str, reason: str) -> None:
    resolve = FakeResolver({"rebind.example.com": [address]})
    with pytest.raises(ForbiddenDestination) as refused:
        resolve_checked("rebind.example.com", 443, False, resolve)
    assert refused.value.reason == reason
    assert refused.value.address == address
    assert str(refused.value) == (
        f"url: rebind.example.com resolves to {address}, {reason}: "
        "webhooks are not delivered into private networks"
    )


@pytest.mark.parametrize("answers", [["93.184.216.34", "10.0.0.5"], ["10.0.0.5", "93.184.216.34"]])
def test_name_resolving_to_public_and_private_is_refused(answers: list[str]) -> None:
    resolve = FakeResolver({"mixed.example.com": answers})
    with pytest.raises(ForbiddenDestination) as refused:
        resolve_checked("mixed.example.com", 443, False, resolve)
    assert refused.value.address == "10.0.0.5"


def test_name_resolving_to_nothing_is_refused() -> None:
    resolve = FakeResolver({"empty.example.com": []})
    with pytest.raises(ForbiddenDestination, match="empty.example.com is a name with no address"):
        resolve_checked("empty.example.com", 443, False, resolve)


def test_unresolvable_name_is_a_distinct_retryable_failure() -> None:
    with pytest.raises(UnresolvableDestination) as failed:
        resolve_checked("gone.example.com", 443, False, FakeResolver({}))
    assert not isinstance(failed.value, ForbiddenDestination)
    assert failed.value.host == "gone.example.com"
    assert isinstance(failed.value.__cause__, socket.gaierror)


def test_loopback_resolution_only_where_the_stack_is_local() -> None:
    resolve = FakeResolver({"receiver.internal": ["127.0.0.1", "::1"]})
    assert resolve_checked("receiver.internal", 8080, True, resolve) == ["127.0.0.1", "::1"]
    with pytest.raises(ForbiddenDestination, match="a loopback address"):
        resolve_checked("receiver.internal", 8080, False, resolve)


@pytest.mark.parametrize(
    ("host", "reason"),
    [("10.0.0.5", PRIVATE), ("[fe80::1]", LINK_LOCAL), ("localhost", "a loopback name")],
)
def test_refused_host_is_not_even_resolved(host: str, reason: str) -> None:
    resolve = FakeResolver({})
    with pytest.raises(ForbiddenDestination) as refused:
        resolve_checked(host, 443, False, resolve)
    assert refused.value.reason == reason
    assert resolve.calls == []


def test_bracketed_literal_is_resolved_without_brackets() -> None:
    address = "2606:2800:220:1:248:1893:25c8:1946"
    resolve = FakeResolver({address: [address]})
    assert resolve_checked(f"[{address}]", 443, False, resolve) == [address]


def test_default_resolver_asks_for_stream_sockets_and_deduplicates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[tuple[Any, ...]] = []

    def getaddrinfo(*args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        asked.append((*args, kwargs))
        tcp = (socket.AF_INET, socket.SOCK_STREAM, 6, "")
        tcp6 = (socket.AF_INET6, socket.SOCK_STREAM, 6, "")
        return [
            (*tcp, ("93.184.216.34", 443)),
            (*tcp6, ("2606:2800:220:1::1", 443, 0, 0)),
            (*tcp, ("93.184.216.34", 443)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    addresses = resolve_checked("hooks.example.com", 443, allow_loopback=False)
    assert addresses == ["93.184.216.34", "2606:2800:220:1::1"]
    assert asked == [("hooks.example.com", 443, {"type": socket.SOCK_STREAM})]


def test_default_resolver_failure_is_unresolvable(monkeypatch: pytest.MonkeyPatch) -> None:
    def getaddrinfo(*args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(UnresolvableDestination, match="^url: hooks.example.com could not be"):
        resolve_checked("hooks.example.com", 443, allow_loopback=False)


def test_default_resolver_really_resolves_a_numeric_host() -> None:
    # Numeric, so no network is needed: this exercises the real socket.getaddrinfo call.
    assert resolve_checked("127.0.0.1", 8080, allow_loopback=True) == ["127.0.0.1"]
