//! What `potok bench` prints: one text summary or one JSON document per run.

use std::io::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::txn::TxnStats;
use super::BenchArgs;
use crate::client::{print_json, OutputFormat};
use crate::error::{Error, Result};

/// What one run measured.
pub(super) struct Outcome {
    pub records: u64,
    pub bytes: u64,
    pub produced: u64,
    pub failed: u64,
    pub elapsed: Duration,
    pub latency: Option<Histogram<u64>>,
    /// `produce --transactional-batch`: what the transactions did.
    pub transactions: Option<TxnStats>,
}

pub(super) fn report(mode: &str, args: &BenchArgs, o: &Outcome) -> Result<()> {
    let secs = o.elapsed.as_secs_f64().max(1e-9);
    let msgs_per_sec = o.records as f64 / secs;
    let mb_per_sec = o.bytes as f64 / secs / 1e6;
    let kind = match mode {
        "produce" => "ack",
        "e2e" => "end-to-end",
        _ => "none",
    };
    let latency = o.latency.as_ref().filter(|h| !h.is_empty()).map(|h| {
        let ms = |us: u64| us as f64 / 1000.0;
        json!({
            "kind": kind,
            "samples": h.len(),
            "p50_ms": ms(h.value_at_quantile(0.50)),
            "p90_ms": ms(h.value_at_quantile(0.90)),
            "p99_ms": ms(h.value_at_quantile(0.99)),
            "p999_ms": ms(h.value_at_quantile(0.999)),
            "max_ms": ms(h.max()),
            "coordinated_omission_corrected": args.rate.is_some(),
        })
    });
    let ms = |us: u64| us as f64 / 1000.0;
    let transactions = o.transactions.as_ref().map(|t| {
        let h = &t.commit_latency;
        let q = |x: f64| {
            if h.is_empty() {
                0.0
            } else {
                ms(h.value_at_quantile(x))
            }
        };
        json!({
            "batch": args.transactional_batch,
            "abort_every": args.abort_every,
            "committed": t.committed,
            "aborted": t.aborted,
            "commit_p50_ms": q(0.50),
            "commit_p99_ms": q(0.99),
            "commit_max_ms": if h.is_empty() { 0.0 } else { ms(h.max()) },
        })
    });
    let doc = json!({
        "mode": mode,
        "topic": args.topic,
        "size": args.size,
        "producers": args.producers,
        "consumers": args.consumers,
        "rate": args.rate,
        "warmup_records": args.warmup_records,
        "records": o.records,
        "bytes": o.bytes,
        "produced": o.produced,
        "failed": o.failed,
        "elapsed_secs": secs,
        "msgs_per_sec": msgs_per_sec,
        "mb_per_sec": mb_per_sec,
        "latency": latency.clone().unwrap_or(Value::Null),
        "transactions": transactions.clone().unwrap_or(Value::Null),
    });
    match args.output {
        OutputFormat::Json => print_json(&doc),
        OutputFormat::Text => {
            let mut out = std::io::stdout().lock();
            let w = |out: &mut std::io::StdoutLock<'_>, s: String| {
                writeln!(out, "{s}").map_err(|e| Error::io("writing output", e))
            };
            w(
                &mut out,
                format!(
                    "bench {mode}: {} records of {} bytes in {:.3} s{}",
                    o.records,
                    // What was actually moved: `consume` reads whatever sizes the topic holds.
                    o.bytes.checked_div(o.records).unwrap_or(args.size as u64),
                    secs,
                    if mode == "e2e" {
                        format!(" ({} produced)", o.produced)
                    } else if args.warmup_records > 0 {
                        format!(" (after {} warm-up records)", args.warmup_records)
                    } else {
                        String::new()
                    }
                ),
            )?;
            w(
                &mut out,
                format!("  throughput: {msgs_per_sec:.0} msgs/s, {mb_per_sec:.2} MB/s"),
            )?;
            if let Some(l) = latency {
                w(
                    &mut out,
                    format!(
                        "  {kind} latency (ms): p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}{}",
                        l["p50_ms"].as_f64().unwrap_or_default(),
                        l["p90_ms"].as_f64().unwrap_or_default(),
                        l["p99_ms"].as_f64().unwrap_or_default(),
                        l["p999_ms"].as_f64().unwrap_or_default(),
                        l["max_ms"].as_f64().unwrap_or_default(),
                        if args.rate.is_some() {
                            " (corrected for coordinated omission)"
                        } else {
                            ""
                        }
                    ),
                )?;
            }
            if let Some(t) = transactions {
                w(
                    &mut out,
                    format!(
                        "  transactions of {} records: {} committed, {} aborted; commit (ms): p50 {:.3}  p99 {:.3}  max {:.3}",
                        args.transactional_batch.unwrap_or_default(),
                        t["committed"].as_u64().unwrap_or_default(),
                        t["aborted"].as_u64().unwrap_or_default(),
                        t["commit_p50_ms"].as_f64().unwrap_or_default(),
                        t["commit_p99_ms"].as_f64().unwrap_or_default(),
                        t["commit_max_ms"].as_f64().unwrap_or_default(),
                    ),
                )?;
            }
            if o.failed > 0 {
                w(&mut out, format!("  failed: {}", o.failed))?;
            }
            Ok(())
        }
    }
}
