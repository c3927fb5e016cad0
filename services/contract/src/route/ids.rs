//! The Azure Device Registry identities of a route's device and asset (`uuid`,
//! `externalDeviceId`, `externalAssetId`) and Azure's rules that turn them into the CloudEvents
//! `source` and `subject` and the `aiodeviceref` / `aioassetref` properties. Ingest carries the
//! ids on the route, the publisher builds the properties with these rules: one place for both.

use super::{Route, source, write_subject};

/// The most bytes of a `uuid`, `externalDeviceId` or `externalAssetId`: ADR's uuids have 36,
/// and the ids end up in every event's MQTT user properties, so a resource may not make them
/// large.
pub const RESOURCE_ID_BYTES_MAX: usize = 256;

/// The ADR ids of a route's device and asset; each empty when the resource has none (every
/// resource file without them, every older peer), and then the name stands in for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ResourceIds {
    /// The device's `uuid`.
    pub device_uuid: String,
    /// The device's `externalDeviceId`.
    pub external_device_id: String,
    /// The asset's `uuid`.
    pub asset_uuid: String,
    /// The asset's `externalAssetId`.
    pub external_asset_id: String,
}

/// Checks one id of a resource (`field` names it in the error): plain text of at most
/// [`RESOURCE_ID_BYTES_MAX`] bytes without control characters, since it becomes an MQTT user
/// property value.
pub fn check_resource_id(field: &str, id: &str) -> Result<(), String> {
    if id.len() > RESOURCE_ID_BYTES_MAX {
        return Err(format!(
            "{field} is {} bytes, more than the {RESOURCE_ID_BYTES_MAX} allowed",
            id.len()
        ));
    }
    if let Err(u) = crate::mqtt_text::check(id) {
        return Err(format!("{field} {id:?} {u}"));
    }
    Ok(())
}

/// Checks a name or path of a resource that the events carry in their CloudEvents properties
/// (an endpoint, dataset, event group or event name, a data source, a type reference): `field`
/// names it in the error. Non-empty when `required`, and a string brokers accept (sse-contract's
/// `mqtt_text`): otherwise every event of it would be refused by the publisher one by one.
pub fn check_route_text(field: &str, value: &str, required: bool) -> Result<(), String> {
    if required && value.is_empty() {
        return Err(format!("{field} is empty"));
    }
    let shown: String = value.chars().take(64).collect();
    crate::mqtt_text::check(value).map_err(|u| format!("{field} {shown:?} {u}"))
}

/// The id Azure names a resource by in `source` and `subject`: its external id where one is set
/// and differs from its uuid, else its name (the Rust SDK's `destination_endpoint.rs`).
pub fn shown_id<'a>(name: &'a str, uuid: &str, external_id: &'a str) -> &'a str {
    if external_id.is_empty() || external_id == uuid {
        name
    } else {
        external_id
    }
}

/// The id Azure refers to a resource by in `aiodeviceref` / `aioassetref`: its uuid, else (a
/// resource without one, as in a file) its name.
pub fn ref_id<'a>(name: &'a str, uuid: &'a str) -> &'a str {
    if uuid.is_empty() { name } else { uuid }
}

impl<D> Route<D> {
    /// The id `source` names the device by ([`shown_id`]).
    pub fn shown_device(&self) -> &str {
        shown_id(
            &self.device,
            &self.ids.device_uuid,
            &self.ids.external_device_id,
        )
    }

    /// The id `subject` names the asset by ([`shown_id`]).
    pub fn shown_asset(&self) -> &str {
        shown_id(
            &self.asset,
            &self.ids.asset_uuid,
            &self.ids.external_asset_id,
        )
    }

    /// CloudEvents `source`: [`source`] of the shown device id and the data source.
    pub fn cloud_event_source(&self) -> String {
        source(self.shown_device(), &self.data_source)
    }

    /// CloudEvents `subject`: [`super::subject`] with the shown asset id. `named` is the subject by
    /// names that ingest sent with the event (empty from an older sender); it is the value
    /// whenever the asset is shown by its name, so that case costs a copy, not a format.
    pub fn cloud_event_subject(&self, named: &str) -> String {
        let asset = self.shown_asset();
        if asset == self.asset && !named.is_empty() {
            return named.to_string();
        }
        let mut out = String::new();
        write_subject(self.kind, asset, &self.group, &self.event, &mut out);
        out
    }

    /// `aiodeviceref`: `ms-aio:<device uuid>/<endpoint>` (the Rust SDK's `/`; the .NET SDK
    /// writes `_`), the device name without a uuid.
    pub fn aio_device_ref(&self) -> String {
        let device = ref_id(&self.device, &self.ids.device_uuid);
        ["ms-aio:", device, "/", &self.endpoint].concat()
    }

