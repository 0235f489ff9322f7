//! CreatePartitions against the partition limits of [`super::limits`], on the in-memory
//! backend of the handler tests.

use potok_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use potok_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use potok_protocol::ErrorCode;

use super::tests::Fake;
use super::*;

#[test]
fn create_partitions_respects_the_broker_limit_before_creating_anything() {
    // The fake broker holds 6 partitions and allows 50.
    let fake = Fake::new(&[("t", 3), ("u", 3)]);
    let topic = |name: &str, count| CreatePartitionsTopic {
        name: name.into(),
        count,
        assignments: None,
        ..Default::default()
    };
    let request = |topics, validate_only| CreatePartitionsRequest {
        topics,
        validate_only,
        timeout_ms: 1000,
        ..Default::default()
    };
    let codes = |r: CreatePartitionsResponse| -> Vec<i16> {
        r.results.into_iter().map(|r| r.error_code).collect()
    };
    // 27 + 27 new partitions: 60 in all, above 50. Both valid topics are refused, the invalid
    // one keeps its own error, and nothing is created.
    let r = handle_create_partitions(
        &fake,
        &request(
            vec![topic("t", 30), topic("u", 30), topic("missing", 9)],
            false,
        ),
        3,
    );
    assert_eq!(
        codes(r),
        vec![
            ErrorCode::PolicyViolation.code(),
            ErrorCode::PolicyViolation.code(),
            ErrorCode::UnknownTopicOrPartition.code()
        ]
    );
    // validate_only is refused the same way.
    let r = handle_create_partitions(&fake, &request(vec![topic("t", 48)], true), 3);
    assert_eq!(codes(r), vec![ErrorCode::PolicyViolation.code()]);
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
    // Exactly at the limit is allowed.
    let r = handle_create_partitions(&fake, &request(vec![topic("t", 47)], false), 3);
    assert_eq!(codes(r), vec![0]);
    assert_eq!(fake.calls(), vec!["partitions t 47"]);
}
