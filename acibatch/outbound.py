"""The one guard for outbound HTTP a tenant can aim (a job's notifyUrl; later resource file URLs).

A tenant-chosen URL must reach the public internet, never this app's own host, the Azure platform endpoints of
the machine it runs on (IMDS, the wire server, the App Service identity endpoint), or a private network the app can
reach. Two layers:

- `check_url` (at submit and again before sending): the scheme (https, or http when the operator allows it), no
  userinfo, a sane length and host, and a literal IP in any spelling (IPv6, and the decimal, octal, hex and
  shortened forms `inet_aton` accepts: `2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`) or a `localhost` name is
  refused when it names an internal address.
- `acibatch.outbound_post.post` (at send time): resolves the host, refuses when ANY resolved address is
  internal, then connects to exactly a checked address, never follows redirects, and reads little of the answer.

`OutboundPolicy.allow` names exceptions (CIDRs, addresses, host names, each optionally with a port) for an
operator's own receivers, e.g. the local stack's test receiver on one loopback port. The IMDS and wire server
addresses are refused even when an exception covers them: no webhook lives there.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

MAX_URL_CHARS = 2048
MAX_HOST_CHARS = 253

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Names that resolve to the machine itself without DNS (RFC 6761 reserves *.localhost for loopback).
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_HOST_RULE = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$")
_NUMERIC_LABEL = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)$")
# Space, control characters and backslash: URL parsers disagree about them, so none is accepted.
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


class Scheme(StrEnum):
    HTTP = "http"
    HTTPS = "https"


class OutboundRefused(Exception):
    """The URL or its destination is not allowed; the message says why and what to use instead."""


class OutboundFailed(Exception):
    """The destination was allowed but the request did not succeed (network error, timeout, bad answer)."""


@dataclass(frozen=True)
class AllowRule:
    """One exception: a network or a host name, on one port or (port None) any port."""

    network: IPNetwork | None = None
    host: str | None = None
    port: int | None = None

    def covers_address(self, address: IPAddress, port: int) -> bool:
        return self.network is not None and address in self.network and self.port in {None, port}

    def covers_host(self, host: str, port: int) -> bool:
        return self.host is not None and self.host == host and self.port in {None, port}


@dataclass(frozen=True)
class OutboundPolicy:
    """What a tenant-aimed request may reach. The default: https to public addresses only."""

    allow_http: bool = False
    allow: tuple[AllowRule, ...] = ()

    def schemes(self) -> frozenset[str]:
        return frozenset({Scheme.HTTPS, Scheme.HTTP}) if self.allow_http else frozenset({Scheme.HTTPS})


@dataclass(frozen=True)
class Target:
    """A checked URL: the parts the request is built from (one parse, so check and use cannot disagree)."""

    scheme: Scheme
    host: str  # ASCII (IDNA), lowercase, no trailing dot; an IPv6 literal without brackets
    port: int
    target: str  # path and query, as sent on the request line
    literal: IPAddress | None  # set when the host is an IP address in any spelling
    written: str  # the host as the URL spells it, for messages

    @property
    def where(self) -> str:
        """The host and port for messages: never the path or query, which may hold a receiver's secret."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class AddressKind(StrEnum):
    """Why an address is refused, as said in messages."""

    IMDS = "the Azure Instance Metadata Service address"
    WIRE_SERVER = "the Azure platform wire server address"
    UNSPECIFIED = "an unspecified ('this host') address"
    LOOPBACK = "a loopback address"
    PRIVATE = "a private (RFC 1918) address"
    SHARED = "a carrier-grade NAT (RFC 6598) address"
    LINK_LOCAL = "a link-local address"
    UNIQUE_LOCAL = "a unique local IPv6 (fc00::/7) address"
    SITE_LOCAL = "a deprecated site-local IPv6 address"
    MULTICAST = "a multicast address"
    BROADCAST = "the broadcast address"
    RESERVED = "a reserved or special-purpose address"
    DOCUMENTATION = "a documentation-only address"
    TUNNEL = "an IPv6 transition-tunnel (6to4, Teredo, IPv4-compatible) address"
    LOCAL_NAT64 = "a local-use NAT64 (RFC 8215) address"
    NOT_GLOBAL = "not a globally routable address"


