#!/usr/bin/env python3
"""Field checks on rendered Kubernetes manifests that kubernetes-validate cannot make.

kubernetes-validate knows the built-in kinds only (it merely warns on cert-manager's Certificate
and Issuer) and checks each object alone. This checks what the connector's security rests on,
across objects, from the manifests `kubectl kustomize` renders for each overlay:

- every Certificate uses only cert-manager v1's fields and values, names its Secret and issuer,
  has SANs and the usages it needs; an Issuer it names exists, and a CA Issuer's Secret comes
  from a CA Certificate;
- every service mounts the Secret of its own Certificate (not world-readable) and points
  GRPC_TLS_CA/CERT/KEY into it, its peer URLs are https to a Service whose certificate carries
  the URL's host;
- probes ask the plaintext health port that HEALTH_LISTEN opens;
- the metrics port (the metrics component) is open to the scraper's namespace only;
- from the NetworkPolicies: each gRPC port is reachable only from the pods of its callers (the
  per-method table of docs/security.md), the pipeline's own hops get through, the health port is
  open, and egress is limited (nothing allowed to all) yet reaches DNS, the peers, the broker
  and every device address of the resources ConfigMap ingest mounts.

Usage: deploy_check.py RENDERED.yaml...  Prints each violation, exits 1 if there is one.
"""
import sys
from urllib.parse import urlsplit

import yaml

NAME = "app.kubernetes.io/name"
# Who may open each service's gRPC port: its pipeline caller and the console.
CALLERS = {
    "sse-ingest": {"sse-console"},
    "sse-schema": {"sse-ingest", "sse-console"},
    "sse-publisher": {"sse-schema", "sse-console"},
}
# The pipeline's hops, which the policies must let through: caller -> server.
HOPS = {"sse-ingest": "sse-schema", "sse-schema": "sse-publisher"}
# The identity flag each server checks a caller's SAN against, by the caller's name.
IDENTITY_ENV = {
    "sse-ingest": "GRPC_INGEST_IDENTITY",
    "sse-schema": "GRPC_SCHEMA_IDENTITY",
    "sse-publisher": "GRPC_PUBLISHER_IDENTITY",
    "sse-console": "GRPC_CONSOLE_IDENTITY",
}
TLS_FILES = {"GRPC_TLS_CA": "ca.crt", "GRPC_TLS_CERT": "tls.crt", "GRPC_TLS_KEY": "tls.key"}
PEER_ENV = ("SCHEMA_ADDR", "PUBLISHER_ADDR")
BROKER_ENV = ("MQTT_URL", "CHECKPOINT_STORE", "SCHEMA_REGISTRY_MQTT_URL")
NAMESPACE_PLACEHOLDER = "NAMESPACE"
# cert-manager v1's Certificate fields and enums: kubernetes-validate has no schema for them, so
# a misspelt field would otherwise be dropped by the API server without a word.
CERTIFICATE_FIELDS = {
    "subject", "literalSubject", "commonName", "duration", "renewBefore", "renewBeforePercentage",
    "dnsNames", "ipAddresses", "uris", "otherNames", "emailAddresses", "secretName",
    "secretTemplate", "keystores", "issuerRef", "isCA", "usages", "privateKey",
    "encodeUsagesInRequest", "revisionHistoryLimit", "additionalOutputFormats", "nameConstraints",
    "signatureAlgorithm",
}
KEY_USAGES = {
    "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
    "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any",
    "server auth", "client auth", "code signing", "email protection", "s/mime",
    "ipsec end system", "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing",
    "microsoft sgc", "netscape sgc",
}
PRIVATE_KEY_FIELDS = {
    "algorithm": {"RSA", "ECDSA", "Ed25519"},
    "encoding": {"PKCS1", "PKCS8"},
    "rotationPolicy": {"Never", "Always"},
    "size": None,
}
ISSUER_KINDS = {"acme", "ca", "vault", "selfSigned", "venafi"}
SECRET_DEFAULT_MODE = 0o644  # what Kubernetes uses when a secret volume sets none


