//! End to end, `ListSchemas` and `ListSubjects` a page at a time, against the real binaries with
//! grpcurl and its default 4 MiB message limit: a registry holding more than one gRPC message
//! of schemas (which once made `ListSchemas` fail for good with OUT_OF_RANGE) reads back through
//! its pages, every version exactly once and a schema larger than a page alone; bad paging
//! fields are INVALID_ARGUMENT naming the field; a request without them (an older client) gets
//! the first page and a token. Then an asset with many events gives as many subjects, read back
//! through the pages of `ListSubjects`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sse_e2e::grpcurl;
use sse_e2e::procs::Service;
use sse_e2e::resources::device;
use sse_e2e::source::{block, by_path};
use sse_e2e::stack::Stack;

const PUT: &str = "sseconnector.v1.SchemaService/PutSchema";
const LIST: &str = "sseconnector.v1.SchemaService/ListSchemas";
const SUBJECTS: &str = "sseconnector.v1.SchemaService/ListSubjects";

/// A `PutSchema` request: a schema document of `bytes` bytes told apart by `tag`, at `version`.
fn put_request(bytes: usize, tag: &str, version: &str) -> Vec<u8> {
    let head = format!(r#"{{"description":"{tag}"#);
    let content = format!("{head}{}\"}}", "x".repeat(bytes - head.len() - 2));
    serde_json::to_vec(&json!({"content": content, "version": version})).unwrap()
}

/// Every page of `list` at `addr` for `page_size` (0: none sent, as an older client), with
/// grpcurl's default limits: the pages' items under `field`, in order.
async fn pages(addr: &str, list: &str, field: &str, page_size: i64) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let mut request = json!({});
        if !token.is_empty() {
            request["pageToken"] = json!(token);
        }
        if page_size > 0 {
            request["pageSize"] = json!(page_size);
        }
        let page = grpcurl::call_json(addr, Some(&request.to_string()), &[list])
            .await
            .unwrap();
        out.push(page[field].as_array().cloned().unwrap_or_default());
        match page["nextPageToken"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_string(),
            _ => return out,
        }
    }
}

