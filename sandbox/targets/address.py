"""Target ``address``: a gateway someone already runs at HOST:PORT (``sandbox run --address``).

No cluster actions at all: nothing is deployed or cleaned up, every Gateway and listener port of
the scenario maps to that one address, and namespaces are taken as written.

Nothing restarts behind an address someone gave: a check whose every request is refused for
``REFUSED_ATTEMPTS`` requests over ``REFUSED_SECONDS`` (or until its own timeout, when that is
shorter) ends the run with :class:`~sandbox.errors.TargetUnreachable` (exit 3), "nothing listens
at HOST:PORT". A gateway that answered once and then refuses (restarting) is still waited for.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager

from sandbox.errors import InputError, SandboxError, TargetUnreachable
from sandbox.infra.kube import Kubectl
from sandbox.probe.types import Address, Refusals
from sandbox.scenario.model import Scenario

REFUSED_ATTEMPTS = 3  # refused requests in a row, from a check's first one
REFUSED_SECONDS = 2.0  # over at least this long


def parse_address(text: str) -> Address:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) -> Address; InputError naming ``--address``."""
    if "://" in text:
        rest = text.split("://", 1)[1].split("/", 1)[0]
        raise InputError(
            f"expected HOST:PORT, not a URL: {text!r}",
            field="--address",
            hint=f"--address {rest or '127.0.0.1:8080'} (each check says its "
            "scheme with request.scheme)",
        )
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text:
        raise InputError(
            f"expected HOST:PORT, got {text!r}",
            field="--address",
            hint="for example --address 127.0.0.1:8080",
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InputError(f"not an IPv6 address: {host!r}", field="--address") from None
    elif ":" in host:
        raise InputError(
            f"write an IPv6 address in brackets: [{host}]:{port_text}", field="--address"
        )
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InputError(f"port must be 1-65535, got {port_text!r}", field="--address")
    return Address(host, int(port_text))


def show(address: Address) -> str:
    """``HOST:PORT``, an IPv6 host in brackets."""
    host = address.host
    return f"[{host}]:{address.port}" if ":" in host else f"{host}:{address.port}"


class AddressDeployment:
    """Every Gateway and port of the scenario is the one address."""

    def __init__(self, address: Address) -> None:
        self._address = address
        self.namespace = ""
        self.settled = False

    def address(self, gateway: str, port: int) -> Address:
        return self._address

    def unreachable(self, refusals: Refusals) -> TargetUnreachable | None:
        """Every request of a check refused, ``REFUSED_ATTEMPTS`` over ``REFUSED_SECONDS``
        (or the check's time is up): nothing listens there, and nothing here will start it.
        A gateway that answered earlier in the check and now refuses is waited for."""
        r = refusals
        if r.answered or (
            not r.final and (r.count < REFUSED_ATTEMPTS or r.seconds < REFUSED_SECONDS)
        ):
            return None
        where = show(r.address)
        return TargetUnreachable(
            f"nothing listens at {where}: every request was refused ({r.count} in "
            f"{r.seconds:.1f}s)",
            hint=f"start the gateway you mean to test so that it listens at {where} (for a "
            f"plain echo backend: `sandbox echo --port {r.address.port}`), or give "
            "--address the HOST:PORT it listens on",
        )

    def namespace_of(self, logical: str) -> str:
        return logical

    def diagnostics(self) -> str:
        return (
            f"target {show(self._address)} was given with --address: "
            "the sandbox deployed nothing there and has no Gateway status or logs to show"
        )


class AddressTarget:
    name = "address"
    deploys = False  # nothing to deploy or clean up: the Runner says nothing about it
    keep = False  # nothing to keep
    kubectl: Kubectl | None = None  # no cluster

    def __init__(self, address: Address) -> None:
        self.address = address

    def finish(self) -> dict[str, SandboxError]:
        """Nothing is left running after a deploy here."""
        return {}

    @contextmanager
    def deploy(self, scenario: Scenario) -> Iterator[AddressDeployment]:
        yield AddressDeployment(self.address)
