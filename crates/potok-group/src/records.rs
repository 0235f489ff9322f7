//! The `__consumer_offsets` record formats and the group-to-partition mapping.
//!
//! Every record's key and value start with a big-endian `i16` version, followed by the body of
//! one of Kafka's internal message types (`potok_protocol::messages::internal`) at that version,
//! exactly as Kafka's group coordinator writes them, so that a data directory is readable by
//! Kafka's own `kafka-dump-log --offsets-decoder` and vice versa:
//!
//! | key version | key type            | value type           | value version written |
//! |-------------|---------------------|----------------------|-----------------------|
//! | 0, 1        | `OffsetCommitKey`   | `OffsetCommitValue`  | 3 (1 with an expire timestamp) |
//! | 2           | `GroupMetadataKey`  | `GroupMetadataValue` | 3                     |
//! | 3+          | KIP-848 / share-group records (not run by this coordinator, skipped) | | |
//!
//! A record with a null value is a tombstone: the offset or the group was deleted.
//!
//! Strings in these (non-flexible) versions carry an `i16` length, so every string that reaches
//! this module has been checked by the coordinator to be at most [`MAX_STRING_LEN`] bytes;
//! encoding can then only fail on a bug, which is reported as [`GroupError`] rather than a
//! panic.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use potok_protocol::messages::internal::{
    group_metadata_key::GroupMetadataKey,
    group_metadata_value::{GroupMetadataValue, MemberMetadata},
    offset_commit_key::OffsetCommitKey,
    offset_commit_value::OffsetCommitValue,
};
use potok_protocol::{Decode, Encode};
use potok_records::{LeaderEpoch, Offset};

use crate::GroupError;

/// The longest string a non-flexible Kafka string field can hold (`i16` length prefix).
pub const MAX_STRING_LEN: usize = i16::MAX as usize;

/// Kafka's `offsets.topic.num.partitions` default.
pub const DEFAULT_OFFSETS_PARTITIONS: i32 = 50;

/// The `__consumer_offsets` partition that owns `group_id`: `abs(groupId.hashCode()) %
/// partitions`, with Java's `String.hashCode` over UTF-16 code units and Kafka's `Utils.abs`
/// (which maps `i32::MIN` to 0), so that a group lives in the same partition as on Kafka.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group_id.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// A committed offset, as stored in an `OffsetCommitValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The committed position (the next offset the group will consume).
    pub offset: Offset,
    /// The leader epoch of the last consumed record (KIP-320); `LeaderEpoch(-1)` when unknown.
    pub leader_epoch: LeaderEpoch,
    /// Client metadata, at most `offset.metadata.max.bytes`.
    pub metadata: String,
    /// When the broker accepted the commit (ms since the epoch).
    pub commit_timestamp_ms: i64,
    /// An explicit expiry from OffsetCommit v1-v4 `retention_time_ms`; `None` uses
    /// `offsets.retention.minutes`.
    pub expire_timestamp_ms: Option<i64>,
}

/// One member of a stored group generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    /// The coordinator-assigned member id.
    pub member_id: String,
    /// `group.instance.id` of a static member (KIP-345).
    pub group_instance_id: Option<String>,
    /// The client id of the member's JoinGroup.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// The member's rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// The member's session timeout.
    pub session_timeout_ms: i32,
    /// The member's metadata for the selected protocol.
    pub subscription: Bytes,
    /// The member's assignment from the leader.
    pub assignment: Bytes,
}

/// A stored group generation, as in a `GroupMetadataValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    /// The protocol type ("consumer", "connect", ...).
    pub protocol_type: String,
    /// The generation id.
    pub generation: i32,
    /// The selected protocol (assignor), `None` when the group is empty.
    pub protocol: Option<String>,
    /// The leader's member id, `None` when the group is empty.
    pub leader: Option<String>,
    /// When the group entered its current state (used for offset expiry of empty groups).
    pub current_state_timestamp_ms: Option<i64>,
    /// The members of the generation.
    pub members: Vec<StoredMember>,
}

/// A decoded `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsRecord {
    /// A committed offset, or its tombstone (`value: None`).
    OffsetCommit {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset, `None` for a tombstone.
        value: Option<CommittedOffset>,
    },
    /// A group's metadata, or its tombstone (`value: None`).
    GroupMetadata {
        /// The group.
        group: String,
        /// The stored generation, `None` for a tombstone.
        value: Option<StoredGroup>,
    },
    /// A record of a newer group type (KIP-848 consumer groups, share groups) which this
    /// coordinator does not run; it is skipped, as Kafka skips unknown record types on load.
    Ignored {
        /// The key version that identified the record type.
        key_version: i16,
    },
}

fn encode_versioned<T: Encode>(msg: &T, version: i16) -> Result<Bytes, GroupError> {
    let size = msg
        .encoded_size(version)
        .map_err(|source| GroupError::Encode { source })?;
    let mut buf = BytesMut::with_capacity(2 + size);
    buf.put_i16(version);
    msg.encode(&mut buf, version)
        .map_err(|source| GroupError::Encode { source })?;
    Ok(buf.freeze())
}

