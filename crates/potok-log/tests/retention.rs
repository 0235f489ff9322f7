//! Roll and retention with an injected clock, and the flush policy.

mod common;

use common::*;
use potok_log::{LogConfig, Offset};

const DAY: i64 = 24 * 60 * 60 * 1000;
const NOW: i64 = 1_700_000_000_000;

fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        segment_index_bytes: 4096,
        retention_ms: DAY,
        ..LogConfig::default()
    }
}

#[test]
fn time_retention_deletes_only_expired_closed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), cfg(), NOW);
    // Three days of data, one batch per hour, timestamps increasing.
    for h in 0..72 {
        let ts = NOW + h * 3_600_000;
        log.append(simple_batch(1, ts, 300, h as u8), ts).unwrap();
    }
    let segs = log.segment_base_offsets();
    assert!(segs.len() > 5);
    // At the end of day 3 plus a bit, data older than a day goes.
    let now = NOW + 72 * 3_600_000;
    let deleted = log.apply_retention(now).unwrap();
    assert!(!deleted.is_empty());
    let start = log.log_start_offset();
    assert_eq!(Some(&start), log.segment_base_offsets().first());
    let recs = read_all(&log, start.0);
    // Everything still present is either newer than a day or shares a segment with newer data.
    let first_kept_ts = recs.first().unwrap().1;
    assert!(
        now - first_kept_ts <= DAY + 3 * 3_600_000 * 2,
        "kept too much"
    );
    // Every record of a deleted segment was older than a day.
    assert!(start.0 > 0);
    assert!(now - (NOW + (start.0 - 1) * 3_600_000) > DAY);
    // Running again deletes nothing more.
    assert!(log.apply_retention(now).unwrap().is_empty());
    // Retention survives reopen.
    drop(log);
    let log = open(dir.path(), cfg(), now);
    assert_eq!(log.log_start_offset(), start);
}

#[test]
fn far_future_timestamp_keeps_its_segment_and_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), cfg(), NOW);
    for h in 0..10 {
        log.append(simple_batch(1, NOW + h, 300, 0), NOW).unwrap();
    }
    // One record stamped ten years ahead lands in the segment after the first few.
    log.roll(NOW).unwrap();
    let future_seg = log.log_end_offset();
    log.append(simple_batch(1, NOW + 3650 * DAY, 300, 1), NOW)
        .unwrap();
    for h in 0..10 {
        log.append(simple_batch(1, NOW + h, 300, 2), NOW).unwrap();
    }
    let now = NOW + 30 * DAY;
    let deleted = log.apply_retention(now).unwrap();
    // Everything before the far-future segment goes; it and all later segments stay, even
    // though they hold old timestamps too (deletion stops at the first kept segment).
    assert!(!deleted.is_empty());
    assert_eq!(log.log_start_offset(), future_seg);
    assert_eq!(log.segment_base_offsets()[0], future_seg);
    assert_eq!(read_all(&log, future_seg.0).len(), 11);
}

#[test]
fn expired_active_segment_is_rolled_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), cfg(), NOW);
    log.append(simple_batch(3, NOW, 10, 0), NOW).unwrap();
    assert_eq!(log.segment_base_offsets().len(), 1);
    // Not yet expired.
    assert!(log.apply_retention(NOW + DAY).unwrap().is_empty());
    let deleted = log.apply_retention(NOW + DAY + 1).unwrap();
    assert_eq!(deleted, vec![Offset(0)]);
    assert_eq!(log.segment_base_offsets(), vec![Offset(3)]);
    assert_eq!(log.log_start_offset(), Offset(3));
    assert_eq!(log.log_end_offset(), Offset(3));
    // An empty active segment is never deleted, and appends continue at the right offset.
    assert!(log.apply_retention(NOW + 10 * DAY).unwrap().is_empty());
    assert_eq!(
        log.append(simple_batch(1, NOW, 10, 0), NOW)
            .unwrap()
            .first_offset,
        Offset(3)
    );
}

#[test]
fn high_watermark_bounds_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), cfg(), NOW);
    for _ in 0..30 {
        log.append(simple_batch(1, NOW, 300, 0), NOW).unwrap();
    }
    let segs = log.segment_base_offsets();
    let hw = segs[2];
    let deleted = log.apply_retention_below(NOW + 2 * DAY, Some(hw)).unwrap();
    assert_eq!(deleted, vec![segs[0], segs[1]]);
}

#[test]
fn size_retention_keeps_the_newest_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let c = LogConfig {
        retention_ms: -1,
        retention_bytes: 5000,
        ..cfg()
    };
    let mut log = open(dir.path(), c, NOW);
    for i in 0..60u8 {
        log.append(simple_batch(1, NOW, 300, i), NOW).unwrap();
    }
    let total = log.size_bytes();
    assert!(total > 5000);
    assert!(!log.apply_retention(NOW).unwrap().is_empty());
    // Kafka's rule: delete the oldest segment only while what remains is still at least
    // retention.bytes, so the log ends between retention.bytes and that plus one segment.
    let size = log.size_bytes();
    let first = std::fs::metadata(potok_log::segment_file(
        dir.path(),
        log.segment_base_offsets()[0].0,
        "log",
    ))
    .unwrap()
    .len();
    assert!(
        size >= 5000 && size - first < 5000,
        "size {size}, first segment {first}"
    );
    let start = log.log_start_offset();
    assert_eq!(read_all(&log, start.0).len() as i64, 60 - start.0);
}

