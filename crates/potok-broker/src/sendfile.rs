//! Zero-copy Fetch responses: record bytes go from segment files to the socket with
//! `sendfile(2)`, never through user space.
//!
//! The Fetch handler builds an ordinary `FetchResponse` whose `records` fields are
//! *placeholders*: `Bytes` slices of a static all-zero region with the length of the file
//! range they stand for. The generated encoder then writes every length prefix correctly;
//! [`FetchSink`] (a `potok_protocol::Sink`) recognises the placeholders by address when the
//! encoder hands them over and records "send file range N here" instead of copying. The
//! static region is in `.bss` and never read, so it costs address space but no memory.

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;

use bytes::{Bytes, BytesMut};
use potok_log::ReadSlice;
use potok_protocol::{Sink, Wire};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;

/// The largest file range one placeholder can stand for. Larger ranges (a single batch above
/// 64 MiB) are copied into memory instead.
pub const MAX_PLACEHOLDER: usize = 64 << 20;

/// The bytes placeholders point into. Only their addresses matter, so they are allocated once,
/// zeroed by the allocator (fresh anonymous pages that cost no memory until touched), rather
/// than a `static` array, which put 64 MiB of zeros into the binary's read-only data.
static ZEROS: std::sync::LazyLock<&'static [u8]> =
    std::sync::LazyLock::new(|| Vec::leak(vec![0u8; MAX_PLACEHOLDER]));

/// A placeholder `records` value of `len` bytes, or `None` when `len` is too large.
pub fn placeholder(len: usize) -> Option<Bytes> {
    (len <= MAX_PLACEHOLDER).then(|| Bytes::from_static(&ZEROS[..len]))
}

fn is_placeholder(b: &Bytes) -> bool {
    let start = ZEROS.as_ptr() as usize;
    let p = b.as_ptr() as usize;
    !b.is_empty() && p >= start && p < start + MAX_PLACEHOLDER
}

/// One piece of an outgoing frame.
#[derive(Debug)]
pub enum Part {
    /// Bytes in memory.
    Mem(Bytes),
    /// A range of a segment file.
    File(ReadSlice),
}

/// A [`Sink`] that collects a response as memory chunks and file ranges.
#[derive(Debug)]
pub struct FetchSink {
    parts: Vec<Part>,
    current: BytesMut,
    slices: VecDeque<ReadSlice>,
    missing: bool,
}

impl FetchSink {
    /// A sink that substitutes `slices`, in order, for placeholders.
    pub fn new(slices: Vec<ReadSlice>) -> FetchSink {
        FetchSink {
            parts: Vec::new(),
            current: BytesMut::with_capacity(1024),
            slices: slices.into(),
            missing: false,
        }
    }

    fn flush_current(&mut self) {
        if !self.current.is_empty() {
            self.parts.push(Part::Mem(self.current.split().freeze()));
        }
    }

    /// The parts, or an error when the placeholders and slices did not match up (a bug).
    pub fn finish(mut self) -> io::Result<Vec<Part>> {
        self.flush_current();
        if self.missing || !self.slices.is_empty() {
            return Err(io::Error::other(
                "fetch response placeholders and file slices do not match",
            ));
        }
        Ok(self.parts)
    }
}

impl Sink for FetchSink {
    fn put(&mut self, bytes: &[u8]) {
        self.current.extend_from_slice(bytes);
    }

    fn put_records(&mut self, records: &Bytes) {
        if is_placeholder(records) {
            self.flush_current();
            match self.slices.pop_front() {
                Some(s) if s.len == records.len() => self.parts.push(Part::File(s)),
                _ => self.missing = true,
            }
        } else if records.len() >= 16 * 1024 {
            self.flush_current();
            self.parts.push(Part::Mem(records.clone()));
        } else {
            self.put(records);
        }
    }
}

/// Encodes a complete Fetch response frame (length, header, body) into parts.
pub fn encode_fetch(
    body: &potok_protocol::messages::FetchResponse,
    slices: Vec<ReadSlice>,
    version: i16,
    correlation_id: i32,
) -> io::Result<Vec<Part>> {
    use potok_protocol::messages::ResponseHeader;
    use potok_protocol::{ApiKey, Encode};
    let enc = |e: potok_protocol::EncodeError| io::Error::other(e.to_string());
    let header = ResponseHeader {
        correlation_id,
        ..Default::default()
    };
    let hv = ApiKey::Fetch.response_header_version(version);
    let size = header.encoded_size(hv).map_err(enc)? + body.encoded_size(version).map_err(enc)?;
    let size = i32::try_from(size).map_err(|_| io::Error::other("fetch response over 2 GiB"))?;
    let mut sink = FetchSink::new(slices);
    sink.put(&size.to_be_bytes());
    header.write(&mut sink, hv).map_err(enc)?;
    body.write(&mut sink, version).map_err(enc)?;
    sink.finish()
}

