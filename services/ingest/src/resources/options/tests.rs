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
        "deadLetter": {"topic": "dead/letters", "qos": "Qos0", "ttl": 60}
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
    assert_eq!(o.dead_letter.as_ref().unwrap().topic, "dead/letters");
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
        (r#"{not json"#, "not valid JSON"),
    ] {
        let e = parse_json(json).unwrap_err();
        assert!(e.contains(expected), "{json}: {e}");
        assert!(!e.contains("s3cr3t"), "{e}");
    }
    let big = format!(r#"{{"x": "{}"}}"#, "a".repeat(MAX_OPTIONS_BYTES));
    assert!(parse_json(&big).unwrap_err().contains("larger than"));
}
