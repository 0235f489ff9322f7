//! OffsetCommit, OffsetFetch, OffsetDelete and offset expiry.

use super::*;

impl GroupCoordinator {
    /// Handles an OffsetCommit; returns a code per partition, in request order. The records go
    /// to the output queue before the broker answers.
    pub fn commit_offsets(&mut self, now_ms: i64, req: &OffsetCommitRequest) -> PartitionResults {
        let all = |code: ErrorCode| -> PartitionResults {
            req.topics
                .iter()
                .map(|(t, ps)| (t.clone(), ps.iter().map(|p| (p.partition, code)).collect()))
                .collect()
        };
        if req.group_id.is_empty() || too_long(&req.group_id) {
            return all(ErrorCode::InvalidGroupId);
        }
        if let Err(code) = self.check_coordinator(&req.group_id) {
            return all(code);
        }
        let mut created = false;
        match self.groups.get(&req.group_id) {
            None => {
                if req.generation_id >= 0 {
                    // The group is gone (e.g. all members expired and it was deleted): the
                    // member's generation is no longer valid.
                    return all(ErrorCode::IllegalGeneration);
                }
                // A group that does not use group management (assign() + commit).
                let partition = self.partition_for(&req.group_id);
                self.groups.insert(
                    req.group_id.clone(),
                    Group::new(req.group_id.clone(), partition, now_ms),
                );
                created = true;
            }
            Some(g) => {
                if let Err(code) = validate_offset_commit(g, req) {
                    return all(code);
                }
            }
        }
        let g = self.groups.get_mut(&req.group_id).expect("exists");
        let partition = g.partition;
        let refresh = g
            .members
            .get(&req.member_id)
            .map(|m| i64::from(m.session_timeout_ms));
        let expire =
            (req.retention_time_ms >= 0).then(|| now_ms.saturating_add(req.retention_time_ms));
        let mut records = Vec::new();
        let mut staged = Vec::new();
        let mut results = Vec::with_capacity(req.topics.len());
        for (topic, parts) in &req.topics {
            let mut codes = Vec::with_capacity(parts.len());
            for p in parts {
                let metadata = p.metadata.clone().unwrap_or_default();
                if metadata.len() > self.config.offset_metadata_max_bytes {
                    codes.push((p.partition, ErrorCode::OffsetMetadataTooLarge));
                    continue;
                }
                if too_long(topic) {
                    codes.push((p.partition, ErrorCode::InvalidTopicException));
                    continue;
                }
                let value = CommittedOffset {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata,
                    commit_timestamp_ms: now_ms,
                    expire_timestamp_ms: expire,
                };
                let encoded = records::offset_commit_key(&req.group_id, topic, p.partition)
                    .and_then(|k| Ok((k, records::offset_commit_value(&value)?)));
                match encoded {
                    Ok((key, v)) => {
                        records.push(PersistRecord {
                            key,
                            value: Some(v),
                        });
                        // Applied by `persisted` once the records are written.
                        staged.push((topic.clone(), p.partition, value));
                        codes.push((p.partition, ErrorCode::None));
                    }
                    Err(_) => codes.push((p.partition, ErrorCode::UnknownServerError)),
                }
            }
            results.push((topic.clone(), codes));
        }
        self.persist_pending(
            partition,
            records,
            Pending::Commit {
                group_id: req.group_id.clone(),
                offsets: staged,
                created,
            },
        );
        // A commit from a current member counts as a heartbeat, as in Kafka.
        if let Some(session) = refresh {
            self.schedule_heartbeat(&req.group_id, &req.member_id, session, now_ms);
        }
        results
    }

