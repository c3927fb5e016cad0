//! `ListSchemas` and `ListSubjects` a page at a time (AIP-158), against `sse_schema::run` with
//! the generated client: a registry of more than one gRPC message (4 MiB + 64 KiB) reads back
//! whole, each version once and in order, every page within the message limit; a schema of the
//! largest size `PutSchema` takes comes alone and uncut; bad paging fields are INVALID_ARGUMENT
//! naming the field; a request without paging fields gets the first page and a token.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;

use prost::Message;
use sse_contract::limits::{EVENT_BYTES_MAX, GRPC_MESSAGE_BYTES_MAX};
use sse_proto::v1::schema_service_client::SchemaServiceClient;
use sse_proto::v1::{
    ListSchemasRequest, ListSchemasResponse, ListSubjectsRequest, PutSchemaRequest, RouteKind,
    Schema as ProtoSchema,
};
use sse_schema::paging::{PAGE_BYTES_MAX, PAGE_SIZE_DEFAULT};
use sse_schema::registry::VersionId;
use tonic::Code;
use tonic::transport::Channel;

mod harness;

use harness::*;

/// A schema document of exactly `n` bytes of canonical JSON, told apart by `tag`.
fn schema_of(n: usize, tag: &str) -> String {
    let head = format!(r#"{{"description":"{tag}"#);
    let s = format!("{head}{}\"}}", "a".repeat(n - head.len() - 2));
    assert_eq!(s.len(), n);
    s
}

/// A client that takes messages up to the services' limit (tonic's default is 4 MiB).
async fn client(schema: &Schema) -> SchemaServiceClient<Channel> {
    schema
        .client()
        .await
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX)
}