/// Writes parts to the socket: memory with ordinary writes, file ranges with `sendfile`.
/// A file range that has become shorter (the log was truncated under it) is an error: the
/// frame length is already on the wire, so the connection must be closed.
pub async fn write_parts(w: &mut OwnedWriteHalf, parts: Vec<Part>) -> io::Result<u64> {
    let mut file_bytes = 0u64;
    for part in parts {
        match part {
            Part::Mem(b) => w.write_all(&b).await?,
            Part::File(s) => {
                sendfile_all(w, &s).await?;
                file_bytes += s.len as u64;
            }
        }
    }
    Ok(file_bytes)
}

async fn sendfile_all(w: &mut OwnedWriteHalf, s: &ReadSlice) -> io::Result<()> {
    let stream = w.as_ref();
    let sock = stream.as_raw_fd();
    let file = s.file.as_raw_fd();
    let mut offset = libc::off_t::try_from(s.position)
        .map_err(|_| io::Error::other("file position out of range"))?;
    let mut left = s.len;
    while left > 0 {
        stream.writable().await?;
        let r = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the duration of the call (the socket is
            // borrowed from `w`, the file is kept alive by `s.file`), and `offset` is a valid
            // pointer to an off_t that sendfile updates.
            let n = unsafe { libc::sendfile(sock, file, &mut offset, left) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match r {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment file ended before the fetched range",
                ))
            }
            Ok(n) => left -= n.min(left),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use potok_log::{Log, LogConfig, RealStorage};
    use potok_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use potok_protocol::messages::FetchResponse;
    use potok_protocol::{encode_response_frame, ApiKey};
    use potok_records::RecordBatchBuilder;
    use std::sync::Arc;

    /// The sendfile encoding, with file parts materialised, is byte-identical to the ordinary
    /// encoding of the same response with the records in memory, at flexible and
    /// non-flexible versions.
    #[test]
    fn parts_equal_the_ordinary_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let mut log =
            Log::open(dir.path(), LogConfig::default(), Arc::new(RealStorage), 0).unwrap();
        for i in 0..5u8 {
            let b = RecordBatchBuilder::new()
                .key_value(1, Some(&[i]), Some(&vec![i; 100 * usize::from(i)]))
                .build()
                .unwrap();
            log.append(b.into_bytes(), 0).unwrap();
        }
        let s1 = log.read(potok_records::Offset(0), 300, None).unwrap();
        let s2 = log.read(potok_records::Offset(3), 1 << 20, None).unwrap();
        assert!(!s1.is_empty() && !s2.is_empty());
        let body = |r1: Bytes, r2: Bytes| FetchResponse {
            responses: vec![FetchableTopicResponse {
                topic: "t".into(),
                partitions: vec![
                    PartitionData {
                        partition_index: 0,
                        records: Some(r1),
                        ..Default::default()
                    },
                    PartitionData {
                        partition_index: 1,
                        records: Some(Bytes::new()),
                        ..Default::default()
                    },
                    PartitionData {
                        partition_index: 2,
                        records: Some(r2),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        for version in [4i16, 11, 12, 16] {
            let with_placeholders =
                body(placeholder(s1.len).unwrap(), placeholder(s2.len).unwrap());
            let parts = encode_fetch(
                &with_placeholders,
                vec![s1.clone(), s2.clone()],
                version,
                77,
            )
            .unwrap();
            let mut got = Vec::new();
            let mut files = 0;
            for p in parts {
                match p {
                    Part::Mem(b) => got.extend_from_slice(&b),
                    Part::File(s) => {
                        files += 1;
                        got.extend_from_slice(&s.read_bytes().unwrap());
                    }
                }
            }
            assert_eq!(files, 2);
            let mut want = BytesMut::new();
            let real = body(s1.read_bytes().unwrap(), s2.read_bytes().unwrap());
            encode_response_frame(&mut want, ApiKey::Fetch, version, 77, &real).unwrap();
            assert_eq!(got, want.to_vec(), "version {version}");
        }
        // Mismatched slices are an error, never a wrong frame.
        let b = body(placeholder(s1.len).unwrap(), placeholder(s2.len).unwrap());
        assert!(encode_fetch(&b, vec![s1.clone()], 12, 1).is_err());
        assert!(encode_fetch(&b, vec![s2.clone(), s1.clone()], 12, 1).is_err());
    }
}
