//! ApiVersions: the registered APIs and versions (KIP-35, KIP-511).

use std::sync::Arc;

use potok_protocol::messages::api_versions_response::ApiVersion;
use potok_protocol::messages::ApiVersionsResponse;
use potok_protocol::{Request, Response};

use crate::error::Result;
use crate::registry::{Reply, RequestContext};
use crate::Broker;

/// The ApiVersions body listing every registered API (also used for the v0 fallback answer).
pub fn response(broker: &Broker) -> ApiVersionsResponse {
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
        ..Default::default()
    }
}

/// Handles ApiVersions.
pub async fn handle(broker: Arc<Broker>, _ctx: RequestContext, _req: Request) -> Result<Reply> {
    Ok(Reply::Response(Response::ApiVersions(response(&broker))))
}
