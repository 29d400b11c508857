//! Every kind of v3 answer, from a wiremock server, turned into its v2 answer.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{basic_auth, body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{Legacy, routes};
use crate::protocol::v2::{INSUFFICIENT, UNAVAILABLE};

const KEY: &str = "0b0f3f1c-1c55-4b8e-a9a5-1a2b3c4d5e6f";
const MAPPED: &str = "d9e2b8f2-9c3e-4f50-8d8c-aaaaaaaaaaaa";

/// A layer in front of `server`: `9-stream` maps to `p-<arch>`, one key is in the usermap,
/// each v3 call may take 1 s.
fn layer(server: &MockServer) -> Arc<Legacy> {
    let yaml = format!(
        "metaclient:\n  timeout: 1s\n  fail-hold: 12h\n  usermap:\n    {MAPPED}: mapped\n  poolmap:\n    - ver: 9-stream\n      pool: \"p-{{{{ arch }}}}\"\n"
    );
    let config = crate::config::from_yaml_str(&yaml, "test.yaml")
        .expect("config")
        .config;
    let mut legacy =
        Legacy::new(&config.metaclient, &format!("{}/api/v1", server.uri())).expect("layer");
    // Retries of a session request happen at once here.
    legacy.client = legacy
        .client
        .with_retry_delays(&[std::time::Duration::ZERO; 4]);
    Arc::new(legacy)
}

/// What a v2 client sees: status, content type, body.
#[derive(Debug)]
struct Seen {
    status: u16,
    ctype: String,
    body: String,
}

impl Seen {
    fn json(&self) -> Value {
        assert_eq!(self.ctype, "application/json", "{self:?}");
        serde_json::from_str(&self.body).expect("JSON body")
    }

    fn is_text(&self, status: u16, text: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.ctype, "text/plain; charset=utf-8", "{self:?}");
        assert_eq!(self.body, text);
    }

    fn is_json(&self, status: u16, value: Value) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.json(), value);
    }
}

async fn get(legacy: &Arc<Legacy>, path_and_query: &str) -> Seen {
    let response = warp::test::request()
        .method("GET")
        .path(path_and_query)
        .reply(&routes(legacy.clone()))
        .await;
    Seen {
        status: response.status().as_u16(),
        ctype: response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        body: String::from_utf8_lossy(response.body()).into_owned(),
    }
}

