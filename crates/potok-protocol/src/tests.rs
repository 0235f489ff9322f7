//! Property tests over every generated message (unit tests, because the random value generators
//! are generated for test builds only).

use crate::codec::{Decode, Encode};
use crate::messages::{ApiKey, Request, Response};
use crate::testgen::Gen;
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let (lo, hi) = key.valid_versions();
    lo..=hi
}

fn round_trip_enum<T, D>(x: &T, version: i16, decode: D) -> Result<Bytes, String>
where
    T: Encode + PartialEq + std::fmt::Debug,
    D: Fn(&mut Bytes) -> Result<T, crate::DecodeError>,
{
    let mut buf = BytesMut::new();
    x.encode(&mut buf, version)
        .map_err(|e| format!("encode: {e} for {x:?}"))?;
    let size = x.encoded_size(version).map_err(|e| e.to_string())?;
    if size != buf.len() {
        return Err(format!("encoded_size {size} != {}", buf.len()));
    }
    let bytes = buf.freeze();
    let mut b = bytes.clone();
    let y = decode(&mut b).map_err(|e| format!("decode: {e} for {x:?}"))?;
    if !b.is_empty() {
        return Err(format!("{} trailing bytes", b.len()));
    }
    if &y != x {
        return Err(format!("mismatch:\n  {x:?}\n  {y:?}"));
    }
    Ok(bytes)
}

/// Acceptance 1: `decode(encode(x)) == x` and `encoded_size == encode().len()` for every request
/// and response at every valid version.
#[test]
fn round_trip_every_request_and_response_at_every_version() {
    for &key in ApiKey::ALL {
        for version in versions(key) {
            let mut runner = TestRunner::new(Config::with_cases(64));
            runner
                .run(&any::<u64>(), |seed| {
                    let mut g = Gen::new(seed);
                    let req = Request::random(key, &mut g, version);
                    round_trip_enum(&req, version, |b| Request::decode(key, b, version)).map_err(
                        |e| TestCaseError::fail(format!("{key:?} request v{version}: {e}")),
                    )?;
                    let resp = Response::random(key, &mut g, version);
                    round_trip_enum(&resp, version, |b| Response::decode(key, b, version))
                        .map_err(|e| {
                            TestCaseError::fail(format!("{key:?} response v{version}: {e}"))
                        })?;
                    Ok(())
                })
                .unwrap();
        }
    }
}

/// Acceptance 1 for the headers, the data messages and the internal coordinator records.
#[test]
fn round_trip_headers_and_data_messages() {
    let mut runner = TestRunner::new(Config::with_cases(256));
    runner
        .run(&any::<u64>(), |seed| {
            crate::messages::round_trip_non_api(seed).map_err(TestCaseError::fail)
        })
        .unwrap();
}

/// Truncating or corrupting a valid encoding never panics; decoding either fails with a typed
/// error or yields some value.
#[test]
fn mutated_valid_requests_never_panic() {
    for &key in ApiKey::ALL {
        for version in versions(key) {
            let mut runner = TestRunner::new(Config::with_cases(16));
            runner
                .run(&(any::<u64>(), any::<u64>()), |(seed, m)| {
                    let mut g = Gen::new(seed);
                    g.unknown_tags = false;
                    let req = Request::random(key, &mut g, version);
                    let mut buf = BytesMut::new();
                    req.encode(&mut buf, version).unwrap();
                    let mut v = buf.to_vec();
                    if !v.is_empty() {
                        let i = (m as usize) % v.len();
                        v[i] ^= (m >> 32) as u8 | 1;
                        let cut = ((m >> 16) as usize) % (v.len() + 1);
                        let _ = Request::decode(key, &mut Bytes::from(v[..cut].to_vec()), version);
                    }
                    let _ = Request::decode(key, &mut Bytes::from(v), version);
                    Ok(())
                })
                .unwrap();
        }
    }
}

