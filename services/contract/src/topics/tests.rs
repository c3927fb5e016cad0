use super::*;

#[test]
fn every_rule_owns_its_example() {
    for rule in OwnedTopic::ALL {
        assert_eq!(owned(rule.example()), Some(rule), "{}", rule.example());
        assert_eq!(check_name(rule.example()), Ok(()), "{}", rule.example());
    }
}

#[test]
fn each_owned_topic_falls_under_its_rule() {
    let cases = [
        ("$SYS/broker/clients/connected", OwnedTopic::Broker),
        ("$share/group/factory/t", OwnedTopic::Broker),
        ("$anything", OwnedTopic::Broker),
        ("sse-connector/status", OwnedTopic::Status),
        ("sse-connector/status/device/d", OwnedTopic::Status),
        ("sse-connector/status/1/asset/a", OwnedTopic::Status),
        ("sse-connector/checkpoint", OwnedTopic::Checkpoint),
        ("sse-connector/checkpoint/00ff", OwnedTopic::Checkpoint),
        ("sse-connector/discovery/asset/a", OwnedTopic::Discovery),
        ("sse-connector/dead-letter/a/d", OwnedTopic::DeadLetter),
        ("sse-connector", OwnedTopic::Connector),
        ("sse-connector/", OwnedTopic::Connector),
        ("sse-connector/statusx", OwnedTopic::Connector),
        ("sse-connector/site-a/status/asset/a", OwnedTopic::Connector),
        (STATE_STORE_REQUEST, OwnedTopic::StateStoreRequest),
        (STATE_STORE_PREFIX, OwnedTopic::StateStoreRequest),
        (
            "statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8/other",
            OwnedTopic::StateStoreRequest,
        ),
        (
            &state_store_response("pub-1"),
            OwnedTopic::StateStoreResponse,
        ),
        (
            "clients/statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8/me/command/notify/k",
            OwnedTopic::StateStoreResponse,
        ),
        (SCHEMA_REGISTRY_PUT, OwnedTopic::RegistryRequest),
        (SCHEMA_REGISTRY_GET, OwnedTopic::RegistryRequest),
        (
            &rpc_response("schema-1", SCHEMA_REGISTRY_GET),
            OwnedTopic::RegistryResponse,
        ),
        (
            "akri/connector/resources/pod-1/press/sse/getAsset",
            OwnedTopic::AdrRequest,
        ),
        (
            "akri/connector/resources/telemetry/pod-1/press/sse/assetUpdateEvent",
            OwnedTopic::AdrRequest,
        ),
        (
            &rpc_response("pod-1", "akri/connector/resources/pod-1/press/sse/getAsset"),
            OwnedTopic::AdrResponse,
        ),
    ];
    for (topic, rule) in cases {
        assert_eq!(owned(topic), Some(rule), "{topic}");
    }
}

#[test]
fn other_topics_are_not_owned() {
    for topic in [
        "factory/weather/events",
        "sse-connectorx/status",
        "/sse-connector/status",
        "SSE-CONNECTOR/status",
        "x/sse-connector/status",
        "a$b",
        "statestore/v1/other-store/command/invoke",
        "statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8x",
        "clients",
        "clients/me",
        "clients/me/factory/t",
        "clients/me/x/statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8",
        "adr/dtmi:ms:adr:SchemaRegistry;3/put",
        "adr/other",
    ] {
        assert_eq!(owned(topic), None, "{topic}");
    }
}

#[test]
fn status_reports_may_use_the_status_topics_only_among_the_owned() {
    let status = Writer::StatusReport;
    assert_eq!(
        check_destination("sse-connector/status/asset/a", status),
        Ok(())
    );
    // A custom `--status-topic`, inside the namespace or outside it.
    assert_eq!(
        check_destination("sse-connector/site-a/status/asset/a", status),
        Ok(())
    );
    assert_eq!(check_destination("site-a/status/asset/a", status), Ok(()));
    for rule in OwnedTopic::ALL {
        let allowed = matches!(
            rule,
            OwnedTopic::Status | OwnedTopic::Discovery | OwnedTopic::Connector
        );
        assert_eq!(
            check_destination(rule.example(), status).is_ok(),
            allowed,
            "{rule:?}"
        );
    }
}

#[test]
fn routes_and_admin_calls_may_use_no_owned_topic() {
    for writer in [Writer::Route, Writer::Admin] {
        assert_eq!(check_destination("factory/t", writer), Ok(()));
        for rule in OwnedTopic::ALL {
            assert_eq!(
                check_destination(rule.example(), writer),
                Err(Refusal::Owned(rule)),
                "{writer:?} {rule:?}"
            );
        }
    }
}

#[test]
fn dead_letters_may_use_the_dead_letter_topics_only_among_the_owned() {
    let dl = Writer::DeadLetter;
    for rule in OwnedTopic::ALL {
        assert_eq!(
            check_destination(rule.example(), dl).is_ok(),
            rule == OwnedTopic::DeadLetter,
            "{rule:?}"
        );
    }
    assert_eq!(check_state_store(dl), Err(Refusal::StateStore));
}

