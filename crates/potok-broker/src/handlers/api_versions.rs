//! ApiVersions: the registered APIs and versions (KIP-35, KIP-511), and the features this broker
//! supports and finalizes (KIP-584): `transaction.version` (KIP-1022), which tells a Kafka 4.x
//! client whether to run KIP-890 part 2.

use std::sync::Arc;

use potok_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use potok_protocol::messages::ApiVersionsResponse;
use potok_protocol::{Request, Response};

use crate::error::Result;
use crate::registry::{Reply, RequestContext};
use crate::txn::MAX_TRANSACTION_VERSION;
use crate::Broker;

/// The feature's name in ApiVersions (Kafka's `TransactionVersion.FEATURE_NAME`).
const TRANSACTION_VERSION: &str = "transaction.version";

/// The epoch of the finalized features. Kafka uses the metadata offset of the last feature
/// change so a client can tell newer answers from older ones; here the features are fixed by
/// the configuration for the life of the process, so they have one epoch. It must not be
/// negative: the Java client ignores finalized features whose epoch is not above its initial -1.
const FINALIZED_FEATURES_EPOCH: i64 = 0;

/// The ApiVersions body listing every registered API (also used for the v0 fallback answer).
pub fn response(broker: &Broker) -> ApiVersionsResponse {
    let tv = broker.txn.transaction_version();
    ApiVersionsResponse {
        error_code: 0,
        api_keys: broker
            .registry
            .versions()
            .map(|(k, min, max)| ApiVersion {
                api_key: k as i16,
                min_version: min,
                max_version: max,
                ..Default::default()
            })
            .collect(),
        supported_features: vec![SupportedFeatureKey {
            name: TRANSACTION_VERSION.into(),
            min_version: 0,
            max_version: MAX_TRANSACTION_VERSION,
            ..Default::default()
        }],
        finalized_features_epoch: FINALIZED_FEATURES_EPOCH,
        // As Kafka, a feature at level 0 is not listed as finalized.
        finalized_features: (tv > 0)
            .then(|| FinalizedFeatureKey {
                name: TRANSACTION_VERSION.into(),
                max_version_level: tv,
                min_version_level: tv,
                ..Default::default()
            })
            .into_iter()
            .collect(),
        ..Default::default()
    }
}

/// Handles ApiVersions.
pub async fn handle(broker: Arc<Broker>, _ctx: RequestContext, _req: Request) -> Result<Reply> {
    Ok(Reply::Response(Response::ApiVersions(response(&broker))))
}
