//! The group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
//! OffsetFetch, ListGroups, DescribeGroups, DeleteGroups and OffsetDelete. Each handler turns
//! the wire request of its version into `potok_group` domain types, calls the coordinator
//! through [`super::GroupService::call`] and builds the response for the same version (fields
//! that do not exist at that version are left at their defaults, so encoding never fails).

use std::sync::Arc;

use potok_group::{
    CommitPartition, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeavingMember,
    OffsetCommitRequest, Protocol, SyncGroupRequest, SyncGroupResponse, Token,
};
use potok_protocol::messages::delete_groups_response::DeletableGroupResult;
use potok_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use potok_protocol::messages::join_group_response::JoinGroupResponseMember;
use potok_protocol::messages::leave_group_response::MemberResponse;
use potok_protocol::messages::list_groups_response::ListedGroup;
use potok_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use potok_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use potok_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use potok_protocol::messages::{
    DeleteGroupsResponse, DescribeGroupsResponse, HeartbeatResponse,
    JoinGroupResponse as WireJoinResponse, LeaveGroupResponse, ListGroupsResponse,
    OffsetCommitResponse, OffsetDeleteResponse, OffsetFetchResponse,
    SyncGroupResponse as WireSyncResponse,
};
use potok_protocol::{ApiKey, ErrorCode, Request, Response};
use potok_records::{LeaderEpoch, Offset};

use super::{GroupService, Parked};
use crate::error::{BrokerError, Result};
use crate::registry::{Registry, Reply, RequestContext};
use crate::Broker;

/// Registers the group APIs. Lowest versions are those Kafka 4.0 still accepts (KIP-896);
/// the registry clamps the highest to the stable versions the codec knows.
pub fn register(r: &mut Registry) {
    r.register(
        ApiKey::FindCoordinator,
        0,
        6,
        super::find_coordinator::find_coordinator,
    );
    r.register(ApiKey::JoinGroup, 2, 9, join_group);
    r.register(ApiKey::SyncGroup, 0, 5, sync_group);
    r.register(ApiKey::Heartbeat, 0, 4, heartbeat);
    r.register(ApiKey::LeaveGroup, 0, 5, leave_group);
    r.register(ApiKey::OffsetCommit, 2, 9, offset_commit);
    r.register(ApiKey::OffsetFetch, 1, 9, offset_fetch);
    r.register(ApiKey::ListGroups, 0, 5, list_groups);
    r.register(ApiKey::DescribeGroups, 0, 5, describe_groups);
    r.register(ApiKey::DeleteGroups, 0, 2, delete_groups);
    r.register(ApiKey::OffsetDelete, 0, 0, offset_delete);
}

fn wrong(name: &'static str) -> BrokerError {
    BrokerError::NoHandler(name)
}

fn respond(r: Response) -> Result<Reply> {
    Ok(Reply::Response(r))
}

/// Removes a parked request's channel if the handler future is dropped (the client went away
/// or the broker shuts down) before the coordinator answered.
struct ParkGuard<'a> {
    svc: &'a GroupService,
    token: Token,
}

impl Drop for ParkGuard<'_> {
    fn drop(&mut self) {
        self.svc.unpark(self.token);
    }
}

/// Waits for a parked answer, or gives `COORDINATOR_NOT_AVAILABLE`-class errors at shutdown.
async fn wait_parked(
    broker: &Broker,
    rx: tokio::sync::oneshot::Receiver<Parked>,
) -> Option<Parked> {
    let mut shutdown = broker.shutdown_signal();
    tokio::select! {
        r = rx => r.ok(),
        _ = shutdown.changed() => None,
    }
}

fn client_host(ctx: &RequestContext) -> String {
    // Kafka prints the client address as `/ip`.
    format!("/{}", ctx.peer.ip())
}

