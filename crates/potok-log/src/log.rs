//! [`Log`]: one partition's ordered set of segments, with append, read, truncation, retention,
//! flushing, checkpoints and recovery on open.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use potok_records::{
    set_base_offset, set_max_timestamp_and_log_append_time, set_partition_leader_epoch,
    BatchHeader, LeaderEpoch, Offset, BATCH_HEADER_LEN,
};

use crate::checkpoint::{
    has_clean_shutdown, read_checkpoint, remove_clean_shutdown, write_checkpoint,
    write_clean_shutdown, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE,
};
use crate::config::TimestampPolicy;
use crate::leader_epoch::{EpochEntry, LeaderEpochCache};
use crate::producer_state::{
    self, LeaderCheck, ProducerStateManager, ProducerUpdate, EXPIRATION_CHECK_INTERVAL_MS,
};
use crate::segment::{
    parse_segment_file_name, segment_file, PendingBatch, Segment, INDEX_SUFFIX, LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
};
use crate::storage::{read_exact_at, Storage, StorageFile};
use crate::{LogConfig, LogError, Result};

pub(crate) mod cleaning;

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub first_offset: Offset,
    /// Offset of the last record appended.
    pub last_offset: Offset,
    /// Largest batch max timestamp among the appended batches (-1 when none has one).
    pub max_timestamp: i64,
    /// Last offset of the batch carrying `max_timestamp`.
    pub offset_of_max_timestamp: Offset,
    /// The append time stamped into the batches under `LogAppendTime`, else `None`.
    pub log_append_time_ms: Option<i64>,
    /// Number of batches appended.
    pub batches: usize,
    /// Number of records appended (sum of the batches' record counts).
    pub records: u64,
    /// Bytes appended.
    pub bytes: usize,
    /// The log start offset after the append.
    pub log_start_offset: Offset,
    /// The batch was a retry of an idempotent batch already in the log: nothing was written,
    /// and the offsets and timestamp above are the original's (the broker acknowledges it as
    /// Kafka does, with no error and the original base offset).
    pub duplicate: bool,
}

/// A byte range of one segment file holding whole record batches, ready for `sendfile`
/// (`file`, `position`, `len`) or for [`ReadSlice::read_bytes`].
///
/// The range is chosen under the log's lock but read after it; a later `truncate_to` may cut
/// the file under it (a short `sendfile`), and retention may delete the file, which the open
/// handle keeps readable. Both are the same trade-offs Kafka makes.
#[derive(Clone, Debug)]
pub struct ReadSlice {
    /// The segment's `.log` file.
    pub file: Arc<File>,
    /// Byte position of the first batch.
    pub position: u64,
    /// Length in bytes (0 at the log end).
    pub len: usize,
    /// Base offset of the first batch (which may be below the offset asked for, because a
    /// batch is never split); the requested offset when the slice is empty.
    pub first_offset: Offset,
    source: Arc<dyn StorageFile>,
}

impl ReadSlice {
    /// Whether the slice holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the slice into memory (for callers that cannot use `sendfile`).
    pub fn read_bytes(&self) -> io::Result<Bytes> {
        let mut buf = vec![0u8; self.len];
        read_exact_at(&*self.source, &mut buf, self.position)?;
        Ok(Bytes::from(buf))
    }

    /// Reads the slice into `buf`, which must be exactly `len` bytes long.
    pub fn read_into(&self, buf: &mut [u8]) -> io::Result<()> {
        if buf.len() != self.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer length differs from the slice length",
            ));
        }
        read_exact_at(&*self.source, buf, self.position)
    }
}

/// Summary of an [`Log::open`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The previous process closed the log cleanly, so no segment was scanned.
    pub clean_shutdown: bool,
    /// Base offsets of the segments whose batches were scanned and CRC-checked.
    pub scanned_segments: Vec<i64>,
    /// Bytes cut off torn or invalid tails.
    pub truncated_bytes: u64,
    /// Base offsets of segments deleted because an earlier segment had to be truncated.
    pub deleted_segments: Vec<i64>,
    /// Base offsets of segments whose index files were rebuilt.
    pub rebuilt_indexes: Vec<i64>,
    /// Closed segments with invalid data in them that could not be repaired; their data from
    /// the reported byte position on is not served.
    pub corrupt_segments: Vec<(i64, u64, String)>,
    /// Offset of the producer state snapshot the producer state was loaded from, if any.
    pub producer_snapshot: Option<Offset>,
    /// Idempotent batches replayed into the producer state after that snapshot.
    pub producer_batches_replayed: u64,
}

/// What a data directory's checkpoint files say about one partition, for
/// [`Log::open_managed`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirCheckpoint {
    /// The data directory's clean-shutdown marker was present and this partition was listed.
    pub clean_shutdown: bool,
    /// The partition's entry in the directory's `recovery-point-offset-checkpoint`.
    pub recovery_point: Option<i64>,
    /// The partition's entry in the directory's `log-start-offset-checkpoint`.
    pub log_start_offset: Option<i64>,
}

