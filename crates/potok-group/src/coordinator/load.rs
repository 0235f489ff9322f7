//! Rebuilding the coordinator from `__consumer_offsets` records at start, and the live records
//! of a partition for rewriting it.

use super::*;

impl GroupCoordinator {
    /// Loads the live state of `__consumer_offsets` gathered by a [`Loader`]. Groups with
    /// members come back Stable with their last generation and assignments, and every member
    /// gets a fresh session timeout from `now_ms` (as Kafka does when a coordinator loads a
    /// partition); a member that does not heartbeat within it is removed as usual.
    pub fn load(&mut self, loader: Loader, now_ms: i64) -> LoadReport {
        let mut report = LoadReport {
            corrupt_records: loader.corrupt,
            ..Default::default()
        };
        // Transactional offsets whose marker was not in the log wait for it again (the
        // transaction coordinator re-sends the markers of transactions it finds prepared).
        for (producer_id, records) in loader.txn {
            for (key, value) in records {
                if let Ok(OffsetsRecord::OffsetCommit {
                    group,
                    topic,
                    partition,
                    value: Some(v),
                }) = decode_record(key, value)
                {
                    let gp = self.partition_for(&group);
                    self.stage_txn_offsets(producer_id, gp, vec![(group, topic, partition, v)]);
                }
            }
        }
        for (key, value) in loader.live {
            let Some(value) = value else { continue };
            match decode_record(key, Some(value)) {
                Ok(OffsetsRecord::OffsetCommit {
                    group,
                    topic,
                    partition,
                    value: Some(v),
                }) => {
                    let gp = self.partition_for(&group);
                    self.groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(group, gp, now_ms))
                        .offsets
                        .entry(topic)
                        .or_default()
                        .insert(partition, v);
                    report.offsets += 1;
                }
                Ok(OffsetsRecord::GroupMetadata {
                    group,
                    value: Some(stored),
                }) => {
                    let gp = self.partition_for(&group);
                    let g = self
                        .groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(group.clone(), gp, now_ms));
                    g.generation = stored.generation;
                    g.protocol_type =
                        (!stored.protocol_type.is_empty()).then(|| stored.protocol_type.clone());
                    g.protocol_name = stored.protocol.clone();
                    g.leader = stored.leader.clone();
                    g.current_state_timestamp_ms = stored.current_state_timestamp_ms;
                    for m in stored.members {
                        if let Some(i) = &m.group_instance_id {
                            g.static_members.insert(i.clone(), m.member_id.clone());
                        }
                        g.members.insert(
                            m.member_id.clone(),
                            Member {
                                member_id: m.member_id,
                                group_instance_id: m.group_instance_id,
                                client_id: m.client_id,
                                client_host: m.client_host,
                                rebalance_timeout_ms: m.rebalance_timeout_ms,
                                session_timeout_ms: m.session_timeout_ms,
                                protocols: vec![Protocol {
                                    name: stored.protocol.clone().unwrap_or_default(),
                                    metadata: m.subscription,
                                }],
                                assignment: m.assignment,
                                join_waiter: None,
                                sync_waiter: None,
                                is_new: false,
                                supports_skip_assignment: false,
                            },
                        );
                    }
                    g.state = if g.members.is_empty() {
                        GroupState::Empty
                    } else {
                        GroupState::Stable
                    };
                    if g.leader
                        .as_ref()
                        .is_some_and(|l| !g.members.contains_key(l))
                    {
                        g.leader = g.members.keys().next().cloned();
                    }
                    g.subscribed_topics = g.compute_subscribed_topics();
                    let sessions: Vec<(String, i64)> = g
                        .members
                        .values()
                        .map(|m| (m.member_id.clone(), i64::from(m.session_timeout_ms)))
                        .collect();
                    let group_id = g.group_id.clone();
                    for (id, session) in sessions {
                        self.schedule_heartbeat(&group_id, &id, session, now_ms);
                    }
                }
                Ok(_) => {}
                Err(_) => report.corrupt_records += 1,
            }
        }
        report.groups = self.groups.len();
        report
    }

    /// The records that reproduce the live state of one `__consumer_offsets` partition: the
    /// latest group metadata and offsets, without history or tombstones. A broker can rewrite
    /// the partition with these after loading when the log is much larger than its live state,
    /// which keeps the next start-up's replay proportional to live state until real log
    /// compaction exists.
    pub fn snapshot_records(&self, partition: i32) -> Result<Vec<PersistRecord>, GroupError> {
        let mut out = Vec::new();
        let mut ids: Vec<&String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.partition == partition)
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        for id in ids {
            let g = &self.groups[id];
            if g.protocol_type.is_some() || g.generation > 0 {
                out.push(PersistRecord {
                    key: records::group_metadata_key(id)?,
                    value: Some(records::group_metadata_value(&g.stored())?),
                });
            }
            for (topic, parts) in &g.offsets {
                for (p, o) in parts {
                    out.push(PersistRecord {
                        key: records::offset_commit_key(id, topic, *p)?,
                        value: Some(records::offset_commit_value(o)?),
                    });
                }
            }
        }
        Ok(out)
    }
}

/// Gathers `__consumer_offsets` records read at start-up, keeping only the latest value of
/// each key. Keys and values are copied out of the read buffers, so memory is proportional to
/// live state, and only live records are decoded (in [`GroupCoordinator::load`]); reading the
/// log itself stays proportional to its size until compaction exists (see
/// [`GroupCoordinator::snapshot_records`]).
#[derive(Debug, Default)]
pub struct Loader {
    live: HashMap<Bytes, Option<Bytes>>,
    /// Records of transactional batches by producer id, until that producer's marker.
    txn: HashMap<i64, Vec<(Bytes, Option<Bytes>)>>,
    records: u64,
    corrupt: usize,
}

impl Loader {
    /// An empty loader.
    pub fn new() -> Loader {
        Loader::default()
    }

    /// Applies one record in log order. Records without a key cannot belong to the offsets
    /// topic and are counted as corrupt.
    pub fn apply(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) {
        self.records += 1;
        let Some(key) = key else {
            self.corrupt += 1;
            return;
        };
        self.live.insert(
            Bytes::copy_from_slice(key),
            value.map(Bytes::copy_from_slice),
        );
    }

    /// Applies one record of a transactional batch of `producer_id` (a TxnOffsetCommit): it
    /// counts only if a COMMIT marker of that producer follows ([`Self::end_txn`]).
    pub fn apply_txn(&mut self, producer_id: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
        self.records += 1;
        let Some(key) = key else {
            self.corrupt += 1;
            return;
        };
        self.txn.entry(producer_id).or_default().push((
            Bytes::copy_from_slice(key),
            value.map(Bytes::copy_from_slice),
        ));
    }

    /// A COMMIT (`commit`) or ABORT marker of `producer_id`: its transactional records become
    /// live or are dropped.
    pub fn end_txn(&mut self, producer_id: i64, commit: bool) {
        let Some(records) = self.txn.remove(&producer_id) else {
            return;
        };
        if commit {
            self.live.extend(records);
        }
    }

    /// Adds the records gathered by another loader (another partition: keys never overlap,
    /// because a group lives in exactly one partition).
    pub fn merge(&mut self, other: Loader) {
        self.live.extend(other.live);
        for (pid, records) in other.txn {
            self.txn.entry(pid).or_default().extend(records);
        }
        self.records += other.records;
        self.corrupt += other.corrupt;
    }

    /// Records applied so far.
    pub fn records_read(&self) -> u64 {
        self.records
    }

    /// Distinct keys (live values and tombstones).
    pub fn live_keys(&self) -> usize {
        self.live.len()
    }
}
