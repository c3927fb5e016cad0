#!/usr/bin/env bash
# Validates every Kubernetes manifest offline: renders the kustomize base and each overlay
# (kubectl's built-in kustomize) and checks the result with kubernetes-validate --strict against
# the Kubernetes version docs/configuration.md names; kubernetes-validate has no schema for
# cert-manager's kinds, so scripts/deploy_check.py checks those and what spans objects
# (certificates, their mounts, probes, NetworkPolicies), and its tests prove it catches each
# broken manifest; checks deploy/aio/ (the Akri ConnectorTemplate and connector metadata, which
# kubernetes-validate has no schema for) with scripts/aio_check.py, whose tests break each field it
# checks; checks the JSON Schemas of docs/schemas and their examples; checks the Prometheus alert rules and runs their unit tests (promtool); lints the
# Dockerfile with hadolint.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1
K8S_VERSION=${K8S_VERSION:-1.35.0}
out=.local/deploy-check
rm -rf "$out" && mkdir -p "$out"
status=0
for dir in deploy/k8s/base deploy/k8s/overlays/*/; do
  name=$(basename "$dir")
  kubectl kustomize "$dir" >"$out/$name.yaml" 2>"$out/$name.err" || { echo "render $dir failed:"; cat "$out/$name.err"; status=1; continue; }
  # Its only warnings are for cert-manager's kinds ("Couldn't find schema"), which
  # deploy_check.py covers; any other line is shown.
  if kubernetes-validate --strict --quiet -k "$K8S_VERSION" "$out/$name.yaml" >"$out/$name.validate" 2>&1; then
    echo "deploy-check: $dir renders and validates (Kubernetes $K8S_VERSION, strict)"
  else
    echo "deploy-check: $dir does not validate"; status=1
  fi
  grep -v "Couldn't find schema for kind \(Certificate\|Issuer\) with api version cert-manager.io/" "$out/$name.validate" || true
  python3 scripts/deploy_check.py "$out/$name.yaml" || status=1
done
python3 -m unittest discover -s scripts -p 'test_deploy_check.py' 2>"$out/unittest.err" \
  && echo "deploy-check: deploy_check.py catches every broken manifest of its tests" \
  || { cat "$out/unittest.err"; status=1; }
python3 scripts/aio_check.py deploy/aio \
  && echo "deploy-check: deploy/aio template and metadata pass their field and schema checks" || status=1
python3 -m unittest discover -s scripts -p 'test_aio_check.py' 2>"$out/aio-unittest.err" \
  && echo "deploy-check: aio_check.py catches every broken template and metadata of its tests" \
  || { cat "$out/aio-unittest.err"; status=1; }
promtool check rules deploy/prometheus/alerts.yaml >"$out/promtool.out" 2>&1 \
  && (cd deploy/prometheus && promtool test rules alerts.test.yaml) >>"$out/promtool.out" 2>&1 \
  && echo "deploy-check: deploy/prometheus/alerts.yaml passes promtool check and its unit tests" \
  || { cat "$out/promtool.out"; status=1; }
python3 scripts/schema_check.py || status=1
hadolint deploy/Dockerfile && echo "deploy-check: deploy/Dockerfile passes hadolint" || status=1
exit $status
