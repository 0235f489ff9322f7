//! Acceptance 3: hostile input. Every decode of adversarial bytes returns a typed error (or a
//! value) and never panics or aborts: oversized counts, truncated and tiny frames, negative
//! lengths and over a million random frames across every request type and version.

use bytes::{BufMut, Bytes, BytesMut};
use potok_protocol::messages::{MetadataRequest, ProduceRequest, RequestHeader};
use potok_protocol::{
    decode_request, read_frame_len, split_frame, ApiKey, Decode, DecodeError, Encode, FrameError,
    Request, DEFAULT_MAX_REQUEST_BYTES,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// The header bytes of a request for (key, version) with the given correlation id.
fn header(key: ApiKey, version: i16, correlation_id: i32) -> BytesMut {
    let h = RequestHeader {
        request_api_key: key as i16,
        request_api_version: version,
        correlation_id,
        client_id: Some("hostile".into()),
        ..Default::default()
    };
    let mut b = BytesMut::new();
    h.encode(&mut b, key.request_header_version(version))
        .unwrap();
    b
}

fn all_request_versions() -> Vec<(ApiKey, i16)> {
    let mut v = Vec::new();
    for &k in ApiKey::ALL {
        let (lo, hi) = k.valid_versions();
        for ver in lo..=hi {
            v.push((k, ver));
        }
    }
    v
}

#[test]
fn metadata_body_with_i32_max_topic_count_is_rejected_before_allocating() {
    // The 5-byte body from the issue: topic count i32::MAX followed by one byte.
    let body = [0x7f, 0xff, 0xff, 0xff, 0x00];
    for version in 0..=8 {
        let mut b = Bytes::copy_from_slice(&body);
        let e = MetadataRequest::decode(&mut b, version).unwrap_err();
        assert!(
            matches!(
                e,
                DecodeError::CountTooLarge {
                    count: 2147483647,
                    ..
                }
            ),
            "v{version}: {e:?}"
        );
        let mut frame = header(ApiKey::Metadata, version, 42);
        frame.put_slice(&body);
        let e = decode_request(frame.freeze()).unwrap_err();
        assert!(matches!(e, DecodeError::CountTooLarge { .. }), "{e:?}");
    }
}

#[test]
fn compact_array_with_u32_max_count_is_rejected() {
    // Compact count varint 0xffffffff (= u32::MAX, i.e. u32::MAX - 1 elements).
    let varint_max = [0xff, 0xff, 0xff, 0xff, 0x0f];
    for version in 9..=12 {
        let mut body = varint_max.to_vec();
        body.extend_from_slice(&[0, 0, 0]);
        let e = MetadataRequest::decode(&mut Bytes::from(body), version).unwrap_err();
        assert!(
            matches!(e, DecodeError::CountTooLarge { .. }),
            "v{version}: {e:?}"
        );
    }
    // Produce v9: transactional_id (compact null), acks, timeout, then the topic array.
    let mut body = vec![0u8];
    body.extend_from_slice(&(-1i16).to_be_bytes());
    body.extend_from_slice(&30_000i32.to_be_bytes());
    body.extend_from_slice(&varint_max);
    body.push(0);
    let e = ProduceRequest::decode(&mut Bytes::from(body), 9).unwrap_err();
    assert!(matches!(e, DecodeError::CountTooLarge { .. }), "{e:?}");
    // A varint longer than 32 bits.
    let mut body = vec![0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    body.extend_from_slice(&[0; 8]);
    let e = MetadataRequest::decode(&mut Bytes::from(body), 12).unwrap_err();
    assert_eq!(e, DecodeError::VarintTooLong);
}

#[test]
fn frames_of_zero_to_three_bytes() {
    for len in 0..=3usize {
        for fill in [0x00u8, 0x01, 0x7f, 0x80, 0xff] {
            let frame = Bytes::from(vec![fill; len]);
            assert!(matches!(
                decode_request(frame),
                Err(DecodeError::NotEnoughBytes { .. })
            ));
            let mut rb = BytesMut::from(&vec![fill; len][..]);
            assert_eq!(split_frame(&mut rb, DEFAULT_MAX_REQUEST_BYTES), Ok(None));
        }
    }
    // Every 2-byte input, and 4..8-byte inputs that cannot hold a full header prefix.
    for a in 0..=255u8 {
        for b in [0u8, 1, 18, 255] {
            assert!(decode_request(Bytes::from(vec![a, b])).is_err());
            assert!(decode_request(Bytes::from(vec![0, 18, 0, a, b])).is_err());
        }
    }
}

#[test]
fn negative_and_oversized_lengths() {
    // Frame length prefixes.
    assert_eq!(
        read_frame_len(&(-1i32).to_be_bytes(), DEFAULT_MAX_REQUEST_BYTES),
        Err(FrameError::NegativeSize(-1))
    );
    assert_eq!(
        read_frame_len(&i32::MIN.to_be_bytes(), DEFAULT_MAX_REQUEST_BYTES),
        Err(FrameError::NegativeSize(i32::MIN))
    );
    assert!(matches!(
        read_frame_len(&(104_857_601i32).to_be_bytes(), DEFAULT_MAX_REQUEST_BYTES),
        Err(FrameError::TooLarge { .. })
    ));
    assert_eq!(
        read_frame_len(&8i32.to_be_bytes(), DEFAULT_MAX_REQUEST_BYTES),
        Ok(8)
    );
    let mut rb = BytesMut::from(&i32::MAX.to_be_bytes()[..]);
    assert!(split_frame(&mut rb, DEFAULT_MAX_REQUEST_BYTES).is_err());
    assert!(rb.capacity() < 1024, "no allocation for the announced size");

    // A negative array count other than -1 (v0 Metadata topics are not nullable either).
    for count in [-2i32, -1000, i32::MIN] {
        let e = MetadataRequest::decode(&mut Bytes::copy_from_slice(&count.to_be_bytes()), 4)
            .unwrap_err();
        assert!(matches!(e, DecodeError::NegativeLength { .. }), "{e:?}");
    }
    assert!(matches!(
        MetadataRequest::decode(&mut Bytes::copy_from_slice(&(-1i32).to_be_bytes()), 0),
        Err(DecodeError::NullNotAllowed { .. })
    ));
    // A negative string length in the header's client id.
    let mut frame = BytesMut::new();
    frame.put_i16(ApiKey::Metadata as i16);
    frame.put_i16(4);
    frame.put_i32(9);
    frame.put_i16(-7);
    assert!(matches!(
        decode_request(frame.freeze()),
        Err(DecodeError::NegativeLength { len: -7, .. })
    ));
    // A negative records length in Produce v3.
    let mut body = BytesMut::new();
    body.put_i16(-1); // transactional id null
    body.put_i16(1); // acks
    body.put_i32(1000); // timeout
    body.put_i32(1); // one topic
    body.put_i16(1);
    body.put_u8(b't');
    body.put_i32(1); // one partition
    body.put_i32(0); // index
    body.put_i32(-3); // records length
    let e = ProduceRequest::decode(&mut body.freeze(), 3).unwrap_err();
    assert!(
        matches!(e, DecodeError::NegativeLength { len: -3, .. }),
        "{e:?}"
    );
    // A string length beyond the input.
    let e = decode_request({
        let mut f = BytesMut::new();
        f.put_i16(ApiKey::Metadata as i16);
        f.put_i16(4);
        f.put_i32(9);
        f.put_i16(i16::MAX);
        f.freeze()
    })
    .unwrap_err();
    assert!(matches!(e, DecodeError::NotEnoughBytes { .. }), "{e:?}");
}

#[test]
fn unknown_keys_and_versions_carry_the_correlation_id() {
    let mut f = BytesMut::new();
    f.put_i16(999);
    f.put_i16(0);
    f.put_i32(77);
    assert_eq!(
        decode_request(f.freeze()),
        Err(DecodeError::UnknownApiKey {
            api_key: 999,
            api_version: 0,
            correlation_id: 77
        })
    );
    let mut f = BytesMut::new();
    f.put_i16(ApiKey::ApiVersions as i16);
    f.put_i16(i16::MAX);
    f.put_i32(78);
    assert_eq!(
        decode_request(f.freeze()),
        Err(DecodeError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            api_version: i16::MAX,
            correlation_id: 78
        })
    );
}

#[test]
fn truncated_frames_fail_cleanly() {
    // A default request of every key and version, cut at every length, must fail with an error
    // (every field is mandatory, so a strict prefix can never decode).
    let mut checked = 0;
    for (key, version) in all_request_versions() {
        let mut frame = header(key, version, 5);
        let mut body = BytesMut::new();
        Request::default_for(key)
            .encode(&mut body, version)
            .unwrap_or_else(|e| panic!("default {key:?} v{version}: {e}"));
        frame.put_slice(&body);
        let full = frame.freeze();
        assert!(decode_request(full.clone()).is_ok(), "{key:?} v{version}");
        for cut in 0..full.len() {
            assert!(
                decode_request(full.slice(..cut)).is_err(),
                "{key:?} v{version} prefix {cut} of {} decoded",
                full.len()
            );
        }
        checked += 1;
    }
    assert!(checked > 300, "only {checked} request versions");
}

/// Over a million random frames across every request type and version: half are a valid header
/// followed by random body bytes (so the body decoders are exercised), half are entirely random.
#[test]
fn random_bytes_never_panic_million_cases() {
    let pairs = all_request_versions();
    let per_pair = (1_000_000 / pairs.len() as u32) + 1;
    let total = std::cell::Cell::new(0u64);
    let decoded_ok = std::cell::Cell::new(0u64);
    for (key, version) in pairs {
        let head = header(key, version, 1).freeze();
        let mut runner = TestRunner::new(Config {
            failure_persistence: None,
            ..Config::with_cases(per_pair)
        });
        runner
            .run(
                &(any::<bool>(), proptest::collection::vec(any::<u8>(), 0..48)),
                |(with_header, tail)| {
                    let frame = if with_header {
                        let mut f = BytesMut::from(&head[..]);
                        f.put_slice(&tail);
                        f.freeze()
                    } else {
                        Bytes::from(tail)
                    };
                    if decode_request(frame).is_ok() {
                        decoded_ok.set(decoded_ok.get() + 1);
                    }
                    total.set(total.get() + 1);
                    Ok(())
                },
            )
            .unwrap();
    }
    let (total, decoded_ok) = (total.get(), decoded_ok.get());
    eprintln!("{total} random frames, {decoded_ok} decoded successfully");
    assert!(total >= 1_000_000, "{total}");
}

#[test]
fn header_versions_and_stable_versions() {
    assert_eq!(ApiKey::ApiVersions.response_header_version(3), 0);
    assert_eq!(ApiKey::ApiVersions.request_header_version(3), 2);
    assert_eq!(ApiKey::Metadata.response_header_version(9), 1);
    assert_eq!(ApiKey::Metadata.response_header_version(8), 0);
    assert_eq!(ApiKey::Metadata.request_header_version(8), 1);
    assert_eq!(ApiKey::ControlledShutdown.request_header_version(0), 0);
    // Produce v12 and a stable EndTxn v5 (KIP-890 part 2) come from the generator's overlay of
    // Kafka 4.x versions (potok-codegen `overlay.rs`); ShareFetch has only an unstable v0
    // (KIP-932 early access).
    assert_eq!(ApiKey::Produce.valid_versions(), (0, 12));
    assert_eq!(ApiKey::TxnOffsetCommit.valid_versions(), (0, 5));
    assert!(!ApiKey::EndTxn.latest_version_unstable());
    assert_eq!(ApiKey::EndTxn.stable_versions(), Some((0, 5)));
    assert_eq!(ApiKey::ShareFetch.stable_versions(), None);
    assert!(!ApiKey::ListOffsets.latest_version_unstable());
    assert_eq!(
        ApiKey::Fetch.stable_versions(),
        Some(ApiKey::Fetch.valid_versions())
    );
}
