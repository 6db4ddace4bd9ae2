"""Where webhooks may go: never to link-local or cloud-metadata addresses unless allowed by name.

A rules file is an easy place to plant ``http://169.254.169.254/latest/meta-data/...``: the
monitor would then POST alerts (and fetch nothing back, but a metadata service may still act
on a request) from inside a cloud network. URLs are checked twice: their host when the rules
are loaded (literal addresses and well-known metadata names), and every address the host
resolves to just before each delivery (a name may point anywhere, and may change). Hosts
passed to ``--allow-webhook-host`` skip both checks.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection
from urllib.parse import urlsplit

from mmemo.errors import UserError

#: Names that cloud providers answer with instance metadata.
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                            "instance-data.ec2.internal", "metadata.azure.internal"})
#: Metadata services on addresses that are not link-local (AWS IPv6, Alibaba, Oracle's v2 alias).
METADATA_ADDRESSES = frozenset({ipaddress.ip_address(a) for a in
                                ("fd00:ec2::254", "100.100.100.200", "192.0.0.192")})


class DestinationError(UserError, ValueError):
    """A webhook URL pointing somewhere the monitor refuses to send to."""


def host_of(url: str) -> str:
    host = urlsplit(url).hostname
    if not host:
        raise DestinationError(f"{url!r} has no host")
    return host.rstrip(".").lower()


def forbidden_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address is refused, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "a cloud metadata service address"
    if address.is_link_local:
        return "link-local (169.254.0.0/16, fe80::/10: cloud metadata services live there)"
    if address.is_multicast or address.is_unspecified or (address.is_reserved and not address.is_loopback):
        return "not a unicast host address"
    return None


def check_url(url: str, allowed_hosts: Collection[str] = ()) -> None:
    """Refuse a URL whose host is a metadata name or a forbidden literal address."""
    host = host_of(url)
    if host in {h.lower() for h in allowed_hosts}:
        return
    if host in METADATA_HOSTS:
        raise DestinationError(f"{url!r} points at a cloud metadata service ({host}); "
                               f"pass --allow-webhook-host {host} if this is really meant")
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return  # a name: its addresses are checked before each delivery
    reason = forbidden_address(address)
    if reason:
        raise DestinationError(f"{url!r} points at {host}, which is {reason}; "
                               f"pass --allow-webhook-host {host} if this is really meant")


def check_resolved(url: str, allowed_hosts: Collection[str] = ()) -> None:
    """Resolve the URL's host now and refuse it if any address is forbidden (DNS can point anywhere)."""
    check_url(url, allowed_hosts)
    host = host_of(url)
    if host in {h.lower() for h in allowed_hosts}:
        return
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return  # unresolvable: the delivery fails with the transport's own error
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        reason = forbidden_address(address)
        if reason:
            raise DestinationError(f"{url!r}: {host} resolves to {address}, which is {reason}")
