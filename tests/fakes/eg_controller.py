"""What Envoy Gateway (and the Deployment controller) write back, for the fake kubectl (tests only).

``reconcile(objects, now)`` takes every object of a fake cluster and returns them with:

- Deployments outside ``envoy-gateway-system``: ``status.conditions`` ``Available`` True
  (reason ``MinimumReplicasAvailable``, "Deployment has minimum availability.") and replicas;
- every Gateway whose class names Envoy Gateway's controller: ``Accepted`` True
  ("The Gateway has been scheduled by Envoy Gateway") and ``Programmed`` True ("Address assigned
  to the Gateway, 1/1 envoy replicas available") with a ClusterIP in
  ``status.addresses``; listener statuses with ``attachedRoutes``; HTTPS listeners whose Secret is
  missing get ``ResolvedRefs`` False ``InvalidCertificateRef``;
- a data-plane Service and Deployment per Gateway in ``envoy-gateway-system``, named
  ``envoy-<ns>-<name>-<8 hex of sha256("<ns>/<name>")>``, labelled
  ``gateway.envoyproxy.io/owning-gateway-name|namespace`` (app.kubernetes.io/name=envoy,
  component=proxy, managed-by=envoy-gateway), one port per listener port, targetPort shifted by
  +10000 below 1024; removed again when the Gateway is gone;
- every route ``status.parents[]`` per parentRef, ``controllerName``
  ``gateway.envoyproxy.io/gatewayclass-controller``: ``Accepted`` True "Route is accepted", or
  False ``NotAllowedByListeners`` "No listeners included by this parent ref allowed this
  attachment." (route in another namespace than a ``from: Same`` listener);
  ``ResolvedRefs`` True "Resolved all the Object references for the Route", or False
  ``RefNotPermitted`` (cross-namespace backend without a ReferenceGrant) / ``BackendNotFound``.
  No entry at all for a parent Gateway that does not exist.

Sources: envoyproxy/gateway internal/gatewayapi/status/gateway.go (Gateway conditions and
messages), internal/gatewayapi/route.go (route conditions), internal/infrastructure/kubernetes
(resource names, labels); the +10000 shift is envoyproxy/gateway #4981.

Switches (environment of the fake kubectl):

The Deployment ``envoy-gateway-system/envoy-gateway`` with ``spec.replicas: 0`` stops all of
the above but the Deployments' status (the controller is down).

``FAKE_EG_NOT_PROGRAMMED``  comma list of Gateway names that stay ``Programmed`` False
                           (``AddressNotAssigned``, "No addresses have been assigned to the
                           Gateway").
``FAKE_EG_UNSCHEDULABLE``   a scheduler message (k8s pkg/scheduler/framework/types.go
                           FitError.Error): every data plane gets a Pending envoy Pod whose
                           ``PodScheduled`` is False ``Unschedulable`` with it and its Deployment
                           0 available, so its Gateway is ``Programmed`` False ``NoResources``
                           ("Envoy replicas unavailable"), as for any data plane without an
                           available replica.
``FAKE_EG_STATUS_DELAY``    seconds after the fake first saw an object before its status appears
                           (first sightings kept in ``seen_file``).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
EG_NAMESPACE = "envoy-gateway-system"
GROUP = "gateway.networking.k8s.io"
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute")
OWNING_NAME = "gateway.envoyproxy.io/owning-gateway-name"
OWNING_NAMESPACE = "gateway.envoyproxy.io/owning-gateway-namespace"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime(TIME_FORMAT)


def _cond(
    obj: dict[str, Any], type_: str, status: bool, reason: str, message: str
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": int((obj.get("metadata") or {}).get("generation") or 1),
        "lastTransitionTime": _now(),
    }


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.setdefault("metadata", {})
    assert isinstance(meta, dict)
    return meta


def first_seen(objects: list[dict[str, Any]], path: Path | None, now: float) -> dict[str, float]:
    """uid -> when the fake controller first saw the object, kept in ``path`` (JSON)."""
    seen: dict[str, float] = {}
    if path is not None and path.exists():
        with contextlib.suppress(ValueError):
            seen = json.loads(path.read_text() or "{}")
    changed = False
    for obj in objects:
        uid = _meta(obj).get("uid")
        if uid and uid not in seen:
            seen[uid] = now
            changed = True
    if changed and path is not None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(seen))
        os.replace(tmp, path)
    return seen


def data_plane_name(namespace: str, name: str) -> str:
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:8]
    return f"envoy-{namespace}-{name}-{digest}"[:63]


def _labels(namespace: str, name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "envoy",
        "app.kubernetes.io/component": "proxy",
        "app.kubernetes.io/managed-by": "envoy-gateway",
        OWNING_NAME: name,
        OWNING_NAMESPACE: namespace,
    }


def _data_plane(gateway: dict[str, Any]) -> list[dict[str, Any]]:
    meta = _meta(gateway)
    ns, name = str(meta.get("namespace", "default")), str(meta["name"])
    svc_name = data_plane_name(ns, name)
    listeners = (gateway.get("spec") or {}).get("listeners") or []
    ports = sorted({int(lst["port"]) for lst in listeners if "port" in lst})
    labels = _labels(ns, name)
    stamp = _now()
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": svc_name,
            "namespace": EG_NAMESPACE,
            "labels": labels,
            "creationTimestamp": stamp,
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "10.43.0.10",
            "selector": labels,
            "ports": [
                {
                    "name": f"{'http' if p != 443 else 'https'}-{p}",
                    "port": p,
                    "protocol": "TCP",
                    "targetPort": p + 10000 if p < 1024 else p,
                }
                for p in ports
            ],
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": svc_name,
            "namespace": EG_NAMESPACE,
            "labels": labels,
            "creationTimestamp": stamp,
        },
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}},
        "status": {
            "replicas": 1,
            "availableReplicas": 1,
            "readyReplicas": 1,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                }
            ],
        },
    }
    message = os.environ.get("FAKE_EG_UNSCHEDULABLE")
    if not message:
        return [service, deployment]
    deployment["status"] = {
        "replicas": 1,
        "unavailableReplicas": 1,
        "conditions": [
            {
                "type": "Available",
                "status": "False",
                "reason": "MinimumReplicasUnavailable",
                "message": "Deployment does not have minimum availability.",
            }
        ],
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{svc_name[:47]}-7d9f8b6c5-q2x4z",
            "namespace": EG_NAMESPACE,
            "labels": labels,
            "creationTimestamp": stamp,
        },
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastTransitionTime": stamp,
                }
            ],
        },
    }
    return [service, deployment, pod]


def _find(
    objects: list[dict[str, Any]], kind: str, namespace: str | None, name: str
) -> dict[str, Any] | None:
    for obj in objects:
        meta = obj.get("metadata") or {}
        if (
            obj.get("kind") == kind
            and meta.get("name") == name
            and (namespace is None or meta.get("namespace", "default") == namespace)
        ):
            return obj
    return None


def _ours(objects: list[dict[str, Any]], gateway: dict[str, Any]) -> bool:
    cls = (gateway.get("spec") or {}).get("gatewayClassName")
    gc = _find(objects, "GatewayClass", None, str(cls))
    return gc is not None and (gc.get("spec") or {}).get("controllerName") == CONTROLLER


def _granted(
    objects: list[dict[str, Any]], route: dict[str, Any], to_ns: str, to_name: str
) -> bool:
    route_ns = _meta(route).get("namespace", "default")
    for grant in objects:
        if grant.get("kind") != "ReferenceGrant" or _meta(grant).get("namespace") != to_ns:
            continue
        spec = grant.get("spec") or {}
        froms = [
            f
            for f in spec.get("from") or []
            if f.get("kind") == route.get("kind") and f.get("namespace") == route_ns
        ]
        tos = [
            t
            for t in spec.get("to") or []
            if t.get("kind", "Service") == "Service" and t.get("name") in (None, to_name)
        ]
        if froms and tos:
            return True
    return False


def _route_parents(objects: list[dict[str, Any]], route: dict[str, Any]) -> list[dict[str, Any]]:
    route_ns = str(_meta(route).get("namespace", "default"))
    spec = route.get("spec") or {}
    # ResolvedRefs: every backendRef exists and, across namespaces, is granted
    resolved, reason, message = (
        True,
        "ResolvedRefs",
        "Resolved all the Object references for the Route",
    )
    for ri, rule in enumerate(spec.get("rules") or []):
        for bi, ref in enumerate(rule.get("backendRefs") or []):
            ns = ref.get("namespace") or route_ns
            if ns != route_ns and not _granted(objects, route, ns, ref.get("name")):
                resolved, reason = False, "RefNotPermitted"
                message = (
                    f"Failed to process route rule {ri} backendRef {bi}: backendRef "
                    f"{ns}/{ref.get('name')} not permitted by any ReferenceGrant."
                )
            elif (
                ref.get("kind", "Service") == "Service"
                and _find(objects, "Service", ns, ref.get("name")) is None
            ):
                resolved, reason = False, "BackendNotFound"
                message = f"Failed to process route rule {ri} backendRef {bi}: service {ns}/{ref.get('name')} not found."
    parents = []
    for ref in spec.get("parentRefs") or []:
        gw_ns = ref.get("namespace") or route_ns
        gateway = _find(objects, "Gateway", gw_ns, ref.get("name"))
        if gateway is None or not _ours(objects, gateway):
            continue
        listeners = (gateway.get("spec") or {}).get("listeners") or []
        if ref.get("sectionName"):
            listeners = [lst for lst in listeners if lst.get("name") == ref["sectionName"]]
        allowed = [
            lst
            for lst in listeners
            if ((lst.get("allowedRoutes") or {}).get("namespaces") or {}).get("from", "Same")
            != "Same"
            or gw_ns == route_ns
        ]
        conditions = [
            _cond(route, "Accepted", True, "Accepted", "Route is accepted")
            if allowed
            else _cond(
                route,
                "Accepted",
                False,
                "NotAllowedByListeners",
                "No listeners included by this parent ref allowed this attachment.",
            ),
            _cond(route, "ResolvedRefs", resolved, reason, message),
        ]
        parent_ref = {"group": GROUP, "kind": "Gateway", **ref}
        parents.append(
            {"parentRef": parent_ref, "controllerName": CONTROLLER, "conditions": conditions}
        )
    return parents


def reconcile(
    objects: list[dict[str, Any]], now: float | None = None, seen_file: Path | None = None
) -> list[dict[str, Any]]:
    """``objects`` with statuses written and data planes created/removed. Input is not modified.

    ``seen_file`` remembers when each object was first seen, for ``FAKE_EG_STATUS_DELAY``.
    """
    now = time.time() if now is None else now
    delay = float(os.environ.get("FAKE_EG_STATUS_DELAY", "0") or 0)
    seen = first_seen(objects, seen_file, now) if delay else {}
    not_programmed = {
        s.strip() for s in os.environ.get("FAKE_EG_NOT_PROGRAMMED", "").split(",") if s.strip()
    }
    objs = [copy.deepcopy(o) for o in objects]
    eg = _find(objs, "Deployment", EG_NAMESPACE, "envoy-gateway")
    # Envoy Gateway scaled to 0 (``kubectl scale --replicas=0``): no controller writes any
    # Gateway or route status, nor makes a data plane; the Deployment controller still runs
    controller_up = eg is None or (eg.get("spec") or {}).get("replicas", 1) != 0
    gateways = (
        [o for o in objs if o.get("kind") == "Gateway" and _ours(objs, o)] if controller_up else []
    )
    wanted = {
        data_plane_name(str(_meta(g).get("namespace", "default")), str(_meta(g)["name"]))
        for g in gateways
    }
    # data planes: drop those whose Gateway is gone, add missing ones
    out = [
        o
        for o in objs
        if not (
            _meta(o).get("namespace") == EG_NAMESPACE
            and (_meta(o).get("labels") or {}).get("app.kubernetes.io/managed-by")
            == "envoy-gateway"
            and _meta(o).get("name") not in wanted
        )
    ]
    if not controller_up:
        out = objs
    for gw in gateways:
        name = data_plane_name(str(_meta(gw).get("namespace", "default")), str(_meta(gw)["name"]))
        if _find(out, "Service", EG_NAMESPACE, name) is None:
            out.extend(_data_plane(gw))
    for obj in out:
        kind = obj.get("kind")
        if delay and now - seen.get(str(_meta(obj).get("uid")), now) < delay:
            continue
        if kind == "Deployment" and "status" not in obj:
            obj["status"] = {
                "replicas": 1,
                "availableReplicas": 1,
                "conditions": [
                    {
                        "type": "Available",
                        "status": "True",
                        "reason": "MinimumReplicasAvailable",
                        "message": "Deployment has minimum availability.",
                    }
                ],
            }
        elif kind == "Gateway" and obj in gateways:
            _gateway_status(out, obj, programmed=_meta(obj)["name"] not in not_programmed)
        elif kind in ROUTE_KINDS and controller_up:
            obj["status"] = {"parents": _route_parents(out, obj)}
    return out


def _gateway_status(objects: list[dict[str, Any]], gw: dict[str, Any], *, programmed: bool) -> None:
    gw_ns = str(_meta(gw).get("namespace", "default"))
    listeners = []
    for lst in (gw.get("spec") or {}).get("listeners") or []:
        resolved = _cond(
            gw, "ResolvedRefs", True, "ResolvedRefs", "Listener has been successfully translated"
        )
        for ref in (lst.get("tls") or {}).get("certificateRefs") or []:
            ns = ref.get("namespace") or gw_ns
            if _find(objects, "Secret", ns, ref.get("name")) is None:
                resolved = _cond(
                    gw,
                    "ResolvedRefs",
                    False,
                    "InvalidCertificateRef",
                    f"Secret {ns}/{ref.get('name')} does not exist.",
                )
        attached = sum(
            1
            for r in objects
            if r.get("kind") in ROUTE_KINDS
            for p in (r.get("status") or {}).get("parents") or []
            if p.get("parentRef", {}).get("name") == _meta(gw)["name"]
            and any(
                c.get("type") == "Accepted" and c.get("status") == "True"
                for c in p.get("conditions") or []
            )
        )
        listeners.append(
            {
                "name": lst.get("name"),
                "attachedRoutes": attached,
                "supportedKinds": [
                    {"group": GROUP, "kind": "HTTPRoute"},
                    {"group": GROUP, "kind": "GRPCRoute"},
                ],
                "conditions": [
                    _cond(
                        gw,
                        "Programmed",
                        True,
                        "Programmed",
                        "Sending translated listener configuration to the data plane",
                    ),
                    _cond(
                        gw,
                        "Accepted",
                        True,
                        "Accepted",
                        "Listener has been successfully translated",
                    ),
                    resolved,
                ],
            }
        )
    conditions = [
        _cond(gw, "Accepted", True, "Accepted", "The Gateway has been scheduled by Envoy Gateway")
    ]
    # EG: Programmed only with an available envoy replica (status/gateway.go
    # updateGatewayProgrammedCondition), else NoResources
    envoy = _find(objects, "Deployment", EG_NAMESPACE, data_plane_name(gw_ns, _meta(gw)["name"]))
    unavailable = envoy is not None and not (envoy.get("status") or {}).get("availableReplicas")
    if programmed and unavailable:
        conditions.append(
            _cond(gw, "Programmed", False, "NoResources", "Envoy replicas unavailable")
        )
        gw["status"] = {"addresses": [{"type": "IPAddress", "value": "10.43.0.10"}]}
    elif programmed:
        conditions.append(
            _cond(
                gw,
                "Programmed",
                True,
                "Programmed",
                "Address assigned to the Gateway, 1/1 envoy replicas available",
            )
        )
        gw["status"] = {"addresses": [{"type": "IPAddress", "value": "10.43.0.10"}]}
    else:
        conditions.append(
            _cond(
                gw,
                "Programmed",
                False,
                "AddressNotAssigned",
                "No addresses have been assigned to the Gateway",
            )
        )
        gw["status"] = {}
    gw["status"]["conditions"] = conditions
    gw["status"]["listeners"] = listeners
