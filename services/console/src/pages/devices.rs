//! Devices: the list with each device's health, and the device form (new and edit) that
//! writes one `Microsoft.SSEHttp` endpoint with `PutResource`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use sse_proto::v1::SecretStatus;

use super::form_view::{self as view, NotSaved, field_errors, input, select};
use super::health::{self, Overview};
use crate::auth::{Caller, csrf_input};
use crate::forms::device::{self, AUTH_METHODS, DeviceForm};
use crate::forms::errors::FormErrors;
use crate::layout;
use crate::server::AppState;

const KIND: &str = "Device";
const SECTION: &str = "/devices";

/// `GET /devices`.
pub async fn list(State(st): State<AppState>) -> Markup {
    let o = Overview::fetch(&st).await;
    let endpoints = health::endpoints(&o);
    let body = html! {
        @for p in &o.problems { (layout::problem(p)) }
        @if let Some(r) = &o.read_only { (view::readonly(r)) }
        @else { p { a id="new-device" class="button" href="/devices/new" { "New device" } } }
        table id="devices" {
            thead { tr { th { "Device" } th { "Endpoints" } th { "Health" } } }
            tbody {
                @for (name, s) in &o.devices {
                    tr data-device=(name) {
                        td { a href=(format!("/devices/{}", super::query::segment(name))) { (name) } }
                        td { @for e in endpoints.get(name).into_iter().flatten() { (e) " " } }
                        td.health { (health::device(s)) }
                    }
                }
            }
        }
    };
    layout::page("Devices", SECTION, body)
}

/// `GET /devices/new`.
pub async fn new(State(st): State<AppState>, caller: Caller) -> Markup {
    let read_only = Overview::fetch(&st).await.read_only;
    render(
        &caller,
        &DeviceForm::default(),
        &FormErrors::default(),
        read_only.as_deref(),
        None,
        &[],
    )
}

/// `GET /devices/{name}`: the form prefilled, with each referenced secret's presence.
pub async fn edit(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    let r = match view::get_resource(&st, (KIND, "Device", SECTION), &name).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    let overall = Overview::fetch(&st).await.read_only;
    let read_only = overall.or((!r.read_only_reason.is_empty()).then_some(r.read_only_reason));
    let form = DeviceForm::from_yaml(&r.yaml);
    render(
        &caller,
        &form,
        &FormErrors::default(),
        read_only.as_deref(),
        Some(&name),
        &r.secrets,
    )
    .into_response()
}

/// `POST /devices`: creates or replaces the device; 303 to it, or the form again with why.
pub async fn save(State(st): State<AppState>, caller: Caller, body: Body) -> Response {
    let fields = match crate::forms::read(&caller, body).await {
        Ok(f) => f,
        Err(e) => return view::unreadable(&e, "Device", SECTION),
    };
    let form = DeviceForm::from_fields(&fields);
    let editing = fields.get("editing");
    let editing = (!editing.is_empty()).then_some(editing);
    let problems = form.check();
    if !problems.is_empty() {
        let page = render(&caller, &form, &problems, None, editing.as_deref(), &[]);
        return (StatusCode::UNPROCESSABLE_ENTITY, page).into_response();
    }
    // The device as it is, so the endpoints and settings the form does not show are kept.
    let saved = view::put_resource(&st, (KIND, "Device", SECTION), &form.name, |existing| {
        form.to_yaml(existing)
    });
    match saved.await {
        Ok(()) => {
            Redirect::to(&format!("/devices/{}", super::query::segment(&form.name))).into_response()
        }
        Err(NotSaved::Unavailable(page)) => page,
        Err(NotSaved::Refused(s)) => {
            let errors = FormErrors::from_status(&s, device::input);
            let read_only = view::read_only_reason(&s);
            let page = render(
                &caller,
                &form,
                &errors,
                read_only.as_deref(),
                editing.as_deref(),
                &[],
            );
            (view::refused_status(&s), page).into_response()
        }
    }
}

/// `POST /devices/{name}/delete`.
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Body,
) -> Response {
    view::delete(&st, &caller, body, (KIND, "Device", SECTION), name).await
}

/// The device form; `editing`: the device's name when it exists.
fn render(
    caller: &Caller,
    f: &DeviceForm,
    errors: &FormErrors,
    read_only: Option<&str>,
    editing: Option<&str>,
    secrets: &[SecretStatus],
) -> Markup {
    let methods: Vec<String> = AUTH_METHODS.iter().map(|m| (*m).to_owned()).collect();
    let body = html! {
        @if let Some(r) = read_only { (view::readonly(r)) }
        (view::form_errors(errors))
        form id="device-form" class="resource" method="post" action="/devices" {
            (csrf_input(caller))
            input type="hidden" name="original_endpoint" value=(f.original_endpoint);
            @if let Some(n) = editing { input type="hidden" name="editing" value=(n); }
            label for="name" { "Name" }
            input type="text" id="name" name="name" value=(f.name) readonly[editing.is_some()];
            (field_errors(errors, "name"))
            fieldset {
                legend { "Inbound endpoint (Microsoft.SSEHttp)" }
                (input("Endpoint name", "endpoint_name", &f.endpoint_name, errors))
                (input("Address (URL)", "address", &f.address, errors))
                (select("Authentication", "auth", &methods, &f.auth, false, errors))
                (input("Username secret (<secret>/<key>)", "username_secret", &f.username_secret, errors))
                (input("Password secret (<secret>/<key>)", "password_secret", &f.password_secret, errors))
                (input("Certificate secret (<secret>/<key>)", "certificate_secret", &f.certificate_secret, errors))
                (input("Key secret (<secret>/<key>)", "key_secret", &f.key_secret, errors))
                (input("Trust list", "trust_list", &f.trust_list, errors))
            }
            @if read_only.is_none() { button id="save" type="submit" { "Save" } }
        }
        (secret_list(secrets))
        @if let (Some(n), None) = (editing, read_only) {
            form.delete method="post" action=(format!("/devices/{}/delete", super::query::segment(n))) {
                (csrf_input(caller))
                button id="delete" type="submit" { "Delete device" }
            }
        }
    };
    let title = editing.map_or_else(|| "New device".to_owned(), |n| format!("Device {n}"));
    layout::page(&title, SECTION, body)
}

/// Each referenced secret: file present, missing, or why it was not checked. Never content.
fn secret_list(secrets: &[SecretStatus]) -> Markup {
    html! {
        @if !secrets.is_empty() {
            section id="secrets" {
                h2 { "Secrets" }
                ul {
                    @for s in secrets {
                        @if !s.unchecked_reason.is_empty() {
                            li.secret-unchecked data-secret=(s.reference) { (s.reference) ": not checked (" (s.unchecked_reason) ")" }
                        } @else if s.present {
                            li.secret-present data-secret=(s.reference) { (s.reference) ": file present" }
                        } @else {
                            li.secret-missing data-secret=(s.reference) { (s.reference) ": file missing" }
                        }
                    }
                }
            }
        }
    }
}
