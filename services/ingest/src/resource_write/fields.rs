//! The loader's verdict on one resource, as field violations: the loader reports problems per
//! resource, endpoint, dataset and event; a caller fixing a form wants the field each is about.

use crate::resources::{ResourceError, Resources};

/// One problem of a written resource: the field it is about (a path into the document, empty
/// for the document as a whole) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Path into the document, e.g. `spec.deviceRef.deviceName`; empty: the whole document.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem the loader found with `kind`/`name` as read from `file`.
pub fn violations(res: &Resources, kind: &str, name: &str, file: &str) -> Vec<Violation> {
    let resource = format!("{kind}/{name}");
    let mut out: Vec<Violation> = res
        .errors
        .iter()
        .filter(|e| e.file == file && (e.resource == resource || !e.resource.contains('/')))
        .map(top_level)
        .collect();
    if let Some(d) = res.devices.get(name).filter(|_| kind == "Device") {
        out.extend(d.rejected_endpoints.iter().map(|(ep, m)| Violation {
            field: endpoint_field(ep, m),
            message: m.clone(),
        }));
    }
    for a in res
        .assets
        .iter()
        .filter(|a| kind == "Asset" && a.name == name)
    {
        out.extend(a.rejected_datasets.iter().map(|r| Violation {
            field: format!("spec.datasets[{}]", r.name),
            message: r.message.clone(),
        }));
        for g in &a.event_groups {
            out.extend(g.rejected.iter().map(|r| Violation {
                field: format!("spec.eventGroups[{}].events[{}]", g.name, r.name),
                message: r.message.clone(),
            }));
        }
    }
    out
}

/// The field of endpoint `ep` its loader message `m` is about: the message names it first
/// (`address is not a URL`, `trust list ...`), else the endpoint as a whole.
fn endpoint_field(ep: &str, m: &str) -> String {
    let at = format!("spec.endpoints.inbound.{ep}");
    let sub = if m.starts_with("address") {
        Some("address".to_owned())
    } else if m.starts_with("trust list") {
        Some("trustSettings.trustList".to_owned())
    } else if let Some(rest) = m.strip_prefix("Certificate authentication without ") {
        Some(format!("authentication.{rest}"))
    } else if m.starts_with("unsupported authentication") || m.starts_with("UsernamePassword") {
        Some("authentication.method".to_owned())
    } else if m.starts_with("additionalConfiguration") {
        m.split_whitespace().next().map(str::to_owned)
    } else {
        None
    };
    match sub {
        Some(s) => format!("{at}.{s}"),
        None => at,
    }
}

/// A problem of the resource as a whole, with the field it names where the message tells.
fn top_level(e: &ResourceError) -> Violation {
    let m = e.message.as_str();
    let field = if m.starts_with("unknown device") {
        "spec.deviceRef.deviceName".to_owned()
    } else if m.starts_with("unknown endpoint") || m.starts_with("endpoint ") {
        "spec.deviceRef.endpointName".to_owned()
    } else if let Some(f) = ["uuid", "externalAssetId", "externalDeviceId"]
        .into_iter()
        .find(|f| m.starts_with(&format!("{f} ")))
    {
        format!("spec.{f}")
    } else if let Some((path, _)) = m
        .strip_prefix("invalid Asset: ")
        .or_else(|| m.strip_prefix("invalid Device: "))
        .and_then(|rest| rest.split_once(": "))
        .filter(|(p, _)| p.starts_with("spec"))
    {
        path.to_owned()
    } else {
        String::new()
    };
    Violation {
        field,
        message: e.message.clone(),
    }
}

/// Headers whose values are credentials: through this API only as a `secretRef`.
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "cookie", "x-api-key"];

/// Secret values written inline in device `name`, which a file may hold (an operator's choice)
/// but this API refuses: it takes and returns secrets by name only, and its documents travel
/// through consoles and logs of clients.
pub fn inline_secrets(res: &Resources, name: &str) -> Vec<Violation> {
    let Some(d) = res.devices.get(name) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (ep, e) in &d.endpoints {
        let at = format!("spec.endpoints.inbound.{ep}");
        if e.address.password().is_some() {
            out.push(Violation {
                field: format!("{at}.address"),
                message: "holds a password: use UsernamePassword authentication with secret names"
                    .into(),
            });
        }
        for (h, v) in &e.options.request.headers {
            let literal = matches!(v, crate::resources::options::OptionValue::Literal(_));
            if literal && CREDENTIAL_HEADERS.contains(&h.as_str()) {
                out.push(Violation {
                    field: format!("{at}.additionalConfiguration.headers.{h}"),
                    message: "a credential written inline: write it as {\"secretRef\": \"<secret>/<key>\"}".into(),
                });
            }
        }
    }
    out
}
