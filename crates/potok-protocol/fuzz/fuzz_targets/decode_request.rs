//! Fuzzes request decoding: `decode_request` on arbitrary frame bodies must never panic, and any
//! request it accepts must re-encode and decode back to the same value.
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
    let mut out = BytesMut::new();
    encode_request_frame(&mut out, &header, &request).expect("a decoded request re-encodes");
    let again = decode_request(Bytes::from(out).slice(4..)).expect("a re-encoded request decodes");
    assert_eq!(again, (header, request));
});
