//! Resources to a stream plan: one entry per distinct SSE stream (device/endpoint + URL) with the
//! datasets and event-group events it feeds, and per SSE event which routes it goes to.

use std::collections::BTreeMap;
use std::sync::Arc;

use url::Url;

use sse_contract::route::ResourceIds;

use crate::resources::options::EndpointOptions;
use crate::resources::{Asset, Auth, Destination, Device, Endpoint, MqttDestination, Resources};

/// Kind of data operation a route feeds: the contract's, so every service names it alike.
pub use sse_contract::route::RouteKind;

/// One dataset or event-group event fed by a stream, with its destination: the contract's
/// route shape, shared with the publisher.
pub type Route = sse_contract::route::Route<Destination>;

/// An event group reading a stream: its events, matched by SSE event type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPlan {
    /// Asset name.
    pub asset: String,
    /// Group name.
    pub name: String,
    /// One route per event of the group.
    pub events: Vec<Arc<Route>>,
}

/// One SSE stream to read and what it feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPlan {
    /// `<device>/<endpoint>|<url>`.
    pub key: String,
    /// The URL read.
    pub url: Url,
    /// Device name.
    pub device: String,
    /// Endpoint name.
    pub endpoint: String,
    /// Credentials of the endpoint.
    pub auth: Auth,
    /// Trust list of the endpoint.
    pub trust_list: Option<String>,
    /// The endpoint's `additionalConfiguration` options (a change restarts the stream).
    pub options: EndpointOptions,
    /// Datasets on this stream: each takes every event.
    pub datasets: Vec<Arc<Route>>,
    /// Event groups on this stream.
    pub groups: Vec<GroupPlan>,
}

/// Where one SSE event goes.
#[derive(Debug, Default)]
pub struct Dispatch {
    /// Every matching route, datasets first, in resource order.
    pub routes: Vec<Arc<Route>>,
    /// Event groups that had no event for this type.
    pub unmatched: u64,
}

impl StreamPlan {
    /// The routes of one SSE event of type `event_type`.
    pub fn dispatch(&self, event_type: &str) -> Dispatch {
        let mut d = Dispatch {
            routes: self.datasets.clone(),
            unmatched: 0,
        };
        for g in &self.groups {
            let before = d.routes.len();
            d.routes.extend(
                g.events
                    .iter()
                    .filter(|r| r.matches_type(event_type))
                    .cloned(),
            );
            if d.routes.len() == before {
                d.unmatched += 1;
            }
        }
        d
    }

    /// Whether any route of this stream has a dead-letter destination (then events over the
    /// size limit are kept, truncated, for it).
    pub fn has_dead_letter(&self) -> bool {
        let events = self.groups.iter().flat_map(|g| g.events.iter());
        self.datasets
            .iter()
            .chain(events)
            .any(|r| r.dead_letter.is_some())
    }

    /// The assets this stream feeds, each once, in resource order (for status).
    pub fn assets(&self) -> Vec<String> {
        let datasets = self.datasets.iter().map(|r| r.asset.as_str());
        let mut v: Vec<String> = Vec::new();
        for a in datasets.chain(self.groups.iter().map(|g| g.asset.as_str())) {
            if !a.is_empty() && !v.iter().any(|x| x == a) {
                v.push(a.to_string());
            }
        }
        v
    }

    /// Subjects of every route fed by this stream (for status).
    pub fn subjects(&self) -> Vec<String> {
        let mut v: Vec<String> = self.datasets.iter().map(|r| r.subject()).collect();
        for g in &self.groups {
            if g.events.is_empty() {
                v.push(format!("{}/{}", g.asset, g.name));
            }
            v.extend(g.events.iter().map(|r| r.subject()));
        }
        v
    }
}

/// Joins an address and a data source path with exactly one `/`; `""` is the address itself.
/// A query in the data source replaces the address's.
pub fn join_url(address: &Url, data_source: &str) -> Url {
    let rest = data_source.trim_start_matches('/');
    if rest.is_empty() {
        return address.clone();
    }
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let mut url = address.clone();
    let base = address.path().trim_end_matches('/');
    url.set_path(&format!("{base}/{path}"));
    if query.is_some() {
        url.set_query(query);
    }
    url
}

/// The stream key: `<device>/<endpoint>|<url>`, the URL without secrets (see [`crate::stream_key`]).
pub fn stream_key(device: &str, endpoint: &str, url: &Url) -> String {
    crate::stream_key::stream_key(device, endpoint, url)
}

