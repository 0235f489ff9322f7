//! SyncGroup, Heartbeat and LeaveGroup, and the expiry of members that stop heartbeating.

use super::*;

impl GroupCoordinator {
    /// Handles a SyncGroup. The answer is an [`Output::Sync`] for `token`, now or when the
    /// leader's assignment arrives.
    pub fn sync_group(&mut self, now_ms: i64, token: Token, req: SyncGroupRequest) {
        if let Err(code) = self.check_coordinator(&req.group_id) {
            return self.reply_sync(token, SyncGroupResponse::error(code));
        }
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return self.reply_sync(token, SyncGroupResponse::error(ErrorCode::UnknownMemberId));
        };
        if let Err(code) = validate_member(g, &req.member_id, req.group_instance_id.as_deref()) {
            return self.reply_sync(token, SyncGroupResponse::error(code));
        }
        if req.generation_id != g.generation {
            return self.reply_sync(
                token,
                SyncGroupResponse::error(ErrorCode::IllegalGeneration),
            );
        }
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|p| g.protocol_type.as_ref() != Some(p))
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|p| g.protocol_name.as_ref() != Some(p))
        {
            return self.reply_sync(
                token,
                SyncGroupResponse::error(ErrorCode::InconsistentGroupProtocol),
            );
        }
        let group_id = req.group_id.clone();
        match g.state {
            GroupState::Empty | GroupState::Dead => {
                self.reply_sync(token, SyncGroupResponse::error(ErrorCode::UnknownMemberId))
            }
            GroupState::PreparingRebalance => self.reply_sync(
                token,
                SyncGroupResponse::error(ErrorCode::RebalanceInProgress),
            ),
            GroupState::CompletingRebalance => {
                let old = g
                    .members
                    .get_mut(&req.member_id)
                    .and_then(|m| m.sync_waiter.replace(token));
                g.pending_sync.remove(&req.member_id);
                let all_synced = g.pending_sync.is_empty();
                let is_leader = g.is_leader(&req.member_id);
                if let Some(old) = old {
                    self.reply_sync(
                        old,
                        SyncGroupResponse::error(ErrorCode::RebalanceInProgress),
                    );
                }
                if all_synced {
                    self.timers.cancel(&TimerKey::PendingSync(group_id.clone()));
                }
                if is_leader {
                    self.complete_sync(&group_id, req.assignments, now_ms);
                }
            }
            GroupState::Stable => {
                g.pending_sync.remove(&req.member_id);
                let all_synced = g.pending_sync.is_empty();
                let m = &g.members[&req.member_id];
                let response = SyncGroupResponse {
                    error: ErrorCode::None,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                };
                let session = i64::from(m.session_timeout_ms);
                if all_synced {
                    self.timers.cancel(&TimerKey::PendingSync(group_id.clone()));
                }
                self.schedule_heartbeat(&group_id, &req.member_id, session, now_ms);
                self.reply_sync(token, response);
            }
        }
    }

    /// Stores the leader's assignment, answers every parked SyncGroup and makes the group
    /// Stable (Kafka's `storeGroup` callback with `setAndPropagateAssignment`).
    pub(super) fn complete_sync(
        &mut self,
        group_id: &str,
        assignments: Vec<(String, Bytes)>,
        now_ms: i64,
    ) {
        let g = self.groups.get_mut(group_id).expect("exists");
        let mut assignment: HashMap<String, Bytes> = assignments.into_iter().collect();
        // Members the leader did not assign get an empty assignment.
        for m in g.members.values_mut() {
            m.assignment = assignment.remove(&m.member_id).unwrap_or_default();
        }
        let generation = g.generation;
        let pending = Pending::Sync {
            group_id: group_id.to_owned(),
            generation,
        };
        if let Err(_e) = self.store_group(group_id, Some(pending)) {
            // Unreachable with validated strings; Kafka resets the assignment and rebalances
            // when the write fails, and so do we.
            let g = self.groups.get_mut(group_id).expect("exists");
            let mut fenced = Vec::new();
            for m in g.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(t) = m.sync_waiter.take() {
                    fenced.push(t);
                }
            }
            for t in fenced {
                self.reply_sync(t, SyncGroupResponse::error(ErrorCode::UnknownServerError));
            }
            self.maybe_prepare_rebalance(group_id, now_ms);
            return;
        }
        let g = self.groups.get_mut(group_id).expect("exists");
        let protocol_type = g.protocol_type.clone();
        let protocol_name = g.protocol_name.clone();
        let mut replies = Vec::new();
        for m in g.members.values_mut() {
            if let Some(t) = m.sync_waiter.take() {
                replies.push((
                    t,
                    SyncGroupResponse {
                        error: ErrorCode::None,
                        protocol_type: protocol_type.clone(),
                        protocol_name: protocol_name.clone(),
                        assignment: m.assignment.clone(),
                    },
                    m.member_id.clone(),
                    i64::from(m.session_timeout_ms),
                ));
            }
        }
        g.transition(GroupState::Stable, now_ms);
        for (t, r, id, session) in replies {
            self.reply_sync(t, r);
            self.schedule_heartbeat(group_id, &id, session, now_ms);
        }
    }

    // ----------------------------------------------------------------------------------------
    // Heartbeat, LeaveGroup
    // ----------------------------------------------------------------------------------------

    /// Handles a Heartbeat.
    pub fn heartbeat(&mut self, now_ms: i64, req: &HeartbeatRequest) -> ErrorCode {
        if let Err(code) = self.check_coordinator(&req.group_id) {
            return code;
        }
        let Some(g) = self.groups.get(&req.group_id) else {
            return ErrorCode::UnknownMemberId;
        };
        if let Err(code) = validate_member(g, &req.member_id, req.group_instance_id.as_deref()) {
            return code;
        }
        if req.generation_id != g.generation {
            return ErrorCode::IllegalGeneration;
        }
        let session = i64::from(g.members[&req.member_id].session_timeout_ms);
        let code = match g.state {
            GroupState::Empty | GroupState::Dead => return ErrorCode::UnknownMemberId,
            // Members may heartbeat between their JoinGroup and SyncGroup responses.
            GroupState::CompletingRebalance | GroupState::Stable => ErrorCode::None,
            GroupState::PreparingRebalance => ErrorCode::RebalanceInProgress,
        };
        self.schedule_heartbeat(&req.group_id, &req.member_id, session, now_ms);
        code
    }

    /// Handles a LeaveGroup (v0-v2 carry one member, v3+ a batch).
    pub fn leave_group(
        &mut self,
        now_ms: i64,
        group_id: &str,
        members: Vec<LeavingMember>,
    ) -> LeaveGroupResponse {
        if let Err(error) = self.check_coordinator(group_id) {
            return LeaveGroupResponse {
                error,
                members: Vec::new(),
            };
        }
        if !self.groups.contains_key(group_id) {
            // Kafka 4.x's coordinator answers the request NONE and each member
            // UNKNOWN_MEMBER_ID (the differential test's `group-leave` golden).
            return LeaveGroupResponse {
                error: ErrorCode::None,
                members: members
                    .into_iter()
                    .map(|m| (m, ErrorCode::UnknownMemberId))
                    .collect(),
            };
        }
        let mut results = Vec::with_capacity(members.len());
        for leaving in members {
            let g = self.groups.get_mut(group_id).expect("checked");
            let code = if leaving.member_id.is_empty() {
                // Removal by instance id (KIP-345 admin API).
                match leaving
                    .group_instance_id
                    .as_ref()
                    .and_then(|i| g.static_members.get(i))
                    .cloned()
                {
                    Some(member_id) => {
                        self.remove_member_and_update_group(group_id, &member_id, now_ms);
                        ErrorCode::None
                    }
                    None => ErrorCode::UnknownMemberId,
                }
            } else if g.pending_members.remove(&leaving.member_id) {
                self.timers.cancel(&TimerKey::PendingMember(
                    group_id.to_owned(),
                    leaving.member_id.clone(),
                ));
                self.check_join_complete(group_id, now_ms);
                ErrorCode::None
            } else {
                match validate_member(g, &leaving.member_id, leaving.group_instance_id.as_deref()) {
                    Err(code) => code,
                    Ok(()) => {
                        self.remove_member_and_update_group(group_id, &leaving.member_id, now_ms);
                        ErrorCode::None
                    }
                }
            };
            results.push((leaving, code));
        }
        LeaveGroupResponse {
            error: ErrorCode::None,
            members: results,
        }
    }

    // ----------------------------------------------------------------------------------------
    // Offsets
    // ----------------------------------------------------------------------------------------
}