fn decode_versioned<T: Decode>(
    mut bytes: Bytes,
    what: &'static str,
    max_version: i16,
) -> Result<(i16, T), GroupError> {
    if bytes.len() < 2 {
        return Err(GroupError::UnsupportedVersion { what, version: -1 });
    }
    let version = bytes.get_i16();
    if version < 0 {
        return Err(GroupError::UnsupportedVersion { what, version });
    }
    // A newer broker may write a newer value version; like Kafka we read it with the highest
    // version we know, which works because new fields are only ever appended or tagged.
    let read_version = version.min(max_version);
    let msg = T::decode(&mut bytes, read_version)
        .map_err(|source| GroupError::CorruptRecord { what, source })?;
    Ok((version, msg))
}

/// The key of an offset commit record (key version 1, as Kafka writes).
pub fn offset_commit_key(group: &str, topic: &str, partition: i32) -> Result<Bytes, GroupError> {
    let key = OffsetCommitKey {
        group: group.to_owned(),
        topic: topic.to_owned(),
        partition,
        ..Default::default()
    };
    encode_versioned(&key, 1)
}

/// The value of an offset commit record: version 3, or version 1 when the offset carries an
/// explicit expire timestamp (the only version with that field), as Kafka does.
pub fn offset_commit_value(offset: &CommittedOffset) -> Result<Bytes, GroupError> {
    let value = OffsetCommitValue {
        offset: offset.offset.0,
        leader_epoch: offset.leader_epoch.0,
        metadata: offset.metadata.clone(),
        commit_timestamp: offset.commit_timestamp_ms,
        expire_timestamp: offset.expire_timestamp_ms.unwrap_or(-1),
        ..Default::default()
    };
    let version = if offset.expire_timestamp_ms.is_some() {
        1
    } else {
        3
    };
    encode_versioned(&value, version)
}

/// The key of a group metadata record (key version 2).
pub fn group_metadata_key(group: &str) -> Result<Bytes, GroupError> {
    let key = GroupMetadataKey {
        group: group.to_owned(),
        ..Default::default()
    };
    encode_versioned(&key, 2)
}