async fn join_group(broker: Arc<Broker>, ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::JoinGroup(req) = req else {
        return Err(wrong("JoinGroup"));
    };
    let v = ctx.api_version;
    let domain = JoinGroupRequest {
        group_id: req.group_id,
        member_id: req.member_id,
        group_instance_id: req.group_instance_id,
        protocol_type: req.protocol_type,
        protocols: req
            .protocols
            .into_iter()
            .map(|p| Protocol {
                name: p.name,
                metadata: p.metadata,
            })
            .collect(),
        session_timeout_ms: req.session_timeout_ms,
        // JoinGroup v0 had no rebalance timeout; Kafka uses the session timeout.
        rebalance_timeout_ms: if v >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        client_id: ctx.header.client_id.clone().unwrap_or_default(),
        client_host: client_host(&ctx),
        require_known_member_id: v >= 4,
        supports_skip_assignment: v >= 9,
    };
    let svc = &broker.groups;
    let (token, rx) = svc.park();
    let guard = ParkGuard { svc, token };
    let answer = match svc
        .call_acked(|c, now| c.join_group(now, token, domain))
        .await
    {
        Ok(()) => wait_parked(&broker, rx).await,
        Err(code) => Some(Parked::Join(JoinGroupResponse::error(code, ""))),
    };
    drop(guard);
    let r = match answer {
        Some(Parked::Join(r)) => r,
        _ => JoinGroupResponse::error(ErrorCode::CoordinatorNotAvailable, ""),
    };
    respond(Response::JoinGroup(WireJoinResponse {
        error_code: r.error.code(),
        generation_id: r.generation_id,
        protocol_type: if v >= 7 { r.protocol_type } else { None },
        // Non-nullable before v7.
        protocol_name: if v >= 7 {
            r.protocol_name
        } else {
            Some(r.protocol_name.unwrap_or_default())
        },
        leader: r.leader,
        skip_assignment: v >= 9 && r.skip_assignment,
        member_id: r.member_id,
        members: r
            .members
            .into_iter()
            .map(|m| JoinGroupResponseMember {
                member_id: m.member_id,
                group_instance_id: if v >= 5 { m.group_instance_id } else { None },
                metadata: m.metadata,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }))
}

async fn sync_group(broker: Arc<Broker>, ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::SyncGroup(req) = req else {
        return Err(wrong("SyncGroup"));
    };
    let v = ctx.api_version;
    let domain = SyncGroupRequest {
        group_id: req.group_id,
        generation_id: req.generation_id,
        member_id: req.member_id,
        group_instance_id: req.group_instance_id,
        protocol_type: req.protocol_type,
        protocol_name: req.protocol_name,
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id, a.assignment))
            .collect(),
    };
    let svc = &broker.groups;
    let (token, rx) = svc.park();
    let guard = ParkGuard { svc, token };
    let answer = match svc
        .call_acked(|c, now| c.sync_group(now, token, domain))
        .await
    {
        Ok(()) => wait_parked(&broker, rx).await,
        Err(code) => Some(Parked::Sync(SyncGroupResponse::error(code))),
    };
    drop(guard);
    let r = match answer {
        Some(Parked::Sync(r)) => r,
        _ => SyncGroupResponse::error(ErrorCode::CoordinatorNotAvailable),
    };
    respond(Response::SyncGroup(WireSyncResponse {
        error_code: r.error.code(),
        protocol_type: if v >= 5 { r.protocol_type } else { None },
        protocol_name: if v >= 5 { r.protocol_name } else { None },
        assignment: r.assignment,
        ..Default::default()
    }))
}

async fn heartbeat(broker: Arc<Broker>, _ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::Heartbeat(req) = req else {
        return Err(wrong("Heartbeat"));
    };
    let domain = HeartbeatRequest {
        group_id: req.group_id,
        generation_id: req.generation_id,
        member_id: req.member_id,
        group_instance_id: req.group_instance_id,
    };
    let code = broker
        .groups
        .call(|c, now| c.heartbeat(now, &domain))
        .unwrap_or_else(|e| e);
    respond(Response::Heartbeat(HeartbeatResponse {
        error_code: code.code(),
        ..Default::default()
    }))
}

