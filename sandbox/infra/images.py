"""Images the stack and the scenarios need, and where each one is: the local Docker engine, the
cluster's nodes, neither.

What ``kind load docker-image`` gives kind users, built in for both cluster providers: before
anything waits on an image, each needed image that the engine has and the cluster lacks is copied
in (:meth:`sandbox.infra.providers.Provider.load_images`), so a re-created cluster never pulls what the
machine already holds. ``--pull`` pulls on the host first what neither has; ``--offline`` never
pulls and fails at once naming what is missing.

The cluster's images are read from each node's containerd with ``crictl images -o json``
(cri-tools cmd/crictl/image.go: ``{"images": [{"id", "repoTags", "repoDigests", ...}]}``): kind's
node image and k3s both ship crictl pointed at their containerd.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sandbox import settings as settings_mod
from sandbox.errors import DockerUnavailable
from sandbox.infra import docker_engine

POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
_KIND_LINE = re.compile(r"^kind:\s*(\w+)\s*$", re.M)


@dataclass
class Need:
    """One image: why it is needed, and where it is (None: not known)."""

    ref: str
    needed_by: list[str] = field(default_factory=list)
    engine: bool | None = None
    cluster: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "image": self.ref,
            "neededBy": self.needed_by,
            "engine": self.engine,
            "cluster": self.cluster,
        }


def pod_images(obj: Mapping[str, Any]) -> list[str]:
    """The container and init-container images of a workload object (Pod, Deployment, Job,
    CronJob, ...)."""
    spec: Any = obj.get("spec") or {}
    kind = obj.get("kind")
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    if kind != "Pod":
        spec = ((spec.get("template") or {}).get("spec") or {}) if isinstance(spec, Mapping) else {}
    out = []
    if isinstance(spec, Mapping):
        for key in ("initContainers", "containers"):
            for c in spec.get(key) or []:
                if isinstance(c, Mapping) and isinstance(c.get("image"), str) and c["image"]:
                    out.append(c["image"])
    return out


def manifest_images(text: str) -> list[str]:
    """Images of the workloads in a multi-document YAML stream. Only documents that declare a
    workload kind are parsed, so megabytes of CRDs (Envoy Gateway's install.yaml) cost nothing."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    found: list[str] = []
    for doc in re.split(r"^---\s*$", text, flags=re.M):
        kinds = set(_KIND_LINE.findall(doc))
        if not kinds & POD_KINDS:
            continue
        obj = yaml.load(doc, Loader=loader)
        if isinstance(obj, Mapping) and obj.get("kind") in POD_KINDS:
            found.extend(i for i in pod_images(obj) if i not in found)
    return found


def stack_needs(install_yaml: Path | None) -> dict[str, list[str]]:
    """Images of the stack: Envoy Gateway's own (its install.yaml's workloads) and the Envoy
    data plane it deploys per Gateway (settings.ENVOY_PROXY_IMAGE)."""
    needs: dict[str, list[str]] = {}
    if install_yaml is not None:
        for image in manifest_images(install_yaml.read_text()):
            needs.setdefault(image, []).append("Envoy Gateway")
    needs.setdefault(settings_mod.ENVOY_PROXY_IMAGE, []).append("Envoy data plane")
    return needs


def scenario_needs(scenarios: Iterable[Any]) -> dict[str, list[str]]:
    """Images the scenarios' workloads run (``Scenario.objects``)."""
    needs: dict[str, list[str]] = {}
    for scenario in scenarios:
        for obj in scenario.objects:
            if isinstance(obj, Mapping) and obj.get("kind") in POD_KINDS:
                for image in pod_images(obj):
                    by = needs.setdefault(image, [])
                    if f"scenario {scenario.name}" not in by:
                        by.append(f"scenario {scenario.name}")
    return needs


def merge(*parts: Mapping[str, list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in parts:
        for ref, by in part.items():
            out.setdefault(ref, []).extend(b for b in by if b not in out.get(ref, []))
    return out


def parse_crictl_images(text: str) -> set[str]:
    """Every tag and digest reference in ``crictl images -o json`` output, normalised."""
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return set()
    refs: set[str] = set()
    for image in data.get("images") or [] if isinstance(data, dict) else []:
        if not isinstance(image, dict):
            continue
        for key in ("repoTags", "repoDigests"):
            for ref in image.get(key) or []:
                if isinstance(ref, str):
                    refs.add(docker_engine.normalize_image(ref))
    return refs


def in_refs(ref: str, refs: set[str]) -> bool:
    """Whether ``ref`` (tag, digest, or tag@digest) is among normalised ``refs``."""
    norm = docker_engine.normalize_image(ref)
    if norm in refs:
        return True
    if "@" in norm:  # name:tag@digest: the node lists name@digest
        name, digest = norm.split("@", 1)
        repo = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
        return f"{repo}@{digest}" in refs
    return False


def node_images(nodes: Sequence[str]) -> set[str] | None:
    """The images every node holds (intersection), or None when a node cannot be asked."""
    common: set[str] | None = None
    for node in nodes:
        try:
            code, out = docker_engine.exec_in(node, ["crictl", "images", "-o", "json"])
        except DockerUnavailable:
            return None
        if code != 0:
            return None
        refs = parse_crictl_images(out)
        common = refs if common is None else common & refs
    return common


def locate(needs: Mapping[str, list[str]], nodes: Sequence[str] | None) -> list[Need]:
    """Where each needed image is. ``nodes``: the cluster's running node containers (None or
    empty: no cluster, so ``cluster`` is None)."""
    in_cluster = node_images(nodes) if nodes else None
    out = []
    for ref, by in needs.items():
        out.append(
            Need(
                ref,
                list(by),
                engine=docker_engine.image_present(ref),
                cluster=None if in_cluster is None else in_refs(ref, in_cluster),
            )
        )
    return out
