//! Potok's Kafka wire protocol: generated message types, headers, framing and error codes. No IO.
//!
//! # Overview
//!
//! - [`messages`] — generated from Kafka's JSON message definitions by `potok-codegen`
//!   (`cargo run -p potok-codegen -- ../shared/kafka-message-specs crates/potok-protocol/src/generated`).
//!   One struct per message covering all of its valid versions (e.g. [`messages::MetadataRequest`]),
//!   one struct per nested or common struct, snake_case fields. Every message struct and every
//!   nested struct whose name is unique is re-exported from `messages`; the rest live in the
//!   message's module (`messages::produce_request::TopicProduceData`). Fields that are nullable in
//!   some version are `Option<_>`; `records` fields are `Option<Bytes>` zero-copy slices of the
//!   input; `uuid` is [`Uuid`]; every struct has `unknown_tagged_fields` so that tagged fields a
//!   newer client sends survive a decode/encode round trip. `Default` gives Kafka's defaults.
//!   `messages::internal` holds the `__consumer_offsets` / `__transaction_state` record types.
//! - [`Encode`] (`encode(&self, &mut BytesMut, version)`, `encoded_size(version)`) and [`Decode`]
//!   (`decode(&mut Bytes, version)`) are implemented by every generated struct and by the
//!   [`Request`] / [`Response`] enums (which decode with `Request::decode(api_key, buf, version)`).
//!   Encoding a field that does not exist at the requested version with a non-default value is an
//!   [`EncodeError::UnsupportedField`] unless the field is `ignorable` (then it is dropped), as in
//!   Kafka.
//! - [`ApiKey`]: `from_i16`, `valid_versions()`, `flexible_versions_start()`, `is_flexible(v)`,
//!   `request_header_version(v)`, `response_header_version(v)` (ApiVersions responses always use
//!   header v0), `listeners()`, `latest_version_unstable()`, `stable_versions()` (what a broker
//!   should advertise).
//! - [`frame`]: [`decode_request`] (header + body of one frame, dispatched by api key and
//!   version; unknown keys/versions give errors carrying the correlation id),
//!   [`encode_response_frame`] / [`encode_request_frame`] (length prefix + header + body),
//!   [`encode_response_chunks`] (the same as chunks for a vectored write, with large `records`
//!   fields shared by reference instead of copied — the Fetch response path),
//!   [`read_frame_len`] / [`split_frame`] enforcing `socket.request.max.bytes`
//!   ([`DEFAULT_MAX_REQUEST_BYTES`]) before any allocation, [`response_header_size`].
//! - [`ErrorCode`]: Kafka error codes (`ErrorCode::UnknownTopicOrPartition.code() == 3`).
//!
//! Notes for users:
//! - Versions are those of the Kafka 4.0 definitions. `ApiKey::valid_versions()` includes a
//!   latest version marked `latestVersionUnstable`; like Kafka (without
//!   `unstable.api.versions.enable`), a broker should advertise `ApiKey::stable_versions()`, which
//!   leaves such a version out.
//! - Message fields are plain integers (`i32` broker ids, `i64` offsets, ...) exactly as on the
//!   wire; the newtypes of `potok-records` (`Offset`, `LeaderEpoch`, ...) are applied by callers.
//! - Nested struct names that occur in several messages (e.g. `PartitionData`, `NodeEndpoint`,
//!   `LeaderIdAndEpoch`) are not re-exported from `messages`; use the message module
//!   (`messages::fetch_response::PartitionData`).
//! - The generated code is committed; `tests/regenerate.rs` fails when it differs from a fresh
//!   generation (and is skipped when `../shared/kafka-message-specs` is absent).
//!
//! # Safety against hostile input
//!
//! Decoding never panics and never allocates more than the remaining input could justify: every
//! length and count read from the wire is checked against the remaining bytes before anything is
//! allocated (an array of `n` elements needs `n * min_size` bytes, where `min_size` is the
//! smallest encoding of one element at that version). Failures are typed [`DecodeError`]s.
//!
//! # Example
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use potok_protocol::messages::{MetadataRequest, MetadataRequestTopic, RequestHeader};
//! use potok_protocol::{decode_request, encode_request_frame, ApiKey, Request};
//!
//! let header = RequestHeader {
//!     request_api_key: ApiKey::Metadata as i16,
//!     request_api_version: 12,
//!     correlation_id: 7,
//!     client_id: Some("demo".into()),
//!     ..Default::default()
//! };
//! let body = MetadataRequest {
//!     topics: Some(vec![MetadataRequestTopic { name: Some("t".into()), ..Default::default() }]),
//!     ..Default::default()
//! };
//! let mut buf = BytesMut::new();
//! encode_request_frame(&mut buf, &header, &body).unwrap();
//! let frame = Bytes::from(buf).slice(4..); // drop the length prefix
//! let (h, req) = decode_request(frame).unwrap();
//! assert_eq!(h.correlation_id, 7);
//! assert_eq!(req, Request::Metadata(body));
//! ```

pub mod codec;
#[cfg(test)]
mod differential;
pub mod error;
pub mod error_code;
pub mod frame;
#[path = "generated/mod.rs"]
#[allow(
    unused_imports,
    unused_variables,
    unused_mut,
    clippy::collapsible_if,
    clippy::nonminimal_bool,
    clippy::overly_complex_bool_expr,
    clippy::needless_borrow,
    clippy::redundant_field_names,
    clippy::derivable_impls,
    clippy::comparison_to_empty,
    clippy::bool_comparison,
    clippy::manual_range_contains,
    clippy::match_single_binding,
    clippy::too_many_lines,
    clippy::doc_lazy_continuation,
    clippy::doc_overindented_list_items,
    clippy::field_reassign_with_default,
    clippy::partialeq_to_none,
    clippy::let_and_return
)]
pub mod messages;
#[cfg(test)]
mod testgen;
#[cfg(test)]
mod tests;

pub use codec::{
    ApiMessage, ChunkedSink, Decode, Encode, Message, RawTaggedField, Sink, Uuid, Wire,
};
pub use error::{DecodeError, EncodeError, FrameError};
pub use error_code::ErrorCode;
pub use frame::{
    decode_request, encode_request_frame, encode_response_chunks, encode_response_frame,
    peek_header_prefix, read_frame_len, response_header_size, split_frame, HeaderPrefix,
    DEFAULT_MAX_REQUEST_BYTES,
};
pub use messages::{ApiKey, Request, Response};
