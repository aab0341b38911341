"""Logical to real namespaces for a cluster run, and the rewriting of manifests that follows.

Pure functions, no I/O. A scenario's manifests name namespaces *logically*
(docs/scenario-format.md, "Namespaces are logical"):

- objects without ``metadata.namespace`` and the namespace ``default`` belong to the run's
  namespace ``sbx-<scenario>-<5 random>``;
- any other namespace ``N`` is deployed as ``<run-namespace>-N`` (hashed to stay a valid
  63-character RFC 1123 label), and every reference to it follows: ``parentRefs``,
  ``backendRefs`` (also ``requestMirror.backendRef``), ``certificateRefs`` and any other
  ``{name, namespace}`` reference inside a Gateway API / Envoy Gateway ``spec``, ReferenceGrant
  ``spec.from[].namespace``, RBAC ``subjects[].namespace`` and the well-known label
  ``kubernetes.io/metadata.name`` in namespace selectors (``allowedRoutes.namespaces.selector``);
  ``allowedRoutes.namespaces.from`` itself is left as written.

GatewayClass objects are dropped (cluster-scoped and shared; never applied) and every Gateway's
``spec.gatewayClassName`` becomes the run's class. Every object gets the label
``gateway-sandbox/run=<run-namespace>`` so that whatever a run created can be found by label.

Apply order follows lightkube's ``sort_objects(by="kind")`` (gtsystem/lightkube
lightkube/core/sort_objects.py: CRDs, Namespaces, Secrets/ServiceAccounts/ConfigMaps, RBAC, the
rest), refined for Gateway API: Services, workloads, Gateways, routes, ReferenceGrants, policies.
Delete order is its reverse.
"""

from __future__ import annotations

import copy
import hashlib
import re
import secrets
import string
from collections.abc import Iterable, Mapping
from typing import Any

RUN_LABEL = "gateway-sandbox/run"
RUN_PREFIX = "sbx"
MAX_NAME = 63  # RFC 1123 label (Namespace names): [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63
SCENARIO_PART_MAX = 20  # keeps run namespaces <= 30 chars, so "<run>-N" fits for N <= 32 chars
SUFFIX_LEN = 5
# The label the API server sets on every Namespace since Kubernetes 1.22; upstream conformance
# manifests select namespaces with it (gateway-api conformance/tests/gateway-with-attached-routes.yaml).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ALPHABET = string.ascii_lowercase + string.digits

GATEWAY_API_GROUPS = frozenset(
    {"gateway.networking.k8s.io", "gateway.networking.x-k8s.io", "gateway.envoyproxy.io"}
)
ROUTE_KINDS = frozenset({"HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute"})

# Kinds that are not namespaced (kubectl api-resources --namespaced=false, the ones a scenario
# could plausibly carry). Everything else is treated as namespaced.
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "GatewayClass",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "RuntimeClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "APIService",
        "Node",
    }
)

# Apply rank by kind; unknown kinds rank UNKNOWN_RANK (after workloads, before Gateways).
KIND_RANK: dict[str, int] = {
    "CustomResourceDefinition": 10,
    "Namespace": 20,
    "Secret": 31,
    "ServiceAccount": 32,
    "PersistentVolume": 33,
    "PersistentVolumeClaim": 34,
    "ConfigMap": 35,
    "Role": 41,
    "ClusterRole": 42,
    "RoleBinding": 43,
    "ClusterRoleBinding": 44,
    "Service": 50,
    "Deployment": 60,
    "StatefulSet": 60,
    "DaemonSet": 60,
    "ReplicaSet": 60,
    "Pod": 61,
    "Job": 62,
    "GatewayClass": 74,  # never applied by a run; ranked for completeness
    "EnvoyProxy": 75,  # referenced by Gateway spec.infrastructure.parametersRef
    "Backend": 76,
    "HTTPRouteFilter": 77,
    "Gateway": 80,
    "ListenerSet": 85,
    "XListenerSet": 85,
    "HTTPRoute": 90,
    "GRPCRoute": 90,
    "TLSRoute": 90,
    "TCPRoute": 90,
    "UDPRoute": 90,
    "ReferenceGrant": 95,
    "BackendTLSPolicy": 98,
    "BackendTrafficPolicy": 98,
    "ClientTrafficPolicy": 98,
    "SecurityPolicy": 98,
    "EnvoyExtensionPolicy": 98,
    "EnvoyPatchPolicy": 98,
}
UNKNOWN_RANK = 70


