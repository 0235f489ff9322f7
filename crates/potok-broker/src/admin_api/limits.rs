//! Partition limits checked before CreateTopics, CreatePartitions or an automatic topic creation
//! writes anything: at most [`MAX_PARTITIONS_PER_REQUEST`] new partitions per request (Kafka's
//! `ReplicationControlManager.validateTotalNumberOfPartitions`, KAFKA-17870) and at most
//! `potok.max.partitions` partitions on the broker (Kafka has no such setting; see
//! `docs/configuration.md`).
//!
//! Both limits exist because every partition is a directory with three open files (log, offset
//! index, time index): a request for two million partitions would otherwise exhaust the file
//! descriptors and leave a half-created topic behind. Sums are taken in `i64` from `i32` and
//! `usize` counts, so no request can overflow them.

use std::sync::{Mutex, MutexGuard};

use potok_protocol::messages::create_topics_request::CreatableTopic;
use potok_protocol::ErrorCode;

use super::ApiError;

/// Kafka's `ReplicationControlManager.MAX_PARTITIONS_PER_BATCH`: the most partitions one
/// CreateTopics (or, in Potok, CreatePartitions) request may add.
pub const MAX_PARTITIONS_PER_REQUEST: i64 = 10_000;

/// Kafka's message for a request above [`MAX_PARTITIONS_PER_REQUEST`].
pub const PER_REQUEST_MESSAGE: &str = "Excessively large number of partitions per request.";

/// The partitions a CreateTopics request asks for, summed over every topic as Kafka counts them
/// (KAFKA-17870): the assignment count when assignments are given, else `num_partitions`, with
/// -1 meaning `num.partitions` and any other non-positive count adding nothing (such a topic is
/// refused on its own).
pub fn create_topics_total(topics: &[CreatableTopic], default_partitions: i32) -> i64 {
    topics
        .iter()
        .map(|t| {
            if !t.assignments.is_empty() {
                i64::try_from(t.assignments.len()).unwrap_or(i64::MAX)
            } else if t.num_partitions == -1 {
                i64::from(default_partitions)
            } else {
                i64::from(t.num_partitions.max(0))
            }
        })
        .fold(0i64, i64::saturating_add)
}

/// `POLICY_VIOLATION` when a request adds more than [`MAX_PARTITIONS_PER_REQUEST`] partitions.
pub fn check_request_total(total: i64) -> Result<(), ApiError> {
    if total > MAX_PARTITIONS_PER_REQUEST {
        return Err(ApiError::new(
            ErrorCode::PolicyViolation,
            PER_REQUEST_MESSAGE,
        ));
    }
    Ok(())
}

/// `POLICY_VIOLATION` when adding `adding` partitions to the `current` ones would exceed the
/// broker's `potok.max.partitions` (`limit`).
pub fn check_broker_total(current: usize, adding: i64, limit: i64) -> Result<(), ApiError> {
    let current = i64::try_from(current).unwrap_or(i64::MAX);
    let after = current.saturating_add(adding);
    if after > limit {
        return Err(ApiError::new(
            ErrorCode::PolicyViolation,
            format!(
                "Adding {adding} partition(s) to the {current} this broker holds would exceed \
                 its limit of {limit} (potok.max.partitions)."
            ),
        ));
    }
    Ok(())
}

static BUDGET: Mutex<()> = Mutex::new(());

/// Serialises "count the partitions, check the limit, create" across CreateTopics,
/// CreatePartitions and automatic creation, so two requests cannot both pass the broker-wide
/// check and together exceed it. Held only around synchronous code, never across an `.await`.
pub fn budget_guard() -> MutexGuard<'static, ()> {
    // The guarded data is `()`: a panic elsewhere cannot leave it inconsistent.
    BUDGET.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use potok_protocol::messages::create_topics_request::CreatableReplicaAssignment;

    use super::*;

    fn topic(partitions: i32, assignments: usize) -> CreatableTopic {
        CreatableTopic {
            name: "t".into(),
            num_partitions: partitions,
            replication_factor: -1,
            assignments: (0..assignments)
                .map(|i| CreatableReplicaAssignment {
                    partition_index: i as i32,
                    broker_ids: vec![1],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn totals_count_as_kafka_does() {
        assert_eq!(create_topics_total(&[topic(5, 0), topic(-1, 0)], 3), 8);
        // Assignments win over num_partitions; non-positive counts add nothing.
        assert_eq!(
            create_topics_total(&[topic(-1, 2), topic(0, 0), topic(-7, 0)], 9),
            2
        );
        // No overflow: many topics of i32::MAX partitions.
        let many: Vec<_> = (0..10).map(|_| topic(i32::MAX, 0)).collect();
        assert_eq!(create_topics_total(&many, 1), 10 * i64::from(i32::MAX));
    }

    #[test]
    fn limits_refuse_with_policy_violation() {
        assert!(check_request_total(10_000).is_ok());
        let e = check_request_total(10_001).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::PolicyViolation, PER_REQUEST_MESSAGE)
        );
        assert!(check_broker_total(90, 10, 100).is_ok());
        assert_eq!(
            check_broker_total(90, 11, 100).unwrap_err().code,
            ErrorCode::PolicyViolation
        );
        assert!(check_broker_total(usize::MAX, i64::MAX, i64::MAX).is_ok());
        assert!(check_broker_total(usize::MAX, i64::MAX, 5).is_err());
    }
}
