//! SIGKILL crash test: a child process (`potok-log-crasher`) appends and fsyncs batches and is
//! killed at random points, over and over on the same directory. After every kill the log is
//! reopened here: every acknowledged (fsynced) record must be intact, nothing invalid may be
//! readable, and appending must continue at the right offset.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use potok_log::{LogConfig, Offset};
use potok_records::RecordBatchBuilder;

/// Same as the crasher's.
fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 * 1024,
        index_interval_bytes: 512,
        segment_index_bytes: 1024,
        retention_ms: -1,
        fsync_before_ack: true,
        ..LogConfig::default()
    }
}

fn value_for(offset: i64) -> Vec<u8> {
    vec![(offset % 251) as u8; ((offset * 7) % 200) as usize]
}

const KILLS: usize = 220;

#[test]
fn sigkill_at_random_points_never_loses_acked_batches() {
    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_potok-log-crasher");
    let started = Instant::now();
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut acked_up_to = -1i64; // highest acknowledged offset over all runs
    let mut expected_leo = 0i64; // the log end offset the next crasher must resume at
    let mut torn_tails = 0u64;
    for run in 0..KILLS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut child = Command::new(exe)
            .arg(dir.path())
            .arg(rng.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn crasher");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("run {run}: crasher did not become ready");
            });
        let leo: i64 = ready.strip_prefix("ready ").unwrap().parse().unwrap();
        assert_eq!(
            leo, expected_leo,
            "run {run}: crasher resumed at the wrong offset"
        );
        // Kill at a random point. Every other run first waits for one acknowledgement, so the
        // test makes progress even on a loaded machine where fsyncs are slow; the other runs
        // may die before, during or after the first append.
        let mut lines = Vec::new();
        if run % 2 == 1 {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(line) => {
                        let acked = line.starts_with("acked");
                        lines.push(line);
                        if acked {
                            break;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        }
        let wait_us = rng % if run % 2 == 1 { 5_000 } else { 25_000 };
        std::thread::sleep(Duration::from_micros(wait_us));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        let mut next = leo;
        for line in lines {
            let mut parts = line.split_whitespace();
            if parts.next() == Some("acked") {
                let first: i64 = parts.next().unwrap().parse().unwrap();
                let last: i64 = parts.next().unwrap().parse().unwrap();
                assert_eq!(
                    first, next,
                    "run {run}: acknowledged offsets must be consecutive"
                );
                next = last + 1;
                acked_up_to = last;
            }
        }

        // Reopen and check.
        let mut log = open(dir.path(), config(), 0);
        torn_tails += log.recovery_report().truncated_bytes;
        let recs = read_all(&log, 0);
        let leo_now = log.log_end_offset().0;
        assert!(
            leo_now > acked_up_to,
            "run {run}: acked offset {acked_up_to} lost (LEO {leo_now})"
        );
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.0, i as i64, "run {run}: offsets must be dense");
            assert_eq!(r.1, r.0, "run {run}: timestamp of {}", r.0);
            assert_eq!(r.2, value_for(r.0), "run {run}: value of {}", r.0);
        }
        assert_eq!(recs.len() as i64, leo_now);
        // Appends continue at the log end offset.
        if run % 4 == 0 {
            let b = RecordBatchBuilder::new()
                .key_value(leo_now, None, Some(&value_for(leo_now)))
                .build()
                .unwrap();
            let info = log.append(b.into_bytes(), 0).unwrap();
            assert_eq!(info.first_offset, Offset(leo_now));
            acked_up_to = leo_now;
        }
        expected_leo = log.log_end_offset().0;
        if run % 8 == 1 {
            log.close().unwrap();
        } else {
            drop(log);
        }
    }
    eprintln!(
        "{KILLS} kills in {:?}, final log end offset {}, {torn_tails} torn bytes truncated",
        started.elapsed(),
        acked_up_to + 1
    );
    assert!(
        acked_up_to > 1000,
        "the crasher made too little progress to be meaningful"
    );
}

/// Kafka's default durability (no fsync on acknowledgement) with rolls handing their fsyncs to
/// a background flusher: the crasher is killed right after an append that rolled, while the
/// old segment's flush is queued or running. A SIGKILL leaves the page cache intact, so every
/// acknowledged record must survive it, and the log must reopen valid and dense with appends
/// continuing at its end.
#[test]
fn sigkill_right_after_a_background_roll_loses_no_acked_record() {
    const RUNS: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_potok-log-crasher");
    let config = LogConfig {
        fsync_before_ack: false,
        ..config()
    };
    let mut rng = 0x2545f4914f6cdd1du64;
    let mut acked_up_to = -1i64;
    let mut expected_leo = 0i64;
    let mut killed_after_roll = 0;
    for run in 0..RUNS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut child = Command::new(exe)
            .arg(dir.path())
            .arg(rng.to_string())
            .arg("background")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn crasher");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("run {run}: crasher did not become ready");
            });
        let leo: i64 = ready.strip_prefix("ready ").unwrap().parse().unwrap();
        assert_eq!(leo, expected_leo, "run {run}: resumed at the wrong offset");
        // Kill as soon as the first (or, in odd runs, the second) roll is reported: its flush
        // has just been queued.
        let want_rolls = 1 + run % 2;
        let mut rolls = 0;
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && rolls < want_rolls {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if line.starts_with("rolled") {
                        rolls += 1;
                    }
                    lines.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        reader.join().unwrap();
        assert_eq!(rolls, want_rolls, "run {run}: the crasher did not roll");
        killed_after_roll += 1;
        lines.extend(rx.try_iter());
        let mut next = leo;
        for line in lines {
            let mut parts = line.split_whitespace();
            if parts.next() == Some("acked") {
                let first: i64 = parts.next().unwrap().parse().unwrap();
                let last: i64 = parts.next().unwrap().parse().unwrap();
                assert_eq!(first, next, "run {run}: acknowledged offsets must follow");
                next = last + 1;
                acked_up_to = last;
            }
        }

        let log = open(dir.path(), config.clone(), 0);
        let recs = read_all(&log, 0);
        let leo_now = log.log_end_offset().0;
        assert!(
            leo_now > acked_up_to,
            "run {run}: acked offset {acked_up_to} lost (LEO {leo_now})"
        );
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.0, i as i64, "run {run}: offsets must be dense");
            assert_eq!(r.2, value_for(r.0), "run {run}: value of {}", r.0);
        }
        assert_eq!(recs.len() as i64, leo_now);
        expected_leo = leo_now;
        drop(log);
    }
    assert_eq!(killed_after_roll, RUNS);
}
