"""Echo pods standing in for a Deployment's: names as a ReplicaSet makes them, and which images the local provider can stand in for."""

from __future__ import annotations

import json
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from sandbox.reference.model import DeploymentInfo, Model

# Images whose pods the local echo backends stand in for: the upstream conformance echo
# backend (the one the scenario library uses, `registry.k8s.io/gateway-api/echo-basic:v1.5.1`,
# and its gRPC mode) at any tag or digest, and its staging copy.
ECHO_IMAGES = (
    "registry.k8s.io/gateway-api/echo-basic",
    "gcr.io/k8s-staging-gateway-api/echo-basic",
)


def is_echo_image(image: str) -> bool:
    """``registry.k8s.io/gateway-api/echo-basic``, at any ``:tag`` or ``@digest``."""
    repository = image.split("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    return repository in ECHO_IMAGES


def image_warnings(model: Model) -> list[str]:
    """One line per Deployment behind a Service whose containers run no echo backend image:
    the local provider answers for it with an echo backend all the same, which a cluster would
    not."""
    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    for svc in model.services:
        for dep in model.backends_of(svc.namespace, svc.name):
            key = (dep.namespace, dep.name)
            if key in seen or not dep.images or any(is_echo_image(i) for i in dep.images):
                continue  # (no images: a model built by hand, not from manifests)
            seen.add(key)
            images = ", ".join(dep.images)
            out.append(
                f"Deployment {dep.namespace}/{dep.name} runs {images}, not the echo backend "
                f"({ECHO_IMAGES[0]}): the local provider answers for its pods with an echo "
                "backend all the same, so its checks may pass here and fail on a cluster"
            )
    return out


MAX_NAME_LENGTH = 63


RANDOM_LENGTH = 5


MAX_GENERATED_NAME_LENGTH = MAX_NAME_LENGTH - RANDOM_LENGTH


def safe_encode_string(text: str) -> str:
    """Kubernetes' ``rand.SafeEncodeString``."""
    return "".join(K8S_ALPHANUMS[ord(c) % len(K8S_ALPHANUMS)] for c in text)


def fnv32a(data: bytes) -> int:
    """The 32-bit FNV-1a hash (Go's ``hash/fnv.New32a``)."""
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def pod_template_hash(deployment: DeploymentInfo) -> str:
    """A stable pod-template-hash for a Deployment: FNV-1a of its template's content, encoded
    like Kubernetes does (the exact bytes Kubernetes hashes are a Go dump we do not reproduce)."""
    template = {
        "namespace": deployment.namespace,
        "name": deployment.name,
        "labels": deployment.labels,
        "env": deployment.env,
    }
    digest = fnv32a(json.dumps(template, sort_keys=True).encode())
    return safe_encode_string(str(digest))


def random_suffix(rng: random.Random, length: int = RANDOM_LENGTH) -> str:
    """Kubernetes' ``rand.String(n)``."""
    return "".join(rng.choice(K8S_ALPHANUMS) for _ in range(length))


def generate_name(base: str, rng: random.Random) -> str:
    """Kubernetes' ``SimpleNameGenerator.GenerateName``: base truncated to 58, plus 5 random."""
    return base[:MAX_GENERATED_NAME_LENGTH] + random_suffix(rng)


def pod_names(deployment: DeploymentInfo, count: int, rng: random.Random) -> list[str]:
    """``count`` distinct pod names for a Deployment, like its ReplicaSet would create."""
    base = f"{deployment.name}-{pod_template_hash(deployment)}-"
    names: list[str] = []
    for _ in range(count * 20):  # bounded: collisions among 27**5 names are rare
        if len(names) == count:
            break
        name = generate_name(base, rng)
        if name not in names:
            names.append(name)
    return names


def deployment_of_pod(pod: str) -> str:
    """The Deployment part of a pod name (the upstream weight test drops the last two parts)."""
    parts = pod.split("-")
    return "-".join(parts[:-2]) if len(parts) > 2 else pod


class _Server(Protocol):
    port: int

    def close(self) -> None: ...


@dataclass
class LocalPod:
    """An echo backend standing in for one pod."""

    name: str
    namespace: str  # logical
    deployment: str
    service: str  # the Service name it echoes
    port: int
    server: _Server
    requests: deque[str] = field(default_factory=lambda: deque(maxlen=2000))  # access-log lines

    def saw(self, path: str) -> bool:
        """Whether this pod received a request for exactly ``path`` (path + query)."""
        return any(f" {path} HTTP/" in line for line in self.requests.copy())


HOST = "127.0.0.1"


STARTUP_TIMEOUT = 5.0  # s, for every server of a deployment to answer


K8S_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
