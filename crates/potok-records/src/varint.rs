//! Kafka's variable-length integers (protobuf style, zigzag-encoded for signed values), as used
//! inside v2 records (`ByteUtils.readVarint` / `readVarlong` in Kafka).
//!
//! A varint is at most 5 bytes and a varlong at most 10; longer encodings are rejected, as Kafka
//! does, so a hostile run of continuation bytes cannot make a reader loop.

use bytes::Bytes;

use crate::{RecordsError, Result};

/// Zigzag-encoded length of `v` as a varint, in bytes.
pub(crate) fn varint_len(v: i32) -> usize {
    varlong_len(i64::from(v))
}

/// Zigzag-encoded length of `v` as a varlong, in bytes.
pub(crate) fn varlong_len(v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

/// Appends `v` zigzag-encoded as a varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_varlong(out, i64::from(v));
}

/// Appends `v` zigzag-encoded as a varlong.
pub(crate) fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// A cursor over `Bytes` that hands out zero-copy sub-slices. Every read checks the bytes that
/// remain first and reports a shortage as [`RecordsError::Corrupt`].
#[derive(Clone, Debug)]
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Reader {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    fn read_u8(&mut self, what: &str) -> Result<u8> {
        let b = self
            .buf
            .get(self.pos)
            .copied()
            .ok_or_else(|| corrupt(format!("record ends inside {what}")))?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn read_i8(&mut self, what: &str) -> Result<i8> {
        Ok(self.read_u8(what)? as i8)
    }

    /// Reads a zigzag varint. Like Kafka, the 5th byte's bits above bit 31 are discarded.
    pub(crate) fn read_varint(&mut self, what: &str) -> Result<i32> {
        read_varint_at(&self.buf, &mut self.pos, what)
    }

    /// Reads a zigzag varlong (at most 10 bytes).
    pub(crate) fn read_varlong(&mut self, what: &str) -> Result<i64> {
        read_varlong_at(&self.buf, &mut self.pos, what)
    }

    /// Takes the next `len` bytes without copying.
    pub(crate) fn take(&mut self, len: usize, what: &str) -> Result<Bytes> {
        if len > self.remaining() {
            return Err(corrupt(format!(
                "{what} of {len} bytes exceeds the {} bytes remaining",
                self.remaining()
            )));
        }
        let out = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(out)
    }

    /// Reads a varint length followed by that many bytes; `-1` means null. Any other negative
    /// length is corrupt.
    pub(crate) fn read_nullable_bytes(&mut self, what: &str) -> Result<Option<Bytes>> {
        let len = self.read_varint(what)?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len)
            .map_err(|_| corrupt(format!("{what} has negative length {len}")))?;
        self.take(len, what).map(Some)
    }
}

/// Decodes an unsigned base-128 integer of at most `max_bytes` bytes at `*pos`, advancing it.
fn read_unsigned_at(buf: &[u8], pos: &mut usize, max_bytes: u32, what: &str) -> Result<u64> {
    let mut value: u64 = 0;
    let mut shift = 0u32;
    for _ in 0..max_bytes {
        let b = *buf
            .get(*pos)
            .ok_or_else(|| corrupt(format!("record ends inside {what}")))?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
    }
    Err(corrupt(format!("{what}: variable-length integer too long")))
}

fn read_varint_at(buf: &[u8], pos: &mut usize, what: &str) -> Result<i32> {
    let raw = read_unsigned_at(buf, pos, 5, what)? as u32;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

fn read_varlong_at(buf: &[u8], pos: &mut usize, what: &str) -> Result<i64> {
    let raw = read_unsigned_at(buf, pos, 10, what)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// A cursor over a borrowed slice for scans that only look at fields and skip the rest, so
/// that walking a batch's records allocates nothing and touches no reference counts (the
/// leader's per-record validation on the produce path). Same checks as [`Reader`].
#[derive(Debug)]
pub(crate) struct SliceReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> SliceReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> SliceReader<'a> {
        SliceReader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn read_i8(&mut self, what: &str) -> Result<i8> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| corrupt(format!("record ends inside {what}")))?;
        self.pos += 1;
        Ok(b as i8)
    }

    pub(crate) fn read_varint(&mut self, what: &str) -> Result<i32> {
        read_varint_at(self.buf, &mut self.pos, what)
    }

    pub(crate) fn read_varlong(&mut self, what: &str) -> Result<i64> {
        read_varlong_at(self.buf, &mut self.pos, what)
    }

    /// Takes the next `len` bytes as a sub-slice.
    pub(crate) fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8]> {
        if len > self.remaining() {
            return Err(corrupt(format!(
                "{what} of {len} bytes exceeds the {} bytes remaining",
                self.remaining()
            )));
        }
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    /// Skips a varint length and that many bytes; returns false for a null field (`-1`).
    /// Any other negative length is corrupt.
    pub(crate) fn skip_nullable_bytes(&mut self, what: &str) -> Result<bool> {
        let len = self.read_varint(what)?;
        if len == -1 {
            return Ok(false);
        }
        let len = usize::try_from(len)
            .map_err(|_| corrupt(format!("{what} has negative length {len}")))?;
        self.take(len, what)?;
        Ok(true)
    }
}

pub(crate) fn corrupt(msg: String) -> RecordsError {
    RecordsError::Corrupt(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip_long(v: i64) {
        let mut out = Vec::new();
        put_varlong(&mut out, v);
        assert_eq!(out.len(), varlong_len(v));
        let mut r = Reader::new(Bytes::from(out));
        assert_eq!(r.read_varlong("t").unwrap(), v);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn zigzag_vectors_match_kafka() {
        // Values from the protobuf/Kafka zigzag definition.
        let cases: &[(i32, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-2, &[0x03]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (300, &[0xd8, 0x04]),
            (i32::MAX, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for (v, enc) in cases {
            let mut out = Vec::new();
            put_varint(&mut out, *v);
            assert_eq!(&out[..], *enc, "encoding {v}");
            assert_eq!(varint_len(*v), enc.len());
            let mut r = Reader::new(Bytes::copy_from_slice(enc));
            assert_eq!(r.read_varint("t").unwrap(), *v);
        }
        for v in [0, 1, -1, i64::MAX, i64::MIN, 1 << 40, -(1 << 50)] {
            roundtrip_long(v);
        }
    }

    #[test]
    fn overlong_and_short_varints_rejected() {
        let mut r = Reader::new(Bytes::from_static(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]));
        assert!(r.read_varint("t").is_err());
        let mut r = Reader::new(Bytes::from_static(&[0xff; 11]));
        assert!(r.read_varlong("t").is_err());
        let mut r = Reader::new(Bytes::from_static(&[0x80]));
        assert!(r.read_varint("t").is_err());
    }

    #[test]
    fn nullable_bytes_checked_against_remaining() {
        let mut r = Reader::new(Bytes::from_static(&[0x01]));
        assert_eq!(r.read_nullable_bytes("k").unwrap(), None);
        let mut r = Reader::new(Bytes::from_static(&[0x06, b'a', b'b']));
        assert!(r.read_nullable_bytes("k").is_err());
        let mut r = Reader::new(Bytes::from_static(&[0x03]));
        assert!(r.read_nullable_bytes("k").is_err(), "length -2 is corrupt");
        let mut r = Reader::new(Bytes::from_static(&[0x04, b'a', b'b']));
        assert_eq!(&r.read_nullable_bytes("k").unwrap().unwrap()[..], b"ab");
    }
}
