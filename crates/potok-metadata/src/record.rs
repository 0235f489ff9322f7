//! One metadata record and its serialisation as Kafka writes it in `__cluster_metadata`
//! (`MetadataRecordSerde`): an unsigned varint frame version (1), an unsigned varint API key, an
//! unsigned varint record version, then the record's fields at that version.

use bytes::{Buf, Bytes, BytesMut};
use potok_protocol::codec::{get_uvarint, put_uvarint};
use potok_protocol::messages::internal::{
    broker_registration_change_record::BrokerRegistrationChangeRecord, config_record::ConfigRecord,
    feature_level_record::FeatureLevelRecord, fence_broker_record::FenceBrokerRecord,
    no_op_record::NoOpRecord, partition_change_record::PartitionChangeRecord,
    partition_record::PartitionRecord, producer_ids_record::ProducerIdsRecord,
    register_broker_record::RegisterBrokerRecord, remove_topic_record::RemoveTopicRecord,
    topic_record::TopicRecord, unfence_broker_record::UnfenceBrokerRecord,
    unregister_broker_record::UnregisterBrokerRecord,
};
use potok_protocol::{Decode, Encode};

use crate::MetadataError;

/// The frame version Kafka writes before every metadata record.
const FRAME_VERSION: u32 = 1;

/// A metadata record the image applies, or one it knows and ignores.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataRecord {
    /// API key 0.
    RegisterBroker(RegisterBrokerRecord),
    /// API key 1.
    UnregisterBroker(UnregisterBrokerRecord),
    /// API key 2.
    Topic(TopicRecord),
    /// API key 3.
    Partition(PartitionRecord),
    /// API key 4.
    Config(ConfigRecord),
    /// API key 5.
    PartitionChange(PartitionChangeRecord),
    /// API key 7.
    FenceBroker(FenceBrokerRecord),
    /// API key 8.
    UnfenceBroker(UnfenceBrokerRecord),
    /// API key 9.
    RemoveTopic(RemoveTopicRecord),
    /// API key 12.
    FeatureLevel(FeatureLevelRecord),
    /// API key 15.
    ProducerIds(ProducerIdsRecord),
    /// API key 17.
    BrokerRegistrationChange(BrokerRegistrationChangeRecord),
    /// API key 20.
    NoOp(NoOpRecord),
    /// A record of a kind this image does not track (ACLs, quotas, tokens, SCRAM, ZooKeeper
    /// migration, metadata transactions, controller registration): kept as its API key,
    /// version and raw fields so that it can be written back unchanged.
    Other {
        /// The API key.
        api_key: u16,
        /// The record version.
        version: u16,
        /// The encoded fields.
        body: Bytes,
    },
}

/// API keys of records that are valid in a metadata log but not tracked by the image.
const IGNORED_KEYS: &[u16] = &[10, 11, 14, 18, 19, 21, 22, 23, 24, 25, 26, 27];

impl MetadataRecord {
    /// The record's API key.
    pub fn api_key(&self) -> u16 {
        match self {
            MetadataRecord::RegisterBroker(_) => 0,
            MetadataRecord::UnregisterBroker(_) => 1,
            MetadataRecord::Topic(_) => 2,
            MetadataRecord::Partition(_) => 3,
            MetadataRecord::Config(_) => 4,
            MetadataRecord::PartitionChange(_) => 5,
            MetadataRecord::FenceBroker(_) => 7,
            MetadataRecord::UnfenceBroker(_) => 8,
            MetadataRecord::RemoveTopic(_) => 9,
            MetadataRecord::FeatureLevel(_) => 12,
            MetadataRecord::ProducerIds(_) => 15,
            MetadataRecord::BrokerRegistrationChange(_) => 17,
            MetadataRecord::NoOp(_) => 20,
            MetadataRecord::Other { api_key, .. } => *api_key,
        }
    }

    /// The version Potok writes: the newest one whose fields it fills (versions differ only by
    /// added fields, which older readers of the same Kafka release also accept).
    pub fn version(&self) -> u16 {
        match self {
            MetadataRecord::RegisterBroker(_) => 3,
            MetadataRecord::Partition(_) | MetadataRecord::PartitionChange(_) => 0,
            // Version 1 carries `InControlledShutdown` (Kafka writes 1 for controlled shutdown).
            MetadataRecord::BrokerRegistrationChange(_) => 1,
            MetadataRecord::Other { version, .. } => *version,
            _ => 0,
        }
    }
}

