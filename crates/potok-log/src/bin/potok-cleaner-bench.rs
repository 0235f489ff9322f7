//! Log cleaner throughput (issue #20, acceptance 4) against `dd` limits measured in the same
//! run on the same disk (see `docs/benchmarks.md`, "Log compaction").
//!
//! Usage: `potok-cleaner-bench [--dir DIR] [--mib N] [--keys K] [--value BYTES] [--reps R]
//! [--latency-secs S] [--rate BATCHES_PER_S]`. Build with `--release`.
//!
//! Each repetition writes a fresh compacted log of N MiB (batches of 16 records, keys drawn
//! uniformly from K, values of BYTES bytes, 64 MiB segments), rolls it and times one
//! [`Cleaner::clean`] without a throttle. Reported: the log's size over the cleaning's wall
//! time (MB/s of log compacted), the bytes it read and wrote, and beside it, in the same
//! repetition and directory, `dd` reading the same segment files (like the cleaner, from the page
//! cache where the just-written log still is, as a broker's recent segments are) (`of=/dev/null bs=1M`) and
//! `dd` writing N MiB with one fsync at the end (`conv=fdatasync`). The cleaner reads the dirty
//! log twice (key map, then rewrite) and writes the survivors with an fsync per segment, so its
//! floor is about two reads plus one (smaller) write.
//!
//! With `--latency-secs S`, it then measures what a producer sees while the cleaner works: one
//! thread appends one 16-record batch at a fixed rate (`--rate`, batches per second) for S
//! seconds to a compacted log behind a `Mutex`, as the broker's produce path does, recording
//! each append's latency from its scheduled time (lock wait included, coordinated omission
//! corrected); once with no cleaner, once with a cleaner thread cleaning the same log in a
//! loop (1 MiB segments so there is soon something to clean). p50/p99/p99.9/max of both.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use potok_log::{Cleaner, CleanerConfig, Log, LogConfig, RealStorage, Storage, Unthrottled};
use potok_records::RecordBatchBuilder;

const MIB: u64 = 1 << 20;
const PER_BATCH: usize = 16;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Args {
    dir: PathBuf,
    mib: u64,
    keys: u64,
    value: usize,
    reps: usize,
    latency_secs: u64,
    rate: u64,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        dir: std::env::temp_dir().join(format!("potok-cleaner-bench-{}", std::process::id())),
        mib: 256,
        keys: 100_000,
        value: 100,
        reps: 3,
        latency_secs: 0,
        rate: 2000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let val = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => a.dir = PathBuf::from(val),
            "--mib" => a.mib = val.parse()?,
            "--keys" => a.keys = val.parse::<u64>()?.max(1),
            "--value" => a.value = val.parse()?,
            "--reps" => a.reps = val.parse::<usize>()?.max(1),
            "--latency-secs" => a.latency_secs = val.parse()?,
            "--rate" => a.rate = val.parse::<u64>()?.max(1),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(a)
}

/// Runs dd and returns bytes per second from dd's own byte count and seconds.
fn dd(args: &[String]) -> Res<f64> {
    let out = Command::new("dd").args(args).output()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("bytes") && l.contains(" s,"))
        .ok_or(format!("unexpected dd output: {text}"))?;
    let bytes: f64 = line
        .split_whitespace()
        .next()
        .ok_or("no byte count")?
        .parse()?;
    let secs: f64 = line
        .split(", ")
        .find_map(|p| p.strip_suffix(" s"))
        .ok_or("no seconds")?
        .trim()
        .parse()?;
    Ok(bytes / secs)
}

