//! Throughput and lookup benchmark of the partition log against `dd` baselines measured in the
//! same run on the same disk (see `docs/benchmarks.md`, "Partition log (potok-log)").
//!
//! Usage: `potok-log-bench [--dir DIR] [--mib N] [--fsync-mib M] [--lookups K] [--reps R]`.
//! Each throughput pair (dd, then potok-log; for the fsync runs the order alternates) runs R
//! times interleaved; medians are reported.
//! Build with `--release`. Records are 1 KiB, batches 16 KiB (16 records, uncompressed).
//!
//! Measured:
//! * `dd if=/dev/zero bs=1M count=N` (buffered) vs appending N MiB without fsync;
//! * `dd ... bs=1M count=M oflag=dsync` vs appending M MiB with an fsync per 1 MiB
//!   (`flush.messages` = 1024 records);
//! * `dd if=<segment> of=/dev/null bs=1M` vs reading the same segment with `Log::read` in
//!   1 MiB slices copied into a buffer (both from the page cache);
//! * random lookups by offset (`Log::read` of one batch) and by timestamp
//!   (`Log::offset_for_timestamp`) on the N MiB segment, active and after a roll (closed,
//!   lazily mapped index); wall-clock and this thread's CPU time per lookup.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use potok_log::{Log, LogConfig, Offset, RealStorage, Storage};
use potok_records::{BatchHeader, RecordBatchBuilder};

const RECORD: usize = 1024;
const PER_BATCH: usize = 16;
const MIB: u64 = 1 << 20;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() {
    if let Err(e) = run() {
        eprintln!("potok-log-bench: {e}");
        std::process::exit(1);
    }
}

struct Args {
    dir: PathBuf,
    mib: u64,
    fsync_mib: u64,
    lookups: usize,
    reps: usize,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        dir: std::env::temp_dir().join(format!("potok-log-bench-{}", std::process::id())),
        mib: 1024,
        fsync_mib: 256,
        lookups: 200_000,
        reps: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let val = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => a.dir = PathBuf::from(val),
            "--mib" => a.mib = val.parse()?,
            "--fsync-mib" => a.fsync_mib = val.parse()?,
            "--lookups" => a.lookups = val.parse()?,
            "--reps" => a.reps = val.parse::<usize>()?.max(1),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(a)
}