class Manifest:
    """The objects of one rendered manifest, indexed by kind."""

    def __init__(self, docs):
        self.docs = [d for d in docs if d]

    def of(self, *kinds):
        return [d for d in self.docs if d.get("kind") in kinds]

    def workloads(self):
        return [Workload(d) for d in self.of("Deployment", "StatefulSet")]

    def certificate_for_secret(self, namespace, secret):
        for c in self.of("Certificate"):
            if ns(c) == namespace and c.get("spec", {}).get("secretName") == secret:
                return c
        return None


class Workload:
    """A Deployment or StatefulSet, seen as the pods it makes."""

    def __init__(self, doc):
        self.doc = doc
        self.name = doc["metadata"]["name"]
        self.namespace = ns(doc)
        template = doc["spec"]["template"]
        self.labels = template.get("metadata", {}).get("labels", {})
        self.pod = template["spec"]
        self.component = self.labels.get(NAME, self.name)

    def containers(self):
        return self.pod.get("containers", [])

    def grpc_containers(self):
        """The containers serving the connector's gRPC API (a port named grpc)."""
        return [c for c in self.containers() if port_named(c, "grpc") is not None]

    def volume(self, name):
        return next((v for v in self.pod.get("volumes", []) if v.get("name") == name), None)


def ns(doc):
    return doc.get("metadata", {}).get("namespace", "")


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def env_value(container, name):
    return env_of(container).get(name, {}).get("value")


def port_named(container, name):
    for p in container.get("ports", []):
        if p.get("name") == name:
            return p.get("containerPort")
    return None


