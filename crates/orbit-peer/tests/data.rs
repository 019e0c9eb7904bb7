//! The data routes on loopback: a streamed body and a signed answer, and
//! requests from anything but a configured peer refused before the handler
//! sees a byte.

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use orbit_peer::{
    DATA_PATH_PREFIX, DataAnswer, DataBody, DataHandler, LivenessHandler, PeerClient, PeerConfig, PeerError, PeerServer,
};
use orbit_site::SiteId;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Echoes the operation, the description and the body's length and bytes reversed.
#[derive(Default)]
struct Echo {
    calls: AtomicUsize,
}

#[async_trait]
impl DataHandler for Echo {
    async fn handle(&self, from: SiteId, op: String, description: Bytes, body: DataBody) -> DataAnswer {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let parts: Vec<Bytes> = body.try_collect().await.unwrap_or_default();
        let mut all = parts.concat();
        all.reverse();
        let desc = format!("{}|{op}|{}|{}", from.0, String::from_utf8_lossy(&description), all.len());
        DataAnswer { status: 200, description: desc.into_bytes(), body: Bytes::from(all) }
    }
}

async fn serve_eu(handler: Arc<Echo>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = PeerConfig::new(SiteId::new("eu")).with_peer(SiteId::new("us"), "http://unused", "pair-secret");
    let server = PeerServer::new(&config, Arc::new(LivenessHandler)).with_data(handler);
    tokio::spawn(server.serve(listener, std::future::pending()));
    url
}

fn client(from: &str, url: &str, secret: &str) -> PeerClient {
    PeerClient::new(&PeerConfig::new(SiteId::new(from)).with_peer(SiteId::new("eu"), url, secret)).unwrap()
}

#[tokio::test]
async fn a_streamed_body_reaches_the_handler_and_the_signed_answer_comes_back() {
    let echo = Arc::new(Echo::default());
    let url = serve_eu(echo.clone()).await;
    let c = client("us", &url, "pair-secret");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let pieces: Vec<std::io::Result<Bytes>> = data.chunks(100_000).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let body = futures::stream::iter(pieces).boxed();
    let a = c.data(&SiteId::new("eu"), "put", br#"{"key":"k"}"#.to_vec(), Some(body), None).await.unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(String::from_utf8(a.description).unwrap(), format!(r#"us|put|{{"key":"k"}}|{}"#, data.len()));
    let mut back = a.body.to_vec();
    back.reverse();
    assert_eq!(back, data);
    // No body at all is an empty one.
    let a = c.data(&SiteId::new("eu"), "record", b"{}".to_vec(), None, Some(Duration::from_secs(5))).await.unwrap();
    assert_eq!(String::from_utf8(a.description).unwrap(), "us|record|{}|0");
}

#[tokio::test]
async fn strangers_and_wrong_secrets_are_refused_before_the_handler() {
    let echo = Arc::new(Echo::default());
    let url = serve_eu(echo.clone()).await;
    for (from, secret) in [("us", "guess"), ("mars", "pair-secret")] {
        let c = client(from, &url, secret);
        let body = futures::stream::iter(vec![Ok(Bytes::from_static(b"payload"))]).boxed();
        match c.data(&SiteId::new("eu"), "put", b"{}".to_vec(), Some(body), None).await {
            Err(PeerError::Rejected { status: 401, .. }) => {}
            other => panic!("{from}: expected 401, got {other:?}"),
        }
    }
    // Unsigned, and signed over another description than the one sent.
    let http = reqwest::Client::new();
    let path = format!("{DATA_PATH_PREFIX}put");
    let resp = http.post(format!("{url}{path}")).body("x").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let authz = orbit_types::signing::authorization_header(
        "us",
        "pair-secret",
        "POST",
        &path,
        orbit_types::now_ms() / 1000,
        b"{\"key\":\"a\"}",
    );
    let resp = http
        .post(format!("{url}{path}"))
        .header("authorization", authz)
        .header("x-orbit-peer-request", "eyJrZXkiOiJiIn0") // {"key":"b"}
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401, "the description is what the signature covers");
    assert_eq!(echo.calls.load(Ordering::SeqCst), 0, "the handler never ran");
}