# --- names -------------------------------------------------------------------------------------


def is_label(name: str) -> bool:
    """True when ``name`` is a valid RFC 1123 label (a valid Namespace name)."""
    return len(name) <= MAX_NAME and bool(_LABEL_RE.match(name))


def _sanitize(text: str) -> str:
    text = re.sub(r"[^a-z0-9-]+", "-", text.lower())
    return re.sub(r"-{2,}", "-", text).strip("-")


def _short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def fit_label(name: str, *, key: str | None = None) -> str:
    """``name`` if it is a valid label; else a valid one, truncated with a stable hash suffix.

    The hash is of ``key`` (default: ``name``), so two long names never collide by truncation.
    """
    clean = _sanitize(name)
    if clean == name and is_label(name):
        return name
    digest = _short_hash(key if key is not None else name)
    head = clean[: MAX_NAME - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}" if head else f"ns-{digest}"


def run_namespace(scenario: str, *, suffix: str | None = None) -> str:
    """``sbx-<scenario>-<5 random [a-z0-9]>``, a valid RFC 1123 label of at most 30 characters."""
    part = _sanitize(scenario)[:SCENARIO_PART_MAX].strip("-") or "scenario"
    if suffix is None:
        suffix = "".join(secrets.choice(_ALPHABET) for _ in range(SUFFIX_LEN))
    name = f"{RUN_PREFIX}-{part}-{suffix}"
    if not is_label(name):
        raise ValueError(f"not a valid namespace name: {name!r}")
    return name


def is_run_namespace_logical(logical: str | None) -> bool:
    return logical in (None, "", "default")


def real_namespace(run_ns: str, logical: str | None) -> str:
    """The real namespace of logical namespace ``logical`` in the run ``run_ns``.

    ``None``, ``""`` and ``"default"`` are the run namespace itself; any other ``N`` is
    ``<run_ns>-N``, hashed down to 63 characters when longer.
    """
    if is_run_namespace_logical(logical):
        return run_ns
    assert logical is not None
    return fit_label(f"{run_ns}-{logical}", key=f"{run_ns}/{logical}")


class NamespaceMap:
    """Both directions of the logical <-> real mapping for one run."""

    def __init__(self, run_ns: str) -> None:
        self.run_ns = run_ns
        self._to_logical: dict[str, str] = {run_ns: "default"}

    def real(self, logical: str | None) -> str:
        real = real_namespace(self.run_ns, logical)
        self._to_logical.setdefault(real, logical or "default")
        return real

    def logical(self, real: str) -> str:
        """The logical name of a real namespace seen so far; the real name when unknown."""
        return self._to_logical.get(real, real)


# --- objects -----------------------------------------------------------------------------------


def _group(obj: Mapping[str, Any]) -> str:
    api_version = str(obj.get("apiVersion", ""))
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def is_namespaced(kind: str) -> bool:
    return kind not in CLUSTER_SCOPED_KINDS


def logical_namespaces(objects: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every logical namespace other than the run's that the objects declare or use, sorted."""
    found: set[str] = set()
    for obj in objects:
        kind = obj.get("kind")
        meta = obj.get("metadata") or {}
        if kind == "Namespace":
            found.add(str(meta.get("name", "")))
        elif kind != "GatewayClass" and is_namespaced(str(kind)):
            found.add(str(meta.get("namespace") or ""))
    return sorted(n for n in found if not is_run_namespace_logical(n))


def namespace_objects(objects: Iterable[Mapping[str, Any]], run_ns: str) -> list[dict[str, Any]]:
    """The Namespace objects a run creates: its own, then one per other logical namespace.

    Labels of declared Namespace objects are kept (``default``'s go to the run namespace); each
    gets ``gateway-sandbox/run=<run_ns>``. A namespace used but not declared is created too.
    """
    objs = list(objects)
    declared: dict[str, dict[str, str]] = {}
    for obj in objs:
        if obj.get("kind") == "Namespace":
            meta = obj.get("metadata") or {}
            name = str(meta.get("name", ""))
            logical = "default" if is_run_namespace_logical(name) else name
            declared.setdefault(logical, {}).update(
                {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
            )
    result = []
    for logical in ["default", *logical_namespaces(objs)]:
        labels = dict(declared.get(logical, {}))
        labels[RUN_LABEL] = run_ns
        result.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": real_namespace(run_ns, logical), "labels": labels},
            }
        )
    return result


