"""The session's state (stashed on the pytest config): which scenario.yaml files are collected,
the provider, feature support, and the target, built once per process.

Light at import, on purpose: this module is loaded by every pytest run where the package is
installed. What is heavy (the target factory and all it stands on, the Docker SDK, the report
writer) is imported where it is first needed, inside the method that needs it, so that a pytest
run that collects no scenario never loads the library. Those are the only function-level
imports of the plugin; none of them dodges a cycle (``.importlinter`` keeps the layers).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sandbox.errors import InputError, SandboxError
from sandbox.scenario import features as F
from sandbox.settings import DEFAULT_GATEWAY_CLASS, choose_provider

if TYPE_CHECKING:
    from sandbox.targets import Target

SCENARIO_FILE = "scenario.yaml"
FEATURES_PROPERTY = "gateway_api_features"  # item.user_properties: features the check needs

UNSUPPORTED_PROPERTY = "gateway_api_unsupported"  # features it needs that are not supported

BUNDLE_PROPERTY = "gateway_api_bundle"  # "<bundle-version>/<channel>" of the cluster's CRDs

_STATE = pytest.StashKey["SandboxState"]()


PROJECT_NAME = re.compile(r"""^name\s*=\s*["']gateway-sandbox["']\s*$""", re.MULTILINE)


@functools.lru_cache(maxsize=64)
def sandbox_project(folder: Path) -> Path | None:
    """The gateway-sandbox project (its clone) holding ``folder``: the nearest folder upwards
    with a pyproject.toml, when that one names the project ``gateway-sandbox``."""
    for candidate in (folder, *folder.parents):
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file():
            try:
                text = pyproject.read_text(encoding="utf-8", errors="replace")
            except OSError:
                return None
            return candidate if PROJECT_NAME.search(text) else None
    return None


def _is_wanted(state: SandboxState, path: Path) -> bool:
    """A scenario.yaml is collected when it lies under a --sandbox-scenarios DIR, or under a
    path pytest collects (named on the command line, else testpaths, else the invocation
    folder), at any depth: ``pytest .`` in a folder of one's own scenarios runs them.

    Inside the gateway-sandbox project itself (its clone), today's narrower rule holds, so that
    ``pytest``, ``pytest .`` and ``pytest tests`` run the project's tests and never the
    scenario library or the broken scenarios kept as test data: there a path collects a
    scenario.yaml only when it is that file, its scenario folder or the folder holding that
    scenario folder (``pytest scenarios``), and never when it is the project root or above."""
    resolved = path.resolve()
    if any(root in resolved.parents for root in state.scenario_roots):
        return True
    project = sandbox_project(resolved.parent)
    for root in state.explicit:
        if root != resolved and root not in resolved.parents:
            continue
        if project is None:
            return True
        if root == project or root in project.parents:
            state.passed_over.append(resolved)
            continue
        if root in (resolved, resolved.parent, resolved.parent.parent):
            return True
        state.passed_over.append(resolved)
    return False


@dataclass
class SandboxState:
    config: pytest.Config
    scenario_roots: list[Path]
    explicit: list[Path]
    # every scenario.yaml given a collector, including those --lf then leaves uncollected
    scenario_files: list[Path] = field(default_factory=list)
    # scenario.yaml files under a collected path that the project rule left out (_is_wanted)
    passed_over: list[Path] = field(default_factory=list)
    _supported: frozenset[str] | None = None
    _unavailable: str | None = None  # why the provider cannot run, once known
    _probed: bool = False
    _target: Target | None = None
    _target_error: Exception | None = None
    _bundle: str | None = None

    @property
    def provider(self) -> str:
        try:
            return choose_provider(
                self.config.getoption("sandbox_provider"), self.config.getoption("sandbox_cluster")
            )
        except InputError as e:
            raise pytest.UsageError(str(e)) from None

    @property
    def keep(self) -> bool:
        return bool(self.config.getoption("sandbox_keep"))

    @property
    def compare_model(self) -> bool:
        """Whether passed checks are also held against the reference model (see CheckItem)."""
        if self.config.getoption("no_sandbox_compare"):
            return False
        if self.config.getoption("sandbox_compare"):
            return self.provider not in ("local", "address")
        default_class = self.config.getoption("sandbox_gateway_class") in (
            None,
            "",
            DEFAULT_GATEWAY_CLASS,
        )
        return self.provider in ("k3d", "kind") and default_class

    @property
    def supported(self) -> frozenset[str]:
        """Supported features after --supported-features / --exempt-features (upstream rules)."""
        if self._supported is None:
            try:
                sup_text = self.config.getoption("supported_features")
                exempt_text = self.config.getoption("exempt_features")
                supported = (
                    F.parse_feature_list(sup_text, field="--supported-features")
                    if sup_text
                    else None
                )
                exempt = F.parse_feature_list(exempt_text, field="--exempt-features")
            except InputError as e:
                raise pytest.UsageError(str(e)) from None
            gateway_class = self.config.getoption("sandbox_gateway_class")
            if not sup_text and not exempt_text:
                # the reference gateway claims what it models; Envoy Gateway leaves out what its
                # own conformance run skips (sandbox.scenario.features.default_support)
                supported, exempt = F.default_support(
                    self.provider, gateway_class in (None, "", DEFAULT_GATEWAY_CLASS)
                )
            self._supported = F.effective_supported(supported, exempt)
        return self._supported

    def unavailable(self) -> str | None:
        """Why the provider cannot run here (None when it can). Asked once per process."""
        if self._probed:
            return self._unavailable
        self._probed = True
        try:
            if self.provider in ("k3d", "kind"):
                from sandbox.infra import docker_engine  # heavy: the Docker SDK

                docker_engine.ping()
            elif self.provider == "existing" and not self.config.getoption("sandbox_context"):
                self._unavailable = (
                    "--sandbox-provider existing needs --sandbox-context (a kubeconfig context)"
                )
        except SandboxError as e:
            self._unavailable = f"{self.provider} provider unavailable: {e}"
        return self._unavailable

    def cluster_bundle(self, target: Target) -> str | None:
        """``<bundle-version>/<channel>`` of the Gateway API CRDs installed where the target
        deploys (asked once per process; None without a cluster)."""
        if self._bundle is None:
            self._bundle = ""
            if target.kubectl is not None:
                # heavy, and loaded by now: the target was built
                from sandbox.report.conformance import cluster_version_and_channel

                found = cluster_version_and_channel(target.kubectl)
                if found is not None:
                    self._bundle = "/".join(found)
        return self._bundle or None

    def target(self) -> Target:
        """The Target scenarios deploy to; for k3d/kind brings the stack up (or reuses it).

        Built once per process; when that fails, every later scenario gets the same error at
        once instead of trying to bring the stack up again."""
        if self._target_error is not None:
            raise self._target_error
        if self._target is None:
            try:
                self._target = make_target(self)
            except Exception as e:
                self._target_error = e
                raise
        return self._target


def make_target(state: SandboxState) -> Target:
    """The provider's Target, built exactly as ``sandbox run --provider ...`` builds it."""
    import sys

    # heavy: the whole library below the shells
    from sandbox.infra.progress import LineReporter
    from sandbox.scenario.load import load_scenario
    from sandbox.targets import factory

    def line(text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    scenarios = []  # their images are loaded into the sandbox's cluster with the stack's
    for path in state.scenario_files:
        try:
            scenarios.append(load_scenario(path.parent))
        except InputError:
            continue  # reported by its own items
    return factory.make_target(
        provider=state.provider,
        gateway_class=state.config.getoption("sandbox_gateway_class"),
        context=state.config.getoption("sandbox_context") if state.provider == "existing" else None,
        keep=state.keep,
        scenarios=scenarios,
        reporter=LineReporter(line),
        progress=lambda text: line(f"  {text}"),
        warn=lambda text: line(f"warning: {text}"),
    )


def _state(config: pytest.Config) -> SandboxState:
    return config.stash[_STATE]


def discover_scenario_files(state: SandboxState) -> list[Path]:
    """The scenario.yaml files this session's paths would collect (``_is_wanted``), found
    without collecting: for the xdist controller, where -k/-m/--lf act in the workers."""
    found: list[Path] = []
    for root in [*state.explicit, *state.scenario_roots]:
        if root.is_file():
            candidates = [root] if root.name == SCENARIO_FILE else []
        elif root.is_dir() and sandbox_project(root) != root:  # its root collects nothing
            candidates = [
                c
                for c in sorted(root.rglob(SCENARIO_FILE))
                if not _skipped_dir(c.relative_to(root))
            ]
        else:
            candidates = []
        found.extend(c for c in candidates if _is_wanted(state, c))
    return found


def _skipped_dir(relative: Path) -> bool:
    """Folders pytest does not collect by default (norecursedirs, virtualenvs)."""
    return any(
        part.startswith(".") or part in ("venv", "node_modules", "site-packages", "build", "dist")
        for part in relative.parts[:-1]
    )