def selector_matches(selector, labels):
    """Kubernetes label selector semantics; an empty selector matches everything."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def names_admitted(selector):
    """The app.kubernetes.io/name values a pod selector admits, or None when it admits any."""
    allowed = None
    if NAME in (selector.get("matchLabels") or {}):
        allowed = {selector["matchLabels"][NAME]}
    for e in selector.get("matchExpressions") or []:
        if e["key"] == NAME and e["operator"] == "In":
            values = set(e.get("values") or [])
            allowed = values if allowed is None else allowed & values
    return allowed


def check(docs):
    """Every violation in one rendered manifest, as messages naming the object."""
    m = Manifest(docs)
    errors = []
    for w in m.workloads():
        errors += check_sharding(w)
        for c in w.grpc_containers():
            errors += check_probes(w, c)
            errors += check_tls_mount(m, w, c)
            errors += check_peer_urls(m, w, c)
    errors += check_certificates(m)
    errors += check_issuers(m)
    errors += check_policies(m)
    return errors


def check_sharding(w):
    """Ingest replicas split the streams by INGEST_REPLICAS and the ordinal in POD_NAME."""
    errors = []
    for c in w.containers():
        env = env_of(c)
        if w.doc["kind"] != "StatefulSet" or "INGEST_REPLICAS" not in env:
            continue
        replicas = str(w.doc["spec"].get("replicas", 1))
        if env["INGEST_REPLICAS"].get("value") != replicas:
            errors.append(
                f"{w.name}: INGEST_REPLICAS {env['INGEST_REPLICAS'].get('value')} != replicas {replicas}"
            )
        pod = env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if pod != "metadata.name" and "INGEST_ORDINAL" not in env:
            errors.append(f"{w.name}: POD_NAME must come from metadata.name")
    return errors


def check_probes(w, c):
    """Probes go to the plaintext health port (the kubelet has no client certificate)."""
    health = port_named(c, "health")
    if health is None:
        return [f"{w.name}: container {c['name']} has no port named health"]
    errors = []
    listen = env_value(c, "HEALTH_LISTEN")
    if listen is None:
        errors.append(f"{w.name}: HEALTH_LISTEN is not set, so nothing serves the health port {health}")
    elif listen.rpartition(":")[2] != str(health):
        errors.append(f"{w.name}: HEALTH_LISTEN {listen} does not open the health port {health}")
    for kind in ("readinessProbe", "livenessProbe"):
        probe = (c.get(kind) or {}).get("grpc")
        if probe is None:
            errors.append(f"{w.name}: {kind} must be a gRPC probe of the health port {health}")
        elif probe.get("port") != health:
            errors.append(f"{w.name}: {kind} asks port {probe.get('port')}, not the health port {health}")
    ready = ((c.get("readinessProbe") or {}).get("grpc") or {}).get("service", "")
    if not ready.startswith("sseconnector.v1."):
        errors.append(f"{w.name}: readiness probe must name its sseconnector.v1 service, not {ready!r}")
    live = ((c.get("livenessProbe") or {}).get("grpc") or {}).get("service", "")
    if live != "liveness":
        errors.append(f"{w.name}: liveness probe must name service 'liveness', not {live!r}")
    return errors


def mounted_secret(w, c, path):
    """The secret volume (and its name) holding `path` in container c, or (None, None)."""
    for mount in c.get("volumeMounts", []):
        root = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(root):
            volume = w.volume(mount["name"]) or {}
            return volume.get("secret"), path[len(root):]
    return None, None


def check_tls_mount(m, w, c):
    """GRPC_TLS_* point into the mounted Secret of this service's own Certificate."""
    env = {k: env_value(c, k) for k in TLS_FILES}
    if not any(env.values()):
        return [f"{w.name}: serves gRPC without mTLS (set GRPC_TLS_CA, GRPC_TLS_CERT, GRPC_TLS_KEY)"]
    errors, secrets = [], set()
    for var, file in TLS_FILES.items():
        if not env[var]:
            errors.append(f"{w.name}: {var} missing: GRPC_TLS_CA, _CERT and _KEY go together")
            continue
        secret, rel = mounted_secret(w, c, env[var])
        if secret is None:
            errors.append(f"{w.name}: {var} {env[var]} is not in a mounted Secret")
            continue
        if rel != file:
            errors.append(f"{w.name}: {var} names {rel}, cert-manager's Secret holds it as {file}")
        mode = secret.get("defaultMode", SECRET_DEFAULT_MODE)
        if mode & 0o007:
            errors.append(f"{w.name}: Secret {secret.get('secretName')} is mounted world-readable ({mode:o})")
        secrets.add(secret.get("secretName"))
    if errors:
        return errors
    if len(secrets) != 1:
        return [f"{w.name}: GRPC_TLS_* span several Secrets {sorted(secrets)}"]
    if "fsGroup" not in (w.pod.get("securityContext") or {}):
        errors.append(f"{w.name}: needs a pod fsGroup to read its 0440 certificate Secret")
    secret = secrets.pop()
    cert = m.certificate_for_secret(w.namespace, secret)
    if cert is None:
        return errors + [f"{w.name}: mounts Secret {secret}, which no Certificate issues"]
    identity = expected_identity(m, w.component)
    if identity not in sans(cert):
        errors.append(
            f"{w.name}: its Certificate {cert['metadata']['name']} lacks the SAN {identity!r} its peers check"
        )
    if "server auth" not in cert["spec"].get("usages", []):
        errors.append(f"Certificate {cert['metadata']['name']}: serves {w.name}, needs usage 'server auth'")
    return errors


def expected_identity(m, component):
    """The identity the servers expect of `component`: its identity flag, else the default."""
    var = IDENTITY_ENV.get(component)
    for w in m.workloads():
        for c in w.containers():
            if var and env_value(c, var):
                return env_value(c, var)
    return component


def sans(cert):
    spec = cert.get("spec", {})
    return set(spec.get("dnsNames") or []) | set(spec.get("uris") or [])


