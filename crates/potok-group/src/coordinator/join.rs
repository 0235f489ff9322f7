//! JoinGroup: new, known and static members, rebalance preparation and completion of the join
//! phase (Kafka's `GroupCoordinator.handleJoinGroup` and its delayed joins).

use super::*;

impl GroupCoordinator {
    /// Handles a JoinGroup. The answer is an [`Output::Join`] for `token`, now or when the
    /// join phase completes.
    pub fn join_group(&mut self, now_ms: i64, token: Token, req: JoinGroupRequest) {
        let err = |this: &mut Self, code| {
            let member_id = req.member_id.clone();
            this.reply_join(token, JoinGroupResponse::error(code, member_id));
        };
        if req.group_id.is_empty() || too_long(&req.group_id) {
            return err(self, ErrorCode::InvalidGroupId);
        }
        if let Err(code) = self.check_coordinator(&req.group_id) {
            return err(self, code);
        }
        let strings_ok = !too_long(&req.member_id)
            && !too_long(&req.client_id)
            && !too_long(&req.client_host)
            && !too_long(&req.protocol_type)
            && req
                .group_instance_id
                .as_deref()
                .is_none_or(|i| !i.is_empty() && i.len() <= 249)
            && req.protocols.iter().all(|p| !too_long(&p.name));
        if !strings_ok {
            return err(self, ErrorCode::InvalidRequest);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return err(self, ErrorCode::InvalidSessionTimeout);
        }
        let exists = self.groups.contains_key(&req.group_id);
        if !exists {
            // Kafka: a known member id for a group that does not exist is stale.
            if !req.member_id.is_empty() {
                return err(self, ErrorCode::UnknownMemberId);
            }
            let partition = self.partition_for(&req.group_id);
            self.groups.insert(
                req.group_id.clone(),
                Group::new(req.group_id.clone(), partition, now_ms),
            );
        }
        let group_id = req.group_id.clone();
        if req.member_id.is_empty() {
            self.join_unknown_member(now_ms, token, req);
        } else {
            self.join_known_member(now_ms, token, req);
        }
        // A freshly created group that the request did not join leaves no trace.
        if !exists {
            if let Some(g) = self.groups.get(&group_id) {
                if g.members.is_empty()
                    && g.pending_members.is_empty()
                    && g.state == GroupState::Empty
                    && !g.has_offsets()
                {
                    self.groups.remove(&group_id);
                }
            }
        }
        // Kafka re-checks the join purgatory after every JoinGroup.
        self.check_join_complete(&group_id, now_ms);
    }

    /// Kafka's `acceptJoiningMember` (`group.max.size`).
    pub(super) fn accept_joining_member(&self, g: &Group, member_id: &str) -> bool {
        let max = self.config.max_size;
        match g.state {
            GroupState::Empty | GroupState::Dead => true,
            // Counting awaiting members rather than all members lets a shrunk max size kick
            // out the last members to rejoin.
            GroupState::PreparingRebalance => {
                g.members
                    .get(member_id)
                    .is_some_and(|m| m.join_waiter.is_some())
                    || g.num_awaiting_join() < max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                g.members.contains_key(member_id) || g.members.len() < max
            }
        }
    }

