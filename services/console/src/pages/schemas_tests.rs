use super::*;
use serde_json::json;

fn schema(subject: &str, version: &str, content: serde_json::Value) -> Schema {
    Schema {
        name: format!("NAME{version}"),
        version: version.into(),
        subject: subject.into(),
        content: content.to_string(),
        ..Default::default()
    }
}

/// Two versions of `line/line`, the second adding `humidity`; one of another subject.
fn registry() -> Registry {
    let v1 = json!({"type": "object", "properties": {"t": {"type": "integer"}}, "required": ["t"]});
    let v2 = json!({"type": "object", "properties": {
        "t": {"type": "number"}, "humidity": {"type": "number"}, "<b>": {"type": "string"}},
        "required": ["t"]});
    Registry {
        schemas: vec![
            schema("line/line", "2", v2.clone()),
            schema("line/line", "1", v1),
            schema("line/line", "2", v2),
            schema("a b/c&d", "1", json!({"type": "string"})),
        ],
        current: BTreeMap::from([("line/line".to_string(), "2".to_string())]),
        problems: vec![],
        notes: vec![],
    }
}

fn q(subject: &str, from: Option<&str>, to: Option<&str>) -> ViewQuery {
    ViewQuery {
        subject: subject.into(),
        from: from.map(Into::into),
        to: to.map(Into::into),
    }
}

#[test]
fn the_list_has_a_row_per_subject_linking_to_its_page() {
    let html = list_body(&registry()).into_string();
    assert!(html.contains(r#"<table id="schemas">"#), "{html}");
    assert!(html.contains(r#"<tr data-subject="line/line">"#), "{html}");
    assert!(
        html.contains(r#"href="/schemas/view?subject=line%2Fline""#),
        "{html}"
    );
    // The subject is percent-encoded in the query.
    assert!(
        html.contains(r#"href="/schemas/view?subject=a+b%2Fc%26d""#),
        "{html}"
    );
    // Duplicates across replicas count once.
    assert!(html.contains(r#"<td class="num">2</td>"#), "{html}");
}

#[test]
fn a_subjects_page_lists_versions_shows_the_schema_and_the_diff() {
    let (status, html) = view_body(&registry(), &q("line/line", None, None));
    let html = html.into_string();
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"<li data-version="1">"#), "{html}");
    assert!(html.contains(r#"<li data-version="2">"#), "{html}");
    assert!(html.contains(r#"<pre id="schema">{"#), "{html}");
    // Pretty-printed, escaped.
    assert!(html.contains("\n  &quot;properties&quot;: {"), "{html}");
    assert!(html.contains("&lt;b&gt;"), "{html}");
    assert!(!html.contains("<b>"), "{html}");
    assert!(html.contains(r#"<section id="diff">"#), "{html}");
    assert!(
        html.contains(r#"<li class="diff-added">added humidity (number)</li>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<li class="diff-changed">widened t: integer -&gt; number</li>"#),
        "{html}"
    );
}

#[test]
fn from_and_to_choose_the_diff_and_an_unknown_version_is_said() {
    let (_, html) = view_body(&registry(), &q("line/line", Some("2"), Some("1")));
    let html = html.into_string();
    assert!(html.contains("removed humidity"), "{html}");
    assert!(html.contains(r#"class="diff-removed""#), "{html}");
    let (_, html) = view_body(&registry(), &q("line/line", Some("7"), None));
    assert!(html.into_string().contains("has no version 7"));
}

#[test]
fn one_version_has_no_diff_and_an_unknown_subject_is_404() {
    let (status, html) = view_body(&registry(), &q("a b/c&d", None, None));
    assert_eq!(status, StatusCode::OK);
    assert!(!html.into_string().contains(r#"id="diff""#));
    let (status, _) = view_body(&registry(), &q("nope", None, None));
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pages_are_followed_to_the_last() {
    let mut calls = Vec::new();
    let (items, whole) = read_pages(PAGES_MAX, |token: String| {
        calls.push(token.clone());
        let n: usize = token.parse().unwrap_or(0);
        let next = if n < 2 {
            (n + 1).to_string()
        } else {
            String::new()
        };
        std::future::ready(Ok::<_, tonic::Status>((vec![n], next)))
    })
    .await
    .unwrap();
    assert_eq!(items, vec![0, 1, 2]);
    assert!(whole);
    assert_eq!(calls, ["", "1", "2"]);
}

#[tokio::test]
async fn a_list_of_more_pages_than_the_cap_stops_there_and_says_so() {
    let mut calls = 0;
    let (items, whole) = read_pages(PAGES_MAX, |_token: String| {
        calls += 1;
        // A token that moves on every time: a list longer than the cap.
        std::future::ready(Ok::<_, tonic::Status>((
            vec![calls],
            format!("more-{calls}"),
        )))
    })
    .await
    .unwrap();
    assert_eq!(items.len(), PAGES_MAX);
    assert!(!whole);
    assert_eq!(calls, PAGES_MAX);
    let mut reg = registry();
    reg.notes
        .push(cut_note(&"127.0.0.1:1", 16_000, "schema versions"));
    let html = list_body(&reg).into_string();
    assert!(
        html.contains("127.0.0.1:1: only the first 16000 schema versions are shown"),
        "{html}"
    );
    // A failed page fails the list.
    let failed = read_pages(PAGES_MAX, |_token: String| {
        std::future::ready(Err::<(Vec<u8>, String), _>(tonic::Status::unavailable(
            "down",
        )))
    })
    .await;
    assert_eq!(failed.unwrap_err().code(), tonic::Code::Unavailable);
}
