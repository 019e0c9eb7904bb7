//! Reading object bytes: the object's segments mapped onto backend blobs,
//! straight from the backend or through the chunk cache.

use super::Namespace;
use crate::records::ObjectRecord;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use orbit_backend::{Backend, BackendError, ByteStream};
use orbit_cache::{ChunkCache, ChunkPolicy};
use orbit_types::{Error, Result, TenantId};
use std::ops::Range;
use std::sync::Arc;

/// Where a client read's cache hits are metered (none for prefetch and copies).
#[derive(Clone)]
pub(crate) struct HitTap {
    pub meter: crate::usage::meter::Meter,
    pub tenant: TenantId,
    pub bucket: Arc<str>,
}

/// Chunks fetched ahead of the one being sent, for streaming readers.
const READ_AHEAD: usize = 2;
/// A cold first chunk at least this long streams through to the client as
/// the backend sends it; shorter ones are fetched whole (single flight).
const STREAM_THROUGH_MIN: u64 = 512 * 1024;
/// A cold read streams through up to this many consecutive chunks of its
/// blob in one backend request (an 8 MiB shard at 4 MiB chunks: one request,
/// as a direct reader makes, instead of one per chunk, each a round trip on
/// a far link); chunks after them are read ahead one request each.
const STREAM_THROUGH_CHUNKS: usize = 4;

/// The part of one blob that a read needs.
struct Piece {
    backend_name: String,
    backend: Arc<dyn Backend>,
    blob: String,
    blob_size: u64,
    range: Range<u64>,
    /// For a mapped object: the ETag every read of it must still match.
    etag: Option<String>,
}

fn backend_error(blob: &str, e: BackendError) -> Error {
    match e {
        // Only conditional (mapped) reads see this; the caller starts over.
        BackendError::Changed(_) => Error::PreconditionFailed,
        BackendError::NotFound(_) => Error::Internal(format!("object data missing from the backend: {blob}")),
        other => Error::Unavailable(other.to_string()),
    }
}

/// Read a whole byte range of a blob into memory, insisting on its length.
async fn read_exact(
    backend: Arc<dyn Backend>,
    blob: String,
    range: Range<u64>,
    etag: Option<String>,
) -> std::io::Result<Bytes> {
    let want = (range.end - range.start) as usize;
    let stream = match &etag {
        Some(e) => backend.get_if(&blob, Some(range), e).await,
        None => backend.get(&blob, Some(range)).await,
    };
    let mut stream = stream.map_err(std::io::Error::other)?;
    let mut buf = BytesMut::with_capacity(want);
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
    }
    if buf.len() != want {
        return Err(std::io::Error::other(format!("backend returned {} of {want} bytes of {blob}", buf.len())));
    }
    Ok(buf.freeze())
}

impl Namespace {
    fn pieces(&self, rec: &ObjectRecord, span: &Range<u64>) -> Result<Vec<Piece>> {
        let mut pieces = Vec::new();
        let mut offset = 0u64;
        for seg in &rec.segments {
            let seg_range = offset..offset + seg.size;
            offset += seg.size;
            let start = span.start.max(seg_range.start);
            let end = span.end.min(seg_range.end);
            if start < end {
                pieces.push(Piece {
                    backend_name: seg.backend.clone(),
                    backend: self.backend(&seg.backend)?.clone(),
                    blob: seg.blob.clone(),
                    blob_size: seg.size,
                    range: start - seg_range.start..end - seg_range.start,
                    etag: None,
                });
            }
        }
        Ok(pieces)
    }

    /// Stream bytes `span` of the object across its segments. The first
    /// chunk is read before returning, so a failing backend is an error
    /// status, not a truncated body.
    pub(crate) async fn stream_range(
        &self,
        rec: &ObjectRecord,
        span: Range<u64>,
        owner: TenantId,
        policy: ChunkPolicy,
        tap: Option<HitTap>,
    ) -> Result<ByteStream> {
        let pieces = self.pieces(rec, &span)?;
        match self.cache_for(owner) {
            Some(cache) => cached_stream(cache, pieces, policy, tap).await,
            None => direct_stream(pieces).await,
        }
    }

