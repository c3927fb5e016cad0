use super::*;
use serde_json::json;

fn schema(n: u64) -> Value {
    json!({"type": "object", "properties": {format!("p{n}"): {"type": "integer"}}})
}

#[tokio::test]
async fn put_get_list() {
    let dir = tempfile::tempdir().unwrap();
    let reg = FileRegistry::open(dir.path(), "ns").unwrap();
    let a = reg.put(NewSchema::new(&schema(1), "1", "")).await.unwrap();
    assert_eq!(a.namespace, "ns");
    assert_eq!(a.format, FORMAT);
    assert!(is_name(&a.name));
    let a2 = reg.put(NewSchema::new(&schema(1), "2", "")).await.unwrap();
    assert_eq!(reg.get(&a.name, None).await.unwrap(), a2);
    assert_eq!(reg.get(&a.name, Some("1")).await.unwrap(), a);
    assert!(matches!(
        reg.get(&a.name, Some("3")).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        reg.get("nope", None).await,
        Err(Error::NotFound(_))
    ));
    // Idempotent.
    assert_eq!(
        reg.put(NewSchema::new(&schema(1), "1", "")).await.unwrap(),
        a
    );
    assert_eq!(reg.list().await.unwrap(), vec![a, a2]);
}

#[tokio::test]
async fn rejects_unsafe_versions() {
    let dir = tempfile::tempdir().unwrap();
    let reg = FileRegistry::open(dir.path(), "ns").unwrap();
    for v in ["", "../x", ".hidden", "a/b", &"9".repeat(65)] {
        assert!(
            matches!(
                reg.put(NewSchema::new(&schema(1), v, "")).await,
                Err(Error::InvalidVersion(_))
            ),
            "{v}"
        );
    }
    assert!(
        reg.put(NewSchema::new(&schema(1), "1.0-beta_2", ""))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn durable_across_reopen_with_subject_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2, other) = {
        let reg = FileRegistry::open(dir.path(), "ns").unwrap();
        let v1 = reg
            .put(NewSchema::new(&schema(1), "1", "a/d"))
            .await
            .unwrap();
        let v2 = reg
            .put(NewSchema::new(&schema(2), "2", "a/d"))
            .await
            .unwrap();
        // Another subject reaching the same shape at the same version shares the file.
        let other = reg
            .put(NewSchema::new(&schema(1), "1", "b/d"))
            .await
            .unwrap();
        assert_eq!(reg.current("a/d").await.unwrap(), Some(v2.clone()));
        assert_eq!(
            reg.flush().await,
            1,
            "the shared version's file, written behind"
        );
        (v1, v2, other)
    };
    assert_eq!(other.name, v1.name);
    // A put with a subject returns the version without its list: the list is `get`'s.
    assert!(other.subjects.is_empty());
    let reg = FileRegistry::open(dir.path(), "ns").unwrap();
    assert_eq!(reg.current("a/d").await.unwrap(), Some(v2.clone()));
    assert_eq!(reg.current("b/d").await.unwrap(), Some(other.clone()));
    assert_eq!(reg.current("c/d").await.unwrap(), None);
    let shared = reg.get(&v1.name, Some("1")).await.unwrap();
    assert_eq!(shared.subjects, ["a/d", "b/d"]);
    assert_eq!(reg.list().await.unwrap().len(), 2);
}

/// The stored file of `r`'s version, parsed.
fn on_disk(dir: &std::path::Path, r: &SchemaRecord) -> SchemaRecord {
    let path = dir.join(format!("{}@{}.json", r.name, r.version));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test]
