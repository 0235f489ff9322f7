//! Topics under the controller quorum (issue 17): the metadata image is not written by this
//! node's own changes but follows the committed entries of the Raft log, applied here in log
//! order on every node (`crate::quorum::driver`).
//!
//! Applying a committed entry checks its records against a copy of the image first: an entry
//! the image refuses (two controllers' concurrent creations of one name, say) is refused whole
//! and identically on every node, since every node applies the same entries to the same image.
//! The local state then follows the image: new topics and partitions are opened, removed
//! topics deleted, changed configs applied to the open logs.
//!
//! Every replica of a partition has a local log (issue 18): the leader's, or a follower's that
//! the replica fetcher (`crate::replica`) copies from the leader. After each applied entry
//! every partition takes the role the image gives this broker (`roles.rs`, Kafka's
//! `ReplicaManager.applyDelta`). Brokers that are not replicas of a partition keep a
//! placeholder [`Partition`] without a log, whose epoch Metadata reports.

use super::*;

impl TopicManager {
    /// Whether metadata changes come from the controller quorum rather than this node's own
    /// metadata log.
    pub fn is_replicated(&self) -> bool {
        self.replicated
    }

    /// Runs `f` over the current metadata image (under the metadata lock: keep it short).
    pub fn with_image<R>(&self, f: impl FnOnce(&MetadataImage) -> R) -> R {
        f(&lock(&self.meta).image)
    }

    /// The image's state of every partition of topic `id`, by index.
    pub fn partition_states(&self, id: Uuid) -> Vec<PartitionState> {
        self.with_image(|image| {
            image
                .topic(id)
                .map(|t| t.partitions.values().cloned().collect())
                .unwrap_or_default()
        })
    }

