#!/usr/bin/env bash
# Validates every Kubernetes manifest offline: renders the kustomize base and each overlay
# (kubectl's built-in kustomize) and checks the result with kubernetes-validate --strict against
# the Kubernetes version the README names; lints the Dockerfile with hadolint.
set -euo pipefail
cd "$(dirname "$0")/.."
K8S_VERSION=${K8S_VERSION:-1.35.0}
out=.local/deploy-check
rm -rf "$out" && mkdir -p "$out"
status=0
for dir in deploy/k8s/base deploy/k8s/overlays/*/; do
  name=$(basename "$dir")
  kubectl kustomize "$dir" >"$out/$name.yaml" 2>"$out/$name.err" || { echo "render $dir failed:"; cat "$out/$name.err"; status=1; continue; }
  if kubernetes-validate --strict --quiet -k "$K8S_VERSION" "$out/$name.yaml"; then
    echo "deploy-check: $dir renders and validates (Kubernetes $K8S_VERSION, strict)"
  else
    echo "deploy-check: $dir does not validate"; status=1
  fi
done
hadolint deploy/Dockerfile && echo "deploy-check: deploy/Dockerfile passes hadolint" || status=1
exit $status
