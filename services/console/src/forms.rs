//! Reading and checking the console's forms: the `application/x-www-form-urlencoded` body kept
//! with its repeated fields (event rows), bounded, and its CSRF field checked; the device and
//! asset forms and how the ingest API's field violations map back onto them.

pub mod asset;
pub mod device;
pub mod errors;
pub mod yaml;

use axum::body::Body;
use axum::http::StatusCode;

use crate::auth::{CSRF_FIELD, Caller};

/// Largest form body the console reads: a device or asset form with hundreds of event rows is
/// a few tens of KiB; more is refused before it is parsed.
pub const FORM_BYTES_MAX: usize = 256 * 1024;

/// A posted form: every `name=value` pair in order, repeats kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// Parses an urlencoded body.
    pub fn parse(body: &[u8]) -> Self {
        Self(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    }

    /// Every value of `name`, in order, trimmed.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }
}

/// Why a posted form is not read.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    /// The body is over [`FORM_BYTES_MAX`] or could not be read.
    #[error("the form is larger than {FORM_BYTES_MAX} bytes or could not be read")]
    TooLarge,
    /// The CSRF field is missing or wrong.
    #[error("the form's CSRF token is missing or stale: reload the page and try again")]
    Csrf,
}

impl FormError {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            FormError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            FormError::Csrf => StatusCode::FORBIDDEN,
        }
    }
}

/// Reads `body` (at most [`FORM_BYTES_MAX`]) and checks its CSRF field against `caller`'s.
pub async fn read(caller: &Caller, body: Body) -> Result<Fields, FormError> {
    let bytes = axum::body::to_bytes(body, FORM_BYTES_MAX)
        .await
        .map_err(|_| FormError::TooLarge)?;
    let fields = Fields::parse(&bytes);
    // The guard checked it already; checked again here so no form handler depends on the
    // guard's order, with the same constant-time comparison.
    if !crate::auth::secret::same(fields.get(CSRF_FIELD).as_bytes(), caller.csrf.as_bytes()) {
        return Err(FormError::Csrf);
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_fields_are_kept_in_order() {
        let f = Fields::parse(b"event_name=a&event_type=t1&event_name=b&event_type=t%2F2&x=+y+");
        assert_eq!(f.all("event_name"), ["a", "b"]);
        assert_eq!(f.all("event_type"), ["t1", "t/2"]);
        assert_eq!(f.get("x"), "y");
        assert_eq!(f.get("missing"), "");
    }

    #[tokio::test]
    async fn a_wrong_csrf_field_or_an_oversized_body_is_refused() {
        let caller = Caller { csrf: "tok".into() };
        let ok = read(&caller, Body::from("csrf=tok&name=a")).await.unwrap();
        assert_eq!(ok.get("name"), "a");
        let forged = read(&caller, Body::from("csrf=forged&name=a")).await;
        assert!(matches!(forged, Err(FormError::Csrf)));
        let big = format!("csrf=tok&x={}", "a".repeat(FORM_BYTES_MAX));
        let refused = read(&caller, Body::from(big)).await;
        assert_eq!(refused.unwrap_err().status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}

#[cfg(test)]
mod loader_tests {
    use super::asset::{AssetForm, Dest};
    use super::device::DeviceForm;

    #[test]
    fn the_loader_accepts_what_the_forms_build() {
        let device = DeviceForm {
            name: "gw".into(),
            address: "https://gw.example/events".into(),
            auth: "Certificate".into(),
            certificate_secret: "gw/cert".into(),
            key_secret: "gw/key".into(),
            trust_list: "gw-ca".into(),
            ..DeviceForm::default()
        };
        let asset = AssetForm {
            name: "wx".into(),
            device: "gw".into(),
            endpoint: "sse".into(),
            dataset: Dest {
                topic: "plant/all".into(),
                qos: "Qos1".into(),
                retain: "Keep".into(),
                ttl: "30".into(),
            },
            events: vec![("temp".into(), "temperature".into())],
            events_dest: Dest {
                topic: "plant/temp".into(),
                ..Dest::default()
            },
        };
        let (d, a) = (device.to_yaml(None), asset.to_yaml(None));
        let res = sse_ingest::resources::load_texts([
            ("device-gw.yaml", d.as_str()),
            ("asset-wx.yaml", a.as_str()),
        ]);
        assert!(res.problems().is_empty(), "{:?}\n{d}\n{a}", res.problems());
        assert_eq!(res.devices["gw"].endpoints.len(), 1);
        assert_eq!(res.assets.len(), 1);
    }
}