fn enc<T: Encode>(r: &T, buf: &mut BytesMut, v: u16) -> Result<(), MetadataError> {
    r.encode(buf, v as i16)
        .map_err(|e| MetadataError::Encode(e.to_string()))
}

/// Serialises one record as Kafka does (frame version, API key, version, fields).
pub fn encode_record(r: &MetadataRecord) -> Result<Bytes, MetadataError> {
    let mut buf = BytesMut::new();
    let v = r.version();
    put_uvarint(&mut buf, FRAME_VERSION);
    put_uvarint(&mut buf, u32::from(r.api_key()));
    put_uvarint(&mut buf, u32::from(v));
    match r {
        MetadataRecord::RegisterBroker(x) => enc(x, &mut buf, v)?,
        MetadataRecord::UnregisterBroker(x) => enc(x, &mut buf, v)?,
        MetadataRecord::Topic(x) => enc(x, &mut buf, v)?,
        MetadataRecord::Partition(x) => enc(x, &mut buf, v)?,
        MetadataRecord::Config(x) => enc(x, &mut buf, v)?,
        MetadataRecord::PartitionChange(x) => enc(x, &mut buf, v)?,
        MetadataRecord::FenceBroker(x) => enc(x, &mut buf, v)?,
        MetadataRecord::UnfenceBroker(x) => enc(x, &mut buf, v)?,
        MetadataRecord::RemoveTopic(x) => enc(x, &mut buf, v)?,
        MetadataRecord::FeatureLevel(x) => enc(x, &mut buf, v)?,
        MetadataRecord::ProducerIds(x) => enc(x, &mut buf, v)?,
        MetadataRecord::BrokerRegistrationChange(x) => enc(x, &mut buf, v)?,
        MetadataRecord::NoOp(x) => enc(x, &mut buf, v)?,
        MetadataRecord::Other { body, .. } => buf.extend_from_slice(body),
    }
    Ok(buf.freeze())
}

fn dec<T: Decode>(buf: &mut Bytes, v: u16) -> Result<T, MetadataError> {
    T::decode(buf, v as i16).map_err(|e| MetadataError::Decode(e.to_string()))
}

fn small(v: u32, what: &str) -> Result<u16, MetadataError> {
    u16::try_from(v).map_err(|_| MetadataError::Decode(format!("{what} {v} out of range")))
}

/// Decodes one record from exactly `bytes` (trailing bytes are an error: a record is always
/// stored whole, so extra bytes mean corruption).
pub fn decode_record(mut bytes: Bytes) -> Result<MetadataRecord, MetadataError> {
    let d = |e: potok_protocol::DecodeError| MetadataError::Decode(e.to_string());
    let frame = get_uvarint(&mut bytes).map_err(d)?;
    if frame != FRAME_VERSION {
        return Err(MetadataError::Decode(format!(
            "frame version {frame}, expected {FRAME_VERSION}"
        )));
    }
    let api_key = small(get_uvarint(&mut bytes).map_err(d)?, "api key")?;
    let v = small(get_uvarint(&mut bytes).map_err(d)?, "record version")?;
    let b = &mut bytes;
    let r = match api_key {
        0 => MetadataRecord::RegisterBroker(dec(b, v)?),
        1 => MetadataRecord::UnregisterBroker(dec(b, v)?),
        2 => MetadataRecord::Topic(dec(b, v)?),
        3 => MetadataRecord::Partition(dec(b, v)?),
        4 => MetadataRecord::Config(dec(b, v)?),
        5 => MetadataRecord::PartitionChange(dec(b, v)?),
        7 => MetadataRecord::FenceBroker(dec(b, v)?),
        8 => MetadataRecord::UnfenceBroker(dec(b, v)?),
        9 => MetadataRecord::RemoveTopic(dec(b, v)?),
        12 => MetadataRecord::FeatureLevel(dec(b, v)?),
        15 => MetadataRecord::ProducerIds(dec(b, v)?),
        17 => MetadataRecord::BrokerRegistrationChange(dec(b, v)?),
        20 => MetadataRecord::NoOp(dec(b, v)?),
        k if IGNORED_KEYS.contains(&k) => {
            let body = b.split_to(b.remaining());
            MetadataRecord::Other {
                api_key: k,
                version: v,
                body,
            }
        }
        k => {
            return Err(MetadataError::UnknownRecord {
                api_key: k,
                version: v,
            })
        }
    };
    if bytes.has_remaining() {
        return Err(MetadataError::Decode(format!(
            "{} trailing bytes after record type {api_key}",
            bytes.remaining()
        )));
    }
    Ok(r)
}
