"""The model against upstream conformance expectations (gateway-api v1.6.1).

Manifests are read from the upstream tree named by SANDBOX_GATEWAY_API_CRDS (a copy of
``config/crd/<channel>/``; the conformance manifests sit at ``../../conformance`` or
``../../../conformance`` of it) and never copied here; the test skips when they are absent. The
request/expectation rows are transcribed from the ``[]http.ExpectedResponse`` tables of the named
Go tests (kubernetes-sigs/gateway-api conformance/tests/*.go at v1.6.1).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.reference.model import Model

NS = "gateway-conformance-infra"


def _conformance_dir() -> Path | None:
    crds = os.environ.get("SANDBOX_GATEWAY_API_CRDS")
    if not crds:
        return None
    here = Path(crds).resolve()
    for cand in (here.parent.parent / "conformance", here.parent.parent.parent / "conformance"):
        if (cand / "base" / "manifests.yaml").is_file():
            return cand
    return None


CONFORMANCE = _conformance_dir()
pytestmark = pytest.mark.skipif(
    CONFORMANCE is None,
    reason="SANDBOX_GATEWAY_API_CRDS does not lead to the upstream conformance manifests",
)


@cache
def _model(test: str) -> Model:
    assert CONFORMANCE is not None
    objects: list[dict[str, Any]] = []
    for f in (CONFORMANCE / "base" / "manifests.yaml", CONFORMANCE / "tests" / f"{test}.yaml"):
        text = f.read_text().replace("{GATEWAY_CLASS_NAME}", "eg")
        objects.extend(o for o in yaml.safe_load_all(text) if o)
    return Model.from_objects(objects)


def _get(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


CASES: list[tuple[str, str, dict[str, Any]]] = [
    # conformance/tests/httproute-path-match-order.go (Gateway same-namespace)
    (
        "httproute-path-match-order",
        "same-namespace",
        {"path": "/match/exact/one", "backend": "infra-backend-v3"},
    ),
    (
        "httproute-path-match-order",
        "same-namespace",
        {"path": "/match/exact", "backend": "infra-backend-v2"},
    ),
    (
        "httproute-path-match-order",
        "same-namespace",
        {"path": "/match", "backend": "infra-backend-v1"},
    ),
    (
        "httproute-path-match-order",
        "same-namespace",
        {"path": "/match/prefix/one/any", "backend": "infra-backend-v2"},
    ),
    (
        "httproute-path-match-order",
        "same-namespace",
        {"path": "/match/prefix/any", "backend": "infra-backend-v1"},
    ),
    (
        "httproute-path-match-order",
        "same-namespace",
        {"path": "/match/any", "backend": "infra-backend-v3"},
    ),
    # conformance/tests/httproute-matching-across-routes.go (Gateway same-namespace)
    (
        "httproute-matching-across-routes",
        "same-namespace",
        {"host": "example.com", "path": "/", "backend": "infra-backend-v1"},
    ),
    (
        "httproute-matching-across-routes",
        "same-namespace",
        {"host": "example.com", "path": "/example", "backend": "infra-backend-v1"},
    ),
    (
        "httproute-matching-across-routes",
        "same-namespace",
        {"host": "example.net", "path": "/example", "backend": "infra-backend-v1"},
    ),
    (
        "httproute-matching-across-routes",
        "same-namespace",
        {
            "host": "example.com",
            "path": "/example",
            "headers": {"Version": "one"},
            "backend": "infra-backend-v1",
        },
    ),
    (
        "httproute-matching-across-routes",
        "same-namespace",
        {"host": "example.com", "path": "/v2", "backend": "infra-backend-v2"},
    ),
    (
        "httproute-matching-across-routes",
        "same-namespace",
        {"host": "example.net", "path": "/v2", "backend": "infra-backend-v1"},
    ),
    (
        "httproute-matching-across-routes",
        "same-namespace",
        {"host": "example.com", "path": "/v2/example", "backend": "infra-backend-v2"},
    ),
    (
        "httproute-matching-across-routes",
        "same-namespace",
        {
            "host": "example.com",
            "path": "/",
            "headers": {"Version": "two"},
            "backend": "infra-backend-v2",
        },
    ),
    # conformance/tests/httproute-query-param-matching.go (Gateway same-namespace)
    (
        "httproute-query-param-matching",
        "same-namespace",
        {"path": "/?animal=whale", "backend": "infra-backend-v1"},
    ),
    (
        "httproute-query-param-matching",
        "same-namespace",
        {"path": "/?animal=dolphin", "backend": "infra-backend-v2"},
    ),
    (
        "httproute-query-param-matching",
        "same-namespace",
        {"path": "/?animal=dolphin&color=blue", "backend": "infra-backend-v3"},
    ),
    (
        "httproute-query-param-matching",
        "same-namespace",
        {"path": "/?ANIMAL=Whale", "backend": "infra-backend-v3"},
    ),
    (
        "httproute-query-param-matching",
        "same-namespace",
        {"path": "/?animal=whale&otherparam=irrelevant", "backend": "infra-backend-v1"},
    ),
    (
        "httproute-query-param-matching",
        "same-namespace",
        {"path": "/?animal=dolphin&color=yellow", "backend": "infra-backend-v2"},
    ),
    ("httproute-query-param-matching", "same-namespace", {"path": "/?color=blue", "status": 404}),
    ("httproute-query-param-matching", "same-namespace", {"path": "/?animal=dog", "status": 404}),
    (
        "httproute-query-param-matching",
        "same-namespace",
        {"path": "/?animal=whaledolphin", "status": 404},
    ),
    ("httproute-query-param-matching", "same-namespace", {"path": "/", "status": 404}),
    (
        "httproute-query-param-matching",
        "same-namespace",
        {"path": "/path1?animal=whale", "backend": "infra-backend-v1"},
    ),
    (
        "httproute-query-param-matching",
        "same-namespace",
        {"path": "/?animal=whale", "headers": {"version": "one"}, "backend": "infra-backend-v2"},
    ),
    (
        "httproute-query-param-matching",
        "same-namespace",
        {
            "path": "/path2?animal=whale",
            "headers": {"version": "two"},
            "backend": "infra-backend-v3",
        },
    ),
    (
        "httproute-query-param-matching",
        "same-namespace",
        {"path": "/path3?animal=shark", "backend": "infra-backend-v1"},
    ),
    (
        "httproute-query-param-matching",
        "same-namespace",
        {
            "path": "/path4?animal=kraken",
            "headers": {"version": "three"},
            "backend": "infra-backend-v1",
        },
    ),
    ("httproute-query-param-matching", "same-namespace", {"path": "/?animal=shark", "status": 404}),
    (
        "httproute-query-param-matching",
        "same-namespace",
        {"path": "/path4?animal=kraken", "status": 404},
    ),
    (
        "httproute-query-param-matching",
        "same-namespace",
        {"path": "/path5?animal=hydra", "backend": "infra-backend-v1"},
    ),
    (
        "httproute-query-param-matching",
        "same-namespace",
        {"path": "/?animal=hydra", "headers": {"version": "four"}, "backend": "infra-backend-v3"},
    ),
    # conformance/tests/httproute-method-matching.go (Gateway same-namespace)
    (
        "httproute-method-matching",
        "same-namespace",
        {"path": "/", "method": "POST", "backend": "infra-backend-v1"},
    ),
    (
        "httproute-method-matching",
        "same-namespace",
        {"path": "/", "method": "GET", "backend": "infra-backend-v2"},
    ),
    ("httproute-method-matching", "same-namespace", {"path": "/", "method": "HEAD", "status": 404}),
    (
        "httproute-method-matching",
        "same-namespace",
        {"path": "/path1", "method": "GET", "backend": "infra-backend-v1"},
    ),
    (
        "httproute-method-matching",
        "same-namespace",
        {
            "path": "/",
            "method": "PUT",
            "headers": {"version": "one"},
            "backend": "infra-backend-v2",
        },
    ),
    (
        "httproute-method-matching",
        "same-namespace",
        {
            "path": "/path2",
            "method": "POST",
            "headers": {"version": "two"},
            "backend": "infra-backend-v3",
        },
    ),
    (
        "httproute-method-matching",
        "same-namespace",
        {"path": "/path3", "method": "PATCH", "backend": "infra-backend-v1"},
    ),
    (
        "httproute-method-matching",
        "same-namespace",
        {
            "path": "/path4",
            "method": "DELETE",
            "headers": {"version": "three"},
            "backend": "infra-backend-v1",
        },
    ),
    ("httproute-method-matching", "same-namespace", {"path": "/", "method": "PUT", "status": 404}),
    (
        "httproute-method-matching",
        "same-namespace",
        {"path": "/path4", "method": "DELETE", "status": 404},
    ),
    (
        "httproute-method-matching",
        "same-namespace",
        {"path": "/path5", "method": "PATCH", "backend": "infra-backend-v1"},
    ),
    (
        "httproute-method-matching",
        "same-namespace",
        {
            "path": "/",
            "method": "PATCH",
            "headers": {"version": "four"},
            "backend": "infra-backend-v2",
        },
    ),
    # conformance/tests/httproute-rewrite-path.go (Gateway same-namespace)
    (
        "httproute-rewrite-path",
        "same-namespace",
        {"path": "/prefix/one/two", "backend": "infra-backend-v1", "exp_path": "/one/two"},
    ),
    (
        "httproute-rewrite-path",
        "same-namespace",
        {"path": "/strip-prefix/three", "backend": "infra-backend-v1", "exp_path": "/three"},
    ),
    (
        "httproute-rewrite-path",
        "same-namespace",
        {"path": "/strip-prefix", "backend": "infra-backend-v1", "exp_path": "/"},
    ),
    (
        "httproute-rewrite-path",
        "same-namespace",
        {"path": "/full/one/two", "backend": "infra-backend-v1", "exp_path": "/one"},
    ),
    (
        "httproute-rewrite-path",
        "same-namespace",
        {
            "path": "/full/rewrite-path-and-modify-headers/test",
            "headers": {
                "X-Header-Remove": "remove-val",
                "X-Header-Add-Append": "append-val-1",
                "X-Header-Set": "set-val",
            },
            "backend": "infra-backend-v1",
            "exp_path": "/test",
            "exp_headers": {
                "X-Header-Add": "header-val-1",
                "X-Header-Add-Append": "append-val-1,header-val-2",
                "X-Header-Set": "set-overwrites-values",
            },
            "exp_absent": ["X-Header-Remove"],
        },
    ),
    (
        "httproute-rewrite-path",
        "same-namespace",
        {
            "path": "/prefix/rewrite-path-and-modify-headers/one",
            "headers": {
                "X-Header-Remove": "remove-val",
                "X-Header-Add-Append": "append-val-1",
                "X-Header-Set": "set-val",
            },
            "backend": "infra-backend-v1",
            "exp_path": "/prefix/one",
            "exp_headers": {
                "X-Header-Add": "header-val-1",
                "X-Header-Add-Append": "append-val-1,header-val-2",
                "X-Header-Set": "set-overwrites-values",
            },
            "exp_absent": ["X-Header-Remove"],
        },
    ),
    # conformance/tests/httproute-request-header-modifier.go (Gateway same-namespace)
    (
        "httproute-request-header-modifier",
        "same-namespace",
        {
            "path": "/set",
            "headers": {"Some-Other-Header": "val"},
            "backend": "infra-backend-v1",
            "exp_path": "/set",
            "exp_headers": {"Some-Other-Header": "val", "X-Header-Set": "set-overwrites-values"},
        },
    ),
    (
        "httproute-request-header-modifier",
        "same-namespace",
        {
            "path": "/set",
            "headers": {"Some-Other-Header": "val", "X-Header-Set": "some-other-value"},
            "backend": "infra-backend-v1",
            "exp_path": "/set",
            "exp_headers": {"Some-Other-Header": "val", "X-Header-Set": "set-overwrites-values"},
        },
    ),
    (
        "httproute-request-header-modifier",
        "same-namespace",
        {
            "path": "/add",
            "headers": {"Some-Other-Header": "val"},
            "backend": "infra-backend-v1",
            "exp_path": "/add",
            "exp_headers": {"Some-Other-Header": "val", "X-Header-Add": "add-appends-values"},
        },
    ),
    (
        "httproute-request-header-modifier",
        "same-namespace",
        {
            "path": "/add",
            "headers": {"Some-Other-Header": "val", "X-Header-Add": "some-other-value"},
            "backend": "infra-backend-v1",
            "exp_path": "/add",
            "exp_headers": {
                "Some-Other-Header": "val",
                "X-Header-Add": "some-other-value,add-appends-values",
            },
        },
    ),
    (
        "httproute-request-header-modifier",
        "same-namespace",
        {
            "path": "/remove",
            "headers": {"X-Header-Remove": "val"},
            "backend": "infra-backend-v1",
            "exp_path": "/remove",
            "exp_absent": ["X-Header-Remove"],
        },
    ),
    (
        "httproute-request-header-modifier",
        "same-namespace",
        {
            "path": "/multiple",
            "headers": {
                "X-Header-Set-2": "set-val-2",
                "X-Header-Add-2": "add-val-2",
                "X-Header-Remove-2": "remove-val-2",
                "Another-Header": "another-header-val",
            },
            "backend": "infra-backend-v1",
            "exp_path": "/multiple",
            "exp_headers": {
                "X-Header-Set-1": "header-set-1",
                "X-Header-Set-2": "header-set-2",
                "X-Header-Add-1": "header-add-1",
                "X-Header-Add-2": "add-val-2,header-add-2",
                "X-Header-Add-3": "header-add-3",
                "Another-Header": "another-header-val",
            },
            "exp_absent": ["X-Header-Remove-1", "X-Header-Remove-2"],
        },
    ),
    (
        "httproute-request-header-modifier",
        "same-namespace",
        {
            "path": "/case-insensitivity",
            "headers": {
                "x-header-set": "original-val-set",
                "x-header-add": "original-val-add",
                "x-header-remove": "original-val-remove",
                "Another-Header": "another-header-val",
            },
            "backend": "infra-backend-v1",
            "exp_path": "/case-insensitivity",
            "exp_headers": {
                "X-Header-Set": "header-set",
                "X-Header-Add": "original-val-add,header-add",
                "Another-Header": "another-header-val",
            },
            "exp_absent": ["x-header-remove", "X-Header-Remove"],
        },
    ),
    # conformance/tests/httproute-redirect-path.go (Gateway same-namespace)
    (
        "httproute-redirect-path",
        "same-namespace",
        {
            "path": "/original-prefix/lemon",
            "status": 302,
            "redirect": {
                "Scheme": None,
                "Host": None,
                "Port": None,
                "Path": "/replacement-prefix/lemon",
            },
        },
    ),
    (
        "httproute-redirect-path",
        "same-namespace",
        {
            "path": "/full/path/original",
            "status": 302,
            "redirect": {
                "Scheme": None,
                "Host": None,
                "Port": None,
                "Path": "/full-path-replacement",
            },
        },
    ),
    (
        "httproute-redirect-path",
        "same-namespace",
        {
            "path": "/path-and-host",
            "status": 302,
            "redirect": {
                "Scheme": None,
                "Host": "example.org",
                "Port": None,
                "Path": "/replacement-prefix",
            },
        },
    ),
    (
        "httproute-redirect-path",
        "same-namespace",
        {
            "path": "/path-and-status",
            "status": 301,
            "redirect": {"Scheme": None, "Host": None, "Port": None, "Path": "/replacement-prefix"},
        },
    ),
    (
        "httproute-redirect-path",
        "same-namespace",
        {
            "path": "/full-path-and-host",
            "status": 302,
            "redirect": {
                "Scheme": None,
                "Host": "example.org",
                "Port": None,
                "Path": "/replacement-full",
            },
        },
    ),
    (
        "httproute-redirect-path",
        "same-namespace",
        {
            "path": "/full-path-and-status",
            "status": 301,
            "redirect": {"Scheme": None, "Host": None, "Port": None, "Path": "/replacement-full"},
        },
    ),
    # conformance/tests/gateway-http-listener-isolation.go (Gateway http-listener-isolation)
    (
        "gateway-http-listener-isolation",
        "http-listener-isolation",
        {"host": "bar.com", "path": "/empty-hostname", "backend": "infra-backend-v1"},
    ),
    (
        "gateway-http-listener-isolation",
        "http-listener-isolation",
        {"host": "bar.com", "path": "/wildcard-example-com", "status": 404},
    ),
    (
        "gateway-http-listener-isolation",
        "http-listener-isolation",
        {"host": "bar.com", "path": "/wildcard-foo-example-com", "status": 404},
    ),
    (
        "gateway-http-listener-isolation",
        "http-listener-isolation",
        {"host": "bar.com", "path": "/abc-foo-example-com", "status": 404},
    ),
    (
        "gateway-http-listener-isolation",
        "http-listener-isolation",
        {"host": "bar.example.com", "path": "/empty-hostname", "status": 404},
    ),
    (
        "gateway-http-listener-isolation",
        "http-listener-isolation",
        {"host": "bar.example.com", "path": "/wildcard-example-com", "backend": "infra-backend-v1"},
    ),
    (
        "gateway-http-listener-isolation",
        "http-listener-isolation",
        {"host": "bar.example.com", "path": "/wildcard-foo-example-com", "status": 404},
    ),
    (
        "gateway-http-listener-isolation",
        "http-listener-isolation",
        {"host": "bar.example.com", "path": "/abc-foo-example-com", "status": 404},
    ),
    (
        "gateway-http-listener-isolation",
        "http-listener-isolation",
        {"host": "bar.foo.example.com", "path": "/empty-hostname", "status": 404},
    ),
    (
        "gateway-http-listener-isolation",
        "http-listener-isolation",
        {"host": "bar.foo.example.com", "path": "/wildcard-example-com", "status": 404},
    ),
    (
        "gateway-http-listener-isolation",
        "http-listener-isolation",
        {
            "host": "bar.foo.example.com",
            "path": "/wildcard-foo-example-com",
            "backend": "infra-backend-v1",
        },
    ),
    (
        "gateway-http-listener-isolation",
        "http-listener-isolation",
        {"host": "bar.foo.example.com", "path": "/abc-foo-example-com", "status": 404},
    ),
    (
        "gateway-http-listener-isolation",
        "http-listener-isolation",
        {"host": "abc.foo.example.com", "path": "/empty-hostname", "status": 404},
    ),
    (
        "gateway-http-listener-isolation",
        "http-listener-isolation",
        {"host": "abc.foo.example.com", "path": "/wildcard-example-com", "status": 404},
    ),
    (
        "gateway-http-listener-isolation",
        "http-listener-isolation",
        {"host": "abc.foo.example.com", "path": "/wildcard-foo-example-com", "status": 404},
    ),
    (
        "gateway-http-listener-isolation",
        "http-listener-isolation",
        {
            "host": "abc.foo.example.com",
            "path": "/abc-foo-example-com",
            "backend": "infra-backend-v1",
        },
    ),
    # conformance/tests/httproute-invalid-cross-namespace-backend-ref.go (Gateway same-namespace)
    # conformance/tests/httproute-partially-invalid-via-invalid-reference-grant.go (Gateway same-namespace)
]


@pytest.mark.parametrize(("test", "gateway", "case"), CASES)
def test_conformance_expectation(test: str, gateway: str, case: dict[str, Any]) -> None:
    d = _model(test).decide(
        f"{NS}/{gateway}",
        80,
        case.get("method", "GET"),
        case.get("host", ""),
        case["path"],
        case.get("headers", {}),
    )
    assert d.status == case.get("status", 200), d.reason
    if "backend" in case:
        live = [b for b in d.backends if b.valid and b.weight > 0]
        assert live and all(
            dep.startswith(case["backend"]) for b in live for dep in b.deployments
        ), d.reason
    if "exp_path" in case:
        assert d.request.path == case["exp_path"]
    for name, value in case.get("exp_headers", {}).items():
        assert _get(d.request.headers, name) == value
    for name in case.get("exp_absent", []):
        assert _get(d.request.headers, name) is None
    if "redirect" in case:
        assert d.redirect is not None
        want = case["redirect"]
        assert (want.get("Path") or d.redirect.path) == d.redirect.path
        assert (want.get("Host") or d.redirect.host) == d.redirect.host
