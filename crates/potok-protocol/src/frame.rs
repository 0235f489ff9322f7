//! Request/response framing: a 4-byte big-endian length prefix followed by that many bytes, and
//! the header-version rules that decide how a request or response header is encoded.
//!
//! The length is validated against `socket.request.max.bytes` (Kafka's default is 104857600)
//! before any buffer is allocated for the frame, and negative lengths are rejected, so a client
//! cannot make the broker reserve memory it never sends.

use crate::codec::{self, ChunkedSink, Encode, SizeCounter, Wire, WriteBody};
use crate::error::{DecodeError, EncodeError, FrameError};
use crate::messages::{ApiKey, Request, RequestHeader, ResponseHeader};
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Kafka's default `socket.request.max.bytes` (100 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 104_857_600;

/// Validates a frame's 4-byte length prefix and returns the frame body length.
pub fn read_frame_len(prefix: &[u8; 4], max: usize) -> Result<usize, FrameError> {
    let len = i32::from_be_bytes(*prefix);
    let size = usize::try_from(len).map_err(|_| FrameError::NegativeSize(len))?;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    Ok(size)
}

/// Splits one complete frame body off the front of a read buffer.
///
/// Returns `Ok(None)` when the buffer does not yet hold a whole frame. It never reserves room for
/// the announced length itself: a client that announces 100 MiB and then sends nothing must not
/// make the broker hold 100 MiB, so the buffer only grows with bytes that actually arrive.
pub fn split_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, FrameError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let mut p = [0u8; 4];
    p.copy_from_slice(prefix);
    let len = read_frame_len(&p, max)?;
    let total = len.saturating_add(4);
    if buf.len() < total {
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len).freeze()))
}

impl ApiKey {
    /// The request header version for `version` of this API: 2 for flexible versions, 1
    /// otherwise, except ControlledShutdown v0 which uses header v0 (Kafka's
    /// `ApiKeys.requestHeaderVersion`).
    pub fn request_header_version(self, version: i16) -> i16 {
        if self.is_flexible(version) {
            2
        } else if self == ApiKey::ControlledShutdown && version == 0 {
            0
        } else {
            1
        }
    }

    /// The response header version for `version`: 1 for flexible versions, else 0. ApiVersions
    /// responses always use v0 so that a client that sent a too-new version can still parse the
    /// UNSUPPORTED_VERSION answer (KIP-511).
    pub fn response_header_version(self, version: i16) -> i16 {
        if self == ApiKey::ApiVersions || !self.is_flexible(version) {
            0
        } else {
            1
        }
    }

    /// The versions a broker should advertise in ApiVersions: the valid versions without a latest
    /// version marked `latestVersionUnstable` (Kafka only exposes those with
    /// `unstable.api.versions.enable`). `None` when the only version is unstable.
    pub fn stable_versions(self) -> Option<(i16, i16)> {
        let (lo, hi) = self.valid_versions();
        let hi = if self.latest_version_unstable() {
            hi - 1
        } else {
            hi
        };
        (lo <= hi).then_some((lo, hi))
    }

    /// Whether `version` uses the flexible (compact, tagged-field) encoding of KIP-482.
    pub fn is_flexible(self, version: i16) -> bool {
        self.flexible_versions_start().is_some_and(|f| version >= f)
    }
}

/// The first fields of every request header, readable without knowing the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderPrefix {
    /// The raw API key.
    pub api_key: i16,
    /// The API version.
    pub api_version: i16,
    /// The correlation id.
    pub correlation_id: i32,
}

/// Reads API key, version and correlation id from the front of a request frame body without
/// consuming it.
pub fn peek_header_prefix(frame: &[u8]) -> Result<HeaderPrefix, DecodeError> {
    let b = frame.get(..8).ok_or(DecodeError::NotEnoughBytes {
        needed: 8,
        remaining: frame.len(),
    })?;
    Ok(HeaderPrefix {
        api_key: i16::from_be_bytes([b[0], b[1]]),
        api_version: i16::from_be_bytes([b[2], b[3]]),
        correlation_id: i32::from_be_bytes([b[4], b[5], b[6], b[7]]),
    })
}

