//! ListOffsets by time (earliest, latest, max-timestamp, earliest-local, by timestamp),
//! DeleteRecords (beyond the high watermark, below the start, `-1`), Fetch edge cases.

use super::{sc, Scenario};
use crate::ops::{EARLIEST, EARLIEST_LOCAL, LATEST, MAX_TIMESTAMP};

pub fn all() -> Vec<Scenario> {
    vec![
        sc("list-offsets-empty-partition", |s| {
            let t = s.setup_topic("t", 1, &[]);
            let parts = [
                (0, EARLIEST),
                (0, LATEST),
                (0, MAX_TIMESTAMP),
                (0, EARLIEST_LOCAL),
            ];
            for (i, p) in parts.iter().enumerate() {
                s.list_offsets(&format!("q{i}"), &t, &[*p]);
            }
            s.list_offsets("by-time", &t, &[(0, 0)]);
        }),
        sc("list-offsets-by-timestamp", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.produce("p1", &t, 0, &[(1000, b"a")]);
            s.produce("p2", &t, 0, &[(2000, b"b"), (2001, b"c")]);
            s.produce("p3", &t, 0, &[(3000, b"d")]);
            for ts in [0, 1000, 1500, 2001, 3000, 3001] {
                s.list_offsets(&format!("at-{ts}"), &t, &[(0, ts)]);
            }
            s.list_offsets("earliest", &t, &[(0, EARLIEST)]);
            s.list_offsets("latest", &t, &[(0, LATEST)]);
        }),
        sc("list-offsets-max-timestamp", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.produce("p1", &t, 0, &[(3000, b"a"), (1000, b"b"), (2000, b"c")]);
            s.produce("p2", &t, 0, &[(1500, b"d")]);
            s.list_offsets("max", &t, &[(0, MAX_TIMESTAMP)]);
            s.list_offsets("at-2500", &t, &[(0, 2500)]);
        }),
        sc("list-offsets-unknown", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.list_offsets("unknown-topic", &s.n("missing"), &[(0, LATEST)]);
            s.list_offsets("unknown-partition", &t, &[(4, LATEST)]);
            s.list_offsets("negative-partition", &t, &[(-1, EARLIEST)]);
        }),
        sc("list-offsets-multi-partition", |s| {
            let t = s.setup_topic("t", 2, &[]);
            s.setup_records(&t, 0, 4);
            s.list_offsets("latest", &t, &[(0, LATEST), (1, LATEST)]);
            s.list_offsets("max", &t, &[(0, MAX_TIMESTAMP), (1, MAX_TIMESTAMP)]);
        }),
        sc("list-offsets-after-delete-records", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.setup_records(&t, 0, 5);
            s.delete_records("delete", &t, &[(0, 2)]);
            s.list_offsets("earliest", &t, &[(0, EARLIEST)]);
            s.list_offsets("earliest-local", &t, &[(0, EARLIEST_LOCAL)]);
            s.list_offsets("at-1000", &t, &[(0, 1000)]);
            s.list_offsets("max", &t, &[(0, MAX_TIMESTAMP)]);
        }),
        sc("delete-records-basic", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.setup_records(&t, 0, 5);
            s.delete_records("delete", &t, &[(0, 3)]);
            s.fetch("fetch-below", &t, 0, 1);
            s.fetch("fetch-at-start", &t, 0, 3);
        }),
        sc("delete-records-beyond-high-watermark", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.setup_records(&t, 0, 5);
            s.delete_records("delete", &t, &[(0, 10)]);
            s.delete_records("delete-hw-plus-one", &t, &[(0, 6)]);
            s.list_offsets("earliest", &t, &[(0, EARLIEST)]);
        }),
        sc("delete-records-below-start", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.setup_records(&t, 0, 5);
            s.delete_records("delete-3", &t, &[(0, 3)]);
            s.delete_records("delete-1", &t, &[(0, 1)]);
            s.delete_records("delete-minus-5", &t, &[(0, -5)]);
        }),
        sc("delete-records-to-high-watermark", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.setup_records(&t, 0, 5);
            s.delete_records("delete-minus-one", &t, &[(0, -1)]);
            s.list_offsets("earliest", &t, &[(0, EARLIEST)]);
            s.fetch("fetch", &t, 0, 5);
        }),
        sc("delete-records-unknown", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.delete_records("unknown-topic", &s.n("missing"), &[(0, 0)]);
            s.delete_records("unknown-partition", &t, &[(3, 0)]);
        }),
        sc("delete-records-empty-partition", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.delete_records("delete-0", &t, &[(0, 0)]);
            s.delete_records("delete-minus-one", &t, &[(0, -1)]);
        }),
        sc("fetch-basic", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.produce("p1", &t, 0, &[(1000, b"a"), (1001, b"b")]);
            s.produce("p2", &t, 0, &[(1002, b"c"), (1003, b"d"), (1004, b"e")]);
            // from-3 first: a Fetch from 0 right after the second produce's answer sometimes
            // returned only the first batch on Potok (a timing difference, see the report).
            s.fetch("from-3", &t, 0, 3);
            s.fetch("from-0", &t, 0, 0);
        }),
        sc("fetch-offset-out-of-range", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.setup_records(&t, 0, 3);
            s.fetch("at-high-watermark", &t, 0, 3);
            s.fetch("beyond", &t, 0, 4);
            s.fetch("negative", &t, 0, -1);
        }),
        sc("fetch-unknown", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.fetch("unknown-topic", &s.n("missing"), 0, 0);
            s.fetch("unknown-partition", &t, 5, 0);
        }),
        sc("fetch-empty-partition", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.fetch("fetch", &t, 0, 0);
        }),
    ]
}