async fn put(c: &mut SchemaServiceClient<Channel>, content: String, version: &str) -> VersionId {
    let s = c
        .put_schema(PutSchemaRequest {
            content,
            version: version.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .schema
        .unwrap();
    VersionId::new(s.name, s.version)
}

/// Every page of `ListSchemas` at `page_size`, each checked against the message and page
/// limits; `between` runs after the first page.
async fn all_pages(
    c: &mut SchemaServiceClient<Channel>,
    page_size: i32,
    mut between: impl AsyncFnMut(&mut SchemaServiceClient<Channel>),
) -> Vec<ListSchemasResponse> {
    let mut pages = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = c
            .list_schemas(ListSchemasRequest {
                page_size,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.encoded_len() <= GRPC_MESSAGE_BYTES_MAX);
        let limit = if page_size == 0 {
            PAGE_SIZE_DEFAULT
        } else {
            page_size as usize
        };
        assert!(!page.schemas.is_empty() && page.schemas.len() <= limit);
        if page.schemas.len() > 1 {
            let bytes: usize = page
                .schemas
                .iter()
                .map(|s| prost::encoding::message::encoded_len(1, s))
                .sum();
            assert!(bytes <= PAGE_BYTES_MAX, "{bytes}");
        }
        page_token = page.next_page_token.clone();
        pages.push(page);
        if pages.len() == 1 {
            between(c).await;
        }
        if page_token.is_empty() {
            return pages;
        }
    }
}

fn ids(pages: &[ListSchemasResponse]) -> Vec<VersionId> {
    pages
        .iter()
        .flat_map(|p| &p.schemas)
        .map(|s| VersionId::new(&*s.name, &*s.version))
        .collect()
}

#[tokio::test]
async fn list_schemas_reads_a_registry_larger_than_a_message_page_by_page() {
    let dir = tempfile::tempdir().unwrap();
    let (publisher, paddr) = Publisher::on_free_port().await;
    let schema = Schema::start_with(dir.path(), paddr, &["--admin-write-burst=1000"]).await;
    let mut c = client(&schema).await;
    let mut put_ids = BTreeSet::new();
    // The largest schema PutSchema takes, two larger than a page, and many small ones with
    // numeric and other versions.
    let largest = schema_of(EVENT_BYTES_MAX, "largest");
    put_ids.insert(put(&mut c, largest.clone(), "1").await);
    for i in 0..2 {
        put_ids.insert(put(&mut c, schema_of(1536 * 1024, &format!("big{i}")), "1").await);
    }
    for i in 0..40 {
        for v in ["2", "10", "x"] {
            put_ids.insert(put(&mut c, schema_of(200, &format!("s{i}")), v).await);
        }
    }
    let total: usize = 4 * 1024 * 1024 + 3 * 1024 * 1024;
    assert!(total > GRPC_MESSAGE_BYTES_MAX);

    for page_size in [0, 7, 1, 5000] {
        let mut added = None;
        let pages = all_pages(&mut c, page_size, async |c| {
            added = Some(put(c, schema_of(300, &format!("late{page_size}")), "1").await);
        })
        .await;
        let got = ids(&pages);
        // In order, so each once; every version put before is there, the one put while
        // paging at most once.
        assert!(got.windows(2).all(|w| w[0] < w[1]), "page size {page_size}");
        let got: BTreeSet<VersionId> = got.into_iter().collect();
        assert!(put_ids.is_subset(&got), "page size {page_size}");
        assert!(got.len() <= put_ids.len() + 1);
        put_ids.insert(added.unwrap());
        if page_size == 7 {
            assert!(pages.len() >= 121 / 7, "{}", pages.len());
        }
        // The largest schema came alone, whole.
        let alone: Vec<&ProtoSchema> = pages
            .iter()
            .filter(|p| p.schemas.iter().any(|s| s.content.len() == EVENT_BYTES_MAX))
            .flat_map(|p| &p.schemas)
            .collect();
        assert_eq!(alone.len(), 1);
        assert_eq!(alone[0].content, largest);
        assert!(!alone[0].truncated);
    }
    schema.stop().await;
    publisher.stop().await;
}

#[tokio::test]
async fn paging_fields_are_checked_and_an_old_request_gets_the_first_page() {
    let dir = tempfile::tempdir().unwrap();
    let (publisher, paddr) = Publisher::on_free_port().await;
    let schema = Schema::start_with(dir.path(), paddr, &["--admin-write-burst=1000"]).await;
    let mut c = client(&schema).await;
    for i in 0..(PAGE_SIZE_DEFAULT + 5) {
        put(&mut c, schema_of(100, &format!("s{i}")), "1").await;
    }
    // No paging fields (an older client): the first page of the default size, and a token.
    let first = c
        .list_schemas(ListSchemasRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.schemas.len(), PAGE_SIZE_DEFAULT);
    assert!(!first.next_page_token.is_empty());
    let rest = c
        .list_schemas(ListSchemasRequest {
            page_size: i32::MAX,
            page_token: first.next_page_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.schemas.len(), 5);
    assert!(rest.next_page_token.is_empty());

    let subjects_token = c
        .list_subjects(ListSubjectsRequest {
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(subjects_token.is_empty(), "no subjects yet");
    for (size, token, field) in [
        (-1, String::new(), "page_size"),
        (0, "garbage".to_string(), "page_token"),
        (0, format!("{}00", first.next_page_token), "page_token"),
        (0, "ab".repeat(1 << 20), "page_token"),
    ] {
        let err = c
            .list_schemas(ListSchemasRequest {
                page_size: size,
                page_token: token.clone(),
            })
            .await
            .unwrap_err();
        refused(&err, field);
        let err = c
            .list_subjects(ListSubjectsRequest {
                page_size: size,
                page_token: token,
            })
            .await
            .unwrap_err();
        refused(&err, field);
    }
    // A token of one list is refused by the other.
    let err = c
        .list_subjects(ListSubjectsRequest {
            page_size: 0,
            page_token: first.next_page_token,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    schema.stop().await;
    publisher.stop().await;
}

/// `err` is INVALID_ARGUMENT naming `field` first, as paging's refusals do.
fn refused(err: &tonic::Status, field: &str) {
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().starts_with(&format!("invalid {field}")),
        "{err:?}"
    );
}

#[tokio::test]
async fn put_schema_refuses_content_whose_canonical_form_passes_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (publisher, paddr) = Publisher::on_free_port().await;
    let schema = Schema::start(dir.path(), paddr).await;
    let mut c = client(&schema).await;
    // `1e1,` (4 bytes) is `10.0,` (5 bytes) in canonical JSON.
    let n = EVENT_BYTES_MAX / 4 - 4;
    let content = format!(r#"{{"enum":[{}1e1]}}"#, "1e1,".repeat(n - 1));
    assert!(content.len() <= EVENT_BYTES_MAX);
    let err = c
        .put_schema(PutSchemaRequest {
            content,
            version: "1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().starts_with("canonical content is "),
        "{err:?}"
    );
    schema.stop().await;
    publisher.stop().await;
}

#[tokio::test]
async fn list_subjects_pages_through_every_subject_once() {
    let dir = tempfile::tempdir().unwrap();
    let (publisher, schema, _) = relaying(dir.path()).await;
    let mut stream = Stream::open(&schema).await;
    let n = 2 * PAGE_SIZE_DEFAULT + 50;
    let events: Vec<_> = (0..n)
        .map(|i| {
            event(
                i as u64 + 1,
                RouteKind::Event,
                "g",
                &format!("e{i}"),
                r#"{"t":1}"#,
            )
        })
        .collect();
    stream.send(events).await;
    stream.acks(n).await;
    let mut c = client(&schema).await;
    for (page_size, pages_expected) in [(0, 3), (1000, 1), (60, 5)] {
        let mut seen = Vec::new();
        let mut pages = 0;
        let mut page_token = String::new();
        loop {
            let page = c
                .list_subjects(ListSubjectsRequest {
                    page_size,
                    page_token,
                })
                .await
                .unwrap()
                .into_inner();
            pages += 1;
            seen.extend(page.subjects.into_iter().map(|s| s.subject));
            page_token = page.next_page_token;
            if page_token.is_empty() {
                break;
            }
        }
        assert_eq!(pages, pages_expected, "page size {page_size}");
        assert_eq!(seen.len(), n);
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "page size {page_size}"
        );
        assert!(seen.iter().all(|s| s.starts_with("asset/g/e")));
    }
    schema.stop().await;
    publisher.stop().await;
}
