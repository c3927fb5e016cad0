"""Checks deploy/aio/: the Akri ConnectorTemplate and the connector metadata document.

kubernetes-validate has no schema for the ConnectorTemplate CRD, so this checks its fields as the
SDK's sample template and the ARM resource akriConnectorTemplates document them, validates the
metadata against the vendored JSON Schema of aio-connector-metadata-11.0-preview, and checks that
the two agree (image, endpoint types) and that every environment variable sse-connector reads in
the Akri pod is one the Akri operator sets (its contract), and that the image sets what the pod
needs beyond the contract. Run by scripts/deploy-check.sh;
scripts/test_aio_check.py breaks each rule and checks it is reported.

    python3 scripts/aio_check.py [DIR]    # DIR: deploy/aio by default; exit 1 on any error
    python3 scripts/aio_check.py --env    # the variable lists, as JSON (for the Rust test)
"""
import json
import os
import sys

import jsonschema
import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SCHEMA = os.path.join(ROOT, "tests/fixtures/aio-connector-metadata-11.0-preview.reconstructed.json")
DOCKERFILE = os.path.join(ROOT, "deploy/Dockerfile")
TEMPLATE_FILE = "connector-template.yaml"
METADATA_FILE = "connector-metadata.json"

API_VERSION = "akri.iotoperations.azure.com/v1"
KIND = "ConnectorTemplate"
# The type the docs, portal and CLI give SSE devices; the others are the aliases in use.
ENDPOINT_TYPE = "Microsoft.SSEHttp"
SSE_ENDPOINT_TYPES = {"microsoft.ssehttp", "microsoft.sse"}  # compared case-insensitively

# What the Akri operator sets in a connector's pod: the SDK's "Akri operator and connector
# contract" (reference adr-edge-protocol.md section 5; AZURE_EXTENSION_RESOURCEID is set though
# the contract doc omits it).
AKRI_CONTRACT_ENV = {
    "CONNECTOR_ID", "CONNECTOR_NAMESPACE", "AZURE_EXTENSION_RESOURCEID",
    "CONNECTOR_CONFIGURATION_MOUNT_PATH", "CONNECTOR_SECRETS_METADATA_MOUNT_PATH",
    "CONNECTOR_SECRETS_MOUNT_PATH", "CONNECTOR_TRUST_SETTINGS_MOUNT_PATH",
    "BROKER_TLS_TRUST_BUNDLE_CACERT_MOUNT_PATH", "BROKER_SAT_MOUNT_PATH",
    "ADR_RESOURCES_NAME_MOUNT_PATH", "DEVICE_ENDPOINT_CREDENTIALS_MOUNT_PATH",
    "DEVICE_ENDPOINT_TLS_TRUST_BUNDLE_CA_CERT_MOUNT_PATH",
    "OTLP_GRPC_METRIC_ENDPOINT", "OTLP_GRPC_LOG_ENDPOINT", "OTLP_GRPC_TRACE_ENDPOINT",
    "OTLP_HTTP_METRIC_ENDPOINT", "OTLP_HTTP_LOG_ENDPOINT", "OTLP_HTTP_TRACE_ENDPOINT",
    "FIRST_PARTY_OTLP_GRPC_METRICS_COLLECTOR_CA_PATH", "FIRST_PARTY_OTLP_GRPC_LOG_COLLECTOR_CA_PATH",
}

# What sse-connector reads in the Akri pod, with what for. tests/tests/aio_template.rs checks this
# against the binary's own command: each is read, and no other contract variable is.
CONNECTOR_AKRI_ENV = {
    "CONNECTOR_ID": "the ADR client's MQTT client id (the publisher's: {CONNECTOR_ID}-publisher)",
    "ADR_RESOURCES_NAME_MOUNT_PATH": "the allocated devices and assets, read from ADR",
    "CONNECTOR_CONFIGURATION_MOUNT_PATH": "its MQTT_CONNECTION_CONFIGURATION: broker, TLS, SAT",
    "BROKER_TLS_TRUST_BUNDLE_CACERT_MOUNT_PATH": "the broker's CA files",
    "BROKER_SAT_MOUNT_PATH": "the K8S-SAT token, re-read on every reconnect",
    "DEVICE_ENDPOINT_CREDENTIALS_MOUNT_PATH": "ingest's secrets directory (device credentials)",
    "DEVICE_ENDPOINT_TLS_TRUST_BUNDLE_CA_CERT_MOUNT_PATH": "ingest's trust lists directory",
}

