//! Figures for the peer channel on loopback: round trips of signed
//! Ping/Pong envelopes one at a time, then many in flight on the one
//! HTTP/2 connection. Prints figures; asserts nothing.
//!
//! `cargo run -p orbit-peer --example peer_rtt [pings] [in-flight]`

use orbit_peer::{LivenessHandler, PeerClient, PeerConfig, PeerServer};
use orbit_site::{Message, RequestId, SiteId};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "an-example-pair-secret";
const TIMEOUT: Duration = Duration::from_secs(10);

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let pings: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let in_flight: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server_config = PeerConfig::new(SiteId::new("eu")).with_peer(SiteId::new("us"), "http://unused", SECRET);
    tokio::spawn(PeerServer::new(&server_config, Arc::new(LivenessHandler)).serve(listener, std::future::pending()));
    let client_config = PeerConfig::new(SiteId::new("us")).with_peer(SiteId::new("eu"), url, SECRET);
    let client = Arc::new(PeerClient::new(&client_config).expect("client"));
    let eu = SiteId::new("eu");

    // Warm the connection.
    client.send(&eu, Message::Ping { req: RequestId(0) }, TIMEOUT).await.expect("warm-up ping");

    let mut rtts = Vec::with_capacity(pings as usize);
    let started = Instant::now();
    for i in 0..pings {
        let t = Instant::now();
        client.send(&eu, Message::Ping { req: RequestId(i + 1) }, TIMEOUT).await.expect("ping");
        rtts.push(t.elapsed());
    }
    let serial = started.elapsed();
    rtts.sort();
    println!(
        "one at a time: {pings} pings in {:.2} s = {:.0}/s; round trip p50 {:.0} us, p99 {:.0} us, max {:.0} us",
        serial.as_secs_f64(),
        pings as f64 / serial.as_secs_f64(),
        percentile(&rtts, 0.5),
        percentile(&rtts, 0.99),
        percentile(&rtts, 1.0)
    );

    let started = Instant::now();
    let tasks: Vec<_> = (0..in_flight)
        .map(|w| {
            let client = client.clone();
            let eu = eu.clone();
            tokio::spawn(async move {
                for i in 0..pings / in_flight {
                    let req = RequestId(1_000_000 * (w + 1) + i);
                    client.send(&eu, Message::Ping { req }, TIMEOUT).await.expect("ping");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let total = (pings / in_flight) * in_flight;
    let took = started.elapsed();
    println!(
        "{in_flight} in flight: {total} pings in {:.2} s = {:.0}/s",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64()
    );
}