    /// Handles OffsetFetch for one group. `topics: None` asks for every committed offset.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> OffsetFetchResponse {
        if let Err(error) = self.check_coordinator(group_id) {
            return OffsetFetchResponse {
                error,
                topics: Vec::new(),
            };
        }
        let g = self.groups.get(group_id);
        let lookup = |topic: &str, partition: i32| -> FetchedOffset {
            match g
                .and_then(|g| g.offsets.get(topic))
                .and_then(|ps| ps.get(&partition))
            {
                Some(o) => FetchedOffset {
                    partition,
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata.clone(),
                    error: ErrorCode::None,
                },
                None => FetchedOffset {
                    partition,
                    offset: Offset(-1),
                    leader_epoch: LeaderEpoch(-1),
                    metadata: String::new(),
                    error: ErrorCode::None,
                },
            }
        };
        let topics = match topics {
            Some(requested) => requested
                .iter()
                .map(|(t, ps)| (t.clone(), ps.iter().map(|p| lookup(t, *p)).collect()))
                .collect(),
            None => g
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|(t, ps)| (t.clone(), ps.keys().map(|p| lookup(t, *p)).collect()))
                        .collect()
                })
                .unwrap_or_default(),
        };
        OffsetFetchResponse {
            error: ErrorCode::None,
            topics,
        }
    }

    /// Handles OffsetDelete (KIP-496).
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        topics: &[(String, Vec<i32>)],
    ) -> Result<PartitionResults, ErrorCode> {
        self.check_coordinator(group_id)?;
        let Some(g) = self.groups.get_mut(group_id) else {
            return Err(ErrorCode::GroupIdNotFound);
        };
        let subscribed: Option<HashSet<String>> = match g.state {
            GroupState::Dead => return Err(ErrorCode::GroupIdNotFound),
            GroupState::Empty => None,
            _ if g.protocol_type.as_deref() == Some("consumer")
                && g.subscribed_topics.is_some() =>
            {
                g.subscribed_topics.clone()
            }
            _ => return Err(ErrorCode::NonEmptyGroup),
        };
        let mut records = Vec::new();
        let mut results = Vec::new();
        for (topic, parts) in topics {
            let mut codes = Vec::new();
            for &p in parts {
                if subscribed.as_ref().is_some_and(|s| s.contains(topic)) {
                    codes.push((p, ErrorCode::GroupSubscribedToTopic));
                    continue;
                }
                let removed = g
                    .offsets
                    .get_mut(topic)
                    .and_then(|ps| ps.remove(&p))
                    .is_some();
                if g.offsets.get(topic).is_some_and(|ps| ps.is_empty()) {
                    g.offsets.remove(topic);
                }
                if removed {
                    if let Ok(key) = records::offset_commit_key(group_id, topic, p) {
                        records.push(PersistRecord { key, value: None });
                    }
                }
                codes.push((p, ErrorCode::None));
            }
            results.push((topic.clone(), codes));
        }
        let partition = g.partition;
        self.persist(partition, records);
        Ok(results)
    }

    /// Expires offsets as Kafka's `cleanupGroupMetadata` does, then removes empty groups
    /// without offsets (writing their tombstones). Runs every
    /// `offsets.retention.check.interval.ms` from [`Self::tick`]; public for tests and tools.
    pub fn expire_offsets(&mut self, now_ms: i64) {
        let retention = self.config.offsets_retention_ms;
        let mut per_partition: BTreeMap<i32, Vec<PersistRecord>> = BTreeMap::new();
        let mut dead = Vec::new();
        for g in self.groups.values_mut() {
            // Which base timestamp an offset's age counts from, if it may expire at all.
            let empty_since = g.current_state_timestamp_ms;
            let mode = match (&g.protocol_type, g.state) {
                (Some(_), GroupState::Empty) => Some(None),
                (Some(pt), GroupState::Stable)
                    if pt == "consumer" && g.subscribed_topics.is_some() =>
                {
                    Some(Some(()))
                }
                (None, _) => Some(Some(())),
                _ => None,
            };
            let Some(by_commit_time) = mode else {
                continue;
            };
            let mut expired = Vec::new();
            for (topic, parts) in &g.offsets {
                if by_commit_time.is_some()
                    && g.subscribed_topics
                        .as_ref()
                        .is_some_and(|s| s.contains(topic))
                {
                    continue;
                }
                for (p, o) in parts {
                    let is_expired = match o.expire_timestamp_ms {
                        Some(t) => now_ms >= t,
                        None => {
                            let base = match (by_commit_time, empty_since) {
                                (None, Some(ts)) => ts,
                                _ => o.commit_timestamp_ms,
                            };
                            now_ms.saturating_sub(base) >= retention
                        }
                    };
                    if is_expired {
                        expired.push((topic.clone(), *p));
                    }
                }
            }
            for (topic, p) in expired {
                if let Some(ps) = g.offsets.get_mut(&topic) {
                    ps.remove(&p);
                    if ps.is_empty() {
                        g.offsets.remove(&topic);
                    }
                }
                if let Ok(key) = records::offset_commit_key(&g.group_id, &topic, p) {
                    per_partition
                        .entry(g.partition)
                        .or_default()
                        .push(PersistRecord { key, value: None });
                }
            }
            if g.state == GroupState::Empty && !g.has_offsets() && g.pending_members.is_empty() {
                dead.push(g.group_id.clone());
            }
        }
        for group_id in dead {
            if let Some(g) = self.groups.remove(&group_id) {
                if let Ok(key) = records::group_metadata_key(&group_id) {
                    per_partition
                        .entry(g.partition)
                        .or_default()
                        .push(PersistRecord { key, value: None });
                }
            }
        }
        for (partition, records) in per_partition {
            self.persist(partition, records);
        }
    }

    // ----------------------------------------------------------------------------------------
    // Admin: ListGroups, DescribeGroups, DeleteGroups
    // ----------------------------------------------------------------------------------------
}

/// Kafka's `ClassicGroup.validateOffsetCommit`.
pub(super) fn validate_offset_commit(
    g: &Group,
    req: &OffsetCommitRequest,
) -> Result<(), ErrorCode> {
    if g.state == GroupState::Dead {
        return Err(ErrorCode::CoordinatorNotAvailable);
    }
    if req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some() {
        validate_member(g, &req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != g.generation {
            return Err(ErrorCode::IllegalGeneration);
        }
    } else if g.state != GroupState::Empty {
        // Without member id and generation, commits are only accepted for empty groups, so a
        // standalone consumer cannot clobber an active group's offsets.
        return Err(ErrorCode::UnknownMemberId);
    }
    if g.state == GroupState::CompletingRebalance {
        // The member already knows the new generation from its JoinGroup response but has no
        // assignment yet; REBALANCE_IN_PROGRESS makes it finish the rebalance first.
        return Err(ErrorCode::RebalanceInProgress);
    }
    Ok(())
}
