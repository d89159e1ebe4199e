"""Base URLs of a set of replicas: a list written out, or a `dns://HOST:PORT` name whose address records are the
replicas (a Kubernetes headless Service), resolved again whenever asked so that replicas added or removed are
followed. The system resolver by default (/etc/hosts, the cluster's DNS); given name servers, those alone."""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

DNS_SCHEME = "dns://"


def is_dns_name(spec: str) -> bool:
    return spec.startswith(DNS_SCHEME)


def split_dns(spec: str) -> tuple[str, int]:
    """('HOST', PORT) of 'dns://HOST:PORT'. Raises ValueError naming what is wrong."""
    parts = urlsplit(spec)
    if parts.scheme != "dns" or not parts.hostname or parts.port is None:
        raise ValueError(f"{spec!r}: expected dns://HOST:PORT")
    return parts.hostname, parts.port


async def resolve(spec: str, nameservers: tuple[str, ...] = (), scheme: str = "http") -> list[str]:
    """The base URLs `spec` stands for, sorted: itself for a plain URL, one per address for a DNS name.
    `nameservers` ('IP' or 'IP:PORT'): ask these DNS servers instead of the system resolver."""
    if not is_dns_name(spec):
        return [spec.rstrip("/")]
    host, port = split_dns(spec)
    addresses = await (_ask_servers(host, nameservers) if nameservers else _ask_system(host, port))
    return sorted(f"{scheme}://[{a}]:{port}" if ":" in a else f"{scheme}://{a}:{port}" for a in set(addresses))


async def resolve_all(specs: list[str], nameservers: tuple[str, ...] = ()) -> list[str]:
    urls = []
    for spec in specs:
        urls += await resolve(spec, nameservers)
    return list(dict.fromkeys(urls))


async def _ask_system(host: str, port: int) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []  # no records (yet): no replicas
    return [info[4][0] for info in infos]


async def _ask_servers(host: str, nameservers: tuple[str, ...]) -> list[str]:
    import dns.asyncresolver
    import dns.exception
    import dns.resolver

    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [server.rsplit(":", 1)[0] if server.count(":") == 1 else server for server in nameservers]
    ports = {int(server.rsplit(":", 1)[1]) for server in nameservers if server.count(":") == 1}
    if ports:
        resolver.port = ports.pop()
    addresses = []
    for record in ("A", "AAAA"):
        try:
            answer = await resolver.resolve(host, record, lifetime=3.0)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers, dns.exception.Timeout):
            continue
        addresses += [item.to_text() for item in answer]
    return addresses
