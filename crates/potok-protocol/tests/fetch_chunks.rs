//! Fetch responses encoded as chunks share the record bytes instead of copying them, and the
//! chunks concatenate to exactly the copying encoding.

use bytes::{Bytes, BytesMut};
use potok_protocol::messages::{fetch_response, FetchResponse};
use potok_protocol::{
    encode_response_chunks, encode_response_frame, response_header_size, ApiKey, Response,
};

#[test]
fn fetch_response_chunks_share_records() {
    let records: Vec<Bytes> = (0..3).map(|i| Bytes::from(vec![i as u8; 5000])).collect();
    let resp = FetchResponse {
        responses: vec![fetch_response::FetchableTopicResponse {
            topic: "t".into(),
            partitions: records
                .iter()
                .enumerate()
                .map(|(i, r)| fetch_response::PartitionData {
                    partition_index: i as i32,
                    records: Some(r.clone()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    };
    for version in [4i16, 11, 12, 16] {
        let chunks = encode_response_chunks(ApiKey::Fetch, version, 9, &resp, 1024).unwrap();
        let mut copied = BytesMut::new();
        encode_response_frame(&mut copied, ApiKey::Fetch, version, 9, &resp).unwrap();
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(joined, copied.to_vec(), "v{version}");
        for r in &records {
            assert!(
                chunks
                    .iter()
                    .any(|c| c.as_ptr() == r.as_ptr() && c.len() == r.len()),
                "records not shared at v{version}"
            );
        }
        // The `Response` enum encodes identically.
        let via_enum = encode_response_chunks(
            ApiKey::Fetch,
            version,
            9,
            &Response::Fetch(resp.clone()),
            1024,
        )
        .unwrap();
        assert_eq!(via_enum, chunks);
        // The frame length prefix covers header + body.
        let len = i32::from_be_bytes(joined[..4].try_into().unwrap()) as usize;
        assert_eq!(len + 4, joined.len());
        assert_eq!(
            response_header_size(ApiKey::Fetch, version),
            if version >= 12 { 5 } else { 4 }
        );
    }
}