/// The value of a group metadata record (version 3, the newest non-flexible one, which is what
/// Kafka's classic groups write).
pub fn group_metadata_value(group: &StoredGroup) -> Result<Bytes, GroupError> {
    let value = GroupMetadataValue {
        protocol_type: group.protocol_type.clone(),
        generation: group.generation,
        protocol: group.protocol.clone(),
        leader: group.leader.clone(),
        current_state_timestamp: group.current_state_timestamp_ms.unwrap_or(-1),
        members: group
            .members
            .iter()
            .map(|m| MemberMetadata {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout: m.rebalance_timeout_ms,
                session_timeout: m.session_timeout_ms,
                subscription: m.subscription.clone(),
                assignment: m.assignment.clone(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    encode_versioned(&value, 3)
}

/// The key version of a record key, without decoding the rest.
pub fn key_version(key: &[u8]) -> Option<i16> {
    (key.len() >= 2).then(|| i16::from_be_bytes([key[0], key[1]]))
}

/// Decodes one `__consumer_offsets` record.
pub fn decode_record(key: Bytes, value: Option<Bytes>) -> Result<OffsetsRecord, GroupError> {
    let version = key_version(&key).ok_or(GroupError::UnsupportedVersion {
        what: "key",
        version: -1,
    })?;
    match version {
        0 | 1 => {
            let (_, k): (_, OffsetCommitKey) = decode_versioned(key, "offset commit key", 1)?;
            let value = match value {
                None => None,
                Some(v) => {
                    let (_, v): (_, OffsetCommitValue) =
                        decode_versioned(v, "offset commit value", 4)?;
                    Some(CommittedOffset {
                        offset: Offset(v.offset),
                        leader_epoch: LeaderEpoch(v.leader_epoch),
                        metadata: v.metadata,
                        commit_timestamp_ms: v.commit_timestamp,
                        expire_timestamp_ms: (v.expire_timestamp >= 0)
                            .then_some(v.expire_timestamp),
                    })
                }
            };
            Ok(OffsetsRecord::OffsetCommit {
                group: k.group,
                topic: k.topic,
                partition: k.partition,
                value,
            })
        }
        2 => {
            let (_, k): (_, GroupMetadataKey) = decode_versioned(key, "group metadata key", 2)?;
            let value = match value {
                None => None,
                Some(v) => {
                    let (_, v): (_, GroupMetadataValue) =
                        decode_versioned(v, "group metadata value", 4)?;
                    Some(StoredGroup {
                        protocol_type: v.protocol_type,
                        generation: v.generation,
                        protocol: v.protocol.filter(|p| !p.is_empty()),
                        leader: v.leader.filter(|l| !l.is_empty()),
                        current_state_timestamp_ms: (v.current_state_timestamp >= 0)
                            .then_some(v.current_state_timestamp),
                        members: v
                            .members
                            .into_iter()
                            .map(|m| StoredMember {
                                member_id: m.member_id,
                                group_instance_id: m.group_instance_id,
                                client_id: m.client_id,
                                client_host: m.client_host,
                                rebalance_timeout_ms: m.rebalance_timeout,
                                session_timeout_ms: m.session_timeout,
                                subscription: m.subscription,
                                assignment: m.assignment,
                            })
                            .collect(),
                    })
                }
            };
            Ok(OffsetsRecord::GroupMetadata {
                group: k.group,
                value,
            })
        }
        v if v > 2 => Ok(OffsetsRecord::Ignored { key_version: v }),
        v => Err(GroupError::UnsupportedVersion {
            what: "key",
            version: v,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_java_hash_code() {
        // Java: "my-group".hashCode() == 1_261_813_010 (computed by hand with the same
        // polynomial; 31-based over UTF-16 units) -> % 50.
        let mut h: i64 = 0;
        for c in "my-group".chars() {
            h = (h * 31 + c as i64) as i32 as i64;
        }
        assert_eq!(partition_for("my-group", 50), (h as i32).abs() % 50);
        assert_eq!(partition_for("", 50), 0);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE in Java; Utils.abs maps it to 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        // Non-BMP characters count as two UTF-16 units, as in Java.
        assert!(partition_for("grüppe-😀", 50) < 50);
        // "a".hashCode() == 97
        assert_eq!(partition_for("a", 50), 97 % 50);
    }

    #[test]
    fn offset_commit_round_trip() {
        let off = CommittedOffset {
            offset: Offset(42),
            leader_epoch: LeaderEpoch(3),
            metadata: "m".into(),
            commit_timestamp_ms: 1000,
            expire_timestamp_ms: None,
        };
        let key = offset_commit_key("g", "t", 7).unwrap();
        assert_eq!(&key[..2], &[0, 1]);
        let value = offset_commit_value(&off).unwrap();
        assert_eq!(&value[..2], &[0, 3]);
        let rec = decode_record(key.clone(), Some(value)).unwrap();
        assert_eq!(
            rec,
            OffsetsRecord::OffsetCommit {
                group: "g".into(),
                topic: "t".into(),
                partition: 7,
                value: Some(off.clone())
            }
        );
        let with_expiry = CommittedOffset {
            expire_timestamp_ms: Some(5000),
            ..off.clone()
        };
        let value = offset_commit_value(&with_expiry).unwrap();
        assert_eq!(&value[..2], &[0, 1]);
        match decode_record(key.clone(), Some(value)).unwrap() {
            OffsetsRecord::OffsetCommit { value: Some(v), .. } => {
                // Version 1 has no leader epoch.
                assert_eq!(v.expire_timestamp_ms, Some(5000));
                assert_eq!(v.leader_epoch, LeaderEpoch(-1));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            decode_record(key, None).unwrap(),
            OffsetsRecord::OffsetCommit { value: None, .. }
        ));
    }

    #[test]
    fn group_metadata_round_trip_and_layout() {
        let g = StoredGroup {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp_ms: Some(99),
            members: vec![StoredMember {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300,
                session_timeout_ms: 100,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let key = group_metadata_key("grp").unwrap();
        // Version 2, then an i16-length string.
        assert_eq!(&key[..], &[0, 2, 0, 3, b'g', b'r', b'p']);
        let value = group_metadata_value(&g).unwrap();
        assert_eq!(&value[..2], &[0, 3]);
        let rec = decode_record(key, Some(value)).unwrap();
        assert_eq!(
            rec,
            OffsetsRecord::GroupMetadata {
                group: "grp".into(),
                value: Some(g)
            }
        );
    }

    #[test]
    fn hostile_records_are_errors_not_panics() {
        assert!(decode_record(Bytes::new(), None).is_err());
        assert!(decode_record(Bytes::from_static(&[0xff, 0xff]), None).is_err());
        assert!(decode_record(Bytes::from_static(&[0, 1, 0x7f, 0xff]), None).is_err());
        assert!(matches!(
            decode_record(Bytes::from_static(&[0, 9, 1, 2]), None).unwrap(),
            OffsetsRecord::Ignored { key_version: 9 }
        ));
        let key = offset_commit_key("g", "t", 0).unwrap();
        assert!(decode_record(key.clone(), Some(Bytes::from_static(&[0, 3, 1]))).is_err());
        assert!(decode_record(key, Some(Bytes::from_static(&[0]))).is_err());
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(key in proptest::collection::vec(0u8..=255, 0..64),
                               value in proptest::option::of(proptest::collection::vec(0u8..=255, 0..64))) {
            let _ = decode_record(Bytes::from(key), value.map(Bytes::from));
        }
    }
}