async fn new_subjects_of_a_stored_version_are_written_behind_in_one_write() {
    let dir = tempfile::tempdir().unwrap();
    let reg = FileRegistry::open(dir.path(), "ns").unwrap();
    let first = reg
        .put(NewSchema::new(&schema(1), "1", "a/d"))
        .await
        .unwrap();
    let bytes = reg.bytes();
    // Many subjects of one shape (a large asset added): none rewrites the file on its own.
    let n = 2000;
    for i in 0..n {
        let r = reg
            .put(NewSchema::new(&schema(1), "1", format!("s{i:05}/d")))
            .await
            .unwrap();
        assert_eq!(
            (r.name.as_str(), r.version.as_str()),
            (first.name.as_str(), "1")
        );
        assert!(r.subjects.is_empty(), "no copy of the list per put");
    }
    assert_eq!(on_disk(dir.path(), &first).subjects, Vec::<String>::new());
    assert_eq!(
        reg.current("s01999/d").await.unwrap().map(|r| r.version),
        Some("1".to_string()),
        "known at once"
    );
    assert!(
        reg.bytes() > bytes,
        "the growth is reserved against the cap before it is written"
    );
    assert_eq!(reg.flush().await, 1);
    assert_eq!(reg.flush().await, 0, "nothing left to write");
    let stored = on_disk(dir.path(), &first);
    assert_eq!(stored.subjects.len(), n + 1);
    assert!(stored.subjects.windows(2).all(|w| w[0] < w[1]));
    let size = std::fs::metadata(dir.path().join(format!("{}@1.json", first.name)))
        .unwrap()
        .len();
    assert_eq!(reg.bytes(), size, "the exact size replaces the estimate");
    // Reopened (as after a crash once written), every subject resumes at its version.
    let reg = FileRegistry::open(dir.path(), "ns").unwrap();
    assert_eq!(
        reg.current("s00000/d").await.unwrap().map(|r| r.version),
        Some("1".to_string())
    );
}

/// Subjects of a new version put at once (the relay prepares the first events of many streams
/// together): the first writes the version's file, the others wait for it and are only added,
/// written behind in one write.
#[tokio::test]
async fn subjects_of_a_new_version_put_at_once_write_its_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let reg = FileRegistry::open(dir.path(), "ns").unwrap();
    let puts = (0..200).map(|i| reg.put(NewSchema::new(&schema(1), "1", format!("s{i:03}/d"))));
    let stored = futures::future::join_all(puts).await;
    let first = stored[0].as_ref().unwrap().clone();
    assert!(
        stored
            .iter()
            .all(|r| r.as_ref().unwrap().name == first.name)
    );
    let on_file = on_disk(dir.path(), &first);
    assert_eq!(
        (on_file.subject.as_str(), on_file.subjects.len()),
        ("s000/d", 0),
        "written once, by the first"
    );
    assert_eq!(reg.flush().await, 1);
    assert_eq!(on_disk(dir.path(), &first).subjects.len(), 200);
}

#[tokio::test]
async fn subjects_not_yet_written_are_refused_at_the_cap_like_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let reg = FileRegistry::open(dir.path(), "ns").unwrap();
    reg.put(NewSchema::new(&schema(1), "1", "a/d"))
        .await
        .unwrap();
    let cap = reg.bytes() + 100;
    let reg = reg.with_max_bytes(cap);
    let mut refused = None;
    for i in 0..100 {
        if let Err(e) = reg
            .put(NewSchema::new(&schema(1), "1", format!("s{i:05}/d")))
            .await
        {
            refused = Some((i, e));
            break;
        }
    }
    let (i, e) = refused.expect("the cap holds for subjects added in memory");
    assert!(matches!(e, Error::RegistryFull { .. }), "{e:?}");
    assert!(i > 0 && i < 10, "refused after {i}");
}

#[tokio::test]
async fn leftover_temp_and_corrupt_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let kept = {
        let reg = FileRegistry::open(dir.path(), "ns").unwrap();
        reg.put(NewSchema::new(&schema(1), "1", "a/d"))
            .await
            .unwrap()
    };
    // A crash mid-write leaves a temp file with a torn prefix of a record.
    let tmp = dir.path().join(format!(".{}@2.json.1.0.tmp", kept.name));
    std::fs::write(&tmp, b"{\"name\":\"AB").unwrap();
    std::fs::write(dir.path().join("garbage.json"), b"{not json").unwrap();
    let mut tampered = kept.clone();
    tampered.version = "9".into();
    tampered.content = "{}".into();
    std::fs::write(
        dir.path().join("tampered.json"),
        serde_json::to_vec(&tampered).unwrap(),
    )
    .unwrap();
    let reg = FileRegistry::open(dir.path(), "ns").unwrap();
    assert_eq!(reg.list().await.unwrap(), vec![kept.clone()]);
    assert_eq!(reg.current("a/d").await.unwrap(), Some(kept));
    assert!(!tmp.exists());
}