/// Runs dd and returns bytes per second, computed from dd's own byte count and seconds.
fn dd(args: &[String]) -> Res<f64> {
    let out = Command::new("dd").args(args).output()?;
    if !out.status.success() {
        return Err(format!("dd failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("copied"))
        .ok_or("no summary line from dd")?;
    let bytes: f64 = line
        .split_whitespace()
        .next()
        .ok_or("bad dd line")?
        .parse()?;
    let secs: f64 = line
        .split(", ")
        .find(|p| p.ends_with(" s"))
        .and_then(|p| p.trim_end_matches(" s").trim().parse().ok())
        .ok_or("no seconds in dd line")?;
    Ok(bytes / secs)
}

/// Writes back all dirty pages (`sync`) so every measurement starts from the same page-cache
/// state; otherwise whichever run follows a 1 GiB write is throttled by its writeback.
fn settle() -> Res<()> {
    let st = Command::new("sync").status()?;
    if !st.success() {
        return Err("sync failed".into());
    }
    Ok(())
}

fn gbs(bps: f64) -> String {
    format!("{:.2} GB/s", bps / 1e9)
}

fn mbs(bps: f64) -> String {
    format!("{:.0} MB/s", bps / 1e6)
}

/// 16 records of 1 KiB stamped `ts`, `ts + 1`, ...
fn make_batch(ts: i64) -> Res<Bytes> {
    let value = vec![0x5au8; RECORD];
    let mut b = RecordBatchBuilder::new();
    for j in 0..PER_BATCH as i64 {
        b = b.key_value(ts + j, None, Some(&value));
    }
    Ok(b.build()?.into_bytes())
}

fn open(dir: &Path, config: LogConfig) -> Res<Log> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    Ok(Log::open(
        dir,
        config,
        Arc::new(RealStorage) as Arc<dyn Storage>,
        0,
    )?)
}

/// Appends `mib` MiB of batches; returns bytes per second and the number of batches. With
/// `owned`, each buffer is handed over (the log rewrites it in place); otherwise the caller
/// keeps a reference and the log copies it once, as for a slice of a request frame.
fn append_run(log: &mut Log, mib: u64, owned: bool, group: usize) -> Res<(f64, i64)> {
    let template = make_batch(0)?;
    let batch_len = template.len() as u64;
    let n = (mib * MIB / batch_len) as i64;
    // Prebuilt buffers (record j of batch i stamped 1_000_000 + 16 i + j): building them is
    // the producer's work, not the log's. With `group` > 1, that many batches are concatenated
    // into one buffer per append call, as a follower's fetched data arrives.
    let batches: Vec<Bytes> = (0..n)
        .map(|i| make_batch(1_000_000 + i * PER_BATCH as i64))
        .collect::<Res<_>>()?;
    let buffers: Vec<Bytes> = if group > 1 {
        batches
            .chunks(group)
            .map(|c| Bytes::from(c.concat()))
            .collect()
    } else {
        batches
    };
    let start = Instant::now();
    if owned {
        for b in buffers {
            log.append(b, 0)?;
        }
    } else {
        for b in &buffers {
            log.append(b.clone(), 0)?;
        }
    }
    // The fsync runs end with a flush of the last partial MiB (dd's O_DSYNC syncs every write);
    // the page-cache runs end without one, like buffered dd.
    if log.config().flush_messages.is_some() {
        log.flush()?;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(((n as u64 * batch_len) as f64 / secs, n))
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn range(v: &[f64], unit: fn(f64) -> String) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    format!("{}–{}", unit(lo), unit(hi))
}

fn run() -> Res<()> {
    let args = parse_args()?;
    std::fs::create_dir_all(&args.dir)?;
    let dd_file = args.dir.join("dd.bin");
    let f = dd_file.display().to_string();
    println!(
        "# potok-log-bench: {} MiB, fsync run {} MiB, {} lookups, {} interleaved repetitions, dir {}",
        args.mib,
        args.fsync_mib,
        args.lookups,
        args.reps,
        args.dir.display()
    );
    let log_dir = args.dir.join("bench-0");
    let config = LogConfig {
        segment_bytes: (args.mib * MIB + MIB).min(i32::MAX as u64),
        retention_ms: -1,
        ..LogConfig::default()
    };

    // 1. Buffered append vs buffered dd, interleaved so both see the same machine state.
    let (mut dd_write, mut append, mut copied) = (Vec::new(), Vec::new(), Vec::new());
    let mut kept = None;
    let copy_dir = args.dir.join("bench-copy");
    for _ in 0..args.reps {
        settle()?;
        dd_write.push(dd(&[
            "if=/dev/zero".into(),
            format!("of={f}"),
            "bs=1M".into(),
            format!("count={}", args.mib),
        ])?);
        std::fs::remove_file(&dd_file)?;
        drop(kept.take());
        let mut log = open(&log_dir, config.clone())?;
        settle()?;
        let (bps, batches) = append_run(&mut log, args.mib, true, 1)?;
        append.push(bps);
        kept = Some((log, batches));
        let mut copy_log = open(&copy_dir, config.clone())?;
        settle()?;
        copied.push(append_run(&mut copy_log, args.mib, false, 1)?.0);
        drop(copy_log);
        std::fs::remove_dir_all(&copy_dir)?;
    }
    let (mut log, batches) = kept.ok_or("no repetitions")?;

    // 2. Sequential read of the segment vs dd of that file (both from the page cache).
    let seg = potok_log::segment_file(&log_dir, 0, "log");
    let leo = log.log_end_offset().0;
    let mut buf = vec![0u8; 2 * MIB as usize];
    let (mut dd_read, mut read) = (Vec::new(), Vec::new());
    settle()?;
    for _ in 0..args.reps {
        dd_read.push(dd(&[
            format!("if={}", seg.display()),
            "of=/dev/null".into(),
            "bs=1M".into(),
        ])?);
        let start = Instant::now();
        let mut next = 0i64;
        let mut total = 0u64;
        while next < leo {
            let s = log.read(Offset(next), MIB as usize, None)?;
            let b = buf.get_mut(..s.len).ok_or("slice larger than buffer")?;
            s.read_into(b)?;
            // Find the next offset from the last batch header, as a consumer would.
            let mut pos = 0usize;
            let mut last = next;
            while pos < b.len() {
                let h = BatchHeader::parse(&b[pos..])?;
                last = h.last_offset().0;
                pos += h.total_size();
            }
            next = last + 1;
            total += s.len as u64;
        }
        read.push(total as f64 / start.elapsed().as_secs_f64());
    }

    // 3. Lookups on the big segment (active, then closed after a roll).
    let mut rng = 0x2545f4914f6cdd1du64;
    let mut rand = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut lookup = |log: &Log, by_time: bool| -> Res<(f64, f64)> {
        let cpu_start = thread_cpu_ns();
        let start = Instant::now();
        for _ in 0..args.lookups {
            let o = rand(leo as u64) as i64;
            if by_time {
                let ts = 1_000_000 + o;
                let r = log.offset_for_timestamp(ts)?;
                if r != Some((Offset(o), ts)) {
                    return Err(format!("timestamp lookup for {ts} returned {r:?}").into());
                }
            } else {
                let s = log.read(Offset(o), 1, None)?;
                if s.first_offset.0 > o || s.first_offset.0 + PER_BATCH as i64 <= o {
                    return Err(format!("offset lookup for {o} returned {}", s.first_offset).into());
                }
            }
        }
        let wall = start.elapsed().as_secs_f64() * 1e6 / args.lookups as f64;
        let cpu = (thread_cpu_ns() - cpu_start) as f64 / 1e3 / args.lookups as f64;
        Ok((wall, cpu))
    };
    let off_active = lookup(&log, false)?;
    let ts_active = lookup(&log, true)?;
    log.roll(0)?;
    let off_closed = lookup(&log, false)?;
    let ts_closed = lookup(&log, true)?;
    let (idx, tidx) = log.index_entries(Offset(0)).unwrap_or((0, 0));
    drop(log);
    std::fs::remove_dir_all(&log_dir)?;

    // 4. fsync per 1 MiB vs dd oflag=dsync bs=1M, interleaved.
    let fsync_config = LogConfig {
        flush_messages: Some((MIB as usize / RECORD) as u64),
        ..config
    };
    let (mut dd_dsync, mut fsync, mut fsync_grouped) = (Vec::new(), Vec::new(), Vec::new());
    let per_call = (MIB / make_batch(0)?.len() as u64) as usize;
    for rep in 0..args.reps {
        // The disk of a shared VM has bursts and throttling, so whichever run goes first in a
        // repetition may find it in a different state: alternate the order, and start every
        // run on a fresh file as dd does.
        let mut run_dd = || -> Res<()> {
            settle()?;
            dd_dsync.push(dd(&[
                "if=/dev/zero".into(),
                format!("of={f}"),
                "bs=1M".into(),
                format!("count={}", args.fsync_mib),
                "oflag=dsync".into(),
            ])?);
            std::fs::remove_file(&dd_file)?;
            Ok(())
        };
        if rep % 2 == 0 {
            run_dd()?;
        }
        for (group, out) in [(1, &mut fsync), (per_call, &mut fsync_grouped)] {
            let mut log = open(&log_dir, fsync_config.clone())?;
            settle()?;
            out.push(append_run(&mut log, args.fsync_mib, true, group)?.0);
            drop(log);
            std::fs::remove_dir_all(&log_dir)?;
        }
        if rep % 2 == 1 {
            run_dd()?;
        }
    }
    std::fs::remove_dir_all(&args.dir)?;

    println!();
    println!(
        "Medians of {} interleaved runs (range in brackets).",
        args.reps
    );
    println!();
    println!("| measurement | potok-log | dd baseline | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| append, no fsync ({} MiB, buffer handed over) | {} ({}) | {} ({}) `bs=1M` | {:.0}% |",
        args.mib,
        gbs(median(&append)),
        range(&append, gbs),
        gbs(median(&dd_write)),
        range(&dd_write, gbs),
        100.0 * median(&append) / median(&dd_write)
    );
    println!(
        "| append, no fsync, caller keeps the buffer (one copy) | {} ({}) | {} | {:.0}% |",
        gbs(median(&copied)),
        range(&copied, gbs),
        gbs(median(&dd_write)),
        100.0 * median(&copied) / median(&dd_write)
    );
    println!(
        "| append, fsync per 1 MiB ({} MiB) | {} ({}) | {} ({}) `bs=1M oflag=dsync` | {:.0}% |",
        args.fsync_mib,
        mbs(median(&fsync)),
        range(&fsync, mbs),
        mbs(median(&dd_dsync)),
        range(&dd_dsync, mbs),
        100.0 * median(&fsync) / median(&dd_dsync)
    );
    println!(
        "| append, fsync per 1 MiB, ~1 MiB of batches per append call | {} ({}) | {} | {:.0}% |",
        mbs(median(&fsync_grouped)),
        range(&fsync_grouped, mbs),
        mbs(median(&dd_dsync)),
        100.0 * median(&fsync_grouped) / median(&dd_dsync)
    );
    println!(
        "| sequential read, 1 MiB slices | {} ({}) | {} ({}) `dd` of the segment | {:.0}% |",
        gbs(median(&read)),
        range(&read, gbs),
        gbs(median(&dd_read)),
        range(&dd_read, gbs),
        100.0 * median(&read) / median(&dd_read)
    );
    println!(
        "| lookup by offset, active segment | {:.2} µs (CPU {:.2} µs) | | |",
        off_active.0, off_active.1
    );
    println!(
        "| lookup by timestamp, active segment | {:.2} µs (CPU {:.2} µs) | | |",
        ts_active.0, ts_active.1
    );
    println!(
        "| lookup by offset, closed segment | {:.2} µs (CPU {:.2} µs) | | |",
        off_closed.0, off_closed.1
    );
    println!(
        "| lookup by timestamp, closed segment | {:.2} µs (CPU {:.2} µs) | | |",
        ts_closed.0, ts_closed.1
    );
    println!();
    println!(
        "segment: {} MiB, {batches} batches, {idx} offset index entries, {tidx} time index entries",
        args.mib
    );
    Ok(())
}

/// This thread's CPU time in nanoseconds (first field of `/proc/thread-self/schedstat`), so a
/// lookup figure can be told apart from time spent waiting for a core on a busy machine.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}
