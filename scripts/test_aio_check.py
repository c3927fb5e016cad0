"""Tests of aio_check.py: deploy/aio passes, and each broken copy fails naming what broke.

Each test copies deploy/aio into a temporary directory, breaks one thing (a required field, the
image, an endpoint type, the metadata's schema), runs the checker on the copy as deploy-check
does, and asserts it exits 1 with the error; a checker that passed everything would fail here.
Run by scripts/deploy-check.sh.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

import aio_check

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "aio_check.py")
DEPLOY = os.path.join(aio_check.ROOT, "deploy/aio")
IMAGE = "spec.runtimeConfiguration.managedConfigurationSettings.imageConfigurationSettings"


def run(directory):
    p = subprocess.run([sys.executable, SCRIPT, directory], capture_output=True, text=True)
    return p.returncode, p.stderr


class BrokenCopies(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        shutil.copytree(DEPLOY, self.dir, dirs_exist_ok=True)
        with open(os.path.join(self.dir, aio_check.TEMPLATE_FILE)) as f:
            self.template = yaml.safe_load(f)
        with open(os.path.join(self.dir, aio_check.METADATA_FILE)) as f:
            self.metadata = json.load(f)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def assertFails(self, message):
        with open(os.path.join(self.dir, aio_check.TEMPLATE_FILE), "w") as f:
            yaml.safe_dump(self.template, f)
        with open(os.path.join(self.dir, aio_check.METADATA_FILE), "w") as f:
            json.dump(self.metadata, f)
        code, err = run(self.dir)
        self.assertEqual(code, 1, f"passed; stderr: {err}")
        self.assertIn(message, err)

    def test_shipped_files_pass(self):
        self.assertEqual(run(DEPLOY), (0, ""))

    def test_required_spec_field_removed(self):
        del self.template["spec"]["runtimeConfiguration"]
        self.assertFails("template: spec.runtimeConfiguration is missing")

    def test_endpoint_types_removed(self):
        del self.template["spec"]["deviceInboundEndpointTypes"]
        self.assertFails("template: spec.deviceInboundEndpointTypes is missing")

    def test_wrong_api_version(self):
        self.template["apiVersion"] = "akri.microsoft.com/v1beta1"
        self.assertFails("template: apiVersion is 'akri.microsoft.com/v1beta1'")

    def test_unknown_spec_field(self):
        self.template["spec"]["env"] = [{"name": "RESOURCES_DIR", "value": "/r"}]
        self.assertFails("template: spec.env is not a ConnectorTemplate field")

    def test_not_an_sse_endpoint_type(self):
        self.template["spec"]["deviceInboundEndpointTypes"][1]["endpointType"] = "Microsoft.Http"
        self.assertFails("template: endpoint type 'Microsoft.Http' is not an SSE endpoint type")

    def test_documented_endpoint_type_missing(self):
        self.template["spec"]["deviceInboundEndpointTypes"].pop(0)
        self.assertFails("template: no deviceInboundEndpointTypes entry is 'Microsoft.SSEHttp'")

    def test_endpoint_types_differ_from_metadata(self):
        self.metadata["inboundEndpoints"].pop()
        self.assertFails("endpoint types of the template")

    def test_image_tag_differs_from_metadata(self):
        self.metadata["imageConfigurationSettings"]["tag"] = "9.9.9"
        self.assertFails("image tag '0.1.0' of the template is not the metadata's '9.9.9'")

    def test_image_name_differs_from_metadata(self):
        image = aio_check.get(self.template, IMAGE)
        image["registrySettings"]["containerRegistrySettings"]["registry"] = "mcr.microsoft.com"
        self.assertFails("image 'mcr.microsoft.com/sse-connector/sse-connector' of the template")

    def test_tag_setting_without_its_value(self):
        del aio_check.get(self.template, IMAGE)["tagDigestSettings"]["tag"]
        self.assertFails("template: tagDigestSettings needs tagDigestType tag or digest")

    def test_sat_without_audience(self):
        del self.template["spec"]["mqttConnectionConfiguration"]["authentication"]["serviceAccountTokenSettings"]
        self.assertFails("template: ServiceAccountToken authentication has no audience")

    def test_metadata_required_field_removed(self):
        del self.metadata["supportedArchitectures"]
        self.assertFails("metadata: $: 'supportedArchitectures' is a required property")

    def test_metadata_unknown_field(self):
        self.metadata["endpointType"] = "Microsoft.SSEHttp"
        self.assertFails("metadata: $: Additional properties are not allowed ('endpointType'")

    def test_metadata_version_not_semver(self):
        self.metadata["version"] = "1.0"
        self.assertFails("metadata: $.version: '1.0' does not match")

    def test_metadata_wire_format_qos(self):
        # The ADR wire format's "Qos1" is not the metadata's numeric qos.
        events = self.metadata["inboundEndpoints"][0]["eventGroups"]["events"]
        events["destinations"]["defaultDestination"] = {
            "destination": "Mqtt", "topic": "t", "qos": "Qos1", "ttl": 0, "retain": "never"}
        self.assertFails("metadata: $.inboundEndpoints[0].eventGroups.events.destinations.defaultDestination")


class ContractEnv(unittest.TestCase):
    def test_image_without_the_resources_default(self):
        with open(aio_check.DOCKERFILE) as f:
            dockerfile = f.read()
        self.assertEqual(aio_check.check_image_env(dockerfile), [])
        broken = dockerfile.replace("ENV RESOURCES_DIR=/etc/sse/resources ", "ENV ")
        self.assertEqual(aio_check.check_image_env(broken), [
            "deploy/Dockerfile: stage sse-connector does not set RESOURCES_DIR, which an Akri pod cannot pass"])


    def test_a_variable_outside_the_contract_is_named(self):
        saved = dict(aio_check.CONNECTOR_AKRI_ENV)
        aio_check.CONNECTOR_AKRI_ENV["AEP_CONFIGMAP_MOUNT_PATH"] = "the older asset endpoint profile"
        try:
            self.assertIn("sse-connector reads AEP_CONFIGMAP_MOUNT_PATH, which the Akri contract does not set",
                          aio_check.check_env())
        finally:
            aio_check.CONNECTOR_AKRI_ENV.clear()
            aio_check.CONNECTOR_AKRI_ENV.update(saved)


if __name__ == "__main__":
    unittest.main()
