use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
            pub fn from_slice(b: &[u8]) -> Option<Self> {
                Uuid::from_slice(b).ok().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0.simple())
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// Internal id of a tenant; names can be reused after deletion, ids never.
    TenantId
);
id_type!(
    /// Internal id of a user.
    UserId
);
id_type!(
    /// Internal id of a bucket. Object data lives under the id, not the name,
    /// so a bucket re-created under an old name never sees old bytes.
    BucketId
);
id_type!(
    /// Id of a multipart upload, as handed to S3 clients.
    UploadId
);

/// A fresh unique name for one stored blob of object data.
pub fn new_blob_id() -> String {
    Uuid::now_v7().simple().to_string()
}
