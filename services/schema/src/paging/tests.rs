use super::*;

/// A schema of `content_bytes` of content and the given subjects.
fn schema(content_bytes: usize, subjects: &[&str]) -> Schema {
    Schema {
        name: "A".repeat(64),
        version: "1".into(),
        namespace: "ns".into(),
        format: "JsonSchema/draft-07".into(),
        content: "x".repeat(content_bytes),
        subject: subjects.first().copied().unwrap_or_default().into(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        truncated: false,
    }
}

fn refusal(e: Error) -> (tonic::Code, String) {
    let s = tonic::Status::from(e);
    (s.code(), s.message().to_string())
}

#[test]
fn page_size_defaults_caps_and_refuses_negative() {
    assert_eq!(page_size(0).unwrap(), PAGE_SIZE_DEFAULT);
    assert_eq!(page_size(7).unwrap(), 7);
    assert_eq!(page_size(1).unwrap(), 1);
    assert_eq!(page_size(i32::MAX).unwrap(), PAGE_SIZE_MAX);
    let (code, message) = refusal(page_size(-1).unwrap_err());
    assert_eq!(code, tonic::Code::InvalidArgument);
    assert!(message.starts_with("invalid page_size: -1"), "{message}");
}

#[test]
fn tokens_name_the_last_item_and_read_back() {
    let id = VersionId::new("A".repeat(64), "10");
    let t = schemas_token(&id);
    assert!(t.bytes().all(|b| b.is_ascii_hexdigit()), "{t}");
    assert!(t.len() <= SCHEMAS_TOKEN_BYTES_MAX);
    assert_eq!(schemas_after(&t).unwrap(), Some(id));
    // A name of an external registry (the Azure mirror) with a dotted version.
    let id = VersionId::new("my-schema.v2", "1.0-beta_2");
    assert_eq!(schemas_after(&schemas_token(&id)).unwrap(), Some(id));
    let subject = "plant/alerts/overheat ünïcode";
    assert_eq!(
        subjects_after(&subjects_token(subject)).unwrap().as_deref(),
        Some(subject)
    );
    // The longest subject listed has a token within the limit.
    let longest = "s".repeat(SUBJECT_BYTES_MAX);
    let t = subjects_token(&longest);
    assert!(t.len() <= PAGE_TOKEN_BYTES_MAX);
    assert_eq!(subjects_after(&t).unwrap(), Some(longest));
    // Empty: the first page.
    assert_eq!(schemas_after("").unwrap(), None);
    assert_eq!(subjects_after("").unwrap(), None);
}

#[test]
fn bad_tokens_are_invalid_argument_naming_the_field() {
    let good_schemas = schemas_token(&VersionId::new("A".repeat(64), "1"));
    let bad = [
        "not hex".to_string(),
        "abc".into(),                         // odd length
        "ABCD".into(),                        // not lowercase hex
        hex::encode(b"S2\nAAAA\n1"),          // unknown format
        hex::encode(b"S1\nAAAA"),             // no version
        hex::encode(b"S1\n../etc\n1"),        // not a name
        hex::encode(b"S1\nAAAA\n../1"),       // not a version
        hex::encode(b"S1\n\xff\xfe\n1"),      // not UTF-8
        subjects_token("a/b"),                // the other call's
        "0".repeat(PAGE_TOKEN_BYTES_MAX + 2), // too long to decode
        format!("{good_schemas}00"),          // tampered
    ];
    for t in &bad {
        let (code, message) = refusal(schemas_after(t).unwrap_err());
        assert_eq!(code, tonic::Code::InvalidArgument, "{t}");
        assert!(
            message.starts_with("invalid page_token: "),
            "{t}: {message}"
        );
    }
    for t in [
        good_schemas.clone(),
        hex::encode(b"J1\n"),
        hex::encode(b"J1\n\xff"),
        "0".repeat(PAGE_TOKEN_BYTES_MAX + 2),
    ] {
        let (code, message) = refusal(subjects_after(&t).unwrap_err());
        assert_eq!(code, tonic::Code::InvalidArgument, "{t}");
        assert!(
            message.starts_with("invalid page_token: "),
            "{t}: {message}"
        );
    }
    let (_, message) = refusal(schemas_after(&"0".repeat(PAGE_TOKEN_BYTES_MAX + 2)).unwrap_err());
    assert!(message.contains("longer than any token"), "{message}");
}

#[test]
fn pages_cut_at_their_size() {
    let mut page = Page::new(3);
    for i in 0..3 {
        assert!(page.offer(schema(10, &[])), "{i}");
    }
    assert!(!page.offer(schema(10, &[])));
    let (items, more) = page.finish();
    assert_eq!((items.len(), more), (3, true));
    // Not full: no further page.
    let mut page = Page::new(3);
    assert!(page.offer(schema(10, &[])));
    assert!(!page.finish().1);
}

#[test]
fn pages_cut_before_their_bytes_pass_the_budget_but_take_one_large_item() {
    let third = PAGE_BYTES_MAX / 3 - 200;
    let mut page = Page::new(PAGE_SIZE_MAX);
    assert!(page.offer(schema(third, &[])));
    assert!(page.offer(schema(third, &[])));
    assert!(page.offer(schema(third, &[])));
    assert!(!page.offer(schema(third, &[])));
    let (items, more) = page.finish();
    assert_eq!(items.len(), 3);
    assert!(more);
    let bytes: usize = items
        .iter()
        .map(|s| prost::encoding::message::encoded_len(1, s))
        .sum();
    assert!(bytes <= PAGE_BYTES_MAX, "{bytes}");
    // One schema larger than a page comes alone, and nothing joins it.
    let mut page = Page::new(PAGE_SIZE_MAX);
    assert!(page.offer(schema(EVENT_BYTES_MAX, &[])));
    assert!(!page.offer(schema(1, &[])));
    let (items, more) = page.finish();
    assert_eq!((items.len(), more), (1, true));
}

#[test]
fn a_put_schema_of_the_largest_size_is_never_cut() {
    let mut s = schema(EVENT_BYTES_MAX, &["asset/dataset"]);
    s.name = "N".repeat(128);
    s.version = "9".repeat(64);
    s.namespace = "n".repeat(128);
    let before = s.clone();
    fit_schema(&mut s);
    assert_eq!(s, before);
    // With its token, as the only item of a page, it fits in one message.
    let response = sse_proto::v1::ListSchemasResponse {
        next_page_token: schemas_token(&VersionId::new(&*s.name, &*s.version)),
        schemas: vec![s],
    };
    assert!(response.encoded_len() <= GRPC_MESSAGE_BYTES_MAX);
}

#[test]
fn a_schema_too_large_for_a_message_is_cut_to_fit() {
    // Shared by very many subjects: the subjects go, the content stays.
    let many: Vec<String> = (0..300_000).map(|i| format!("asset-{i}/data")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let mut s = schema(1000, &refs);
    assert!(s.encoded_len() > SCHEMA_BYTES_MAX);
    fit_schema(&mut s);
    assert!(s.truncated);
    assert_eq!(s.subjects, vec!["asset-0/data".to_string()]);
    assert_eq!(s.content.len(), 1000);
    // A merged inferred schema over the message limit: the content goes too.
    let mut s = schema(GRPC_MESSAGE_BYTES_MAX, &["a/d"]);
    fit_schema(&mut s);
    assert!(s.truncated);
    assert!(s.content.is_empty());
    assert_eq!(s.subject, "a/d");
    assert!(s.encoded_len() <= SCHEMA_BYTES_MAX);
}

/// A server that answers the same token again would keep a reader looping: it ends the list.
#[tokio::test]
async fn a_token_that_comes_back_unchanged_ends_the_reading() {
    let mut calls = 0;
    let (items, whole) = read_pages(usize::MAX, |_token: String| {
        calls += 1;
        std::future::ready(Ok::<_, ()>((vec![calls], "same".to_string())))
    })
    .await
    .unwrap();
    assert_eq!((items, whole, calls), (vec![1, 2], true, 2));
}