def check_peer_urls(m, w, c):
    """A peer URL is https, to a Service whose pods' certificate carries the URL's host."""
    errors = []
    for var in PEER_ENV:
        url = env_value(c, var)
        if url is None:
            continue
        for one in url.split(","):
            parts = urlsplit(one.strip())
            if parts.scheme != "https":
                errors.append(f"{w.name}: {var} {one} must be https:// with mTLS on")
                continue
            errors += check_peer_host(m, w, var, parts.hostname, parts.port)
    return errors


def check_peer_host(m, w, var, host, port):
    service = next(
        (s for s in m.of("Service") if s["metadata"]["name"] == host and ns(s) == w.namespace), None
    )
    if service is None:
        return [f"{w.name}: {var} host {host} is not a Service of this manifest"]
    if port not in [p.get("port") for p in service["spec"].get("ports", [])]:
        return [f"{w.name}: {var} port {port} is not a port of Service {host}"]
    for peer in m.workloads():
        if peer.namespace == w.namespace and selector_matches(
            {"matchLabels": service["spec"].get("selector") or {}}, peer.labels
        ):
            for c in peer.grpc_containers():
                secret, _ = mounted_secret(peer, c, env_value(c, "GRPC_TLS_CERT") or "")
                cert = secret and m.certificate_for_secret(peer.namespace, secret.get("secretName"))
                if cert and host not in sans(cert):
                    return [f"{w.name}: {var} host {host} is not a SAN of {peer.name}'s certificate"]
    return []


def issued_by_ca(m, cert):
    """Whether `cert` is signed by a CA Issuer of the manifest (the gRPC CA), not self-signed."""
    ref = cert.get("spec", {}).get("issuerRef") or {}
    return any(
        i["metadata"]["name"] == ref.get("name") and "ca" in (i.get("spec") or {})
        for i in m.of("Issuer")
    )


def check_certificates(m):
    """Each Certificate names its Secret, issuer, SANs and usages; DNS names carry its namespace."""
    errors = []
    secrets = {}
    for cert in m.of("Certificate"):
        name, spec = f"Certificate {cert['metadata']['name']}", cert.get("spec", {})
        if not spec.get("secretName"):
            errors.append(f"{name}: no secretName")
        elif spec["secretName"] in secrets:
            other = secrets[spec["secretName"]]
            errors.append(f"{name}: secretName {spec['secretName']} also used by {other}")
        secrets[spec.get("secretName")] = name
        ref = spec.get("issuerRef") or {}
        if not ref.get("name") or ref.get("kind") not in ("Issuer", "ClusterIssuer"):
            errors.append(f"{name}: issuerRef needs a name and kind Issuer or ClusterIssuer")
        elif ref["kind"] == "Issuer" and not any(
            i["metadata"]["name"] == ref["name"] and ns(i) == ns(cert) for i in m.of("Issuer")
        ):
            errors.append(f"{name}: Issuer {ref['name']} is not in this manifest")
        errors += check_certificate_schema(name, spec)
        if spec.get("isCA"):
            continue
        if not sans(cert):
            errors.append(f"{name}: no dnsNames or uris (the identity is the SAN)")
        # A certificate of the gRPC CA is an identity, and every service is also a client; a
        # self-signed one (the console's pages) is no identity anywhere.
        if issued_by_ca(m, cert) and "client auth" not in (spec.get("usages") or []):
            errors.append(f"{name}: usages lack 'client auth' (every service is also a client)")
        errors += check_dns_namespace(name, ns(cert), spec.get("dnsNames") or [])
    return errors


def check_certificate_schema(name, spec):
    """The fields and enum values cert-manager v1 knows, since nothing else checks them."""
    errors = [f"{name}: unknown field spec.{k}" for k in sorted(set(spec) - CERTIFICATE_FIELDS)]
    errors += [f"{name}: unknown usage {u!r}" for u in spec.get("usages") or [] if u not in KEY_USAGES]
    for k, v in (spec.get("privateKey") or {}).items():
        if k not in PRIVATE_KEY_FIELDS:
            errors.append(f"{name}: unknown field spec.privateKey.{k}")
        elif PRIVATE_KEY_FIELDS[k] is not None and v not in PRIVATE_KEY_FIELDS[k]:
            errors.append(f"{name}: spec.privateKey.{k} {v!r} is not one of {sorted(PRIVATE_KEY_FIELDS[k])}")
    return errors


