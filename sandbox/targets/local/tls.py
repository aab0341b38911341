"""TLS for the local reference gateway: a self-signed certificate per listener host set, and the server context choosing one by SNI."""

from __future__ import annotations

import ssl
from pathlib import Path

from sandbox.infra.certs import self_signed
from sandbox.reference.model import ListenerInfo
from sandbox.scenario.model import Scenario


def _tls_entries(scenario: Scenario) -> list[tuple[str, list[str]]]:
    """("ns/name" of the Secret, hosts) of the scenario's ``tls:`` entries."""
    return [(f"{t.namespace or 'default'}/{t.secret}", list(t.hosts)) for t in scenario.tls]


def _self_signed(hosts: list[str], directory: Path, stem: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``hosts``, as (cert file, key file) in ``directory``."""
    cert, key = self_signed(hosts)
    cert_file, key_file = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_file.write_bytes(cert)
    key_file.write_bytes(key)
    key_file.chmod(0o600)
    return cert_file, key_file


def hostname_matches(pattern: str | None, host: str) -> bool:
    """Listener hostname match: exact, or ``*.x`` matching any name with at least one more label."""
    if not pattern:
        return True
    host = host.lower().rstrip(".")
    pattern = pattern.lower()
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def _tls_context(
    listeners: list[ListenerInfo],
    scenario: Scenario,
    directory: Path,
    alpn: list[str],
) -> ssl.SSLContext:
    """One server context per certificate; SNI picks the listener (exact hostname, then the
    longest wildcard, then one without hostname) and so its certificate."""
    entries = _tls_entries(scenario)

    def hosts_for(listener: ListenerInfo) -> list[str]:
        for ref in listener.tls_secrets:
            secret = ref if "/" in ref else f"default/{ref}"
            for name, hosts in entries:
                if name == secret and hosts:
                    return hosts
        return [listener.hostname] if listener.hostname else ["localhost"]

    contexts: list[tuple[ListenerInfo, ssl.SSLContext]] = []
    by_hosts: dict[tuple[str, ...], ssl.SSLContext] = {}
    for i, listener in enumerate(listeners):
        hosts = hosts_for(listener)
        ctx = by_hosts.get(tuple(hosts))
        if ctx is None:
            cert, key = _self_signed(hosts, directory, f"{i}-{listener.name}")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            ctx.set_alpn_protocols(alpn)
            by_hosts[tuple(hosts)] = ctx
        contexts.append((listener, ctx))

    def rank(listener: ListenerInfo) -> tuple[int, int]:
        h = listener.hostname or ""
        return (2, 0) if h and not h.startswith("*") else (1, len(h)) if h else (0, 0)

    def pick(server_name: str | None) -> ssl.SSLContext:
        candidates = [
            (rank(lst), ctx)
            for lst, ctx in contexts
            if server_name is None or hostname_matches(lst.hostname, server_name)
        ]
        if not candidates:
            return contexts[0][1]
        return max(candidates, key=lambda c: c[0])[1]

    default = contexts[0][1]

    def sni(
        sock: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        chosen = pick(server_name)
        if chosen is not default:
            sock.context = chosen

    default.sni_callback = sni
    return default