fn v3(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

fn detail(status: u16, text: &str) -> ResponseTemplate {
    v3(status, json!({ "detail": text }))
}

/// `GET /pools/p-x86_64` answers with fill level 3.
async fn pool_exists(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/api/v1/pools/p-x86_64"))
        .respond_with(v3(
            200,
            json!({"action": "get", "pool": {"name": "p-x86_64", "fill-level": 3, "levels": {}}}),
        ))
        .mount(server)
        .await;
}

fn session(id: i64, nodes: &[(i64, &str)]) -> Value {
    json!({
        "retired_at": null, "active": true, "created_at": "2026-11-22T00:00:00Z", "id": id,
        "expires_at": "2026-11-22T06:00:00Z", "tenant": {"id": 1, "name": "t"}, "data": {},
        "nodes": nodes.iter().map(|(i, h)| json!({
            "hostname": h, "ipaddr": "127.0.0.1", "comment": null, "pool": "p-x86_64",
            "reusable": false, "data": {}, "id": i, "state": "deployed"
        })).collect::<Vec<_>>()
    })
}

/// `POST /sessions` answers `template`.
async fn allocation_answers(server: &MockServer, template: ResponseTemplate) {
    pool_exists(server).await;
    Mock::given(method("POST"))
        .and(path("/api/v1/sessions"))
        .respond_with(template)
        .mount(server)
        .await;
}

const NODE_GET: &str = "/Node/get?key=0b0f3f1c-1c55-4b8e-a9a5-1a2b3c4d5e6f&ver=9-stream&count=2";

#[tokio::test]
async fn a_201_gives_hosts_in_node_order_and_the_ssid_as_text() {
    let server = MockServer::start().await;
    pool_exists(&server).await;
    Mock::given(method("POST"))
        .and(path("/api/v1/sessions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(body_json(
            json!({"nodes_specs": [{"pool": "p-x86_64", "quantity": 2}]}),
        ))
        .respond_with(v3(
            201,
            json!({"action": "post", "session": session(42, &[(9, "b.example.test"), (4, "a.example.test")])}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let seen = get(&layer(&server), NODE_GET).await;
    assert_eq!(seen.status, 200);
    assert_eq!(
        seen.body,
        r#"{"hosts":["a.example.test","b.example.test"],"ssid":"42"}"#
    );
}

#[tokio::test]
async fn a_usermap_key_is_sent_as_basic_auth_with_the_mapped_name() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/sessions"))
        .and(basic_auth("mapped", MAPPED))
        .respond_with(v3(
            200,
            json!({"action": "get", "sessions": [session(3, &[(1, "a.example.test")])]}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    get(&layer(&server), &format!("/Inventory?key={MAPPED}"))
        .await
        .is_json(200, json!([["a.example.test", "3"]]));
}

#[tokio::test]
async fn v3_refusals_of_an_allocation_become_v2_answers() {
    let quota = "quota exceeded: requested nodes (2) + current allocation (9) = 11 > 10";
    let cases: Vec<(ResponseTemplate, u16, Value)> = vec![
        (
            detail(401, "Unauthorized"),
            403,
            json!({"msg": "Invalid duffy key"}),
        ),
        (
            detail(403, "Forbidden"),
            403,
            json!({"msg": "Invalid duffy key"}),
        ),
        (
            detail(403, quota),
            200,
            json!(format!("Failed to allocate nodes: {quota}")),
        ),
        (
            detail(404, "Not Found"),
            200,
            json!("Failed to allocate nodes: no pool for ver=9-stream arch=x86_64 flavor="),
        ),
        (
            detail(422, "tenant t (id=1) is retired"),
            200,
            json!("Failed to allocate nodes: tenant t (id=1) is retired"),
        ),
    ];
    for (template, status, body) in cases {
        let server = MockServer::start().await;
        allocation_answers(&server, template).await;
        get(&layer(&server), NODE_GET).await.is_json(status, body);
    }
}

#[tokio::test]
async fn no_ready_node_makes_clients_retry() {
    for template in [
        detail(422, "can't reserve nodes: quantity=2 pool='p-x86_64'"),
        detail(503, "contextualization failed"),
    ] {
        let server = MockServer::start().await;
        allocation_answers(&server, template).await;
        get(&layer(&server), NODE_GET)
            .await
            .is_text(200, INSUFFICIENT);
    }
}

/// `detail(status, text)` with the error kind the v3 API names in its header.
fn kind(status: u16, kind: &str, text: &str) -> ResponseTemplate {
    detail(status, text).insert_header("Duffy-Error-Kind", kind)
}

#[tokio::test]
async fn the_kind_decides_whatever_the_detail_says() {
    let cases: Vec<(ResponseTemplate, u16, Option<Value>)> = vec![
        // Reworded: still a wait-and-retry, or a stop with the new words passed on.
        (
            kind(422, "no-nodes", "all nodes are busy, sorry"),
            200,
            None,
        ),
        (kind(503, "paused", "maintenance until noon"), 200, None),
        (
            kind(503, "unavailable", "ssh to the nodes failed"),
            200,
            None,
        ),
        (
            kind(403, "quota-exceeded", "you hold too many nodes"),
            200,
            Some(json!("Failed to allocate nodes: you hold too many nodes")),
        ),
        // Old words under another kind: the kind wins.
        (
            kind(
                422,
                "tenant-retired",
                "can't reserve nodes: quantity=2 pool='p-x86_64'",
            ),
            200,
            Some(json!(
                "Failed to allocate nodes: can't reserve nodes: quantity=2 pool='p-x86_64'"
            )),
        ),
        (
            kind(403, "forbidden", "quota exceeded: requested nodes (2)"),
            403,
            Some(json!({"msg": "Invalid duffy key"})),
        ),
    ];
    for (template, status, body) in cases {
        let server = MockServer::start().await;
        allocation_answers(&server, template).await;
        let seen = get(&layer(&server), NODE_GET).await;
        match body {
            None => seen.is_text(status, INSUFFICIENT),
            Some(body) => seen.is_json(status, body),
        }
    }
}

#[tokio::test]
async fn without_the_kind_header_the_status_decides_and_the_originals_texts_are_known() {
    // A server that names no kinds (the original Duffy 3.4.0): its two frozen texts keep
    // their meaning, anything else counts by its status alone (docs/legacy-v2.md §5 i).
    let cases = [
        (
            detail(422, "pool p-x86_64 is not what you think"),
            200,
            Some(json!(
                "Failed to allocate nodes: pool p-x86_64 is not what you think"
            )),
        ),
        (
            detail(403, "you may not"),
            403,
            Some(json!({"msg": "Invalid duffy key"})),
        ),
        (detail(503, "busy"), 200, None),
        // The original's own words for "no ready node" and "over quota".
        (
            detail(422, "can't reserve nodes: quantity=2 pool='p-x86_64'"),
            200,
            None,
        ),
        (
            detail(
                403,
                "quota exceeded: requested nodes (2) + current allocation (9) = 11 > 10",
            ),
            200,
            Some(json!(
                "Failed to allocate nodes: quota exceeded: requested nodes (2) + current allocation (9) = 11 > 10"
            )),
        ),
    ];
    for (template, status, body) in cases {
        let server = MockServer::start().await;
        allocation_answers(&server, template).await;
        let answer = get(&layer(&server), NODE_GET).await;
        match body {
            Some(body) => answer.is_json(status, body),
            None => answer.is_text(status, INSUFFICIENT),
        }
    }
}

#[tokio::test]
async fn an_unusable_v3_answer_is_unavailable() {
    let cases = [
        detail(500, "Internal Server Error"),
        ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>"),
        // A proxy's refusals say nothing about the request: retry.
        ResponseTemplate::new(429).set_body_string("<html>Too Many Requests</html>"),
        ResponseTemplate::new(413).set_body_string("<html>Too Large</html>"),
        ResponseTemplate::new(201).set_body_string("{not json"),
        v3(201, json!({"action": "post"})),
        v3(201, json!({"action": "post", "session": {"id": "x"}})),
        v3(201, json!({})).set_delay(Duration::from_secs(3)),
    ];
    for template in cases {
        let server = MockServer::start().await;
        allocation_answers(&server, template).await;
        get(&layer(&server), NODE_GET)
            .await
            .is_text(503, UNAVAILABLE);
    }
    // Nobody listening at all (wiremock keeps its servers alive for reuse, so free a port).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let config = crate::config::from_yaml_str(
        "metaclient: {poolmap: [{ver: '9-stream', pool: p}]}",
        "t.yaml",
    )
    .unwrap()
    .config;
    let mut legacy = Legacy::new(
        &config.metaclient,
        &format!("http://127.0.0.1:{port}/api/v1"),
    )
    .unwrap();
    legacy.client = legacy
        .client
        .with_retry_delays(&[std::time::Duration::ZERO; 4]);
    get(&Arc::new(legacy), NODE_GET)
        .await
        .is_text(503, UNAVAILABLE);
}

#[tokio::test]
async fn the_pool_lookup_decides_unknown_pools_and_counts() {
    for status in [404, 422] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v1/pools/p-x86_64"))
            .respond_with(detail(status, "Not Found"))
            .mount(&server)
            .await;
        get(&layer(&server), NODE_GET).await.is_json(
            200,
            json!("Failed to allocate nodes: no pool for ver=9-stream arch=x86_64 flavor="),
        );
    }
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/pools/p-x86_64"))
        .respond_with(detail(401, "Unauthorized"))
        .mount(&server)
        .await;
    get(&layer(&server), NODE_GET)
        .await
        .is_json(403, json!({"msg": "Invalid duffy key"}));
    // Past the fill level, no allocation is tried.
    let server = MockServer::start().await;
    allocation_answers(&server, detail(500, "must not be called")).await;
    get(
        &layer(&server),
        &format!("/Node/get?key={KEY}&ver=9-stream&count=4"),
    )
    .await
    .is_json(
        200,
        json!("Failed to allocate nodes: count=4 exceeds the maximum of 3 for pool p-x86_64"),
    );
}

#[tokio::test]
async fn requests_that_cannot_succeed_never_reach_v3() {
    // No mocks: any v3 call would answer 404 and change the answers below.
    let server = MockServer::start().await;
    let legacy = layer(&server);
    get(&legacy, "/Node/get?ver=9-stream")
        .await
        .is_json(403, json!({"msg": "Invalid duffy key"}));
    get(
        &legacy,
        &format!("/Node/get?key={KEY}&ver=9-stream&count=zero"),
    )
    .await
    .is_json(
        200,
        json!("Failed to allocate nodes: count must be an integer >= 1"),
    );
    get(&legacy, &format!("/Node/get?key={KEY}&ver=6"))
        .await
        .is_json(
            200,
            json!("Failed to allocate nodes: no pool for ver=6 arch=x86_64 flavor="),
        );
    get(&legacy, &format!("/Node/done?key={KEY}&ssid=578e1a0b"))
        .await
        .is_json(403, json!({"msg": "Invalid session ID"}));
    get(&legacy, "/Node/fail?ssid=3")
        .await
        .is_json(403, json!({"msg": "Invalid duffy key"}));
    // A key that cannot travel in a header is no key: never an anonymous call.
    for key in ["%01", "a%0Ab", "%7F"] {
        get(&legacy, &format!("/Inventory?key={key}"))
            .await
            .is_json(403, json!({"msg": "Invalid duffy key"}));
        get(&legacy, &format!("/Node/get?key={key}&ver=9-stream"))
            .await
            .is_json(403, json!({"msg": "Invalid duffy key"}));
    }
    // Empty pairs are skipped, as werkzeug skips them.
    get(&legacy, &format!("/Node/get?=x&&key={KEY}&ver=6&"))
        .await
        .is_json(
            200,
            json!("Failed to allocate nodes: no pool for ver=6 arch=x86_64 flavor="),
        );
    // `key[a]` is another name, as in werkzeug: no key.
    get(&legacy, &format!("/Node/get?key[a]={KEY}&ver=9-stream"))
        .await
        .is_json(403, json!({"msg": "Invalid duffy key"}));
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn done_and_fail_send_their_updates_and_map_refusals() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/api/v1/sessions/7"))
        .and(body_json(json!({"active": false})))
        .respond_with(v3(
            200,
            json!({"action": "put", "session": session(7, &[])}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/api/v1/sessions/8"))
        .and(body_json(
            json!({"expires_at": "+43200s", "fail_nodes": true}),
        ))
        .respond_with(v3(
            200,
            json!({"action": "put", "session": session(8, &[])}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let legacy = layer(&server);
    get(&legacy, &format!("/Node/done?key={KEY}&ssid=7"))
        .await
        .is_json(200, json!("Done"));
    get(&legacy, &format!("/Node/fail?key={KEY}&ssid=8"))
        .await
        .is_json(200, json!("Done"));

    let cases: Vec<(ResponseTemplate, u16, Value)> = vec![
        (
            detail(404, "Not Found"),
            403,
            json!({"msg": "Invalid session ID"}),
        ),
        (
            detail(401, "Unauthorized"),
            403,
            json!({"msg": "Invalid duffy key"}),
        ),
        (
            detail(403, "Forbidden"),
            403,
            json!({"msg": "Invalid duffy key"}),
        ),
        (
            detail(422, "session 9 is retired"),
            200,
            json!({"msg": "Session not in Prod"}),
        ),
    ];
    for (template, status, body) in cases {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .and(path("/api/v1/sessions/9"))
            .respond_with(template)
            .mount(&server)
            .await;
        let legacy = layer(&server);
        for endpoint in ["done", "fail"] {
            get(&legacy, &format!("/Node/{endpoint}?key={KEY}&ssid=9"))
                .await
                .is_json(status, body.clone());
        }
    }
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(detail(500, "Internal Server Error"))
        .mount(&server)
        .await;
    get(&layer(&server), &format!("/Node/done?key={KEY}&ssid=9"))
        .await
        .is_text(503, UNAVAILABLE);
}

#[tokio::test]
async fn the_unkeyed_inventory_joins_nodes_and_sessions_anonymously() {
    let server = MockServer::start().await;
    let node = |id: i64, hostname: &str, state: &str, used: i64| {
        json!({"id": id, "hostname": hostname, "ipaddr": "10.0.0.1", "pool": "p", "state": state,
               "used_count": used, "data": {}, "active": true})
    };
    Mock::given(method("GET"))
        .and(path("/api/v1/nodes"))
        .respond_with(v3(
            200,
            json!({"action": "get", "nodes": [node(2, "b.example.test", "deployed", 4), node(1, "a.example.test", "unused", 7)]}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/sessions"))
        .respond_with(v3(
            200,
            json!({"action": "get", "sessions": [session(5, &[(2, "b.example.test")])]}),
        ))
        .mount(&server)
        .await;
    get(&layer(&server), "/Inventory").await.is_json(
        200,
        json!([
            [
                1,
                "a.example.test",
                "10.0.0.1",
                null,
                7,
                "Active",
                null,
                null,
                null,
                null,
                null,
                "p",
                null,
                null
            ],
            [
                2,
                "b.example.test",
                "10.0.0.1",
                null,
                4,
                "Deployed",
                "5",
                null,
                null,
                null,
                null,
                "p",
                null,
                null
            ]
        ]),
    );
    for request in server.received_requests().await.unwrap() {
        assert!(!request.headers.contains_key("authorization"));
    }
}

#[tokio::test]
async fn inventory_refusals() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(detail(401, "Not authenticated"))
        .mount(&server)
        .await;
    let legacy = layer(&server);
    for path in ["/Inventory", "/Inventory?key=nope"] {
        get(&legacy, path)
            .await
            .is_json(403, json!({"msg": "Invalid duffy key"}));
    }
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("garbage"))
        .mount(&server)
        .await;
    get(&layer(&server), "/Inventory")
        .await
        .is_text(503, UNAVAILABLE);
}
