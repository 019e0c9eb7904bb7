//! Which billing class each S3 operation belongs to. The front-end knows
//! the operation; the core's meter knows nothing of S3.

use orbit_core::RequestClass;

pub(crate) fn class_of(operation: &str) -> RequestClass {
    match operation {
        "GetObject" | "HeadObject" | "HeadBucket" | "GetBucketLocation" | "GetBucketVersioning" => RequestClass::Read,
        "PutObject"
        | "CopyObject"
        | "CreateBucket"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "PostObject" => RequestClass::Write,
        "ListObjects"
        | "ListObjectsV2"
        | "ListObjectVersions"
        | "ListBuckets"
        | "ListMultipartUploads"
        | "ListParts" => RequestClass::List,
        "DeleteObject" | "DeleteObjects" | "DeleteBucket" | "AbortMultipartUpload" => RequestClass::Delete,
        _ => RequestClass::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_fall_into_their_classes() {
        assert_eq!(class_of("GetObject"), RequestClass::Read);
        assert_eq!(class_of("HeadObject"), RequestClass::Read);
        assert_eq!(class_of("UploadPart"), RequestClass::Write);
        assert_eq!(class_of("CopyObject"), RequestClass::Write);
        assert_eq!(class_of("ListObjectsV2"), RequestClass::List);
        assert_eq!(class_of("DeleteObjects"), RequestClass::Delete);
        assert_eq!(class_of("GetBucketAcl"), RequestClass::Other);
    }
}
