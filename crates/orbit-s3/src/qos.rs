//! QoS at the S3 edge: which limit an operation falls under, and pacing of
//! object bodies under the bandwidth limits. The limits and limiters live in
//! `orbit_tenancy::Qos`; the request-rate check runs in `identity.rs`, right
//! after the caller is known.

use bytes::Bytes;
use futures::StreamExt;
use orbit_backend::ByteStream;
use orbit_tenancy::{BytePacer, Direction};
use std::time::Instant;

/// Reads (GET, HEAD, listings) and writes (everything else) have limits of
/// their own. s3s names operations as S3 does (`GetObject`, `ListParts`...).
pub(crate) fn direction(op: &str) -> Direction {
    if op.starts_with("Get") || op.starts_with("Head") || op.starts_with("List") {
        Direction::Read
    } else {
        Direction::Write
    }
}

/// A body paced under the request's bandwidth limits (those of its tenant
/// and bucket, found when the request was admitted), or the body itself when
/// none apply. Pacing delays pieces of the body instead of refusing the
/// request, so a large object slows down to the rate and still completes.
pub(crate) fn paced(extensions: &http::Extensions, body: ByteStream) -> ByteStream {
    match extensions.get::<BytePacer>() {
        Some(p) => paced_by(p, body),
        None => body,
    }
}

/// `body` paced by `pacer`, when it has limits to apply.
pub(crate) fn paced_by(pacer: &BytePacer, body: ByteStream) -> ByteStream {
    if pacer.is_paced() { pace(body, pacer.clone()) } else { body }
}

fn pace(body: ByteStream, pacer: BytePacer) -> ByteStream {
    let direction = pacer.direction().as_str();
    futures::stream::unfold((body, pacer, Bytes::new()), move |(mut body, mut pacer, mut pending)| async move {
        if pending.is_empty() {
            match body.next().await? {
                Ok(chunk) => pending = chunk,
                Err(e) => return Some((Err(e), (body, pacer, pending))),
            }
        }
        let piece = pending.split_to(pending.len().min(pacer.max_piece()));
        let mut slept: Option<Instant> = None;
        while let Some(wait) = pacer.reserve(piece.len()) {
            slept.get_or_insert_with(Instant::now);
            tokio::time::sleep(wait).await;
        }
        if let Some(since) = slept {
            metrics::histogram!("orbit_qos_pace_delay_seconds", "direction" => direction)
                .record(since.elapsed().as_secs_f64());
        }
        Some((Ok(piece), (body, pacer, pending)))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_split_into_reads_and_writes() {
        for op in ["GetObject", "HeadObject", "HeadBucket", "ListObjectsV2", "ListBuckets", "ListParts"] {
            assert_eq!(direction(op), Direction::Read, "{op}");
        }
        for op in ["PutObject", "UploadPart", "CopyObject", "DeleteObjects", "CreateBucket", "CompleteMultipartUpload"]
        {
            assert_eq!(direction(op), Direction::Write, "{op}");
        }
    }
}