def check_dns_namespace(name, namespace, dns_names):
    """Qualified names (<svc>.<namespace>...) must name the namespace the overlay deploys to."""
    errors = []
    for d in dns_names:
        labels = d.split(".")
        if len(labels) < 2:
            continue
        if namespace and labels[1] != namespace:
            errors.append(f"{name}: dnsName {d} is not in namespace {namespace} (overlay replacements?)")
        elif not namespace and labels[1] != NAMESPACE_PLACEHOLDER:
            errors.append(f"{name}: dnsName {d} names a namespace the base cannot know")
    return errors


def check_issuers(m):
    """Each Issuer is of one kind; a CA Issuer's Secret comes from a CA Certificate here."""
    errors = []
    for issuer in m.of("Issuer", "ClusterIssuer"):
        kinds = set(issuer.get("spec") or {}) & ISSUER_KINDS
        if len(kinds) != 1:
            name = issuer["metadata"]["name"]
            errors.append(f"Issuer {name}: spec needs exactly one of {sorted(ISSUER_KINDS)}")
        secret = ((issuer.get("spec") or {}).get("ca") or {}).get("secretName")
        # A ClusterIssuer's Secret lives in cert-manager's own namespace, outside the manifest.
        if secret is None or issuer["kind"] != "Issuer":
            continue
        cert = m.certificate_for_secret(ns(issuer), secret)
        if cert is None or not cert["spec"].get("isCA"):
            name = issuer["metadata"]["name"]
            errors.append(f"Issuer {name}: Secret {secret} is not from an isCA Certificate")
    return errors


def policies_for(m, w, policy_type):
    """The NetworkPolicies selecting w's pods that restrict `policy_type` (Ingress or Egress)."""
    out = []
    for p in m.of("NetworkPolicy"):
        spec = p.get("spec", {})
        # Kubernetes' default when policyTypes is unset: Ingress, plus Egress if it has rules.
        types = spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])
        selected = selector_matches(spec.get("podSelector"), w.labels)
        if ns(p) == w.namespace and policy_type in types and selected:
            out.append(p)
    return out


def rules_for(policies, key, port, name, protocol="TCP"):
    """The ingress/egress rules of `policies` that cover the given port."""
    out = []
    for p in policies:
        for rule in p["spec"].get(key) or []:
            ports = rule.get("ports") or [{}]
            if any(port_covers(rp, port, name, protocol) for rp in ports):
                out.append(rule)
    return out


def port_covers(rule_port, port, name, protocol):
    if rule_port.get("protocol", "TCP") != protocol:
        return False
    if "port" not in rule_port:
        return True
    p = rule_port["port"]
    if isinstance(p, str):
        return p == name
    return p <= port <= rule_port.get("endPort", p)


def check_policies(m):
    """NetworkPolicies: callers only on gRPC, health open, pipeline hops through, egress bounded."""
    errors = []
    by_component = {w.component: w for w in m.workloads()}
    for component, callers in CALLERS.items():
        w = by_component.get(component)
        # A renamed label or port would otherwise skip every check of that service silently.
        if w is None:
            errors.append(f"{component}: no Deployment or StatefulSet labelled {NAME}={component}")
            continue
        if not w.grpc_containers():
            errors.append(f"{w.name}: no container port named grpc")
        errors += check_ingress(m, w, callers, by_component)
        errors += check_egress(m, w, by_component)
    return errors


