use std::os::unix::fs::PermissionsExt;

use super::*;

const HEAD: &str = "apiVersion: namespaces.deviceregistry.microsoft.com/v1\n";

fn device(name: &str) -> String {
    format!(
        "{HEAD}kind: Device\nmetadata: {{ name: {name} }}\nspec:\n  endpoints:\n    inbound:\n      sse:\n        endpointType: Microsoft.SSEHttp\n        address: http://127.0.0.1:9/\n"
    )
}

fn asset(name: &str, device: &str, qos: &str) -> String {
    format!(
        "{HEAD}kind: Asset\nmetadata: {{ name: {name} }}\nspec:\n  deviceRef: {{ deviceName: {device}, endpointName: sse }}\n  datasets:\n    - name: temps\n      dataSource: temp\n      destinations:\n        - target: Mqtt\n          configuration: {{ topic: plant/temps, qos: {qos} }}\n"
    )
}

fn store(dir: &Path) -> Store {
    Store::new(dir.to_path_buf(), 16 * 1024 * 1024, false)
}

fn fields(e: WriteError) -> Vec<(String, String)> {
    match e {
        WriteError::Invalid(v) => v.into_iter().map(|v| (v.field, v.message)).collect(),
        other => panic!("not invalid: {other:?}"),
    }
}

#[test]
fn put_writes_a_private_file_the_loader_serves() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let w = s.put(&device("d1"), true).unwrap();
    assert!(w.created);
    assert_eq!(w.file, dir.path().join("device-d1.yaml"));
    let mode = std::fs::metadata(&w.file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let a = s.put(&asset("a1", "d1", "Qos1"), false).unwrap();
    assert_eq!(a.file, dir.path().join("asset-a1.yaml"));
    let loaded = crate::resources::load_dir(dir.path()).unwrap();
    assert!(loaded.problems().is_empty(), "{:?}", loaded.problems());
    assert_eq!(loaded.assets[0].name, "a1");
    // Replacing is not creating; only_if_absent refuses it.
    assert!(!s.put(&device("d1"), false).unwrap().created);
    assert!(matches!(
        s.put(&device("d1"), true),
        Err(WriteError::Exists(_))
    ));
}

#[test]
fn problems_come_back_per_field_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let f = fields(s.put(&asset("a1", "nope", "Qos1"), false).unwrap_err());
    assert_eq!(f[0].0, "spec.deviceRef.deviceName", "{f:?}");
    assert!(f[0].1.contains("unknown device"), "{f:?}");
    s.put(&device("d1"), false).unwrap();
    let f = fields(s.put(&asset("a1", "d1", "Qos7"), false).unwrap_err());
    assert_eq!(f[0].0, "spec.datasets[temps]", "{f:?}");
    assert!(f[0].1.contains("Qos7"), "{f:?}");
    let bad_ep = device("d2").replace("http://127.0.0.1:9/", "ftp://h/");
    let f = fields(s.put(&bad_ep, false).unwrap_err());
    assert_eq!(f[0].0, "spec.endpoints.inbound.sse.address", "{f:?}");
    assert!(!dir.path().join("asset-a1.yaml").exists());
    assert!(!dir.path().join("device-d2.yaml").exists());
}

#[test]
fn secret_values_are_refused_by_name_only_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let in_url = device("d1").replace("http://127.0.0.1:9/", "http://u:hunter2@127.0.0.1:9/");
    let f = fields(s.put(&in_url, false).unwrap_err());
    assert_eq!(f[0].0, "spec.endpoints.inbound.sse.address", "{f:?}");
    // The value itself is never repeated.
    assert!(!f.iter().any(|(_, m)| m.contains("hunter2")), "{f:?}");
    let header = |v: &str| {
        format!(
            "{}        additionalConfiguration: '{{\"headers\": {{\"Authorization\": {v}}}}}'\n",
            device("d1").replace("http:", "https:")
        )
    };
    let f = fields(s.put(&header("\"Bearer hunter2\""), false).unwrap_err());
    assert_eq!(
        f[0].0, "spec.endpoints.inbound.sse.additionalConfiguration.headers.authorization",
        "{f:?}"
    );
    s.put(&header("{\"secretRef\": \"api/token\"}"), false)
        .unwrap();
}

