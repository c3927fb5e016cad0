"""Tests of deploy_check.py: the rendered overlays pass, and each broken manifest fails by name.

Each test renders an overlay with `kubectl kustomize`, breaks one thing the connector's security
rests on, and asserts the checker names it; a checker that passed everything would fail here.
Run by scripts/deploy-check.sh (`python3 -m unittest discover -s scripts -p 'test_*.py'`).
"""
import copy
import os
import subprocess
import unittest

import yaml

import deploy_check

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def render(overlay):
    out = subprocess.run(
        ["kubectl", "kustomize", os.path.join(ROOT, "deploy/k8s", overlay)],
        check=True, capture_output=True, text=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def container(docs, kind, name):
    return find(docs, kind, name)["spec"]["template"]["spec"]["containers"][0]


def set_env(c, name, value):
    for e in c["env"]:
        if e["name"] == name:
            e["value"] = value


class RenderedOverlays(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rendered = {o: render(o) for o in ("base", "overlays/local", "overlays/aio")}

    def local(self):
        return copy.deepcopy(self.rendered["overlays/local"])

    def assertFails(self, docs, message):
        errors = deploy_check.check(docs)
        self.assertTrue(any(message in e for e in errors), f"no error containing {message!r} in {errors}")

    def test_every_overlay_passes(self):
        for overlay, docs in self.rendered.items():
            self.assertEqual(deploy_check.check(copy.deepcopy(docs)), [], overlay)

    def test_policy_open_to_any_source(self):
        docs = self.local()
        find(docs, "NetworkPolicy", "sse-schema")["spec"]["ingress"][1].pop("from")
        self.assertFails(docs, "sse-schema: gRPC port 50052 is open to any source")

    def test_policy_admitting_a_wrong_caller(self):
        docs = self.local()
        rule = find(docs, "NetworkPolicy", "sse-publisher")["spec"]["ingress"][1]
        rule["from"].append({"podSelector": {"matchLabels": {deploy_check.NAME: "sse-ingest"}}})
        self.assertFails(docs, "sse-publisher: gRPC port 50053 admits ['sse-ingest']")

    def test_another_policy_widening_access(self):
        docs = self.local()
        docs.append({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "allow-all", "namespace": "sse-connector"},
            "spec": {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]},
        })
        self.assertFails(docs, "sse-ingest: gRPC port 50051 is open to pods of other namespaces")

    def test_metrics_port_open_to_all(self):
        docs = self.local()
        find(docs, "NetworkPolicy", "sse-metrics")["spec"]["ingress"][0]["from"] = [{"namespaceSelector": {}}]
        self.assertFails(docs, "sse-publisher: metrics port 9464 is open beyond the scraper's namespace")

    def test_metrics_port_without_a_scraper(self):
        docs = [d for d in self.local() if (d["kind"], d["metadata"]["name"]) != ("NetworkPolicy", "sse-metrics")]
        self.assertFails(docs, "sse-ingest: metrics port 9464 admits no scraper")

    def test_policy_missing(self):
        # sse-metrics (the metrics component) also restricts ingress, to its one port.
        policies = {("NetworkPolicy", "sse-schema"), ("NetworkPolicy", "sse-metrics")}
        docs = [d for d in self.local() if (d["kind"], d["metadata"]["name"]) not in policies]
        self.assertFails(docs, "sse-schema: no NetworkPolicy restricts its ingress")

    def test_pipeline_caller_shut_out(self):
        docs = self.local()
        rule = find(docs, "NetworkPolicy", "sse-schema")["spec"]["ingress"][1]
        rule["from"] = rule["from"][1:]
        self.assertFails(docs, "sse-schema: gRPC port 50052 does not admit its caller sse-ingest")

    def test_egress_to_peer_missing(self):
        docs = self.local()
        egress = find(docs, "NetworkPolicy", "sse-ingest")["spec"]["egress"]
        egress[:] = [r for r in egress if r["ports"][0]["port"] != 50052]
        self.assertFails(docs, "sse-ingest: egress to sse-schema's gRPC port 50052 is not allowed")

    def test_egress_to_dns_and_broker_missing(self):
        docs = self.local()
        find(docs, "NetworkPolicy", "sse-publisher")["spec"]["egress"].pop(0)
        docs = [d for d in docs if d["metadata"]["name"] != "sse-broker-egress"]
        self.assertFails(docs, "sse-publisher: egress to DNS (UDP 53) is not allowed")
        self.assertFails(docs, "sse-publisher: egress to the broker of MQTT_URL (port 1883) is not allowed")

    def test_demo_source_unreachable(self):
        docs = [d for d in self.local() if d["metadata"]["name"] != "sse-ingest-demo-source"]
        self.assertFails(
            docs, "sse-ingest: egress to device weather-station endpoint sse-0 (weather-station:8088)"
        )

    def test_example_device_of_another_namespace_unreachable(self):
        docs = copy.deepcopy(self.rendered["base"])
        find(docs, "NetworkPolicy", "sse-ingest-sources")["spec"]["egress"].pop(0)
        self.assertFails(docs, "(weather-station.factory.svc:8088) is not allowed")

    def test_external_device_needs_its_port(self):
        docs = self.local()
        config = next(
            d for d in docs if d["kind"] == "ConfigMap" and "sse-resources" in d["metadata"]["name"]
        )
        key = next(iter(config["data"]))
        config["data"][key] = config["data"][key].replace(
            "http://weather-station:8088/weather", "https://device.example.com:8443/events"
        )
        self.assertFails(docs, "(device.example.com:8443) is not allowed")
        config["data"][key] = config["data"][key].replace(":8443", "")
        self.assertEqual(deploy_check.check(docs), [])

    def test_registry_broker_needs_egress(self):
        docs = self.local()
        container(docs, "Deployment", "sse-schema")["env"].append(
            {"name": "SCHEMA_REGISTRY_MQTT_URL", "value": "mqtts://mqtt-broker:8883"}
        )
        self.assertFails(
            docs, "sse-schema: egress to the broker of SCHEMA_REGISTRY_MQTT_URL (port 8883) is not allowed"
        )

    def test_unbounded_egress(self):
        docs = self.local()
        find(docs, "NetworkPolicy", "sse-ingest-sources")["spec"]["egress"].append({})
        self.assertFails(docs, "sse-ingest: NetworkPolicy sse-ingest-sources allows all egress")

    def test_health_port_closed(self):
        docs = self.local()
        find(docs, "NetworkPolicy", "sse-publisher")["spec"]["ingress"].pop(0)
        self.assertFails(docs, "sse-publisher: health port 8081 is not open")

    def test_probe_on_the_mtls_port(self):
        docs = self.local()
        container(docs, "Deployment", "sse-schema")["livenessProbe"]["grpc"]["port"] = 50052
        self.assertFails(docs, "sse-schema: livenessProbe asks port 50052, not the health port 8081")

    def test_health_listen_missing(self):
        docs = self.local()
        c = container(docs, "StatefulSet", "sse-ingest")
        c["env"] = [e for e in c["env"] if e["name"] != "HEALTH_LISTEN"]
        self.assertFails(docs, "sse-ingest: HEALTH_LISTEN is not set, so nothing serves the health port 8081")

    def test_health_listen_on_another_port(self):
        docs = self.local()
        set_env(container(docs, "Deployment", "sse-schema"), "HEALTH_LISTEN", "0.0.0.0:9090")
        self.assertFails(docs, "sse-schema: HEALTH_LISTEN 0.0.0.0:9090 does not open the health port 8081")

    def test_plaintext_peer_url(self):
        docs = self.local()
        set_env(container(docs, "StatefulSet", "sse-ingest"), "SCHEMA_ADDR", "http://sse-schema:50052")
        self.assertFails(docs, "sse-ingest: SCHEMA_ADDR http://sse-schema:50052 must be https://")

    def test_peer_host_not_in_certificate(self):
        docs = self.local()
        find(docs, "Certificate", "sse-publisher")["spec"]["dnsNames"][0] = "publisher"
        self.assertFails(docs, "PUBLISHER_ADDR host sse-publisher is not a SAN of sse-publisher's")
        self.assertFails(docs, "lacks the SAN 'sse-publisher' its peers check")

    def test_tls_env_incomplete(self):
        docs = self.local()
        c = container(docs, "Deployment", "sse-publisher")
        c["env"] = [e for e in c["env"] if e["name"] != "GRPC_TLS_KEY"]
        self.assertFails(docs, "sse-publisher: GRPC_TLS_KEY missing")

    def test_tls_secret_not_mounted(self):
        docs = self.local()
        c = container(docs, "Deployment", "sse-schema")
        c["volumeMounts"] = [v for v in c["volumeMounts"] if v["name"] != "grpc-tls"]
        self.assertFails(docs, "sse-schema: GRPC_TLS_CA /etc/sse/grpc-tls/ca.crt is not in a mounted Secret")

    def test_tls_secret_of_another_service(self):
        docs = self.local()
        pod = find(docs, "Deployment", "sse-schema")["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v["name"] == "grpc-tls")
        volume["secret"]["secretName"] = "sse-ingest-grpc-tls"
        self.assertFails(docs, "sse-schema: its Certificate sse-ingest lacks the SAN 'sse-schema'")

    def test_tls_secret_world_readable(self):
        docs = self.local()
        pod = find(docs, "Deployment", "sse-publisher")["spec"]["template"]["spec"]
        next(v for v in pod["volumes"] if v["name"] == "grpc-tls")["secret"].pop("defaultMode")
        self.assertFails(docs, "sse-publisher: Secret sse-publisher-grpc-tls is mounted world-readable (644)")

    def test_certificate_fields(self):
        docs = self.local()
        spec = find(docs, "Certificate", "sse-ingest")["spec"]
        spec.pop("secretName")
        spec["usages"] = ["digital signature", "server auth"]
        find(docs, "Certificate", "sse-console")["spec"]["issuerRef"].pop("kind")
        find(docs, "Certificate", "sse-schema")["spec"]["usages"] = ["client auth"]
        self.assertFails(docs, "Certificate sse-ingest: no secretName")
        self.assertFails(docs, "Certificate sse-ingest: usages lack 'client auth'")
        self.assertFails(docs, "Certificate sse-console: issuerRef needs a name and kind")
        self.assertFails(docs, "Certificate sse-schema: serves sse-schema, needs usage 'server auth'")

    def test_certificate_without_sans_or_issuer(self):
        docs = self.local()
        find(docs, "Certificate", "sse-console")["spec"].pop("dnsNames")
        docs = [d for d in docs if d["kind"] != "Issuer" or d["metadata"]["name"] != "sse-grpc-ca"]
        self.assertFails(docs, "Certificate sse-console: no dnsNames or uris")
        self.assertFails(docs, "Certificate sse-ingest: Issuer sse-grpc-ca is not in this manifest")

    def test_certificate_and_issuer_typos(self):
        docs = self.local()
        spec = find(docs, "Certificate", "sse-publisher")["spec"]
        spec["dnsName"] = spec.pop("dnsNames")
        spec["usages"].append("clientauth")
        spec["privateKey"]["rotationPolicy"] = "never"
        find(docs, "Issuer", "sse-selfsigned")["spec"] = {"selfsigned": {}}
        self.assertFails(docs, "Certificate sse-publisher: unknown field spec.dnsName")
        self.assertFails(docs, "Certificate sse-publisher: unknown usage 'clientauth'")
        self.assertFails(docs, "spec.privateKey.rotationPolicy 'never' is not one of ['Always', 'Never']")
        self.assertFails(docs, "Issuer sse-selfsigned: spec needs exactly one of")

    def test_namespace_not_filled_in(self):
        docs = self.local()
        find(docs, "Certificate", "sse-schema")["spec"]["dnsNames"][2] = "sse-schema.NAMESPACE.svc"
        self.assertFails(docs, "dnsName sse-schema.NAMESPACE.svc is not in namespace sse-connector")

    def test_ca_issuer_from_a_leaf(self):
        docs = self.local()
        find(docs, "Certificate", "sse-grpc-ca")["spec"].pop("isCA")
        self.assertFails(docs, "Issuer sse-grpc-ca: Secret sse-grpc-ca is not from an isCA Certificate")

    def test_renamed_label_or_port_is_not_skipped(self):
        docs = self.local()
        labels = find(docs, "Deployment", "sse-schema")["spec"]["template"]["metadata"]["labels"]
        labels[deploy_check.NAME] = "schema"
        container(docs, "Deployment", "sse-publisher")["ports"][0]["name"] = "rpc"
        self.assertFails(docs, "sse-schema: no Deployment or StatefulSet labelled")
        self.assertFails(docs, "sse-publisher: no container port named grpc")

    def test_replicas_and_ordinal(self):
        docs = self.local()
        set_env(container(docs, "StatefulSet", "sse-ingest"), "INGEST_REPLICAS", "3")
        self.assertFails(docs, "sse-ingest: INGEST_REPLICAS 3 != replicas 1")


if __name__ == "__main__":
    unittest.main()
