use super::OrbitS3;
use crate::convert::ts;
use crate::error::IntoS3;
use crate::identity::caller;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// The most buckets one ListBuckets page may be asked for (`max-buckets`), as in S3.
const MAX_BUCKETS_PER_PAGE: i32 = 10_000;

pub(super) async fn list_buckets(
    s: &OrbitS3,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let c = caller(&req)?;
    let i = req.input;
    let prefix = i.prefix.clone().unwrap_or_default();
    let max = match i.max_buckets {
        None => None,
        Some(n) if (1..=MAX_BUCKETS_PER_PAGE).contains(&n) => Some(n as usize),
        Some(_) => return Err(s3_error!(InvalidArgument, "max-buckets must be between 1 and 10000")),
    };
    // The token is the last name of the previous page, opaque to clients as in ListObjectsV2.
    let after = match &i.continuation_token {
        Some(t) => Some(
            B64.decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))?,
        ),
        None => None,
    };
    let mut all: Vec<_> = s.ns.list_buckets(&c).await.s3()?;
    all.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    let mut matching = all
        .into_iter()
        .filter(|b| b.name.as_str().starts_with(&prefix))
        .filter(|b| after.as_deref().is_none_or(|a| b.name.as_str() > a))
        .peekable();
    let mut buckets = Vec::new();
    while let Some(b) = matching.next_if(|_| max.is_none_or(|m| buckets.len() < m)) {
        buckets.push(Bucket {
            name: Some(b.name.to_string()),
            creation_date: Some(ts(b.created_ms)),
            bucket_region: Some(s.region.clone()),
        });
    }
    let continuation_token = match (matching.peek(), buckets.last()) {
        (Some(_), Some(last)) => last.name.as_ref().map(|n| B64.encode(n)),
        _ => None,
    };
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(Owner { display_name: Some(c.tenant.to_string()), id: Some(c.tenant_id.to_string()) }),
        prefix: i.prefix,
        continuation_token,
    }))
}

pub(super) async fn create_bucket(
    s: &OrbitS3,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let c = caller(&req)?;
    s.ns.create_bucket(&c, &req.input.bucket).await.s3()?;
    Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{}", req.input.bucket)) }))
}

pub(super) async fn head_bucket(
    s: &OrbitS3,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    let c = caller(&req)?;
    s.ns.head_bucket(&c, &req.input.bucket).await.s3()?;
    Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(s.region.clone()), ..Default::default() }))
}

pub(super) async fn delete_bucket(
    s: &OrbitS3,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let c = caller(&req)?;
    s.ns.delete_bucket(&c, &req.input.bucket).await.s3()?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub(super) async fn get_bucket_location(
    s: &OrbitS3,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let c = caller(&req)?;
    s.ns.head_bucket(&c, &req.input.bucket).await.s3()?;
    // us-east-1 is reported as an empty constraint, as S3 does.
    let constraint = (s.region != "us-east-1").then(|| BucketLocationConstraint::from(s.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput { location_constraint: constraint }))
}

pub(super) async fn get_bucket_versioning(
    s: &OrbitS3,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let c = caller(&req)?;
    s.ns.head_bucket(&c, &req.input.bucket).await.s3()?;
    // Buckets are unversioned: no status at all, as for a bucket that never had versioning.
    Ok(S3Response::new(GetBucketVersioningOutput::default()))
}
