//! Property test: random sequences of append / read / roll / truncate / delete-records /
//! retention / timestamp lookup / close-and-reopen (clean and unclean) against an in-memory
//! model of the log.

mod common;

use common::*;
use potok_log::{Log, LogConfig, Offset};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Records as (timestamp, value length).
    Append(Vec<(i64, usize)>),
    /// Read from a fraction of [log start, log end] with a byte limit and, optionally, a high
    /// watermark at a fraction of the same range.
    Read(f64, usize, Option<f64>),
    Roll,
    /// Truncate at a fraction of [log start, log end].
    Truncate(f64),
    DeleteRecords(f64),
    /// Retention at a clock value.
    Retention(i64),
    TimestampLookup(i64),
    Reopen {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop::collection::vec((0i64..5000, 0usize..300), 1..6).prop_map(Op::Append),
        4 => (0.0f64..=1.0, 1usize..3000, prop::option::of(0.0f64..=1.0))
            .prop_map(|(f, m, hw)| Op::Read(f, m, hw)),
        1 => Just(Op::Roll),
        1 => (0.0f64..=1.0).prop_map(Op::Truncate),
        1 => (0.0f64..=1.0).prop_map(Op::DeleteRecords),
        1 => (0i64..8000).prop_map(Op::Retention),
        2 => (-10i64..5100).prop_map(Op::TimestampLookup),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

#[derive(Clone, Debug)]
struct Batch {
    base: i64,
    last: i64,
    size: usize,
    records: Vec<Rec>,
}

/// The model: every batch ever appended and not truncated (including ones below the log
/// start offset), the log start offset and the log end offset.
#[derive(Default, Debug)]
struct Model {
    batches: Vec<Batch>,
    log_start: i64,
    leo: i64,
}

impl Model {
    fn visible(&self) -> Vec<Rec> {
        self.batches
            .iter()
            .flat_map(|b| b.records.iter().cloned())
            .filter(|r| r.0 >= self.log_start)
            .collect()
    }

    fn pick(&self, f: f64) -> i64 {
        self.log_start + ((self.leo - self.log_start) as f64 * f).floor() as i64
    }
}

const RETENTION_MS: i64 = 1000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 200,
        segment_index_bytes: 96,
        retention_ms: RETENTION_MS,
        max_mapped_closed_indexes: 2,
        ..LogConfig::default()
    }
}

fn check_state(log: &Log, m: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.log_end_offset(), Offset(m.leo));
    prop_assert_eq!(log.log_start_offset(), Offset(m.log_start));
    prop_assert_eq!(read_all(log, m.log_start), m.visible());
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    // The model checks semantics, not durability: use tmpfs when there is one, where fsync is
    // free, so thousands of rolls and checkpoints stay fast on a busy CI disk.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let mut log = Some(open(dir.path(), config(), 0));
    let mut m = Model::default();
    let mut tag = 0u8;
    for op in ops {
        let l = log.as_mut().unwrap();
        match op {
            Op::Append(recs) => {
                tag = tag.wrapping_add(1);
                let recs: Vec<(i64, Vec<u8>)> = recs
                    .into_iter()
                    .map(|(ts, len)| (ts, vec![tag; len]))
                    .collect();
                let b = batch(&recs);
                let size = b.len();
                let info = l.append(b, 0).unwrap();
                prop_assert_eq!(info.first_offset, Offset(m.leo));
                let records: Vec<Rec> = recs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (ts, v))| (m.leo + i as i64, ts, v))
                    .collect();
                let last = m.leo + records.len() as i64 - 1;
                prop_assert_eq!(info.last_offset, Offset(last));
                m.batches.push(Batch {
                    base: m.leo,
                    last,
                    size,
                    records,
                });
                m.leo = last + 1;
            }
            Op::Read(f, max_bytes, hw) => {
                let from = m.pick(f);
                let hw = hw.map(|h| m.pick(h));
                let s = l.read(Offset(from), max_bytes, hw.map(Offset)).unwrap();
                if from == m.leo {
                    prop_assert!(s.is_empty());
                    continue;
                }
                let got = decode(&s);
                let first = m.batches.iter().position(|b| b.last >= from).unwrap();
                let below_hw = |b: &Batch| hw.is_none_or(|hw| b.last < hw);
                if !below_hw(&m.batches[first]) {
                    // The batch holding `from` reaches the high watermark: nothing to return.
                    prop_assert!(s.is_empty(), "read past the high watermark");
                    continue;
                }
                prop_assert_eq!(s.first_offset, Offset(m.batches[first].base));
                // Whole consecutive batches starting with the one containing `from`, all below
                // the high watermark.
                let mut expect = Vec::new();
                let mut bytes = 0;
                for b in &m.batches[first..] {
                    if expect.len() >= got.len() {
                        break;
                    }
                    prop_assert!(
                        below_hw(b),
                        "batch {}..{} reaches the high watermark",
                        b.base,
                        b.last
                    );
                    expect.extend(b.records.iter().cloned());
                    bytes += b.size;
                }
                prop_assert_eq!(&got, &expect);
                prop_assert_eq!(bytes, s.len);
                prop_assert!(s.len <= max_bytes.max(m.batches[first].size));
            }
            Op::Roll => l.roll(0).unwrap(),
            Op::Truncate(f) => {
                let x = m.pick(f);
                l.truncate_to(Offset(x), 0).unwrap();
                if x < m.leo {
                    m.batches.retain(|b| b.last < x);
                    m.leo = m.batches.last().map_or(0, |b| b.last + 1);
                    m.log_start = m.log_start.min(x).min(m.leo);
                }
            }
            Op::DeleteRecords(f) => {
                let x = m.pick(f);
                prop_assert_eq!(
                    l.delete_records_before(Offset(x)).unwrap(),
                    Offset(m.log_start.max(x))
                );
                m.log_start = m.log_start.max(x);
            }
            Op::Retention(now) => {
                l.apply_retention(now).unwrap();
                let new_start = l.log_start_offset().0;
                prop_assert!(new_start >= m.log_start && new_start <= m.leo);
                // Only expired records may have become invisible.
                for r in m.visible() {
                    if r.0 < new_start {
                        prop_assert!(now - r.1 > RETENTION_MS, "deleted live record {:?}", r);
                    }
                }
                m.log_start = new_start;
            }
            Op::TimestampLookup(ts) => {
                let expect = m
                    .visible()
                    .into_iter()
                    .find(|r| r.1 >= ts)
                    .map(|r| (Offset(r.0), r.1));
                prop_assert_eq!(l.offset_for_timestamp(ts).unwrap(), expect);
            }
            Op::Reopen { clean } => {
                let l = log.take().unwrap();
                if clean {
                    l.close().unwrap();
                } else {
                    drop(l);
                }
                let reopened = open(dir.path(), config(), 0);
                prop_assert_eq!(reopened.recovery_report().clean_shutdown, clean);
                prop_assert_eq!(reopened.recovery_report().truncated_bytes, 0);
                log = Some(reopened);
            }
        }
        check_state(log.as_ref().unwrap(), &m)?;
    }
    Ok(())
}

proptest! {
    // 256 cases keep CI fast (about a second on tmpfs); set PROPTEST_CASES for a longer run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
