//! The peer channel end to end on loopback: a liveness round trip, and each
//! kind of bad request refused before it reaches the handler.

use orbit_peer::{ENVELOPE_PATH, LivenessHandler, PeerClient, PeerConfig, PeerError, PeerServer};
use orbit_site::{LeaseId, Message, PROTOCOL_VERSION, Refusal, RequestId, SiteId};
use orbit_types::signing;
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

/// A site `eu` serving on loopback, with `us` as its peer; returns the URL.
async fn serve_eu(secret: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = PeerConfig::new(SiteId::new("eu")).with_peer(SiteId::new("us"), "http://unused", secret);
    let server = PeerServer::new(&config, Arc::new(LivenessHandler));
    tokio::spawn(server.serve(listener, std::future::pending()));
    url
}

fn client(from: &str, url: &str, secret: &str) -> PeerClient {
    PeerClient::new(&PeerConfig::new(SiteId::new(from)).with_peer(SiteId::new("eu"), url, secret)).unwrap()
}

#[tokio::test]
async fn a_ping_gets_a_signed_pong_over_one_reused_connection() {
    let url = serve_eu("pair-secret").await;
    let c = client("us", &url, "pair-secret");
    for i in 0..3 {
        let env = c.send(&SiteId::new("eu"), Message::Ping { req: RequestId(i) }, T).await.unwrap().unwrap();
        assert_eq!(env.from, SiteId::new("eu"));
        assert_eq!(env.version, PROTOCOL_VERSION);
        assert_eq!(env.message, Message::Pong { req: RequestId(i) });
    }
}

#[tokio::test]
async fn a_message_the_handler_does_not_handle_is_refused_typed() {
    let url = serve_eu("pair-secret").await;
    let c = client("us", &url, "pair-secret");
    let msg = Message::ReleaseLease { lease: LeaseId { epoch: 1, seq: 1 } };
    match c.send(&SiteId::new("eu"), msg, T).await {
        Err(PeerError::Refused(Refusal::NotImplemented)) => {}
        other => panic!("expected a NotImplemented refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn wrong_secret_and_unknown_site_are_rejected() {
    let url = serve_eu("pair-secret").await;
    let wrong = client("us", &url, "guess");
    match wrong.send(&SiteId::new("eu"), Message::Ping { req: RequestId(1) }, T).await {
        Err(PeerError::Rejected { status: 401, .. }) => {}
        other => panic!("expected 401, got {other:?}"),
    }
    let stranger = client("mars", &url, "pair-secret");
    match stranger.send(&SiteId::new("eu"), Message::Ping { req: RequestId(1) }, T).await {
        Err(e @ PeerError::Rejected { status: 401, .. }) => assert!(!e.retryable()),
        other => panic!("expected 401, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_peer_is_a_retryable_error_within_the_timeout() {
    // A port nothing listens on (bound then dropped).
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let c = client("us", &format!("http://{addr}"), "pair-secret");
    let e = c.send(&SiteId::new("eu"), Message::Ping { req: RequestId(1) }, T).await.unwrap_err();
    assert!(matches!(e, PeerError::Unreachable(_)) && e.retryable(), "{e:?}");
}

/// Raw requests, signed by hand: what a client of ours would never send.
async fn raw(url: &str, body: &str, authz: Option<String>) -> (u16, String) {
    let http = reqwest::Client::new();
    let mut req = http.post(format!("{url}{ENVELOPE_PATH}")).body(body.to_owned());
    if let Some(a) = authz {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn unsigned_replayed_and_other_version_requests_are_refused() {
    let url = serve_eu("pair-secret").await;
    let now = orbit_types::now_ms() / 1000;
    let ping = r#"{"version":1,"from":"us","message":{"type":"Ping","req":1}}"#;
    let sign = |body: &str, ts: i64| {
        Some(signing::authorization_header("us", "pair-secret", "POST", ENVELOPE_PATH, ts, body.as_bytes()))
    };

    assert_eq!(raw(&url, ping, None).await.0, 401, "unsigned");
    assert_eq!(raw(&url, ping, sign(ping, now - 3600)).await.0, 401, "replayed an hour later");
    assert_eq!(raw(&url, ping, sign(ping, now)).await.0, 200, "the same, fresh");

    let newer = r#"{"version":2,"from":"us","message":{"type":"Teleport","req":1}}"#;
    let (status, body) = raw(&url, newer, sign(newer, now)).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("UnsupportedVersion") && body.contains("\"supported\":1"), "{body}");

    let spoofed = r#"{"version":1,"from":"asia","message":{"type":"Ping","req":1}}"#;
    assert_eq!(raw(&url, spoofed, sign(spoofed, now)).await.0, 401, "sender other than the signer");

    let garbage = "not json";
    assert_eq!(raw(&url, garbage, sign(garbage, now)).await.0, 400);
}
