"""Offline schema validation against the Gateway API v1.6.1 CRDs (sandbox.scenario.crds)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.errors import InputError
from sandbox.scenario import crds as schema

CRDS = os.environ.get(schema.ENV_CRDS) or ""


@pytest.fixture(scope="module")
def crds() -> schema.CRDSet:
    if not CRDS or not Path(CRDS).is_dir():
        pytest.skip(
            f"{schema.ENV_CRDS} is not set to a folder of Gateway API CRDs "
            "(CI sets it to shared/upstream/gateway-api/crd/experimental)"
        )
    return schema.load_crds(CRDS)


VALID = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: eg
spec:
  gatewayClassName: eg
  listeners:
  - name: http
    protocol: HTTP
    port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: backend
spec:
  parentRefs:
  - name: eg
  hostnames: [www.example.com]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /}
      queryParams:
      - {name: x, value: "1"}
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      weight: 1
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc}
spec:
  parentRefs: [{name: eg}]
  rules:
  - matches: [{method: {service: a.B, method: Echo}}]
    backendRefs: [{name: grpc-backend, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: rg, namespace: other}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: "", kind: Service}]
---
apiVersion: v1
kind: Service
metadata: {name: infra-backend-v1}
spec:
  selector: {app: infra-backend-v1}
  ports: [{port: 8080, targetPort: 3000}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: infra-backend-v1}
spec:
  selector: {matchLabels: {app: infra-backend-v1}}
  template:
    metadata: {labels: {app: infra-backend-v1}}
    spec:
      containers: [{name: echo, image: registry.k8s.io/gateway-api/echo-basic:v1.5.1}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
"""


