//! The S3 listener: hyper with TCP_NODELAY on every connection (without it
//! each small response on a kept-alive connection waits ~40 ms for a delayed
//! ACK), bounded request heads, and graceful shutdown.

use crate::fast_read::FastRead;
use crate::handlers::OrbitS3;
use crate::host::VirtualHosts;
use crate::identity::{OrbitAccess, OrbitAuth};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use orbit_core::Namespace;
use orbit_tenancy::Directory;
use s3s::service::{S3Service, S3ServiceBuilder};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;

/// Largest request head (request line plus headers) accepted; S3 itself
/// allows 8 KiB of headers, clients never come close to this.
const MAX_REQUEST_HEAD: usize = 64 * 1024;
/// How long in-flight requests may run on after shutdown is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

#[derive(Clone, Debug)]
pub struct S3ServerConfig {
    /// The region reported to clients (any region is accepted in signatures).
    pub region: String,
    /// Base domains for virtual-host addressing (`bucket.DOMAIN`).
    pub domains: Vec<String>,
}

impl Default for S3ServerConfig {
    fn default() -> Self {
        Self { region: "us-east-1".into(), domains: Vec::new() }
    }
}

#[derive(Clone)]
pub struct S3Server {
    service: S3Service,
    audit: crate::audit::S3Audit,
    fast: Arc<FastRead>,
}

/// Counts and times every S3 request (to its response head) by method and
/// status, and hands each response to the audit log. The metric handles
/// are made once per (method, status), so the hot path neither allocates
/// labels nor hashes them in the registry.
#[derive(Clone)]
struct Metered {
    service: S3Service,
    fast: Arc<FastRead>,
    audit: crate::audit::S3Audit,
    handles: Arc<RwLock<HashMap<(http::Method, u16), RequestMetrics>>>,
}

#[derive(Clone)]
struct RequestMetrics {
    count: metrics::Counter,
    seconds: metrics::Histogram,
}

impl Metered {
    fn new(service: S3Service, fast: Arc<FastRead>, audit: crate::audit::S3Audit) -> Self {
        Self { service, fast, audit, handles: Arc::default() }
    }
}

fn request_metrics(
    handles: &RwLock<HashMap<(http::Method, u16), RequestMetrics>>,
    method: &http::Method,
    status: Option<u16>,
) -> RequestMetrics {
    // Status 0 stands for a connection-level error.
    let key = (method.clone(), status.unwrap_or(0));
    if let Some(m) = handles.read().ok().and_then(|h| h.get(&key).cloned()) {
        return m;
    }
    let labels = [
        ("method", method.as_str().to_owned()),
        ("status", status.map_or_else(|| "error".to_owned(), |s| s.to_string())),
    ];
    let m = RequestMetrics {
        count: metrics::counter!("orbit_s3_requests_total", &labels),
        seconds: metrics::histogram!("orbit_s3_request_seconds", &labels),
    };
    if let Ok(mut h) = handles.write() {
        h.insert(key, m.clone());
    }
    m
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Metered {
    type Response = <S3Service as hyper::service::Service<http::Request<hyper::body::Incoming>>>::Response;
    type Error = <S3Service as hyper::service::Service<http::Request<hyper::body::Incoming>>>::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        let method = req.method().clone();
        let started = std::time::Instant::now();
        let (mut parts, body) = req.into_parts();
        let mark = crate::audit::AuditMark::default();
        parts.extensions.insert(mark.clone());
        let key = crate::audit::presented_key(&parts);
        let path = parts.uri.path().to_owned();
        let service = self.service.clone();
        let fast = self.fast.clone();
        let audit = self.audit.clone();
        let handles = self.handles.clone();
        Box::pin(async move {
            let mut resp = match fast.serve(&parts, &mark).await {
                Some(resp) => Ok(resp),
                None => service.call(http::Request::from_parts(parts, body).map(s3s::Body::from)).await,
            };
            if let Ok(r) = &mut resp {
                crate::request_id::stamp(r, &crate::request_id::new_id());
            }
            if let Ok(r) = &resp {
                audit.after(&mark, method.as_str(), &path, key, r).await;
            }
            let m = request_metrics(&handles, &method, resp.as_ref().ok().map(|r| r.status().as_u16()));
            m.count.increment(1);
            m.seconds.record(started.elapsed().as_secs_f64());
            resp
        })
    }
}

impl S3Server {
    pub fn new(ns: Namespace, dir: Directory, config: S3ServerConfig, auditor: orbit_core::Auditor) -> Self {
        let meter = ns.meter().clone();
        let hosts = VirtualHosts::new(config.domains);
        let fast = Arc::new(FastRead::new(ns.clone(), dir.clone(), hosts.clone()));
        let mut builder = S3ServiceBuilder::new(OrbitS3 { ns, region: config.region });
        builder.set_auth(OrbitAuth { dir: dir.clone() });
        builder.set_access(OrbitAccess { dir: dir.clone(), meter });
        builder.set_host(hosts);
        Self { service: builder.build(), audit: crate::audit::S3Audit { auditor, dir }, fast }
    }

    /// Serve on `threads` threads, each with a single-threaded runtime of its
    /// own accepting from the same listening socket, until `stop` turns true;
    /// then let in-flight requests finish. As nginx's workers: a connection
    /// and everything its requests spawn stay on the thread that accepted it,
    /// so no request is handed between threads (on a shared multi-threaded
    /// runtime, wake-ups across workers cost more CPU than a small GET's own
    /// work). An idle thread is the first to accept, which spreads connections.
    pub async fn serve_on_threads(
        self,
        listener: TcpListener,
        threads: usize,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let listener = listener.into_std()?;
        // Everything that can fail comes first, so no thread serves alone.
        let mut workers = Vec::new();
        for _ in 0..threads.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            workers.push((listener.try_clone()?, runtime));
        }
        let mut done = Vec::new();
        for (i, (socket, runtime)) in workers.into_iter().enumerate() {
            let server = self.clone();
            let mut stop = stop.clone();
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new().name(format!("orbit-s3-{i}")).spawn(move || {
                let served = runtime.block_on(async move {
                    let listener = TcpListener::from_std(socket)?;
                    server
                        .serve(listener, async move {
                            let _ = stop.wait_for(|v| *v).await;
                        })
                        .await
                });
                // Tasks the requests left behind (read-ahead, cache fills)
                // end with the runtime.
                drop(runtime);
                let _ = tx.send(served);
            })?;
            done.push(rx);
        }
        let mut result = Ok(());
        for rx in done {
            if let Ok(Err(e)) = rx.await {
                result = Err(e);
            }
        }
        result
    }

    /// Serve until `shutdown` completes, then let in-flight requests finish.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let mut conn_builder = ConnBuilder::new(TokioExecutor::new());
        conn_builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .max_buf_size(MAX_REQUEST_HEAD);
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let metered = Metered::new(self.service.clone(), self.fast.clone(), self.audit.clone());
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                res = listener.accept() => match res {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = shutdown.as_mut() => break,
            };
            let _ = stream.set_nodelay(true);
            let conn = conn_builder.serve_connection(TokioIo::new(stream), metered.clone());
            let conn = graceful.watch(conn.into_owned());
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
        }
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!("shutdown grace period over; closing connections"),
        }
        Ok(())
    }
}
