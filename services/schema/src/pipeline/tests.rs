use super::*;
use crate::registry::FileRegistry;

fn pipeline(dir: &std::path::Path) -> Pipeline<FileRegistry> {
    let reg = FileRegistry::open(dir, "ns").unwrap();
    Pipeline::new(
        Arc::new(reg),
        "ns",
        Limits {
            max_bytes: 1024,
            max_depth: 4,
            max_properties: 8,
        },
    )
}

fn version(reference: &str) -> &str {
    reference.rsplit(':').next().unwrap()
}

#[tokio::test]
async fn versions_bump_only_when_shape_changes() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let r1 = p
        .process("a/d", br#"{"x":1.5,"y":"s"}"#)
        .await
        .unwrap()
        .unwrap();
    assert!(r1.starts_with("aio-sr://ns/"), "{r1}");
    assert_eq!(version(&r1), "1");
    // Same shape, other key order and values; an integer where a number was seen.
    let r = p
        .process("a/d", br#"{"y":"t","x":2}"#)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r, r1);
    let r2 = p
        .process("a/d", br#"{"x":1,"y":null}"#)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(version(&r2), "2");
    // Another subject numbers its own versions.
    let o = p
        .process("a/g/e", br#"{"x":1.5,"y":"s"}"#)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(o, r1, "same shape, same name and version");
    assert_eq!(p.registry().list().await.unwrap().len(), 2);
}

#[tokio::test]
async fn non_json_and_oversized_get_no_schema() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    assert_eq!(p.process("a/d", b"plain text").await.unwrap(), None);
    assert_eq!(p.process("a/d", b"").await.unwrap(), None);
    let big = format!("[{}]", vec!["1"; 600].join(","));
    assert_eq!(p.process("a/d", big.as_bytes()).await.unwrap(), None);
    assert!(p.registry().list().await.unwrap().is_empty());
}

#[tokio::test]
async fn restart_resumes_schema_and_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, r2) = {
        let p = pipeline(dir.path());
        let r1 = p.process("a/d", br#"{"x":1}"#).await.unwrap().unwrap();
        let r2 = p
            .process("a/d", br#"{"x":1,"z":true}"#)
            .await
            .unwrap()
            .unwrap();
        (r1, r2)
    };
    let p = pipeline(dir.path());
    // Known shapes are not registered again.
    assert_eq!(p.process("a/d", br#"{"x":5}"#).await.unwrap().unwrap(), r2);
    assert_ne!(r1, r2);
    let r3 = p.process("a/d", br#"{"x":"s"}"#).await.unwrap().unwrap();
    assert_eq!(version(&r3), "3");
    assert_eq!(p.registry().list().await.unwrap().len(), 3);
}

#[tokio::test]
async fn limits_and_non_json_say_why_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let deep = br#"{"a":{"b":{"c":{"d":{"e":1}}}}}"#;
    let wide = br#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9}"#;
    let nested_wide = br#"{"a":{"b":1,"c":2,"d":3},"e":[{"f":1,"g":2,"h":3,"i":4}]}"#;
    let big = format!("[{}]", vec!["1"; 600].join(","));
    let too_deep_for_serde = format!("{}{}", "[".repeat(200), "]".repeat(200));
    for (data, reason) in [
        (&b"plain"[..], NoSchema::NotJson),
        (b"", NoSchema::NotJson),
        (big.as_bytes(), NoSchema::TooLarge),
        (deep, NoSchema::TooDeep),
        (too_deep_for_serde.as_bytes(), NoSchema::TooDeep),
        (wide, NoSchema::TooManyProperties),
        (nested_wide, NoSchema::TooManyProperties),
    ] {
        assert_eq!(
            p.tag("a/d", data).await,
            Outcome::NoSchema(reason),
            "{}",
            String::from_utf8_lossy(data)
        );
    }
    // Right at the limits: a schema.
    let ok = br#"{"a":{"b":{"c":[1]}},"d":1,"e":2,"f":3,"g":4,"h":5}"#;
    let Outcome::Schema(r) = p.tag("a/d", ok).await else {
        panic!("no schema at the limits");
    };
    assert_eq!(r.version, "1");
    assert_eq!(r.namespace, "ns");
    let status = p.subjects().await;
    assert_eq!(status.len(), 1);
    let s = &status[0];
    assert_eq!(s.subject, "a/d");
    assert_eq!(s.schema.as_ref(), Some(&*r));
    assert_eq!(s.with_schema, 1);
    assert_eq!(
        s.without_schema,
        vec![
            (NoSchema::NotJson, 2),
            (NoSchema::TooLarge, 1),
            (NoSchema::TooDeep, 2),
            (NoSchema::TooManyProperties, 2)
        ]
    );
    assert_eq!(s.last_reason, Some(NoSchema::TooManyProperties));
    assert_eq!(p.registry().list().await.unwrap().len(), 1);
}

/// A pipeline with `caps` over a registry of at most `max_bytes` in `dir`.
fn capped(dir: &std::path::Path, caps: Caps) -> Pipeline<FileRegistry> {
    let reg = FileRegistry::open(dir, "ns")
        .unwrap()
        .with_max_bytes(caps.max_registry_bytes);
    Pipeline::new(Arc::new(reg), "ns", Limits::default()).with_caps(caps)
}

/// A payload with one key of its own: a new version each time, while the subject evolves.
fn new_key(i: usize) -> Vec<u8> {
    format!(r#"{{"k{i}":{i}}}"#).into_bytes()
}

fn frozen_at(outcome: &Outcome) -> (Option<&str>, Cap) {
    match outcome {
        Outcome::Frozen { schema, cap } => (schema.as_deref().map(|s| s.version.as_str()), *cap),
        other => panic!("not frozen: {other:?}"),
    }
}

#[tokio::test]
async fn versions_cap_stops_the_subject_at_its_last_version_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let caps = Caps {
        max_versions: 3,
        ..Caps::default()
    };
    {
        let p = capped(dir.path(), caps);
        for i in 1..=3 {
            let Outcome::Schema(r) = p.tag("a/d", &new_key(i)).await else {
                panic!("version {i}");
            };
            assert_eq!(r.version, i.to_string());
        }
        for i in 4..=20 {
            assert_eq!(
                frozen_at(&p.tag("a/d", &new_key(i)).await),
                (Some("3"), Cap::Versions)
            );
        }
        // A shape the last version knows: frozen too, so every ack says so.
        assert_eq!(
            frozen_at(&p.tag("a/d", &new_key(1)).await),
            (Some("3"), Cap::Versions)
        );
        // Not JSON still says so.
        assert_eq!(
            p.tag("a/d", b"x").await,
            Outcome::NoSchema(NoSchema::NotJson)
        );
        // Another subject evolves on.
        assert!(matches!(
            p.tag("b/d", br#"{"other":1}"#).await,
            Outcome::Schema(_)
        ));
        let status = p.subjects().await;
        let (cap, message) = status[0].frozen.clone().unwrap();
        assert_eq!(cap, Cap::Versions);
        assert!(
            message.contains("--max-versions") && message.contains('3'),
            "{message}"
        );
        assert_eq!(status[0].with_schema, 21);
        assert_eq!(status[1].frozen, None);
    }
    // After a restart the subject resumes at its last version, frozen at the first change.
    let p = capped(dir.path(), caps);
    assert_eq!(
        frozen_at(&p.tag("a/d", &new_key(99)).await),
        (Some("3"), Cap::Versions)
    );
    assert_eq!(p.registry().list().await.unwrap().len(), 4);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
}

#[tokio::test]
async fn schema_properties_cap_counts_the_merged_schema() {
    let dir = tempfile::tempdir().unwrap();
    let p = capped(
        dir.path(),
        Caps {
            max_schema_properties: 5,
            ..Caps::default()
        },
    );
    // Each payload has 2 members, within the per-payload limit; merged, they grow.
    let two = |a: &str, b: &str| format!(r#"{{"{a}":1,"{b}":{{}}}}"#).into_bytes();
    let Outcome::Schema(v1) = p.tag("a/d", &two("a", "b")).await else {
        panic!("v1")
    };
    let Outcome::Schema(v2) = p.tag("a/d", &two("c", "d")).await else {
        panic!("v2")
    };
    assert_eq!((v1.version.as_str(), v2.version.as_str()), ("1", "2"));
    assert_eq!(
        frozen_at(&p.tag("a/d", &two("e", "f")).await),
        (Some("2"), Cap::SchemaProperties)
    );
    // A subject whose first payload is over the cap has no version to keep.
    let six = br#"{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1}"#;
    let first = p.tag("b/d", six).await;
    assert_eq!(frozen_at(&first), (None, Cap::SchemaProperties));
    assert_eq!(first.dataschema(), None);
    let status = p.subjects().await;
    assert_eq!(status[1].without_schema, vec![(NoSchema::Frozen, 1)]);
    assert_eq!(status[1].frozen.as_ref().unwrap().0, Cap::SchemaProperties);
    assert_eq!(p.registry().list().await.unwrap().len(), 2);
}

#[tokio::test]
async fn registry_bytes_cap_freezes_the_subject_that_would_pass_it() {
    let dir = tempfile::tempdir().unwrap();
    let size_of_v1 = {
        let scratch = tempfile::tempdir().unwrap();
        let p = capped(scratch.path(), Caps::default());
        p.tag("a/d", &new_key(1)).await;
        p.registry().bytes()
    };
    // Room for the first version and a bit, not for a second one.
    let max = size_of_v1 + 10;
    let p = capped(
        dir.path(),
        Caps {
            max_registry_bytes: max,
            ..Caps::default()
        },
    );
    assert!(matches!(
        p.tag("a/d", &new_key(1)).await,
        Outcome::Schema(_)
    ));
    assert_eq!(
        frozen_at(&p.tag("a/d", &new_key(2)).await),
        (Some("1"), Cap::RegistryBytes)
    );
    assert_eq!(
        frozen_at(&p.tag("b/d", br#"{"other":1}"#).await),
        (None, Cap::RegistryBytes)
    );
    let on_disk: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(on_disk, p.registry().bytes());
    assert!(on_disk <= max);
    let message = &p.subjects().await[0].frozen.clone().unwrap().1;
    assert!(message.contains("--max-registry-bytes"), "{message}");
}

#[tokio::test]
async fn infer_checked_names_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let err = p
        .infer_checked(br#"{"a":{"b":{"c":{"d":{"e":1}}}}}"#)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "payload is over the depth limit (--max-depth 4)"
    );
    let err = p.infer_checked(&[b' '; 2000]).unwrap_err();
    assert!(
        err.to_string().contains("--max-payload-bytes 1024"),
        "{err}"
    );
    assert!(matches!(p.infer_checked(b"nope"), Err(Error::NotJson(_))));
    // Valid grammar that serde_json cannot hold still says why.
    for (payload, why) in [
        (&b"1e400"[..], "number out of range"),
        (b"[1e999]", "number out of range"),
        (br#""\udc00""#, "surrogate"),
    ] {
        let err = p.infer_checked(payload).unwrap_err().to_string();
        assert!(
            err.contains(why),
            "{}: {err}",
            String::from_utf8_lossy(payload)
        );
    }
    assert_eq!(
        p.infer_checked(br#"{"a":1}"#).unwrap(),
        infer_payload(br#"{"a":1}"#).unwrap()
    );
}

#[tokio::test]
async fn serde_recursion_limit_is_too_deep() {
    let dir = tempfile::tempdir().unwrap();
    let reg = FileRegistry::open(dir.path(), "ns").unwrap();
    let p = Pipeline::new(Arc::new(reg), "ns", Limits::default());
    let nested = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert_eq!(
        p.tag("a/d", nested.as_bytes()).await,
        Outcome::NoSchema(NoSchema::TooDeep)
    );
}

#[test]
fn infer_payload_names_canonical_content() {
    let a = infer_payload(br#"{"a": 1, "b": ["x"]}"#).unwrap();
    let b = infer_payload(br#"{"b": ["y"], "a": 2}"#).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.name, name_of(&a.content));
    assert!(
        a.content.contains(r#""items":{"type":"string"}"#),
        "{}",
        a.content
    );
    assert!(matches!(infer_payload(b"nope"), Err(Error::NotJson(_))));
}

#[tokio::test]
async fn subjects_page_after_a_subject_in_byte_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    for s in ["b/d", "a/d", "a/g/e", "é/d", "a/d"] {
        p.tag(s, br#"{"t":1}"#).await;
    }
    let names = |v: Vec<SubjectStatus>| v.into_iter().map(|s| s.subject).collect::<Vec<_>>();
    assert_eq!(names(p.subjects().await), ["a/d", "a/g/e", "b/d", "é/d"]);
    assert_eq!(names(p.subjects_after(None, 2).await), ["a/d", "a/g/e"]);
    assert_eq!(
        names(p.subjects_after(Some("a/g/e"), 2).await),
        ["b/d", "é/d"]
    );
    // After one that is not there: from the next.
    assert_eq!(names(p.subjects_after(Some("a/e"), 1).await), ["a/g/e"]);
    assert!(p.subjects_after(Some("é/d"), 10).await.is_empty());
    // A subject too long for a page token is left out.
    let long = format!("a/{}", "x".repeat(crate::paging::SUBJECT_BYTES_MAX));
    p.tag(&long, br#"{"t":1}"#).await;
    assert_eq!(p.subjects().await.len(), 4);
}

/// A registry whose writes fail (a full or read-only disk), counting the calls.
#[derive(Debug, Default)]
struct Failing {
    puts: std::sync::atomic::AtomicUsize,
}

impl Registry for Failing {
    async fn put(&self, schema: NewSchema) -> Result<SchemaRecord, Error> {
        self.puts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Err(Error::Write {
            name: schema.name,
            version: schema.version,
            source: std::io::Error::other("No space left on device"),
        })
    }
    async fn get(&self, name: &str, _: Option<&str>) -> Result<SchemaRecord, Error> {
        Err(Error::NotFound(name.to_string()))
    }
    async fn list_from(
        &self,
        _: Option<&crate::registry::VersionId>,
        _: impl FnMut(&SchemaRecord) -> bool + Send,
    ) -> Result<(), Error> {
        Ok(())
    }
    async fn delete(&self, name: &str, _: &str) -> Result<SchemaRecord, Error> {
        Err(Error::NotFound(name.to_string()))
    }
    async fn current(&self, _: &str) -> Result<Option<SchemaRecord>, Error> {
        Ok(None)
    }
}

#[tokio::test]
async fn a_failing_registry_is_not_called_on_every_event() {
    let registry = Arc::new(Failing::default());
    let p = Pipeline::new(registry.clone(), "ns", Limits::default());
    for i in 0..100 {
        let outcome = p.tag("a/d", format!(r#"{{"t":{i}}}"#).as_bytes()).await;
        assert_eq!(outcome, Outcome::NoSchema(NoSchema::RegistryError));
    }
    let puts = registry.puts.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        puts,
        1,
        "one write, then a wait of {:?}",
        retry::RETRY_FIRST
    );
    // Another subject has its own wait.
    p.tag("b/d", br#"{"t":1}"#).await;
    assert_eq!(registry.puts.load(std::sync::atomic::Ordering::Relaxed), 2);
    let status = p.subjects().await;
    assert_eq!(status[0].without_schema, [(NoSchema::RegistryError, 100)]);
}