async fn leave_group(broker: Arc<Broker>, ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::LeaveGroup(req) = req else {
        return Err(wrong("LeaveGroup"));
    };
    let v = ctx.api_version;
    let members: Vec<LeavingMember> = if v >= 3 {
        req.members
            .into_iter()
            .map(|m| LeavingMember {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: req.member_id,
            group_instance_id: None,
        }]
    };
    let group_id = req.group_id;
    let result = broker
        .groups
        .call_acked(|c, now| c.leave_group(now, &group_id, members))
        .await;
    let mut resp = LeaveGroupResponse::default();
    match result {
        Err(code) => resp.error_code = code.code(),
        Ok(r) => {
            if v >= 3 {
                resp.error_code = r.error.code();
                resp.members = r
                    .members
                    .into_iter()
                    .map(|(m, code)| MemberResponse {
                        member_id: m.member_id,
                        group_instance_id: m.group_instance_id,
                        error_code: code.code(),
                        ..Default::default()
                    })
                    .collect();
            } else {
                // v0-v2 carry one member and its error at the top level.
                let member_error = r
                    .members
                    .first()
                    .map(|(_, c)| *c)
                    .unwrap_or(ErrorCode::None);
                resp.error_code = if r.error != ErrorCode::None {
                    r.error.code()
                } else {
                    member_error.code()
                };
            }
        }
    }
    respond(Response::LeaveGroup(resp))
}

