//! The device form: one inbound endpoint of type `Microsoft.SSEHttp`, as the Azure UI's
//! endpoint form has it (name, address URL, authentication with secret names, trust list).
//! Editing changes that endpoint only: the device's other endpoints, and the endpoint's own
//! settings the form does not show (`additionalConfiguration`), are kept as they are.

use serde_json::{Value, json};

use super::Fields;
use super::errors::FormErrors;
use super::yaml;

/// The endpoint type the form writes.
pub const ENDPOINT_TYPE: &str = "Microsoft.SSEHttp";
/// The endpoint name a new device gets.
pub const DEFAULT_ENDPOINT: &str = "sse";
/// The authentication methods of the Azure UI, in its order.
pub const AUTH_METHODS: [&str; 3] = ["Anonymous", "UsernamePassword", "Certificate"];

/// What the device form holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceForm {
    /// The device's name.
    pub name: String,
    /// The endpoint's name.
    pub endpoint_name: String,
    /// The endpoint this form was opened on (a rename replaces it); empty for a new one.
    pub original_endpoint: String,
    /// The address URL.
    pub address: String,
    /// One of [`AUTH_METHODS`].
    pub auth: String,
    /// `UsernamePassword`: the username's `<secret>/<key>`.
    pub username_secret: String,
    /// `UsernamePassword`: the password's `<secret>/<key>`.
    pub password_secret: String,
    /// `Certificate`: the client certificate's `<secret>/<key>`.
    pub certificate_secret: String,
    /// `Certificate`: its private key's `<secret>/<key>`.
    pub key_secret: String,
    /// The trust list (a secret of CA certificates); empty: none.
    pub trust_list: String,
}

impl Default for DeviceForm {
    fn default() -> Self {
        Self {
            name: String::new(),
            endpoint_name: DEFAULT_ENDPOINT.to_owned(),
            original_endpoint: String::new(),
            address: String::new(),
            auth: AUTH_METHODS[0].to_owned(),
            username_secret: String::new(),
            password_secret: String::new(),
            certificate_secret: String::new(),
            key_secret: String::new(),
            trust_list: String::new(),
        }
    }
}

impl DeviceForm {
    /// The form as posted.
    pub fn from_fields(f: &Fields) -> Self {
        Self {
            name: f.get("name"),
            endpoint_name: f.get("endpoint_name"),
            original_endpoint: f.get("original_endpoint"),
            address: f.get("address"),
            auth: f.get("auth"),
            username_secret: f.get("username_secret"),
            password_secret: f.get("password_secret"),
            certificate_secret: f.get("certificate_secret"),
            key_secret: f.get("key_secret"),
            trust_list: f.get("trust_list"),
        }
    }

    /// The form prefilled from a device document: its first SSE endpoint.
    pub fn from_yaml(text: &str) -> Self {
        let doc = yaml::parse(text);
        let mut form = Self {
            name: yaml::text(&doc, &["metadata", "name"]),
            ..Self::default()
        };
        let inbound = doc
            .pointer("/spec/endpoints/inbound")
            .and_then(Value::as_object);
        let sse = inbound.and_then(|m| {
            m.iter()
                .find(|(_, e)| e.get("endpointType").and_then(Value::as_str) == Some(ENDPOINT_TYPE))
        });
        if let Some((name, e)) = sse {
            let auth = |p: &[&str]| yaml::text(e, &[&["authentication"], p].concat());
            form.endpoint_name = name.clone();
            form.original_endpoint = name.clone();
            form.address = yaml::text(e, &["address"]);
            let method = auth(&["method"]);
            form.auth = if method.is_empty() {
                AUTH_METHODS[0].to_owned()
            } else {
                method
            };
            form.username_secret = auth(&["usernamePasswordCredentials", "usernameSecretName"]);
            form.password_secret = auth(&["usernamePasswordCredentials", "passwordSecretName"]);
            form.certificate_secret = auth(&["x509Credentials", "certificateSecretName"]);
            form.key_secret = auth(&["x509Credentials", "keySecretName"]);
            form.trust_list = yaml::text(e, &["trustSettings", "trustList"]);
        }
        form
    }

    /// What the console checks before asking ingest (which checks the rest).
    pub fn check(&self) -> FormErrors {
        let mut e = FormErrors::default();
        if self.name.is_empty() {
            e.field("name", "a device needs a name");
        }
        if self.endpoint_name.is_empty() {
            e.field("endpoint_name", "the endpoint needs a name");
        }
        if !AUTH_METHODS.contains(&self.auth.as_str()) {
            e.field("auth", format!("choose one of {}", AUTH_METHODS.join(", ")));
        }
        let need = |e: &mut FormErrors, field: &str, v: &str| {
            if v.is_empty() {
                e.field(
                    field,
                    format!("{} authentication needs this secret name", self.auth),
                );
            }
        };
        if self.auth == "UsernamePassword" {
            need(&mut e, "username_secret", &self.username_secret);
            need(&mut e, "password_secret", &self.password_secret);
        }
        if self.auth == "Certificate" {
            need(&mut e, "certificate_secret", &self.certificate_secret);
            need(&mut e, "key_secret", &self.key_secret);
        }
        e
    }

