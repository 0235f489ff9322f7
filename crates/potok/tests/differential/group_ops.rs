//! Consumer-group operations of the scenarios (classic protocol, the versions a Java consumer
//! of Kafka 4.x uses: JoinGroup v9, SyncGroup v5, Heartbeat v4, OffsetCommit v8, ...).

use bytes::Bytes;
use potok_protocol::messages::*;
use potok_protocol::ApiKey;

use crate::ops::{
    assignment, commit_request, join_request, leave_request, offset_delete_request,
    offset_fetch_request, sync_request, Join,
};
use crate::session::Session;

/// The session timeout the scenarios ask for (inside Kafka's default 6 s .. 30 min).
pub const SESSION_TIMEOUT_MS: i32 = 10_000;

impl Session {
    /// FindCoordinator v4 of one group.
    pub fn find_coordinator(
        &mut self,
        label: &str,
        group: &str,
    ) -> Option<FindCoordinatorResponse> {
        let req = FindCoordinatorRequest {
            key_type: 0,
            coordinator_keys: vec![group.into()],
            ..Default::default()
        };
        self.call(label, ApiKey::FindCoordinator, 4, &req)
    }

    /// Waits until the coordinator of `group` answers (Kafka creates and loads
    /// `__consumer_offsets` on first use: COORDINATOR_NOT_AVAILABLE, then
    /// COORDINATOR_LOAD_IN_PROGRESS).
    pub fn wait_coordinator(&mut self, group: &str) {
        self.wait_until(&format!("the coordinator of {group}"), |s| {
            let f: FindCoordinatorResponse = s.quiet(
                ApiKey::FindCoordinator,
                4,
                &FindCoordinatorRequest {
                    key_type: 0,
                    coordinator_keys: vec![group.into()],
                    ..Default::default()
                },
            );
            if f.coordinators[0].error_code != 0 {
                return false;
            }
            let o: OffsetFetchResponse =
                s.quiet(ApiKey::OffsetFetch, 8, &offset_fetch_request(group, None));
            o.groups[0].error_code == 0
        });
    }

    /// JoinGroup v9 (protocol type `consumer`, one `range` protocol subscribing `topics`).
    pub fn join(
        &mut self,
        conn: usize,
        label: &str,
        group: &str,
        member_id: &str,
        instance: Option<&str>,
        topics: &[&str],
    ) -> Option<JoinGroupResponse> {
        self.join_send(conn, group, member_id, instance, topics);
        self.join_recv(conn, label)
    }

    /// The sending half of [`Session::join`] (a JoinGroup waits for the other members).
    pub fn join_send(
        &mut self,
        conn: usize,
        group: &str,
        member_id: &str,
        instance: Option<&str>,
        topics: &[&str],
    ) {
        let req = join_request(
            group,
            member_id,
            instance,
            "consumer",
            topics,
            SESSION_TIMEOUT_MS,
        );
        self.send(conn, ApiKey::JoinGroup, 9, &req);
    }

    /// The receiving half of [`Session::join`].
    pub fn join_recv(&mut self, conn: usize, label: &str) -> Option<JoinGroupResponse> {
        self.recv(conn, label, ApiKey::JoinGroup, 9)
    }

    /// JoinGroup v9 of a request the scenario built.
    pub fn join_raw(&mut self, label: &str, req: &Join) -> Option<JoinGroupResponse> {
        self.call(label, ApiKey::JoinGroup, 9, req)
    }

    /// SyncGroup v5.
    pub fn sync(
        &mut self,
        conn: usize,
        label: &str,
        group: &str,
        generation: i32,
        member_id: &str,
        assignments: &[(String, Bytes)],
    ) -> Option<SyncGroupResponse> {
        let req = sync_request(group, generation, member_id, assignments);
        self.send(conn, ApiKey::SyncGroup, 5, &req);
        self.recv(conn, label, ApiKey::SyncGroup, 5)
    }

    /// Heartbeat v4.
    pub fn heartbeat(
        &mut self,
        label: &str,
        group: &str,
        generation: i32,
        member_id: &str,
    ) -> Option<HeartbeatResponse> {
        self.call(
            label,
            ApiKey::Heartbeat,
            4,
            &heartbeat_request(group, generation, member_id),
        )
    }

    /// Unrecorded Heartbeat v4; its error code.
    pub fn heartbeat_quiet(&mut self, group: &str, generation: i32, member_id: &str) -> i16 {
        let r: HeartbeatResponse = self.quiet(
            ApiKey::Heartbeat,
            4,
            &heartbeat_request(group, generation, member_id),
        );
        r.error_code
    }

    /// LeaveGroup v5 of (member id, instance id) pairs.
    pub fn leave(
        &mut self,
        label: &str,
        group: &str,
        members: &[(&str, Option<&str>)],
    ) -> Option<LeaveGroupResponse> {
        self.call(label, ApiKey::LeaveGroup, 5, &leave_request(group, members))
    }