#[test]
fn names_kinds_and_sizes_are_checked_first() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let e = s.put(&device("../etc"), false).unwrap_err();
    // The field once, as the prefix of its message ("metadata.name: metadata.name ..." before).
    assert_eq!(
        e.to_string(),
        "invalid resource: metadata.name: \"../etc\" is not a Kubernetes name (lowercase \
         letters, digits, '-' and '.', starting and ending with a letter or digit)"
    );
    let e = s.delete("Device", "A").unwrap_err().to_string();
    assert!(e.starts_with("invalid resource: name: \"A\" is not"), "{e}");
    let f = fields(
        s.put(&format!("{}---\n{}", device("a"), device("b")), false)
            .unwrap_err(),
    );
    assert!(f[0].1.contains("more than one"), "{f:?}");
    assert!(fields(s.delete("Secret", "x").unwrap_err())[0].0 == "kind");
    // A megabyte kind is quoted cut, with its size.
    let e = s
        .delete(&"X".repeat(1_000_000), "a")
        .unwrap_err()
        .to_string();
    assert!(e.len() < 300 && e.contains("(1000000 bytes)"), "{e}");
    let small = Store::new(dir.path().to_path_buf(), 10, false);
    assert_eq!(
        fields(small.put(&device("d"), false).unwrap_err())[0].0,
        "yaml"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_resource_of_another_file_is_refused_not_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("all.yaml"), device("d1")).unwrap();
    let s = store(dir.path());
    let e = s.put(&device("d1"), false).unwrap_err();
    assert!(
        matches!(&e, WriteError::NotOurs(m) if m.contains("all.yaml")),
        "{e:?}"
    );
    assert!(matches!(
        s.delete("Device", "d1"),
        Err(WriteError::NotOurs(_))
    ));
    assert!(!dir.path().join("device-d1.yaml").exists());
    let r = s.get("Device", "d1").unwrap();
    assert_eq!(r.file, dir.path().join("all.yaml"));
    assert!(r.read_only.unwrap().contains("device-d1.yaml"));
}

#[test]
fn delete_removes_the_file_and_get_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.put(&device("d1"), false).unwrap();
    let r = s.get("Device", "d1").unwrap();
    assert_eq!((r.text, r.read_only), (device("d1"), None));
    assert_eq!(
        s.delete("Device", "d1").unwrap(),
        dir.path().join("device-d1.yaml")
    );
    assert!(matches!(
        s.delete("Device", "d1"),
        Err(WriteError::NotFound(_))
    ));
    assert!(matches!(
        s.get("Device", "d1"),
        Err(WriteError::NotFound(_))
    ));
}