    /// Opens partition `p` as the image's `state` says: its log when this broker leads it, a
    /// placeholder without a log otherwise. `fresh`: the partition was just created, so its
    /// log is created without fsyncs of its own (the caller fsyncs the data directory once, as
    /// a local creation does).
    pub(super) fn open_replica(
        &self,
        topic: &str,
        p: i32,
        config: &EffectiveTopicConfig,
        known: Option<DirCheckpoint>,
        state: &PartitionState,
        fresh: bool,
    ) -> Result<Arc<Partition>> {
        if self.is_replica(state) {
            if fresh {
                return self.create_partition(topic, p, config, state);
            }
            return self.open_partition_known(topic, p, config, known, state);
        }
        if self.replicated && !fresh {
            // A stray log: this broker was removed from the partition (a reassignment) and
            // stopped before it deleted its copy. Kafka's broker deletes such logs at start
            // (KAFKA-14616); a later re-adding fetches everything from the leader anyway.
            let dir = self.partition_dir(topic, p);
            if dir.exists() {
                tracing::info!(
                    topic,
                    partition = p,
                    "deleting the log of a partition this broker no longer replicates"
                );
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(topic, partition = p, error = %e, "could not delete a stray partition log");
                }
            }
        }
        Ok(Arc::new(Partition {
            topic: topic.to_string(),
            index: p,
            log: Mutex::new(None),
            waiters: Mutex::new(Vec::new()),
            replica: Mutex::new(Role::NotReplica {
                leader_epoch: state.leader_epoch,
            }),
        }))
    }

    /// Applies the records of one committed entry of the quorum's log. `Err` means the image
    /// refused them (nothing was applied); every node refuses the same entries.
    pub fn apply_replicated(&self, records: &[MetadataRecord]) -> std::result::Result<(), String> {
        let mut meta = lock(&self.meta);
        let mut next = meta.image.clone();
        for r in records {
            next.apply(r).map_err(|e| e.to_string())?;
        }
        meta.image = next;
        let image = &meta.image;
        let mut deleted = false;
        let mut created = false;
        let mut roles_changed = false;
        if let Some(b) = image.brokers().get(&self.node) {
            let old = self
                .replication
                .broker_epoch
                .swap(b.epoch, std::sync::atomic::Ordering::Relaxed);
            roles_changed |= old != b.epoch;
        }
        for t in self.all() {
            if image.topic(t.id).is_none() {
                {
                    let mut maps = write(&self.maps);
                    maps.by_id.remove(&t.id);
                    maps.by_name.remove(&t.name);
                }
                for p in t.state().partitions {
                    if p.dir().is_ok() {
                        if let Err(e) = p.delete() {
                            tracing::warn!(topic = %t.name, partition = p.index, error = %e, "could not remove a deleted partition's directory");
                        }
                    }
                }
                deleted = true;
                tracing::info!(topic = %t.name, id = %t.id, "deleted topic (replicated)");
            }
        }
        for ti in image.topics() {
            let overrides = image.topic_configs(&ti.name);
            let config = match read(&self.defaults).effective(&overrides) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(topic = %ti.name, error = %e.message, "a replicated topic's configs are invalid here; keeping the defaults");
                    read(&self.defaults)
                        .effective(&BTreeMap::new())
                        .map_err(|e| e.message)?
                }
            };
            let existing = self.get_by_id(ti.id);
            let have = existing.as_ref().map_or(0, |t| t.partition_count());
            let mut new_parts = Vec::new();
            for (&p, state) in ti.partitions.range(have as i32..) {
                if existing.is_none() && self.partition_dir(&ti.name, p).exists() {
                    // A creation this node applies for the first time cannot own data yet:
                    // the directory is a leftover of an earlier topic of that name.
                    let _ = std::fs::remove_dir_all(self.partition_dir(&ti.name, p));
                }
                let fresh = Some(DirCheckpoint::default());
                match self.open_replica(&ti.name, p, &config, fresh, state, true) {
                    Ok(part) => {
                        created |= part.is_local_replica();
                        roles_changed = true;
                        new_parts.push(part)
                    }
                    Err(e) => {
                        // The entry is committed: the image keeps the partition and this node
                        // reports it offline (no log) rather than diverge from the others.
                        tracing::error!(topic = %ti.name, partition = p, error = %e, "could not open a replicated partition's log");
                        new_parts.push(Arc::new(Partition {
                            topic: ti.name.clone(),
                            index: p,
                            log: Mutex::new(None),
                            waiters: Mutex::new(Vec::new()),
                            replica: Mutex::new(Role::NotReplica {
                                leader_epoch: state.leader_epoch,
                            }),
                        }));
                    }
                }
            }
            if let Some(t) = &existing {
                // Kafka's `applyDelta`: every existing partition takes the role the image
                // gives this broker now (leader, follower, ISR change).
                for (&p, state) in ti.partitions.range(..have as i32) {
                    if let Some(part) = t.partition(p) {
                        roles_changed |= self.apply_role(&part, state, &config);
                    }
                }
            }
            match existing {
                Some(t) => {
                    let parts = {
                        let mut st = write(&t.state);
                        st.partitions.extend(new_parts);
                        if st.overrides != overrides {
                            st.overrides = overrides;
                            st.config = config.clone();
                            Some(st.partitions.clone())
                        } else {
                            None
                        }
                    };
                    for p in parts.into_iter().flatten() {
                        if let Err(e) = p.with_log(|log| log.set_config(config.log.clone())) {
                            if !matches!(e, LogError::Offline) {
                                tracing::warn!(topic = %t.name, error = %e, "could not apply a replicated config change");
                            }
                        }
                    }
                }
                None => {
                    let topic = Arc::new(Topic {
                        name: ti.name.clone(),
                        id: ti.id,
                        state: RwLock::new(TopicState {
                            partitions: new_parts,
                            overrides,
                            config,
                        }),
                    });
                    let mut maps = write(&self.maps);
                    maps.by_id.insert(ti.id, Arc::clone(&topic));
                    maps.by_name.insert(ti.name.clone(), topic);
                    tracing::info!(topic = %ti.name, id = %ti.id, partitions = ti.partitions.len(), "created topic (replicated)");
                }
            }
        }
        drop(meta);
        // ISR changes of partitions this broker leads (the committed ISR settles a pending
        // AlterPartition, KIP-497) were applied above with the other role changes
        // (`apply_role`: `LeaderState::on_isr_committed` at the same leader epoch).
        if roles_changed || deleted {
            self.signal_role_change();
            // The coordinators follow the leaderships of their internal topics' partitions.
            self.report_leadership();
        }
        if created {
            // The new partition directories are entries of the data directory.
            if let Err(e) = self.storage.sync_dir(&self.data_dir) {
                tracing::warn!(error = %e, "could not fsync the data directory after creating partitions");
            }
        }
        if deleted {
            if let Err(e) = self.write_dir_checkpoints() {
                tracing::warn!(error = %e, "could not rewrite the data directory's checkpoints after a topic deletion");
            }
        }
        Ok(())
    }
}
