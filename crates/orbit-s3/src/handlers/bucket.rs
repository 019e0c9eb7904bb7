use super::OrbitS3;
use crate::convert::ts;
use crate::error::IntoS3;
use crate::identity::caller;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

pub(super) async fn list_buckets(
    s: &OrbitS3,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let c = caller(&req)?;
    let prefix = req.input.prefix.clone().unwrap_or_default();
    let buckets =
        s.ns.list_buckets(&c)
            .await
            .s3()?
            .into_iter()
            .filter(|b| b.name.as_str().starts_with(&prefix))
            .map(|b| Bucket {
                name: Some(b.name.to_string()),
                creation_date: Some(ts(b.created_ms)),
                bucket_region: Some(s.region.clone()),
            })
            .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(Owner { display_name: Some(c.tenant.to_string()), id: Some(c.tenant_id.to_string()) }),
        prefix: req.input.prefix,
        ..Default::default()
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