    /// Stream bytes `span` of a mapped object, as the backend described it
    /// in `meta`: chunks are cached under its ETag (and version) and fetched
    /// only while the object still has that ETag. A changed object is
    /// `PreconditionFailed` here, for the caller to start over.
    pub(crate) async fn stream_mapped(
        &self,
        owner: TenantId,
        policy: ChunkPolicy,
        backend_name: &str,
        meta: &orbit_backend::BlobMeta,
        span: Range<u64>,
        tap: Option<HitTap>,
    ) -> Result<ByteStream> {
        if span.is_empty() {
            return Ok(futures::stream::empty().boxed());
        }
        let etag = meta
            .etag
            .clone()
            .ok_or_else(|| Error::Unavailable(format!("backend `{backend_name}` gave no ETag for {}", meta.path)))?;
        let piece = Piece {
            backend_name: backend_name.to_owned(),
            backend: self.backend(backend_name)?.clone(),
            blob: meta.path.clone(),
            blob_size: meta.size,
            range: span,
            etag: Some(etag),
        };
        match self.cache_for(owner) {
            Some(cache) => cached_stream(cache, vec![piece], policy, tap).await,
            None => direct_stream(vec![piece]).await,
        }
    }
}

async fn direct_stream(pieces: Vec<Piece>) -> Result<ByteStream> {
    let mut pieces = pieces.into_iter();
    let Some(p) = pieces.next() else { return Ok(futures::stream::empty().boxed()) };
    let first = match &p.etag {
        Some(e) => p.backend.get_if(&p.blob, Some(p.range), e).await,
        None => p.backend.get(&p.blob, Some(p.range)).await,
    };
    let first = first.map_err(|e| match e {
        // A mapped object deleted since its HEAD: the caller starts over.
        BackendError::NotFound(_) if p.etag.is_some() => Error::PreconditionFailed,
        e => backend_error(&p.blob, e),
    })?;
    let rest = futures::stream::iter(pieces)
        .then(|p| async move { p.backend.get(&p.blob, Some(p.range)).await.map_err(std::io::Error::other) })
        .try_flatten();
    Ok(first.chain(rest).boxed())
}

/// One chunk a read needs, and the part of it to send.
struct ChunkRead {
    backend: Arc<dyn Backend>,
    cache_blob: String,
    blob: String,
    index: u64,
    chunk: Range<u64>,
    slice: Range<usize>,
    etag: Option<String>,
}

async fn read_chunk(
    cache: ChunkCache,
    policy: ChunkPolicy,
    c: ChunkRead,
    tap: Option<HitTap>,
) -> std::io::Result<Bytes> {
    let ChunkRead { backend, cache_blob, blob, index, chunk, slice, etag } = c;
    // A chunk this read did not fetch itself was served from the cache (a
    // read that joined another's fetch of the same chunk counts too).
    let mut fetched = false;
    let fetched_flag = &mut fetched;
    let data = cache
        .get_or_fetch_with(&cache_blob, index, policy, move || {
            *fetched_flag = true;
            read_exact(backend, blob, chunk, etag)
        })
        .await?;
    if data.len() < slice.end {
        return Err(std::io::Error::other("a cached chunk is shorter than its range"));
    }
    if !fetched && let Some(t) = tap {
        t.meter.cache_hit(t.tenant, &t.bucket, (slice.end - slice.start) as u64);
    }
    Ok(data.slice(slice))
}