/// Encoding a non-default value for a field missing at the version fails unless the field is
/// ignorable, as in Kafka.
#[test]
fn ignorable_semantics() {
    use crate::messages::{FetchRequest, MetadataRequest};
    // `AllowAutoTopicCreation` (4+) is not ignorable: false cannot be sent at v3.
    let m = MetadataRequest {
        allow_auto_topic_creation: false,
        ..Default::default()
    };
    assert!(matches!(
        m.encode(&mut BytesMut::new(), 3),
        Err(crate::EncodeError::UnsupportedField { .. })
    ));
    assert!(m.encode(&mut BytesMut::new(), 4).is_ok());
    // FetchRequest.ClusterId (12+, tagged, ignorable) is silently dropped at v11.
    let f = FetchRequest {
        cluster_id: Some("c".into()),
        ..Default::default()
    };
    let mut b = BytesMut::new();
    f.encode(&mut b, 11).unwrap();
    let back = FetchRequest::decode(&mut b.freeze(), 11).unwrap();
    assert_eq!(back.cluster_id, None);
    // ... and round-trips as a tagged field at v12.
    let mut b = BytesMut::new();
    f.encode(&mut b, 12).unwrap();
    assert_eq!(
        FetchRequest::decode(&mut b.freeze(), 12)
            .unwrap()
            .cluster_id
            .as_deref(),
        Some("c")
    );
}

/// Unknown tagged fields are skipped by the decoder and kept verbatim.
#[test]
fn unknown_tagged_fields_are_kept() {
    use crate::messages::ApiVersionsRequest;
    // ApiVersionsRequest v3: compact strings + tag buffer with one unknown tag 5 of 3 bytes.
    let raw = [2, b'a', 2, b'1', 1, 5, 3, 9, 8, 7];
    let mut b = Bytes::copy_from_slice(&raw);
    let r = ApiVersionsRequest::decode(&mut b, 3).unwrap();
    assert_eq!(r.client_software_name, "a");
    assert_eq!(r.unknown_tagged_fields.len(), 1);
    assert_eq!(r.unknown_tagged_fields[0].tag, 5);
    assert_eq!(&r.unknown_tagged_fields[0].data[..], &[9, 8, 7]);
    let mut out = BytesMut::new();
    r.encode(&mut out, 3).unwrap();
    assert_eq!(&out[..], &raw[..]);
}

/// The generators produce non-trivial values (guards against a round-trip test that only ever
/// sees defaults), and the round-trip check catches a corrupted encoding.
#[test]
fn generators_are_not_trivial_and_checks_can_fail() {
    let mut non_default = 0;
    let mut total_bytes = 0;
    for seed in 0..64 {
        let mut g = Gen::new(seed);
        let r = Request::random(ApiKey::Produce, &mut g, 9);
        let Request::Produce(p) = &r else {
            unreachable!()
        };
        if !p.topic_data.is_empty() {
            non_default += 1;
        }
        total_bytes += r.encoded_size(9).unwrap();
    }
    assert!(
        non_default > 32,
        "only {non_default} non-empty produce requests"
    );
    assert!(total_bytes > 64 * 20);
    // A decoder for the wrong version must not pass the round-trip check.
    let mut g = Gen::new(1);
    let r = Request::random(ApiKey::Metadata, &mut g, 12);
    assert!(round_trip_enum(&r, 12, |b| Request::decode(ApiKey::Metadata, b, 8)).is_err());
}

/// Every strict prefix of a valid random request body fails to decode with a typed error (every
/// field is mandatory, so a truncated body can never be mistaken for a complete one).
#[test]
fn truncated_random_requests_fail() {
    for &key in ApiKey::ALL {
        for version in versions(key) {
            let mut runner = TestRunner::new(Config::with_cases(8));
            runner
                .run(&any::<u64>(), |seed| {
                    let mut g = Gen::new(seed);
                    let req = Request::random(key, &mut g, version);
                    let mut buf = BytesMut::new();
                    req.encode(&mut buf, version).unwrap();
                    let full = buf.freeze();
                    for cut in 0..full.len() {
                        prop_assert!(
                            Request::decode(key, &mut full.slice(..cut), version).is_err(),
                            "{key:?} v{version}: prefix {cut} of {} decoded",
                            full.len()
                        );
                    }
                    Ok(())
                })
                .unwrap();
        }
    }
}