    /// The device document: `existing` (the device as it is, if any) with this endpoint set.
    pub fn to_yaml(&self, existing: Option<&str>) -> String {
        let mut doc = existing.map(yaml::parse).unwrap_or_else(|| json!({}));
        yaml::header(&mut doc, "Device", &self.name);
        let spec = yaml::object(&mut doc, "spec");
        let endpoints = yaml::object(spec, "endpoints");
        let inbound = yaml::object(endpoints, "inbound");
        let mut ep = inbound
            .get(&self.original_endpoint)
            .filter(|_| !self.original_endpoint.is_empty())
            .cloned()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        if let Some(m) = inbound.as_object_mut() {
            m.remove(&self.original_endpoint);
        }
        ep["endpointType"] = json!(ENDPOINT_TYPE);
        ep["address"] = json!(self.address);
        ep["authentication"] = self.authentication();
        if let Some(m) = ep.as_object_mut() {
            m.remove("trustSettings");
        }
        if !self.trust_list.is_empty() {
            ep["trustSettings"] = json!({ "trustList": self.trust_list });
        }
        inbound[self.endpoint_name.as_str()] = ep;
        yaml::render(&doc)
    }

    /// The `authentication` entry, as `ssectl device sse add` writes it.
    fn authentication(&self) -> Value {
        match self.auth.as_str() {
            "UsernamePassword" => json!({
                "method": "UsernamePassword",
                "usernamePasswordCredentials": {
                    "usernameSecretName": self.username_secret,
                    "passwordSecretName": self.password_secret,
                },
            }),
            "Certificate" => json!({
                "method": "Certificate",
                "x509Credentials": {
                    "certificateSecretName": self.certificate_secret,
                    "keySecretName": self.key_secret,
                },
            }),
            _ => json!({ "method": "Anonymous" }),
        }
    }
}

/// The device form's input a resource path of a device is about; `None`: none.
pub fn input(field: &str) -> Option<&'static str> {
    const BY_SUFFIX: [(&str, &str); 7] = [
        (".address", "address"),
        (".trustSettings.trustList", "trust_list"),
        ("usernameSecretName", "username_secret"),
        ("passwordSecretName", "password_secret"),
        ("certificateSecretName", "certificate_secret"),
        ("keySecretName", "key_secret"),
        (".authentication.method", "auth"),
    ];
    if field == "metadata.name" {
        return Some("name");
    }
    if field.starts_with("spec.endpoints.inbound.") {
        return BY_SUFFIX
            .iter()
            .find(|(s, _)| field.ends_with(s))
            .map(|(_, i)| *i)
            .or(Some("endpoint_name"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> DeviceForm {
        DeviceForm {
            name: "gw".into(),
            address: "https://gw.example/events".into(),
            auth: "UsernamePassword".into(),
            username_secret: "gw/user".into(),
            password_secret: "gw/password".into(),
            trust_list: "gw-ca".into(),
            ..DeviceForm::default()
        }
    }

    #[test]
    fn the_form_round_trips_through_its_yaml() {
        let f = form();
        let text = f.to_yaml(None);
        assert!(text.contains("endpointType: Microsoft.SSEHttp"), "{text}");
        let back = DeviceForm::from_yaml(&text);
        assert_eq!(
            back,
            DeviceForm {
                original_endpoint: "sse".into(),
                ..f
            }
        );
    }

    #[test]
    fn editing_keeps_the_other_endpoints_and_options() {
        let existing = "apiVersion: x\nkind: Device\nmetadata: { name: gw }\nspec:\n  endpoints:\n    inbound:\n      opc: { endpointType: Microsoft.OpcUa, address: 'opc.tcp://h:4840' }\n      sse: { endpointType: Microsoft.SSEHttp, address: 'http://old/', additionalConfiguration: '{\"compression\": true}' }\n";
        let mut f = DeviceForm::from_yaml(existing);
        assert_eq!(f.address, "http://old/");
        f.address = "http://new/".into();
        let doc = yaml::parse(&f.to_yaml(Some(existing)));
        let inbound = &doc["spec"]["endpoints"]["inbound"];
        assert_eq!(inbound["opc"]["address"], "opc.tcp://h:4840");
        assert_eq!(inbound["sse"]["address"], "http://new/");
        assert_eq!(
            inbound["sse"]["additionalConfiguration"],
            "{\"compression\": true}"
        );
        // A rename replaces the endpoint.
        f.endpoint_name = "events".into();
        let doc = yaml::parse(&f.to_yaml(Some(existing)));
        let inbound = doc["spec"]["endpoints"]["inbound"].as_object().unwrap();
        assert!(inbound.contains_key("events") && !inbound.contains_key("sse"));
    }

    #[test]
    fn missing_secrets_and_names_are_caught_here() {
        let f = DeviceForm {
            username_secret: String::new(),
            name: String::new(),
            ..form()
        };
        let e = f.check();
        assert_eq!(e.of("name").len(), 1);
        assert_eq!(e.of("username_secret").len(), 1);
        assert!(form().check().is_empty());
    }

    #[test]
    fn resource_paths_map_to_inputs() {
        assert_eq!(input("spec.endpoints.inbound.sse.address"), Some("address"));
        assert_eq!(
            input(
                "spec.endpoints.inbound.sse.authentication.usernamePasswordCredentials.passwordSecretName"
            ),
            Some("password_secret")
        );
        assert_eq!(input("spec.endpoints.inbound.sse"), Some("endpoint_name"));
        assert_eq!(input("metadata.name"), Some("name"));
        assert_eq!(input("spec.uuid"), None);
    }
}
