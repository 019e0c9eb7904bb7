//! Who is calling: SigV4 secrets for s3s to verify signatures with, and the
//! resolved caller (tenant, user, role) attached to each request.

use crate::error::s3_error;
use orbit_tenancy::{Caller, Directory};
use orbit_types::Error;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::path::S3Path;
use s3s::{S3Request, S3Result, s3_error};

pub(crate) struct OrbitAuth {
    pub dir: Directory,
}

#[async_trait::async_trait]
impl S3Auth for OrbitAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.dir.authenticate(access_key).await {
            Ok((_, secret)) => Ok(SecretKey::from(secret)),
            Err(Error::NotFound(_)) => {
                Err(s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records."))
            }
            Err(e) => Err(s3_error(e)),
        }
    }
}

/// Runs after the signature is verified: resolves the caller and keeps it
/// in the request for the handlers. Anonymous requests are refused.
pub(crate) struct OrbitAccess {
    pub dir: Directory,
    pub meter: orbit_core::usage::meter::Meter,
}

#[async_trait::async_trait]
impl S3Access for OrbitAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(creds) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "Anonymous access is not allowed"));
        };
        if let Some(expires) = presigned_expiry(cx.uri().query())
            && expires > MAX_PRESIGNED_EXPIRY_SECS
        {
            return Err(s3_error!(
                AuthorizationQueryParametersError,
                "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds"
            ));
        }
        let access_key = creds.access_key.clone();
        match self.dir.authenticate(&access_key).await {
            Ok((caller, _)) => {
                let bucket = match cx.s3_path() {
                    S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(&**bucket),
                    S3Path::Root => None,
                };
                // Every authenticated request is metered, refused ones too.
                self.meter.request(
                    caller.tenant_id,
                    bucket.unwrap_or(""),
                    crate::metering::class_of(cx.s3_op().name()),
                );
                // Authenticated: tell the audit log who this was, whatever happens next.
                if let Some(mark) = cx.extensions_mut().get::<crate::audit::AuditMark>().cloned() {
                    let target = match cx.s3_path() {
                        S3Path::Root => String::new(),
                        S3Path::Bucket { bucket } => bucket.to_string(),
                        S3Path::Object { bucket, key } => format!("{bucket}/{key}"),
                    };
                    let op = cx.s3_op().name().to_owned();
                    mark.set(crate::audit::Seen { caller: caller.clone(), op, target });
                }
                // Rate limits belong to the caller's tenant and the named bucket; checked before any work.
                let bucket = match cx.s3_path() {
                    S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(&**bucket),
                    S3Path::Root => None,
                };
                let direction = crate::qos::direction(cx.s3_op().name());
                let pacer = self.dir.qos().admit(caller.tenant_id, bucket, direction).map_err(s3_error)?;
                cx.extensions_mut().insert(pacer);
                cx.extensions_mut().insert(caller);
                Ok(())
            }
            Err(Error::NotFound(_)) => {
                Err(s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records."))
            }
            Err(e) => Err(s3_error(e)),
        }
    }
}

/// S3 refuses presigned URLs valid for more than seven days.
const MAX_PRESIGNED_EXPIRY_SECS: u64 = 7 * 24 * 3600;

fn presigned_expiry(query: Option<&str>) -> Option<u64> {
    query?.split('&').find_map(|kv| kv.strip_prefix("X-Amz-Expires=")).and_then(|v| v.parse().ok())
}

pub(crate) fn caller<T>(req: &S3Request<T>) -> S3Result<Caller> {
    req.extensions.get::<Caller>().cloned().ok_or_else(|| s3_error!(AccessDenied, "Access Denied"))
}
