//! Creating topics and partitions: validation before any IO, the records a creation appends,
//! and the rollback of a creation whose logs cannot be opened.

use super::*;

impl TopicManager {
    /// Checks whether `t` could be created (name rules, collisions, existence, configs)
    /// without creating it, in Kafka's order (names before configs). Returns the overrides as
    /// they are stored (normalized by [`crate::topic_config::validate_value`]) and the
    /// resolved configs.
    pub fn validate_new_topic(
        &self,
        t: &NewTopic,
    ) -> std::result::Result<(BTreeMap<String, String>, EffectiveTopicConfig), ApiError> {
        self.validate(t, false)
    }

    /// [`Self::validate_new_topic`] for a creation of internal origin: the controller creating
    /// a coordinator's internal topic (`crate::quorum::controller::create_internal_topic`).
    pub fn validate_internal_topic(
        &self,
        t: &NewTopic,
    ) -> std::result::Result<(BTreeMap<String, String>, EffectiveTopicConfig), ApiError> {
        self.validate(t, true)
    }

    /// [`Self::validate_new_topic`]; `internal_origin` is true when the broker itself creates
    /// one of its internal topics, which clients may not create.
    fn validate(
        &self,
        t: &NewTopic,
        internal_origin: bool,
    ) -> std::result::Result<(BTreeMap<String, String>, EffectiveTopicConfig), ApiError> {
        validate_topic_name(&t.name)
            .map_err(|m| ApiError::new(ErrorCode::InvalidTopicException, m))?;
        if t.name == METADATA_DIR {
            return Err(ApiError::new(
                ErrorCode::InvalidTopicException,
                format!("Topic name {} is reserved", t.name),
            ));
        }
        {
            let maps = read(&self.maps);
            if maps.by_name.contains_key(&t.name) {
                return Err(ApiError::new(
                    ErrorCode::TopicAlreadyExists,
                    format!("Topic '{}' already exists.", t.name),
                ));
            }
            let key = collision_key(&t.name);
            if let Some(other) = maps.by_name.keys().find(|n| collision_key(n) == key) {
                return Err(ApiError::new(
                    ErrorCode::InvalidTopicException,
                    format!("Topic '{}' collides with existing topic: {other}", t.name),
                ));
            }
        }
        if is_internal(&t.name) && !internal_origin {
            return Err(internal_topics::creation_refused(&t.name));
        }
        if t.partitions < 1 {
            return Err(ApiError::new(
                ErrorCode::InvalidPartitions,
                "Number of partitions must be larger than 0.",
            ));
        }
        let overrides = normalize_overrides(&t.configs)?;
        let config = read(&self.defaults).effective(&overrides)?;
        Ok((overrides, config))
    }

    /// Creates a topic: validates it, makes its metadata records durable, opens its partition
    /// logs and publishes it.
    pub fn create_topic(&self, t: NewTopic) -> std::result::Result<Arc<Topic>, ApiError> {
        self.create_topics(vec![t])
            .pop()
            .unwrap_or_else(|| Err(ApiError::new(ErrorCode::UnknownServerError, "no result")))
    }

    /// Creates one of the broker's internal topics (Kafka's internal-origin creation, which
    /// `AutoTopicCreationManager` does for the coordinators). Existing partition directories
    /// are adopted rather than removed: an internal topic is never deleted, so they hold the
    /// data of this topic as earlier releases stored it outside the metadata log.
    pub fn create_internal_topic(&self, t: NewTopic) -> std::result::Result<Arc<Topic>, ApiError> {
        self.create(vec![t], true)
            .pop()
            .unwrap_or_else(|| Err(ApiError::new(ErrorCode::UnknownServerError, "no result")))
    }

    /// Creates topics, with one result per topic in input order: validates each (under the
    /// metadata lock, so that concurrent creations cannot both pass; a topic is also checked
    /// against the ones before it in `topics`), makes the records of every valid topic durable
    /// as one frame (one fsync for a whole CreateTopics request), then opens their partition
    /// logs and publishes them.
    pub fn create_topics(
        &self,
        topics: Vec<NewTopic>,
    ) -> Vec<std::result::Result<Arc<Topic>, ApiError>> {
        self.create(topics, false)
    }

