use super::*;

#[test]
fn subjects_of_each_kind() {
    use RouteKind::*;
    assert_eq!(subject(Dataset, "a", "d", "ignored"), "a/d");
    assert_eq!(subject(Event, "a", "g", "e"), "a/g/e");
    assert_eq!(
        subject(Status, "boiler", "asset", ""),
        "status/asset/boiler"
    );
    let mut buf = String::from("left over");
    write_subject(Event, "a", "g", "e", &mut buf);
    assert_eq!(buf, "a/g/e");
}

#[test]
fn schema_subjects_only_for_datasets_and_events_with_an_asset() {
    use RouteKind::*;
    assert_eq!(
        schema_subject(Dataset, "a", "d", "").as_deref(),
        Some("a/d")
    );
    assert_eq!(
        schema_subject(Event, "a", "g", "e").as_deref(),
        Some("a/g/e")
    );
    assert_eq!(schema_subject(Status, "a", "device", ""), None);
    assert_eq!(schema_subject(Dataset, "", "d", ""), None);
}

#[test]
fn unspecified_and_unknown_kinds_are_refused() {
    assert_eq!(RouteKind::from_wire(0), Err(KindError::Unspecified));
    assert_eq!(RouteKind::from_wire(9), Err(KindError::Unknown(9)));
    assert!(KindError::Unspecified.to_string().contains("not set"));
    for k in [RouteKind::Dataset, RouteKind::Event, RouteKind::Status] {
        assert_eq!(RouteKind::from_wire(k.to_wire()), Ok(k));
    }
}

#[test]
fn types() {
    assert_eq!(
        cloud_event_type(RouteKind::Dataset, "").as_deref(),
        Some("DataSet")
    );
    assert_eq!(
        cloud_event_type(RouteKind::Event, "t:1").as_deref(),
        Some("Event/t:1")
    );
    assert_eq!(cloud_event_type(RouteKind::Status, ""), None);
}

#[test]
fn source_rule() {
    assert_eq!(source("d", ""), "ms-aio:d");
    assert_eq!(source("d", "/"), "ms-aio:d");
    assert_eq!(source("d", "/a/b?token=secret"), "ms-aio:d/a/b");
    assert_eq!(source("d", "/a#frag"), "ms-aio:d/a");
    assert_eq!(source("d", "a%20b"), "ms-aio:d/a%20b");
    assert_eq!(source("d", "has space"), "ms-aio:d");
    assert_eq!(source("d", "bad%2"), "ms-aio:d");
    assert_eq!(source("d", "bad%zz"), "ms-aio:d");
    assert_eq!(source("d", "ünï"), "ms-aio:d");
    assert_eq!(source("d", "a\"b"), "ms-aio:d");
}

#[test]
fn qos_on_the_wire() {
    assert_eq!(
        Qos::from_wire(0),
        Ok(Qos::AtLeastOnce),
        "unspecified is QoS 1"
    );
    assert_eq!(Qos::from_wire(9), Err(UnknownQos(9)));
    assert_eq!(UnknownQos(9).to_string(), "unknown qos 9");
    for q in [Qos::AtMostOnce, Qos::AtLeastOnce] {
        assert_eq!(Qos::from_wire(q.to_wire()), Ok(q));
    }
}
