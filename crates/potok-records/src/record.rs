//! Records inside a v2 batch and the iterator over them.
//!
//! Each record is (Kafka `DefaultRecord`):
//!
//! ```text
//! length          varint   bytes that follow in this record
//! attributes      int8     unused, 0
//! timestampDelta  varlong  timestamp - batch baseTimestamp
//! offsetDelta     varint   offset - batch baseOffset
//! keyLength       varint   -1 for a null key
//! key             bytes
//! valueLength     varint   -1 for a null value
//! value           bytes
//! headersCount    varint
//! headers         [headerKeyLength varint, headerKey bytes (UTF-8, never null),
//!                  headerValueLength varint (-1 null), headerValue bytes]
//! ```
//!
//! All varints are zigzag-encoded. Keys, values and header fields are zero-copy slices of the
//! batch (or of the one decompressed buffer for a compressed batch).

use bytes::Bytes;

use crate::varint::{corrupt, put_varint, put_varlong, varint_len, varlong_len, Reader};
use crate::{BatchHeader, Offset, Result, TimestampType};

/// One record header. Kafka keys are UTF-8 strings; they are kept as bytes here (use
/// [`Header::key_str`]) so that iteration never fails or copies because of text decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Header key (never null).
    pub key: Bytes,
    /// Header value, `None` when null.
    pub value: Option<Bytes>,
}

impl Header {
    /// The key as text, if it is valid UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.key).ok()
    }
}

/// One decoded record. Offsets and timestamps are deltas against the batch header; use
/// [`Record::offset`] and [`Record::timestamp`] for absolute values.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Record {
    /// Record attributes byte (unused by Kafka so far, kept for fidelity).
    pub attributes: i8,
    /// Timestamp minus the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Offset minus the batch's base offset.
    pub offset_delta: i32,
    /// Key, `None` when null.
    pub key: Option<Bytes>,
    /// Value, `None` when null (a tombstone for compacted topics).
    pub value: Option<Bytes>,
    /// Headers in wire order (duplicates allowed, as in Kafka).
    pub headers: Vec<Header>,
}

fn nullable_len(b: &Option<Bytes>) -> usize {
    match b {
        None => varint_len(-1),
        Some(b) => varint_len(b.len() as i32) + b.len(),
    }
}

fn put_nullable(out: &mut Vec<u8>, b: &Option<Bytes>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

impl Record {
    /// Absolute offset of this record in a batch with `header` (saturating on hostile input).
    pub fn offset(&self, header: &BatchHeader) -> Offset {
        Offset(header.base_offset).saturating_add(i64::from(self.offset_delta))
    }

    /// Absolute timestamp: the batch's max timestamp for `LogAppendTime` batches (the broker
    /// stamps only the header, as Kafka does), else base timestamp plus delta.
    pub fn timestamp(&self, header: &BatchHeader) -> i64 {
        match header.timestamp_type() {
            TimestampType::LogAppendTime => header.max_timestamp,
            TimestampType::CreateTime => header.base_timestamp.wrapping_add(self.timestamp_delta),
        }
    }

    /// Size of the record body (everything after the leading length varint). Callers that
    /// encode must have checked every length fits in an `i32`; see the builder.
    pub(crate) fn body_len(&self) -> usize {
        1 + varlong_len(self.timestamp_delta)
            + varint_len(self.offset_delta)
            + nullable_len(&self.key)
            + nullable_len(&self.value)
            + varint_len(self.headers.len() as i32)
            + self
                .headers
                .iter()
                .map(|h| varint_len(h.key.len() as i32) + h.key.len() + nullable_len(&h.value))
                .sum::<usize>()
    }

    /// Appends the encoded record (length prefix included).
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_varint(out, self.body_len() as i32);
        out.push(self.attributes as u8);
        put_varlong(out, self.timestamp_delta);
        put_varint(out, self.offset_delta);
        put_nullable(out, &self.key);
        put_nullable(out, &self.value);
        put_varint(out, self.headers.len() as i32);
        for h in &self.headers {
            put_varint(out, h.key.len() as i32);
            out.extend_from_slice(&h.key);
            put_nullable(out, &h.value);
        }
    }

    fn read(reader: &mut Reader) -> Result<Record> {
        let len = reader.read_varint("record length")?;
        let len =
            usize::try_from(len).map_err(|_| corrupt(format!("negative record length {len}")))?;
        let mut r = Reader::new(reader.take(len, "record")?);
        let attributes = r.read_i8("record attributes")?;
        let timestamp_delta = r.read_varlong("timestamp delta")?;
        let offset_delta = r.read_varint("offset delta")?;
        let key = r.read_nullable_bytes("record key")?;
        let value = r.read_nullable_bytes("record value")?;
        let count = r.read_varint("header count")?;
        let count = usize::try_from(count)
            .map_err(|_| corrupt(format!("negative header count {count}")))?;
        // Each header takes at least two bytes (two one-byte varints), so the remaining bytes
        // bound the count; this keeps a hostile count from reserving memory.
        if count > r.remaining() / 2 {
            return Err(corrupt(format!(
                "header count {count} cannot fit in the {} bytes remaining",
                r.remaining()
            )));
        }
        let mut headers = Vec::with_capacity(count);
        for _ in 0..count {
            let key_len = r.read_varint("header key length")?;
            let key_len = usize::try_from(key_len)
                .map_err(|_| corrupt(format!("negative header key length {key_len}")))?;
            let key = r.take(key_len, "header key")?;
            let value = r.read_nullable_bytes("header value")?;
            headers.push(Header { key, value });
        }
        if r.remaining() != 0 {
            return Err(corrupt(format!(
                "record declares {len} bytes but its fields use {}",
                r.position()
            )));
        }
        Ok(Record {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers,
        })
    }
}