/// A partition's log. See the crate docs for the API overview.
///
/// Thread-safety: `Log` is `Send + Sync`; mutating methods take `&mut self`, so the broker
/// wraps each log in a `Mutex` (never held across an `.await`). Reads take `&self`; the only
/// interior mutability is the small bounded set of memory-mapped closed indexes, guarded by
/// `mapped` (a leaf lock: nothing else is locked while it is held).
///
/// A `Log` must be the only writer of its directory; files are changed only through its
/// [`Storage`].
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    storage: Arc<dyn Storage>,
    /// Segments by base offset; the last is the active one. Never empty.
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    recovery_point: i64,
    /// Records appended since the last flush (`flush.messages`).
    unflushed_records: u64,
    /// Clock of the first append since the last flush (`flush.ms`).
    first_unflushed_ms: Option<i64>,
    /// Base offsets of closed segments whose indexes are mapped, oldest first.
    mapped: Mutex<VecDeque<i64>>,
    /// Set when an IO failure left the files and memory possibly disagreeing.
    offline: bool,
    last_recovery: RecoveryReport,
    /// Idempotent producers' epochs and last batches (see [`crate::producer_state`]); always
    /// reflects every batch below the log end offset.
    producers: ProducerStateManager,
    /// Clock of the last `producer.id.expiration.ms` sweep.
    last_expiration_check_ms: i64,
    /// The values the two checkpoint files hold on disk (`None`: unknown or absent), so that
    /// unchanged values are not rewritten: every rewrite costs two fsyncs, and opening and
    /// closing thousands of partitions must not pay them for nothing (issue #14).
    on_disk: OnDisk,
    /// Epoch -> start offset of the batches in the log (`leader-epoch-checkpoint`).
    epochs: LeaderEpochCache,
    /// State the log cleaner keeps with the log (see `log/cleaning.rs`).
    cleaning: cleaning::CleaningState,
    /// The caller keeps the recovery point, log start offset and clean-shutdown marker in
    /// per-data-directory files ([`Log::open_managed`]); the log writes none of its own.
    managed: bool,
}

/// What [`Log`] knows to be on disk, to skip rewriting unchanged files.
#[derive(Debug, Default, Clone, Copy)]
struct OnDisk {
    recovery_point: Option<i64>,
    log_start_offset: Option<i64>,
    /// The offset of a producer-state snapshot known to exist.
    producer_snapshot: Option<i64>,
}

/// A [`ReadSlice`] of `seg` that holds the segment's file open itself, so closing the
/// segment's descriptor to stay within the open-file bound, or deleting the segment, does not
/// end a read in flight.
fn pinned_slice(seg: &Segment, position: u64, len: usize, first_offset: i64) -> Result<ReadSlice> {
    let handle = seg.file();
    let io = |e| LogError::io(seg.log_path(), e);
    let source = handle
        .pinned()
        .map_err(io)?
        .unwrap_or_else(|| Arc::clone(handle));
    Ok(ReadSlice {
        file: source.std_file().map_err(io)?,
        position,
        len,
        first_offset: Offset(first_offset),
        source,
    })
}

