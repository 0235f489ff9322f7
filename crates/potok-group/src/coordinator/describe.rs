//! Read-only views of groups (ListGroups, DescribeGroups, lag) and DeleteGroups.

use super::*;

impl GroupCoordinator {
    /// Handles ListGroups. `states` (v4+) and `types` (v5+) filter case-insensitively; empty
    /// filters match everything. Every group here is a "classic" group.
    pub fn list_groups(&self, states: &[String], types: &[String]) -> Vec<GroupListing> {
        if !types.is_empty() && !types.iter().any(|t| t.eq_ignore_ascii_case("classic")) {
            return Vec::new();
        }
        let mut out: Vec<GroupListing> = self
            .groups
            .values()
            .filter(|g| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.state.as_str()))
            })
            .map(|g| GroupListing {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// Handles DescribeGroups for one group; `None` when the group does not exist (Kafka
    /// describes it as `Dead` before v6 and answers `GROUP_ID_NOT_FOUND` from v6).
    pub fn describe_group(&self, group_id: &str) -> Option<GroupDescription> {
        let g = self.groups.get(group_id)?;
        let stable = g.state == GroupState::Stable;
        let protocol = if stable {
            g.protocol_name.clone().unwrap_or_default()
        } else {
            String::new()
        };
        Some(GroupDescription {
            group_id: g.group_id.clone(),
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            members: g
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
            protocol,
        })
    }

    /// Handles DeleteGroups: only empty groups can be deleted; their offsets and metadata get
    /// tombstones.
    pub fn delete_groups(&mut self, group_ids: &[String]) -> Vec<(String, ErrorCode)> {
        let mut results = Vec::with_capacity(group_ids.len());
        for group_id in group_ids {
            let code = if group_id.is_empty() || too_long(group_id) {
                ErrorCode::InvalidGroupId
            } else if let Err(code) = self.check_coordinator(group_id) {
                code
            } else {
                match self.groups.get(group_id) {
                    None => ErrorCode::GroupIdNotFound,
                    Some(g) if g.state != GroupState::Empty || !g.pending_members.is_empty() => {
                        ErrorCode::NonEmptyGroup
                    }
                    Some(_) => {
                        let g = self.groups.remove(group_id).expect("checked");
                        let mut recs = Vec::new();
                        for (topic, parts) in &g.offsets {
                            for p in parts.keys() {
                                if let Ok(key) = records::offset_commit_key(group_id, topic, *p) {
                                    recs.push(PersistRecord { key, value: None });
                                }
                            }
                        }
                        if let Ok(key) = records::group_metadata_key(group_id) {
                            recs.push(PersistRecord { key, value: None });
                        }
                        self.persist(g.partition, recs);
                        ErrorCode::None
                    }
                }
            };
            results.push((group_id.clone(), code));
        }
        results
    }

    /// The number of groups in memory.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// A group's state and generation, for tests and metrics.
    pub fn group_state(&self, group_id: &str) -> Option<(GroupState, i32)> {
        self.groups.get(group_id).map(|g| (g.state, g.generation))
    }

    /// Every committed offset of every group, for the lag metric: `(group, topic, partition,
    /// offset)`.
    pub fn all_committed(&self) -> impl Iterator<Item = (&str, &str, i32, Offset)> {
        self.groups.values().flat_map(|g| {
            g.offsets.iter().flat_map(move |(t, ps)| {
                ps.iter()
                    .map(move |(p, o)| (g.group_id.as_str(), t.as_str(), *p, o.offset))
            })
        })
    }

    // ----------------------------------------------------------------------------------------
    // Loading and snapshots
    // ----------------------------------------------------------------------------------------
}
