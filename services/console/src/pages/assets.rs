//! Assets: the list with each asset's health, and the asset form (new, edit, and "add as
//! event" from a discovered type) that writes the asset with `PutResource`.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::form_view::{self as view, NotSaved, field_errors, input, select};
use super::health::{self, Overview};
use crate::auth::{Caller, csrf_input};
use crate::forms::asset::{self, AssetForm, Dest, QOS, RETAIN};
use crate::forms::errors::FormErrors;
use crate::layout;
use crate::server::AppState;

const KIND: &str = "Asset";
const SECTION: &str = "/assets";
/// Blank event rows a form offers after the filled ones.
const BLANK_EVENT_ROWS: usize = 2;

/// `GET /assets`.
pub async fn list(State(st): State<AppState>) -> Markup {
    let o = Overview::fetch(&st).await;
    let body = html! {
        @for p in &o.problems { (layout::problem(p)) }
        @if let Some(r) = &o.read_only { (view::readonly(r)) }
        @else { p { a id="new-asset" class="button" href="/assets/new" { "New asset" } } }
        table id="assets" {
            thead { tr { th { "Asset" } th { "Health" } } }
            tbody {
                @for (name, s) in &o.assets {
                    tr data-asset=(name) {
                        td { a href=(format!("/assets/{}", super::query::segment(name))) { (name) } }
                        td.health { (health::asset(s)) }
                    }
                }
            }
        }
    };
    layout::page("Assets", SECTION, body)
}

/// The "add as event" prefill of `GET /assets/new`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Prefill {
    device: Option<String>,
    endpoint: Option<String>,
    event_name: Option<String>,
    event_type: Option<String>,
}

/// `GET /assets/new`.
pub async fn new(State(st): State<AppState>, caller: Caller, Query(q): Query<Prefill>) -> Markup {
    let o = Overview::fetch(&st).await;
    let mut form = AssetForm {
        device: q.device.unwrap_or_default(),
        endpoint: q.endpoint.unwrap_or_default(),
        ..AssetForm::default()
    };
    if let Some(t) = q.event_type.filter(|t| !t.is_empty()) {
        form.events
            .push((q.event_name.unwrap_or_else(|| t.clone()), t));
    }
    let ctx = Ctx {
        caller: &caller,
        devices: health::endpoints(&o),
        read_only: o.read_only,
        editing: None,
    };
    render(&ctx, &form, &FormErrors::default())
}

/// Where the asset form gets the endpoint select of a device (under `/assets/new`, so no asset
/// name can shadow it).
pub const ENDPOINTS_PATH: &str = "/assets/new/endpoints";

/// The device of `GET /assets/new/endpoints`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct DeviceQuery {
    device: Option<String>,
}

/// `GET /assets/new/endpoints?device=D`: the endpoint select of device `D`, which the form
/// swaps in when its device changes.
pub async fn endpoints(State(st): State<AppState>, Query(q): Query<DeviceQuery>) -> Markup {
    let o = Overview::fetch(&st).await;
    endpoint_select(&health::endpoints(&o), &q.device.unwrap_or_default(), "")
}

/// The endpoint select: the endpoints of `device` (its only one picked when nothing is), or,
/// before a device is picked, every device's in a group of its own, so an asset is not pointed
/// at another device's endpoint by mistake. `value` is kept either way.
fn endpoint_select(devices: &BTreeMap<String, Vec<String>>, device: &str, value: &str) -> Markup {
    let Some(eps) = devices.get(device) else {
        return html! {
            select id="endpoint" name="endpoint" data-device=(device) {
                option value="" selected[value.is_empty()] { "—" }
                // The asset's own value is kept even when its device is not known (now).
                @if !value.is_empty() { option value=(value) selected { (value) } }
                @for (d, eps) in devices {
                    optgroup label=(d) { (view::choices(eps, "", false)) }
                }
            }
        };
    };
    let value = match eps.as_slice() {
        [only] if value.is_empty() => only.as_str(),
        _ => value,
    };
    html! {
        select id="endpoint" name="endpoint" data-device=(device) {
            (view::choices(eps, value, true))
        }
    }
}

/// `GET /assets/{name}`.
pub async fn edit(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    let r = match view::get_resource(&st, (KIND, "Asset", SECTION), &name).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    let o = Overview::fetch(&st).await;
    let read_only = o
        .read_only
        .clone()
        .or((!r.read_only_reason.is_empty()).then_some(r.read_only_reason));
    let ctx = Ctx {
        caller: &caller,
        devices: health::endpoints(&o),
        read_only,
        editing: Some(name),
    };
    render(&ctx, &AssetForm::from_yaml(&r.yaml), &FormErrors::default()).into_response()
}

/// `POST /assets`: creates or replaces the asset; 303 to it, or the form again with why.
pub async fn save(State(st): State<AppState>, caller: Caller, body: Body) -> Response {
    let fields = match crate::forms::read(&caller, body).await {
        Ok(f) => f,
        Err(e) => return view::unreadable(&e, "Asset", SECTION),
    };
    let form = AssetForm::from_fields(&fields);
    let editing = Some(fields.get("editing")).filter(|e| !e.is_empty());
    let o = Overview::fetch(&st).await;
    let mut ctx = Ctx {
        caller: &caller,
        devices: health::endpoints(&o),
        read_only: None,
        editing,
    };
    let problems = form.check();
    if !problems.is_empty() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&ctx, &form, &problems),
        )
            .into_response();
    }
    let saved = view::put_resource(&st, (KIND, "Asset", SECTION), &form.name, |existing| {
        form.to_yaml(existing)
    });
    match saved.await {
        Ok(()) => {
            Redirect::to(&format!("/assets/{}", super::query::segment(&form.name))).into_response()
        }
        Err(NotSaved::Unavailable(page)) => page,
        Err(NotSaved::Refused(s)) => {
            let errors = FormErrors::from_status(&s, asset::input);
            ctx.read_only = view::read_only_reason(&s);
            (view::refused_status(&s), render(&ctx, &form, &errors)).into_response()
        }
    }
}