/// Builds the streams to read from validated resources, sorted by key.
pub fn plan(resources: &Resources) -> Vec<StreamPlan> {
    let mut streams: BTreeMap<String, StreamPlan> = BTreeMap::new();
    for asset in &resources.assets {
        let Some((device, ep)) = resources
            .devices
            .get(&asset.device)
            .and_then(|d| Some((d, d.endpoints.get(&asset.endpoint)?)))
        else {
            continue; // validation already reported it
        };
        plan_asset(asset, ep, &ids(device, asset), &mut streams);
    }
    streams.into_values().collect()
}

/// The ADR ids of `device` and `asset` that their routes carry to the CloudEvents properties.
fn ids(device: &Device, asset: &Asset) -> ResourceIds {
    ResourceIds {
        device_uuid: device.uuid.clone(),
        external_device_id: device.external_device_id.clone(),
        asset_uuid: asset.uuid.clone(),
        external_asset_id: asset.external_asset_id.clone(),
    }
}

/// Adds the datasets and event groups of `asset` (read through `ep`) to their streams; each
/// route carries `ids`.
fn plan_asset(
    asset: &Asset,
    ep: &Endpoint,
    ids: &ResourceIds,
    streams: &mut BTreeMap<String, StreamPlan>,
) {
    for ds in &asset.datasets {
        let key = stream_of(streams, asset, ep, &ds.data_source);
        let r = route(
            asset,
            RouteKind::Dataset,
            (&ds.name, ""),
            &ds.data_source,
            &ds.type_ref,
            &ds.destination,
            ids,
        );
        let r = with_dead_letter(r, asset.dead_letters.datasets.as_ref(), ep);
        if let Some(s) = streams.get_mut(&key) {
            s.datasets.push(r);
        }
    }
    for g in &asset.event_groups {
        if g.events.is_empty() && !g.rejected.is_empty() {
            continue; // every event of it is rejected: nothing to read the stream for
        }
        let key = stream_of(streams, asset, ep, &g.data_source);
        let events = g
            .events
            .iter()
            .map(|e| {
                let names = (g.name.as_str(), e.name.as_str());
                route(
                    asset,
                    RouteKind::Event,
                    names,
                    &e.data_source,
                    &e.type_ref,
                    &e.destination,
                    ids,
                )
            })
            .map(|r| with_dead_letter(r, asset.dead_letters.events.as_ref(), ep))
            .collect();
        let group = GroupPlan {
            asset: asset.name.clone(),
            name: g.name.clone(),
            events,
        };
        if let Some(s) = streams.get_mut(&key) {
            s.groups.push(group);
        }
    }
}

/// The key of the stream `data_source` of `ep` is read on, planned now if it is new.
fn stream_of(
    streams: &mut BTreeMap<String, StreamPlan>,
    asset: &Asset,
    ep: &Endpoint,
    data_source: &str,
) -> String {
    let url = join_url(&ep.address, data_source);
    let key = stream_key(&asset.device, &asset.endpoint, &url);
    streams
        .entry(key.clone())
        .or_insert_with(|| StreamPlan {
            key,
            url,
            device: asset.device.clone(),
            endpoint: asset.endpoint.clone(),
            auth: ep.auth.clone(),
            trust_list: ep.trust_list.clone(),
            options: ep.options.clone(),
            datasets: Vec::new(),
            groups: Vec::new(),
        })
        .key
        .clone()
}

/// The route of one dataset (`(name, "")`) or event (`(group, event)`) of `asset`.
fn route(
    asset: &Asset,
    kind: RouteKind,
    (group, event): (&str, &str),
    data_source: &str,
    type_ref: &str,
    destination: &Destination,
    ids: &ResourceIds,
) -> Arc<Route> {
    Arc::new(Route {
        device: asset.device.clone(),
        endpoint: asset.endpoint.clone(),
        asset: asset.name.clone(),
        kind,
        group: group.to_string(),
        event: event.to_string(),
        data_source: data_source.to_string(),
        type_ref: type_ref.to_string(),
        destination: destination.clone(),
        ids: ids.clone(),
        dead_letter: None,
    })
}

