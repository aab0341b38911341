"""Where a scenario's checks are sent: the contract between the Runner and the providers.

A *target* deploys a scenario somewhere and gives addresses to send its requests to:

- ``cluster``  (``sandbox.targets.cluster``): apply the manifests into a fresh namespace of the
  sandbox's k3d cluster (or a named kubeconfig context), wait for the Gateway and routes, and
  port-forward the Gateway's data-plane Service;
- ``local``    (``sandbox.targets.local.target``): the reference gateway of ``sandbox.reference`` served
  on loopback with echo backends standing in for the pods;
- ``address``  (``sandbox.targets.address``): a gateway someone already runs at HOST:PORT; no
  deployment at all.

The Runner only ever calls ``deploy`` and the methods of what it yields.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from sandbox.errors import SandboxError, TargetUnreachable
from sandbox.infra.kube import Kubectl
from sandbox.probe.types import Address, Refusals
from sandbox.scenario.model import Scenario


class DeployedScenario(Protocol):
    """A scenario deployed and reachable. Valid only inside ``Target.deploy``'s context."""

    namespace: str  # the run's namespace ("" when the target has none)
    settled: bool  # its answers never change (the local reference gateway): see probe.prober

    def address(self, gateway: str, port: int) -> Address:
        """Local address that reaches listener ``port`` of Gateway ``gateway`` (logical name)."""
        ...

    def namespace_of(self, logical: str) -> str:
        """The real namespace that a logical namespace of the scenario was deployed to."""
        ...

    def diagnostics(self) -> str:
        """Text for a failure report: Gateway and route conditions, controller log tail."""
        ...

    def unreachable(self, refusals: Refusals) -> TargetUnreachable | None:
        """Asked after each refused request of a check: the environment error that ends it
        (nothing will ever listen there), or None to go on converging."""
        ...


class Target(Protocol):
    name: str  # "k3d", "existing", "local", "address": shown in reports
    deploys: bool  # False: nothing is deployed or cleaned up (the address target)
    keep: bool  # leave what a deploy made for inspection (``--keep``) instead of removing it

    @property
    def kubectl(self) -> Kubectl | None:
        """kubectl of the cluster it deploys to (None: no cluster, e.g. local, address)."""
        ...

    def deploy(self, scenario: Scenario) -> AbstractContextManager[DeployedScenario]:
        """Deploy, wait until ready, yield; on exit clean up (raising if cleanup failed)."""
        ...

    def finish(self) -> dict[str, SandboxError]:
        """After the last deploy: see through the cleanups left running (a cluster target's
        deferred namespace deletions). The runs whose cleanup failed, by run namespace."""
        ...
