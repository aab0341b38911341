"""A pure-Python reference model of Gateway API v1 routing (Gateway, HTTPRoute, GRPCRoute,
ReferenceGrant, Service), written from the specification (the v1.6.1 CRD field docs and
kubernetes-sigs/gateway-api apis/v1/*_types.go).

    from sandbox.reference import Model, load_manifests
    objects, sources = load_manifests(["scenarios/quickstart"])
    model = Model.from_objects(objects, sources)
    decision = model.decide("default/eg", 80, "GET", "www.example.com", "/get", {})
    decision.to_json()   # the ``sandbox explain -o json`` object

Modules: ``objects`` (typed, validated views of the manifests), ``matching`` (hostnames, paths,
headers, query params, gRPC methods, precedence ranks), ``filters`` (header modifiers, redirect,
rewrite), ``model`` (listeners, attachment, precedence, backends), ``decision`` (the answer),
``verify`` (a scenario's checks against the model), ``loader`` (manifest files with file:line).
"""

from sandbox.reference.decision import BackendChoice, Decision, Mirror, ModelRedirect, ModelRequest
from sandbox.reference.loader import load_manifests
from sandbox.reference.model import DeploymentInfo, ListenerInfo, Model, ServiceInfo, ServicePort

__all__ = [
    "BackendChoice",
    "Decision",
    "DeploymentInfo",
    "ListenerInfo",
    "Mirror",
    "Model",
    "ModelRedirect",
    "ModelRequest",
    "ServiceInfo",
    "ServicePort",
    "load_manifests",
]
