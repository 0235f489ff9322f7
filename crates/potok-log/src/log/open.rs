//! Opening a [`Log`]: listing its segments, recovering those past the recovery point after
//! a crash, and rebuilding the producer state and the leader-epoch cache from what survived.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use potok_records::{BatchHeader, LeaderEpoch, Offset, BATCH_HEADER_LEN};

use super::cleaning;
use super::{DirCheckpoint, Log, OnDisk, RecoveryReport};
use crate::checkpoint::{
    has_clean_shutdown, read_checkpoint, remove_clean_shutdown, LOG_START_OFFSET_FILE,
    RECOVERY_POINT_FILE,
};
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_state::{self, ProducerStateManager, ProducerUpdate};
use crate::segment::{
    parse_segment_file_name, segment_file, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
    TXN_INDEX_SUFFIX,
};
use crate::storage::{read_exact_at, Storage};
use crate::txn_index::TxnIndex;
use crate::txn_marker::{parse_marker, EndTxnMarker};
use crate::{LogConfig, LogError, Result};

impl Log {
    /// Opens (creating if needed) the log in `dir`, recovering it as described in the crate
    /// docs. `now_ms` is the injected clock.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        storage: Arc<dyn Storage>,
        now_ms: i64,
    ) -> Result<Log> {
        Log::open_inner(dir, config, storage, now_ms, false, None, None)
    }

    /// Opens a log whose recovery point, log start offset and clean-shutdown marker the caller
    /// keeps per data directory (Kafka's `LogManager` files, see `checkpoint`): `known` is what
    /// those files say about this partition, so opening after a clean shutdown reads and writes
    /// none of the partition's own small files. `None` means the data directory has no such
    /// files yet (it was written by an older version): the partition's own files are read
    /// once, and its marker removed. Either way the log writes no checkpoint or marker of its
    /// own afterwards; the caller writes the directory's files from
    /// [`Log::recovery_point`] and [`Log::log_start_offset`], after [`Log::close`] for a clean
    /// shutdown.
    ///
    /// `leader_epoch` is assigned at the log end as part of the open (what
    /// [`Log::assign_leader_epoch`] does after it, Kafka's `makeLeader`), so that an unchanged
    /// `leader-epoch-checkpoint` is not rewritten: recovery drops an entry starting at the log
    /// end, and re-adding it afterwards cost two fsyncs per empty partition at every start.
    pub fn open_managed(
        dir: &Path,
        config: LogConfig,
        storage: Arc<dyn Storage>,
        now_ms: i64,
        known: Option<DirCheckpoint>,
        leader_epoch: Option<LeaderEpoch>,
    ) -> Result<Log> {
        Log::open_inner(dir, config, storage, now_ms, true, known, leader_epoch)
    }

    /// Creates the log of a new partition in `dir`, which must not exist or be empty (the
    /// caller removed any stale directory): the directory is made and the leader-epoch cache
    /// written with `leader_epoch` starting at offset 0; nothing is read, and the first
    /// segment's files are created by its first use. Managed like [`Log::open_managed`]: the
    /// caller keeps the recovery point and log start offset, both 0 here.
    ///
    /// Nothing here is fsynced. The caller makes the new directory's entry durable (one
    /// directory fsync for a whole batch of partitions, issue #14); the leader-epoch file is
    /// rebuilt from the (empty) log if a crash loses it, and a partition directory lost by a
    /// crash is made again by [`Log::open_managed`] from the caller's metadata.
    pub fn create_managed(
        dir: &Path,
        config: LogConfig,
        storage: Arc<dyn Storage>,
        now_ms: i64,
        leader_epoch: LeaderEpoch,
    ) -> Result<Log> {
        config.validate()?;
        storage
            .create_dir_all(dir)
            .map_err(|e| LogError::io(dir, e))?;
        let mut epochs = LeaderEpochCache::empty(dir);
        epochs.assign(leader_epoch.0, 0);
        // The first file of the log: without fsyncs, as for a rebuilt file at open (see
        // `recover_leader_epochs`); later changes are durable before the batches they describe
        // can pass the recovery point (the append that changes the epoch writes it first).
        epochs.write_unsynced(&*storage)?;
        let segment = Segment::create_deferred(&storage, dir, 0, &config, now_ms);
        Ok(Log {
            dir: dir.to_path_buf(),
            config,
            storage,
            segments: BTreeMap::from([(0, segment)]),
            log_start_offset: 0,
            recovery_point: 0,
            unflushed_records: 0,
            first_unflushed_ms: None,
            mapped: Mutex::new(VecDeque::new()),
            offline: false,
            last_recovery: RecoveryReport::default(),
            producers: ProducerStateManager::new(),
            last_expiration_check_ms: now_ms,
            on_disk: OnDisk::default(),
            epochs,
            cleaning: cleaning::CleaningState::default(),
            managed: true,
            background: None,
            flushes: Arc::default(),
        })
    }

    fn open_inner(
        dir: &Path,
        config: LogConfig,
        storage: Arc<dyn Storage>,
        now_ms: i64,
        managed: bool,
        known: Option<DirCheckpoint>,
        leader_epoch: Option<LeaderEpoch>,
    ) -> Result<Log> {
        config.validate()?;
        let st = &*storage;
        st.create_dir_all(dir).map_err(|e| LogError::io(dir, e))?;
        let mut report = RecoveryReport::default();
        let mut on_disk = OnDisk::default();
        // A partition marker left by an older version, to be removed once the log is open.
        let mut own_marker = false;
        let (log_start, recovery_point) = match known {
            Some(k) => {
                report.clean_shutdown = k.clean_shutdown;
                (
                    k.log_start_offset.unwrap_or(0),
                    k.recovery_point.unwrap_or(0),
                )
            }
            None => {
                own_marker = has_clean_shutdown(st, dir)?;
                report.clean_shutdown = own_marker;
                on_disk.log_start_offset = read_checkpoint(st, dir, LOG_START_OFFSET_FILE)?;
                let rp = match read_checkpoint(st, dir, RECOVERY_POINT_FILE) {
                    Ok(rp) => {
                        on_disk.recovery_point = rp;
                        rp.unwrap_or(0)
                    }
                    Err(e) => {
                        // Losing the recovery point only costs a longer scan.
                        tracing::warn!(error = %e, "unreadable recovery point checkpoint; recovering all segments");
                        report.clean_shutdown = false;
                        0
                    }
                };
                (on_disk.log_start_offset.unwrap_or(0), rp)
            }
        };

        // Collect segment base offsets; drop leftovers of interrupted operations.
        // Finish or roll back a segment swap of the log cleaner that a crash interrupted
        // (Kafka's `.cleaned` / `.swap` / `.deleted` procedure, `docs/format.md`).
        cleaning::recover_interrupted_swaps(st, dir)?;
        let cleaning = cleaning::CleaningState::load(st, dir);
        let mut bases = Vec::new();
        let mut index_files = Vec::new();
        let mut txn_bases = Vec::new();
        for path in st.list_dir(dir).map_err(|e| LogError::io(dir, e))? {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".tmp") {
                let _ = st.remove_file(&path);
                continue;
            }
            match parse_segment_file_name(name) {
                Some((base, LOG_SUFFIX)) => bases.push(base),
                Some((base, INDEX_SUFFIX | TIME_INDEX_SUFFIX)) => index_files.push((base, path)),
                Some((base, TXN_INDEX_SUFFIX)) => {
                    txn_bases.push(base);
                    index_files.push((base, path));
                }
                _ => {}
            }
        }
        bases.sort_unstable();
        for (base, path) in index_files {
            if bases.binary_search(&base).is_err() {
                tracing::warn!(path = %path.display(), "deleting index file without a log file");
                let _ = st.remove_file(&path);
            }
        }

        // Unclean: recover from the segment containing the recovery point onwards.
        let recover_from = if report.clean_shutdown {
            i64::MAX
        } else {
            bases
                .iter()
                .copied()
                .rfind(|&b| b <= recovery_point)
                .unwrap_or(i64::MIN)
        };
        // The `.txnindex` files. Their entries for markers below the producer-state snapshot
        // the open loads are durable (a roll fsyncs them before it writes its snapshot); the
        // replay after the snapshot adds those of later markers that a crash lost. One that is
        // not a valid index is rebuilt with every later one from its segment's batches, from
        // an older snapshot (Kafka rebuilds a segment whose index fails its sanity check).
        let mut txn_rebuild_from: Option<i64> = None;
        let mut txn_indexes = BTreeMap::new();
        for &base in &txn_bases {
            if bases.binary_search(&base).is_err() {
                continue;
            }
            let path = segment_file(dir, base, TXN_INDEX_SUFFIX);
            let loaded = TxnIndex::load(st, path)?.and_then(|t| {
                // An entry's marker lies in its segment (zero-filled blocks a power loss left
                // would put it at offset 0).
                match t.entries().iter().find(|e| e.last_offset.0 < base) {
                    Some(e) => Err(format!("entry {e:?} lies before the segment")),
                    None => Ok(t),
                }
            });
            match loaded {
                Ok(t) => {
                    txn_indexes.insert(base, t);
                }
                Err(reason) => {
                    tracing::warn!(segment = base, %reason, "invalid transaction index; rebuilding it from its segment");
                    txn_rebuild_from = Some(txn_rebuild_from.map_or(base, |r| r.min(base)));
                }
            }
        }
        let (epoch_cache, epoch_file_found) = LeaderEpochCache::load(st, dir)?;
        let mut segments = BTreeMap::new();
        let mut i = 0;
        while i < bases.len() {
            let base = bases[i];
            let is_last = i + 1 == bases.len();
            let mut seg = None;
            if base < recover_from {
                seg = Segment::open_checked(st, dir, base, &config, is_last, now_ms)?;
            }
            let seg = match seg {
                Some(s) => s,
                None => {
                    let unflushed = base >= recover_from;
                    // Data past the recovery point may be a torn tail: cut it. Data before it
                    // was fsynced, so invalid bytes there are corruption: keep them on disk
                    // (for inspection) but do not serve them, except in the last segment where
                    // appends must continue from a valid end.
                    let truncate = unflushed || is_last;
                    let (mut s, invalid) = Segment::open_and_rebuild(
                        st, dir, base, &config, unflushed, truncate, now_ms,
                    )?;
                    if unflushed {
                        report.scanned_segments.push(base);
                    } else {
                        report.rebuilt_indexes.push(base);
                    }
                    if let Some(inv) = invalid {
                        if truncate {
                            report.truncated_bytes += inv.file_len.saturating_sub(inv.position);
                            tracing::warn!(
                                segment = base,
                                position = inv.position,
                                reason = %inv.reason,
                                "truncating invalid or torn data at the end of the log segment"
                            );
                        } else {
                            tracing::warn!(
                                segment = base,
                                position = inv.position,
                                reason = %inv.reason,
                                "corrupt data inside a flushed log segment; it will not be served"
                            );
                            report
                                .corrupt_segments
                                .push((base, inv.position, inv.reason.clone()));
                        }
                        if unflushed && !is_last {
                            // Everything after a torn segment is unreliable too (Kafka's
                            // LogLoader deletes the later segments in this case).
                            for &later in &bases[i + 1..] {
                                tracing::warn!(
                                    segment = later,
                                    "deleting segment after a truncated one"
                                );
                                for suffix in [
                                    LOG_SUFFIX,
                                    INDEX_SUFFIX,
                                    TIME_INDEX_SUFFIX,
                                    TXN_INDEX_SUFFIX,
                                ] {
                                    let p = segment_file(dir, later, suffix);
                                    if let Err(e) = st.remove_file(&p) {
                                        if e.kind() != io::ErrorKind::NotFound {
                                            return Err(LogError::io(&p, e));
                                        }
                                    }
                                }
                                report.deleted_segments.push(later);
                            }
                            bases.truncate(i + 1);
                        }
                    }
                    if i + 1 < bases.len() {
                        s.close_indexes(st, false)?;
                    }
                    s
                }
            };
            let mut seg = seg;
            if txn_rebuild_from.is_some_and(|r| base >= r) {
                // Rebuilt from the batches with the producer state below.
                if txn_bases.contains(&base) {
                    seg.reset_txn_index(st)?;
                }
            } else if let Some(t) = txn_indexes.remove(&base) {
                seg.txn = t;
                // Recovery may have cut batches off the segment, and their markers' entries go
                // with them.
                seg.txn.truncate_to(st, Offset(seg.next_offset()))?;
            }
            segments.insert(base, seg);
            i += 1;
        }

        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            storage,
            segments,
            log_start_offset: log_start,
            recovery_point,
            unflushed_records: 0,
            first_unflushed_ms: None,
            mapped: Mutex::new(VecDeque::new()),
            offline: false,
            last_recovery: RecoveryReport::default(),
            producers: ProducerStateManager::new(),
            last_expiration_check_ms: now_ms,
            on_disk,
            epochs: epoch_cache,
            cleaning,
            managed,
            background: None,
            flushes: Arc::default(),
        };
        if log.segments.is_empty() {
            // The listing found no segment: the first one's files are made on first use, so a
            // never-written partition stays an empty directory across restarts.
            let seg =
                Segment::create_deferred(&log.storage, &log.dir, log_start, &log.config, now_ms);
            log.segments.insert(log_start, seg);
        }
        // Segments wholly below the log start offset were due for deletion already.
        log.delete_segments_below_log_start()?;
        let first_base = log.segments.keys().next().copied().unwrap_or(0);
        log.log_start_offset = log.log_start_offset.max(first_base);
        let leo = log.log_end_offset().0;
        if leo < log.log_start_offset {
            // Recovery cut below the log start offset; start afresh there (Kafka does the same).
            let start = log.log_start_offset;
            log.truncate_fully_and_start_at(Offset(start), now_ms)?;
        }
        if !report.clean_shutdown {
            // Make what recovery accepted durable before trusting it as the recovery point.
            let st = &*log.storage;
            for seg in log.segments.values_mut() {
                seg.flush(st)?;
            }
        }
        log.recovery_point = log.log_end_offset().0;
        log.checkpoint_recovery_point(log.recovery_point)?;
        log.checkpoint_log_start(log.log_start_offset)?;
        let (snapshot, replayed) = log.load_producer_state(now_ms, txn_rebuild_from)?;
        report.producer_snapshot = snapshot.map(Offset);
        report.producer_batches_replayed = replayed;
        log.recover_leader_epochs(
            epoch_file_found,
            report.clean_shutdown,
            recovery_point,
            leader_epoch,
        )?;
        // From here on a crash must be seen as unclean. A managed log's marker is the data
        // directory's, removed by the caller; an older version's partition marker must go too,
        // or a later open without the directory's files would trust this partition blindly.
        if !managed || own_marker {
            remove_clean_shutdown(&*log.storage, &log.dir)?;
        }
        log.last_recovery = report;
        Ok(log)
    }

    /// Rebuilds the producer state: drops snapshots above the log end offset (left by a
    /// truncation or a crash) and unreadable ones, loads the newest remaining one, replays the
    /// idempotent batches after it and expires old producers. Returns the snapshot's offset
    /// and the number of batches replayed.
    ///
    /// The replay adds the `.txnindex` entries of the ABORT markers it passes that their
    /// segment's index lacks (lost by a crash), and fsyncs them before the open trusts them.
    /// With `rebuild_txn_from` (invalid indexes from that offset on were emptied) the snapshot
    /// loaded is the newest at or below it, so the replay passes every marker from there
    /// (Kafka's `recoverSegment` rebuilds the producer state to the segment's base for the
    /// same purpose).
    pub(super) fn load_producer_state(
        &mut self,
        now_ms: i64,
        rebuild_txn_from: Option<i64>,
    ) -> Result<(Option<i64>, u64)> {
        let leo = self.log_end_offset().0;
        let mut loaded = None;
        // Rebuilt below from what is found on disk.
        self.on_disk.producer_snapshot = None;
        let snapshots = producer_state::list_snapshots(&*self.storage, &self.dir)?;
        for (offset, path) in snapshots.into_iter().rev() {
            if offset > leo {
                tracing::info!(path = %path.display(), "deleting producer state snapshot beyond the log end");
                producer_state::remove_snapshot(&*self.storage, &path)?;
                continue;
            }
            if loaded.is_some() || rebuild_txn_from.is_some_and(|r| offset > r) {
                continue;
            }
            match producer_state::read_snapshot(&*self.storage, &path, offset)? {
                Ok(state) => loaded = Some((offset, state)),
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "deleting invalid producer state snapshot");
                    producer_state::remove_snapshot(&*self.storage, &path)?;
                }
            }
        }
        let (from, snapshot) = match loaded {
            Some((offset, state)) => {
                self.producers = state;
                self.on_disk.producer_snapshot = Some(offset);
                (offset, Some(offset))
            }
            None => {
                self.producers.clear();
                (i64::MIN, None)
            }
        };
        let replayed = self.replay_producer_batches(from)?;
        let st = &*self.storage;
        for seg in self.segments.values_mut() {
            seg.txn.sync(st)?;
        }
        self.remove_expired_producers(now_ms);
        Ok((snapshot, replayed))
    }

    /// Applies every idempotent batch starting at or after `from` to the producer state,
    /// reading only batch headers (and a transaction marker's one record). Data recovery has
    /// already run, so what is readable is valid; a read failure (a corrupt closed segment)
    /// ends the replay with a warning rather than failing the open. ABORT markers missing from
    /// their segment's `.txnindex` get their entries.
    fn replay_producer_batches(&mut self, from: i64) -> Result<u64> {
        let leo = self.log_end_offset().0;
        // From the snapshot on, also below the log start (see `read_held`): the live state kept
        // those batches' producers (KIP-360), so the replay must not skip them.
        let first_base = self.segments.keys().next().copied().unwrap_or(leo);
        let mut next = from.max(first_base);
        let mut replayed = 0;
        while next < leo {
            let Some(h) = self.header_at(next, "producer state replay") else {
                break;
            };
            if h.base_offset >= from {
                if let Some(mut u) = ProducerUpdate::from_header(&h) {
                    let mut apply = true;
                    if h.is_control() {
                        match self.marker_at(&h) {
                            Some(m) => {
                                u.coordinator_epoch = m.coordinator_epoch;
                                if !m.commit {
                                    self.index_abort(&u, true)?;
                                }
                            }
                            // Another control type, or unreadable: no transaction ends here.
                            None => apply = false,
                        }
                    }
                    if apply {
                        self.producers.apply(&u);
                        replayed += 1;
                    }
                }
            }
            let after = h.next_offset().0;
            if after <= next {
                break;
            }
            next = after;
        }
        Ok(replayed)
    }

    /// The marker in the control batch whose header is `h`; `None` for another control type
    /// or, with a warning, when it cannot be read.
    fn marker_at(&self, h: &BatchHeader) -> Option<EndTxnMarker> {
        let bytes = self
            .read_held(Offset(h.base_offset), h.total_size(), None)
            .and_then(|s| s.read_bytes().map_err(|e| LogError::io(&self.dir, e)));
        let parsed = bytes.and_then(|b| parse_marker(b.get(..h.total_size()).unwrap_or(&b)));
        parsed.unwrap_or_else(|e| {
            tracing::warn!(offset = h.base_offset, error = %e, "unreadable transaction marker");
            None
        })
    }

    /// Appends the `.txnindex` entry of the ABORT marker `u` (not yet applied to the producer
    /// state) to the segment holding it, if it ends a transaction with data here (Kafka's
    /// `ProducerAppendInfo.appendEndTxnMarker` emits no completed transaction otherwise).
    /// With `if_missing` (the replay at open), an entry the index already has is kept.
    pub(super) fn index_abort(&mut self, u: &ProducerUpdate, if_missing: bool) -> Result<()> {
        let offset = u.batch.first_offset;
        let Some(entry) = self
            .producers
            .aborted_txn_entry(potok_records::ProducerId(u.producer_id), offset)
        else {
            return Ok(());
        };
        let st = &*self.storage;
        match self.segments.range_mut(..=offset.0).next_back() {
            Some((_, seg))
                if if_missing
                    && seg
                        .txn
                        .entries()
                        .last()
                        .is_some_and(|l| l.last_offset >= offset) =>
            {
                Ok(())
            }
            Some((_, seg)) => seg.append_aborted(st, entry),
            None => Ok(()),
        }
    }

    /// The header of the batch containing `offset`; `None` at the log end or, with a warning
    /// naming `purpose`, when the data cannot be read (a corrupt closed segment).
    fn header_at(&self, offset: i64, purpose: &str) -> Option<BatchHeader> {
        let mut hdr = [0u8; BATCH_HEADER_LEN];
        let header = self.read_held(Offset(offset), 1, None).and_then(|slice| {
            if slice.is_empty() {
                return Ok(None);
            }
            read_exact_at(&*slice.source, &mut hdr, slice.position)
                .map_err(|e| LogError::io(&self.dir, e))?;
            Ok(Some(BatchHeader::parse(&hdr)?))
        });
        header.unwrap_or_else(|e| {
            tracing::warn!(offset, error = %e, purpose, "stopped at unreadable data");
            None
        })
    }

    /// Brings the leader-epoch cache in line with the recovered log, as Kafka's log loading
    /// does: without a valid checkpoint it is rebuilt from every batch; after an unclean
    /// shutdown the batches from the recovery point on are assigned again (their entries may
    /// not have reached the file); entries past the log end or before its start are trimmed.
    fn recover_leader_epochs(
        &mut self,
        file_found: bool,
        clean_shutdown: bool,
        recovery_point: i64,
        leader_epoch: Option<LeaderEpoch>,
    ) -> Result<()> {
        // What the file holds, to skip rewriting it with the same entries.
        let file_entries = file_found.then(|| self.epochs.entries().to_vec());
        let mut changed = !file_found;
        let from = if !file_found {
            Some(self.log_start_offset)
        } else if !clean_shutdown {
            Some(recovery_point.max(self.log_start_offset))
        } else {
            None
        };
        let leo = self.log_end_offset().0;
        changed |= self.epochs.truncate_from_end(leo);
        if let Some(mut next) = from {
            while next < leo {
                let Some(h) = self.header_at(next, "leader epoch rebuild") else {
                    break;
                };
                changed |= self.epochs.assign(h.partition_leader_epoch, h.base_offset);
                let after = h.next_offset().0;
                if after <= next {
                    break;
                }
                next = after;
            }
        }
        changed |= self.epochs.truncate_from_start(self.log_start_offset);
        if let Some(epoch) = leader_epoch {
            changed |= self.epochs.assign(epoch.0, leo);
        }
        if changed && file_entries.as_deref() != Some(self.epochs.entries()) {
            if file_found {
                self.epochs.write(&*self.storage)?;
            } else {
                // No valid file existed, so a crash can leave this write's file missing,
                // empty, zero-filled or whole, never another valid cache: the first three are
                // rebuilt from the log like now. That makes the fsyncs unnecessary.
                self.epochs.write_unsynced(&*self.storage)?;
            }
        }
        Ok(())
    }
}