/// A registry directory an older build wrote, before versions took one spelling and `PutSchema`
/// checked documents: `01` beside `1`, a document with no draft-07 keyword, a subject on `01`.
/// It loads whole: listed, read, resumed and deleted as before; only a new put of `01` is refused.
#[tokio::test]
async fn versions_an_older_build_stored_keep_loading() {
    let dir = tempfile::tempdir().unwrap();
    let content = to_canonical(&json!({"foo": 1}));
    let record = |version: &str, subject: &str| SchemaRecord {
        name: name_of(&content),
        version: version.into(),
        namespace: "ns".into(),
        format: FORMAT.into(),
        content: content.clone(),
        subject: subject.into(),
        subjects: Vec::new(),
    };
    let old = [record("1", ""), record("01", ""), record("002", "a/d")];
    for r in &old {
        let path = dir.path().join(format!("{}@{}.json", r.name, r.version));
        std::fs::write(path, serde_json::to_vec_pretty(r).unwrap()).unwrap();
    }
    let reg = FileRegistry::open(dir.path(), "ns").unwrap();
    let listed: Vec<String> = reg
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(listed, ["01", "1", "002"]);
    let name = old[0].name.as_str();
    assert_eq!(reg.get(name, Some("01")).await.unwrap(), old[1]);
    assert_eq!(reg.get(name, None).await.unwrap(), old[2]);
    assert_eq!(reg.current("a/d").await.unwrap(), Some(old[2].clone()));
    // A subject resumes on `002`; the pipeline numbers its next version 3.
    let p = crate::pipeline::Pipeline::new(
        std::sync::Arc::new(reg),
        "ns",
        crate::pipeline::Limits::default(),
    );
    let next = p.tag("a/d", br#"{"t": 1}"#).await;
    assert_eq!(
        next.dataschema().map(|d| d.rsplit(':').next()),
        Some(Some("3"))
    );
    let reg = p.registry();
    assert!(matches!(
        reg.put(NewSchema::new(&json!({"type": "object"}), "01", ""))
            .await,
        Err(Error::VersionSpelling { .. })
    ));
    assert_eq!(reg.delete(name, "01").await.unwrap(), old[1]);
    assert!(matches!(
        reg.get(name, Some("01")).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(reg.get(name, Some("1")).await.unwrap(), old[0]);
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[tokio::test]
async fn files_over_the_byte_cap_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let one = {
        let reg = FileRegistry::open(dir.path(), "ns").unwrap();
        reg.put(NewSchema::new(&schema(1), "1", "a/d"))
            .await
            .unwrap();
        reg.bytes()
    };
    assert_eq!(one, disk_bytes(dir.path()));
    // Reopened, the files already there count.
    let reg = FileRegistry::open(dir.path(), "ns")
        .unwrap()
        .with_max_bytes(2 * one + 1);
    assert_eq!(reg.bytes(), one);
    reg.put(NewSchema::new(&schema(2), "1", "b/d"))
        .await
        .unwrap();
    let err = reg
        .put(NewSchema::new(&schema(3), "1", "c/d"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RegistryFull { max_bytes } if max_bytes == 2 * one + 1));
    // Adding a subject to a file grows it, and is refused too.
    assert!(matches!(
        reg.put(NewSchema::new(&schema(1), "1", "z/d")).await,
        Err(Error::RegistryFull { .. })
    ));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    assert_eq!(reg.bytes(), disk_bytes(dir.path()));
    assert_eq!(reg.list().await.unwrap().len(), 2);
    // What is already stored is still answered.
    assert!(
        reg.put(NewSchema::new(&schema(2), "1", "b/d"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn files_are_private_and_loose_modes_are_tightened() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("a/b");
    let reg = FileRegistry::open(&dir, "ns").unwrap();
    let r = reg.put(NewSchema::new(&schema(1), "1", "")).await.unwrap();
    let file = dir.join(file_name(&r));
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&base.path().join("a")), 0o700);
    assert_eq!(mode(&file), 0o600);
    // A data dir and a file from before (or made by hand) with loose modes.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let reg = FileRegistry::open(&dir, "ns").unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&file), 0o600);
    assert_eq!(reg.list().await.unwrap(), vec![r]);
}

/// Writes `X@1.json` in `dir` through the temp file `tmp`, as the registry writes a record.
fn write_private(dir: &std::path::Path, tmp: &str, bytes: &[u8]) -> std::io::Result<()> {
    private_file::write_via(&dir.join(tmp), &dir.join("X@1.json"), bytes)
}

#[test]
fn a_symlink_at_the_temp_path_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("victim");
    std::fs::write(&target, b"precious").unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join(".x.tmp")).unwrap();
    // A dangling one too: creating through it would make a file outside.
    let dangling = outside.path().join("created");
    std::os::unix::fs::symlink(&dangling, dir.path().join(".y.tmp")).unwrap();
    for tmp in [".x.tmp", ".y.tmp"] {
        let err = write_private(dir.path(), tmp, b"{}").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{tmp}");
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    assert!(!dangling.exists());
    assert!(!dir.path().join("X@1.json").exists());
    write_private(dir.path(), ".z.tmp", b"{}").unwrap();
    assert_eq!(mode(&dir.path().join("X@1.json")), 0o600);
    assert!(!dir.path().join(".z.tmp").exists());
}

#[tokio::test]
async fn symlinked_schema_files_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let r = {
        let reg = FileRegistry::open(elsewhere.path(), "ns").unwrap();
        reg.put(NewSchema::new(&schema(1), "1", "")).await.unwrap()
    };
    std::os::unix::fs::symlink(
        elsewhere.path().join(file_name(&r)),
        dir.path().join(file_name(&r)),
    )
    .unwrap();
    let reg = FileRegistry::open(dir.path(), "ns").unwrap();
    assert!(reg.list().await.unwrap().is_empty());
    assert_eq!(reg.bytes(), 0);
}

/// The versions `list_from` hands over after `after`, until `take` has `n`.
async fn listed_from(reg: &FileRegistry, after: Option<&VersionId>, n: usize) -> Vec<VersionId> {
    let mut out = Vec::new();
    reg.list_from(after, |r| {
        if out.len() == n {
            return false;
        }
        out.push(VersionId::of(r));
        true
    })
    .await
    .unwrap();
    out
}

#[tokio::test]
async fn list_from_goes_on_after_a_version_in_name_then_numeric_version_order() {
    let dir = tempfile::tempdir().unwrap();
    let reg = FileRegistry::open(dir.path(), "ns").unwrap();
    for (n, v) in [(1, "10"), (1, "9"), (2, "1"), (1, "x"), (1, "2")] {
        reg.put(NewSchema::new(&schema(n), v, "")).await.unwrap();
    }
    let all = listed_from(&reg, None, usize::MAX).await;
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");
    assert_eq!(reg.list().await.unwrap().len(), 5);
    let first = all[0].name.clone();
    let versions: Vec<&str> = all
        .iter()
        .filter(|id| id.name == first)
        .map(|id| id.version.as_str())
        .collect();
    // The name with four versions sorts first or second; its versions numerically.
    if versions.len() == 4 {
        assert_eq!(versions, ["x", "2", "9", "10"]);
    }
    // Page by page, two at a time: each version once, in order.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = listed_from(&reg, after.as_ref(), 2).await;
        let Some(last) = page.last().cloned() else {
            break;
        };
        paged.extend(page);
        after = Some(last);
    }
    assert_eq!(paged, all);
    // After a version that is not (or no longer) there: from the next one.
    let between = VersionId::new(all[1].name.as_str(), "9a");
    let rest = listed_from(&reg, Some(&between), usize::MAX).await;
    assert!(rest.iter().all(|id| *id > between));
    assert_eq!(
        rest.len() + all.iter().filter(|id| **id < between).count(),
        5
    );
}

#[test]
fn version_ids_order_as_versions_do() {
    let id = |n: &str, v: &str| VersionId::new(n, v);
    assert!(id("A", "9") < id("A", "10"));
    assert!(id("A", "x") < id("A", "1"));
    assert!(id("A", "10") < id("B", "1"));
    assert!(id("A", "01") != id("A", "1"));
    assert_ne!(id("A", "01").cmp(&id("A", "1")), KeyOrdering::Equal);
}

#[test]
fn versions_order_numerically() {
    let mut v = vec!["10", "9", "2", "x"];
    v.sort_by_key(|s| version_key(s));
    assert_eq!(v, vec!["x", "2", "9", "10"]);
    // Past u64 a number is still a number: it was taken for text and sorted below 2, so
    // GetSchema without a version ("the highest") answered 2.
    let huge = "999999999999999999999999";
    let mut v = vec![huge, "2", "18446744073709551616", "0", "01", "1", "a"];
    v.sort_by_key(|s| version_key(s));
    assert_eq!(
        v,
        vec!["a", "0", "01", "1", "2", "18446744073709551616", huge]
    );
}