fn write_log(dir: &Path, a: &Args, seed: u64) -> Res<Log> {
    let config = LogConfig {
        segment_bytes: 64 * MIB,
        retention_ms: -1,
        compact: true,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir, config, Arc::new(RealStorage) as Arc<dyn Storage>, 1)?;
    let value = vec![b'v'; a.value];
    let mut rng = seed | 1;
    let target = a.mib * MIB;
    while log.size_bytes() < target {
        let mut b = RecordBatchBuilder::new();
        for _ in 0..PER_BATCH {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let key = format!("key-{:08}", rng % a.keys);
            b = b.key_value(1, Some(key.as_bytes()), Some(&value));
        }
        log.append(b.build()?.into_bytes(), 1)?;
    }
    log.roll(1)?;
    Ok(log)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    if let Err(e) = run() {
        eprintln!("potok-cleaner-bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let a = parse_args()?;
    std::fs::create_dir_all(&a.dir)?;
    let (mut clean_mbs, mut read_dd, mut write_dd) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..a.reps {
        let dir = a.dir.join(format!("rep-{rep}"));
        let _ = std::fs::remove_dir_all(&dir);
        let log = write_log(&dir, &a, 0x9e37_79b9 + rep as u64)?;
        let size = log.size_bytes();
        let segments: Vec<String> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            // The empty active segment would time `dd` on nothing.
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() >= MIB))
            .map(|p| p.display().to_string())
            .collect();
        // dd over the same files, just written as the log's were.
        let mut read = Vec::new();
        for s in &segments {
            read.push(dd(&[
                format!("if={s}"),
                "of=/dev/null".into(),
                "bs=1M".into(),
            ])?);
        }
        let read_rate = median(read);
        let scratch = a.dir.join("dd-write");
        let write_rate = dd(&[
            "if=/dev/zero".into(),
            format!("of={}", scratch.display()),
            "bs=1M".into(),
            format!("count={}", a.mib),
            "conv=fdatasync".into(),
        ])?;
        let _ = std::fs::remove_file(&scratch);

        let log = Mutex::new(log);
        let mut cleaner = Cleaner::new(CleanerConfig::default());
        let started = Instant::now();
        let stats = cleaner
            .clean(&log, 2, None, &mut Unthrottled)?
            .ok_or("nothing was cleaned")?;
        let secs = started.elapsed().as_secs_f64();
        let after = log.lock().map_err(|_| "poisoned")?.size_bytes();
        let rate = size as f64 / secs;
        println!(
            "rep {rep}: log {:.1} MB -> {:.1} MB in {secs:.2} s: {:.0} MB/s compacted; read {:.1} MB, wrote {:.1} MB, {} segments, map full: {}; dd read {:.0} MB/s, dd write+fdatasync {:.0} MB/s",
            size as f64 / 1e6,
            after as f64 / 1e6,
            rate / 1e6,
            stats.bytes_read as f64 / 1e6,
            stats.bytes_written as f64 / 1e6,
            stats.segments_replaced,
            stats.map_full,
            read_rate / 1e6,
            write_rate / 1e6,
        );
        clean_mbs.push(rate);
        read_dd.push(read_rate);
        write_dd.push(write_rate);
        drop(log);
        std::fs::remove_dir_all(&dir)?;
    }
    println!(
        "median of {}: cleaner {:.0} MB/s of log; dd read {:.0} MB/s; dd write+fdatasync {:.0} MB/s",
        a.reps,
        median(clean_mbs) / 1e6,
        median(read_dd) / 1e6,
        median(write_dd) / 1e6
    );
    if a.latency_secs > 0 {
        for with_cleaner in [false, true] {
            let dir = a.dir.join(format!("latency-{with_cleaner}"));
            let _ = std::fs::remove_dir_all(&dir);
            let mut l = latency(&dir, &a, with_cleaner)?;
            l.sort_unstable();
            let pct = |q: f64| l[((l.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
            println!(
                "append latency ({} batches at {}/s, cleaner {}): p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
                l.len(),
                a.rate,
                if with_cleaner { "running" } else { "off" },
                pct(0.5),
                pct(0.99),
                pct(0.999),
                pct(1.0)
            );
            std::fs::remove_dir_all(&dir)?;
        }
    }
    let _ = std::fs::remove_dir_all(&a.dir);
    Ok(())
}

/// Appends at a fixed rate for `latency_secs`, with or without a cleaner thread looping over
/// the same log; returns each append's latency in microseconds from its scheduled time.
fn latency(dir: &Path, a: &Args, with_cleaner: bool) -> Res<Vec<u64>> {
    let config = LogConfig {
        segment_bytes: MIB,
        retention_ms: -1,
        compact: true,
        ..LogConfig::default()
    };
    let log = Mutex::new(Log::open(
        dir,
        config,
        Arc::new(RealStorage) as Arc<dyn Storage>,
        1,
    )?);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let value = vec![b'v'; a.value];
    let mut out = Vec::new();
    std::thread::scope(|scope| -> Res<()> {
        let cleaner = with_cleaner.then(|| {
            scope.spawn(|| {
                let mut c = Cleaner::new(CleanerConfig::default());
                let mut runs = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match c.clean(&log, 2, None, &mut Unthrottled) {
                        Ok(Some(_)) => runs += 1,
                        Ok(None) => std::thread::sleep(std::time::Duration::from_millis(1)),
                        Err(e) => {
                            eprintln!("cleaning failed: {e}");
                            break;
                        }
                    }
                }
                runs
            })
        });
        let period = std::time::Duration::from_secs_f64(1.0 / a.rate as f64);
        let start = Instant::now();
        let total = a.rate * a.latency_secs;
        let mut rng = 0x2545_f491_u64;
        for i in 0..total {
            let scheduled = start + period * i as u32;
            let mut b = RecordBatchBuilder::new();
            for _ in 0..PER_BATCH {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let key = format!("key-{:08}", rng % a.keys);
                b = b.key_value(1, Some(key.as_bytes()), Some(&value));
            }
            let batch = b.build()?.into_bytes();
            if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            log.lock().map_err(|_| "poisoned")?.append(batch, 1)?;
            out.push(scheduled.elapsed().as_micros() as u64);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = cleaner {
            let runs = h.join().map_err(|_| "cleaner thread panicked")?;
            println!("cleaner runs during the latency test: {runs}");
        }
        Ok(())
    })?;
    Ok(out)
}