async fn cached_stream(
    cache: ChunkCache,
    pieces: Vec<Piece>,
    policy: ChunkPolicy,
    tap: Option<HitTap>,
) -> Result<ByteStream> {
    let size = cache.chunk_size();
    let mut reads = Vec::new();
    for p in pieces {
        // A mapped object's chunks are keyed by its ETag too: a changed object is a different blob.
        let cache_blob = match &p.etag {
            Some(e) => format!("{}/{}\0{e}", p.backend_name, p.blob),
            None => format!("{}/{}", p.backend_name, p.blob),
        };
        for index in p.range.start / size..p.range.end.div_ceil(size) {
            let chunk = index * size..((index + 1) * size).min(p.blob_size);
            let from = p.range.start.max(chunk.start) - chunk.start;
            let to = p.range.end.min(chunk.end) - chunk.start;
            reads.push(ChunkRead {
                backend: p.backend.clone(),
                cache_blob: cache_blob.clone(),
                blob: p.blob.clone(),
                index,
                chunk,
                slice: from as usize..to as usize,
                etag: p.etag.clone(),
            });
        }
    }
    let Some(blob) = reads.first().map(|r| r.blob.clone()) else { return Ok(futures::stream::empty().boxed()) };
    let conditional = reads.first().is_some_and(|r| r.etag.is_some());
    let first_error = |e: std::io::Error| {
        let cause = e.get_ref().and_then(|i| i.downcast_ref::<BackendError>());
        let missing = cause.is_some_and(|b| matches!(b, BackendError::NotFound(_)));
        // A mapped object changed or vanished since its HEAD: the caller starts over.
        if conditional && (missing || cause.is_some_and(|b| matches!(b, BackendError::Changed(_)))) {
            Error::PreconditionFailed
        } else if missing {
            Error::Internal(format!("object data missing from the backend: {blob}"))
        } else {
            Error::Unavailable(e.to_string())
        }
    };
    let mut reads = std::collections::VecDeque::from(reads);
    let first = reads.pop_front().expect("at least one read");
    let first_stream = if first.chunk.end - first.chunk.start >= STREAM_THROUGH_MIN {
        match cache.peek(&first.cache_blob, first.index, policy).await {
            Some(data) if data.len() >= first.slice.end => {
                if let Some(t) = &tap {
                    t.meter.cache_hit(t.tenant, &t.bucket, (first.slice.end - first.slice.start) as u64);
                }
                futures::stream::once(futures::future::ready(Ok(data.slice(first.slice)))).boxed()
            }
            // Cold: the first byte after one backend round trip, not after a
            // whole chunk, and the next chunks of the blob in the same request.
            _ => {
                let mut span = vec![first];
                while span.len() < STREAM_THROUGH_CHUNKS
                    && let Some(next) = reads.front()
                    && span.last().is_some_and(|l| next.cache_blob == l.cache_blob && next.index == l.index + 1)
                {
                    span.extend(reads.pop_front());
                }
                stream_through(cache.clone(), policy, span).await.map_err(first_error)?
            }
        }
    } else {
        let only = read_chunk(cache.clone(), policy, first, tap.clone()).await.map_err(first_error)?;
        futures::stream::once(futures::future::ready(Ok(only))).boxed()
    };
    let rest: Vec<ChunkRead> = reads.into();
    if rest.is_empty() {
        return Ok(first_stream);
    }
    // The rest is read ahead by a task of its own, so it is under way while the
    // first chunk is still being sent; the channel bounds how far it runs ahead,
    // and a client that goes away closes it, which stops the task.
    let (mut tx, rx) = futures::channel::mpsc::channel(READ_AHEAD);
    tokio::spawn(async move {
        let mut chunks = futures::stream::iter(rest)
            .map(move |r| read_chunk(cache.clone(), policy, r, tap.clone()))
            .buffered(READ_AHEAD);
        while let Some(chunk) = chunks.next().await {
            let failed = chunk.is_err();
            if futures::SinkExt::send(&mut tx, chunk).await.is_err() || failed {
                break;
            }
        }
    });
    Ok(first_stream.chain(rx).boxed())
}

