//! The pieces the device and asset forms share: labelled inputs and selects with their
//! `span.field-error`s, the form-level errors, the read-only banner, and turning a refused
//! write into a response.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use crate::forms::FormError;
use crate::forms::errors::FormErrors;
use crate::layout;

/// The errors of input `name`, next to it.
pub fn field_errors(errors: &FormErrors, name: &str) -> Markup {
    html! {
        @for m in errors.of(name) { span.field-error data-field=(name) { (m) } }
    }
}

/// A labelled text input with its errors.
pub fn input(label: &str, name: &str, value: &str, errors: &FormErrors) -> Markup {
    html! {
        label for=(name) { (label) }
        input type="text" id=(name) name=(name) value=(value);
        (field_errors(errors, name))
    }
}

/// A labelled select of `options` (with `value` added when not among them) and its errors;
/// `blank`: an empty first choice.
pub fn select(
    label: &str,
    name: &str,
    options: &[String],
    value: &str,
    blank: bool,
    errors: &FormErrors,
) -> Markup {
    html! {
        label for=(name) { (label) }
        select id=(name) name=(name) { (choices(options, value, blank)) }
        (field_errors(errors, name))
    }
}

/// The options of a select: `options`, `value` picked (and added when not among them: a
/// resource may name what no longer exists); `blank`: an empty first choice.
pub fn choices(options: &[String], value: &str, blank: bool) -> Markup {
    let missing = !value.is_empty() && !options.iter().any(|o| o == value);
    html! {
        @if blank { option value="" selected[value.is_empty()] { "—" } }
        @if missing { option value=(value) selected { (value) } }
        @for o in options { option value=(o) selected[o == value] { (o) } }
    }
}

/// The errors no input takes.
pub fn form_errors(errors: &FormErrors) -> Markup {
    html! {
        @if !errors.form.is_empty() {
            div.form-error role="alert" { @for m in &errors.form { p { (m) } } }
        }
    }
}

/// The banner of a read-only list or form.
pub fn readonly(reason: &str) -> Markup {
    html! { div.readonly role="note" { "Read-only: " (reason) } }
}

/// The status a refused write answers with: 422 for what the user can fix in the form, 409
/// when resources are not writable here, 502 when ingest failed otherwise.
pub fn refused_status(s: &tonic::Status) -> StatusCode {
    match s.code() {
        tonic::Code::InvalidArgument | tonic::Code::AlreadyExists => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        tonic::Code::FailedPrecondition => StatusCode::CONFLICT,
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// A page saying why a posted form was not read.
pub fn unreadable(e: &FormError, title: &str, active: &str) -> Response {
    let body = layout::problem(&e.to_string());
    (e.status(), layout::page(title, active, body)).into_response()
}

/// No ingest address is known: nothing can be read or written.
pub fn unavailable(title: &str, active: &str) -> Response {
    let body = layout::problem("no ingest address is known yet: try again shortly");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        layout::page(title, active, body),
    )
        .into_response()
}

/// `POST /{devices,assets}/{name}/delete`: deletes resource `kind` `name` through the writing
/// ingest replica, then back to the list at `active`; a refusal is shown as it came.
pub async fn delete(
    st: &crate::server::AppState,
    caller: &crate::auth::Caller,
    body: axum::body::Body,
    (kind, title, active): (&str, &str, &str),
    name: String,
) -> Response {
    if let Err(e) = crate::forms::read(caller, body).await {
        return unreadable(&e, title, active);
    }
    let Some((_, mut c)) = st.backend.ingest_writer() else {
        return unavailable(title, active);
    };
    let req = sse_proto::v1::DeleteResourceRequest {
        kind: kind.into(),
        name,
    };
    match c.delete_resource(req).await {
        Ok(_) => axum::response::Redirect::to(active).into_response(),
        Err(s) => {
            let body = html! { div.form-error role="alert" { (s.message()) } };
            (refused_status(&s), layout::page(title, active, body)).into_response()
        }
    }
}

/// Reads resource `kind` `name` through the writing ingest replica for an edit page; a refusal
/// (not found, unreachable) is the page to answer with.
pub async fn get_resource(
    st: &crate::server::AppState,
    (kind, title, active): (&str, &str, &str),
    name: &str,
) -> Result<sse_proto::v1::GetResourceResponse, Response> {
    let Some((_, mut c)) = st.backend.ingest_writer() else {
        return Err(unavailable(title, active));
    };
    let req = sse_proto::v1::GetResourceRequest {
        kind: kind.into(),
        name: name.into(),
    };
    match c.get_resource(req).await {
        Ok(r) => Ok(r.into_inner()),
        Err(s) => {
            let body = layout::problem(s.message());
            Err((refused_status(&s), layout::page(title, active, body)).into_response())
        }
    }
}

/// Why a form's document was not written.
pub enum NotSaved {
    /// No ingest address is known: the page to answer with.
    Unavailable(Response),
    /// Ingest refused it: field errors, or resources that are not ours to write.
    Refused(tonic::Status),
}

/// Writes a form's resource `kind` `name` through the writing ingest replica. `to_yaml` gets
/// the resource as stored, if any, so what the form does not show is kept.
pub async fn put_resource(
    st: &crate::server::AppState,
    (kind, title, active): (&str, &str, &str),
    name: &str,
    to_yaml: impl FnOnce(Option<&str>) -> String,
) -> Result<(), NotSaved> {
    let Some((_, mut c)) = st.backend.ingest_writer() else {
        return Err(NotSaved::Unavailable(unavailable(title, active)));
    };
    let get = sse_proto::v1::GetResourceRequest {
        kind: kind.into(),
        name: name.into(),
    };
    let existing = c.get_resource(get).await.ok().map(|r| r.into_inner().yaml);
    let put = sse_proto::v1::PutResourceRequest {
        yaml: to_yaml(existing.as_deref()),
        only_if_absent: false,
    };
    c.put_resource(put)
        .await
        .map(|_| ())
        .map_err(NotSaved::Refused)
}

/// The read-only reason a refusal carries: `FAILED_PRECONDITION` means the resources are not
/// ours to write.
pub fn read_only_reason(s: &tonic::Status) -> Option<String> {
    (s.code() == tonic::Code::FailedPrecondition).then(|| s.message().to_owned())
}