/// `POST /assets/{name}/delete`.
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Body,
) -> Response {
    view::delete(&st, &caller, body, (KIND, "Asset", SECTION), name).await
}

/// What the form is rendered within.
struct Ctx<'a> {
    caller: &'a Caller,
    /// Endpoint names by device, for the selects.
    devices: BTreeMap<String, Vec<String>>,
    read_only: Option<String>,
    /// The asset's name when it exists.
    editing: Option<String>,
}

/// The asset form.
fn render(ctx: &Ctx<'_>, f: &AssetForm, errors: &FormErrors) -> Markup {
    let device_names: Vec<String> = ctx.devices.keys().cloned().collect();
    let blank = std::iter::repeat_n((String::new(), String::new()), BLANK_EVENT_ROWS);
    let rows: Vec<(String, String)> = f.events.iter().cloned().chain(blank).collect();
    let body = html! {
        @if let Some(r) = &ctx.read_only { (view::readonly(r)) }
        (view::form_errors(errors))
        form id="asset-form" class="resource" method="post" action="/assets" {
            (csrf_input(ctx.caller))
            @if let Some(n) = &ctx.editing { input type="hidden" name="editing" value=(n); }
            label for="name" { "Name" }
            input type="text" id="name" name="name" value=(f.name) readonly[ctx.editing.is_some()];
            (field_errors(errors, "name"))
            label for="device" { "Device" }
            // Picking a device swaps in the select of its endpoints (htmx, no script of ours).
            select id="device" name="device" hx-get=(ENDPOINTS_PATH) hx-target="#endpoint" hx-swap="outerHTML" {
                (view::choices(&device_names, &f.device, true))
            }
            (field_errors(errors, "device"))
            label for="endpoint" { "Endpoint" }
            (endpoint_select(&ctx.devices, &f.device, &f.endpoint))
            (field_errors(errors, "endpoint"))
            fieldset {
                legend { "Dataset (the whole stream)" }
                (dest("dataset", &f.dataset, errors))
            }
            fieldset {
                legend { "Events (SSE event types)" }
                table.events {
                    thead { tr { th { "Name" } th { "SSE type" } } }
                    tbody {
                        @for (n, t) in &rows {
                            tr {
                                td { input type="text" name="event_name" value=(n) aria-label="Event name"; }
                                td { input type="text" name="event_type" value=(t) aria-label="SSE event type"; }
                            }
                        }
                    }
                }
                (field_errors(errors, "event_name"))
                (dest("events", &f.events_dest, errors))
            }
            @if ctx.read_only.is_none() { button id="save" type="submit" { "Save" } }
        }
        @if let (Some(n), None) = (&ctx.editing, &ctx.read_only) {
            form.delete method="post" action=(format!("/assets/{}/delete", super::query::segment(n))) {
                (csrf_input(ctx.caller))
                button id="delete" type="submit" { "Delete asset" }
            }
        }
    };
    let title = ctx
        .editing
        .as_ref()
        .map_or_else(|| "New asset".to_owned(), |n| format!("Asset {n}"));
    layout::page(&title, SECTION, body)
}

/// The inputs of one destination, named `<prefix>_topic` etc.
fn dest(prefix: &str, d: &Dest, errors: &FormErrors) -> Markup {
    let qos: Vec<String> = QOS.iter().map(|q| (*q).to_owned()).collect();
    let retain: Vec<String> = RETAIN.iter().map(|r| (*r).to_owned()).collect();
    html! {
        (input("Topic", &format!("{prefix}_topic"), &d.topic, errors))
        (select("QoS", &format!("{prefix}_qos"), &qos, &d.qos, true, errors))
        (select("Retain", &format!("{prefix}_retain"), &retain, &d.retain, true, errors))
        (input("TTL (seconds)", &format!("{prefix}_ttl"), &d.ttl, errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([
            ("press".to_owned(), vec!["sse".to_owned()]),
            (
                "oven".to_owned(),
                vec!["east".to_owned(), "west".to_owned()],
            ),
        ])
    }

    #[test]
    fn a_devices_endpoint_select_offers_only_its_endpoints_and_picks_an_only_one() {
        let press = endpoint_select(&devices(), "press", "").into_string();
        assert!(
            press.contains(r#"<option value="sse" selected>"#),
            "{press}"
        );
        assert!(!press.contains("east"), "{press}");
        let oven = endpoint_select(&devices(), "oven", "west").into_string();
        assert!(oven.contains(r#"<option value="west" selected>"#), "{oven}");
        assert!(oven.contains(r#"<option value="east">"#), "{oven}");
        assert!(!oven.contains("sse"), "{oven}");
        assert!(oven.contains(r#"data-device="oven""#), "{oven}");
    }

    #[test]
    fn without_a_known_device_endpoints_are_grouped_and_the_value_is_kept() {
        let none = endpoint_select(&devices(), "", "").into_string();
        assert!(none.contains(r#"<optgroup label="oven">"#), "{none}");
        assert!(none.contains(r#"<optgroup label="press">"#), "{none}");
        assert!(!none.contains("selected>east"), "{none}");
        // Ingest unreachable: no devices known, the edited asset's endpoint stays.
        let down = endpoint_select(&BTreeMap::new(), "gone", "sse").into_string();
        assert!(down.contains(r#"<option value="sse" selected>"#), "{down}");
    }
}
