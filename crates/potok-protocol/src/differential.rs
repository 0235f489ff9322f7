//! Differential tests against the `kafka-protocol` crate (0.18, a dev-dependency used only as an
//! oracle): for every API key and version both implementations support, bytes encoded by one
//! decode identically in the other, checked by re-encoding.
//!
//! Direction 1: a random value valid for the version is encoded by Potok; kafka-protocol decodes
//! those bytes (consuming all of them) and re-encodes them; the bytes must be equal.
//! Direction 2: bytes produced by kafka-protocol's encoder (its re-encoding of the random value
//! and its `Default` value of every message) are decoded by Potok and re-encoded; equal again.

use crate::codec::Encode;
use crate::messages::{ApiKey, Request, Response};
use crate::testgen::Gen;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey as TheirKey, RequestKind, ResponseKind};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// (key, their key, lo, hi): the versions both implementations support.
fn common_versions() -> Vec<(ApiKey, TheirKey, i16, i16)> {
    let mut out = Vec::new();
    for &key in ApiKey::ALL {
        let Ok(theirs) = TheirKey::try_from(key as i16) else {
            continue;
        };
        let (lo, hi) = key.valid_versions();
        let r = theirs.valid_versions();
        let (lo, hi) = (lo.max(r.min), hi.min(r.max));
        if lo <= hi {
            out.push((key, theirs, lo, hi));
        }
    }
    out
}

fn ours_then_theirs(
    ours: &Bytes,
    version: i16,
    theirs_roundtrip: impl Fn(&mut Bytes) -> anyhow::Result<BytesMut>,
) -> Result<Bytes, String> {
    let mut b = ours.clone();
    let re =
        theirs_roundtrip(&mut b).map_err(|e| format!("kafka-protocol decode/encode: {e:#}"))?;
    if !b.is_empty() {
        return Err(format!(
            "kafka-protocol left {} bytes at v{version}",
            b.len()
        ));
    }
    if re[..] != ours[..] {
        return Err(format!(
            "bytes differ at v{version}\n ours:   {:02x?}\n theirs: {:02x?}",
            &ours[..],
            &re[..]
        ));
    }
    Ok(re.freeze())
}

fn theirs_then_ours<T: Encode + std::fmt::Debug>(
    theirs: &Bytes,
    version: i16,
    decode: impl Fn(&mut Bytes) -> Result<T, crate::DecodeError>,
) -> Result<(), String> {
    let mut b = theirs.clone();
    let x = decode(&mut b).map_err(|e| format!("potok decode of kafka-protocol bytes: {e}"))?;
    if !b.is_empty() {
        return Err(format!("potok left {} bytes", b.len()));
    }
    let mut out = BytesMut::new();
    x.encode(&mut out, version).map_err(|e| e.to_string())?;
    if out[..] != theirs[..] {
        return Err(format!(
            "bytes differ at v{version}\n theirs: {:02x?}\n ours:   {:02x?}",
            &theirs[..],
            &out[..]
        ));
    }
    Ok(())
}

fn check_request(key: ApiKey, tk: TheirKey, version: i16, seed: u64) -> Result<(), String> {
    let mut g = Gen::new(seed);
    let x = Request::random(key, &mut g, version);
    let mut buf = BytesMut::new();
    x.encode(&mut buf, version).map_err(|e| e.to_string())?;
    let ours = buf.freeze();
    let theirs = ours_then_theirs(&ours, version, |b| {
        let k = RequestKind::decode(tk, b, version)?;
        let mut out = BytesMut::new();
        k.encode(&mut out, version)?;
        Ok(out)
    })?;
    theirs_then_ours(&theirs, version, |b| Request::decode(key, b, version))
}

fn check_response(key: ApiKey, tk: TheirKey, version: i16, seed: u64) -> Result<(), String> {
    let mut g = Gen::new(seed);
    let x = Response::random(key, &mut g, version);
    let mut buf = BytesMut::new();
    x.encode(&mut buf, version).map_err(|e| e.to_string())?;
    let ours = buf.freeze();
    let theirs = ours_then_theirs(&ours, version, |b| {
        let k = ResponseKind::decode(tk, b, version)?;
        let mut out = BytesMut::new();
        k.encode(&mut out, version)?;
        Ok(out)
    })?;
    theirs_then_ours(&theirs, version, |b| Response::decode(key, b, version))
}

