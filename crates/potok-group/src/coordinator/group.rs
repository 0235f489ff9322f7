//! One group's members and state, and the rules that read a group without changing the
//! coordinator (leader election among joined members, member validation).

use super::*;

#[derive(Debug)]
pub(super) struct Member {
    pub(super) member_id: String,
    pub(super) group_instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) rebalance_timeout_ms: i32,
    pub(super) session_timeout_ms: i32,
    pub(super) protocols: Vec<Protocol>,
    pub(super) assignment: Bytes,
    /// A parked JoinGroup (Kafka's `awaitingJoinCallback`).
    pub(super) join_waiter: Option<Token>,
    /// A parked SyncGroup (Kafka's `awaitingSyncCallback`).
    pub(super) sync_waiter: Option<Token>,
    /// Joined but has not yet received a JoinGroup response; such members expire after
    /// `new_member_join_timeout_ms` rather than being kept alive by the join phase.
    pub(super) is_new: bool,
    /// Whether the member's JoinGroup supported KIP-814 `skip_assignment`.
    pub(super) supports_skip_assignment: bool,
}

impl Member {
    pub(super) fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }
}

/// Which kind of join phase is running (Kafka's `InitialDelayedJoin` vs `DelayedJoin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JoinPhase {
    /// The first rebalance of an empty group waits `group.initial.rebalance.delay.ms`, extended
    /// while new members keep arriving, up to the rebalance timeout (`remaining_ms`).
    Initial { remaining_ms: i64 },
    /// Ends when every member has rejoined or at the rebalance timeout.
    Normal,
}

#[derive(Debug)]
pub(super) struct Group {
    pub(super) group_id: String,
    pub(super) partition: i32,
    pub(super) state: GroupState,
    pub(super) current_state_timestamp_ms: Option<i64>,
    pub(super) generation: i32,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol_name: Option<String>,
    pub(super) leader: Option<String>,
    /// Ordered so that leader re-election and descriptions are deterministic.
    pub(super) members: BTreeMap<String, Member>,
    /// `group.instance.id` -> member id.
    pub(super) static_members: HashMap<String, String>,
    /// Members that got `MEMBER_ID_REQUIRED` and have not rejoined yet (KIP-394).
    pub(super) pending_members: HashSet<String>,
    /// Members of the new generation that have not sent SyncGroup yet.
    pub(super) pending_sync: HashSet<String>,
    pub(super) join_phase: Option<JoinPhase>,
    pub(super) new_member_added: bool,
    pub(super) subscribed_topics: Option<HashSet<String>>,
    pub(super) offsets: BTreeMap<String, BTreeMap<i32, CommittedOffset>>,
}

impl Group {
    pub(super) fn new(group_id: String, partition: i32, now_ms: i64) -> Group {
        Group {
            group_id,
            partition,
            state: GroupState::Empty,
            current_state_timestamp_ms: Some(now_ms),
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashSet::new(),
            pending_sync: HashSet::new(),
            join_phase: None,
            new_member_added: false,
            subscribed_topics: None,
            offsets: BTreeMap::new(),
        }
    }

    pub(super) fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.current_state_timestamp_ms = Some(now_ms);
    }

    pub(super) fn num_awaiting_join(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.join_waiter.is_some())
            .count()
    }

    /// Kafka's `hasAllMembersJoined`: every member rejoined and no KIP-394 member is pending.
    pub(super) fn all_members_joined(&self) -> bool {
        self.members.len() == self.num_awaiting_join() && self.pending_members.is_empty()
    }

    pub(super) fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    pub(super) fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// Kafka's `supportsProtocols`: an empty group takes any non-empty protocol list; a
    /// non-empty one needs the same protocol type and one protocol every member supports.
    pub(super) fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|p| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|mp| mp.name == p.name))
        })
    }

    /// Kafka's `selectProtocol`: among the protocols every member supports, each member votes
    /// for its most preferred one; the most votes win. Kafka breaks ties arbitrarily (hash
    /// order); here the candidate listed first by the first member wins, deterministically.
    pub(super) fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|mp| mp.name == *name))
            })
            .collect();
        let mut votes = vec![0usize; candidates.len()];
        for m in self.members.values() {
            if let Some(i) = m
                .protocols
                .iter()
                .find_map(|p| candidates.iter().position(|c| *c == p.name))
            {
                votes[i] += 1;
            }
        }
        let mut best: Option<usize> = None;
        for (i, v) in votes.iter().enumerate() {
            if best.is_none_or(|b| *v > votes[b]) {
                best = Some(i);
            }
        }
        best.map(|i| candidates[i].to_owned())
    }

    /// The union of the topics in the members' `ConsumerProtocolSubscription`s, used to keep
    /// offsets of subscribed topics from expiring and from OffsetDelete (KIP-496). `None`
    /// when the group is not a "consumer" group or a subscription does not parse, as Kafka.
    pub(super) fn compute_subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            let mut md = m.metadata(protocol);
            if md.len() < 2 {
                return None;
            }
            let version = i16::from_be_bytes([md[0], md[1]]);
            if version < 0 {
                return None;
            }
            let _ = bytes::Buf::get_i16(&mut md);
            // Like Kafka's ConsumerProtocol, read a newer version as the newest we know.
            let sub = ConsumerProtocolSubscription::decode(&mut md, version.min(3)).ok()?;
            topics.extend(sub.topics);
        }
        Some(topics)
    }

    pub(super) fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.remove(member_id)?;
        if let Some(instance) = &member.group_instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        if self.is_leader(member_id) {
            // Kafka picks any remaining member as the new leader.
            self.leader = self.members.keys().next().cloned();
        }
        self.pending_sync.remove(member_id);
        Some(member)
    }

    pub(super) fn has_offsets(&self) -> bool {
        !self.offsets.is_empty()
    }

    pub(super) fn stored(&self) -> StoredGroup {
        let protocol = self.protocol_name.clone();
        StoredGroup {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp_ms: self.current_state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| StoredMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: protocol
                        .as_deref()
                        .map(|p| m.metadata(p))
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}

/// Kafka's `validateCurrentMember`: a static member whose instance id maps to another member
/// id is fenced (a newer incarnation exists); an unknown member id is rejected.
pub(super) fn validate_member(
    g: &Group,
    member_id: &str,
    instance: Option<&str>,
) -> Result<(), ErrorCode> {
    if let Some(instance) = instance {
        match g.static_members.get(instance) {
            Some(current) if current != member_id => return Err(ErrorCode::FencedInstanceId),
            None => return Err(ErrorCode::UnknownMemberId),
            Some(_) => {}
        }
    }
    if !g.members.contains_key(member_id) {
        return Err(ErrorCode::UnknownMemberId);
    }
    Ok(())
}

/// Kafka's `maybeElectNewJoinedLeader`.
pub(super) fn elect_joined_leader(g: &mut Group) -> bool {
    let Some(leader) = g.leader.clone() else {
        return false;
    };
    if g.members
        .get(&leader)
        .is_some_and(|m| m.join_waiter.is_some())
    {
        return true;
    }
    match g.members.values().find(|m| m.join_waiter.is_some()) {
        Some(m) => {
            g.leader = Some(m.member_id.clone());
            true
        }
        None => false,
    }
}

pub(super) fn member_list(g: &Group) -> Vec<JoinedMember> {
    let protocol = g.protocol_name.clone().unwrap_or_default();
    g.members
        .values()
        .map(|m| JoinedMember {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            metadata: m.metadata(&protocol),
        })
        .collect()
}