def check_ingress(m, w, callers, by_component):
    policies = policies_for(m, w, "Ingress")
    if not policies:
        return [f"{w.name}: no NetworkPolicy restricts its ingress"]
    errors = []
    for c in w.grpc_containers():
        grpc, health = port_named(c, "grpc"), port_named(c, "health")
        rules = rules_for(policies, "ingress", grpc, "grpc")
        errors += [f"{w.name}: gRPC port {grpc} {e}" for e in foreign_sources(rules, callers)]
        for caller in sorted(callers):
            peer = by_component.get(caller)
            if peer and not admits(rules, peer.labels):
                errors.append(f"{w.name}: gRPC port {grpc} does not admit its caller {caller}")
        health_rules = rules_for(policies, "ingress", health, "health") if health else []
        if health is not None and not any(not r.get("from") for r in health_rules):
            errors.append(f"{w.name}: health port {health} is not open to the kubelet (any source)")
        errors += check_metrics_port(w, c, policies)
    return errors


def check_metrics_port(w, c, policies):
    """The admin port (/metrics) is open to the scraper's namespace only, and is open to it."""
    metrics = port_named(c, "metrics")
    if metrics is None:
        return []
    rules = rules_for(policies, "ingress", metrics, "metrics")
    if not rules:
        return [f"{w.name}: metrics port {metrics} admits no scraper"]
    for rule in rules:
        peers = rule.get("from") or []
        if not peers:
            return [f"{w.name}: metrics port {metrics} is open to any source"]
        for peer in peers:
            if "ipBlock" in peer or not (peer.get("namespaceSelector") or {}).get("matchLabels"):
                return [f"{w.name}: metrics port {metrics} is open beyond the scraper's namespace"]
    return []


def foreign_sources(rules, callers):
    """Why each rule admits more than the callers' pods, as messages."""
    out = []
    for rule in rules:
        if not rule.get("from"):
            out.append("is open to any source")
            continue
        for peer in rule["from"]:
            if "ipBlock" in peer:
                out.append(f"is open to ipBlock {peer['ipBlock'].get('cidr')}")
            elif "namespaceSelector" in peer:
                out.append("is open to pods of other namespaces")
            else:
                names = names_admitted(peer.get("podSelector") or {})
                if names is None:
                    out.append(f"is open to any pod (selector {peer.get('podSelector')})")
                elif not names <= callers:
                    out.append(f"admits {sorted(names - callers)}, only {sorted(callers)} may call it")
    return out


def admits(rules, labels, key="from"):
    """Whether a rule admits pods of this namespace with these labels."""
    for rule in rules:
        peers = rule.get(key)
        if not peers:
            return True
        for peer in peers:
            same_namespace = "podSelector" in peer and "namespaceSelector" not in peer
            if same_namespace and selector_matches(peer["podSelector"], labels):
                return True
    return False


def check_egress(m, w, by_component):
    policies = policies_for(m, w, "Egress")
    if not policies:
        return [f"{w.name}: no NetworkPolicy restricts its egress"]
    errors = []
    for p in policies:
        for rule in p["spec"].get("egress") or []:
            if not rule.get("ports") and not rule.get("to"):
                errors.append(f"{w.name}: NetworkPolicy {p['metadata']['name']} allows all egress")
    for proto in ("UDP", "TCP"):
        if not rules_for(policies, "egress", 53, "dns", proto):
            errors.append(f"{w.name}: egress to DNS ({proto} 53) is not allowed")
    server = by_component.get(HOPS.get(w.component))
    if server is not None:
        for c in server.grpc_containers():
            grpc = port_named(c, "grpc")
            if not admits(rules_for(policies, "egress", grpc, "grpc"), server.labels, key="to"):
                errors.append(f"{w.name}: egress to {server.name}'s gRPC port {grpc} is not allowed")
    errors += check_broker_egress(w, policies)
    errors += check_source_egress(m, w, policies)
    return errors


def check_broker_egress(w, policies):
    errors = []
    for c in w.containers():
        for var in BROKER_ENV:
            url = urlsplit(env_value(c, var) or "")
            if url.scheme not in ("mqtt", "mqtts"):
                continue
            port = url.port or (8883 if url.scheme == "mqtts" else 1883)
            if not rules_for(policies, "egress", port, ""):
                errors.append(f"{w.name}: egress to the broker of {var} (port {port}) is not allowed")
    return errors