async fn offset_commit(broker: Arc<Broker>, _ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::OffsetCommit(req) = req else {
        return Err(wrong("OffsetCommit"));
    };
    // Partitions of topics that do not exist are answered here, as Kafka's request handler
    // does before the coordinator sees the request.
    let mut unknown: Vec<(String, Vec<i32>)> = Vec::new();
    let mut topics = Vec::new();
    for t in req.topics {
        let topic = broker.topics.get(&t.name);
        let mut known = Vec::new();
        let mut missing = Vec::new();
        for p in t.partitions {
            if topic
                .as_ref()
                .is_some_and(|tp| tp.partition(p.partition_index).is_some())
            {
                known.push(CommitPartition {
                    partition: p.partition_index,
                    offset: Offset(p.committed_offset),
                    leader_epoch: LeaderEpoch(p.committed_leader_epoch),
                    metadata: p.committed_metadata,
                });
            } else {
                missing.push(p.partition_index);
            }
        }
        if !missing.is_empty() {
            unknown.push((t.name.clone(), missing));
        }
        if !known.is_empty() {
            topics.push((t.name, known));
        }
    }
    let domain = OffsetCommitRequest {
        group_id: req.group_id,
        generation_id: req.generation_id_or_member_epoch,
        member_id: req.member_id,
        group_instance_id: req.group_instance_id,
        retention_time_ms: req.retention_time_ms,
        topics,
    };
    let results = match broker
        .groups
        .call_acked(|c, now| c.commit_offsets(now, &domain))
        .await
    {
        Ok(r) => r,
        Err(code) => domain
            .topics
            .iter()
            .map(|(t, ps)| (t.clone(), ps.iter().map(|p| (p.partition, code)).collect()))
            .collect(),
    };
    let mut out: Vec<OffsetCommitResponseTopic> = results
        .into_iter()
        .map(|(name, ps)| OffsetCommitResponseTopic {
            name,
            partitions: ps
                .into_iter()
                .map(|(p, code)| OffsetCommitResponsePartition {
                    partition_index: p,
                    error_code: code.code(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    for (name, ps) in unknown {
        let parts = ps.into_iter().map(|p| OffsetCommitResponsePartition {
            partition_index: p,
            error_code: ErrorCode::UnknownTopicOrPartition.code(),
            ..Default::default()
        });
        match out.iter_mut().find(|t| t.name == name) {
            Some(t) => t.partitions.extend(parts),
            None => out.push(OffsetCommitResponseTopic {
                name,
                partitions: parts.collect(),
                ..Default::default()
            }),
        }
    }
    respond(Response::OffsetCommit(OffsetCommitResponse {
        topics: out,
        ..Default::default()
    }))
}

async fn offset_fetch(broker: Arc<Broker>, ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::OffsetFetch(req) = req else {
        return Err(wrong("OffsetFetch"));
    };
    let v = ctx.api_version;
    let mut resp = OffsetFetchResponse::default();
    if v >= 8 {
        // Several groups at once (KIP-709).
        for g in req.groups {
            let topics: Option<Vec<(String, Vec<i32>)>> = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name, t.partition_indexes))
                    .collect()
            });
            let stable = req.require_stable;
            let r = broker
                .groups
                .call_replicated(&g.group_id, |c, _| {
                    require_stable(
                        c,
                        &g.group_id,
                        c.fetch_offsets(&g.group_id, topics.as_deref()),
                        stable,
                    )
                })
                .await;
            let group = match r {
                Ok(r) => OffsetFetchResponseGroup {
                    group_id: g.group_id,
                    error_code: r.error.code(),
                    topics: r
                        .topics
                        .into_iter()
                        .map(|(name, ps)| OffsetFetchResponseTopics {
                            name,
                            partitions: ps
                                .into_iter()
                                .map(|p| OffsetFetchResponsePartitions {
                                    partition_index: p.partition,
                                    committed_offset: p.offset.0,
                                    committed_leader_epoch: p.leader_epoch.0,
                                    metadata: Some(p.metadata),
                                    error_code: p.error.code(),
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                },
                Err(code) => OffsetFetchResponseGroup {
                    group_id: g.group_id,
                    error_code: code.code(),
                    ..Default::default()
                },
            };
            resp.groups.push(group);
        }
    } else {
        let topics: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name, t.partition_indexes))
                .collect()
        });
        let stable = req.require_stable;
        let r = broker
            .groups
            .call_replicated(&req.group_id, |c, _| {
                require_stable(
                    c,
                    &req.group_id,
                    c.fetch_offsets(&req.group_id, topics.as_deref()),
                    stable,
                )
            })
            .await;
        match r {
            Ok(r) => {
                if v >= 2 {
                    resp.error_code = r.error.code();
                }
                resp.topics = r
                    .topics
                    .into_iter()
                    .map(|(name, ps)| OffsetFetchResponseTopic {
                        name,
                        partitions: ps
                            .into_iter()
                            .map(|p| OffsetFetchResponsePartition {
                                partition_index: p.partition,
                                committed_offset: p.offset.0,
                                committed_leader_epoch: if v >= 5 { p.leader_epoch.0 } else { -1 },
                                metadata: Some(p.metadata),
                                error_code: p.error.code(),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect();
            }
            Err(code) => {
                if v >= 2 {
                    resp.error_code = code.code();
                }
            }
        }
    }
    respond(Response::OffsetFetch(resp))
}

/// OffsetFetch v7+ `require_stable` (KIP-447): a partition whose offset a transaction has
/// committed but not yet completed answers `UNSTABLE_OFFSET_COMMIT` (the consumer retries)
/// instead of the older offset.
fn require_stable(
    c: &potok_group::GroupCoordinator,
    group: &str,
    mut r: potok_group::OffsetFetchResponse,
    require: bool,
) -> potok_group::OffsetFetchResponse {
    if !require {
        return r;
    }
    for (topic, parts) in &mut r.topics {
        for p in parts {
            if c.has_pending_txn_offset(group, topic, p.partition) {
                p.error = ErrorCode::UnstableOffsetCommit;
                p.offset = Offset(-1);
            }
        }
    }
    r
}

async fn list_groups(broker: Arc<Broker>, ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::ListGroups(req) = req else {
        return Err(wrong("ListGroups"));
    };
    let v = ctx.api_version;
    let (listed, loading) = broker
        .groups
        .call(|c, _| {
            (
                c.list_groups(&req.states_filter, &req.types_filter),
                c.is_loading(),
            )
        })
        .unwrap_or_default();
    respond(Response::ListGroups(ListGroupsResponse {
        // Kafka lists what is loaded and answers COORDINATOR_LOAD_IN_PROGRESS while a
        // partition of this coordinator is still loading.
        error_code: if loading {
            ErrorCode::CoordinatorLoadInProgress.code()
        } else {
            ErrorCode::None.code()
        },
        groups: listed
            .into_iter()
            .map(|g| ListedGroup {
                group_id: g.group_id,
                protocol_type: g.protocol_type,
                group_state: if v >= 4 {
                    g.state.as_str().to_owned()
                } else {
                    String::new()
                },
                // Kafka writes the type as `GroupType.toString` does: lower case ("classic").
                group_type: if v >= 5 {
                    "classic".to_owned()
                } else {
                    String::new()
                },
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }))
}

async fn describe_groups(broker: Arc<Broker>, ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::DescribeGroups(req) = req else {
        return Err(wrong("DescribeGroups"));
    };
    let v = ctx.api_version;
    let mut groups = Vec::with_capacity(req.groups.len());
    for id in req.groups {
        let d = broker
            .groups
            .call(|c, _| c.check_coordinator(&id).map(|()| c.describe_group(&id)));
        groups.push(match d {
            // Not the coordinator of this group (any more), or still loading it.
            Ok(Err(code)) | Err(code) => DescribedGroup {
                group_id: id,
                error_code: code.code(),
                ..Default::default()
            },
            Ok(Ok(d)) => match d {
                // Kafka (before v6) describes an unknown group as Dead, without an error.
                None => DescribedGroup {
                    group_id: id,
                    group_state: "Dead".into(),
                    ..Default::default()
                },
                Some(d) => DescribedGroup {
                    group_id: d.group_id,
                    group_state: d.state.as_str().into(),
                    protocol_type: d.protocol_type,
                    protocol_data: d.protocol,
                    members: d
                        .members
                        .into_iter()
                        .map(|m| DescribedGroupMember {
                            member_id: m.member_id,
                            group_instance_id: if v >= 4 { m.group_instance_id } else { None },
                            client_id: m.client_id,
                            client_host: m.client_host,
                            member_metadata: m.metadata,
                            member_assignment: m.assignment,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                },
            },
        });
    }
    respond(Response::DescribeGroups(DescribeGroupsResponse {
        groups,
        ..Default::default()
    }))
}

async fn delete_groups(broker: Arc<Broker>, _ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::DeleteGroups(req) = req else {
        return Err(wrong("DeleteGroups"));
    };
    let ids = req.groups_names;
    let results = match broker.groups.call_acked(|c, _| c.delete_groups(&ids)).await {
        Ok(r) => r,
        Err(code) => ids.iter().map(|g| (g.clone(), code)).collect(),
    };
    respond(Response::DeleteGroups(DeleteGroupsResponse {
        results: results
            .into_iter()
            .map(|(group_id, code)| DeletableGroupResult {
                group_id,
                error_code: code.code(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }))
}

async fn offset_delete(broker: Arc<Broker>, _ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::OffsetDelete(req) = req else {
        return Err(wrong("OffsetDelete"));
    };
    let topics: Vec<(String, Vec<i32>)> = req
        .topics
        .into_iter()
        .map(|t| {
            (
                t.name,
                t.partitions
                    .into_iter()
                    .map(|p| p.partition_index)
                    .collect(),
            )
        })
        .collect();
    let group_id = req.group_id;
    let mut resp = OffsetDeleteResponse::default();
    match broker
        .groups
        .call_acked(|c, _| c.delete_offsets(&group_id, &topics))
        .await
    {
        Err(code) | Ok(Err(code)) => resp.error_code = code.code(),
        Ok(Ok(results)) => {
            resp.topics = results
                .into_iter()
                .map(|(name, ps)| OffsetDeleteResponseTopic {
                    name,
                    partitions: ps
                        .into_iter()
                        .map(|(p, code)| OffsetDeleteResponsePartition {
                            partition_index: p,
                            error_code: code.code(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect();
        }
    }
    respond(Response::OffsetDelete(resp))
}