# Refused even when an allow-list exception covers them.
_NEVER: tuple[tuple[IPNetwork, AddressKind], ...] = (
    (ipaddress.ip_network("169.254.169.254/32"), AddressKind.IMDS),
    (ipaddress.ip_network("168.63.129.16/32"), AddressKind.WIRE_SERVER),
)
# Specific entries first: the first match names the reason.
_INTERNAL: tuple[tuple[IPNetwork, AddressKind], ...] = tuple(
    (ipaddress.ip_network(cidr), kind)
    for cidr, kind in (
        ("0.0.0.0/8", AddressKind.UNSPECIFIED),
        ("10.0.0.0/8", AddressKind.PRIVATE),
        ("172.16.0.0/12", AddressKind.PRIVATE),
        ("192.168.0.0/16", AddressKind.PRIVATE),
        ("100.64.0.0/10", AddressKind.SHARED),
        ("127.0.0.0/8", AddressKind.LOOPBACK),
        ("169.254.0.0/16", AddressKind.LINK_LOCAL),
        ("192.0.0.0/24", AddressKind.RESERVED),
        ("192.0.2.0/24", AddressKind.DOCUMENTATION),
        ("198.51.100.0/24", AddressKind.DOCUMENTATION),
        ("203.0.113.0/24", AddressKind.DOCUMENTATION),
        ("192.88.99.0/24", AddressKind.TUNNEL),
        ("198.18.0.0/15", AddressKind.RESERVED),
        ("224.0.0.0/4", AddressKind.MULTICAST),
        ("255.255.255.255/32", AddressKind.BROADCAST),
        ("240.0.0.0/4", AddressKind.RESERVED),
        ("::/128", AddressKind.UNSPECIFIED),
        ("::1/128", AddressKind.LOOPBACK),
        ("::/96", AddressKind.TUNNEL),  # IPv4-compatible (deprecated by RFC 4291)
        ("64:ff9b:1::/48", AddressKind.LOCAL_NAT64),
        ("100::/64", AddressKind.RESERVED),  # discard-only
        ("2001::/32", AddressKind.TUNNEL),  # Teredo
        ("2001:db8::/32", AddressKind.DOCUMENTATION),
        ("3fff::/20", AddressKind.DOCUMENTATION),  # RFC 9637; newer than some Pythons' registries
        ("2001::/23", AddressKind.RESERVED),
        ("2002::/16", AddressKind.TUNNEL),  # 6to4
        ("fc00::/7", AddressKind.UNIQUE_LOCAL),
        ("fe80::/10", AddressKind.LINK_LOCAL),
        ("fec0::/10", AddressKind.SITE_LOCAL),
        ("ff00::/8", AddressKind.MULTICAST),
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")


def effective_address(address: IPAddress) -> IPAddress:
    """The IPv4 address a mapped (::ffff:a.b.c.d) or well-known NAT64 (64:ff9b::a.b.c.d) address reaches."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def address_kind(address: IPAddress) -> tuple[AddressKind | None, bool]:
    """(why `address` is internal or None when it is public, whether an allow-list exception may override it)."""
    reached = effective_address(address)
    for network, kind in _NEVER:
        if reached in network:
            return kind, False
    for network, kind in _INTERNAL:
        if reached in network:
            return kind, True
    if isinstance(reached, ipaddress.IPv6Address) and reached not in _GLOBAL_UNICAST_V6:
        return AddressKind.RESERVED, True
    # The standard library's registry as a second opinion, for anything the table above misses.
    if not reached.is_global or reached.is_multicast:
        return AddressKind.NOT_GLOBAL, True
    return None, True


def parse_ipv4_spelling(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address `host` spells in any form `inet_aton` (and so getaddrinfo) accepts, or None if it is a name.

    1 to 4 dot-separated numbers, each decimal, octal (leading 0) or hex (0x); the last fills the remaining bytes.
    A host whose last label is numeric but that is no valid address raises ValueError (it is no usable name either).
    """
    labels = host.split(".")
    if labels and labels[-1] == "" and len(labels) > 1:
        labels = labels[:-1]
    if not labels or not _NUMERIC_LABEL.match(labels[-1]):
        return None
    if len(labels) > 4 or not all(_NUMERIC_LABEL.match(label) for label in labels):
        raise ValueError(f"'{host}' ends in a number but is not an IPv4 address")
    numbers: list[int] = []
    for label in labels:
        if label[:2].lower() == "0x":
            numbers.append(int(label[2:] or "0", 16))
        elif len(label) > 1 and label.startswith("0"):
            if not set(label) <= set("01234567"):
                raise ValueError(f"'{host}' has an invalid octal number '{label}'")
            numbers.append(int(label, 8))
        else:
            numbers.append(int(label))
    *leading, last = numbers
    if any(number > 255 for number in leading) or last >= 256 ** (5 - len(numbers)):
        raise ValueError(f"'{host}' is out of range for an IPv4 address")
    value = last
    for position, number in enumerate(leading):
        value |= number << (8 * (3 - position))
    return ipaddress.IPv4Address(value)


def parse_allow_list(text: str) -> tuple[AllowRule, ...]:
    """Entries separated by commas or whitespace: `CIDR`, `ADDRESS`, `HOST`, each optionally `:PORT`
    (`[IPv6]:PORT` for an IPv6 address with a port). Raises ValueError naming the first bad entry."""
    rules: list[AllowRule] = []
    for entry in re.split(r"[,\s]+", text.strip()):
        if not entry:
            continue
        rules.append(_allow_rule(entry))
    return tuple(rules)


def _allow_rule(entry: str) -> AllowRule:
    bad = f"'{entry}' is not a CIDR, an IP address or a host name, with an optional :port (e.g. 127.0.0.1:8099)"
    name, port = entry, None
    match = re.fullmatch(r"\[([^\]]+)\](?::([0-9]+))?(/[0-9]+)?", entry)
    if match:  # [IPv6] or [IPv6]:port or [IPv6]/len
        name = match.group(1) + (match.group(3) or "")
        port = match.group(2)
    elif entry.count(":") == 1:
        name, port = entry.split(":")
    number = None
    if port is not None:
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{bad}: the port must be 1-65535")
        number = int(port)
    try:
        return AllowRule(network=ipaddress.ip_network(name, strict=False), port=number)
    except ValueError:
        pass
    host = name.lower().rstrip(".")
    # A numeric host (127.1, 0x7f.1) is an address in disguise: exceptions for addresses are written as CIDRs.
    if not _HOST_RULE.match(host) or _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
        raise ValueError(bad)
    return AllowRule(host=host, port=number)


def check_url(url: object, policy: OutboundPolicy) -> Target:
    """Everything that can be refused without DNS. Raises OutboundRefused saying what to fix."""
    schemes = " or ".join(sorted(policy.schemes()))
    if not isinstance(url, str) or not url:
        raise OutboundRefused(f"must be an absolute {schemes} URL")
    if len(url) > MAX_URL_CHARS:
        raise OutboundRefused(f"must be at most {MAX_URL_CHARS} characters")
    if _UNSAFE_CHARS.search(url):
        raise OutboundRefused("must not contain spaces, control characters or backslashes (percent-encode them)")
    try:
        parts = urlsplit(url)
    except ValueError:  # urlsplit refuses an unbalanced '[' or ']' in the host ("https://[::1")
        raise OutboundRefused("has an invalid host: an IPv6 address goes in matching brackets") from None
    scheme = parts.scheme.lower()
    if scheme not in policy.schemes():
        hint = "" if policy.allow_http else " (plain http is not allowed)"
        raise OutboundRefused(f"must be an absolute {schemes} URL{hint}, e.g. https://hooks.example.com/acibatch")
    if not (parts.path + parts.query).isascii():
        raise OutboundRefused("must percent-encode non-ASCII characters in its path and query")
    if "@" in parts.netloc:
        raise OutboundRefused("must not contain a user name or password; put credentials in the path or query")
    try:
        port = parts.port
    except ValueError:
        raise OutboundRefused("has an invalid port: use a number from 1 to 65535") from None
    if port == 0:
        raise OutboundRefused("has an invalid port: use a number from 1 to 65535")
    scheme_enum = Scheme(scheme)
    port = port or (443 if scheme_enum is Scheme.HTTPS else 80)
    host, literal = _host(parts.netloc, parts.hostname)
    target = Target(
        scheme=scheme_enum,
        host=host,
        port=port,
        target=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
        literal=literal,
        written=parts.hostname or host,
    )
    if literal is not None:
        _refuse_internal(literal, target, policy, literal_host=True)
    elif (host in LOCAL_NAMES or host.endswith(".localhost")) and not _host_allowed(target, policy):
        raise OutboundRefused(f"names {host}, this machine itself, which tenants may not reach; use a public host name")
    return target


def _host(netloc: str, hostname: str | None) -> tuple[str, IPAddress | None]:
    if not hostname:
        raise OutboundRefused("must name a host, e.g. https://hooks.example.com/acibatch")
    if "[" in netloc:
        try:
            address = ipaddress.IPv6Address(hostname)
        except ValueError:
            raise OutboundRefused(f"has an invalid IPv6 address '[{hostname}]'") from None
        if address.scope_id:
            raise OutboundRefused("must not use an IPv6 zone id (it names a local interface)")
        return str(address), address
    try:
        # IDNA also folds full-width digits and ideographic dots, so full-width '127.0.0.1'
        # (U+FF11 U+FF12 U+FF17 with U+3002 dots) is checked as 127.0.0.1.
        ascii_host = hostname.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise OutboundRefused(f"has an invalid host name '{hostname}'") from None
    ascii_host = ascii_host[:-1] if ascii_host.endswith(".") else ascii_host
    try:
        ipv4 = parse_ipv4_spelling(ascii_host)
    except ValueError as error:
        raise OutboundRefused(f"has an invalid host: {error}") from None
    if ipv4 is not None:
        return str(ipv4), ipv4
    if len(ascii_host) > MAX_HOST_CHARS or not _HOST_RULE.match(ascii_host):
        raise OutboundRefused(f"has an invalid host name '{hostname}'")
    return ascii_host, None


def _host_allowed(target: Target, policy: OutboundPolicy) -> bool:
    return any(rule.covers_host(target.host, target.port) for rule in policy.allow)


def _refuse_internal(address: IPAddress, target: Target, policy: OutboundPolicy, *, literal_host: bool) -> None:
    kind, may_allow = address_kind(address)
    if kind is None:
        return
    reached = effective_address(address)
    if may_allow and (
        _host_allowed(target, policy) or any(rule.covers_address(reached, target.port) for rule in policy.allow)
    ):
        return
    if literal_host:
        # Name the address an odd spelling (2130706433, 0x7f.1, ::ffff:7f00:1) stands for.
        spelled = f"is {kind}" if target.written == str(reached) else f"is {reached}, {kind}"
        raise OutboundRefused(f"host {target.written} {spelled}, which tenants may not reach; use a public host name")
    spelled = f"{address}" if address == reached else f"{address} ({reached})"
    raise OutboundRefused(
        f"host {target.host} resolves to {spelled}, {kind}, which tenants may not reach; "
        "use a host name that resolves only to public addresses"
    )


def resolve(target: Target, policy: OutboundPolicy) -> list[IPAddress]:
    """Every address the host resolves to, each checked; refuses when ANY one is internal."""
    if target.literal is not None:
        _refuse_internal(target.literal, target, policy, literal_host=True)
        return [target.literal]
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as error:
        raise OutboundFailed(f"could not resolve host {target.host}: {error}") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]))
        _refuse_internal(address, target, policy, literal_host=False)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise OutboundFailed(f"host {target.host} has no address")
    return addresses