#[test]
fn rolls_on_segment_ms_with_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let c = LogConfig {
        segment_ms: 60_000,
        segment_bytes: 1 << 20,
        ..cfg()
    };
    let mut log = open(dir.path(), c, NOW);
    log.append(simple_batch(1, NOW, 10, 0), NOW).unwrap();
    log.append(simple_batch(1, NOW + 30_000, 10, 0), NOW + 30_000)
        .unwrap();
    assert_eq!(log.segment_base_offsets().len(), 1);
    // The first batch's timestamp is the reference: 60 s after it, the next append rolls.
    log.append(simple_batch(1, NOW + 60_001, 10, 0), NOW + 60_001)
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![Offset(0), Offset(2)]);
    // A batch with no timestamp (-1) falls back to the clock when the segment got its first data.
    log.append(simple_batch(1, -1, 10, 0), NOW + 60_001)
        .unwrap();
    log.roll(NOW + 70_000).unwrap();
    log.append(simple_batch(1, -1, 10, 0), NOW + 70_000)
        .unwrap();
    log.append(simple_batch(1, -1, 10, 0), NOW + 100_000)
        .unwrap();
    assert_eq!(log.segment_base_offsets().len(), 3);
    log.append(simple_batch(1, -1, 10, 0), NOW + 130_001)
        .unwrap();
    assert_eq!(log.segment_base_offsets().len(), 4);
}

/// Kafka's `timeWaitedForRoll`: the time a segment has waited is measured between record
/// timestamps (the incoming batch against the segment's first batch), so data with old
/// timestamps appended now fills segments normally instead of rolling one per batch.
#[test]
fn old_timestamps_do_not_roll_a_segment_per_batch() {
    let dir = tempfile::tempdir().unwrap();
    let c = LogConfig {
        segment_ms: 60_000,
        segment_bytes: 1 << 20,
        ..cfg()
    };
    let mut log = open(dir.path(), c, NOW);
    let year_ago = NOW - 365 * 24 * 3_600_000;
    for i in 0..10 {
        log.append(simple_batch(1, year_ago + i * 1_000, 10, 0), NOW + i)
            .unwrap();
    }
    assert_eq!(log.segment_base_offsets(), vec![Offset(0)]);
    // A batch more than segment.ms after the first one, in record time, rolls.
    log.append(simple_batch(1, year_ago + 61_000, 10, 0), NOW + 20)
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![Offset(0), Offset(10)]);
}

#[test]
fn rolls_when_the_index_is_full() {
    let dir = tempfile::tempdir().unwrap();
    // Room for 4 offset entries (32 bytes) and 2 time entries; an entry every batch.
    let c = LogConfig {
        segment_index_bytes: 32,
        index_interval_bytes: 1,
        segment_bytes: 1 << 20,
        ..cfg()
    };
    let mut log = open(dir.path(), c.clone(), NOW);
    for i in 0..20 {
        log.append(simple_batch(1, NOW + i, 10, 0), NOW).unwrap();
    }
    let segs = log.segment_base_offsets();
    assert!(segs.len() >= 5, "{segs:?}");
    for s in &segs {
        let (o, t) = log.index_entries(*s).unwrap();
        assert!(o <= 4 && t <= 2, "segment {s}: {o} {t}");
    }
    assert_eq!(read_all(&log, 0).len(), 20);
    for i in 0..20 {
        assert_eq!(
            log.offset_for_timestamp(NOW + i).unwrap().unwrap().0,
            Offset(i)
        );
    }
}

#[test]
fn flush_policy_moves_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let c = LogConfig {
        flush_messages: Some(5),
        flush_ms: Some(1000),
        ..cfg()
    };
    let mut log = open(dir.path(), c, NOW);
    log.append(simple_batch(3, NOW, 10, 0), NOW).unwrap();
    assert_eq!(log.recovery_point(), Offset(0));
    log.append(simple_batch(2, NOW, 10, 0), NOW).unwrap();
    assert_eq!(log.recovery_point(), Offset(5));
    log.append(simple_batch(1, NOW, 10, 0), NOW + 10).unwrap();
    assert!(!log.maybe_flush(NOW + 500).unwrap());
    assert_eq!(log.recovery_point(), Offset(5));
    assert!(log.maybe_flush(NOW + 1010).unwrap());
    assert_eq!(log.recovery_point(), Offset(6));
    let dir2 = tempfile::tempdir().unwrap();
    let c = LogConfig {
        fsync_before_ack: true,
        ..cfg()
    };
    let mut log = open(dir2.path(), c, NOW);
    log.append(simple_batch(1, NOW, 10, 0), NOW).unwrap();
    assert_eq!(log.recovery_point(), Offset(1));
}

/// Kafka's `LogSegment.largestTimestamp`: a segment whose batches carry no timestamp (-1)
/// expires by its file's modification time, not as if it were from 1970.
#[test]
fn segment_without_timestamps_expires_by_file_modification_time() {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), cfg(), wall);
    for tag in 0..3 {
        log.append(simple_batch(2, -1, 300, tag), wall).unwrap();
    }
    log.roll(wall).unwrap();
    log.append(simple_batch(1, wall + 2 * DAY, 300, 9), wall)
        .unwrap();
    let before = log.segment_base_offsets();
    // The file was just written, so a day of retention keeps it ...
    assert!(log.apply_retention(wall + 1000).unwrap().is_empty());
    assert_eq!(log.segment_base_offsets(), before);
    assert_eq!(read_all(&log, 0).len(), 7);
    // ... and it goes once a day has passed since then.
    let deleted = log.apply_retention(wall + DAY + 60_000).unwrap();
    assert_eq!(deleted.first(), Some(&Offset(0)));
    assert_eq!(log.log_start_offset(), Offset(6));
}
