//! Test-support binary for the SIGKILL crash test (`tests/crash.rs`); not a tool.
//!
//! Usage: `potok-log-crasher <dir> <seed> [background]`. Opens (and so recovers) the log in
//! `<dir>`, prints `ready <log end offset>`, then appends batches forever with
//! `fsync_before_ack`, printing `acked <first> <last>` after each append has returned (and so
//! has been fsynced). With `background`, appends are not fsynced (Kafka's default) and rolls
//! hand their fsyncs to a [`BackgroundFlusher`]; `rolled <segments>` is printed after an
//! append that rolled, so the test can kill the process while that flush is in flight. Record
//! contents are a pure function of the offset ([`value_for`]), so the test can check every
//! acknowledged record after the process is killed. Writes go through [`FaultyStorage`] with
//! short writes, so each batch takes several `pwrite` calls and a kill can tear it.

use std::io::Write;
use std::sync::Arc;

use potok_log::{BackgroundFlusher, FaultPlan, FaultyStorage, Log, LogConfig, Storage};
use potok_records::RecordBatchBuilder;

/// The crash test's configuration (shared by the test through the same numbers).
fn config(background: bool) -> LogConfig {
    LogConfig {
        segment_bytes: 16 * 1024,
        index_interval_bytes: 512,
        segment_index_bytes: 1024,
        retention_ms: -1,
        fsync_before_ack: !background,
        ..LogConfig::default()
    }
}

/// The value stored at `offset`.
fn value_for(offset: i64) -> Vec<u8> {
    vec![(offset % 251) as u8; ((offset * 7) % 200) as usize]
}

fn main() {
    if let Err(e) = run() {
        eprintln!("potok-log-crasher: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("missing <dir>")?;
    let mut seed: u64 = args.next().ok_or("missing <seed>")?.parse()?;
    seed |= 1;
    let background = args.next().as_deref() == Some("background");
    let storage = FaultyStorage::new();
    storage.set_plan(FaultPlan {
        max_write_chunk: Some(97),
        ..FaultPlan::default()
    });
    let mut log = Log::open(
        std::path::Path::new(&dir),
        config(background),
        Arc::new(storage) as Arc<dyn Storage>,
        0,
    )?;
    if background {
        log.set_background_flusher(Some(BackgroundFlusher::start(1, 64)?));
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "ready {}", log.log_end_offset().0)?;
    out.flush()?;
    loop {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = 1 + (seed % 5) as i64;
        let leo = log.log_end_offset().0;
        let mut b = RecordBatchBuilder::new();
        for o in leo..leo + n {
            b = b.key_value(o, None, Some(&value_for(o)));
        }
        let segments = log.segment_base_offsets().len();
        let info = log.append(b.build()?.into_bytes(), 0)?;
        writeln!(out, "acked {} {}", info.first_offset.0, info.last_offset.0)?;
        if background && log.segment_base_offsets().len() != segments {
            writeln!(out, "rolled {}", log.segment_base_offsets().len())?;
        }
        out.flush()?;
    }
}
