#!/usr/bin/env bash
# The Envoy Gateway quickstart tutorial's own steps (gateway.envoyproxy.io "Quickstart", kind
# variant), as a user pastes them, timed: create a kind cluster, server-side apply of
# install.yaml, wait for the controller, apply the quickstart, find the envoy Service by its
# owning-gateway labels, port-forward it, curl until 200. The baseline of scripts/bench.py.
#
# Inputs (environment): TUTORIAL_CLUSTER (name), TUTORIAL_KIND_IMAGE (node image),
# TUTORIAL_KIND_CONFIG (kind config: this host's kubelet/containerd tweaks, nothing else),
# SANDBOX_ENVOY_GATEWAY_INSTALL_YAML (install.yaml), TUTORIAL_QUICKSTART (the manifests),
# TUTORIAL_KUBECONFIG (where kind writes; never the user's). Prints "step SECONDS" lines.
set -euo pipefail
export KUBECONFIG="$TUTORIAL_KUBECONFIG"
K=(kubectl --context "kind-$TUTORIAL_CLUSTER")
PF_PID=
cleanup() { [ -n "$PF_PID" ] && kill "$PF_PID" 2>/dev/null || true; }
trap cleanup EXIT
last=$(date +%s%N)
step() {
  local now ms; now=$(date +%s%N); ms=$(( (now - last) / 1000000 ))
  printf 'step %s %d.%03d\n' "$1" $(( ms / 1000 )) $(( ms % 1000 )); last=$now
}

kind create cluster --name "$TUTORIAL_CLUSTER" --image "$TUTORIAL_KIND_IMAGE" \
  --config "$TUTORIAL_KIND_CONFIG" --wait 5m >&2
step create-cluster
"${K[@]}" apply --server-side -f "$SANDBOX_ENVOY_GATEWAY_INSTALL_YAML" > /dev/null
step apply-install-yaml
"${K[@]}" wait --timeout=5m -n envoy-gateway-system deployment/envoy-gateway --for=condition=Available >&2
step wait-envoy-gateway
"${K[@]}" apply -f "$TUTORIAL_QUICKSTART" >&2
step apply-quickstart
svc=""
for _ in $(seq 1 300); do  # the tutorial's one-liner, until the controller has made the Service
  svc=$("${K[@]}" get svc -n envoy-gateway-system \
    --selector=gateway.envoyproxy.io/owning-gateway-namespace=default,gateway.envoyproxy.io/owning-gateway-name=eg \
    -o jsonpath='{.items[0].metadata.name}' 2>/dev/null || true)
  [ -n "$svc" ] && break
  sleep 0.5
done
[ -n "$svc" ] || { echo "no envoy Service" >&2; exit 1; }
step find-envoy-service
"${K[@]}" -n envoy-gateway-system port-forward "service/$svc" 8888:80 >/dev/null 2>&1 &
PF_PID=$!
for _ in $(seq 1 600); do  # curl until 200: the pod starts, the port-forward connects
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "Host: www.example.com" \
    http://localhost:8888/get || true)
  if [ "$code" = 200 ]; then break; fi
  if ! kill -0 "$PF_PID" 2>/dev/null; then  # it exits while the pod is not running: again
    "${K[@]}" -n envoy-gateway-system port-forward "service/$svc" 8888:80 >/dev/null 2>&1 &
    PF_PID=$!
  fi
  sleep 0.5
done
[ "$code" = 200 ] || { echo "no 200 (last $code)" >&2; exit 1; }
step curl-200