/// Decodes a request frame body (without the 4-byte length prefix): the header at the version
/// implied by (api key, version), then the body.
///
/// Unknown API keys and versions outside the key's valid versions are reported as
/// [`DecodeError::UnknownApiKey`] / [`DecodeError::UnsupportedVersion`], which carry the
/// correlation id so that the caller can still answer (Kafka answers an unsupported ApiVersions
/// version with an ApiVersions v0 response carrying UNSUPPORTED_VERSION).
/// `records` fields in the result are zero-copy slices of `frame`. Bytes after the body are not
/// rejected, so a client that appends data newer versions might define is still understood.
pub fn decode_request(mut frame: Bytes) -> Result<(RequestHeader, Request), DecodeError> {
    let p = peek_header_prefix(&frame)?;
    let key = ApiKey::from_i16(p.api_key).ok_or(DecodeError::UnknownApiKey {
        api_key: p.api_key,
        api_version: p.api_version,
        correlation_id: p.correlation_id,
    })?;
    let (lo, hi) = key.valid_versions();
    if p.api_version < lo || p.api_version > hi {
        return Err(DecodeError::UnsupportedVersion {
            api_key: key,
            api_version: p.api_version,
            correlation_id: p.correlation_id,
        });
    }
    let header = RequestHeader::read(&mut frame, key.request_header_version(p.api_version))?;
    let body = Request::decode(key, &mut frame, p.api_version)?;
    Ok((header, body))
}

fn patch_len(buf: &mut BytesMut, start: usize) -> Result<(), EncodeError> {
    let len = buf.len() - start - 4;
    let l = i32::try_from(len).map_err(|_| EncodeError::TooLong {
        field: "frame",
        len,
    })?;
    if let Some(slot) = buf.get_mut(start..start + 4) {
        slot.copy_from_slice(&l.to_be_bytes());
    }
    Ok(())
}

/// Appends a complete request frame (length prefix, header, body) to `buf`. The header version
/// is derived from the header's API key and version.
pub fn encode_request_frame<M: Encode + ?Sized>(
    buf: &mut BytesMut,
    header: &RequestHeader,
    body: &M,
) -> Result<(), EncodeError> {
    let key = ApiKey::from_i16(header.request_api_key).ok_or(EncodeError::UnsupportedVersion {
        message: "RequestHeader",
        version: header.request_api_version,
    })?;
    let start = buf.len();
    buf.put_i32(0);
    header.write(buf, key.request_header_version(header.request_api_version))?;
    body.encode(buf, header.request_api_version)?;
    patch_len(buf, start)
}

/// Appends a complete response frame (length prefix, response header of the right version,
/// body) to `buf`.
pub fn encode_response_frame<M: Encode + ?Sized>(
    buf: &mut BytesMut,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &M,
) -> Result<(), EncodeError> {
    let start = buf.len();
    buf.put_i32(0);
    let header = ResponseHeader {
        correlation_id,
        ..Default::default()
    };
    header.write(buf, api_key.response_header_version(version))?;
    body.encode(buf, version)?;
    patch_len(buf, start)
}

/// The size of the response header for (api key, version), for callers that frame responses by
/// hand (e.g. a Fetch response whose record bytes are sent with `sendfile`).
pub fn response_header_size(api_key: ApiKey, version: i16) -> usize {
    let mut c = SizeCounter::default();
    codec::put_i32(&mut c, 0);
    if api_key.response_header_version(version) >= 1 {
        codec::put_uvarint(&mut c, 0);
    }
    c.0
}

/// Encodes a complete response frame (length prefix, header, body) as chunks for a vectored
/// write, sharing `records` fields of at least `min_shared_records` bytes instead of copying
/// them (see [`ChunkedSink`]). The Fetch path uses this so that encoding cost does not depend on
/// how many record bytes are returned.
pub fn encode_response_chunks<M: WriteBody + ?Sized>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &M,
    min_shared_records: usize,
) -> Result<Vec<Bytes>, EncodeError> {
    let header = ResponseHeader {
        correlation_id,
        ..Default::default()
    };
    let hv = api_key.response_header_version(version);
    let mut size = SizeCounter::default();
    header.write(&mut size, hv)?;
    body.write_body(&mut size, version)?;
    let len = i32::try_from(size.0).map_err(|_| EncodeError::TooLong {
        field: "frame",
        len: size.0,
    })?;
    let mut sink = ChunkedSink::new(min_shared_records);
    codec::put_i32(&mut sink, len);
    header.write(&mut sink, hv)?;
    body.write_body(&mut sink, version)?;
    Ok(sink.finish())
}