# What the connector cannot start without and the Akri contract does not give: the image's
# sse-connector stage sets these (the template has no env of its own).
IMAGE_ENV = ("RESOURCES_DIR", "SCHEMA_DATA_DIR")
IMAGE_STAGE = "sse-connector"

# spec fields of the CRD (SDK sample, ARM akriConnectorTemplates properties); the first two are
# required by both.
SPEC_REQUIRED = ("deviceInboundEndpointTypes", "runtimeConfiguration")
SPEC_FIELDS = set(SPEC_REQUIRED) | {
    "aioMetadata", "connectorMetadataRef", "diagnostics", "mqttConnectionConfiguration", "version",
}
IMAGE_FIELDS = {"imageName", "imagePullPolicy", "registrySettings", "replicas", "tagDigestSettings"}
MQTT_FIELDS = {"host", "authentication", "keepAliveSeconds", "maxInflightMessages", "protocol",
               "sessionExpirySeconds", "tls"}
PULL_POLICIES = {"Always", "IfNotPresent", "Never"}


def get(doc, path):
    """The value at a dotted path, or None where any step is missing."""
    for step in path.split("."):
        if not isinstance(doc, dict) or step not in doc:
            return None
        doc = doc[step]
    return doc


def check_template(t):
    """Errors in the ConnectorTemplate's own fields."""
    errors = []
    if t.get("apiVersion") != API_VERSION:
        errors.append(f"template: apiVersion is {t.get('apiVersion')!r}, not {API_VERSION!r}")
    if t.get("kind") != KIND:
        errors.append(f"template: kind is {t.get('kind')!r}, not {KIND!r}")
    for field in ("metadata.name", "metadata.namespace"):
        if not get(t, field):
            errors.append(f"template: {field} is missing")
    spec = t.get("spec") or {}
    errors += [f"template: spec.{f} is missing" for f in SPEC_REQUIRED if not spec.get(f)]
    errors += [f"template: spec.{f} is not a ConnectorTemplate field" for f in sorted(set(spec) - SPEC_FIELDS)]
    errors += check_endpoint_types(spec.get("deviceInboundEndpointTypes") or [])
    errors += check_runtime(spec.get("runtimeConfiguration") or {})
    errors += check_mqtt(spec.get("mqttConnectionConfiguration"))
    return errors


def check_endpoint_types(types):
    errors = []
    for i, e in enumerate(types):
        t = e.get("endpointType", "")
        if not t:
            errors.append(f"template: deviceInboundEndpointTypes[{i}].endpointType is missing")
        elif t.lower() not in SSE_ENDPOINT_TYPES:
            errors.append(f"template: endpoint type {t!r} is not an SSE endpoint type")
    if types and ENDPOINT_TYPE not in [e.get("endpointType") for e in types]:
        errors.append(f"template: no deviceInboundEndpointTypes entry is {ENDPOINT_TYPE!r}")
    return errors


def check_runtime(r):
    """The managed image configuration: the only runtime form that runs our image."""
    errors = []
    if r.get("runtimeConfigurationType") != "managedConfiguration":
        errors.append("template: runtimeConfigurationType is not managedConfiguration")
    m = r.get("managedConfigurationSettings") or {}
    if m.get("managedConfigurationType") != "imageConfiguration":
        errors.append("template: managedConfigurationType is not imageConfiguration")
    image = m.get("imageConfigurationSettings") or {}
    errors += [f"template: imageConfigurationSettings.{f} is not a field" for f in sorted(set(image) - IMAGE_FIELDS)]
    for field in ("imageName", "registrySettings.containerRegistrySettings.registry"):
        if not get(image, field):
            errors.append(f"template: imageConfigurationSettings.{field} is missing")
    if get(image, "registrySettings.registrySettingsType") != "containerRegistry":
        errors.append("template: registrySettingsType is not containerRegistry")
    kind = get(image, "tagDigestSettings.tagDigestType")
    if kind not in ("tag", "digest") or not get(image, f"tagDigestSettings.{kind}"):
        errors.append("template: tagDigestSettings needs tagDigestType tag or digest, and its value")
    if image.get("imagePullPolicy", "IfNotPresent") not in PULL_POLICIES:
        errors.append(f"template: imagePullPolicy {image.get('imagePullPolicy')!r} is not one of {sorted(PULL_POLICIES)}")
    replicas = image.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 1:
        errors.append(f"template: replicas {replicas!r} is not a positive integer")
    return errors


