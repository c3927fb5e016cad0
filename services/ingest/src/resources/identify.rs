//! What a resource document is, before validation: its kind and name, and which device an asset
//! names. The write API needs them to choose the file (`<kind>-<name>.yaml`), to find where else
//! a resource is defined and which assets still use a device; it reads them with the loader's own
//! splitting and parsing, so both agree on every document.

use serde::Deserialize;

use super::doc::{self, API_VERSION, Header};
use super::yaml;

/// `Device` or `Asset` and the name of each resource document of `text` (documents that are
/// neither, or cannot be read, are left out: the loader reports them).
pub fn defined(text: &str) -> Vec<(String, String)> {
    doc::split_documents(text)
        .into_iter()
        .filter_map(|(d, _)| header(&d).ok().flatten())
        .collect()
}

/// The names of the Asset documents of `text` whose `spec.deviceRef.deviceName` is `device`,
/// valid or not: each one the loader reads points at the device, and loses it with the device.
pub fn assets_using(text: &str, device: &str) -> Vec<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Ref {
        device_name: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Spec {
        device_ref: Option<Ref>,
    }
    #[derive(Deserialize)]
    struct AssetRef {
        spec: Option<Spec>,
    }
    // Each document parsed once, for its header and its device.
    let using = |d: &str| {
        let value = yaml::parse(d).ok()?;
        let (kind, name) = header_of(&value).ok()??;
        let asset = AssetRef::deserialize(&value).ok()?;
        let named = asset.spec?.device_ref?.device_name?;
        (kind == "Asset" && named == device).then_some(name)
    };
    doc::split_documents(text)
        .into_iter()
        .filter_map(|(d, _)| using(&d))
        .collect()
}

/// The kind and name of the one resource document of `text`; an error saying why when it holds
/// no document, several, or one that is not a named Device or Asset.
pub fn identify(text: &str) -> Result<(String, String), String> {
    let docs: Vec<String> = doc::split_documents(text)
        .into_iter()
        .map(|(d, _)| d)
        .filter(|d| !matches!(yaml::parse(d), Ok(v) if v.is_null()))
        .collect();
    match docs.as_slice() {
        [one] => header(one)?.ok_or_else(|| {
            format!("not a resource: apiVersion must be {API_VERSION:?} and kind Device or Asset")
        }),
        [] => Err("no resource document".into()),
        _ => Err("more than one document: write one resource per call".into()),
    }
}

/// A document's kind and name; `None` when it is no Device or Asset of our API version.
fn header(text: &str) -> Result<Option<(String, String)>, String> {
    let value = yaml::parse(text).map_err(|e| format!("unparsable YAML: {e}"))?;
    header_of(&value)
}

/// [`header`] of a document already parsed.
fn header_of(value: &serde_yaml_ng::Value) -> Result<Option<(String, String)>, String> {
    let h = Header::deserialize(value).map_err(|e| format!("not a resource: {e}"))?;
    let kind = h.kind.unwrap_or_default();
    if h.api_version.as_deref() != Some(API_VERSION) || !matches!(kind.as_str(), "Device" | "Asset")
    {
        return Ok(None);
    }
    let name = h
        .metadata
        .and_then(|m| m.name)
        .filter(|n| !n.is_empty())
        .ok_or("metadata.name is missing")?;
    Ok(Some((kind, name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "apiVersion: namespaces.deviceregistry.microsoft.com/v1\n";

    #[test]
    fn one_named_resource_per_text() {
        let dev = format!("{HEAD}kind: Device\nmetadata: {{name: d1}}\n");
        assert_eq!(identify(&dev).unwrap(), ("Device".into(), "d1".into()));
        let two = format!("{dev}---\n{HEAD}kind: Asset\nmetadata: {{name: a1}}\n");
        assert!(identify(&two).unwrap_err().contains("more than one"));
        assert_eq!(defined(&two).len(), 2);
        assert!(identify("").unwrap_err().contains("no resource"));
        let unnamed = format!("{HEAD}kind: Device\nmetadata: {{}}\n");
        assert!(identify(&unnamed).unwrap_err().contains("metadata.name"));
        assert!(
            identify("kind: ConfigMap\n")
                .unwrap_err()
                .contains("apiVersion")
        );
        // JSON is YAML.
        let json = format!(
            "{{\"apiVersion\": \"{API_VERSION}\", \"kind\": \"Asset\", \"metadata\": {{\"name\": \"a\"}}}}"
        );
        assert_eq!(identify(&json).unwrap(), ("Asset".into(), "a".into()));
    }

    #[test]
    fn assets_naming_a_device_are_found_valid_or_not() {
        let asset = |name: &str, device: &str| {
            format!(
                "{HEAD}kind: Asset\nmetadata: {{name: {name}}}\nspec:\n  deviceRef: {{deviceName: {device}, endpointName: sse}}\n"
            )
        };
        let text = [
            asset("a1", "d1"),
            asset("a2", "d2"),
            // No datasets, an endpoint that may not exist: still the device's.
            format!("{HEAD}kind: Asset\nmetadata: {{name: a3}}\nspec: {{deviceRef: {{deviceName: d1}}}}\n"),
            format!("{HEAD}kind: Device\nmetadata: {{name: a4}}\nspec: {{deviceRef: {{deviceName: d1}}}}\n"),
            "{oops: [".to_owned(),
        ]
        .join("---\n");
        assert_eq!(assets_using(&text, "d1"), ["a1", "a3"]);
        assert_eq!(assets_using(&text, "d2"), ["a2"]);
        assert!(assets_using(&text, "d3").is_empty());
    }
}
