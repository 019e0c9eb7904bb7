//! Typed messages between sites. Each request and the responses it may get
//! sit side by side; every message travels in an [`Envelope`] carrying the
//! protocol version, so a site can refuse what it does not understand
//! instead of misreading it.

use crate::scope::LeaseScope;
use orbit_types::{BucketId, BucketName, ObjectKey, TenantId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The version of the message format this code speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The name of a site, as configured.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SiteId(pub String);

impl SiteId {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
}

impl fmt::Display for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A lease, named by the home site that granted it. The epoch is the home
/// site's incarnation (it grows at every start), so a lease of an earlier
/// incarnation is never mistaken for a current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LeaseId {
    pub epoch: u64,
    pub seq: u64,
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.epoch, self.seq)
    }
}

/// Pairs a response with its request; chosen by the requester, unique per
/// requester. A request sent again keeps its id, so a late duplicate answer
/// is recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId(pub u64);

/// A write awaiting acknowledgement at the home site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WriteId(pub u64);

/// What a write does to its key. The bytes travel separately (over the data
/// path); the protocol only needs the kind and the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteKind {
    Put,
    Delete,
    CompleteMultipart,
}

/// One write acknowledged by a write-lease holder and not yet flushed home.
/// `version` names the durable version at the holder (an ETag or blob id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlushedWrite {
    pub seq: u64,
    pub key: ObjectKey,
    pub kind: WriteKind,
    pub version: String,
}

/// An invalidation the holder has not acknowledged yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingInvalidation {
    pub write: WriteId,
    pub keys: Vec<ObjectKey>,
}

/// Why a lease request was turned down; each says whether a retry can help.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// A conflicting write lease is being recalled or acquired; retry soon.
    Busy,
    /// This site is not the home of the bucket; no retry will help here.
    NotHome,
    /// The message format version is not one this site speaks.
    UnsupportedVersion { supported: u32 },
    /// This site understands the message but does not handle it (yet); no
    /// retry will help until it is upgraded.
    NotImplemented,
}

