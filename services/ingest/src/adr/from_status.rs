//! Ingest's status report in the shape ADR's status updates take (`updateDeviceStatus`,
//! `updateAssetStatus`): the config error of each resource, endpoint, dataset and event, and the
//! schema reference of each dataset and event. Runtime health is not part of these: it goes as
//! health events ([`super::health`]). A status update replaces the whole status on the service's
//! side, so each is built whole from one report.

use crate::status;

use super::{
    AssetStatus, ConfigError, ConfigStatus, DeviceStatus, DeviceStatusEndpoints, EndpointStatus,
    EventGroupStatus, MessageSchemaReference, PartStatus,
};

/// The ADR config status: the error if any, the report's transition time, and the version of
/// the resource definition it is about.
fn config(c: &status::ConfigStatus, version: Option<u64>) -> ConfigStatus {
    ConfigStatus {
        error: c.error.as_ref().map(error),
        last_transition_time: Some(c.last_transition_time.clone()),
        version,
    }
}

fn error(e: &status::StatusError) -> ConfigError {
    ConfigError {
        code: Some(e.code.clone()),
        message: Some(e.message.clone()),
        details: None,
    }
}

fn part(o: &status::OperationStatus) -> PartStatus {
    PartStatus {
        name: o.name.clone(),
        error: o.error.as_ref().map(error),
        message_schema_reference: o.message_schema_reference.as_ref().map(|r| {
            MessageSchemaReference {
                schema_registry_namespace: r.schema_registry_namespace.clone(),
                schema_name: r.schema_name.clone(),
                schema_version: r.schema_version.clone(),
            }
        }),
    }
}

/// `updateDeviceStatus`'s payload for a device of definition `version`: its config and each
/// inbound endpoint (a healthy one as `{}`, as the SDK sends it).
pub fn device_status(d: &status::DeviceStatus, version: Option<u64>) -> DeviceStatus {
    let inbound = (d.endpoints.inbound.iter())
        .map(|(name, e)| {
            let error = e.error.as_ref().map(error);
            (name.clone(), EndpointStatus { error })
        })
        .collect();
    DeviceStatus {
        config: Some(config(&d.config, version)),
        endpoints: Some(DeviceStatusEndpoints {
            inbound: Some(inbound),
        }),
    }
}

/// `updateAssetStatus`'s payload for an asset of definition `version`: its config, and each
/// dataset and event with its error and the schema its messages follow.
pub fn asset_status(a: &status::AssetStatus, version: Option<u64>) -> AssetStatus {
    let event_groups = (a.event_groups.iter())
        .map(|g| EventGroupStatus {
            name: g.name.clone(),
            events: Some(g.events.iter().map(part).collect()),
        })
        .collect();
    AssetStatus {
        config: Some(config(&a.config, version)),
        datasets: Some(a.datasets.iter().map(part).collect()),
        streams: None,
        event_groups: Some(event_groups),
        management_groups: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::load_texts;
    use crate::routing::plan;
    use crate::status::Status;
    use serde_json::json;
    use sse_proto::v1 as pb;

    const RES: &str = r#"apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: { name: press }
spec:
  endpoints:
    inbound:
      sse: { endpointType: Microsoft.SSE, address: "http://h/x" }
      rest: { endpointType: Microsoft.SSE, address: "ftp://h/y" }
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: { name: line }
spec:
  deviceRef: { deviceName: press, endpointName: sse }
  defaultDatasetsDestinations: [ { target: Mqtt, configuration: { topic: t } } ]
  datasets: [ { name: temp, dataSource: /temp } ]
"#;

    #[test]
    fn a_report_becomes_the_status_updates_adr_takes() {
        let r = load_texts([("r.yaml", RES)]);
        let s = Status::default();
        let plans = plan(&r);
        s.reconcile(&plans, &r);
        let route = plans[0].dispatch("message").routes[0].clone();
        let ack = pb::Ack {
            stream_key: plans[0].key.clone(),
            schema: Some(pb::SchemaReference {
                name: "A1B2".into(),
                namespace: "sse".into(),
                version: "2".into(),
            }),
            ..Default::default()
        };
        s.apply_ack(&route, &ack);
        let report = s.report();
        let when = report.devices["press"].config.last_transition_time.clone();

        let device = serde_json::to_value(device_status(&report.devices["press"], Some(7)));
        let rest_error = &report.devices["press"].endpoints.inbound["rest"].error;
        let rest_error = rest_error.as_ref().unwrap();
        assert_eq!(
            device.unwrap(),
            json!({
                "config": { "lastTransitionTime": when, "version": 7 },
                "endpoints": { "inbound": {
                    "rest": { "error": { "code": rest_error.code, "message": rest_error.message } },
                    "sse": {}
                } }
            })
        );
        let asset = serde_json::to_value(asset_status(&report.assets["line"], Some(3)));
        assert_eq!(
            asset.unwrap(),
            json!({
                "config": { "lastTransitionTime": when, "version": 3 },
                "datasets": [ { "name": "temp", "messageSchemaReference": {
                    "schemaRegistryNamespace": "sse", "schemaName": "A1B2", "schemaVersion": "2"
                } } ],
                "eventGroups": []
            })
        );
    }
}