#[test]
fn read_only_directories_and_adr_are_not_ours() {
    let dir = tempfile::tempdir().unwrap();
    let adr = Store::new(dir.path().to_path_buf(), 1024, true);
    let e = adr.put(&device("d1"), false).unwrap_err();
    assert!(matches!(&e, WriteError::NotOurs(m) if m.contains("Azure Device Registry")));
    std::fs::create_dir(dir.path().join("..data")).unwrap();
    let e = store(dir.path()).put(&device("d1"), false).unwrap_err();
    assert!(
        matches!(&e, WriteError::NotOurs(m) if m.contains("ConfigMap")),
        "{e:?}"
    );
    let ro = tempfile::tempdir().unwrap();
    std::fs::set_permissions(ro.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let e = store(ro.path()).delete("Device", "d1").unwrap_err();
    assert!(
        matches!(&e, WriteError::NotOurs(m) if m.contains("read-only")),
        "{e:?}"
    );
    std::fs::set_permissions(ro.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_get_reports_each_secret_present_missing_or_not_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    std::fs::create_dir(secrets.path().join("gw")).unwrap();
    std::fs::write(secrets.path().join("gw/user"), "u").unwrap();
    let access = secrets.path().join("access.yaml");
    std::fs::write(&access, "gw: [d1]\n").unwrap();
    let file = crate::secret_access::AccessFile::open(Some(access), 1024, None).unwrap();
    let s = store(dir.path()).with_secrets(secrets::Secrets {
        dir: Some(secrets.path().to_path_buf()),
        access: std::sync::Arc::new(file),
    });
    let auth = "\n        authentication: { method: UsernamePassword, usernamePasswordCredentials: { usernameSecretName: gw/user, passwordSecretName: gw/password } }\n";
    // Credentials only over https.
    let gated = |name: &str| {
        device(name)
            .replace("http://127.0.0.1:9/", "https://127.0.0.1:9/")
            .trim_end()
            .to_owned()
            + auth
    };
    s.put(&gated("d1"), false).unwrap();
    let got = s.get("Device", "d1").unwrap().secrets;
    let by_ref = |r: &str| got.iter().find(|s| s.reference == r).unwrap().clone();
    assert!(by_ref("gw/user").present, "{got:?}");
    assert!(!by_ref("gw/password").present, "{got:?}");
    assert!(by_ref("gw/password").unchecked.is_none(), "{got:?}");
    // Another device may not use gw: its files are not even looked up.
    s.put(&gated("d2"), false).unwrap();
    let other = s.get("Device", "d2").unwrap().secrets;
    assert!(
        other.iter().all(|s| !s.present && s.unchecked.is_some()),
        "{other:?}"
    );
}

/// Deleting a device its assets still named used to be accepted: the assets then pointed at
/// nothing and their streams stopped with a status error. It is refused, naming a few of them.
#[test]
fn a_device_its_assets_still_use_is_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.put(&device("d1"), false).unwrap();
    s.put(&device("d2"), false).unwrap();
    for a in ["a1", "a2", "a3", "a4", "a5"] {
        s.put(&asset(a, "d1", "Qos1"), false).unwrap();
    }
    let e = s.delete("Device", "d1").unwrap_err();
    assert!(matches!(e, WriteError::InUse(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "Device/d1 is still used by 5 assets (a1, a2, a3 and 2 more): delete them or point them at another device first"
    );
    assert_eq!(grpc::status(e).code(), tonic::Code::FailedPrecondition);
    assert!(dir.path().join("device-d1.yaml").exists());
    // A device no asset uses goes; an asset goes; the last asset gone, so does its device.
    s.delete("Device", "d2").unwrap();
    for a in ["a1", "a2", "a3", "a4"] {
        s.delete("Asset", a).unwrap();
    }
    let e = s.delete("Device", "d1").unwrap_err().to_string();
    assert!(e.contains("by 1 asset (a5): delete it or point it"), "{e}");
    s.delete("Asset", "a5").unwrap();
    s.delete("Device", "d1").unwrap();
    assert!(matches!(
        s.delete("Device", "d1"),
        Err(WriteError::NotFound(_))
    ));
}

/// Asset names come from files, where anything may stand: a hand-written asset's name that is
/// no Kubernetes name is shown escaped and cut, and the message stays short.
#[test]
fn names_of_hand_written_assets_are_shown_escaped_and_cut() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.put(&device("d1"), false).unwrap();
    let long = "x".repeat(100_000);
    let hand = [
        asset("\"evil\\u001b[31m\\u202e\"", "d1", "Qos1"),
        asset(&long, "d1", "Qos1"),
    ]
    .join("---\n");
    std::fs::write(dir.path().join("plant.yaml"), hand).unwrap();
    let e = s.delete("Device", "d1").unwrap_err().to_string();
    assert!(e.len() < 400, "{} bytes: {e}", e.len());
    assert!(!e.contains('\u{1b}') && !e.contains('\u{202e}'), "{e:?}");
    assert!(e.contains(r#""evil\u{1b}[31m\u{202e}""#), "{e}");
    assert!(e.contains("(100000 bytes)"), "{e}");
}