/// Every message between two sites.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Message {
    // --- read leases: satellite -> home, and the answers ---
    /// Asks for a read lease on `scope`.
    GrantReadLease {
        req: RequestId,
        scope: LeaseScope,
    },
    /// The lease lasts `duration` from when the satellite sent its request.
    ReadLeaseGranted {
        req: RequestId,
        lease: LeaseId,
        scope: LeaseScope,
        duration: Duration,
    },
    /// Asks to extend a lease in use.
    RenewLease {
        req: RequestId,
        lease: LeaseId,
    },
    /// Extended by `duration` from when the renewal was sent. `invalidations`
    /// repeats those not yet acknowledged, so a renewal can never outrun a
    /// lost invalidation: the satellite applies them before it extends.
    LeaseRenewed {
        req: RequestId,
        lease: LeaseId,
        duration: Duration,
        invalidations: Vec<PendingInvalidation>,
    },
    /// The home site no longer holds this lease (expired, recalled, revoked,
    /// or of an earlier incarnation): drop it and all it covers.
    LeaseUnknown {
        req: RequestId,
        lease: LeaseId,
    },
    /// Gives a lease back; needs no answer.
    ReleaseLease {
        lease: LeaseId,
    },
    /// Reads and writes of `scope` go to `holder`, which holds a write lease.
    Redirect {
        req: RequestId,
        scope: LeaseScope,
        holder: SiteId,
    },
    /// The request was turned down; see [`Refusal`].
    Refused {
        req: RequestId,
        reason: Refusal,
    },

    // --- invalidation: home -> satellite ---
    /// Drop every cached entry of these keys (and listings that show them).
    Invalidate {
        lease: LeaseId,
        write: WriteId,
        keys: Vec<ObjectKey>,
    },
    InvalidateAck {
        lease: LeaseId,
        write: WriteId,
    },
    /// Drop the whole lease: a write lease on an overlapping prefix is wanted.
    RecallReadLease {
        lease: LeaseId,
    },
    RecallReadAck {
        lease: LeaseId,
    },

    // --- forwarded writes: satellite -> home ---
    /// A write made at a satellite that holds no write lease for the key.
    ForwardWrite {
        req: RequestId,
        bucket: BucketId,
        key: ObjectKey,
        kind: WriteKind,
    },
    /// The home site acknowledged the write, after every covering lease was
    /// invalidated or surely expired.
    WriteAcked {
        req: RequestId,
    },

    // --- write leases ---
    AcquireWriteLease {
        req: RequestId,
        scope: LeaseScope,
    },
    /// Exclusive until released, recalled or revoked; it does not expire, so a
    /// holder that vanishes keeps the scope unavailable until an operator
    /// revokes it.
    WriteLeaseGranted {
        req: RequestId,
        lease: LeaseId,
        scope: LeaseScope,
    },
    /// Writes acknowledged by the holder, in order; sent again until acked.
    FlushWrites {
        req: RequestId,
        lease: LeaseId,
        writes: Vec<FlushedWrite>,
    },
    /// Every write up to and including `upto` is applied at home.
    FlushAck {
        req: RequestId,
        lease: LeaseId,
        upto: u64,
    },
    /// Home wants the prefix back: flush everything, then release.
    RecallWriteLease {
        lease: LeaseId,
    },
    /// The holder gives the write lease back with everything flushed up to
    /// `flushed_upto`.
    ReleaseWriteLease {
        req: RequestId,
        lease: LeaseId,
        flushed_upto: u64,
    },
    WriteLeaseReleased {
        req: RequestId,
        lease: LeaseId,
    },
    /// An operator revoked the lease: the holder must discard its unflushed
    /// writes after `lost_after` (they were declared lost).
    WriteLeaseRevoked {
        lease: LeaseId,
        lost_after: u64,
    },

    // --- the tenancy directory: any site -> the directory site ---
    /// Asks for the directory's records unless they are still at `known`
    /// (the version the asker last applied): a mirror's cheap poll.
    DirectoryPull {
        req: RequestId,
        known: Option<DirectoryVersion>,
    },
    /// Nothing changed since `known`.
    DirectoryUnchanged {
        req: RequestId,
        version: DirectoryVersion,
    },
    /// Every directory record at `version`, as one consistent copy.
    /// `sealed_canary` is the directory site's master-key canary, so the
    /// receiver can tell it holds the same master key before mirroring sealed
    /// secrets.
    DirectorySnapshot {
        req: RequestId,
        version: DirectoryVersion,
        sealed_canary: Option<String>,
        tables: Vec<DirectoryTable>,
    },
    /// Create a bucket homed at the sender (S3 CreateBucket at a satellite).
    DirectoryCreateBucket {
        req: RequestId,
        tenant: TenantId,
        bucket: BucketName,
        backend: String,
    },
    /// Delete a bucket record. Sent by the bucket's home site after it
    /// deleted the (empty) bucket locally, or by another site on behalf of
    /// a client, which the directory site honours only when it is the home.
    DirectoryDeleteBucket {
        req: RequestId,
        tenant: TenantId,
        bucket: BucketName,
        id: BucketId,
    },
    /// The bucket change is committed at the directory site at `version`;
    /// `record` is the created bucket's stored record (none for a delete).
    DirectoryBucketDone {
        req: RequestId,
        version: DirectoryVersion,
        #[serde(default, with = "opt_b64")]
        record: Option<Vec<u8>>,
    },
    /// The bucket change was refused.
    DirectoryBucketRefused {
        req: RequestId,
        error: DirectoryError,
    },

    // --- liveness: either direction ---
    /// Asks whether the peer is up and which protocol version it speaks.
    Ping {
        req: RequestId,
    },
    /// The answer to `Ping`; the envelope carries the version.
    Pong {
        req: RequestId,
    },
}

/// A state of the directory site's records: `epoch` is drawn at each
/// start of the directory site, `generation` counts its committed changes
/// since, so two equal versions mean the same records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DirectoryVersion {
    pub epoch: u64,
    pub generation: u64,
}

impl fmt::Display for DirectoryVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}.{}", self.epoch, self.generation)
    }
}

/// Every record of one metadata table, by its table name, keys and values
/// as stored (base64 on the wire).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryTable {
    pub table: String,
    pub entries: Vec<DirectoryEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntry {
    #[serde(with = "b64")]
    pub key: Vec<u8>,
    #[serde(with = "b64")]
    pub value: Vec<u8>,
}

/// Why the directory site refused a bucket change; each maps to one
/// semantic error at the asking site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirectoryError {
    BucketExists,
    NoSuchBucket,
    NoSuchTenant,
    BucketNotEmpty,
    /// Only the bucket's home site can check that it is empty.
    HomedElsewhere {
        home: String,
    },
    /// The request names something invalid (an unknown backend, say).
    Invalid {
        message: String,
    },
    /// The directory site could not commit now; a retry may succeed.
    Unavailable {
        message: String,
    },
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