    pub(super) fn join_unknown_member(&mut self, now_ms: i64, token: Token, req: JoinGroupRequest) {
        let g = &self.groups[&req.group_id];
        if !g.supports_protocols(&req.protocol_type, &req.protocols) {
            return self.reply_join(
                token,
                JoinGroupResponse::error(ErrorCode::InconsistentGroupProtocol, ""),
            );
        }
        if !self.accept_joining_member(g, "") {
            return self.reply_join(
                token,
                JoinGroupResponse::error(ErrorCode::GroupMaxSizeReached, ""),
            );
        }
        let prefix = req
            .group_instance_id
            .as_deref()
            .unwrap_or(&req.client_id)
            .to_owned();
        let new_member_id = self.new_member_id(&prefix);
        if let Some(instance) = req.group_instance_id.clone() {
            let existing = self.groups[&req.group_id]
                .static_members
                .get(&instance)
                .cloned();
            match existing {
                Some(old_member_id) => {
                    self.replace_static_member(now_ms, token, req, &old_member_id, new_member_id)
                }
                None => self.add_member_and_rebalance(now_ms, token, req, new_member_id),
            }
        } else if req.require_known_member_id {
            // KIP-394: the member must come back with this id; until then it holds up the
            // join phase for at most its session timeout.
            let group_id = req.group_id.clone();
            let g = self.groups.get_mut(&group_id).expect("checked above");
            g.pending_members.insert(new_member_id.clone());
            self.timers.schedule(
                TimerKey::PendingMember(group_id, new_member_id.clone()),
                now_ms.saturating_add(i64::from(req.session_timeout_ms)),
            );
            self.reply_join(
                token,
                JoinGroupResponse::error(ErrorCode::MemberIdRequired, new_member_id),
            );
        } else {
            self.add_member_and_rebalance(now_ms, token, req, new_member_id);
        }
    }

