//! Acceptance 3 (bounded memory): decoding hostile input under a tracking global allocator never
//! allocates more than a small multiple of the input size.
//!
//! This file holds a single test so that no other test thread allocates concurrently and skews
//! the peak measurement.

use bytes::{BufMut, Bytes, BytesMut};
use potok_protocol::messages::RequestHeader;
use potok_protocol::{decode_request, ApiKey, Encode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts live bytes and the peak since the last reset.
struct Tracking;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// Bytes allocated at peak (above the live bytes before the call) while running `f`.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    f();
    PEAK.load(Ordering::SeqCst).saturating_sub(base)
}

fn header(key: ApiKey, version: i16) -> BytesMut {
    let h = RequestHeader {
        request_api_key: key as i16,
        request_api_version: version,
        correlation_id: 1,
        client_id: Some("m".into()),
        ..Default::default()
    };
    let mut b = BytesMut::new();
    h.encode(&mut b, key.request_header_version(version))
        .unwrap();
    b
}

/// The allowed peak for an input of `len` bytes. Decoded structs are larger in memory than on
/// the wire (a `String` or `Vec` header is 24 bytes for a 1-2 byte empty encoding), so the bound
/// is a multiple of the input plus a small constant for error values and headers.
fn bound(len: usize) -> usize {
    64 * len + 4096
}

#[test]
fn decoding_hostile_input_keeps_memory_bounded() {
    // The 5-byte Metadata body claiming i32::MAX topics, and a compact u32::MAX count.
    let mut cases: Vec<Bytes> = Vec::new();
    let mut f = header(ApiKey::Metadata, 4);
    f.put_slice(&[0x7f, 0xff, 0xff, 0xff, 0x00]);
    cases.push(f.freeze());
    let mut f = header(ApiKey::Metadata, 12);
    f.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0]);
    cases.push(f.freeze());
    // Produce v3 claiming a 2 GiB records field with a few bytes behind it.
    let mut f = header(ApiKey::Produce, 3);
    f.put_i16(-1);
    f.put_i16(1);
    f.put_i32(1000);
    f.put_i32(1);
    f.put_i16(1);
    f.put_u8(b't');
    f.put_i32(1);
    f.put_i32(0);
    f.put_i32(i32::MAX);
    f.put_slice(&[0; 16]);
    cases.push(f.freeze());
    // A valid request with the worst expansion: 10,000 empty group names (one byte each on the
    // wire, a 24-byte `String` each in memory).
    let mut f = header(ApiKey::DescribeGroups, 5);
    // Compact array count: 10_000 elements are encoded as the unsigned varint 10_001.
    let mut n = 10_001u32;
    while n >= 0x80 {
        f.put_u8((n as u8) | 0x80);
        n >>= 7;
    }
    f.put_u8(n as u8);
    f.put_slice(&[1u8; 10_000]); // empty compact strings
    f.put_u8(0); // include_authorized_operations
    f.put_u8(0); // tag buffer
    let valid = f.freeze();
    let len = valid.len();
    let peak = peak_during(|| {
        let (_, req) = decode_request(valid).unwrap();
        assert!(
            matches!(req, potok_protocol::Request::DescribeGroups(ref r) if r.groups.len() == 10_000)
        );
    });
    eprintln!("10,000 empty group names: peak {peak} bytes for {len} input bytes");
    assert!(peak <= bound(len), "peak {peak} for a {len}-byte frame");

    for frame in &cases {
        let len = frame.len();
        let frame = frame.clone();
        let peak = peak_during(|| {
            assert!(decode_request(frame).is_err());
        });
        assert!(peak <= bound(len), "peak {peak} for a {len}-byte frame");
    }

    // Random bodies behind valid headers of every request type and version.
    let worst = std::cell::Cell::new((0usize, 1usize));
    let mut keys = Vec::new();
    for &k in ApiKey::ALL {
        let (lo, hi) = k.valid_versions();
        for v in lo..=hi {
            keys.push((k, v));
        }
    }
    for (key, version) in keys {
        let head = header(key, version).freeze();
        let mut runner = TestRunner::new(Config {
            failure_persistence: None,
            ..Config::with_cases(200)
        });
        runner
            .run(&proptest::collection::vec(any::<u8>(), 0..256), |tail| {
                let mut f = BytesMut::with_capacity(head.len() + tail.len());
                f.put_slice(&head);
                f.put_slice(&tail);
                let frame = f.freeze();
                let len = frame.len();
                let peak = peak_during(|| {
                    let _ = decode_request(frame);
                });
                prop_assert!(
                    peak <= bound(len),
                    "{key:?} v{version}: peak {peak} for {len} bytes"
                );
                let w = worst.get();
                if peak * w.1 > w.0 * len {
                    worst.set((peak, len));
                }
                Ok(())
            })
            .unwrap();
    }
    let w = worst.get();
    eprintln!(
        "worst random case: peak {} bytes for {} input bytes",
        w.0, w.1
    );
}