mod opt_b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => s.serialize_some(&STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => STANDARD.decode(text).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// A message with its protocol version and sender.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u32,
    pub from: SiteId,
    pub message: Message,
}

impl Envelope {
    pub fn new(from: SiteId, message: Message) -> Self {
        Self { version: PROTOCOL_VERSION, from, message }
    }

    /// The sender and message, if this site speaks the envelope's version;
    /// otherwise the refusal to send back, so a newer peer is told rather
    /// than misread.
    pub fn open(self) -> Result<(SiteId, Message), Refusal> {
        if self.version == PROTOCOL_VERSION {
            Ok((self.from, self.message))
        } else {
            Err(Refusal::UnsupportedVersion { supported: PROTOCOL_VERSION })
        }
    }
}

/// A message a state machine asks its caller to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    pub to: SiteId,
    pub message: Message,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_json_with_their_version() {
        let bucket = BucketId::from_slice(&[7; 16]).expect("16 bytes");
        let env = Envelope::new(
            SiteId::new("eu"),
            Message::ReadLeaseGranted {
                req: RequestId(3),
                lease: LeaseId { epoch: 2, seq: 9 },
                scope: LeaseScope::new(bucket, "datasets/"),
                duration: Duration::from_secs(10),
            },
        );
        let json = serde_json::to_string(&env).expect("serialise");
        assert!(json.contains("\"version\":1"), "{json}");
        assert!(json.contains("\"type\":\"ReadLeaseGranted\""), "{json}");
        let back: Envelope = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, env);
    }

    #[test]
    fn ping_and_pong_travel_like_the_other_messages() {
        let env = Envelope::new(SiteId::new("us"), Message::Ping { req: RequestId(5) });
        let json = serde_json::to_string(&env).expect("serialise");
        assert_eq!(json, r#"{"version":1,"from":"us","message":{"type":"Ping","req":5}}"#);
        let refused = Message::Refused { req: RequestId(5), reason: Refusal::NotImplemented };
        let back: Message = serde_json::from_str(&serde_json::to_string(&refused).unwrap()).unwrap();
        assert_eq!(back, refused);
    }

    #[test]
    fn directory_records_travel_as_base64_and_round_trip() {
        let snap = Message::DirectorySnapshot {
            req: RequestId(1),
            version: DirectoryVersion { epoch: 7, generation: 3 },
            sealed_canary: Some("sealed".into()),
            tables: vec![DirectoryTable {
                table: "tenants".into(),
                entries: vec![DirectoryEntry { key: vec![0, 255, 1], value: b"{}".to_vec() }],
            }],
        };
        let json = serde_json::to_string(&snap).unwrap();
        assert!(json.contains("\"AP8B\""), "{json}");
        assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), snap);
        let done = Message::DirectoryBucketDone {
            req: RequestId(2),
            version: DirectoryVersion { epoch: 7, generation: 4 },
            record: None,
        };
        assert_eq!(serde_json::from_str::<Message>(&serde_json::to_string(&done).unwrap()).unwrap(), done);
        let bad = r#"{"type":"DirectoryBucketDone","req":2,"version":{"epoch":1,"generation":1},"record":"!!"}"#;
        assert!(serde_json::from_str::<Message>(bad).is_err());
    }

    #[test]
    fn an_envelope_of_another_version_is_refused_not_misread() {
        let mut env = Envelope::new(SiteId::new("eu"), Message::ReleaseLease { lease: LeaseId { epoch: 1, seq: 1 } });
        assert!(env.clone().open().is_ok());
        env.version = PROTOCOL_VERSION + 1;
        assert_eq!(env.open().unwrap_err(), Refusal::UnsupportedVersion { supported: PROTOCOL_VERSION });
    }

    #[test]
    fn a_key_that_is_not_a_valid_object_key_is_refused_on_parse() {
        let json =
            r#"{"version":1,"from":"eu","message":{"type":"InvalidateAck","lease":{"epoch":1,"seq":1},"write":1}}"#;
        assert!(serde_json::from_str::<Envelope>(json).is_ok());
        let bad = r#"{"type":"Invalidate","lease":{"epoch":1,"seq":1},"write":1,"keys":[""]}"#;
        assert!(serde_json::from_str::<Message>(bad).is_err());
    }
}