def _rewrite_refs(node: Any, run_ns: str) -> None:
    """Rewrite, in place, every ``{name, namespace}`` reference below ``node``.

    This covers parentRefs, backendRefs, requestMirror.backendRef, certificateRefs,
    caCertificateRefs, clientCertificateRef and policy targetRefs, none of which carries a
    namespace other than through such a mapping. Namespace selectors that pick namespaces by
    ``kubernetes.io/metadata.name`` are rewritten as well.
    """
    if isinstance(node, dict):
        ns = node.get("namespace")
        if isinstance(ns, str) and isinstance(node.get("name"), str):
            node["namespace"] = real_namespace(run_ns, ns)
        for key, value in node.items():
            if key in ("matchLabels",) and isinstance(value, dict):
                label = value.get(NAMESPACE_NAME_LABEL)
                if isinstance(label, str):
                    value[NAMESPACE_NAME_LABEL] = real_namespace(run_ns, label)
            elif key == "matchExpressions" and isinstance(value, list):
                for expr in value:
                    if (
                        isinstance(expr, dict)
                        and expr.get("key") == NAMESPACE_NAME_LABEL
                        and isinstance(expr.get("values"), list)
                    ):
                        expr["values"] = [
                            real_namespace(run_ns, v) if isinstance(v, str) else v
                            for v in expr["values"]
                        ]
            else:
                _rewrite_refs(value, run_ns)
    elif isinstance(node, list):
        for item in node:
            _rewrite_refs(item, run_ns)


def rewrite_object(
    obj: Mapping[str, Any], run_ns: str, gateway_class: str
) -> dict[str, Any] | None:
    """A deep copy of ``obj`` rewritten for the run; ``None`` for objects never applied."""
    kind = str(obj.get("kind", ""))
    if kind == "GatewayClass":
        return None
    out: dict[str, Any] = copy.deepcopy(dict(obj))
    meta = out.setdefault("metadata", {})
    if meta is None:
        meta = out["metadata"] = {}
    labels = meta.get("labels") or {}
    labels[RUN_LABEL] = run_ns
    meta["labels"] = labels

    if kind == "Namespace":
        meta["name"] = real_namespace(run_ns, meta.get("name"))
        meta.pop("namespace", None)
        return out
    if is_namespaced(kind):
        meta["namespace"] = real_namespace(run_ns, meta.get("namespace"))

    spec = out.get("spec")
    if kind == "Gateway" and isinstance(spec, dict):
        spec["gatewayClassName"] = gateway_class
    if kind == "ReferenceGrant" and isinstance(spec, dict):
        # spec.from[] is {group, kind, namespace} (no name); spec.to[] has no namespace at all.
        for frm in spec.get("from") or []:
            if isinstance(frm, dict) and isinstance(frm.get("namespace"), str):
                frm["namespace"] = real_namespace(run_ns, frm["namespace"])
    if _group(out) in GATEWAY_API_GROUPS and spec is not None:
        _rewrite_refs(spec, run_ns)
    if kind in ("RoleBinding", "ClusterRoleBinding"):
        for subject in out.get("subjects") or []:
            if (
                isinstance(subject, dict)
                and subject.get("kind") == "ServiceAccount"
                and isinstance(subject.get("namespace"), str)
            ):
                subject["namespace"] = real_namespace(run_ns, subject["namespace"])
    return out


def rewrite_objects(
    objects: Iterable[Mapping[str, Any]], run_ns: str, gateway_class: str
) -> list[dict[str, Any]]:
    """Every object rewritten for the run (GatewayClasses dropped), in apply order.

    Namespace objects from the manifests are left out: ``namespace_objects`` makes them all.
    """
    rewritten = []
    for obj in objects:
        if obj.get("kind") == "Namespace":
            continue
        new = rewrite_object(obj, run_ns, gateway_class)
        if new is not None:
            rewritten.append(new)
    return apply_order(rewritten)


def kind_rank(obj: Mapping[str, Any]) -> int:
    return KIND_RANK.get(str(obj.get("kind", "")), UNKNOWN_RANK)


def apply_order(objects: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Stable sort by kind rank (file order kept within a kind)."""
    return [dict(o) for o in sorted(objects, key=kind_rank)]


def delete_order(objects: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The reverse of ``apply_order``."""
    return list(reversed(apply_order(objects)))