/// (key, version) pairs whose message definitions differ between Kafka 4.0 (Potok's specs) and
/// the newer Kafka that kafka-protocol 0.18 was generated from. ReadShareGroupStateSummary is a
/// KIP-932 share-group API that was still unstable (`latestVersionUnstable`) in 4.0, and
/// `LeaderEpoch` was later added to its v0 response without a version bump. The test checks that
/// these pairs really do differ, so the list cannot silently go stale.
const KNOWN_SPEC_DIVERGENCES: &[(ApiKey, i16)] = &[(ApiKey::ReadShareGroupStateSummary, 0)];

/// Acceptance 2, both directions, for random values of every request and response at every
/// version both sides support.
#[test]
fn differential_against_kafka_protocol() {
    let common = common_versions();
    assert!(common.len() >= 70, "only {} common API keys", common.len());
    let mut checked = 0usize;
    let mut failures = Vec::new();
    for (key, tk, lo, hi) in common {
        for version in lo..=hi {
            let mut runner = TestRunner::new(Config::with_cases(64));
            let r = runner.run(&any::<u64>(), |seed| {
                check_request(key, tk, version, seed)
                    .map_err(|e| TestCaseError::fail(format!("{key:?} request v{version}: {e}")))?;
                check_response(key, tk, version, seed).map_err(|e| {
                    TestCaseError::fail(format!("{key:?} response v{version}: {e}"))
                })?;
                Ok(())
            });
            let diverges = KNOWN_SPEC_DIVERGENCES.contains(&(key, version));
            match (r, diverges) {
                (Err(e), false) => failures.push(format!("{key:?} v{version}: {e}")),
                (Ok(()), true) => failures.push(format!(
                    "{key:?} v{version} is listed as diverging but matched; update the list"
                )),
                _ => {}
            }
            checked += 1;
        }
    }
    for f in &failures {
        eprintln!("FAILURE {}", f.lines().next().unwrap_or(""));
    }
    assert!(failures.is_empty(), "{} failures", failures.len());
    eprintln!("checked {checked} (key, version) pairs");
    assert!(
        checked >= 250,
        "only {checked} (key, version) pairs checked"
    );
}

fn header_round_trip<Ours, Theirs>(version: i16, seed: u64) -> Result<(), String>
where
    Ours: crate::codec::Wire + crate::testgen::Random + std::fmt::Debug,
    Theirs: kafka_protocol::protocol::Encodable + kafka_protocol::protocol::Decodable,
{
    let mut g = Gen::new(seed);
    let x = Ours::random(&mut g, version);
    let mut buf = BytesMut::new();
    x.write(&mut buf, version).map_err(|e| e.to_string())?;
    let ours = buf.freeze();
    let theirs = ours_then_theirs(&ours, version, |b| {
        let t = Theirs::decode(b, version)?;
        let mut out = BytesMut::new();
        t.encode(&mut out, version)?;
        Ok(out)
    })?;
    theirs_then_ours(&theirs, version, |b| {
        <Ours as crate::codec::Wire>::read(b, version)
    })
    .map(|_| ())
}

/// Acceptance 2 for the request and response headers, at every version both support
/// (kafka-protocol 0.18 dropped request header v0, which only ControlledShutdown v0 used).
#[test]
fn differential_headers() {
    use crate::messages::{RequestHeader, ResponseHeader};
    let mut runner = TestRunner::new(Config::with_cases(256));
    runner
        .run(&any::<u64>(), |seed| {
            for v in 1..=2 {
                header_round_trip::<RequestHeader, kafka_protocol::messages::RequestHeader>(
                    v, seed,
                )
                .map_err(|e| TestCaseError::fail(format!("RequestHeader v{v}: {e}")))?;
            }
            for v in 0..=1 {
                header_round_trip::<ResponseHeader, kafka_protocol::messages::ResponseHeader>(
                    v, seed,
                )
                .map_err(|e| TestCaseError::fail(format!("ResponseHeader v{v}: {e}")))?;
            }
            Ok(())
        })
        .unwrap();
}
