//! `DeleteSchema` against `sse_schema::run` with the generated client: a version put by hand goes
//! (file, listing and its bytes under `--max-registry-bytes`, so a registry that puts filled
//! takes schemas again); a version a dataset uses stays, with FAILED_PRECONDITION naming it;
//! unknown, malformed and huge names get a status that names the problem and stays small.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use sse_proto::v1::{
    DeleteSchemaRequest, GetSchemaRequest, ListSchemasRequest, PutSchemaRequest, RouteKind,
};
use tonic::Code;

mod harness;

use harness::*;

fn put(content: &str) -> PutSchemaRequest {
    PutSchemaRequest {
        content: content.into(),
        version: "1".into(),
    }
}

fn delete(name: &str, version: &str) -> DeleteSchemaRequest {
    DeleteSchemaRequest {
        name: name.into(),
        version: version.into(),
    }
}

#[tokio::test]
async fn a_version_put_by_hand_is_deleted_and_frees_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (publisher, paddr) = Publisher::on_free_port().await;
    // Room for one of the two documents below, not both.
    let big = |tag: &str| format!(r#"{{"description":"{tag}{}"}}"#, "x".repeat(3000));
    let schema = Schema::start_with(dir.path(), paddr, &["--max-registry-bytes", "5000"]).await;
    let mut c = schema.client().await;
    let a = c.put_schema(put(&big("a"))).await.unwrap().into_inner();
    let a = a.schema.unwrap();
    let full = c.put_schema(put(&big("b"))).await.unwrap_err();
    assert_eq!(full.code(), Code::ResourceExhausted, "{full:?}");

    let gone = c
        .delete_schema(delete(&a.name, "1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(gone.schema.unwrap().name, a.name);
    let file = dir.path().join(format!("{}@1.json", a.name));
    assert!(!file.exists(), "{} still there", file.display());
    let get = c
        .get_schema(GetSchemaRequest {
            name: a.name.clone(),
            version: "1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(get.code(), Code::NotFound);
    assert!(c.put_schema(put(&big("b"))).await.is_ok(), "room again");
    let again = c.delete_schema(delete(&a.name, "1")).await.unwrap_err();
    assert_eq!(again.code(), Code::NotFound, "{again:?}");
    schema.stop().await;
    publisher.stop().await;
}

#[tokio::test]
async fn a_version_a_dataset_uses_is_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (publisher, schema, _) = relaying(dir.path()).await;
    let mut stream = Stream::open(&schema).await;
    stream
        .send(vec![event(
            1,
            RouteKind::Dataset,
            "readings",
            "",
            r#"{"t":1}"#,
        )])
        .await;
    let acks = stream.acks(1).await;
    let used = acks[0].schema.clone().expect("tagged");
    let mut c = schema.client().await;
    let err = c
        .delete_schema(delete(&used.name, &used.version))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("\"asset/readings\""),
        "names the subject: {err:?}"
    );
    let listed = c
        .list_schemas(ListSchemasRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.schemas.len(), 1);
    schema.stop().await;
    publisher.stop().await;
}

#[tokio::test]
async fn bad_names_and_versions_are_refused_in_a_short_status() {
    let dir = tempfile::tempdir().unwrap();
    let (publisher, schema, _) = relaying(dir.path()).await;
    let mut c = schema.client().await;
    let huge = "A".repeat(1 << 20);
    for (name, version, code, starts) in [
        ("", "1", Code::InvalidArgument, "name is required"),
        ("../x", "1", Code::InvalidArgument, "invalid name \"../x\""),
        (
            huge.as_str(),
            "1",
            Code::InvalidArgument,
            "invalid name \"AAAA",
        ),
        ("ABC", "", Code::InvalidArgument, "invalid version"),
        ("ABC", "1/2", Code::InvalidArgument, "invalid version"),
        ("ABC", "1", Code::NotFound, "schema ABC:1 not found"),
    ] {
        let err = c.delete_schema(delete(name, version)).await.unwrap_err();
        assert_eq!(err.code(), code, "{name:.20} {version}: {err:?}");
        assert!(err.message().starts_with(starts), "{err:?}");
        assert!(err.message().len() < 300, "{} bytes", err.message().len());
    }
    // GetSchema no longer echoes a huge name either.
    let err = c
        .get_schema(GetSchemaRequest {
            name: huge.clone(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().len() < 300, "{} bytes", err.message().len());
    schema.stop().await;
    publisher.stop().await;
}