/// `route` with its dead-letter destination: the asset's (`own`), else the device's endpoint's.
fn with_dead_letter(
    mut route: Arc<Route>,
    own: Option<&MqttDestination>,
    ep: &Endpoint,
) -> Arc<Route> {
    let dead_letter = own.or(ep.options.dead_letter.as_ref()).cloned();
    if dead_letter.is_some() {
        Arc::make_mut(&mut route).dead_letter = dead_letter;
    }
    route
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::load_texts;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn join_uses_exactly_one_slash() {
        let cases = [
            ("http://h/base", "/readings", "http://h/base/readings"),
            ("http://h/base/", "/readings", "http://h/base/readings"),
            ("http://h/base", "readings", "http://h/base/readings"),
            ("http://h/base/", "readings", "http://h/base/readings"),
            ("http://h/base//", "//readings", "http://h/base/readings"),
            ("http://h", "/readings", "http://h/readings"),
            ("http://h:8080/", "a/b", "http://h:8080/a/b"),
            ("http://h/base", "", "http://h/base"),
            ("http://h/base/", "", "http://h/base/"),
            ("http://h/base", "/", "http://h/base"),
            ("http://h/base?x=1", "/r", "http://h/base/r?x=1"),
            ("http://h/base?x=1", "/r?y=2", "http://h/base/r?y=2"),
        ];
        for (a, d, want) in cases {
            assert_eq!(join_url(&url(a), d).as_str(), want, "{a} + {d}");
        }
    }

    const RES: &str = r#"
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: { name: dev }
spec:
  endpoints:
    inbound:
      sse-0: { endpointType: Microsoft.SSEHttp, address: "http://h/base" }
      sse-1: { endpointType: Microsoft.SSEHttp, address: "http://h/base" }
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: { name: a1 }
spec:
  deviceRef: { deviceName: dev, endpointName: sse-0 }
  defaultDatasetsDestinations: [ { target: Mqtt, configuration: { topic: ds } } ]
  defaultEventsDestinations: [ { target: Mqtt, configuration: { topic: ev } } ]
  datasets:
    - { name: readings, dataSource: /readings }
    - { name: everything, dataSource: "" }
  eventGroups:
    - name: alerts
      events:
        - { name: hot, dataSource: temperature-threshold }
        - { name: beat, dataSource: /heartbeat }
        - { name: beat-too, dataSource: heartbeat }
    - name: other
      dataSource: /readings
      events:
        - { name: r, dataSource: reading }
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: { name: a2 }
spec:
  deviceRef: { deviceName: dev, endpointName: sse-0 }
  datasets:
    - { name: same-path, dataSource: readings, destinations: [ { target: Mqtt, configuration: { topic: x } } ] }
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: { name: a3 }
spec:
  deviceRef: { deviceName: dev, endpointName: sse-1 }
  datasets:
    - { name: d, dataSource: /readings, destinations: [ { target: Mqtt, configuration: { topic: y } } ] }
"#;

    fn plans() -> Vec<StreamPlan> {
        let r = load_texts([("r.yaml", RES)]);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        plan(&r)
    }

    #[test]
    fn one_stream_per_distinct_endpoint_and_url() {
        let p = plans();
        let keys: Vec<&str> = p.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "dev/sse-0|http://h/base",
                "dev/sse-0|http://h/base/readings",
                "dev/sse-1|http://h/base/readings",
            ]
        );
        assert_eq!(
            p[1].subjects(),
            ["a1/readings", "a2/same-path", "a1/other/r"]
        );
        assert_eq!(
            p[0].subjects(),
            [
                "a1/everything",
                "a1/alerts/hot",
                "a1/alerts/beat",
                "a1/alerts/beat-too"
            ]
        );
        assert_eq!(p[2].subjects(), ["a3/d"]);
    }

    fn subjects(d: &Dispatch) -> Vec<String> {
        d.routes.iter().map(|r| r.subject()).collect()
    }

    #[test]
    fn subject_of_a_status_route_and_into_a_used_buffer() {
        let p = plans();
        let mut r = Route::clone(&p[0].dispatch("temperature-threshold").routes[1]);
        let mut buf = "left over from a longer subject".to_string();
        r.write_subject(&mut buf);
        assert_eq!(buf, "a1/alerts/hot");
        r.kind = RouteKind::Status;
        r.write_subject(&mut buf);
        assert_eq!(buf, "status/alerts/a1");
        assert_eq!(r.subject(), buf);
    }

    #[test]
    fn datasets_take_everything_groups_match_by_type() {
        let p = plans();
        let d = p[0].dispatch("temperature-threshold");
        assert_eq!(subjects(&d), ["a1/everything", "a1/alerts/hot"]);
        assert_eq!(d.unmatched, 0);
        let d = p[0].dispatch("heartbeat");
        assert_eq!(
            subjects(&d),
            ["a1/everything", "a1/alerts/beat", "a1/alerts/beat-too"]
        );
        let d = p[0].dispatch("other");
        assert_eq!(subjects(&d), ["a1/everything"]);
        assert_eq!(d.unmatched, 1);
        // "/heartbeat" is not an event type that "heartbeat" (no slash) matches, the reverse only.
        let d = p[0].dispatch("/heartbeat");
        assert_eq!(subjects(&d), ["a1/everything", "a1/alerts/beat"]);
        let d = p[1].dispatch("message");
        assert_eq!(subjects(&d), ["a1/readings", "a2/same-path"]);
        assert_eq!(d.unmatched, 1);
    }

    #[test]
    fn routes_carry_the_adr_ids_of_their_device_and_asset() {
        let with_ids = RES
            .replacen(
                "spec:\n  endpoints:",
                "spec:\n  uuid: d-uuid\n  externalDeviceId: dev-ext\n  endpoints:",
                1,
            )
            .replacen(
                "metadata: { name: a1 }\nspec:\n",
                "metadata: { name: a1 }\nspec:\n  uuid: a1-uuid\n  externalAssetId: a1-ext\n",
                1,
            );
        let r = load_texts([("r.yaml", with_ids.as_str())]);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let p = plan(&r);
        let a1 = &p[0].dispatch("temperature-threshold").routes[1];
        let want = ResourceIds {
            device_uuid: "d-uuid".into(),
            external_device_id: "dev-ext".into(),
            asset_uuid: "a1-uuid".into(),
            external_asset_id: "a1-ext".into(),
        };
        assert_eq!((a1.asset.as_str(), &a1.ids), ("a1", &want));
        // a2 has no ids of its own, only its device's.
        let a2 = &p[1].dispatch("message").routes[1];
        assert_eq!(a2.asset, "a2");
        assert_eq!(
            a2.ids,
            ResourceIds {
                device_uuid: "d-uuid".into(),
                external_device_id: "dev-ext".into(),
                ..ResourceIds::default()
            }
        );
    }

    #[test]
    fn the_assets_dead_letter_wins_over_the_devices() {
        let with_dl = RES
            .replacen(
                r#"sse-0: { endpointType: Microsoft.SSEHttp, address: "http://h/base" }"#,
                r#"sse-0: { endpointType: Microsoft.SSEHttp, address: "http://h/base", additionalConfiguration: '{"deadLetter": {"topic": "sse-connector/dead-letter/dev"}}' }"#,
                1,
            )
            .replacen(
                "metadata: { name: a1 }\nspec:\n",
                "metadata: { name: a1 }\nspec:\n  defaultEventsConfiguration: '{\"deadLetter\": {\"topic\": \"sse-connector/dead-letter/a1-events\"}}'\n",
                1,
            );
        let r = load_texts([("r.yaml", with_dl.as_str())]);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let p = plan(&r);
        let dl = |route: &Route| route.dead_letter.as_ref().map(|d| d.topic.clone());
        let d = p[0].dispatch("temperature-threshold");
        // a1's dataset: the device's; a1's event: the asset's own.
        assert_eq!(
            dl(&d.routes[0]).as_deref(),
            Some("sse-connector/dead-letter/dev")
        );
        assert_eq!(
            dl(&d.routes[1]).as_deref(),
            Some("sse-connector/dead-letter/a1-events")
        );
        assert!(p[0].has_dead_letter());
        // a3 reads sse-1, whose device endpoint has none.
        assert_eq!(dl(&p[2].datasets[0]), None);
        assert!(!p[2].has_dead_letter());
    }

    #[test]
    fn an_invalid_asset_dead_letter_rejects_the_asset_by_name() {
        let bad = RES.replacen(
            "metadata: { name: a3 }\nspec:\n",
            "metadata: { name: a3 }\nspec:\n  defaultDatasetsConfiguration: '{\"deadLetter\": {\"topic\": \"plant/dead\"}}'\n",
            1,
        );
        let r = load_texts([("r.yaml", bad.as_str())]);
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert_eq!(r.errors[0].resource, "Asset/a3");
        assert!(
            r.errors[0]
                .message
                .starts_with("defaultDatasetsConfiguration.deadLetter.topic: a dead-letter topic must be under sse-connector/dead-letter/"),
            "{}",
            r.errors[0].message
        );
        assert!(r.assets.iter().all(|a| a.name != "a3"));
    }

    #[test]
    fn routes_carry_resolved_destinations_and_names() {
        let p = plans();
        let d = p[0].dispatch("temperature-threshold");
        let hot = &d.routes[1];
        assert_eq!(hot.kind, RouteKind::Event);
        assert_eq!(hot.device, "dev");
        assert_eq!(hot.endpoint, "sse-0");
        assert_eq!(hot.group, "alerts");
        assert_eq!(hot.event, "hot");
        assert_eq!(hot.data_source, "temperature-threshold");
        assert!(matches!(&hot.destination, Destination::Mqtt(m) if m.topic == "ev"));
        let ds = &d.routes[0];
        assert_eq!(ds.kind, RouteKind::Dataset);
        assert!(matches!(&ds.destination, Destination::Mqtt(m) if m.topic == "ds"));
    }
}
