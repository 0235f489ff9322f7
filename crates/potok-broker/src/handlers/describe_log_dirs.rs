//! DescribeLogDirs (API 35, v1-v4; Kafka 4.x dropped v0, KIP-896): the partitions this broker
//! holds a log of, in its one data directory (`log.dirs`), with each log's size and its end's
//! lag behind the high watermark, and (v4) the volume's total and usable bytes. Kafka's
//! `kafka-reassign-partitions` and `kafka-log-dirs` tools read it from every broker.
//!
//! As Kafka's `ReplicaManager.describeLogDirs`: a null topic list means every partition,
//! unknown topics and partitions without a local log are left out. Potok has no
//! AlterReplicaLogDirs, so no log is ever a future one (`IsFutureKey` false).

use std::sync::Arc;

use potok_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use potok_protocol::messages::DescribeLogDirsResponse;
use potok_protocol::{ErrorCode, Request, Response};

use crate::error::{BrokerError, Result};
use crate::registry::{Reply, RequestContext};
use crate::Broker;

/// `(total, usable)` bytes of the file system holding `dir` (`statvfs(3)`), or Kafka's -1s.
fn volume_bytes(dir: &std::path::Path) -> (i64, i64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return (-1, -1);
    };
    // SAFETY: `path` is a NUL-terminated string and `stat` a zeroed, writable statvfs that
    // the call fills; nothing is read from it unless the call succeeded.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return (-1, -1);
    }
    let block = stat.f_frsize as i64;
    (
        (stat.f_blocks as i64).saturating_mul(block),
        (stat.f_bavail as i64).saturating_mul(block),
    )
}

/// Handles DescribeLogDirs.
pub async fn handle(broker: Arc<Broker>, _ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::DescribeLogDirs(req) = req else {
        return Err(BrokerError::NoHandler("DescribeLogDirs"));
    };
    // Log sizes take each partition's log lock and statvfs is a system call on the disk:
    // off the async workers.
    let result = tokio::task::spawn_blocking(move || {
        let wanted: Option<Vec<(String, Vec<i32>)>> = req
            .topics
            .map(|ts| ts.into_iter().map(|t| (t.topic, t.partitions)).collect());
        let mut topics = Vec::new();
        let mut all = broker.topics.all();
        all.sort_by(|a, b| a.name().cmp(b.name()));
        for t in all {
            let indexes: Option<Vec<i32>> = match &wanted {
                None => None,
                Some(w) => match w.iter().find(|(name, _)| name == t.name()) {
                    Some((_, ps)) => Some(ps.clone()),
                    None => continue,
                },
            };
            let partitions: Vec<DescribeLogDirsPartition> = t
                .state()
                .partitions
                .iter()
                .filter(|p| indexes.as_ref().is_none_or(|ix| ix.contains(&p.index())))
                .filter_map(|p| {
                    let (size, lag) = p.log_dir_summary()?;
                    Some(DescribeLogDirsPartition {
                        partition_index: p.index(),
                        partition_size: i64::try_from(size).unwrap_or(i64::MAX),
                        offset_lag: lag,
                        is_future_key: false,
                        ..Default::default()
                    })
                })
                .collect();
            if !partitions.is_empty() {
                topics.push(DescribeLogDirsTopic {
                    name: t.name().to_string(),
                    partitions,
                    ..Default::default()
                });
            }
        }
        let dir = broker.topics.data_dir();
        let (total_bytes, usable_bytes) = volume_bytes(dir);
        let log_dir = std::fs::canonicalize(dir)
            .unwrap_or_else(|_| dir.to_path_buf())
            .display()
            .to_string();
        DescribeLogDirsResponse {
            results: vec![DescribeLogDirsResult {
                error_code: 0,
                log_dir,
                topics,
                total_bytes,
                usable_bytes,
                ..Default::default()
            }],
            ..Default::default()
        }
    })
    .await
    .unwrap_or_else(|e| {
        tracing::warn!(error = %e, "DescribeLogDirs task failed");
        DescribeLogDirsResponse {
            error_code: ErrorCode::UnknownServerError.code(),
            ..Default::default()
        }
    });
    Ok(Reply::Response(Response::DescribeLogDirs(result)))
}
