//! The S3 listener: hyper with TCP_NODELAY on every connection (without it
//! each small response on a kept-alive connection waits ~40 ms for a delayed
//! ACK), bounded request heads, and graceful shutdown.

use crate::handlers::OrbitS3;
use crate::host::VirtualHosts;
use crate::identity::{OrbitAccess, OrbitAuth};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use orbit_core::Namespace;
use orbit_tenancy::Directory;
use s3s::service::{S3Service, S3ServiceBuilder};
use std::future::Future;
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

pub struct S3Server {
    service: S3Service,
    audit: crate::audit::S3Audit,
}

/// Counts and times every S3 request (to its response head) by method and
/// status, and hands each response to the audit log.
#[derive(Clone)]
struct Metered(S3Service, crate::audit::S3Audit);

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Metered {
    type Response = <S3Service as hyper::service::Service<http::Request<hyper::body::Incoming>>>::Response;
    type Error = <S3Service as hyper::service::Service<http::Request<hyper::body::Incoming>>>::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        let method = req.method().as_str().to_owned();
        let started = std::time::Instant::now();
        let (mut parts, body) = req.into_parts();
        let mark = crate::audit::AuditMark::default();
        parts.extensions.insert(mark.clone());
        let key = crate::audit::presented_key(&parts);
        let path = parts.uri.path().to_owned();
        let req = http::Request::from_parts(parts, body);
        let fut = hyper::service::Service::call(&self.0, req);
        let audit = self.1.clone();
        Box::pin(async move {
            let resp = fut.await;
            if let Ok(r) = &resp {
                audit.after(&mark, &method, &path, key, r).await;
            }
            let status = match &resp {
                Ok(r) => r.status().as_u16().to_string(),
                Err(_) => "error".to_owned(),
            };
            let labels = [("method", method), ("status", status)];
            metrics::counter!("orbit_s3_requests_total", &labels).increment(1);
            metrics::histogram!("orbit_s3_request_seconds", &labels).record(started.elapsed().as_secs_f64());
            resp
        })
    }
}

impl S3Server {
    pub fn new(ns: Namespace, dir: Directory, config: S3ServerConfig, auditor: orbit_core::Auditor) -> Self {
        let mut builder = S3ServiceBuilder::new(OrbitS3 { ns, region: config.region });
        builder.set_auth(OrbitAuth { dir: dir.clone() });
        builder.set_access(OrbitAccess { dir: dir.clone() });
        builder.set_host(VirtualHosts::new(config.domains));
        Self { service: builder.build(), audit: crate::audit::S3Audit { auditor, dir } }
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
            let conn =
                conn_builder.serve_connection(TokioIo::new(stream), Metered(self.service.clone(), self.audit.clone()));
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