def device_addresses(m, w):
    """(device, endpoint, address) of every Device in the ConfigMap mounted at RESOURCES_DIR."""
    out = []
    for c in w.containers():
        path = env_value(c, "RESOURCES_DIR")
        mount = next((v for v in c.get("volumeMounts", []) if v["mountPath"] == path), None)
        volume = w.volume(mount["name"]) if mount else None
        name = ((volume or {}).get("configMap") or {}).get("name")
        maps = [d for d in m.of("ConfigMap") if d["metadata"]["name"] == name and ns(d) == w.namespace]
        for text in (maps[0].get("data") or {}).values() if maps else []:
            for doc in yaml.safe_load_all(text):
                if not doc or doc.get("kind") != "Device":
                    continue
                inbound = ((doc.get("spec") or {}).get("endpoints") or {}).get("inbound") or {}
                for endpoint, e in inbound.items():
                    out.append((doc["metadata"]["name"], endpoint, e.get("address", "")))
    return out


def check_source_egress(m, w, policies):
    """Ingest may reach every device address of its resources (the SSE-sources knob)."""
    errors = []
    for device, endpoint, address in device_addresses(m, w):
        url = urlsplit(address)
        port = url.port or (443 if url.scheme == "https" else 80)
        if not source_allowed(m, w, policies, url.hostname or "", port):
            errors.append(
                f"{w.name}: egress to device {device} endpoint {endpoint} ({url.hostname}:{port}) "
                "is not allowed (edit NetworkPolicy sse-ingest-sources)"
            )
    return errors


def source_allowed(m, w, policies, host, port):
    """Whether an egress rule admits `host:port`: a Service of this manifest by its pods' labels,
    a Service of another namespace by that namespace, anything else by a rule open to any
    address on that port (ipBlocks do not reliably match pod addresses)."""
    labels = host.split(".")
    namespace = labels[1] if len(labels) > 1 else w.namespace
    if len(labels) <= 2 or labels[2] == "svc":
        service = next(
            (s for s in m.of("Service") if s["metadata"]["name"] == labels[0] and ns(s) == namespace),
            None,
        )
        if service is not None:
            return service_allowed(m, policies, service, port)
    rules = rules_for(policies, "egress", port, "")
    if len(labels) > 2 and labels[2] == "svc":
        ns_labels = {"kubernetes.io/metadata.name": namespace}
        return any(
            not r.get("to") or any(selector_matches(t.get("namespaceSelector"), ns_labels) for t in r["to"])
            for r in rules
        )
    return any(not r.get("to") or any("ipBlock" in t for t in r["to"]) for r in rules)


def service_allowed(m, policies, service, port):
    """Whether an egress rule admits the pods behind `service` on the pod port of `port`."""
    target = next((p for p in service["spec"].get("ports", []) if p.get("port") == port), {})
    selector = {"matchLabels": service["spec"].get("selector") or {}}
    for peer in m.workloads():
        if peer.namespace == ns(service) and selector_matches(selector, peer.labels):
            pod_port, name = resolve_port(peer, target.get("targetPort", port))
            return admits(rules_for(policies, "egress", pod_port, name), peer.labels, key="to")
    return False


def resolve_port(workload, target_port):
    """A Service's targetPort (number or name) as (number, name) of the workload's container."""
    for c in workload.containers():
        for p in c.get("ports", []):
            if target_port in (p.get("name"), p.get("containerPort")):
                return p["containerPort"], p.get("name", "")
    return (target_port if isinstance(target_port, int) else -1), ""


def main(paths):
    bad = False
    for path in paths:
        with open(path) as f:
            errors = check(list(yaml.safe_load_all(f)))
        for e in errors:
            print(f"deploy-check: {path}: {e}")
        if not errors:
            print(f"deploy-check: {path}: certificates, mounts, probes and NetworkPolicies check out")
        bad = bad or bool(errors)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
