"""Where a webhook may be delivered: never into a private network.

A subscriber chooses the URL, so without this check a subscription could point the platform's
HTTP client at the cloud metadata service, an internal admin API or anything else only reachable
from inside the VPC (server-side request forgery). The URL's host is checked when a subscription
is added (``check_url_host``), and again at delivery after resolving the name
(``resolve_checked``), because a name that resolved to a public address yesterday can resolve to
a private one today (DNS rebinding).

The rule is deliberately blunt: only globally reachable addresses are allowed. The reason names
the most specific class so the subscriber can see what was wrong; the messages name the host
only, never the URL's path or query string, which often carry tokens.
"""

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

type Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_WHY = "webhooks are not delivered into private networks"

# Link-local or private on their own, but named apart: they are the prize of an SSRF (instance
# credentials), and "metadata" tells whoever reads the refusal exactly what was attempted.
_METADATA: frozenset[Address] = frozenset(
    {
        ipaddress.IPv4Address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
        ipaddress.IPv6Address("fd00:ec2::254"),  # AWS IMDS over IPv6
        ipaddress.IPv4Address("100.100.100.200"),  # Alibaba Cloud
    }
)
_PRIVATE_V4 = tuple(
    ipaddress.IPv4Network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
# ipaddress calls these global, but nothing public may live there.
_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")  # deprecated, still routed inside some sites
_DOCUMENTATION_V6 = ipaddress.IPv6Network("3fff::/20")  # RFC 9637, newer than ipaddress' table
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")

# First match wins, so the more specific classes come first (the metadata addresses are also
# link-local, unique-local or shared).
_CLASSES: tuple[tuple[Callable[[Address], bool], str], ...] = (
    (lambda a: a in _METADATA, "a cloud metadata address"),
    (lambda a: a.is_unspecified, "an unspecified address"),
    (lambda a: a.is_link_local, "a link-local address"),
    (lambda a: a.is_multicast, "a multicast address"),
    (lambda a: any(a in net for net in _PRIVATE_V4), "a private address"),
    (lambda a: a in _SHARED, "a shared (carrier-grade NAT) address"),
    (lambda a: a in _UNIQUE_LOCAL, "a unique-local address"),
    (lambda a: a in _SITE_LOCAL, "a site-local address"),
    (lambda a: a == ipaddress.IPv4Address("255.255.255.255"), "a broadcast address"),
    (lambda a: a in _DOCUMENTATION_V6, "a reserved address"),
    (lambda a: not a.is_global, "a reserved address"),
)


class ForbiddenDestination(ValueError):
    """A webhook URL whose host must not be delivered to; the caller answers 422 on ``url``."""

    field = "url"

    def __init__(self, host: str, reason: str, address: str | None = None) -> None:
        self.host = host
        self.reason = reason
        self.address = address
        where = f"{host} is" if address is None else f"{host} resolves to {address},"
        super().__init__(f"url: {where} {reason}: {_WHY}")


class UnresolvableDestination(ValueError):
    """The host did not resolve: usually transient (DNS outage), so the delivery is retried."""

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(f"url: {host} could not be resolved")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address actually reaches, for the forms that carry one.

    Without this, ``::ffff:10.0.0.5`` or ``64:ff9b::a00:5`` would be judged as IPv6 (some of
    which ``ipaddress`` calls global) while the packets end up at 10.0.0.5.
    """
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _IPV4_TRANSLATED:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 1:  # IPv4-compatible; :: and ::1 are not
        return ipaddress.IPv4Address(int(address))
    return None


def _unwrapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return embedded
    return address


def address_refusal(address: Address, allow_loopback: bool) -> str | None:
    """Why ``address`` must not be delivered to, or None if it is globally reachable."""
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        # A zone pins the packet to one of our interfaces: only meaningful on a local link.
        return "an address with a zone id"
    address = _unwrapped(address)
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    return next((reason for test, reason in _CLASSES if test(address)), None)


def _ip_literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        # The resolver also reads the legacy forms (127.1, 0x7f000001, 2130706433, 0177.0.0.1)
        # as IPv4 addresses, so they are literals here too, not names to check later.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def _is_localhost(name: str) -> bool:
    name = name.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def _bare(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def host_refusal(host: str, allow_loopback: bool) -> str | None:
    """Why a URL's host is refused before resolving it, or None.

    Names other than localhost pass: what they resolve to is checked at delivery, when it
    matters, by ``resolve_checked``.
    """
    host = _bare(host)
    if "%" in host:
        return "an address with a zone id"
    literal = _ip_literal(host)
    if literal is not None:
        return address_refusal(literal, allow_loopback)
    if _is_localhost(host) and not allow_loopback:
        return "a loopback name"
    return None


def check_url_host(url: str, allow_loopback: bool) -> None:
    """Refuse a subscription URL whose host is an address outside the public internet."""
    host = urlsplit(url).hostname
    if not host:
        raise ValueError("url: must name a host")
    reason = host_refusal(host, allow_loopback)
    if reason is not None:
        raise ForbiddenDestination(host, reason)


def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # Repeats (an address per protocol) are dropped by resolve_checked, for any resolver.
    return [str(info[4][0]) for info in infos]


def _resolved_refusal(text: str, allow_loopback: bool) -> str | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return "an address that could not be read"  # fail closed on anything unexpected
    return address_refusal(address, allow_loopback)


def resolve_checked(
    host: str,
    port: int,
    allow_loopback: bool,
    resolve: Callable[[str, int], list[str]] = _getaddrinfo,
) -> list[str]:
    """The addresses ``host`` resolves to, all of them allowed; raises if any one is refused.

    The caller must connect to one of the returned addresses (sending the name as Host and TLS
    server name) instead of letting its HTTP client resolve the name again: a second lookup
    can be answered differently (a short TTL flipping to 10.0.0.5), and the check would have
    been made on an address that is never connected to.
    """
    reason = host_refusal(host, allow_loopback)
    if reason is not None:
        raise ForbiddenDestination(host, reason)
    try:
        addresses = list(dict.fromkeys(resolve(_bare(host), port)))
    except socket.gaierror as error:
        raise UnresolvableDestination(host) from error
    if not addresses:
        raise ForbiddenDestination(host, "a name with no address")
    # Every address, not just the first: a name answering one public and one private address
    # would otherwise reach the private one whenever the client picks it.
    for address in addresses:
        reason = _resolved_refusal(address, allow_loopback)
        if reason is not None:
            raise ForbiddenDestination(host, reason, address)
    return addresses
