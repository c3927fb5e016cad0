#!/usr/bin/env bash
# Validates every Kubernetes manifest offline: renders the kustomize base and each overlay
# (kubectl's built-in kustomize) and checks the result with kubernetes-validate --strict against
# the Kubernetes version docs/configuration.md names; lints the Dockerfile with hadolint.
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
  # Ingest replicas split the streams by INGEST_REPLICAS and the ordinal in POD_NAME: both must
  # match the StatefulSet, and readiness must ask for the service-specific health.
  python3 - "$out/$name.yaml" <<'PY' || status=1
import sys, yaml
bad = []
for d in yaml.safe_load_all(open(sys.argv[1])):
    if not d or d.get("kind") not in ("StatefulSet", "Deployment"):
        continue
    name, spec = d["metadata"]["name"], d["spec"]
    for c in spec["template"]["spec"]["containers"]:
        env = {e["name"]: e for e in c.get("env", [])}
        probe = (c.get("readinessProbe") or {}).get("grpc")
        if probe is not None and not probe.get("service", "").startswith("sseconnector.v1."):
            bad.append(f"{name}: readiness probe must name its sseconnector.v1 service")
        if d["kind"] == "StatefulSet" and "INGEST_REPLICAS" in env:
            if env["INGEST_REPLICAS"].get("value") != str(spec.get("replicas", 1)):
                bad.append(f"{name}: INGEST_REPLICAS {env['INGEST_REPLICAS'].get('value')} != replicas {spec.get('replicas', 1)}")
            pod = env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            if pod != "metadata.name" and "INGEST_ORDINAL" not in env:
                bad.append(f"{name}: POD_NAME must come from metadata.name")
for b in bad:
    print("deploy-check: " + b)
sys.exit(1 if bad else 0)
PY
done
hadolint deploy/Dockerfile && echo "deploy-check: deploy/Dockerfile passes hadolint" || status=1
exit $status