    pub(super) fn join_known_member(&mut self, now_ms: i64, token: Token, req: JoinGroupRequest) {
        let group_id = req.group_id.clone();
        let g = &self.groups[&group_id];
        if !g.supports_protocols(&req.protocol_type, &req.protocols) {
            return self.reply_join(
                token,
                JoinGroupResponse::error(ErrorCode::InconsistentGroupProtocol, req.member_id),
            );
        }
        if g.pending_members.contains(&req.member_id) {
            if !self.accept_joining_member(g, &req.member_id) {
                return self.reply_join(
                    token,
                    JoinGroupResponse::error(ErrorCode::GroupMaxSizeReached, req.member_id),
                );
            }
            let member_id = req.member_id.clone();
            let g = self.groups.get_mut(&group_id).expect("exists");
            g.pending_members.remove(&member_id);
            self.timers
                .cancel(&TimerKey::PendingMember(group_id, member_id.clone()));
            return self.add_member_and_rebalance(now_ms, token, req, member_id);
        }
        if let Err(code) = validate_member(g, &req.member_id, req.group_instance_id.as_deref()) {
            return self.reply_join(token, JoinGroupResponse::error(code, req.member_id));
        }
        if !self.accept_joining_member(g, &req.member_id) {
            return self.reply_join(
                token,
                JoinGroupResponse::error(ErrorCode::GroupMaxSizeReached, req.member_id),
            );
        }
        let member = &g.members[&req.member_id];
        let same_metadata = member.protocols == req.protocols;
        match g.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(now_ms, token, req),
            GroupState::CompletingRebalance => {
                if same_metadata {
                    // The member lost its JoinGroup response: answer again for the current
                    // generation.
                    let response =
                        self.current_generation_response(&group_id, &req.member_id, false);
                    self.reply_join(token, response);
                } else {
                    self.update_member_and_rebalance(now_ms, token, req);
                }
            }
            GroupState::Stable => {
                if g.is_leader(&req.member_id) || !same_metadata {
                    // A rejoining leader forces a rebalance (its way to react to metadata
                    // changes, e.g. new partitions), as does a change of subscription.
                    self.update_member_and_rebalance(now_ms, token, req);
                } else {
                    let response =
                        self.current_generation_response(&group_id, &req.member_id, false);
                    self.reply_join(token, response);
                }
            }
            GroupState::Empty | GroupState::Dead => self.reply_join(
                token,
                JoinGroupResponse::error(ErrorCode::UnknownMemberId, req.member_id),
            ),
        }
    }

    pub(super) fn current_generation_response(
        &self,
        group_id: &str,
        member_id: &str,
        skip_assignment: bool,
    ) -> JoinGroupResponse {
        let g = &self.groups[group_id];
        let members = if g.is_leader(member_id) {
            member_list(g)
        } else {
            Vec::new()
        };
        JoinGroupResponse {
            error: ErrorCode::None,
            generation_id: g.generation,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol_name.clone(),
            leader: g.leader.clone().unwrap_or_default(),
            skip_assignment,
            member_id: member_id.to_owned(),
            members,
        }
    }

    pub(super) fn add_member_and_rebalance(
        &mut self,
        now_ms: i64,
        token: Token,
        req: JoinGroupRequest,
        member_id: String,
    ) {
        let group_id = req.group_id.clone();
        let g = self.groups.get_mut(&group_id).expect("exists");
        // Kafka extends the initial delay when members keep arriving during the first
        // rebalance (`newMemberAdded`).
        if g.state == GroupState::PreparingRebalance && g.generation == 0 {
            g.new_member_added = true;
        }
        if g.members.is_empty() {
            g.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            g.static_members.insert(instance.clone(), member_id.clone());
        }
        if g.leader.is_none() {
            g.leader = Some(member_id.clone());
        }
        g.members.insert(
            member_id.clone(),
            Member {
                member_id: member_id.clone(),
                group_instance_id: req.group_instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                session_timeout_ms: req.session_timeout_ms,
                protocols: req.protocols,
                assignment: Bytes::new(),
                join_waiter: Some(token),
                sync_waiter: None,
                is_new: true,
                supports_skip_assignment: req.supports_skip_assignment,
            },
        );
        // New members cannot heartbeat (they do not know their id yet) and their sockets are
        // muted while they wait, so a member that went away would hold the rebalance forever;
        // Kafka drops it after NewMemberJoinTimeoutMs instead.
        let timeout = self.config.new_member_join_timeout_ms;
        self.schedule_heartbeat(&group_id, &member_id, timeout, now_ms);
        self.maybe_prepare_rebalance(&group_id, now_ms);
    }

    pub(super) fn update_member_and_rebalance(
        &mut self,
        now_ms: i64,
        token: Token,
        req: JoinGroupRequest,
    ) {
        let group_id = req.group_id.clone();
        let old_waiter = {
            let g = self.groups.get_mut(&group_id).expect("exists");
            let m = g.members.get_mut(&req.member_id).expect("validated");
            m.protocols = req.protocols;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.session_timeout_ms = req.session_timeout_ms;
            m.supports_skip_assignment = req.supports_skip_assignment;
            m.join_waiter.replace(token)
        };
        if let Some(old) = old_waiter {
            // A second JoinGroup replaces the first, which the client has given up on; answer
            // it so that nothing stays parked.
            self.reply_join(
                old,
                JoinGroupResponse::error(ErrorCode::RebalanceInProgress, req.member_id),
            );
        }
        self.maybe_prepare_rebalance(&group_id, now_ms);
    }

    pub(super) fn replace_static_member(
        &mut self,
        now_ms: i64,
        token: Token,
        req: JoinGroupRequest,
        old_member_id: &str,
        new_member_id: String,
    ) {
        let group_id = req.group_id.clone();
        let instance = req.group_instance_id.clone().unwrap_or_default();
        let g = self.groups.get_mut(&group_id).expect("exists");
        let previous_leader = g.leader.clone().unwrap_or_default();
        let Some(mut member) = g.members.remove(old_member_id) else {
            return;
        };
        let fenced_join = member.join_waiter.take();
        let fenced_sync = member.sync_waiter.take();
        member.member_id = new_member_id.clone();
        let undo = StaticRejoin {
            group_id: group_id.clone(),
            instance: instance.clone(),
            old_member_id: old_member_id.to_owned(),
            new_member_id: new_member_id.clone(),
            protocols: member.protocols.clone(),
            rebalance_timeout_ms: member.rebalance_timeout_ms,
            session_timeout_ms: member.session_timeout_ms,
            supports_skip_assignment: member.supports_skip_assignment,
        };
        let old_protocols = std::mem::replace(&mut member.protocols, req.protocols.clone());
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.session_timeout_ms = req.session_timeout_ms;
        member.supports_skip_assignment = req.supports_skip_assignment;
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        g.members.insert(new_member_id.clone(), member);
        g.static_members.insert(instance, new_member_id.clone());
        if g.is_leader(old_member_id) {
            g.leader = Some(new_member_id.clone());
        }
        if g.pending_sync.remove(old_member_id) {
            g.pending_sync.insert(new_member_id.clone());
        }
        let state = g.state;
        self.timers.cancel(&TimerKey::Heartbeat(
            group_id.clone(),
            old_member_id.to_owned(),
        ));
        // KIP-345: the old incarnation's parked requests are fenced.
        if let Some(t) = fenced_join {
            self.reply_join(
                t,
                JoinGroupResponse::error(ErrorCode::FencedInstanceId, old_member_id),
            );
        }
        if let Some(t) = fenced_sync {
            self.reply_sync(t, SyncGroupResponse::error(ErrorCode::FencedInstanceId));
        }
        let session = i64::from(req.session_timeout_ms);
        self.schedule_heartbeat(&group_id, &new_member_id, session, now_ms);
        match state {
            GroupState::Stable => {
                let g = self.groups.get_mut(&group_id).expect("exists");
                // Rebalance only if the group would pick a different protocol now; otherwise
                // persist the new member id and hand back the current generation.
                if g.select_protocol() == g.protocol_name {
                    // A failed append reverts the new identity (`persisted`); the broker turns
                    // the answer below into the append's error.
                    let pending = Pending::StaticRejoin(Box::new(undo));
                    if self.store_group(&group_id, Some(pending)).is_err() {
                        // Entry validation makes this unreachable; undo rather than lose the
                        // member's identity silently.
                        let g = self.groups.get_mut(&group_id).expect("exists");
                        if let Some(m) = g.members.get_mut(&new_member_id) {
                            m.protocols = old_protocols;
                        }
                        return self.reply_join(
                            token,
                            JoinGroupResponse::error(ErrorCode::UnknownServerError, ""),
                        );
                    }
                    let g = &self.groups[&group_id];
                    let is_leader = g.is_leader(&new_member_id);
                    let skip = is_leader && req.supports_skip_assignment;
                    let response = JoinGroupResponse {
                        error: ErrorCode::None,
                        generation_id: g.generation,
                        protocol_type: g.protocol_type.clone(),
                        protocol_name: g.protocol_name.clone(),
                        // Kafka answers with the leader as it was before the replacement, so a
                        // client without KIP-814 support does not act as leader.
                        leader: previous_leader,
                        skip_assignment: skip,
                        member_id: new_member_id,
                        members: if skip { member_list(g) } else { Vec::new() },
                    };
                    self.reply_join(token, response);
                } else {
                    self.set_join_waiter(&group_id, &new_member_id, token);
                    self.maybe_prepare_rebalance(&group_id, now_ms);
                }
            }
            GroupState::CompletingRebalance => {
                // The old incarnation may not have got its JoinGroup response: rebalance.
                self.set_join_waiter(&group_id, &new_member_id, token);
                self.maybe_prepare_rebalance(&group_id, now_ms);
            }
            GroupState::PreparingRebalance => {
                self.set_join_waiter(&group_id, &new_member_id, token);
            }
            GroupState::Empty | GroupState::Dead => {
                self.reply_join(
                    token,
                    JoinGroupResponse::error(ErrorCode::UnknownMemberId, ""),
                );
            }
        }
    }

    pub(super) fn set_join_waiter(&mut self, group_id: &str, member_id: &str, token: Token) {
        if let Some(m) = self
            .groups
            .get_mut(group_id)
            .and_then(|g| g.members.get_mut(member_id))
        {
            m.join_waiter = Some(token);
        }
    }

    pub(super) fn maybe_prepare_rebalance(&mut self, group_id: &str, now_ms: i64) {
        let Some(g) = self.groups.get(group_id) else {
            return;
        };
        if matches!(
            g.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(group_id, now_ms);
        }
    }

    pub(super) fn prepare_rebalance(&mut self, group_id: &str, now_ms: i64) {
        let initial_delay = i64::from(self.config.initial_rebalance_delay_ms.max(0));
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        if g.state == GroupState::CompletingRebalance {
            // Members waiting for their assignment must rejoin instead.
            let mut fenced = Vec::new();
            for m in g.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(t) = m.sync_waiter.take() {
                    fenced.push(t);
                }
            }
            for t in fenced {
                self.reply_sync(t, SyncGroupResponse::error(ErrorCode::RebalanceInProgress));
            }
        }
        let g = self.groups.get_mut(group_id).expect("exists");
        self.timers
            .cancel(&TimerKey::PendingSync(group_id.to_owned()));
        let rebalance_timeout = g.rebalance_timeout_ms();
        let (phase, delay) = if g.state == GroupState::Empty {
            (
                JoinPhase::Initial {
                    remaining_ms: (rebalance_timeout - initial_delay).max(0),
                },
                initial_delay,
            )
        } else {
            (JoinPhase::Normal, rebalance_timeout)
        };
        g.join_phase = Some(phase);
        g.transition(GroupState::PreparingRebalance, now_ms);
        self.timers.schedule(
            TimerKey::Join(group_id.to_owned()),
            now_ms.saturating_add(delay),
        );
        self.check_join_complete(group_id, now_ms);
    }

    /// Completes a normal join phase early once every member has rejoined (Kafka's
    /// `DelayedJoin.tryComplete`); the initial delayed join never completes early.
    pub(super) fn check_join_complete(&mut self, group_id: &str, now_ms: i64) {
        let Some(g) = self.groups.get(group_id) else {
            return;
        };
        if g.state == GroupState::PreparingRebalance
            && g.join_phase == Some(JoinPhase::Normal)
            && g.all_members_joined()
        {
            self.timers.cancel(&TimerKey::Join(group_id.to_owned()));
            self.complete_join(group_id, now_ms);
        }
    }

    pub(super) fn on_join_timer(&mut self, group_id: &str, now_ms: i64) {
        let initial_delay = i64::from(self.config.initial_rebalance_delay_ms.max(0));
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        if g.state != GroupState::PreparingRebalance {
            return;
        }
        if let Some(JoinPhase::Initial { remaining_ms }) = g.join_phase {
            if g.new_member_added && remaining_ms > 0 {
                g.new_member_added = false;
                let delay = initial_delay.min(remaining_ms);
                g.join_phase = Some(JoinPhase::Initial {
                    remaining_ms: remaining_ms - delay,
                });
                self.timers.schedule(
                    TimerKey::Join(group_id.to_owned()),
                    now_ms.saturating_add(delay),
                );
                return;
            }
        }
        self.complete_join(group_id, now_ms);
    }

    /// Kafka's `onCompleteJoin`.
    pub(super) fn complete_join(&mut self, group_id: &str, now_ms: i64) {
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        g.join_phase = None;
        // Dynamic members that did not rejoin are dropped; static members stay (their session
        // timeout decides).
        let gone: Vec<String> = g
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in &gone {
            g.remove_member(id);
            self.timers
                .cancel(&TimerKey::Heartbeat(group_id.to_owned(), id.clone()));
        }
        let g = self.groups.get_mut(group_id).expect("exists");
        if !elect_joined_leader(g) && !g.members.is_empty() {
            // Only static members that have not rejoined are left: wait another rebalance
            // timeout for them or for their session timeouts.
            g.join_phase = Some(JoinPhase::Normal);
            let timeout = g.rebalance_timeout_ms().max(1);
            self.timers.schedule(
                TimerKey::Join(group_id.to_owned()),
                now_ms.saturating_add(timeout),
            );
            return;
        }
        // initNextGeneration
        g.generation = g.generation.saturating_add(1);
        g.pending_sync.clear();
        if g.members.is_empty() {
            g.protocol_name = None;
            g.subscribed_topics = None;
            g.transition(GroupState::Empty, now_ms);
            // Kafka only logs a failure to store the empty generation (the group stays Empty
            // with its new generation), so nothing waits for this append.
            let _ = self.store_group(group_id, None);
            return;
        }
        g.protocol_name = g.select_protocol();
        g.subscribed_topics = g.compute_subscribed_topics();
        g.transition(GroupState::CompletingRebalance, now_ms);
        let leader_members = member_list(g);
        let generation = g.generation;
        let protocol_type = g.protocol_type.clone();
        let protocol_name = g.protocol_name.clone();
        let leader = g.leader.clone().unwrap_or_default();
        let mut replies = Vec::new();
        let mut heartbeats = Vec::new();
        for m in g.members.values_mut() {
            if let Some(t) = m.join_waiter.take() {
                let is_leader = m.member_id == leader;
                replies.push((
                    t,
                    JoinGroupResponse {
                        error: ErrorCode::None,
                        generation_id: generation,
                        protocol_type: protocol_type.clone(),
                        protocol_name: protocol_name.clone(),
                        leader: leader.clone(),
                        skip_assignment: false,
                        member_id: m.member_id.clone(),
                        members: if is_leader {
                            leader_members.clone()
                        } else {
                            Vec::new()
                        },
                    },
                ));
            }
            m.is_new = false;
            heartbeats.push((m.member_id.clone(), i64::from(m.session_timeout_ms)));
        }
        g.pending_sync = g.members.keys().cloned().collect();
        let sync_deadline = now_ms.saturating_add(g.rebalance_timeout_ms());
        for (t, r) in replies {
            self.reply_join(t, r);
        }
        for (id, timeout) in heartbeats {
            self.schedule_heartbeat(group_id, &id, timeout, now_ms);
        }
        self.timers
            .schedule(TimerKey::PendingSync(group_id.to_owned()), sync_deadline);
    }

    pub(super) fn on_pending_sync_expired(&mut self, group_id: &str, now_ms: i64) {
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        if !matches!(
            g.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) || g.pending_sync.is_empty()
        {
            return;
        }
        let pending: Vec<String> = g.pending_sync.iter().cloned().collect();
        for id in pending {
            self.remove_member_quietly(group_id, &id);
        }
        self.prepare_rebalance(group_id, now_ms);
    }

    /// Removes a member, answering its parked requests with `UNKNOWN_MEMBER_ID`, without
    /// touching the group state.
    pub(super) fn remove_member_quietly(&mut self, group_id: &str, member_id: &str) {
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        let Some(m) = g.remove_member(member_id) else {
            return;
        };
        self.timers.cancel(&TimerKey::Heartbeat(
            group_id.to_owned(),
            member_id.to_owned(),
        ));
        if let Some(t) = m.join_waiter {
            self.reply_join(t, JoinGroupResponse::error(ErrorCode::UnknownMemberId, ""));
        }
        if let Some(t) = m.sync_waiter {
            self.reply_sync(t, SyncGroupResponse::error(ErrorCode::UnknownMemberId));
        }
    }

    /// Kafka's `removeMemberAndUpdateGroup`.
    pub(super) fn remove_member_and_update_group(
        &mut self,
        group_id: &str,
        member_id: &str,
        now_ms: i64,
    ) {
        self.remove_member_quietly(group_id, member_id);
        let Some(g) = self.groups.get(group_id) else {
            return;
        };
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(group_id, now_ms)
            }
            GroupState::PreparingRebalance => self.check_join_complete(group_id, now_ms),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    pub(super) fn on_heartbeat_expired(&mut self, group_id: &str, member_id: &str, now_ms: i64) {
        let Some(m) = self
            .groups
            .get(group_id)
            .and_then(|g| g.members.get(member_id))
        else {
            return;
        };
        // Kafka's `hasSatisfiedHeartbeat`: members waiting in a join or sync phase are kept
        // alive by that phase (its own timeout removes them), except new members.
        if !m.is_new && (m.join_waiter.is_some() || m.sync_waiter.is_some()) {
            return;
        }
        self.remove_member_and_update_group(group_id, member_id, now_ms);
    }

    // ----------------------------------------------------------------------------------------
    // SyncGroup
    // ----------------------------------------------------------------------------------------
}