    /// OffsetCommit v8 of (partition, offset) pairs of one topic, metadata `m`.
    pub fn commit(
        &mut self,
        label: &str,
        group: &str,
        generation: i32,
        member_id: &str,
        topic: &str,
        offsets: &[(i32, i64)],
    ) -> Option<OffsetCommitResponse> {
        let req = commit_request(group, generation, member_id, topic, offsets);
        self.call(label, ApiKey::OffsetCommit, 8, &req)
    }

    /// OffsetFetch v8 of one group: the given (topic, partitions), or every committed offset.
    pub fn offset_fetch(
        &mut self,
        label: &str,
        group: &str,
        topics: Option<&[(&str, &[i32])]>,
    ) -> Option<OffsetFetchResponse> {
        self.call(
            label,
            ApiKey::OffsetFetch,
            8,
            &offset_fetch_request(group, topics),
        )
    }

    /// ListGroups v5 with a state filter, recording only this scenario's groups.
    pub fn list_groups(&mut self, label: &str, states: &[&str]) -> Option<ListGroupsResponse> {
        let prefix = format!("{}-", self.name);
        let req = ListGroupsRequest {
            states_filter: states.iter().map(|s| s.to_string()).collect(),
            types_filter: Vec::new(),
            ..Default::default()
        };
        self.send(0, ApiKey::ListGroups, 5, &req);
        self.recv_with(
            0,
            label,
            ApiKey::ListGroups,
            5,
            |r: &mut ListGroupsResponse| {
                r.groups.retain(|g| g.group_id.starts_with(&prefix));
                r.groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
            },
        )
    }

    /// DescribeGroups v5.
    pub fn describe_groups(
        &mut self,
        label: &str,
        groups: &[&str],
    ) -> Option<DescribeGroupsResponse> {
        let req = DescribeGroupsRequest {
            groups: groups.iter().map(|g| g.to_string()).collect(),
            include_authorized_operations: false,
            ..Default::default()
        };
        self.send(0, ApiKey::DescribeGroups, 5, &req);
        // Kafka answers groups by coordinator shard; the order is not part of the contract.
        self.recv_with(
            0,
            label,
            ApiKey::DescribeGroups,
            5,
            |r: &mut DescribeGroupsResponse| r.groups.sort_by(|a, b| a.group_id.cmp(&b.group_id)),
        )
    }

    /// DeleteGroups v2.
    pub fn delete_groups(&mut self, label: &str, groups: &[&str]) -> Option<DeleteGroupsResponse> {
        let req = DeleteGroupsRequest {
            groups_names: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        };
        self.send(0, ApiKey::DeleteGroups, 2, &req);
        self.recv_with(
            0,
            label,
            ApiKey::DeleteGroups,
            2,
            |r: &mut DeleteGroupsResponse| r.results.sort_by(|a, b| a.group_id.cmp(&b.group_id)),
        )
    }

    /// OffsetDelete v0 of partitions of one topic.
    pub fn offset_delete(
        &mut self,
        label: &str,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Option<OffsetDeleteResponse> {
        self.call(
            label,
            ApiKey::OffsetDelete,
            0,
            &offset_delete_request(group, topic, partitions),
        )
    }

    /// Makes `group` a Stable group with one member subscribed to `topic` and assigned its
    /// partition 0, unrecorded (JoinGroup twice as KIP-394 asks, then SyncGroup as leader).
    /// Returns (member id, generation).
    pub fn stable_member(&mut self, group: &str, topic: &str) -> (String, i32) {
        self.wait_coordinator(group);
        let first: JoinGroupResponse = self.quiet(
            ApiKey::JoinGroup,
            9,
            &join_request(group, "", None, "consumer", &[topic], SESSION_TIMEOUT_MS),
        );
        assert_eq!(first.error_code, 79, "{}: first join {first:?}", self.name);
        let j: JoinGroupResponse = self.quiet(
            ApiKey::JoinGroup,
            9,
            &join_request(
                group,
                &first.member_id,
                None,
                "consumer",
                &[topic],
                SESSION_TIMEOUT_MS,
            ),
        );
        assert_eq!(j.error_code, 0, "{}: join {j:?}", self.name);
        let s: SyncGroupResponse = self.quiet(
            ApiKey::SyncGroup,
            5,
            &sync_request(
                group,
                j.generation_id,
                &j.member_id,
                &[(j.member_id.clone(), assignment(topic, &[0]))],
            ),
        );
        assert_eq!(s.error_code, 0, "{}: sync {s:?}", self.name);
        (j.member_id, j.generation_id)
    }
}

fn heartbeat_request(group: &str, generation: i32, member_id: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        group_id: group.into(),
        generation_id: generation,
        member_id: member_id.into(),
        group_instance_id: None,
        ..Default::default()
    }
}