fn last_segment(segments: &BTreeMap<i64, Segment>) -> Result<&Segment> {
    segments
        .values()
        .next_back()
        .ok_or_else(|| LogError::InvalidConfig("log has no segments".into()))
}

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
                                for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
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
        };
        if log.segments.is_empty() {
            let seg = Segment::create(&*log.storage, &log.dir, log_start, &log.config, now_ms)?;
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
            for seg in log.segments.values_mut() {
                seg.flush()?;
            }
        }
        log.recovery_point = log.log_end_offset().0;
        log.checkpoint_recovery_point(log.recovery_point)?;
        log.checkpoint_log_start(log.log_start_offset)?;
        let (snapshot, replayed) = log.load_producer_state(now_ms)?;
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

    /// What the last [`Log::open`] found and repaired.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.last_recovery
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration in force.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Replaces the configuration (a topic config change). Takes effect for later appends,
    /// rolls and retention runs; existing index files keep their size until the next roll.
    pub fn set_config(&mut self, config: LogConfig) -> Result<()> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// The first offset that may be read.
    pub fn log_start_offset(&self) -> Offset {
        Offset(self.log_start_offset)
    }

    /// The offset the next appended record gets.
    pub fn log_end_offset(&self) -> Offset {
        Offset(
            self.segments
                .values()
                .next_back()
                .map_or(self.log_start_offset, |s| s.next_offset()),
        )
    }

    /// Offset below which everything is fsynced.
    pub fn recovery_point(&self) -> Offset {
        Offset(self.recovery_point)
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size()).sum()
    }

    /// Base offsets of the segments, oldest first (the last is the active segment).
    pub fn segment_base_offsets(&self) -> Vec<Offset> {
        self.segments.keys().map(|&b| Offset(b)).collect()
    }

    /// Number of closed segments whose indexes are currently memory-mapped (bounded by
    /// `max_mapped_closed_indexes`).
    pub fn mapped_closed_indexes(&self) -> usize {
        self.segments
            .values()
            .take(self.segments.len().saturating_sub(1))
            .filter(|s| s.indexes_mapped())
            .count()
    }

    /// `(offset index entries, time index entries)` of the segment with base `base`, for tests
    /// and diagnostics.
    pub fn index_entries(&self, base: Offset) -> Option<(usize, usize)> {
        self.segments.get(&base.0).map(|s| s.index_entries())
    }

    fn check_online(&self) -> Result<()> {
        if self.offline {
            Err(LogError::Offline)
        } else {
            Ok(())
        }
    }

    /// Appends batches as the leader: assigns offsets from the log end offset (rewriting each
    /// batch's base offset in place), stamps `LogAppendTime` when configured, and applies the
    /// flush policy. The batches must be well-formed v2 batches (the broker has checked their
    /// CRCs); header fields are sanity-checked here, and nothing is written if any batch fails.
    ///
    /// On an IO error the batches of the failing write are removed again; when a buffer of
    /// several batches straddles a roll, the batches written before the failure stay (the log
    /// end offset shows how far it got). A Produce v2+ request carries one batch per partition,
    /// so for the leader an append is all or nothing.
    pub fn append(&mut self, batches: Bytes, now_ms: i64) -> Result<AppendInfo> {
        self.append_inner(batches, now_ms, true, None)
    }

    /// Appends batches as a follower: the offsets they carry are kept. The first batch must
    /// start at or above the log end offset and batches must not overlap.
    pub fn append_as_follower(&mut self, batches: Bytes, now_ms: i64) -> Result<AppendInfo> {
        self.append_inner(batches, now_ms, false, None)
    }

    /// [`Log::append`] that first stamps `leader_epoch` into every batch's partition leader
    /// epoch, as Kafka's `appendAsLeader` (via `LogValidator`) does, so the leader-epoch cache
    /// records where each epoch began.
    pub fn append_with_leader_epoch(
        &mut self,
        batches: Bytes,
        leader_epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        self.append_inner(batches, now_ms, true, Some(leader_epoch))
    }

    fn append_inner(
        &mut self,
        batches: Bytes,
        now_ms: i64,
        assign: bool,
        leader_epoch: Option<LeaderEpoch>,
    ) -> Result<AppendInfo> {
        self.check_online()?;
        let mut buf: BytesMut = batches
            .try_into_mut()
            .unwrap_or_else(|b| BytesMut::from(&b[..]));
        let mut next = self.log_end_offset().0;
        let mut pending: Vec<PendingBatch> = Vec::new();
        // (index into `pending`, update) for the batches that carry a producer id.
        let mut updates: Vec<(usize, ProducerUpdate)> = Vec::new();
        let mut pos = 0usize;
        let mut records = 0u64;
        let append_time = match self.config.timestamp_policy {
            TimestampPolicy::LogAppendTime if assign => Some(now_ms),
            _ => None,
        };
        while pos < buf.len() {
            let rest = buf.get_mut(pos..).unwrap_or(&mut []);
            let header = BatchHeader::parse(rest)?;
            let len = header.total_size();
            if len > rest.len() {
                return Err(LogError::InvalidBatch(
                    potok_records::RecordsError::Truncated {
                        position: pos,
                        needed: len,
                        available: rest.len(),
                    },
                ));
            }
            if len as u64 > self.config.segment_bytes {
                return Err(LogError::BatchTooLarge {
                    size: len,
                    segment_bytes: self.config.segment_bytes,
                });
            }
            if header.last_offset_delta < 0 || header.records_count < 0 {
                return Err(LogError::InvalidBatchFields(
                    "negative record count or last offset delta".into(),
                ));
            }
            let batch = rest.get_mut(..len).unwrap_or(&mut []);
            let header = if assign {
                // Kafka's LogValidator: the offset range must match the record count.
                if header.records_count == 0
                    || i64::from(header.last_offset_delta) + 1 != i64::from(header.records_count)
                {
                    return Err(LogError::InvalidBatchFields(format!(
                        "inconsistent batch offset range (last offset delta {}) and record count {}",
                        header.last_offset_delta, header.records_count
                    )));
                }
                set_base_offset(batch, Offset(next))?;
                if let Some(e) = leader_epoch {
                    set_partition_leader_epoch(batch, e)?;
                }
                if let Some(t) = append_time {
                    set_max_timestamp_and_log_append_time(batch, t)?;
                }
                BatchHeader::parse(batch)?
            } else {
                if header.base_offset < next {
                    return Err(LogError::OutOfOrderOffsets {
                        batch_base_offset: Offset(header.base_offset),
                        log_end_offset: Offset(next),
                    });
                }
                header
            };
            let last = header.last_offset().0;
            if last == i64::MAX {
                return Err(LogError::InvalidBatchFields("offset overflow".into()));
            }
            next = last + 1;
            if assign {
                let earlier = updates.iter().map(|(_, u)| *u);
                match self.producers.check_leader_batch(&header, earlier)? {
                    LeaderCheck::Untracked => {}
                    LeaderCheck::Accept(u) => updates.push((pending.len(), u)),
                    LeaderCheck::Duplicate(dup) => {
                        return Ok(AppendInfo {
                            first_offset: dup.first_offset,
                            last_offset: dup.last_offset,
                            max_timestamp: dup.timestamp,
                            offset_of_max_timestamp: dup.last_offset,
                            log_append_time_ms: None,
                            batches: 0,
                            records: 0,
                            bytes: 0,
                            log_start_offset: Offset(self.log_start_offset),
                            duplicate: true,
                        });
                    }
                }
            } else if let Some(u) = ProducerUpdate::from_header(&header) {
                updates.push((pending.len(), u));
            }
            records += u64::try_from(header.records_count).unwrap_or(0);
            pending.push(PendingBatch {
                start: pos,
                len,
                header,
            });
            pos += len;
        }
        let (Some(first), Some(last)) = (pending.first().copied(), pending.last().copied()) else {
            return Err(LogError::InvalidBatchFields(
                "no record batches to append".into(),
            ));
        };
        let buf = buf.freeze();

        // Write in groups: as many consecutive batches as fit the active segment, rolling in
        // between when a batch would exceed segment.bytes, segment.ms or the index size.
        let mut i = 0;
        while i < pending.len() {
            let mut j = i;
            let mut group_bytes = 0u64;
            while j < pending.len() {
                let b = &pending[j];
                let active = last_segment(&self.segments)?;
                let nonempty = active.size() + group_bytes > 0;
                let too_far =
                    b.header.last_offset().0.saturating_sub(active.base) > i64::from(i32::MAX);
                let roll = too_far
                    || (nonempty
                        && (active.size() + group_bytes + b.len as u64
                            > self.config.segment_bytes
                            || active.is_older_than(
                                now_ms,
                                b.header.max_timestamp,
                                self.config.effective_segment_ms(),
                            )
                            || active.indexes_full(j - i)));
                if roll {
                    break;
                }
                group_bytes += b.len as u64;
                j += 1;
            }
            if j == i {
                self.roll_at_or_go_offline(pending[i].header.base_offset, now_ms)?;
                continue;
            }
            let config = &self.config;
            let active = self
                .segments
                .values_mut()
                .next_back()
                .ok_or_else(|| LogError::InvalidConfig("log has no segments".into()))?;
            if let Err((e, state_unknown)) = active.append(config, &buf, &pending[i..j], now_ms) {
                if state_unknown {
                    self.offline = true;
                }
                return Err(e);
            }
            // Written: the producer state follows before a later roll snapshots it.
            for (_, u) in updates.iter().filter(|(k, _)| (i..j).contains(k)) {
                self.producers.apply(u);
            }
            // Kafka's UnifiedLog assigns each batch's partition leader epoch to the cache; a
            // failed checkpoint write leaves the file behind the log, so the log goes offline
            // and the next open rebuilds the cache from the unflushed batches.
            let mut changed = false;
            for b in &pending[i..j] {
                changed |= self
                    .epochs
                    .assign(b.header.partition_leader_epoch, b.header.base_offset);
            }
            if changed {
                if let Err(e) = self.epochs.write(&*self.storage) {
                    self.offline = true;
                    return Err(e);
                }
            }
            i = j;
        }

        let max = pending
            .iter()
            .map(|b| (b.header.max_timestamp, b.header.last_offset().0))
            .fold((-1i64, first.header.base_offset), |acc, x| {
                if x.0 > acc.0 {
                    x
                } else {
                    acc
                }
            });
        if now_ms.saturating_sub(self.last_expiration_check_ms) >= EXPIRATION_CHECK_INTERVAL_MS {
            self.remove_expired_producers(now_ms);
        }
        self.unflushed_records += records;
        if self.first_unflushed_ms.is_none() {
            self.first_unflushed_ms = Some(now_ms);
        }
        let due = self.config.fsync_before_ack
            || self
                .config
                .flush_messages
                .is_some_and(|n| self.unflushed_records >= n);
        if due {
            self.flush()?;
        } else {
            self.maybe_flush(now_ms)?;
        }
        Ok(AppendInfo {
            first_offset: Offset(first.header.base_offset),
            last_offset: last.header.last_offset(),
            max_timestamp: max.0,
            offset_of_max_timestamp: Offset(max.1),
            log_append_time_ms: append_time,
            batches: pending.len(),
            records,
            bytes: buf.len(),
            log_start_offset: Offset(self.log_start_offset),
            duplicate: false,
        })
    }

    /// Flushes if `flush.ms` has passed since the first unflushed append. The broker calls this
    /// periodically (Kafka's `log.flush.scheduler.interval.ms`); appends call it too.
    pub fn maybe_flush(&mut self, now_ms: i64) -> Result<bool> {
        if let (Some(ms), Some(first)) = (self.config.flush_ms, self.first_unflushed_ms) {
            if now_ms.saturating_sub(first) >= ms {
                self.flush()?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// fsyncs every segment with unflushed data and advances the recovery point to the log end
    /// offset (in memory; the checkpoint file is written on roll and close). A failed fsync
    /// takes the log offline, because the page cache may have dropped the data (as Kafka does).
    pub fn flush(&mut self) -> Result<()> {
        self.check_online()?;
        let from = self
            .segments
            .range(..=self.recovery_point)
            .next_back()
            .map_or(i64::MIN, |(&b, _)| b);
        for seg in self.segments.range_mut(from..).map(|(_, s)| s) {
            if let Err(e) = seg.flush() {
                self.offline = true;
                return Err(e);
            }
        }
        self.recovery_point = self.log_end_offset().0;
        self.unflushed_records = 0;
        self.first_unflushed_ms = None;
        Ok(())
    }

    /// Rolls to a new active segment at the log end offset (no-op when the active segment is
    /// empty). The old segment's indexes get their final time entry and are trimmed; it is
    /// flushed and the recovery point checkpointed, as Kafka's roll does (there, asynchronously).
    pub fn roll(&mut self, now_ms: i64) -> Result<()> {
        self.check_online()?;
        let leo = self.log_end_offset().0;
        self.roll_at_or_go_offline(leo, now_ms)
    }

    /// A roll that fails half-way (old segment closed, new one missing) leaves no segment to
    /// append to, so any failure takes the log offline until it is reopened and recovered.
    fn roll_at_or_go_offline(&mut self, new_base: i64, now_ms: i64) -> Result<()> {
        let r = self.roll_at(new_base, now_ms);
        if r.is_err() {
            self.offline = true;
        }
        r
    }

    fn roll_at(&mut self, new_base: i64, now_ms: i64) -> Result<()> {
        let new_base = new_base.max(self.log_end_offset().0);
        let active_base = last_segment(&self.segments)?.base;
        let active_empty = last_segment(&self.segments)?.is_empty();
        if active_empty {
            if active_base == new_base {
                return Ok(());
            }
            // An empty active segment is replaced rather than kept (only a follower jumping
            // over an offset gap gets here).
            if let Some(seg) = self.segments.remove(&active_base) {
                seg.delete_files(&*self.storage)?;
            }
        } else {
            let result = (|| {
                let seg = self
                    .segments
                    .values_mut()
                    .next_back()
                    .ok_or_else(|| LogError::InvalidConfig("log has no segments".into()))?;
                seg.close_indexes(&*self.storage, true)?;
                seg.flush()
            })();
            if let Err(e) = result {
                self.offline = true;
                return Err(e);
            }
        }
        let seg = Segment::create(&*self.storage, &self.dir, new_base, &self.config, now_ms)?;
        self.segments.insert(new_base, seg);
        self.storage
            .sync_dir(&self.dir)
            .map_err(|e| LogError::io(&self.dir, e))?;
        // Everything before the new segment is durable now.
        let from = self
            .segments
            .range(..=self.recovery_point)
            .next_back()
            .map_or(i64::MIN, |(&b, _)| b);
        for seg in self.segments.range_mut(from..new_base).map(|(_, s)| s) {
            seg.flush()?;
        }
        if new_base > self.recovery_point {
            self.recovery_point = new_base;
            self.checkpoint_recovery_point(new_base)?;
        }
        // Kafka snapshots the producer state on every roll, so recovery replays at most the
        // active segment. Everything below `new_base` is durable now, so the snapshot never
        // describes data a crash could lose.
        self.snapshot_producers(new_base)
    }

    fn note_mapped(&self, base: i64) {
        let mut lru = self.mapped.lock().unwrap_or_else(|e| e.into_inner());
        lru.retain(|&b| b != base);
        lru.push_back(base);
        while lru.len() > self.config.max_mapped_closed_indexes {
            if let Some(old) = lru.pop_front() {
                if let Some(seg) = self.segments.get(&old) {
                    seg.unmap_indexes();
                }
            }
        }
    }

    fn out_of_range(&self, offset: i64) -> LogError {
        LogError::OffsetOutOfRange {
            offset: Offset(offset),
            log_start_offset: Offset(self.log_start_offset),
            log_end_offset: self.log_end_offset(),
        }
    }

    /// Reads whole batches starting with the one containing `from`, up to `max_bytes` (but at
    /// least one whole batch), only batches whose last offset is below `max_offset` when given
    /// (the high watermark for consumers), from a single segment (as Kafka does). At the log
    /// end, or when the first batch reaches `max_offset`, the slice is empty.
    /// `from` outside `[log_start_offset, log_end_offset]` is [`LogError::OffsetOutOfRange`].
    pub fn read(
        &self,
        from: Offset,
        max_bytes: usize,
        max_offset: Option<Offset>,
    ) -> Result<ReadSlice> {
        let leo = self.log_end_offset().0;
        if from.0 < self.log_start_offset || from.0 > leo {
            return Err(self.out_of_range(from.0));
        }
        let active = last_segment(&self.segments)?;
        if from.0 == leo {
            return pinned_slice(active, active.size(), 0, from.0);
        }
        let start_base = self
            .segments
            .range(..=from.0)
            .next_back()
            .map_or(i64::MIN, |(&b, _)| b);
        for (&base, seg) in self.segments.range(start_base..) {
            let mut mapped = false;
            let r = seg.read(
                &*self.storage,
                from.0.max(base),
                max_bytes,
                max_offset.map(|o| o.0),
                &mut mapped,
            );
            // Only closed segments' indexes get mapped on demand (the active one always is).
            if mapped {
                self.note_mapped(base);
            }
            if let Some(r) = r? {
                let len = usize::try_from(r.len).unwrap_or(usize::MAX);
                return pinned_slice(seg, r.position, len, r.first_offset);
            }
        }
        pinned_slice(active, active.size(), 0, from.0)
    }

    /// The first record whose timestamp is `>= timestamp` at or after the log start offset,
    /// as `(offset, record timestamp)` (Kafka's ListOffsets by timestamp); `None` when every
    /// record is older.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(Offset, i64)>> {
        for (&base, seg) in self.segments.iter() {
            if seg.max_timestamp() < timestamp {
                continue;
            }
            let mut mapped = false;
            let r = seg.find_by_timestamp(
                &*self.storage,
                timestamp,
                self.log_start_offset,
                &mut mapped,
            );
            if mapped {
                self.note_mapped(base);
            }
            if let Some((o, ts)) = r? {
                return Ok(Some((Offset(o), ts)));
            }
        }
        Ok(None)
    }

    /// The largest record timestamp in the log and the offset of the first record carrying it
    /// (ListOffsets `MAX_TIMESTAMP`, KIP-734); `None` for a log without timestamps.
    pub fn max_timestamp_and_offset(&self) -> Result<Option<(i64, Offset)>> {
        let max = self
            .segments
            .values()
            .map(|s| s.max_timestamp())
            .max()
            .unwrap_or(-1);
        if max < 0 {
            return Ok(None);
        }
        Ok(self.offset_for_timestamp(max)?.map(|(o, ts)| (ts, o)))
    }

    /// Removes all batches whose last offset is `>= offset` (so the log end offset becomes
    /// `offset`, or the start of the batch containing it). Used by followers. A target below
    /// the first segment empties the log and restarts it at `offset`. Returns whether anything
    /// was removed.
    pub fn truncate_to(&mut self, offset: Offset, now_ms: i64) -> Result<bool> {
        // A cleaning prepared before this must not swap segments that were cut and rewritten.
        self.cleaning.truncations += 1;
        self.check_online()?;
        if offset.0 < 0 {
            return Err(self.out_of_range(offset.0));
        }
        if offset.0 >= self.log_end_offset().0 {
            return Ok(false);
        }
        let first_base = self.segments.keys().next().copied().unwrap_or(0);
        if offset.0 < first_base {
            self.truncate_fully_and_start_at(offset, now_ms)?;
            return Ok(true);
        }
        let result = self.truncate_segments(offset.0);
        if result.is_err() {
            self.offline = true;
        }
        result?;
        let leo = self.log_end_offset().0;
        // Kafka lowers the log start offset to the truncation target; the target may sit
        // inside a removed batch, so the new log end offset bounds it too (log start <= LEO).
        let new_start = self.log_start_offset.min(offset.0).min(leo);
        if new_start != self.log_start_offset {
            self.log_start_offset = new_start;
            self.checkpoint_log_start(new_start)?;
        }
        if self.recovery_point > leo {
            self.recovery_point = leo;
            self.checkpoint_recovery_point(leo)?;
        }
        if self.epochs.truncate_from_end(leo) {
            self.epochs.write(&*self.storage)?;
        }
        // The removed batches may have been any producer's latest: rebuild the state from the
        // newest snapshot that is still valid, as Kafka's `truncateAndReload` does.
        self.load_producer_state(now_ms)?;
        Ok(true)
    }

    fn truncate_segments(&mut self, offset: i64) -> Result<()> {
        // Newest first, so a crash part-way leaves a prefix of the old log (a truncation not yet
        // finished, which the follower repeats) rather than a log with a hole in it.
        let later: Vec<i64> = self
            .segments
            .range(offset + 1..)
            .map(|(&b, _)| b)
            .rev()
            .collect();
        for b in later {
            if let Some(seg) = self.segments.remove(&b) {
                seg.delete_files(&*self.storage)?;
            }
            self.mapped
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|&x| x != b);
        }
        let storage = Arc::clone(&self.storage);
        let config = self.config.clone();
        let seg = self
            .segments
            .values_mut()
            .next_back()
            .ok_or_else(|| LogError::InvalidConfig("log has no segments".into()))?;
        let base = seg.base;
        seg.make_active(&*storage, &config)?;
        seg.truncate_to(&*storage, offset)?;
        self.mapped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|&x| x != base);
        Ok(())
    }

    /// Deletes every segment and starts an empty log at `offset` (a follower whose fetch
    /// offset fell outside the leader's log).
    pub fn truncate_fully_and_start_at(&mut self, offset: Offset, now_ms: i64) -> Result<()> {
        self.cleaning.truncations += 1;
        if offset.0 < 0 {
            return Err(self.out_of_range(offset.0));
        }
        let all: Vec<i64> = self.segments.keys().rev().copied().collect();
        for b in all {
            if let Some(seg) = self.segments.remove(&b) {
                if let Err(e) = seg.delete_files(&*self.storage) {
                    self.offline = true;
                    return Err(e);
                }
            }
        }
        self.mapped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let seg = Segment::create(&*self.storage, &self.dir, offset.0, &self.config, now_ms)?;
        self.segments.insert(offset.0, seg);
        self.log_start_offset = offset.0;
        self.recovery_point = offset.0;
        self.unflushed_records = 0;
        self.first_unflushed_ms = None;
        self.checkpoint_log_start(offset.0)?;
        self.checkpoint_recovery_point(offset.0)?;
        self.producers.clear();
        self.on_disk.producer_snapshot = None;
        for (_, path) in producer_state::list_snapshots(&*self.storage, &self.dir)? {
            producer_state::remove_snapshot(&*self.storage, &path)?;
        }
        if self.epochs.clear() {
            self.epochs.write(&*self.storage)?;
        }
        Ok(())
    }

    /// Advances the log start offset to `offset` (DeleteRecords) and deletes segments that lie
    /// wholly below it. The caller checks `offset` against the high watermark; here it may be at
    /// most the log end offset. Returns the new log start offset.
    pub fn delete_records_before(&mut self, offset: Offset) -> Result<Offset> {
        self.check_online()?;
        if offset.0 > self.log_end_offset().0 || offset.0 < 0 {
            return Err(self.out_of_range(offset.0));
        }
        if offset.0 > self.log_start_offset {
            self.log_start_offset = offset.0;
            self.checkpoint_log_start(offset.0)?;
            self.truncate_epochs_from_start()?;
            self.delete_segments_below_log_start()?;
        }
        Ok(Offset(self.log_start_offset))
    }

    fn delete_segments_below_log_start(&mut self) -> Result<()> {
        loop {
            let mut keys = self.segments.keys();
            let (Some(&first), Some(&second)) = (keys.next(), keys.next()) else {
                return Ok(());
            };
            if second > self.log_start_offset {
                return Ok(());
            }
            self.delete_segment(first)?;
        }
    }

    fn delete_segment(&mut self, base: i64) -> Result<()> {
        if let Some(seg) = self.segments.remove(&base) {
            self.mapped
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|&x| x != base);
            seg.delete_files(&*self.storage)?;
        }
        // Snapshots go with their segments, as in Kafka; the in-memory state is kept (since
        // KIP-360 producers outlive their data until `producer.id.expiration.ms`), and the
        // snapshot at the new first segment's base still carries it across a restart.
        let first = self.segments.keys().next().copied().unwrap_or(i64::MAX);
        for (offset, path) in producer_state::list_snapshots(&*self.storage, &self.dir)? {
            if offset < first {
                if self.on_disk.producer_snapshot == Some(offset) {
                    self.on_disk.producer_snapshot = None;
                }
                producer_state::remove_snapshot(&*self.storage, &path)?;
            }
        }
        Ok(())
    }

    /// Applies `retention.ms` and `retention.bytes` (in that order, as Kafka's
    /// `deleteOldSegments` does) and returns the base offsets of the deleted segments.
    ///
    /// Only whole segments are deleted, oldest first, stopping at the first one that must be
    /// kept. A segment expires by time when `now_ms - largest timestamp > retention.ms`, where
    /// the largest timestamp is the maximum record timestamp in the segment (its file's
    /// modification time when no record has one). **A record stamped in the future therefore
    /// keeps its segment, and every later segment, until the clock passes that timestamp plus
    /// `retention.ms`** — Kafka behaves the same way; `message.timestamp.after.max.ms` on the
    /// broker is the guard against such timestamps. When every segment including the active
    /// one is deletable, the active segment is rolled first so it can be deleted too, as Kafka
    /// does; an empty active segment is never deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<Vec<Offset>> {
        self.apply_retention_below(now_ms, None)
    }

    /// Like [`Log::apply_retention`], but never deletes a segment holding offsets at or above
    /// `high_watermark` (Kafka only deletes segments below the high watermark).
    pub fn apply_retention_below(
        &mut self,
        now_ms: i64,
        high_watermark: Option<Offset>,
    ) -> Result<Vec<Offset>> {
        self.check_online()?;
        let mut deleted = Vec::new();
        if self.config.retention_ms >= 0 {
            let retention_ms = self.config.retention_ms;
            let mut expired = Vec::new();
            for seg in self.segments.values() {
                expired.push(
                    now_ms.saturating_sub(seg.largest_timestamp_for_retention()?) > retention_ms,
                );
            }
            let mut it = expired.into_iter();
            let n = self.deletable(high_watermark, |_| it.next().unwrap_or(false));
            deleted.extend(self.delete_oldest(n, now_ms)?);
        }
        if self.config.retention_bytes >= 0 {
            let mut diff = i128::from(self.size_bytes()) - i128::from(self.config.retention_bytes);
            let n = self.deletable(high_watermark, |seg| {
                let size = i128::from(seg.size());
                if diff - size >= 0 {
                    diff -= size;
                    true
                } else {
                    false
                }
            });
            deleted.extend(self.delete_oldest(n, now_ms)?);
        }
        Ok(deleted)
    }

    /// How many of the oldest segments satisfy `pred` in a row (Kafka's `deletableSegments`):
    /// stops at an empty active segment and, with a high watermark, at the first segment
    /// reaching it.
    fn deletable(
        &self,
        high_watermark: Option<Offset>,
        mut pred: impl FnMut(&Segment) -> bool,
    ) -> usize {
        let mut n = 0;
        let segs: Vec<&Segment> = self.segments.values().collect();
        for (i, seg) in segs.iter().enumerate() {
            let upper = segs.get(i + 1).map_or(seg.next_offset(), |next| next.base);
            if i + 1 == segs.len() && seg.is_empty() {
                break;
            }
            if high_watermark.is_some_and(|hw| upper > hw.0) {
                break;
            }
            if !pred(seg) {
                break;
            }
            n += 1;
        }
        n
    }

    fn delete_oldest(&mut self, n: usize, now_ms: i64) -> Result<Vec<Offset>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        if n >= self.segments.len() {
            self.roll(now_ms)?;
        }
        let victims: Vec<i64> = self.segments.keys().take(n).copied().collect();
        let new_start = self
            .segments
            .keys()
            .nth(n)
            .copied()
            .unwrap_or(self.log_start_offset);
        // Persist the new log start offset before deleting, so a crash in between cannot bring
        // deleted-but-not-yet-removed data back into the readable range.
        if new_start > self.log_start_offset {
            self.log_start_offset = new_start;
            self.checkpoint_log_start(new_start)?;
            self.truncate_epochs_from_start()?;
        }
        for &b in &victims {
            self.delete_segment(b)?;
        }
        Ok(victims.into_iter().map(Offset).collect())
    }

    /// The idempotent producers' state (DescribeProducers, tests).
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producers
    }

    /// Forgets producers whose last batch is `producer.id.expiration.ms` old (Kafka's
    /// `removeExpiredProducers`). Appends run this every 10 minutes of the injected clock on
    /// their own (`producer.id.expiration.check.interval.ms`); the broker may call it too.
    /// Returns how many were removed.
    pub fn remove_expired_producers(&mut self, now_ms: i64) -> usize {
        self.last_expiration_check_ms = now_ms;
        self.producers
            .remove_expired(now_ms, self.config.producer_id_expiration_ms)
    }

    /// Rebuilds the producer state: drops snapshots above the log end offset (left by a
    /// truncation or a crash) and unreadable ones, loads the newest remaining one, replays the
    /// idempotent batches after it and expires old producers. Returns the snapshot's offset
    /// and the number of batches replayed.
    fn load_producer_state(&mut self, now_ms: i64) -> Result<(Option<i64>, u64)> {
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
            if loaded.is_some() {
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
        let replayed = self.replay_producer_batches(from);
        self.remove_expired_producers(now_ms);
        Ok((snapshot, replayed))
    }

    /// Applies every idempotent batch starting at or after `from` to the producer state,
    /// reading only batch headers. Data recovery has already run, so what is readable is
    /// valid; a read failure (a corrupt closed segment) ends the replay with a warning rather
    /// than failing the open.
    fn replay_producer_batches(&mut self, from: i64) -> u64 {
        let leo = self.log_end_offset().0;
        let mut next = from.max(self.log_start_offset);
        let mut replayed = 0;
        while next < leo {
            let Some(h) = self.header_at(next, "producer state replay") else {
                break;
            };
            if h.base_offset >= from {
                if let Some(u) = ProducerUpdate::from_header(&h) {
                    self.producers.apply(&u);
                    replayed += 1;
                }
            }
            let after = h.next_offset().0;
            if after <= next {
                break;
            }
            next = after;
        }
        replayed
    }

    /// The header of the batch containing `offset`; `None` at the log end or, with a warning
    /// naming `purpose`, when the data cannot be read (a corrupt closed segment).
    fn header_at(&self, offset: i64, purpose: &str) -> Option<BatchHeader> {
        let mut hdr = [0u8; BATCH_HEADER_LEN];
        let header = self.read(Offset(offset), 1, None).and_then(|slice| {
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
            self.epochs.write(&*self.storage)?;
        }
        Ok(())
    }

    /// Drops the leader-epoch entries below the (advanced) log start offset.
    fn truncate_epochs_from_start(&mut self) -> Result<()> {
        if self.epochs.truncate_from_start(self.log_start_offset) {
            self.epochs.write(&*self.storage)?;
        }
        Ok(())
    }

    /// Records that `epoch` starts at the log end offset, as Kafka's `Partition.makeLeader` does
    /// (`maybeAssignEpochStartOffset`) when this replica becomes leader in `epoch`, so that
    /// OffsetForLeaderEpoch for the current epoch answers the log end offset even before the
    /// first batch of the epoch is written.
    pub fn assign_leader_epoch(&mut self, epoch: LeaderEpoch) -> Result<()> {
        self.check_online()?;
        let leo = self.log_end_offset().0;
        if self.epochs.assign(epoch.0, leo) {
            self.epochs.write(&*self.storage)?;
        }
        Ok(())
    }

    /// The leader-epoch cache's entries, oldest first (`leader-epoch-checkpoint`).
    pub fn leader_epoch_entries(&self) -> &[EpochEntry] {
        self.epochs.entries()
    }

    /// The epoch of the newest batch that carried one.
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.epochs.latest_epoch().map(LeaderEpoch)
    }

    /// The epoch of the batch containing `offset`, as the cache knows it (Kafka's
    /// `epochForOffset`, used by ListOffsets).
    pub fn epoch_for_offset(&self, offset: Offset) -> Option<LeaderEpoch> {
        self.epochs.epoch_for_offset(offset.0).map(LeaderEpoch)
    }

    /// OffsetForLeaderEpoch (KIP-101/KIP-279), Kafka's `LeaderEpochFileCache.endOffsetFor`:
    /// the largest known epoch `<= epoch` and the offset where it ended (the log end offset
    /// for the latest epoch). `None` is Kafka's (`UNDEFINED_EPOCH`, `UNDEFINED_EPOCH_OFFSET`):
    /// `epoch` is -1, newer than every known epoch, or the cache is empty.
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
        let (e, o) = self.epochs.end_offset_for(epoch.0, self.log_end_offset().0);
        (e != crate::leader_epoch::UNDEFINED_EPOCH
            || o != crate::leader_epoch::UNDEFINED_EPOCH_OFFSET)
            .then_some((LeaderEpoch(e), Offset(o)))
    }

    /// Flushes everything, trims the active segment's indexes, writes both checkpoints and the
    /// clean-shutdown marker, so the next open skips recovery.
    pub fn close(mut self) -> Result<()> {
        self.check_online()?;
        self.flush()?;
        if let Some(seg) = self.segments.values_mut().next_back() {
            seg.close_indexes(&*self.storage, true)?;
        }
        self.checkpoint_recovery_point(self.recovery_point)?;
        self.checkpoint_log_start(self.log_start_offset)?;
        let leo = self.log_end_offset().0;
        // A log nothing was ever appended to has no producer state and needs no snapshot to
        // rebuild it (Kafka's `takeSnapshot` likewise skips when nothing was appended since the
        // last one); writing one cost two fsyncs per never-written partition at every shutdown.
        if leo > 0 || !self.producers.is_empty() {
            self.snapshot_producers(leo)?;
        }
        if self.managed {
            return Ok(());
        }
        write_clean_shutdown(&*self.storage, &self.dir)
    }

    /// Makes the recovery-point checkpoint hold `offset`, writing only if it does not already.
    fn checkpoint_recovery_point(&mut self, offset: i64) -> Result<()> {
        if !self.managed && self.on_disk.recovery_point != Some(offset) {
            // Forget the old value first: after a failed write the file's content is unknown.
            self.on_disk.recovery_point = None;
            write_checkpoint(&*self.storage, &self.dir, RECOVERY_POINT_FILE, offset)?;
            self.on_disk.recovery_point = Some(offset);
        }
        Ok(())
    }

    /// Makes the log-start-offset checkpoint hold `offset`, writing only if it does not already.
    fn checkpoint_log_start(&mut self, offset: i64) -> Result<()> {
        if !self.managed && self.on_disk.log_start_offset != Some(offset) {
            self.on_disk.log_start_offset = None;
            write_checkpoint(&*self.storage, &self.dir, LOG_START_OFFSET_FILE, offset)?;
            self.on_disk.log_start_offset = Some(offset);
        }
        Ok(())
    }

    /// Writes a producer-state snapshot at `offset` unless one at that offset is known to
    /// exist: the state at an offset only changes by appends, which move the offset (Kafka's
    /// `ProducerStateManager.takeSnapshot` likewise skips an offset it has a snapshot for).
    fn snapshot_producers(&mut self, offset: i64) -> Result<()> {
        if self.on_disk.producer_snapshot != Some(offset) {
            self.on_disk.producer_snapshot = None;
            producer_state::write_snapshot(&*self.storage, &self.dir, offset, &self.producers)?;
            self.on_disk.producer_snapshot = Some(offset);
        }
        Ok(())
    }

    /// Deletes the whole partition directory (the partition was deleted or moved away).
    pub fn delete(self) -> Result<()> {
        let dir = self.dir.clone();
        let storage = Arc::clone(&self.storage);
        drop(self);
        storage
            .remove_dir_all(&dir)
            .map_err(|e| LogError::io(&dir, e))
    }
}