    /// [`Self::create_topics`]; `internal_origin` as in [`Self::validate`].
    fn create(
        &self,
        topics: Vec<NewTopic>,
        internal_origin: bool,
    ) -> Vec<std::result::Result<Arc<Topic>, ApiError>> {
        let mut meta = lock(&self.meta);
        let mut records = Vec::new();
        let mut planned = Vec::with_capacity(topics.len());
        let mut batch: Vec<&str> = Vec::new();
        for t in &topics {
            let plan = self
                .validate(t, internal_origin)
                .and_then(|(overrides, config)| {
                    // A topic whose records are durable but whose creation is still under way
                    // (outside this lock) is in the image but not yet in the maps.
                    if meta.image.topic_by_name(&t.name).is_some() {
                        return Err(ApiError::new(
                            ErrorCode::TopicAlreadyExists,
                            format!("Topic '{}' already exists.", t.name),
                        ));
                    }
                    if let Some(other) = batch
                        .iter()
                        .find(|n| collision_key(n) == collision_key(&t.name))
                    {
                        return Err(if *other == t.name {
                            ApiError::new(
                                ErrorCode::TopicAlreadyExists,
                                format!("Topic '{}' already exists.", t.name),
                            )
                        } else {
                            ApiError::new(
                                ErrorCode::InvalidTopicException,
                                format!("Topic '{}' collides with existing topic: {other}", t.name),
                            )
                        });
                    }
                    Ok((overrides, config))
                });
            let (overrides, config) = match plan {
                Ok(p) => p,
                Err(e) => {
                    planned.push(Err(e));
                    continue;
                }
            };
            batch.push(&t.name);
            let mut id = random_uuid();
            while id == Uuid::ZERO || meta.image.topic(id).is_some() {
                id = random_uuid();
            }
            // Kafka's controller writes a creation as the TopicRecord, the topic's
            // ConfigRecords, then one PartitionRecord per partition.
            records.push(MetadataRecord::Topic(TopicRecord {
                name: t.name.clone(),
                topic_id: id,
                ..Default::default()
            }));
            for (k, v) in &overrides {
                records.push(topic_config_record(&t.name, k, Some(v)));
            }
            records.extend((0..t.partitions).map(|p| partition_record(id, p, self.node)));
            planned.push(Ok((id, overrides, config)));
        }
        // Stale directories of an earlier topic with the same name (a crash during its
        // deletion) must not be adopted by the new topic. An internal topic adopts them
        // (see `create_internal_topic`).
        for (t, _) in topics
            .iter()
            .zip(&planned)
            .filter(|(_, p)| p.is_ok() && !internal_origin)
        {
            for p in 0..t.partitions {
                let dir = self.partition_dir(&t.name, p);
                if dir.exists() {
                    tracing::warn!(dir = %dir.display(), "removing a stale partition directory before creating the topic");
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
        if let Err(e) = meta.commit(&records) {
            return planned.into_iter().map(|p| p.and(Err(e.clone()))).collect();
        }
        drop(meta);
        // Every partition directory of the request, then one fsync per parent directory for
        // all of them (issue #14: not one per partition), then the topics are published.
        let built: Vec<_> = topics
            .into_iter()
            .zip(planned)
            .map(|(t, plan)| {
                let (id, overrides, config) = plan?;
                let name = t.name.clone();
                self.build_new_topic(t, id, overrides, config, internal_origin)
                    .inspect_err(|_| self.roll_back_creation(id, &name))
            })
            .collect();
        let made: Vec<&Arc<Topic>> = built.iter().filter_map(|b| b.as_ref().ok()).collect();
        if let Err(e) = self.sync_partition_parents(&made) {
            // The directories may not survive a crash; undo every creation of the request,
            // as for a creation whose logs could not be made.
            let e = storage_error(e);
            return built
                .into_iter()
                .map(|b| {
                    let topic = b?;
                    self.undo_partitions(&topic.state().partitions, internal_origin, &topic.name);
                    self.roll_back_creation(topic.id, &topic.name);
                    Err(e.clone())
                })
                .collect();
        }
        for topic in &made {
            let mut maps = write(&self.maps);
            maps.by_id.insert(topic.id, Arc::clone(topic));
            maps.by_name.insert(topic.name.clone(), Arc::clone(topic));
            drop(maps);
            tracing::info!(topic = %topic.name, id = %topic.id, partitions = topic.partition_count(), "created topic");
        }
        built
    }

    /// fsyncs each directory holding a partition directory of `topics` (the data directory,
    /// and `__consumer_offsets`' own), once, so the new partition directories are durable.
    fn sync_partition_parents(&self, topics: &[&Arc<Topic>]) -> Result<()> {
        let mut parents = std::collections::BTreeSet::new();
        for t in topics {
            if let Some(parent) = self.partition_dir(&t.name, 0).parent() {
                parents.insert(parent.to_path_buf());
            }
        }
        if parents.is_empty() {
            return Ok(());
        }
        // `__consumer_offsets`' parent is itself an entry of the data directory.
        parents.insert(self.data_dir.clone());
        for dir in parents {
            self.storage
                .sync_dir(&dir)
                .map_err(|e| BrokerError::io(&dir, e))?;
        }
        Ok(())
    }

    /// Removes the partitions of a failed creation. An internal topic's are only closed,
    /// since they may be adopted logs of an earlier release that hold committed offsets.
    fn undo_partitions(&self, parts: &[Arc<Partition>], internal_origin: bool, topic: &str) {
        for part in parts {
            let undone = if internal_origin {
                part.close()
            } else {
                part.delete()
            };
            if let Err(err) = undone {
                tracing::warn!(topic, error = %err, "could not remove a partition of a failed creation");
            }
        }
    }

    /// Undoes a creation whose records are durable but whose partition logs could not be
    /// opened (descriptors or disk exhausted): a `RemoveTopicRecord` follows, so neither the
    /// image nor a replay keeps a topic nobody can use, and a retry of the same name is a new
    /// creation rather than a second `TopicRecord` for a name the image already holds.
    fn roll_back_creation(&self, id: Uuid, name: &str) {
        let mut meta = lock(&self.meta);
        if let Err(e) = meta.commit(&[MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: id,
            ..Default::default()
        })]) {
            tracing::error!(topic = name, error = %e.message, "could not roll back a failed topic creation");
        }
    }

    /// Creates the partition logs of a topic whose records are durable (not yet published:
    /// the caller makes the directories durable first).
    fn build_new_topic(
        &self,
        t: NewTopic,
        id: Uuid,
        overrides: BTreeMap<String, String>,
        config: EffectiveTopicConfig,
        internal_origin: bool,
    ) -> std::result::Result<Arc<Topic>, ApiError> {
        let state = single_node_partition(self.node);
        let mut parts = Vec::with_capacity(usize::try_from(t.partitions).unwrap_or(0));
        for p in 0..t.partitions {
            // An adopted directory keeps its own checkpoint files (it was written outside this
            // manager): `None` reads them once, as for a directory of an older version.
            let adopted = internal_origin && self.partition_dir(&t.name, p).exists();
            let part = if adopted {
                self.open_partition_known(&t.name, p, &config, None, &state)
            } else {
                self.create_partition(&t.name, p, &config, &state)
            };
            match part {
                Ok(part) => parts.push(part),
                Err(e) => {
                    // The partitions made so far go with the failed creation.
                    self.undo_partitions(&parts, internal_origin, &t.name);
                    return Err(storage_error(e));
                }
            }
        }
        Ok(Arc::new(Topic {
            name: t.name,
            id,
            state: RwLock::new(TopicState {
                partitions: parts,
                overrides,
                config,
            }),
        }))
    }

    /// Deletes a topic: the deletion is made durable, the topic unpublished, its logs closed
    /// and its directories removed.
    pub fn delete_topic(&self, id: Uuid) -> std::result::Result<(), ApiError> {
        let mut meta = lock(&self.meta);
        let topic = self.get_by_id(id).ok_or_else(|| {
            ApiError::new(ErrorCode::UnknownTopicId, format!("unknown topic id {id}"))
        })?;
        meta.commit(&[MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: id,
            ..Default::default()
        })])?;
        {
            let mut maps = write(&self.maps);
            maps.by_id.remove(&id);
            maps.by_name.remove(&topic.name);
        }
        for p in topic.state().partitions {
            if let Err(e) = p.delete() {
                tracing::warn!(topic = %topic.name, partition = p.index, error = %e, "could not remove a deleted partition's directory; it is removed at the next start");
            }
        }
        // A topic created later under the same name must not inherit these partitions'
        // checkpointed offsets (Kafka rewrites the checkpoints on deletion too).
        if let Err(e) = self.write_dir_checkpoints() {
            tracing::warn!(error = %e, "could not rewrite the data directory's checkpoints after a topic deletion");
        }
        tracing::info!(topic = %topic.name, id = %id, "deleted topic");
        Ok(())
    }

    /// Grows a topic to `total` partitions. A decrease or no change is `INVALID_PARTITIONS`.
    /// With `validate_only` nothing changes.
    pub fn create_partitions(
        &self,
        id: Uuid,
        total: i32,
        validate_only: bool,
    ) -> std::result::Result<(), ApiError> {
        let meta_guard = lock(&self.meta);
        let mut meta = meta_guard;
        let topic = self.get_by_id(id).ok_or_else(|| {
            ApiError::new(ErrorCode::UnknownTopicId, format!("unknown topic id {id}"))
        })?;
        let state = topic.state();
        let current = state.partitions.len() as i32;
        if total <= current {
            let msg = if total == current {
                format!("Topic already has {current} partitions.")
            } else {
                format!("The topic {} currently has {current} partition(s); {total} would not be an increase.", topic.name)
            };
            return Err(ApiError::new(ErrorCode::InvalidPartitions, msg));
        }
        if validate_only {
            return Ok(());
        }
        // Kafka's controller writes a PartitionRecord per new partition.
        let records: Vec<MetadataRecord> = (current..total)
            .map(|p| partition_record(id, p, self.node))
            .collect();
        meta.commit(&records)?;
        // As for a creation: every new directory, then one fsync of their parent.
        let mut new_parts = Vec::with_capacity(usize::try_from(total - current).unwrap_or(0));
        let node_state = single_node_partition(self.node);
        for p in current..total {
            new_parts.push(
                self.create_partition(&topic.name, p, &state.config, &node_state)
                    .map_err(storage_error)?,
            );
        }
        if let Some(parent) = self.partition_dir(&topic.name, current).parent() {
            self.storage
                .sync_dir(parent)
                .map_err(|e| storage_error(BrokerError::io(parent, e)))?;
        }
        write(&topic.state).partitions.extend(new_parts);
        Ok(())
    }
}