#[tokio::test]
async fn list_schemas_reads_more_than_4_mib_of_schemas_back_page_by_page() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("schemas").display().to_string();
    // No publisher: the registry API serves without one. Admin writes beyond the default burst.
    let args = ["--publisher", "http://127.0.0.1:9", "--data-dir", &data_dir].map(String::from);
    let env = [("SCHEMA_ADMIN_WRITE_BURST".to_string(), "100".to_string())];
    let schema = Service::start("sse-schema", &args, &env).await.unwrap();
    let addr = schema.addr.to_string();
    // One schema of 4,000,000 bytes (the defect's), two larger than a page, 30 small ones.
    let mut requests = vec![put_request(4_000_000, "huge", "1")];
    requests.push(put_request(1_500_000, "big-a", "1"));
    requests.push(put_request(1_500_000, "big-b", "1"));
    for i in 0..10 {
        for v in ["1", "2", "10"] {
            requests.push(put_request(300, &format!("small-{i}"), v));
        }
    }
    let mut put = BTreeMap::new();
    for r in &requests {
        let out = grpcurl::call_stdin(&addr, r, &[PUT])
            .await
            .unwrap()
            .unwrap();
        let s: Value = serde_json::from_str(&out).unwrap();
        let content = s["schema"]["content"].as_str().unwrap().len();
        let key = (
            s["schema"]["name"].as_str().unwrap().to_string(),
            s["schema"]["version"].as_str().unwrap().to_string(),
        );
        put.insert(key, content);
    }
    assert_eq!(put.len(), 33);
    assert!(put.values().sum::<usize>() > 4 << 20);

    for page_size in [0, 7, 1000] {
        let pages = pages(&addr, LIST, "schemas", page_size).await;
        let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
        for page in &pages {
            assert!(
                !page.is_empty() && page.len() <= 100,
                "page size {page_size}"
            );
            for s in page {
                let key = (
                    s["name"].as_str().unwrap().to_string(),
                    s["version"].as_str().unwrap().to_string(),
                );
                *seen.entry(key).or_default() += 1;
                // A schema larger than a page comes alone.
                if s["content"].as_str().unwrap().len() > 1 << 20 {
                    assert_eq!(page.len(), 1, "page size {page_size}");
                }
                assert!(s.get("truncated").is_none(), "{}", s["name"]);
            }
        }
        assert_eq!(
            seen.keys().collect::<Vec<_>>(),
            put.keys().collect::<Vec<_>>()
        );
        assert!(
            seen.values().all(|n| *n == 1),
            "page size {page_size}: {seen:?}"
        );
        if page_size == 7 {
            assert!(pages.len() > 33 / 7, "{}", pages.len());
        }
    }

    // No paging fields, as an older client sends: the first page, and a token for the next.
    let first = grpcurl::call_json(&addr, None, &[LIST]).await.unwrap();
    assert!(first["schemas"].as_array().is_some_and(|s| !s.is_empty()));
    assert!(
        first["nextPageToken"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{}",
        first["nextPageToken"]
    );

    for (request, field) in [
        (r#"{"pageSize": -1}"#, "page_size"),
        (r#"{"pageToken": "not-a-token"}"#, "page_token"),
    ] {
        for list in [LIST, SUBJECTS] {
            let refused = grpcurl::call_refused(&addr, Some(request), &[list])
                .await
                .unwrap();
            assert_eq!(
                refused.code, "InvalidArgument",
                "{list} {request}: {refused:?}"
            );
            assert!(
                refused.message.starts_with(&format!("invalid {field}")),
                "{refused:?}"
            );
        }
    }
}

/// Device `dev` and asset `plant` whose event group `g` routes `n` SSE event types
/// (`t000`, ...) of `/events`, each a subject `plant/g/t000`, ...
fn many_events(base: &str, n: usize) -> String {
    let mut s = device(base);
    s.push_str(
        "---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: { name: plant }
spec:
  deviceRef: { deviceName: dev, endpointName: sse-0 }
  eventGroups:
    - name: g
      dataSource: /events
      defaultDestinations: [ { target: Mqtt, configuration: { topic: e2e/many, qos: Qos1 } } ]
      events:
",
    );
    for i in 0..n {
        s.push_str(&format!(
            "        - {{ name: t{i:03}, dataSource: t{i:03} }}\n"
        ));
    }
    s
}

#[tokio::test]
async fn list_subjects_reads_many_subjects_back_page_by_page() {
    const N: usize = 120;
    let feed = by_path(|path| {
        (path == "/events").then(|| {
            let mut blocks = vec!["retry: 200\n\n".to_string()];
            blocks.extend((0..N).map(|i| {
                block(
                    Some(&i.to_string()),
                    Some(&format!("t{i:03}")),
                    r#"{"v":1}"#,
                )
            }));
            blocks
        })
    });
    let (stack, sub) = Stack::start(feed, |base| many_events(base, N))
        .await
        .unwrap();
    sub.wait_until("every event", |m| {
        m.iter().filter(|r| r.topic == "e2e/many").count() >= N
    })
    .await
    .unwrap();
    let addr = stack.schema.addr.to_string();
    for (page_size, expected_pages) in [(50, 3), (0, 2), (1000, 1)] {
        let pages = pages(&addr, SUBJECTS, "subjects", page_size).await;
        assert_eq!(pages.len(), expected_pages, "page size {page_size}");
        let subjects: Vec<&str> = pages
            .iter()
            .flatten()
            .map(|s| s["subject"].as_str().unwrap())
            .collect();
        let expected: Vec<String> = (0..N).map(|i| format!("plant/g/t{i:03}")).collect();
        assert_eq!(subjects, expected, "page size {page_size}");
    }
}
