"""Pod names of the local provider, shaped like the ones a Deployment's ReplicaSet creates.

Facts (kubernetes/kubernetes): ``rand.SafeEncodeString`` and the alphabet
``bcdfghjklmnpqrstvwxz2456789`` (staging/src/k8s.io/apimachinery/pkg/util/rand/rand.go);
``ComputeHash`` = SafeEncodeString(decimal FNV-32a) (pkg/controller/controller_utils.go);
generated names truncate the base to 58 and add 5 random characters
(staging/src/k8s.io/apiserver/pkg/storage/names/generate.go).
"""

from __future__ import annotations

import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.reference.model import DeploymentInfo, ListenerInfo
from sandbox.targets.local.pods import (
    K8S_ALPHANUMS,
    deployment_of_pod,
    fnv32a,
    generate_name,
    pod_names,
    pod_template_hash,
    safe_encode_string,
)
from sandbox.targets.local.tls import hostname_matches

DNS_LABEL = st.from_regex(r"\A[a-z]([a-z0-9-]{0,40}[a-z0-9])?\Z")


def test_alphabet_is_kubernetes_own() -> None:
    assert K8S_ALPHANUMS == "bcdfghjklmnpqrstvwxz2456789"
    assert len(K8S_ALPHANUMS) == 27


def test_safe_encode_string_maps_digits_like_go() -> None:
    # '0' is rune 48 -> 48 % 27 = 21 -> '4'; '6' is 54 -> 0 -> 'b'
    assert safe_encode_string("0123456789") == "456789bcdf"


def test_fnv32a_known_values() -> None:
    # FNV-1a 32-bit test vectors (offset basis for "", and "a")
    assert fnv32a(b"") == 0x811C9DC5
    assert fnv32a(b"a") == 0xE40C292C
    assert fnv32a(b"foobar") == 0xBF9CF968


def test_template_hash_is_stable_and_short() -> None:
    dep = DeploymentInfo("default", "infra-backend-v1", 2, {"app": "infra-backend-v1"})
    h = pod_template_hash(dep)
    assert h == pod_template_hash(
        DeploymentInfo("default", "infra-backend-v1", 3, {"app": "infra-backend-v1"})
    )
    assert 1 <= len(h) <= 10
    assert set(h) <= set("456789bcdf")
    assert h != pod_template_hash(
        DeploymentInfo("default", "infra-backend-v1", 2, {"app": "other"})
    )


@settings(max_examples=50, deadline=None)
@given(DNS_LABEL, st.integers(min_value=1, max_value=8), st.integers())
def test_pod_names_have_the_replicaset_shape(name: str, replicas: int, seed: int) -> None:
    dep = DeploymentInfo("ns", name, replicas)
    names = pod_names(dep, replicas, random.Random(seed))
    assert len(names) == len(set(names)) == replicas
    for pod in names:
        assert len(pod) <= 63
        if len(name) + 1 + len(pod_template_hash(dep)) + 1 <= 58:
            assert re.fullmatch(
                rf"{re.escape(name)}-[456789bcdf]{{1,10}}-[{K8S_ALPHANUMS}]{{5}}", pod
            )
            assert pod.startswith(name + "-")  # what expect.backend matches
            assert deployment_of_pod(pod) == name


def test_generate_name_truncates_the_base_to_58() -> None:
    name = generate_name("x" * 70 + "-", random.Random(1))
    assert len(name) == 63
    assert name.startswith("x" * 58)


def test_zero_replicas_make_no_pods() -> None:
    assert pod_names(DeploymentInfo("ns", "web", 0), 0, random.Random(0)) == []


def test_listener_hostname_matching_for_sni() -> None:
    assert hostname_matches(None, "anything.example.com")
    assert hostname_matches("a.example.com", "A.example.com")
    assert not hostname_matches("a.example.com", "b.example.com")
    assert hostname_matches("*.example.org", "b.example.org")
    assert hostname_matches("*.example.org", "c.b.example.org")
    assert not hostname_matches("*.example.org", "example.org")
    assert ListenerInfo("x", 443, "HTTPS").hostname is None
