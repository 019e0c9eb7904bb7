//! The floor under Orbit's hot GET: hyper on the threading model Orbit's S3
//! listener uses (one current-thread tokio runtime per thread, all accepting
//! from one socket), answering every request with the same 4 KiB body and
//! S3-like response headers, with nothing else on the path (no S3 parsing,
//! no signature, no metadata, no cache). What Orbit spends above this, per
//! request, is its own and s3s's.
//!
//!     http-floor PORT [THREADS]

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;

static BODY: [u8; 4096] = [b'x'; 4096];

async fn answer(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::from_static(&BODY)));
    let h = resp.headers_mut();
    h.insert("content-type", "application/octet-stream".parse().expect("valid"));
    h.insert("etag", "\"0123456789abcdef0123456789abcdef\"".parse().expect("valid"));
    h.insert("last-modified", "Mon, 23 Nov 2026 18:00:00 GMT".parse().expect("valid"));
    h.insert("accept-ranges", "bytes".parse().expect("valid"));
    h.insert("x-amz-request-id", "0193A1B2C3D4E5F60718293A4B5C6D7E".parse().expect("valid"));
    Ok(resp)
}

async fn serve(socket: std::net::TcpListener) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(socket)?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = || std::io::Error::other("usage: http-floor PORT [THREADS]");
    let port: u16 = args.next().and_then(|p| p.parse().ok()).ok_or_else(usage)?;
    let threads: usize = match args.next() {
        Some(t) => t.parse().map_err(|_| usage())?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    let mut workers = Vec::new();
    for _ in 0..threads.max(1) {
        let socket = listener.try_clone()?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        workers.push(std::thread::spawn(move || {
            runtime.block_on(serve(socket))
        }));
    }
    for w in workers {
        w.join().map_err(|_| std::io::Error::other("a worker panicked"))??;
    }
    Ok(())
}
