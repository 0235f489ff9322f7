//! DescribeLogDirs (API 35, v1-v4) on a single node: the partitions with a local log in the one
//! data directory, their sizes, the named topics only when topics are named (unknown ones left
//! out), and the volume's bytes from v4. Kafka's `kafka-reassign-partitions` reads it from every
//! broker (`tests/reassign.rs` runs that tool against a cluster).

mod common;

use bytes::Bytes;
use common::wire::Client;
use potok_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use potok_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};
use potok_protocol::ApiKey;
use potok_records::{NewRecord, RecordBatchBuilder};

fn batch(size: usize) -> Bytes {
    RecordBatchBuilder::new()
        .record(NewRecord {
            value: Some(Bytes::from(vec![b'x'; size])),
            ..Default::default()
        })
        .build()
        .unwrap()
        .into_bytes()
}

#[test]
fn describe_log_dirs_reports_local_partitions_and_sizes() {
    let b = common::Broker::start();
    let mut c = Client::new(&b);
    c.create_topic("dirs", 2, &[]);
    c.create_topic("other", 1, &[]);
    let r = c.produce("dirs", 1, batch(1000));
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);

    let all: DescribeLogDirsResponse = c.call(
        ApiKey::DescribeLogDirs,
        4,
        &DescribeLogDirsRequest {
            topics: None,
            ..Default::default()
        },
    );
    assert_eq!(all.error_code, 0);
    assert_eq!(all.results.len(), 1, "one data directory");
    let dir = &all.results[0];
    assert_eq!(dir.error_code, 0);
    assert!(
        std::path::Path::new(&dir.log_dir).ends_with(b.data_dir().file_name().unwrap()),
        "{} vs {}",
        dir.log_dir,
        b.data_dir().display()
    );
    assert!(dir.total_bytes > 0 && dir.usable_bytes > 0 && dir.usable_bytes <= dir.total_bytes);
    let names: Vec<&str> = dir.topics.iter().map(|t| t.name.as_str()).collect();
    assert!(
        names.contains(&"dirs") && names.contains(&"other"),
        "{names:?}"
    );
    let dirs = dir.topics.iter().find(|t| t.name == "dirs").unwrap();
    let sizes: Vec<(i32, i64)> = dirs
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.partition_size))
        .collect();
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    assert_eq!(sizes[0], (0, 0));
    assert!(sizes[1].0 == 1 && sizes[1].1 > 1000, "{sizes:?}");
    assert!(dirs
        .partitions
        .iter()
        .all(|p| p.offset_lag == 0 && !p.is_future_key));

    // Named topics only; an unknown topic and partition are left out; v1 has no volume bytes.
    let named: DescribeLogDirsResponse = c.call(
        ApiKey::DescribeLogDirs,
        1,
        &DescribeLogDirsRequest {
            topics: Some(vec![
                DescribableLogDirTopic {
                    topic: "dirs".into(),
                    partitions: vec![1, 7],
                    ..Default::default()
                },
                DescribableLogDirTopic {
                    topic: "missing".into(),
                    partitions: vec![0],
                    ..Default::default()
                },
            ]),
            ..Default::default()
        },
    );
    let topics = &named.results[0].topics;
    assert_eq!(topics.len(), 1, "{topics:?}");
    assert_eq!(topics[0].name, "dirs");
    assert_eq!(
        topics[0]
            .partitions
            .iter()
            .map(|p| p.partition_index)
            .collect::<Vec<_>>(),
        vec![1]
    );
}