    /// `aioassetref`: `ms-aio:<asset uuid>`, the asset name without a uuid.
    pub fn aio_asset_ref(&self) -> String {
        ["ms-aio:", ref_id(&self.asset, &self.ids.asset_uuid)].concat()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::route::RouteKind;

    const UUID: &str = "5f0a6c1e-3b1d-4c6e-9a47-2f0d8e6b7c11";
    const ASSET_UUID: &str = "9b1e0f3a-77c2-4d2b-8a5e-61c0d4e2f900";

    fn route(kind: RouteKind, ids: ResourceIds) -> Route<()> {
        Route {
            device: "press".into(),
            endpoint: "sse-0".into(),
            asset: "line-1".into(),
            kind,
            group: "alerts".into(),
            event: "hot".into(),
            data_source: "/temperature".into(),
            type_ref: String::new(),
            destination: (),
            ids,
            dead_letter: None,
        }
    }

    fn ids(external_device_id: &str, external_asset_id: &str) -> ResourceIds {
        ResourceIds {
            device_uuid: UUID.into(),
            external_device_id: external_device_id.into(),
            asset_uuid: ASSET_UUID.into(),
            external_asset_id: external_asset_id.into(),
        }
    }

    #[test]
    fn an_external_id_equal_to_the_uuid_shows_the_name() {
        let r = route(RouteKind::Dataset, ids(UUID, ASSET_UUID));
        assert_eq!(r.cloud_event_source(), "ms-aio:press/temperature");
        assert_eq!(r.cloud_event_subject("line-1/alerts"), "line-1/alerts");
    }

    #[test]
    fn an_absent_external_id_shows_the_name() {
        let r = route(RouteKind::Event, ids("", ""));
        assert_eq!(r.cloud_event_source(), "ms-aio:press/temperature");
        assert_eq!(
            r.cloud_event_subject("line-1/alerts/hot"),
            "line-1/alerts/hot"
        );
        // From an older sender, without the subject: derived by the same rule.
        assert_eq!(r.cloud_event_subject(""), "line-1/alerts/hot");
    }

    #[test]
    fn a_different_external_id_is_shown() {
        let r = route(RouteKind::Event, ids("press-ext", "line-ext"));
        assert_eq!(r.cloud_event_source(), "ms-aio:press-ext/temperature");
        // The subject by names that ingest sent is not the one shown.
        assert_eq!(
            r.cloud_event_subject("line-1/alerts/hot"),
            "line-ext/alerts/hot"
        );
        let r = route(RouteKind::Dataset, ids("press-ext", "line-ext"));
        assert_eq!(r.cloud_event_subject("line-1/alerts"), "line-ext/alerts");
    }

    #[test]
    fn an_external_id_without_a_uuid_is_shown() {
        // A resource file may carry an external id and no uuid: the same rule applies.
        let r = route(
            RouteKind::Dataset,
            ResourceIds {
                external_device_id: "press-ext".into(),
                external_asset_id: "line-ext".into(),
                ..ResourceIds::default()
            },
        );
        assert_eq!(r.cloud_event_source(), "ms-aio:press-ext/temperature");
        assert_eq!(r.cloud_event_subject("line-1/alerts"), "line-ext/alerts");
        assert_eq!(r.aio_device_ref(), "ms-aio:press/sse-0");
        assert_eq!(r.aio_asset_ref(), "ms-aio:line-1");
    }

    #[test]
    fn refs_carry_the_uuids_with_a_slash() {
        let r = route(RouteKind::Event, ids("press-ext", ""));
        assert_eq!(r.aio_device_ref(), format!("ms-aio:{UUID}/sse-0"));
        assert_eq!(r.aio_asset_ref(), format!("ms-aio:{ASSET_UUID}"));
    }

    #[test]
    fn refs_without_uuids_carry_the_names() {
        let r = route(RouteKind::Event, ResourceIds::default());
        assert_eq!(r.aio_device_ref(), "ms-aio:press/sse-0");
        assert_eq!(r.aio_asset_ref(), "ms-aio:line-1");
    }

    #[test]
    fn ids_are_bounded_plain_text() {
        assert_eq!(check_resource_id("uuid", UUID), Ok(()));
        assert_eq!(check_resource_id("uuid", ""), Ok(()));
        let max = "x".repeat(RESOURCE_ID_BYTES_MAX);
        assert_eq!(check_resource_id("externalAssetId", &max), Ok(()));
        let long = check_resource_id("externalAssetId", &format!("{max}x")).unwrap_err();
        assert!(long.contains("externalAssetId is 257 bytes"), "{long}");
        let ctl = check_resource_id("externalDeviceId", "a\nb").unwrap_err();
        assert!(
            ctl.contains("externalDeviceId") && ctl.contains("control"),
            "{ctl}"
        );
    }
}