def _write(tmp_path: Path, text: str, name: str = "app.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _errors(crds: schema.CRDSet, tmp_path: Path, text: str) -> list[str]:
    return schema.validate_files([_write(tmp_path, text)], crds, base=tmp_path).errors


def test_annotations_give_release_and_channel(crds: schema.CRDSet) -> None:
    assert crds.bundle_version == "v1.6.1"
    assert crds.channel == "experimental"
    assert "HTTPRoute" in crds.kinds("gateway.networking.k8s.io")


def test_valid_manifests_pass(crds: schema.CRDSet, tmp_path: Path) -> None:
    result = schema.validate_files([_write(tmp_path, VALID)], crds, base=tmp_path)
    assert result.errors == []
    assert result.validated == 6
    assert result.notes == ["not schema-validated (no schema for v1): ConfigMap"]


def test_upstream_base_manifests_are_valid(crds: schema.CRDSet) -> None:
    base = Path(CRDS).parents[1] / "conformance" / "base" / "manifests.yaml"
    if not base.is_file():
        pytest.skip(f"no upstream base manifests at {base}")
    result = schema.validate_files([base], crds)
    assert result.errors == []
    assert result.validated > 20


def test_wrong_field_type_names_file_line_object_field(crds: schema.CRDSet, tmp_path: Path) -> None:
    bad = VALID.replace("      port: 8080\n      weight: 1", '      port: "8080"\n      weight: 1')
    errors = _errors(crds, tmp_path, bad)
    assert len(errors) == 1
    line = bad.splitlines().index('      port: "8080"') + 1
    assert errors[0] == (
        f"app.yaml:{line}: HTTPRoute/backend: spec.rules[0].backendRefs[0].port: "
        "must be integer, got string '8080'"
    )


def test_unknown_enum_value(crds: schema.CRDSet, tmp_path: Path) -> None:
    bad = VALID.replace("type: PathPrefix", "type: Prefix")
    errors = _errors(crds, tmp_path, bad)
    assert len(errors) == 1
    assert (
        "HTTPRoute/backend: spec.rules[0].matches[0].path.type: unsupported value 'Prefix'"
        in errors[0]
    )
    assert "'PathPrefix'" in errors[0]
    assert errors[0].startswith(f"app.yaml:{_line(bad, 'type: Prefix')}: ")


def test_missing_required_field(crds: schema.CRDSet, tmp_path: Path) -> None:
    errors = _errors(crds, tmp_path, VALID.replace("    protocol: HTTP\n", ""))
    assert errors == [
        "app.yaml:8: Gateway/eg: spec.listeners[0].protocol: required field is missing"
    ]


def test_unknown_field_with_suggestion(crds: schema.CRDSet, tmp_path: Path) -> None:
    errors = _errors(crds, tmp_path, VALID.replace("  hostnames:", "  hostname:"))
    assert len(errors) == 1
    assert (
        "HTTPRoute/backend: spec.hostname: unknown field (did you mean 'hostnames'?)" in errors[0]
    )


def test_unknown_kind_and_version(crds: schema.CRDSet, tmp_path: Path) -> None:
    bad = VALID.replace("kind: GRPCRoute", "kind: GrpcRoute")
    errors = _errors(crds, tmp_path, bad)
    assert errors == [
        f"app.yaml:{_line(bad, 'kind: GrpcRoute')}: GrpcRoute/grpc: kind: unknown kind 'GrpcRoute' in "
        "gateway.networking.k8s.io v1.6.1 (experimental channel) "
        "(did you mean 'GRPCRoute'?)"
    ]
    errors = _errors(
        crds,
        tmp_path,
        VALID.replace(
            "gateway.networking.k8s.io/v1\nkind: Gateway\n",
            "gateway.networking.k8s.io/v9\nkind: Gateway\n",
        ),
    )
    assert len(errors) == 1 and "Gateway is not served as gateway.networking.k8s.io/v9" in errors[0]


def test_core_kinds_minimal(crds: schema.CRDSet, tmp_path: Path) -> None:
    errors = _errors(
        crds,
        tmp_path,
        VALID.replace(
            "ports: [{port: 8080, targetPort: 3000}]", "ports: [{port: 70000, targetPort: http}]"
        ),
    )
    assert len(errors) == 1
    assert (
        "Service/infra-backend-v1: spec.ports[0].port: 70000 is greater than the maximum"
        in errors[0]
    )
    errors = _errors(
        crds, tmp_path, VALID.replace("  selector: {matchLabels: {app: infra-backend-v1}}\n", "")
    )
    assert len(errors) == 1 and "Deployment/infra-backend-v1: spec.selector: required" in errors[0]


def test_list_map_keys_reject_duplicates(crds: schema.CRDSet, tmp_path: Path) -> None:
    dup = VALID.replace(
        "    port: 80\n", "    port: 80\n  - name: http\n    protocol: HTTP\n    port: 8080\n"
    )
    errors = _errors(crds, tmp_path, dup)
    assert len(errors) == 1
    assert "Gateway/eg: spec.listeners[1]: duplicate entry with name='http'" in errors[0]


def test_metadata_name_required_and_not_a_mapping(crds: schema.CRDSet, tmp_path: Path) -> None:
    bad = VALID.replace("metadata: {name: grpc}", "metadata: {}")
    errors = _errors(crds, tmp_path, bad)
    assert errors == [
        f"app.yaml:{_line(bad, 'metadata: {}')}: GRPCRoute/<unnamed>: metadata.name: required field is missing"
    ]
    errors = schema.validate_objects([("x.yaml", ["a"]), ("x.yaml", {"kind": "Gateway"})], crds)
    assert errors == [
        "x.yaml: <not an object>: a manifest document must be a mapping",
        "x.yaml: Gateway/<unnamed>: apiVersion: required field is missing",
    ]


def test_metadata_name_is_a_dns_subdomain(crds: schema.CRDSet, tmp_path: Path) -> None:
    # the API server rejects such names (apimachinery NameIsDNSSubdomain): so does the check
    for name in ("Grpc", "grpc_route", "x" * 254):
        bad = VALID.replace("metadata: {name: grpc}", f"metadata: {{name: {name}}}")
        errors = _errors(crds, tmp_path, bad)
        assert len(errors) == 1 and f"GRPCRoute/{name}: metadata.name: " in errors[0], errors
    ok = VALID.replace("metadata: {name: grpc}", "metadata: {name: grpc.v1-2}")
    assert _errors(crds, tmp_path, ok) == []


def test_check_objects_raises_input_error(crds: schema.CRDSet, tmp_path: Path) -> None:
    objs = schema.load_manifest_file(
        _write(tmp_path, VALID.replace("port: 80\n", "port: 0\n")), display="s/app.yaml"
    )
    with pytest.raises(InputError) as info:
        schema.check_objects(objs, crds)
    assert info.value.exit_code == 2
    assert "s/app.yaml:10: Gateway/eg: spec.listeners[0].port: 0 is less than the minimum" in str(
        info.value
    )


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "a: [1,\nb: 2\n")
    with pytest.raises(InputError) as info:
        schema.load_manifest_file(p, display="bad.yaml")
    assert info.value.exit_code == 2
    assert str(info.value).startswith(f"{p}:3: invalid YAML: ")


def test_int_or_string_nullable_preserve_unknown() -> None:
    converted = schema.k8s_to_jsonschema(
        {
            "type": "object",
            "properties": {
                "a": {"type": "string", "x-kubernetes-int-or-string": True},
                "b": {"type": "string", "nullable": True},
                "c": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"d": {"type": "integer"}},
                },
            },
        }
    )
    from jsonschema import Draft4Validator

    v = Draft4Validator(converted)
    assert v.is_valid({"a": 1, "b": None, "c": {"d": 1, "extra": True}})
    assert v.is_valid({"a": "50%"})
    assert not v.is_valid({"a": 1.5})
    assert not v.is_valid({"zzz": 1})  # closed: structural objects reject unknown fields


def test_crds_dir_env_must_be_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(schema.ENV_CRDS, str(tmp_path / "nope"))
    with pytest.raises(InputError, match=schema.ENV_CRDS):
        schema.crds_dir()


def test_crds_dir_offline_without_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(schema.ENV_CRDS, raising=False)
    monkeypatch.setenv("SANDBOX_CACHE_DIR", str(tmp_path))
    assert schema.crds_dir(download=False) is None
