//! Transactional offset commits (KIP-98 TxnOffsetCommit, KIP-447 group checks): offsets a
//! transactional producer commits are written at once, in a transactional batch of that
//! producer, but become visible only when the transaction's COMMIT marker reaches their
//! `__consumer_offsets` partition; an ABORT marker drops them (Kafka's
//! `pendingTransactionalOffsetCommits` and `completeTransactionalOffsetCommit`).

use super::*;

impl GroupCoordinator {
    /// Handles a TxnOffsetCommit; returns a code per partition, in request order. The records
    /// go to the output queue as one [`Output::Persist`] carrying the producer, and the offsets
    /// wait for [`Self::complete_txn`] once the append succeeded.
    ///
    /// The checks are Kafka's for transactional commits (`GroupCoordinator.doTxnCommitOffsets`,
    /// KIP-447): a known member id must be a member, a generation `>= 0` must be the group's
    /// current one, and a static instance must not be fenced; a commit without member and
    /// generation (an older client) is accepted even for an active group, because the
    /// transaction itself fences zombies.
    pub fn commit_txn_offsets(
        &mut self,
        now_ms: i64,
        req: &TxnOffsetCommitRequest,
    ) -> PartitionResults {
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
        match self.groups.get(&req.group_id) {
            None => {
                if req.generation_id >= 0 || !req.member_id.is_empty() {
                    return all(ErrorCode::IllegalGeneration);
                }
                let partition = self.partition_for(&req.group_id);
                self.groups.insert(
                    req.group_id.clone(),
                    Group::new(req.group_id.clone(), partition, now_ms),
                );
            }
            Some(g) => {
                if let Err(code) = validate_txn_offset_commit(g, req) {
                    return all(code);
                }
            }
        }
        let partition = self.partition_for(&req.group_id);
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
                    expire_timestamp_ms: None,
                };
                let encoded = records::offset_commit_key(&req.group_id, topic, p.partition)
                    .and_then(|k| Ok((k, records::offset_commit_value(&value)?)));
                match encoded {
                    Ok((key, v)) => {
                        records.push(PersistRecord {
                            key,
                            value: Some(v),
                        });
                        staged.push((req.group_id.clone(), topic.clone(), p.partition, value));
                        codes.push((p.partition, ErrorCode::None));
                    }
                    Err(_) => codes.push((p.partition, ErrorCode::UnknownServerError)),
                }
            }
            results.push((topic.clone(), codes));
        }
        if records.is_empty() {
            return results;
        }
        self.next_pending += 1;
        let id = self.next_pending;
        self.pending.insert(
            id,
            Pending::TxnCommit {
                producer_id: req.producer_id,
                partition,
                offsets: staged,
            },
        );
        self.outputs.push(Output::Persist {
            partition,
            records,
            pending: Some(PendingId(id)),
            producer: Some((req.producer_id, req.producer_epoch)),
        });
        results
    }

    pub(super) fn stage_txn_offsets(
        &mut self,
        producer_id: i64,
        offsets_partition: i32,
        offsets: Vec<(String, String, i32, CommittedOffset)>,
    ) {
        let pending = self.txn_offsets.entry(producer_id).or_default();
        for (group_id, topic, partition, value) in offsets {
            pending.push(TxnOffset {
                offsets_partition,
                group_id,
                topic,
                partition,
                value,
            });
        }
    }

    /// The transaction of `producer_id` ended on `__consumer_offsets` partition
    /// `offsets_partition` (its COMMIT or ABORT marker was written there): committed offsets
    /// become the groups' offsets, aborted ones are dropped. Returns how many were applied.
    pub fn complete_txn(
        &mut self,
        offsets_partition: i32,
        producer_id: i64,
        commit: bool,
    ) -> usize {
        let Some(pending) = self.txn_offsets.remove(&producer_id) else {
            return 0;
        };
        let (done, rest): (Vec<TxnOffset>, Vec<TxnOffset>) = pending
            .into_iter()
            .partition(|o| o.offsets_partition == offsets_partition);
        if !rest.is_empty() {
            self.txn_offsets.insert(producer_id, rest);
        }
        if !commit {
            return 0;
        }
        let mut applied = 0;
        for o in done {
            let gp = self.partition_for(&o.group_id);
            // A group deleted while the transaction ran comes back with these offsets, as in
            // Kafka, where the commit marker's offsets create the group's entry again.
            let g = self
                .groups
                .entry(o.group_id.clone())
                .or_insert_with(|| Group::new(o.group_id.clone(), gp, o.value.commit_timestamp_ms));
            g.offsets
                .entry(o.topic)
                .or_default()
                .insert(o.partition, o.value);
            applied += 1;
        }
        applied
    }

    /// Whether a transaction holds an offset of `group_id` for the partition that is not yet
    /// committed or aborted: OffsetFetch with `require_stable` (KIP-447) answers
    /// `UNSTABLE_OFFSET_COMMIT` for it, so a consumer does not start from a stale offset.
    pub fn has_pending_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.txn_offsets
            .values()
            .flatten()
            .any(|o| o.group_id == group_id && o.partition == partition && o.topic == topic)
    }

    /// Whether any transaction has offsets waiting on `__consumer_offsets` partition `p` (a
    /// rewrite of the partition from live state would lose them).
    pub fn has_pending_txn_on_partition(&self, p: i32) -> bool {
        self.txn_offsets
            .values()
            .flatten()
            .any(|o| o.offsets_partition == p)
    }
}

/// Kafka's checks of a transactional offset commit (`doTxnCommitOffsets`).
fn validate_txn_offset_commit(g: &Group, req: &TxnOffsetCommitRequest) -> Result<(), ErrorCode> {
    if g.state == GroupState::Dead {
        return Err(ErrorCode::CoordinatorNotAvailable);
    }
    if let Some(instance) = &req.group_instance_id {
        if g.static_members
            .get(instance)
            .is_some_and(|m| *m != req.member_id)
        {
            return Err(ErrorCode::FencedInstanceId);
        }
    }
    if !req.member_id.is_empty() && !g.members.contains_key(&req.member_id) {
        return Err(ErrorCode::UnknownMemberId);
    }
    if req.generation_id >= 0 && req.generation_id != g.generation {
        return Err(ErrorCode::IllegalGeneration);
    }
    Ok(())
}
