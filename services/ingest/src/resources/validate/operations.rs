//! An asset's data operations (datasets and event-group events), validated one by one: a dataset
//! or event that cannot be served is rejected with the reason and its siblings run, as Azure's
//! connectors report such errors on the data operation, not on the asset.

use std::collections::{HashMap, HashSet};

use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;
use sse_contract::route::{self, RouteKind, check_route_text};

use super::{Operation, destination};
use crate::resources::doc::{AssetSpec, DatasetDoc, EventDoc, EventGroupDoc};
use crate::resources::{AssetEvent, Dataset, EventGroup, Rejected};

/// Deserializes one data operation; on failure, the name to report it under (its `name` when
/// it has a readable one, else `<list>[<index>]`) and the reason.
fn typed<T: DeserializeOwned>(v: &Value, list: &str, i: usize) -> Result<T, Rejected> {
    T::deserialize(v).map_err(|e| Rejected {
        name: v
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map_or_else(|| format!("{list}[{i}]"), str::to_string),
        message: format!("invalid: {e}"),
    })
}

/// Rejects the second and later use of a name: their subjects (status, CloudEvents) would be
/// the same as the first's.
fn unique(seen: &mut HashSet<String>, name: &str, what: &str) -> Result<(), Rejected> {
    if seen.insert(name.to_string()) {
        Ok(())
    } else {
        Err(Rejected {
            name: name.to_string(),
            message: format!("duplicate {what} name"),
        })
    }
}

/// Checks the fields every event of a data operation carries into its CloudEvents properties
/// (`(field, value, required)`), so a bad one is a configuration error now rather than a refusal
/// of each event at the publisher.
fn carried(fields: &[(&str, &str, bool)]) -> Result<(), String> {
    fields
        .iter()
        .try_for_each(|(field, value, required)| check_route_text(field, value, *required))
}

/// The asset's datasets that can be served, and those that cannot.
pub(super) fn datasets(spec: &AssetSpec) -> (Vec<Dataset>, Vec<Rejected>) {
    let mut ok = Vec::new();
    let mut rejected = Vec::new();
    let mut seen = HashSet::new();
    for (i, v) in spec.datasets.iter().enumerate() {
        match dataset(spec, v, i, &mut seen) {
            Ok(d) => ok.push(d),
            Err(r) => rejected.push(r),
        }
    }
    (ok, rejected)
}

fn dataset(
    spec: &AssetSpec,
    v: &Value,
    i: usize,
    seen: &mut HashSet<String>,
) -> Result<Dataset, Rejected> {
    let ds: DatasetDoc = typed(v, "datasets", i)?;
    unique(seen, &ds.name, "dataset")?;
    let reject = |message: String| Rejected {
        name: ds.name.clone(),
        message,
    };
    carried(&[
        ("name", &ds.name, true),
        ("dataSource", &ds.data_source, false),
        ("typeRef", ds.type_ref.as_deref().unwrap_or_default(), false),
    ])
    .map_err(reject)?;
    let dest = destination(&ds.destinations, Operation::Dataset)
        .or_else(|| destination(&spec.default_datasets_destinations, Operation::Dataset));
    let destination = match dest {
        None => {
            return Err(reject(
                "no destination (of its own or the asset's default)".into(),
            ));
        }
        Some(Err(m)) => return Err(reject(m)),
        Some(Ok(d)) => d,
    };
    Ok(Dataset {
        name: ds.name.clone(),
        data_source: ds.data_source.clone(),
        type_ref: ds.type_ref.clone().unwrap_or_default(),
        destination,
    })
}

/// The asset's event groups, each with its events that can be served and those that cannot.
pub(super) fn event_groups(spec: &AssetSpec) -> Vec<EventGroup> {
    spec.event_groups
        .iter()
        .map(|g| {
            let mut group = EventGroup {
                name: g.name.clone(),
                data_source: g.data_source.clone(),
                events: Vec::new(),
                rejected: Vec::new(),
            };
            let mut seen = HashSet::new();
            for (i, v) in g.events.iter().enumerate() {
                match event(spec, g, v, i, &mut seen) {
                    Ok(e) => group.events.push(e),
                    Err(r) => group.rejected.push(r),
                }
            }
            group
        })
        .collect()
}

fn event(
    spec: &AssetSpec,
    g: &EventGroupDoc,
    v: &Value,
    i: usize,
    seen: &mut HashSet<String>,
) -> Result<AssetEvent, Rejected> {
    let ev: EventDoc = typed(v, "events", i)?;
    unique(seen, &ev.name, "event")?;
    let dest = destination(&ev.destinations, Operation::Event)
        .or_else(|| destination(&g.default_destinations, Operation::Event))
        .or_else(|| destination(&spec.default_events_destinations, Operation::Event));
    let reject = |message: String| Rejected {
        name: ev.name.clone(),
        message,
    };
    carried(&[
        ("event group name", &g.name, true),
        ("event group dataSource", &g.data_source, false),
        (
            "event group typeRef",
            g.type_ref.as_deref().unwrap_or_default(),
            false,
        ),
        ("name", &ev.name, true),
        ("dataSource", &ev.data_source, false),
        ("typeRef", ev.type_ref.as_deref().unwrap_or_default(), false),
    ])
    .map_err(reject)?;
    let destination = match dest {
        None => {
            return Err(reject(
                "no destination (of its own, its group's or the asset's default)".into(),
            ));
        }
        Some(Err(m)) => return Err(reject(m)),
        Some(Ok(d)) => d,
    };
    Ok(AssetEvent {
        name: ev.name.clone(),
        data_source: ev.data_source.clone(),
        type_ref: ev
            .type_ref
            .clone()
            .or_else(|| g.type_ref.clone())
            .unwrap_or_default(),
        destination,
    })
}

/// Rejects each event whose schema subject (`<asset>/<group>/<event>`) is already a dataset's
/// (`<asset>/<dataset>`, a dataset named `g/e`) or an earlier event's (two groups of one name,
/// or `a/b` + `c` and `a` + `b/c`): its events would be tagged with the other's schema and
/// counted under its status. Datasets keep theirs (their names are unique); events are taken
/// in order. Subjects are the contract's ([`route::subject`]).
pub(super) fn distinct_subjects(asset: &str, datasets: &[Dataset], groups: &mut [EventGroup]) {
    let mut owners: HashMap<String, String> = datasets
        .iter()
        .map(|d| {
            let subject = route::subject(RouteKind::Dataset, asset, &d.name, "");
            (subject, format!("dataset {:?}", d.name))
        })
        .collect();
    for g in groups.iter_mut() {
        let events = std::mem::take(&mut g.events);
        for e in events {
            let subject = route::subject(RouteKind::Event, asset, &g.name, &e.name);
            match owners.get(&subject) {
                Some(owner) => g.rejected.push(Rejected {
                    name: e.name.clone(),
                    message: format!(
                        "its schema subject {subject:?} is already that of {owner}: rename one"
                    ),
                }),
                None => {
                    let owner = format!("event {:?} of event group {:?}", e.name, g.name);
                    owners.insert(subject, owner);
                    g.events.push(e);
                }
            }
        }
    }
}
