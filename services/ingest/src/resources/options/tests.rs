use super::*;

fn parse_json(json: &str) -> Result<EndpointOptions, String> {
    parse(Some(&serde_yaml_ng::Value::String(json.to_owned())))
}

#[test]
fn absent_and_empty_configurations_are_the_defaults() {
    assert_eq!(parse(None).unwrap(), EndpointOptions::default());
    assert_eq!(parse_json("  ").unwrap(), EndpointOptions::default());
    // Another connector's keys are left alone.
    assert_eq!(
        parse_json(r#"{"somethingElse": 1}"#).unwrap(),
        EndpointOptions::default()
    );
}

#[test]
fn every_option_parses() {
    let o = parse_json(
        r#"{
        "allowInsecureCredentials": true,
        "authentication": {"method": "OAuth2", "tokenUrl": "https://login/t",
            "clientId": "app", "clientSecret": {"secretRef": "oauth/secret"},
            "scopes": ["read", "events"], "audience": "api://x",
            "parameters": {"resource": {"secretRef": "oauth/resource"}}},
        "headers": {"X-Api-Key": {"secretRef": "api/key"}, "x-tenant": "acme"},
        "proxy": {"url": "http://proxy:3128", "username": "u", "password": {"secretRef": "p/pw"}},
        "compression": true,
        "request": {"method": "POST", "body": {"stream": true}},
        "deadLetter": {"topic": "sse-connector/dead-letter/plant", "qos": "Qos0", "ttl": 60}
    }"#,
    )
    .unwrap();
    assert!(o.allow_insecure_credentials);
    let Some(HttpAuth::OAuth2(oauth)) = &o.auth else {
        panic!("{o:?}")
    };
    assert_eq!(oauth.scopes, ["read", "events"]);
    assert_eq!(oauth.client_id, OptionValue::Literal("app".into()));
    assert_eq!(o.request.headers[0].0.as_str(), "x-api-key");
    assert!(o.request.compression);
    assert_eq!(o.request.method, Method::Post);
    assert_eq!(o.request.body.as_deref(), Some(&b"{\"stream\":true}"[..]));
    assert_eq!(
        o.dead_letter.as_ref().unwrap().topic,
        "sse-connector/dead-letter/plant"
    );
    let refs: Vec<String> = o
        .secret_refs()
        .into_iter()
        .map(|(f, r)| format!("{f}={r}"))
        .collect();
    assert_eq!(
        refs,
        [
            "authentication.clientSecret=oauth/secret",
            "authentication.parameters.resource=oauth/resource",
            "headers.x-api-key=api/key",
            "proxy.password=p/pw"
        ]
    );
    assert!(o.sends_credentials());
    let o = parse_json(r#"{"proxy": "none", "authentication": {"method": "Bearer", "token": {"secretRef": "t/k"}}}"#).unwrap();
    assert_eq!(o.request.proxy, Proxy::Direct);
    assert!(matches!(o.auth, Some(HttpAuth::Bearer { .. })));
}

#[test]
fn bad_options_are_named_never_their_values() {
    for (json, expected) in [
        (r#"[1]"#, "additionalConfiguration: must be an object"),
        (
            r#"{"compression": "yes"}"#,
            "additionalConfiguration.compression: must be true or false",
        ),
        (
            r#"{"authentication": {"method": "Digest"}}"#,
            "unknown method \"Digest\"",
        ),
        (
            r#"{"authentication": {"method": "Bearer", "token": "s3cr3t-inline"}}"#,
            "authentication.token: must be {\"secretRef\"",
        ),
        (
            r#"{"authentication": {"method": "OAuth2", "tokenUrl": "http://login/t", "clientId": "a", "clientSecret": {"secretRef": "o/s"}}}"#,
            "tokenUrl: must be https",
        ),
        (
            r#"{"authentication": {"method": "OAuth2", "tokenUrl": "https://login/t", "clientId": "a", "clientSecret": {"secretRef": "o/s"}, "parameters": {"grant_type": "password"}}}"#,
            "is set by the connector",
        ),
        (
            r#"{"authentication": {"method": "Bearer", "token": {"secretRef": "t/k"}, "tokn": 1}}"#,
            "unknown key \"tokn\"",
        ),
        (
            r#"{"headers": {"Connection": "close"}}"#,
            "headers.Connection: is a hop-by-hop header",
        ),
        (
            r#"{"headers": {"bad name": "x"}}"#,
            "is not a valid header name",
        ),
        (
            r#"{"headers": {"x-a": "line\nbreak"}}"#,
            "is not a valid header value",
        ),
        (
            r#"{"headers": {"x-a": {"secretRef": "../etc"}}}"#,
            "is not of the form",
        ),
        (
            r#"{"proxy": {"url": "socks5://p:1080"}}"#,
            "proxy.url: must be http",
        ),
        (
            r#"{"proxy": {"url": "https://p:3128"}}"#,
            "proxy.url: https:// proxies are not supported",
        ),
        (
            r#"{"proxy": {"url": "http://u:pw@p:3128"}}"#,
            "must not hold credentials",
        ),
        (
            r#"{"proxy": {"url": "http://p:3128", "username": "u"}}"#,
            "username and password go together",
        ),
        (
            r#"{"request": {"method": "PUT"}}"#,
            "request.method: must be GET or POST",
        ),
        (
            r#"{"request": {"body": "x"}}"#,
            "request.body: needs \"method\": \"POST\"",
        ),
        (r#"{"deadLetter": {"topic": "a/#"}}"#, "deadLetter.topic"),
        (
            r#"{"deadLetter": {"topic": "sse-connector/dead-letter/x", "qos": "Qos2"}}"#,
            "deadLetter.qos: unknown qos \"Qos2\" (Qos0 or Qos1)",
        ),
        (
            r#"{"deadLetter": {"topic": "sse-connector/dead-letter/x", "retain": "Always"}}"#,
            "deadLetter.retain: unknown retain",
        ),
        (r#"{not json"#, "not valid JSON"),
    ] {
        let e = parse_json(json).unwrap_err();
        assert!(e.contains(expected), "{json}: {e}");
        assert!(!e.contains("s3cr3t"), "{e}");
    }
    let big = format!(r#"{{"x": "{}"}}"#, "a".repeat(MAX_OPTIONS_BYTES));
    assert!(parse_json(&big).unwrap_err().contains("larger than"));
}

/// The documented JSON Schema's examples are accepted by this parser (scripts/schema_check.py
/// checks they validate against the schema), so the docs and the code describe one shape.
#[test]
fn the_documented_examples_parse() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/schemas/endpoint-configuration.schema.json"
    );
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let examples = schema["examples"].as_array().unwrap();
    assert!(examples.len() >= 8);
    for example in examples {
        let o = parse_json(&example.to_string()).unwrap_or_else(|e| panic!("{example}: {e}"));
        assert_ne!(o, EndpointOptions::default(), "{example}");
    }
    // Every top-level option the schema names is one this parser reads.
    let names: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        [
            "allowInsecureCredentials",
            "authentication",
            "compression",
            "deadLetter",
            "headers",
            "proxy",
            "request"
        ]
    );
}

/// The README's example Device loads with every endpoint valid and its options as written.
#[test]
fn the_readme_example_device_loads() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let block = readme
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    let res = crate::resources::load_texts([("README.md", block)]);
    assert!(res.problems().is_empty(), "{:?}", res.problems());
    let device = &res.devices["plant-gateway"];
    assert_eq!(device.endpoints.len(), 5);
    let ep = |name: &str| &device.endpoints[name].options;
    assert!(matches!(ep("bearer").auth, Some(HttpAuth::Bearer { .. })));
    assert!(matches!(ep("oauth2").auth, Some(HttpAuth::OAuth2(_))));
    assert!(ep("feed").request.compression && ep("feed").request.has_header("x-api-key"));
    assert!(matches!(ep("feed").request.proxy, Proxy::Via { .. }));
    assert_eq!(ep("agent").request.method, Method::Post);
    assert!(ep("agent").dead_letter.is_some());
}
