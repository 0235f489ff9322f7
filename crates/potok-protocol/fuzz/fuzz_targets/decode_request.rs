//! Fuzzes request decoding: `decode_request` on arbitrary frame bodies must never panic, and any
//! request it accepts must re-encode, and that encoding must decode and re-encode to the same
//! bytes (compared as bytes rather than values because float64 fields may hold NaN).
//!
//! Run with `cargo +nightly fuzz run decode_request` from `crates/potok-protocol`.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use potok_protocol::{decode_request, encode_request_frame, split_frame};

fuzz_target!(|data: &[u8]| {
    // Framing of the raw bytes as if they came from a socket.
    let mut rb = BytesMut::from(data);
    let _ = split_frame(&mut rb, 1 << 20);

    let Ok((header, request)) = decode_request(Bytes::copy_from_slice(data)) else {
        return;
    };
    let mut first = BytesMut::new();
    encode_request_frame(&mut first, &header, &request).expect("a decoded request re-encodes");
    let first = Bytes::from(first);
    let (h2, r2) = decode_request(first.slice(4..)).expect("a re-encoded request decodes");
    let mut second = BytesMut::new();
    encode_request_frame(&mut second, &h2, &r2).expect("re-encodes again");
    assert_eq!(first, second);
});