#[test]
fn only_routes_write_to_the_state_store() {
    assert_eq!(check_state_store(Writer::Route), Ok(()));
    assert_eq!(check_state_store(Writer::Admin), Err(Refusal::StateStore));
    assert_eq!(
        check_state_store(Writer::StatusReport),
        Err(Refusal::StateStore)
    );
}

#[test]
fn malformed_topics_are_refused_whoever_writes() {
    for writer in [
        Writer::StatusReport,
        Writer::Route,
        Writer::Admin,
        Writer::DeadLetter,
    ] {
        assert_eq!(check_destination("", writer), Err(Refusal::Empty));
        for wild in ["a/+/b", "a/#", "+", "#", "sse-connector/status/#"] {
            assert_eq!(
                check_destination(wild, writer),
                Err(Refusal::Wildcard),
                "{wild}"
            );
        }
        for (bad, c) in [("a\0b", '\0'), ("a\tb", '\t'), ("a\u{85}", '\u{85}')] {
            assert_eq!(
                check_destination(bad, writer),
                Err(Refusal::Unfit(Unfit::Forbidden(c)))
            );
        }
        let long = "a".repeat(TOPIC_BYTES_MAX + 1);
        assert_eq!(
            check_destination(&long, writer),
            Err(Refusal::Unfit(Unfit::TooLong(TOPIC_BYTES_MAX + 1)))
        );
        assert_eq!(
            check_destination(&"a".repeat(TOPIC_BYTES_MAX), writer),
            Ok(())
        );
    }
}

#[test]
fn refusals_name_the_rule_and_choose_the_code() {
    for rule in OwnedTopic::ALL {
        let r = Refusal::Owned(rule);
        assert!(r.is_permission());
        let text = r.to_string();
        assert!(text.contains(&rule.to_string()), "{text}");
        assert!(text.contains("owned by the connector"), "{text}");
    }
    assert!(Refusal::StateStore.is_permission());
    assert!(Refusal::StateStore.to_string().contains("state store"));
    for r in [
        Refusal::Empty,
        Refusal::Wildcard,
        Refusal::Unfit(Unfit::Forbidden('\0')),
        Refusal::Unfit(Unfit::TooLong(70_000)),
    ] {
        assert!(!r.is_permission(), "{r}");
    }
    assert!(Refusal::Wildcard.to_string().contains("wildcard"));
    assert!(
        Refusal::Unfit(Unfit::TooLong(70_000))
            .to_string()
            .contains("MQTT topic is 70000 bytes, more than 65535")
    );
}

#[test]
fn every_rule_reads_differently() {
    let texts: std::collections::HashSet<String> =
        OwnedTopic::ALL.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), OwnedTopic::ALL.len());
}

#[test]
fn the_request_topics_lie_under_their_prefixes() {
    assert!(under(STATE_STORE_REQUEST, STATE_STORE_PREFIX));
    assert!(under(SCHEMA_REGISTRY_PUT, SCHEMA_REGISTRY_PREFIX));
    assert!(under(SCHEMA_REGISTRY_GET, SCHEMA_REGISTRY_PREFIX));
    for p in [
        STATUS_PREFIX,
        CHECKPOINT_PREFIX,
        DISCOVERY_PREFIX,
        DEAD_LETTER_PREFIX,
    ] {
        assert!(under(p, ROOT), "{p}");
    }
    assert_eq!(
        state_store_response("pub-1"),
        "clients/pub-1/statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8/command/invoke/response"
    );
}

#[test]
fn own_prefixes_stay_clear_of_the_other_rules() {
    let (status, checkpoint) = (OwnedTopic::Status, OwnedTopic::Checkpoint);
    for ok in [
        STATUS_PREFIX,
        "sse-connector/site-a/status",
        "site-a/status",
    ] {
        assert_eq!(check_own_prefix(ok, status), Ok(()), "{ok}");
    }
    for ok in [CHECKPOINT_PREFIX, "sse-connector/site-a/cp", "site-a/cp"] {
        assert_eq!(check_own_prefix(ok, checkpoint), Ok(()), "{ok}");
    }
    assert_eq!(
        check_own_prefix(CHECKPOINT_PREFIX, status),
        Err(Refusal::Owned(checkpoint))
    );
    assert_eq!(
        check_own_prefix(STATUS_PREFIX, checkpoint),
        Err(Refusal::Owned(status))
    );
    assert_eq!(
        check_own_prefix("$SYS/cp", checkpoint),
        Err(Refusal::Owned(OwnedTopic::Broker))
    );
    assert_eq!(
        check_own_prefix(STATE_STORE_REQUEST, status),
        Err(Refusal::Owned(OwnedTopic::StateStoreRequest))
    );
    assert_eq!(check_own_prefix("a/+/b", status), Err(Refusal::Wildcard));
    assert_eq!(check_own_prefix("", checkpoint), Err(Refusal::Empty));
}

#[test]
fn levels_take_no_separator_wildcard_or_refused_character() {
    assert!(is_level("boiler-1"));
    for bad in ["", "a/b", "a+", "#", "a\0b", "a\tb", "\u{9f}"] {
        assert!(!is_level(bad), "{bad:?}");
    }
}