def check_mqtt(m):
    """The broker connection the operator writes into MQTT_CONNECTION_CONFIGURATION."""
    if m is None:
        return []
    errors = [f"template: mqttConnectionConfiguration.{f} is not a field" for f in sorted(set(m) - MQTT_FIELDS)]
    if not m.get("host"):
        errors.append("template: mqttConnectionConfiguration.host is missing")
    if get(m, "tls.mode") not in ("Enabled", "Disabled"):
        errors.append("template: mqttConnectionConfiguration.tls.mode is not Enabled or Disabled")
    method = get(m, "authentication.method")
    if method == "ServiceAccountToken" and not get(m, "authentication.serviceAccountTokenSettings.audience"):
        errors.append("template: ServiceAccountToken authentication has no audience")
    return errors


def check_metadata(meta, schema):
    """Errors of the metadata against the vendored schema, each with its JSON path."""
    v = jsonschema.Draft7Validator(schema)
    return [f"metadata: {e.json_path}: {e.message}" for e in sorted(v.iter_errors(meta), key=str)]


def check_agreement(t, meta):
    """The template and the metadata describe the same image and endpoint types."""
    errors = []
    image = get(t, "spec.runtimeConfiguration.managedConfigurationSettings.imageConfigurationSettings") or {}
    registry = get(image, "registrySettings.containerRegistrySettings.registry")
    full = f"{registry}/{image.get('imageName')}"
    settings = meta.get("imageConfigurationSettings") or {}
    if full != settings.get("imageName"):
        errors.append(f"image {full!r} of the template is not the metadata's {settings.get('imageName')!r}")
    kind = get(image, "tagDigestSettings.tagDigestType")
    ours, theirs = get(image, f"tagDigestSettings.{kind}"), settings.get(kind)
    if ours != theirs:
        errors.append(f"image {kind} {ours!r} of the template is not the metadata's {theirs!r}")
    types = lambda es: sorted((e.get("endpointType"), e.get("version")) for e in es)
    tt = types(get(t, "spec.deviceInboundEndpointTypes") or [])
    mt = types(meta.get("inboundEndpoints") or [])
    if tt != mt:
        errors.append(f"endpoint types of the template {tt} are not the metadata's {mt}")
    ref = get(t, "spec.connectorMetadataRef")
    if ref and not ref.endswith(f":{meta.get('version')}"):
        errors.append(f"connectorMetadataRef {ref!r} is not the metadata's version {meta.get('version')!r}")
    return errors


def check_env():
    return [f"sse-connector reads {v}, which the Akri contract does not set"
            for v in sorted(set(CONNECTOR_AKRI_ENV) - AKRI_CONTRACT_ENV)]


def stage_env(dockerfile, stage):
    """The variables the ENV lines of `stage` (`FROM ... AS stage`) of a Dockerfile set."""
    names, inside = set(), False
    for line in dockerfile.splitlines():
        words = line.split()
        if words[:1] == ["FROM"]:
            inside = words[-1] == stage
        elif inside and words[:1] == ["ENV"]:
            names |= {w.split("=", 1)[0] for w in words[1:] if "=" in w}
    return names


def check_image_env(dockerfile):
    have = stage_env(dockerfile, IMAGE_STAGE)
    return [f"deploy/Dockerfile: stage {IMAGE_STAGE} does not set {v}, which an Akri pod cannot pass"
            for v in IMAGE_ENV if v not in have]


def check(template, metadata, schema, dockerfile):
    """Every error of the template and metadata documents and the image (empty: they pass)."""
    return (check_template(template) + check_metadata(metadata, schema)
            + check_agreement(template, metadata) + check_env() + check_image_env(dockerfile))


def load(directory):
    with open(os.path.join(directory, TEMPLATE_FILE)) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    if len(docs) != 1:
        raise ValueError(f"{TEMPLATE_FILE}: expected one document, found {len(docs)}")
    with open(os.path.join(directory, METADATA_FILE)) as f:
        metadata = json.load(f)
    with open(SCHEMA) as f:
        schema = json.load(f)
    with open(DOCKERFILE) as f:
        dockerfile = f.read()
    return docs[0], metadata, schema, dockerfile


def main(argv):
    if argv[1:] == ["--env"]:
        print(json.dumps({"contract": sorted(AKRI_CONTRACT_ENV), "connector": sorted(CONNECTOR_AKRI_ENV),
                          "image": sorted(IMAGE_ENV)}))
        return 0
    directory = argv[1] if len(argv) > 1 else os.path.join(ROOT, "deploy/aio")
    try:
        errors = check(*load(directory))
    except (OSError, ValueError, yaml.YAMLError) as e:
        errors = [f"cannot read {directory}: {e}"]
    for e in errors:
        print(f"aio-check: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
