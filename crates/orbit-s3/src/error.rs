//! The single mapping from Orbit's semantic errors to S3 error codes.
//! Internal details are logged here and never sent to a client.

use orbit_types::{Error, Resource};
use s3s::{S3Error, S3ErrorCode};

pub(crate) fn s3_error(e: Error) -> S3Error {
    let (code, msg): (S3ErrorCode, String) = match &e {
        Error::NotFound(Resource::Bucket) => (S3ErrorCode::NoSuchBucket, "The specified bucket does not exist".into()),
        Error::NotFound(Resource::Object) => (S3ErrorCode::NoSuchKey, "The specified key does not exist.".into()),
        Error::NotFound(Resource::Upload) => (
            S3ErrorCode::NoSuchUpload,
            "The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed.".into(),
        ),
        // Tenants, users and keys are not S3 resources: whoever reaches here may not know of them.
        Error::NotFound(_) => (S3ErrorCode::AccessDenied, "Access Denied".into()),
        Error::AlreadyExists(Resource::Bucket) => (
            S3ErrorCode::BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it.".into(),
        ),
        Error::AlreadyExists(_) => (S3ErrorCode::InvalidRequest, e.to_string()),
        Error::Conflict(m) => (S3ErrorCode::OperationAborted, m.clone()),
        Error::NotEmpty(_) => (S3ErrorCode::BucketNotEmpty, "The bucket you tried to delete is not empty".into()),
        Error::InvalidName(n) if n.what == "bucket name" => (S3ErrorCode::InvalidBucketName, n.to_string()),
        Error::InvalidName(n) if n.too_long => {
            (S3ErrorCode::KeyTooLongError, "Your key is too long".into())
        }
        Error::InvalidName(n) => (S3ErrorCode::InvalidArgument, n.to_string()),
        Error::InvalidArgument(m) => (S3ErrorCode::InvalidArgument, m.clone()),
        Error::InvalidRequest(m) => (S3ErrorCode::InvalidRequest, m.clone()),
        Error::MetadataTooLarge => (S3ErrorCode::MetadataTooLarge, e.to_string()),
        Error::AccessDenied => (S3ErrorCode::AccessDenied, "Access Denied".into()),
        Error::PreconditionFailed => {
            (S3ErrorCode::PreconditionFailed, "At least one of the pre-conditions you specified did not hold".into())
        }
        Error::NotModified => (S3ErrorCode::NotModified, "Not Modified".into()),
        Error::InvalidRange => (S3ErrorCode::InvalidRange, "The requested range is not satisfiable".into()),
        Error::BadDigest(m) => (S3ErrorCode::BadDigest, m.clone()),
        Error::InvalidPart(m) => (S3ErrorCode::InvalidPart, m.clone()),
        Error::InvalidPartOrder => (S3ErrorCode::InvalidPartOrder, e.to_string()),
        Error::EntityTooSmall => (S3ErrorCode::EntityTooSmall, "Your proposed upload is smaller than the minimum allowed object size.".into()),
        Error::EntityTooLarge(m) => (S3ErrorCode::EntityTooLarge, m.clone()),
        Error::IncompleteBody(_) => (
            S3ErrorCode::IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header".into(),
        ),
        Error::SlowDown { retry_after_secs } => {
            let mut err = S3Error::with_message(S3ErrorCode::SlowDown, "Please reduce your request rate.");
            // s3s replaces the response's headers with these, so the body's type goes too.
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
            headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(*retry_after_secs));
            err.set_headers(headers);
            return err;
        }
        Error::QuotaExceeded(m) => {
            // Not in s3s's list of codes; S3-compatible stores answer it with 403.
            let mut err = S3Error::with_message(S3ErrorCode::Custom("QuotaExceeded".into()), m.clone());
            err.set_status_code(http::StatusCode::FORBIDDEN);
            return err;
        }
        // The only S3 path that meets a tenant limit is CreateBucket.
        Error::LimitExceeded(m) => (S3ErrorCode::TooManyBuckets, m.clone()),
        Error::NotImplemented(m) => (S3ErrorCode::NotImplemented, m.clone()),
        Error::Unavailable(m) => {
            tracing::warn!(error = %m, "request failed: a dependency is unavailable");
            (S3ErrorCode::ServiceUnavailable, "Please reduce your request rate or retry.".into())
        }
        Error::Internal(m) => {
            tracing::error!(error = %m, "request failed: internal error");
            (S3ErrorCode::InternalError, "We encountered an internal error. Please try again.".into())
        }
    };
    S3Error::with_message(code, msg)
}

/// `?` on core results inside handlers.
pub(crate) trait IntoS3<T> {
    fn s3(self) -> s3s::S3Result<T>;
}

impl<T> IntoS3<T> for Result<T, Error> {
    fn s3(self) -> s3s::S3Result<T> {
        self.map_err(s3_error)
    }
}
