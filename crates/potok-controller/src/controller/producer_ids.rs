//! AllocateProducerIds: blocks of producer ids handed to brokers, so that ids stay unique across
//! the cluster (Kafka's `ProducerIdControlManager`). The image's next producer id is the first
//! id of the next block; each allocation writes a `ProducerIdsRecord` moving it on by one
//! block, and the block is answered only once that record is committed, so a block is never
//! handed out twice, whichever controller is active.

use potok_metadata::{MetadataError, MetadataRecord};
use potok_protocol::messages::allocate_producer_ids_request::AllocateProducerIdsRequest;
use potok_protocol::messages::allocate_producer_ids_response::AllocateProducerIdsResponse;
use potok_protocol::messages::internal::producer_ids_record::ProducerIdsRecord;
use potok_protocol::ErrorCode;

use super::{brokers, Reply, Staged};

/// Ids per block (Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
pub const PRODUCER_ID_BLOCK_SIZE: i32 = 1000;

/// AllocateProducerIds from a registered broker.
pub(crate) fn allocate(
    staged: &mut Staged<'_>,
    req: &AllocateProducerIdsRequest,
) -> Result<Reply, MetadataError> {
    let refuse = |code: ErrorCode| {
        Ok(Reply::AllocateProducerIds(AllocateProducerIdsResponse {
            error_code: code as i16,
            ..Default::default()
        }))
    };
    if !brokers::epoch_matches(staged.image(), req.broker_id, req.broker_epoch) {
        return refuse(ErrorCode::StaleBrokerEpoch);
    }
    let start = staged.image().next_producer_id();
    // Kafka answers UNKNOWN_SERVER_ERROR once the next block would pass i64::MAX.
    if start > i64::MAX - i64::from(PRODUCER_ID_BLOCK_SIZE) {
        return refuse(ErrorCode::UnknownServerError);
    }
    staged.push(MetadataRecord::ProducerIds(ProducerIdsRecord {
        broker_id: req.broker_id,
        broker_epoch: req.broker_epoch,
        next_producer_id: start + i64::from(PRODUCER_ID_BLOCK_SIZE),
        ..Default::default()
    }))?;
    Ok(Reply::AllocateProducerIds(AllocateProducerIdsResponse {
        error_code: 0,
        producer_id_start: start,
        producer_id_len: PRODUCER_ID_BLOCK_SIZE,
        ..Default::default()
    }))
}
