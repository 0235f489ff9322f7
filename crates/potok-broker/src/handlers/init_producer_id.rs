//! InitProducerId for idempotent (non-transactional) producers (KIP-98, KIP-360).
//!
//! A request without a transactional id gets a fresh producer id at epoch 0 from
//! [`crate::producer_ids::ProducerIdManager`], unique across restarts (in a cluster from the
//! block the active controller gave this broker, unique across the cluster). A request that carries
//! the producer's current id and epoch (v3+, KIP-360: the client recovers from an
//! `OUT_OF_ORDER_SEQUENCE_NUMBER` or a lost batch by bumping its epoch) keeps its id and gets
//! the next epoch, so the partitions accept it again from sequence 0; an id this broker never
//! issued, or an epoch that would overflow, gets a fresh id instead. (Kafka's broker hands out a
//! new id in both cases for non-transactional producers; keeping the id is equally safe and is
//! what a transactional producer gets, and it keeps DescribeProducers readable.)
//!
//! A request with a transactional id goes to the transaction coordinator
//! ([`crate::txn::handlers::init_producer_id`]).

use std::sync::Arc;

use potok_protocol::messages::InitProducerIdResponse;
use potok_protocol::{ErrorCode, Request, Response};

use crate::error::{BrokerError, Result};
use crate::producer_ids::ProducerIds;
use crate::registry::{Reply, RequestContext};
use crate::Broker;

/// Handles InitProducerId.
pub async fn handle(broker: Arc<Broker>, ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::InitProducerId(req) = req else {
        return Err(BrokerError::NoHandler("InitProducerId"));
    };
    let mut resp = InitProducerIdResponse {
        producer_id: -1,
        producer_epoch: -1,
        ..Default::default()
    };
    if req.transactional_id.is_some() {
        return crate::txn::handlers::init_producer_id(broker, ctx.api_version, req).await;
    }
    let bumpable =
        req.producer_id >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1;
    let allocated = match &broker.producer_ids {
        ProducerIds::Local(_) => {
            let ids = Arc::clone(&broker);
            // The allocator may fsync its block file; keep that off the async worker.
            tokio::task::spawn_blocking(move || {
                let ProducerIds::Local(ids) = &ids.producer_ids else {
                    return Err(ErrorCode::UnknownServerError);
                };
                if bumpable && ids.was_issued(req.producer_id) {
                    return Ok((req.producer_id, req.producer_epoch + 1));
                }
                ids.next_id().map(|id| (id, 0)).map_err(|e| {
                    tracing::error!(error = %e, "cannot reserve producer ids");
                    ErrorCode::KafkaStorageError
                })
            })
            .await
            .map_err(|e| BrokerError::Config(format!("producer id task failed: {e}")))?
        }
        ProducerIds::Cluster(ids) => {
            // Every id below the cluster's next producer id was handed out in a block by the
            // controller, so the producer's own id may be kept with a bumped epoch, whichever
            // broker issued it.
            let issued = broker
                .topics
                .with_image(|i| req.producer_id < i.next_producer_id());
            if bumpable && issued {
                Ok((req.producer_id, req.producer_epoch + 1))
            } else {
                ids.next_id().await.map(|id| (id, 0))
            }
        }
    };
    match allocated {
        Ok((id, epoch)) => {
            resp.producer_id = id;
            resp.producer_epoch = epoch;
        }
        Err(code) => resp.error_code = code.code(),
    }
    Ok(Reply::Response(Response::InitProducerId(resp)))
}