/// Iterator over the records of one batch, from [`crate::RecordBatch::records`].
///
/// It yields exactly `recordsCount` records and then checks that no bytes are left over
/// (Kafka: "Incorrect declared batch size"). After the first error it yields nothing more.
#[derive(Clone, Debug)]
pub struct Records {
    reader: Reader,
    remaining_records: u32,
    done: bool,
}

impl Records {
    pub(crate) fn new(payload: Bytes, records_count: i32) -> Result<Records> {
        let remaining_records = u32::try_from(records_count)
            .map_err(|_| corrupt(format!("negative record count {records_count}")))?;
        Ok(Records {
            reader: Reader::new(payload),
            remaining_records,
            done: false,
        })
    }

    /// Records still to be yielded according to the header's count.
    pub fn remaining(&self) -> u32 {
        self.remaining_records
    }
}

impl Iterator for Records {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        if self.done {
            return None;
        }
        if self.remaining_records == 0 {
            self.done = true;
            if self.reader.remaining() != 0 {
                return Some(Err(corrupt(format!(
                    "{} bytes remain after the declared number of records",
                    self.reader.remaining()
                ))));
            }
            return None;
        }
        match Record::read(&mut self.reader) {
            Ok(r) => {
                self.remaining_records -= 1;
                Some(Ok(r))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining_records as usize + 1))
    }
}

impl std::iter::FusedIterator for Records {}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Record {
        Record {
            attributes: 0,
            timestamp_delta: 5,
            offset_delta: 1,
            key: Some(Bytes::from_static(b"k")),
            value: None,
            headers: vec![
                Header {
                    key: Bytes::from_static(b"h"),
                    value: Some(Bytes::from_static(b"v")),
                },
                Header {
                    key: Bytes::from_static(b"h"),
                    value: None,
                },
            ],
        }
    }

    #[test]
    fn record_encoding_matches_hand_layout() {
        let mut out = Vec::new();
        rec().write(&mut out);
        // length 14 -> 0x1c, attrs 0, tsDelta 5 -> 0x0a, offDelta 1 -> 0x02,
        // key len 1 -> 0x02 'k', value null -> 0x01, 2 headers -> 0x04,
        // "h" len 0x02 'h', value len 0x02 'v', "h" 0x02 'h', null 0x01.
        let expected = [
            0x1c, 0x00, 0x0a, 0x02, 0x02, b'k', 0x01, 0x04, 0x02, b'h', 0x02, b'v', 0x02, b'h',
            0x01,
        ];
        assert_eq!(&out[..], &expected[..]);
        let mut it = Records::new(Bytes::from(out), 1).unwrap();
        assert_eq!(it.next().unwrap().unwrap(), rec());
        assert!(it.next().is_none());
    }

    #[test]
    fn leftover_bytes_and_missing_records_are_errors() {
        let mut out = Vec::new();
        rec().write(&mut out);
        out.push(0);
        let mut it = Records::new(Bytes::from(out.clone()), 1).unwrap();
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
        out.pop();
        let mut it = Records::new(Bytes::from(out), 2).unwrap();
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().unwrap().is_err());
    }

    #[test]
    fn hostile_header_count_does_not_allocate() {
        // A record whose header count claims i32::MAX with no bytes behind it.
        let mut body = vec![0u8, 0, 0, 1, 1];
        put_varint(&mut body, i32::MAX);
        let mut out = Vec::new();
        put_varint(&mut out, body.len() as i32);
        out.extend(body);
        let mut it = Records::new(Bytes::from(out), 1).unwrap();
        assert!(it.next().unwrap().is_err());
    }

    #[test]
    fn record_length_must_match_fields() {
        let mut out = Vec::new();
        rec().write(&mut out);
        out[0] = 0x1e; // claim 15 bytes, one more than the fields use
        out.push(0);
        let mut it = Records::new(Bytes::from(out), 1).unwrap();
        assert!(it.next().unwrap().is_err());
    }
}
