//! The retention task: every `log.retention.check.interval.ms`, applies `retention.ms` and
//! `retention.bytes` to every partition (Kafka's `LogManager.cleanupLogs`), and runs the
//! time-based flush policy (`flush.ms`).
//!
//! It runs on a blocking thread and holds a partition's lock only for the decision and the
//! renames of the deleted segments' files (`Log::detach_expired_segments`); the files are
//! removed after the lock is released, and a due `flush.ms` flush is only queued on the
//! background flusher, so a produce or fetch waiting for the lock never waits for file
//! removal or an fsync (issue #14).

use std::sync::Arc;
use std::time::Duration;

use crate::topics::now_ms;
use crate::Broker;

/// Runs until shutdown.
pub async fn run(broker: Arc<Broker>) {
    let mut shutdown = broker.shutdown_signal();
    let period = Duration::from_millis(broker.config.retention_check_interval_ms);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
        let b = Arc::clone(&broker);
        // Segment deletion is file IO; keep it off the request threads.
        let _ = tokio::task::spawn_blocking(move || sweep(&b)).await;
    }
}

/// One retention pass over every partition.
pub fn sweep(broker: &Broker) {
    let now = now_ms();
    for p in broker.topics.all_partitions() {
        let r = p
            .with_log(|log| {
                let hw = log.log_end_offset();
                let deleted = log.detach_expired_segments(now, Some(hw))?;
                // Queued on the background flusher; a failure here must not keep the
                // detached files on disk.
                if let Err(e) = log.maybe_flush(now) {
                    tracing::warn!(topic = p.topic(), partition = p.index(), error = %e, "flush failed");
                }
                Ok(deleted)
            })
            .and_then(|deleted| deleted.remove_files());
        match r {
            Ok(d) if !d.is_empty() => {
                tracing::info!(
                    topic = p.topic(),
                    partition = p.index(),
                    segments = d.len(),
                    "retention deleted segments"
                )
            }
            Ok(_) => {}
            Err(potok_log::LogError::Offline) => {}
            Err(e) => {
                tracing::warn!(topic = p.topic(), partition = p.index(), error = %e, "retention failed")
            }
        }
    }
}
