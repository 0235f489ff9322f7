//! ElectLeaders (API 43, KIP-460) on a voter: preferred-leader elections, and unclean ones when
//! an operator asks for them (`kafka-leader-election.sh --election-type preferred|unclean`).
//!
//! The active controller decides each partition's outcome from its metadata image with
//! `potok_controller::controller::partitions::elect_leader` and proposes the leader changes as
//! one entry; the answer waits until it is committed. Another node forwards the request to
//! the active controller (`super::forwarding`, as Kafka 4's brokers do) and answers
//! NOT_CONTROLLER only while no controller is known or reachable. Without a partition list every partition is tried and,
//! as in Kafka's `ReplicationControlManager.electLeaders`, those whose leader is already right
//! are left out of the answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use potok_controller::controller::partitions::{elect_leader, Election};
use potok_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use potok_protocol::messages::ElectLeadersResponse;
use potok_protocol::{ApiKey, ErrorCode, Request, Response};

use crate::error::BrokerError;
use crate::registry::{Registry, Reply, RequestContext};
use crate::Broker;

/// How long the elections wait for their entry to commit at most (the request's own
/// `timeout_ms` when smaller).
const MAX_COMMIT_WAIT: Duration = Duration::from_secs(60);

/// Partitions one request may name: the answer and the proposed entry stay bounded.
const MAX_PARTITIONS: usize = 100_000;

/// `ElectionType` 0 (preferred) and 1 (unclean).
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

/// Registers ElectLeaders v0-v2 (what Kafka 4.x serves).
pub fn register(r: &mut Registry) {
    r.register(
        ApiKey::ElectLeaders,
        0,
        2,
        |broker: Arc<Broker>, ctx: RequestContext, request: Request| async move {
            let Request::ElectLeaders(request) = request else {
                return Err(BrokerError::NoHandler("ElectLeaders"));
            };
            let Some(quorum) = broker.quorum.clone() else {
                return Err(BrokerError::NoHandler("ElectLeaders"));
            };
            // Version 0 has no election type: it always meant preferred.
            let election_type = if ctx.api_version == 0 {
                PREFERRED
            } else {
                request.election_type
            };
            let requested: Option<BTreeMap<String, Vec<i32>>> =
                request.topic_partitions.as_ref().map(|tps| {
                    let mut m: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                    for tp in tps {
                        let ps = m.entry(tp.topic.clone()).or_default();
                        ps.extend(&tp.partitions);
                        ps.sort_unstable();
                        ps.dedup();
                    }
                    m
                });
            let count: usize = requested
                .as_ref()
                .map_or(0, |m| m.values().map(Vec::len).sum());
            let unknown_type = election_type != PREFERRED && election_type != UNCLEAN;
            let top_error = if unknown_type || count > MAX_PARTITIONS {
                Some(ErrorCode::InvalidRequest)
            } else if !quorum.is_leader() {
                Some(ErrorCode::NotController)
            } else {
                None
            };
            if let Some(code) = top_error {
                // Too long a list is not echoed back partition by partition.
                let echo = requested.as_ref().filter(|_| count <= MAX_PARTITIONS);
                return Ok(Reply::Response(Response::ElectLeaders(refuse(
                    echo,
                    code,
                    ctx.api_version,
                ))));
            }
            // One metadata write at a time on the controller, as the other admin writes.
            let _permit = quorum.writes.acquire().await;
            let unclean = election_type == UNCLEAN;
            let (outcomes, all) = broker.topics.with_image(|image| {
                let mut out: Vec<(String, i32, Election)> = Vec::new();
                match &requested {
                    Some(m) => {
                        for (topic, ps) in m {
                            for &p in ps {
                                out.push((
                                    topic.clone(),
                                    p,
                                    elect_leader(image, topic, p, unclean),
                                ));
                            }
                        }
                    }
                    None => {
                        let mut topics: Vec<_> = image.topics().collect();
                        topics.sort_by(|a, b| a.name.cmp(&b.name));
                        for t in topics {
                            for &p in t.partitions.keys() {
                                out.push((
                                    t.name.clone(),
                                    p,
                                    elect_leader(image, &t.name, p, unclean),
                                ));
                            }
                        }
                    }
                }
                (out, requested.is_none())
            });
            let records: Vec<_> = outcomes
                .iter()
                .filter_map(|(_, _, e)| match e {
                    Election::Elected(r) => Some(r.as_ref().clone()),
                    _ => None,
                })
                .collect();
            let wait = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0))
                .clamp(Duration::from_millis(1), MAX_COMMIT_WAIT);
            let committed = if records.is_empty() {
                Ok(())
            } else {
                quorum.propose(&records, wait).await
            };
            let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
            for (topic, p, e) in outcomes {
                let (code, message) = match (&e, &committed) {
                    (Election::Elected(_), Ok(())) => (ErrorCode::None, None),
                    (Election::Elected(_), Err(err)) => (err.code, Some(err.message.clone())),
                    (Election::NotNeeded, _) if all => continue,
                    (Election::NotNeeded, _) => (
                        ErrorCode::ElectionNotNeeded,
                        Some("Leader election not needed for topic partition.".to_string()),
                    ),
                    (Election::PreferredNotAvailable, _) => (
                        ErrorCode::PreferredLeaderNotAvailable,
                        Some("The preferred leader is not in the ISR or cannot lead now.".into()),
                    ),
                    (Election::NoEligibleLeader, _) => (
                        ErrorCode::EligibleLeadersNotAvailable,
                        Some("No replica can lead the partition now.".into()),
                    ),
                    (Election::UnknownPartition, _) => (
                        ErrorCode::UnknownTopicOrPartition,
                        Some("This server does not host this topic-partition.".into()),
                    ),
                };
                by_topic.entry(topic).or_default().push(PartitionResult {
                    partition_id: p,
                    error_code: code.code(),
                    error_message: message,
                    ..Default::default()
                });
            }
            Ok(Reply::Response(Response::ElectLeaders(
                ElectLeadersResponse {
                    replica_election_results: by_topic
                        .into_iter()
                        .map(|(topic, partition_result)| ReplicaElectionResult {
                            topic,
                            partition_result,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                },
            )))
        },
    );
}

/// The answer that refuses the whole request with `code`: the top-level error code from
/// version 1, and on every named partition (version 0 has only those).
fn refuse(
    requested: Option<&BTreeMap<String, Vec<i32>>>,
    code: ErrorCode,
    version: i16,
) -> ElectLeadersResponse {
    ElectLeadersResponse {
        error_code: if version >= 1 { code.code() } else { 0 },
        replica_election_results: requested
            .into_iter()
            .flatten()
            .map(|(topic, ps)| ReplicaElectionResult {
                topic: topic.clone(),
                partition_result: ps
                    .iter()
                    .map(|&p| PartitionResult {
                        partition_id: p,
                        error_code: code.code(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}