/// The first chunks of a cold read (consecutive chunks of one blob), in one
/// backend request: their bytes go to the client as the backend sends them,
/// and each chunk into the cache once complete (the rest of the request is
/// still read for the cache when the client's range ends earlier). Unlike
/// `read_chunk`, concurrent readers of the same cold chunks each fetch them.
async fn stream_through(cache: ChunkCache, policy: ChunkPolicy, span: Vec<ChunkRead>) -> std::io::Result<ByteStream> {
    let (Some(first), Some(last)) = (span.first(), span.last()) else {
        return Ok(futures::stream::empty().boxed());
    };
    let range = first.chunk.start..last.chunk.end;
    // The client's bytes, as offsets into the fetched range.
    let wanted = first.slice.start..(last.chunk.start - range.start) as usize + last.slice.end;
    let upstream = match &first.etag {
        Some(e) => first.backend.get_if(&first.blob, Some(range.clone()), e).await,
        None => first.backend.get(&first.blob, Some(range.clone())).await,
    }
    .map_err(std::io::Error::other)?;
    let fill = Fill {
        upstream,
        received: 0,
        buf: BytesMut::with_capacity((first.chunk.end - first.chunk.start) as usize),
        chunks: span.iter().map(|r| (r.index, (r.chunk.end - r.chunk.start) as usize)).collect(),
        cache,
        cache_blob: first.cache_blob.clone(),
        blob: first.blob.clone(),
        policy,
        want: (range.end - range.start) as usize,
    };
    Ok(futures::stream::unfold(Some((fill, wanted)), |state| async move {
        let (mut fill, wanted) = state?;
        loop {
            match fill.upstream.next().await {
                Some(Ok(piece)) => {
                    let start = fill.received;
                    fill.take(&piece).await;
                    // The part of this piece inside the client's range, if any.
                    let from = wanted.start.max(start);
                    let to = wanted.end.min(fill.received);
                    if from < to {
                        let out = piece.slice(from - start..to - start);
                        if to == wanted.end {
                            // The client has all it asked for: fill the cache without it.
                            tokio::spawn(fill.finish());
                            return Some((Ok(out), None));
                        }
                        return Some((Ok(out), Some((fill, wanted))));
                    }
                }
                Some(Err(e)) => return Some((Err(e), None)),
                None => {
                    let e = format!("backend returned {} of {} bytes of {}", fill.received, fill.want, fill.blob);
                    return Some((Err(std::io::Error::other(e)), None));
                }
            }
        }
    })
    .boxed())
}

/// Chunks being streamed through, and what is needed to cache them.
struct Fill {
    upstream: ByteStream,
    /// Bytes received so far of the whole request.
    received: usize,
    /// The chunk being received.
    buf: BytesMut,
    /// (index, length) of the chunks still to complete, in order.
    chunks: std::collections::VecDeque<(u64, usize)>,
    cache: ChunkCache,
    cache_blob: String,
    blob: String,
    policy: ChunkPolicy,
    /// Bytes of the whole request.
    want: usize,
}

impl Fill {
    /// Add received bytes, caching each chunk as it completes.
    async fn take(&mut self, mut piece: &[u8]) {
        self.received += piece.len();
        while !piece.is_empty() {
            let Some(&(index, len)) = self.chunks.front() else { return };
            let n = (len - self.buf.len()).min(piece.len());
            self.buf.extend_from_slice(&piece[..n]);
            piece = &piece[n..];
            if self.buf.len() == len {
                self.chunks.pop_front();
                let next = self.chunks.front().map_or(0, |c| c.1);
                let data = std::mem::replace(&mut self.buf, BytesMut::with_capacity(next)).freeze();
                self.cache.fill(&self.cache_blob, index, self.policy, data).await;
            }
        }
    }

    /// Read the rest of the request and cache the chunks that arrive whole.
    async fn finish(mut self) {
        while let Some(piece) = self.upstream.next().await {
            match piece {
                Ok(p) => self.take(&p).await,
                Err(_) => return,
            }
        }
    }
}

/// Cuts a blob being written into cache chunks as its bytes stream past.
/// The blob is new and never changes, so caching before the commit is safe:
/// a write that fails leaves chunks nobody will ask for.
pub(crate) struct Ingest {
    cache: ChunkCache,
    cache_blob: String,
    buf: BytesMut,
    index: u64,
}

impl Ingest {
    pub(crate) fn new(cache: ChunkCache, cache_blob: String) -> Self {
        Self { cache, cache_blob, buf: BytesMut::new(), index: 0 }
    }

    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        let size = self.cache.chunk_size() as usize;
        while !data.is_empty() {
            let take = (size - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == size {
                self.cache.insert(&self.cache_blob, self.index, self.buf.split().freeze());
                self.index += 1;
            }
        }
    }
}

impl Drop for Ingest {
    /// The last, partial chunk: complete once the stream is over.
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.cache.insert(&self.cache_blob, self.index, self.buf.split().freeze());
        }
    }
}
