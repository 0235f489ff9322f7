//! Primitive encodings of the Kafka protocol and the traits the generated code implements.
//!
//! Every reader here checks the remaining input before it reads or allocates: fixed-size values
//! check `remaining() >= size`, strings and bytes check their length against the remaining input,
//! and array counts are checked against `remaining() / min_element_size` before a `Vec` is
//! allocated, so a hostile count (e.g. `i32::MAX` in a 5-byte body) is rejected with a typed
//! [`DecodeError`] instead of aborting the process on a huge allocation. Byte strings and
//! `records` are zero-copy slices (`Bytes::split_to`) of the input frame.
//!
//! Encodings (see the Kafka protocol guide and KIP-482 for the flexible/"compact" forms):
//! - `STRING`: int16 length + UTF-8, `-1` for null; compact: unsigned varint `length + 1`, `0` null.
//! - `BYTES`/`records`: int32 length + bytes, `-1` null; compact: unsigned varint `length + 1`.
//! - `ARRAY`: int32 count, `-1` null; compact: unsigned varint `count + 1`, `0` null.
//! - nullable struct: int8 marker, `-1` for null, `1` followed by the struct otherwise.
//! - tagged fields (flexible versions only): unsigned varint count, then per field an unsigned
//!   varint tag, an unsigned varint size and `size` bytes of the field in its compact encoding.

use crate::error::{DecodeError, EncodeError};
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A Kafka `uuid`: 16 raw bytes, big-endian as on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// The all-zero UUID Kafka uses as "no topic id".
    pub const ZERO: Uuid = Uuid([0; 16]);
}

impl std::fmt::Debug for Uuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for Uuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A tagged field this version of Potok does not know: its tag and its raw (undecoded) bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTaggedField {
    /// The field's tag number.
    pub tag: u32,
    /// The field's bytes exactly as they were on the wire (without tag and size prefix).
    pub data: Bytes,
}

/// Destination of encoded bytes: a `BytesMut` for real encoding, or [`SizeCounter`] to compute
/// `encoded_size` with exactly the same code path as `encode`.
pub trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
    /// Appends the bytes of a `records` field. Sinks that can reference shared buffers (see
    /// [`ChunkedSink`]) keep a handle instead of copying.
    fn put_records(&mut self, records: &Bytes) {
        self.put(records);
    }
}

impl Sink for BytesMut {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.put_slice(bytes);
    }
}

/// A [`Sink`] that only counts bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct SizeCounter(pub usize);

impl Sink for SizeCounter {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.0 = self.0.saturating_add(bytes.len());
    }
}

/// A [`Sink`] that produces a list of chunks for vectored writes: everything is copied into the
/// current chunk except `records` fields of at least `min_shared` bytes, which are appended as
/// their own chunk by reference (a `Bytes` clone, no copy). A Fetch response whose records are
/// slices of a log segment (e.g. an mmapped `Bytes`) is thus encoded without touching the record
/// bytes; only the headers are written.
#[derive(Debug)]
pub struct ChunkedSink {
    chunks: Vec<Bytes>,
    current: BytesMut,
    min_shared: usize,
    len: usize,
}

impl ChunkedSink {
    /// A sink that shares `records` fields of at least `min_shared` bytes.
    pub fn new(min_shared: usize) -> ChunkedSink {
        ChunkedSink {
            chunks: Vec::new(),
            current: BytesMut::new(),
            min_shared,
            len: 0,
        }
    }

    /// Total bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunks, in order; their concatenation is the encoding.
    pub fn finish(mut self) -> Vec<Bytes> {
        if !self.current.is_empty() {
            self.chunks.push(self.current.freeze());
        }
        self.chunks
    }
}

impl Sink for ChunkedSink {
    fn put(&mut self, bytes: &[u8]) {
        self.current.extend_from_slice(bytes);
        self.len += bytes.len();
    }
    fn put_records(&mut self, records: &Bytes) {
        if records.len() >= self.min_shared {
            if !self.current.is_empty() {
                self.chunks.push(self.current.split().freeze());
            }
            self.chunks.push(records.clone());
            self.len += records.len();
        } else {
            self.put(records);
        }
    }
}

/// The low-level interface implemented by every generated struct. Users normally call
/// [`Encode`]/[`Decode`], which are implemented for every `Wire` type.
pub trait Wire: Sized {
    /// Writes `self` as `version` into `s`.
    fn write<S: Sink>(&self, s: &mut S, version: i16) -> Result<(), EncodeError>;
    /// Reads a value of `version` from `buf`, advancing it.
    fn read(buf: &mut Bytes, version: i16) -> Result<Self, DecodeError>;
    /// The fewest bytes one encoded value of `version` can occupy; used to bound array counts
    /// against the remaining input before allocating.
    fn min_size(version: i16) -> usize;
}

/// Anything that can write a message body into a [`Sink`]: every generated struct (through
/// [`Wire`]) and the [`crate::Request`] / [`crate::Response`] enums.
pub trait WriteBody {
    /// Writes the body at `version` into `s`.
    fn write_body<S: Sink>(&self, s: &mut S, version: i16) -> Result<(), EncodeError>;
}

impl<T: Wire> WriteBody for T {
    fn write_body<S: Sink>(&self, s: &mut S, version: i16) -> Result<(), EncodeError> {
        self.write(s, version)
    }
}

/// Encoding of a message or struct at a given version.
pub trait Encode {
    /// Appends the encoding of `self` at `version` to `buf`.
    fn encode(&self, buf: &mut BytesMut, version: i16) -> Result<(), EncodeError>;
    /// The number of bytes [`Encode::encode`] appends for `version`.
    fn encoded_size(&self, version: i16) -> Result<usize, EncodeError>;
}

/// Decoding of a message or struct at a given version.
pub trait Decode: Sized {
    /// Decodes a value of `version` from the front of `buf`, advancing it. Byte fields and
    /// `records` are zero-copy slices of `buf`.
    fn decode(buf: &mut Bytes, version: i16) -> Result<Self, DecodeError>;
}

impl<T: Wire> Encode for T {
    fn encode(&self, buf: &mut BytesMut, version: i16) -> Result<(), EncodeError> {
        self.write(buf, version)
    }
    fn encoded_size(&self, version: i16) -> Result<usize, EncodeError> {
        let mut c = SizeCounter::default();
        self.write(&mut c, version)?;
        Ok(c.0)
    }
}

impl<T: Wire> Decode for T {
    fn decode(buf: &mut Bytes, version: i16) -> Result<Self, DecodeError> {
        T::read(buf, version)
    }
}

/// Static facts about a top-level message (request, response, header or data record).
pub trait Message {
    /// The message name, e.g. `"MetadataRequest"`.
    const NAME: &'static str;
    /// The inclusive range of valid versions.
    const VALID_VERSIONS: (i16, i16);
    /// The first flexible version, if any.
    const FLEXIBLE_VERSIONS_START: Option<i16>;
}

/// A request or response body of an API.
pub trait ApiMessage: Message {
    /// The API the message belongs to.
    const API_KEY: crate::ApiKey;
}

// ---------------------------------------------------------------------------------------------
// Version checks.

#[doc(hidden)]
pub fn check_version(
    version: i16,
    lo: i16,
    hi: i16,
    message: &'static str,
) -> Result<(), EncodeError> {
    if version < lo || version > hi {
        return Err(EncodeError::UnsupportedVersion { message, version });
    }
    Ok(())
}

#[doc(hidden)]
pub fn check_decode_version(
    version: i16,
    lo: i16,
    hi: i16,
    message: &'static str,
) -> Result<(), DecodeError> {
    if version < lo || version > hi {
        return Err(DecodeError::UnsupportedMessageVersion { message, version });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Writers.

macro_rules! put_num {
    ($name:ident, $t:ty) => {
        #[doc(hidden)]
        #[inline]
        pub fn $name<S: Sink>(s: &mut S, v: $t) {
            s.put(&v.to_be_bytes());
        }
    };
}
put_num!(put_i8, i8);
put_num!(put_i16, i16);
put_num!(put_i32, i32);
put_num!(put_i64, i64);
put_num!(put_u16, u16);
put_num!(put_u32, u32);
put_num!(put_f64, f64);

#[doc(hidden)]
#[inline]
pub fn put_bool<S: Sink>(s: &mut S, v: bool) {
    s.put(&[u8::from(v)]);
}

#[doc(hidden)]
#[inline]
pub fn put_uuid<S: Sink>(s: &mut S, v: Uuid) {
    s.put(&v.0);
}

/// Writes an unsigned varint (LEB128, as Kafka's `ByteUtils.writeUnsignedVarint`).
#[doc(hidden)]
#[inline]
pub fn put_uvarint<S: Sink>(s: &mut S, mut v: u32) {
    let mut tmp = [0u8; 5];
    let mut n = 0;
    while v >= 0x80 {
        tmp[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    tmp[n] = v as u8;
    s.put(&tmp[..=n]);
}

fn compact_len(len: usize, field: &'static str) -> Result<u32, EncodeError> {
    u32::try_from(len)
        .ok()
        .and_then(|l| l.checked_add(1))
        .ok_or(EncodeError::TooLong { field, len })
}

fn put_len16<S: Sink>(s: &mut S, len: usize, field: &'static str) -> Result<(), EncodeError> {
    let l = i16::try_from(len).map_err(|_| EncodeError::TooLong { field, len })?;
    put_i16(s, l);
    Ok(())
}

fn put_len32<S: Sink>(s: &mut S, len: usize, field: &'static str) -> Result<(), EncodeError> {
    let l = i32::try_from(len).map_err(|_| EncodeError::TooLong { field, len })?;
    put_i32(s, l);
    Ok(())
}

#[doc(hidden)]
pub fn put_str<S: Sink>(
    s: &mut S,
    v: &str,
    flex: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    if flex {
        put_uvarint(s, compact_len(v.len(), field)?);
    } else {
        put_len16(s, v.len(), field)?;
    }
    s.put(v.as_bytes());
    Ok(())
}

#[doc(hidden)]
pub fn put_ostr<S: Sink>(
    s: &mut S,
    v: Option<&str>,
    nullable: bool,
    flex: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    match v {
        Some(v) => put_str(s, v, flex, field),
        None if !nullable => Err(EncodeError::NullNotAllowed { field }),
        None if flex => {
            put_uvarint(s, 0);
            Ok(())
        }
        None => {
            put_i16(s, -1);
            Ok(())
        }
    }
}

#[doc(hidden)]
pub fn put_bytes<S: Sink>(
    s: &mut S,
    v: &[u8],
    flex: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    if flex {
        put_uvarint(s, compact_len(v.len(), field)?);
    } else {
        put_len32(s, v.len(), field)?;
    }
    s.put(v);
    Ok(())
}

#[doc(hidden)]
pub fn put_obytes<S: Sink>(
    s: &mut S,
    v: Option<&[u8]>,
    nullable: bool,
    flex: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    match v {
        Some(v) => put_bytes(s, v, flex, field),
        None if !nullable => Err(EncodeError::NullNotAllowed { field }),
        None if flex => {
            put_uvarint(s, 0);
            Ok(())
        }
        None => {
            put_i32(s, -1);
            Ok(())
        }
    }
}

/// Writes a `records` field (nullable bytes) through [`Sink::put_records`].
#[doc(hidden)]
pub fn put_orecords<S: Sink>(
    s: &mut S,
    v: Option<&Bytes>,
    nullable: bool,
    flex: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    match v {
        Some(v) => {
            if flex {
                put_uvarint(s, compact_len(v.len(), field)?);
            } else {
                put_len32(s, v.len(), field)?;
            }
            s.put_records(v);
            Ok(())
        }
        None => put_obytes(s, None, nullable, flex, field),
    }
}

#[doc(hidden)]
pub fn put_array_len<S: Sink>(
    s: &mut S,
    len: usize,
    flex: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    if flex {
        put_uvarint(s, compact_len(len, field)?);
        Ok(())
    } else {
        put_len32(s, len, field)
    }
}

#[doc(hidden)]
pub fn put_oarray_len<S: Sink>(
    s: &mut S,
    len: Option<usize>,
    nullable: bool,
    flex: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    match len {
        Some(len) => put_array_len(s, len, flex, field),
        None if !nullable => Err(EncodeError::NullNotAllowed { field }),
        None if flex => {
            put_uvarint(s, 0);
            Ok(())
        }
        None => {
            put_i32(s, -1);
            Ok(())
        }
    }
}

/// Writes the presence marker of a nullable struct (only in versions where it is nullable).
#[doc(hidden)]
pub fn put_struct_marker<S: Sink>(
    s: &mut S,
    present: bool,
    nullable: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    if nullable {
        put_i8(s, if present { 1 } else { -1 });
        Ok(())
    } else if present {
        Ok(())
    } else {
        Err(EncodeError::NullNotAllowed { field })
    }
}

#[doc(hidden)]
pub fn put_tag_count<S: Sink>(s: &mut S, count: usize) -> Result<(), EncodeError> {
    let c = u32::try_from(count).map_err(|_| EncodeError::TooLong {
        field: "tagged fields",
        len: count,
    })?;
    put_uvarint(s, c);
    Ok(())
}

#[doc(hidden)]
pub fn put_tag_size<S: Sink>(s: &mut S, size: usize) -> Result<(), EncodeError> {
    let c = u32::try_from(size).map_err(|_| EncodeError::TooLong {
        field: "tagged field",
        len: size,
    })?;
    put_uvarint(s, c);
    Ok(())
}

#[doc(hidden)]
pub fn put_raw_tag<S: Sink>(s: &mut S, f: &RawTaggedField) -> Result<(), EncodeError> {
    put_uvarint(s, f.tag);
    put_tag_size(s, f.data.len())?;
    s.put(&f.data);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Readers.

#[inline]
fn need(buf: &Bytes, n: usize) -> Result<(), DecodeError> {
    if buf.remaining() < n {
        return Err(DecodeError::NotEnoughBytes {
            needed: n,
            remaining: buf.remaining(),
        });
    }
    Ok(())
}

macro_rules! get_num {
    ($name:ident, $t:ty, $get:ident) => {
        #[doc(hidden)]
        #[inline]
        pub fn $name(buf: &mut Bytes) -> Result<$t, DecodeError> {
            need(buf, std::mem::size_of::<$t>())?;
            Ok(buf.$get())
        }
    };
}
get_num!(get_i8, i8, get_i8);
get_num!(get_i16, i16, get_i16);
get_num!(get_i32, i32, get_i32);
get_num!(get_i64, i64, get_i64);
get_num!(get_u16, u16, get_u16);
get_num!(get_u32, u32, get_u32);
get_num!(get_f64, f64, get_f64);

/// Reads a boolean; like Kafka's `readByte() != 0`, any non-zero byte is `true`.
#[doc(hidden)]
#[inline]
pub fn get_bool(buf: &mut Bytes) -> Result<bool, DecodeError> {
    Ok(get_i8(buf)? != 0)
}

#[doc(hidden)]
#[inline]
pub fn get_uuid(buf: &mut Bytes) -> Result<Uuid, DecodeError> {
    need(buf, 16)?;
    let mut u = [0u8; 16];
    buf.copy_to_slice(&mut u);
    Ok(Uuid(u))
}

/// Reads an unsigned varint of at most 5 bytes (a `u32`), as Kafka's `readUnsignedVarint`.
#[doc(hidden)]
pub fn get_uvarint(buf: &mut Bytes) -> Result<u32, DecodeError> {
    let mut v: u32 = 0;
    for i in 0..5 {
        let b = get_i8(buf)? as u8;
        let part = u32::from(b & 0x7f);
        if i == 4 && part > 0x0f {
            return Err(DecodeError::VarintTooLong);
        }
        v |= part << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(DecodeError::VarintTooLong)
}

/// Takes `len` bytes as a zero-copy slice after checking that they are there.
#[doc(hidden)]
#[inline]
pub fn take(buf: &mut Bytes, len: usize) -> Result<Bytes, DecodeError> {
    need(buf, len)?;
    Ok(buf.split_to(len))
}

/// Reads a length prefix: `Ok(None)` for null, an error for other negative values.
fn get_len(
    buf: &mut Bytes,
    flex: bool,
    wide: bool,
    field: &'static str,
) -> Result<Option<usize>, DecodeError> {
    let len: i64 = if flex {
        i64::from(get_uvarint(buf)?) - 1
    } else if wide {
        i64::from(get_i32(buf)?)
    } else {
        i64::from(get_i16(buf)?)
    };
    match len {
        -1 => Ok(None),
        l if l < 0 => Err(DecodeError::NegativeLength { field, len: l }),
        // On 64-bit targets every non-negative i32/u32 fits into usize.
        l => usize::try_from(l)
            .map(Some)
            .map_err(|_| DecodeError::NegativeLength { field, len: l }),
    }
}

fn utf8(b: Bytes, field: &'static str) -> Result<String, DecodeError> {
    String::from_utf8(b.to_vec()).map_err(|_| DecodeError::InvalidUtf8 { field })
}

#[doc(hidden)]
pub fn get_ostr(
    buf: &mut Bytes,
    nullable: bool,
    flex: bool,
    field: &'static str,
) -> Result<Option<String>, DecodeError> {
    match get_len(buf, flex, false, field)? {
        None if nullable => Ok(None),
        None => Err(DecodeError::NullNotAllowed { field }),
        Some(len) => Ok(Some(utf8(take(buf, len)?, field)?)),
    }
}

#[doc(hidden)]
pub fn get_str(buf: &mut Bytes, flex: bool, field: &'static str) -> Result<String, DecodeError> {
    get_ostr(buf, false, flex, field)?.ok_or(DecodeError::NullNotAllowed { field })
}

#[doc(hidden)]
pub fn get_obytes(
    buf: &mut Bytes,
    nullable: bool,
    flex: bool,
    field: &'static str,
) -> Result<Option<Bytes>, DecodeError> {
    match get_len(buf, flex, true, field)? {
        None if nullable => Ok(None),
        None => Err(DecodeError::NullNotAllowed { field }),
        Some(len) => Ok(Some(take(buf, len)?)),
    }
}

#[doc(hidden)]
pub fn get_bytes(buf: &mut Bytes, flex: bool, field: &'static str) -> Result<Bytes, DecodeError> {
    get_obytes(buf, false, flex, field)?.ok_or(DecodeError::NullNotAllowed { field })
}

/// The smallest encoding of a string, bytes or array length prefix.
#[doc(hidden)]
#[inline]
pub fn min_var_size(flex: bool) -> usize {
    if flex {
        1
    } else {
        2
    }
}

/// Reads an array count and checks, before anything is allocated, that the remaining input can
/// hold that many elements of at least `min_elem` bytes each.
#[doc(hidden)]
pub fn get_oarray_len(
    buf: &mut Bytes,
    nullable: bool,
    flex: bool,
    min_elem: usize,
    field: &'static str,
) -> Result<Option<usize>, DecodeError> {
    match get_len(buf, flex, true, field)? {
        None if nullable => Ok(None),
        None => Err(DecodeError::NullNotAllowed { field }),
        Some(n) => {
            let needed = n.saturating_mul(min_elem.max(1));
            if needed > buf.remaining() {
                return Err(DecodeError::CountTooLarge {
                    field,
                    count: n,
                    remaining: buf.remaining(),
                });
            }
            Ok(Some(n))
        }
    }
}

#[doc(hidden)]
pub fn get_array_len(
    buf: &mut Bytes,
    flex: bool,
    min_elem: usize,
    field: &'static str,
) -> Result<usize, DecodeError> {
    get_oarray_len(buf, false, flex, min_elem, field)?.ok_or(DecodeError::NullNotAllowed { field })
}

/// Reads the marker of a nullable struct; `true` when the struct follows. In versions where the
/// struct is not nullable there is no marker and the struct always follows.
#[doc(hidden)]
pub fn get_struct_marker(buf: &mut Bytes, nullable: bool) -> Result<bool, DecodeError> {
    if !nullable {
        return Ok(true);
    }
    Ok(get_i8(buf)? >= 0)
}

/// Reads the number of tagged fields; each needs at least two bytes (tag and size).
#[doc(hidden)]
pub fn get_tag_count(buf: &mut Bytes) -> Result<usize, DecodeError> {
    let n = get_uvarint(buf)? as usize;
    if n.saturating_mul(2) > buf.remaining() {
        return Err(DecodeError::CountTooLarge {
            field: "tagged fields",
            count: n,
            remaining: buf.remaining(),
        });
    }
    Ok(n)
}

/// Reads one tagged field's tag and its bytes (zero-copy).
#[doc(hidden)]
pub fn get_raw_tag(buf: &mut Bytes) -> Result<(u32, Bytes), DecodeError> {
    let tag = get_uvarint(buf)?;
    let size = get_uvarint(buf)? as usize;
    Ok((tag, take(buf, size)?))
}

/// A known tagged field must be exactly as long as its size prefix says.
#[doc(hidden)]
pub fn check_tag_consumed(sub: &Bytes, tag: u32) -> Result<(), DecodeError> {
    if sub.has_remaining() {
        return Err(DecodeError::TaggedFieldSize {
            tag,
            left: sub.remaining(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_round_trip_and_limits() {
        for v in [0u32, 1, 127, 128, 300, 16383, 16384, u32::MAX] {
            let mut b = BytesMut::new();
            put_uvarint(&mut b, v);
            let mut r = b.freeze();
            assert_eq!(get_uvarint(&mut r).unwrap(), v);
            assert!(r.is_empty());
        }
        let mut r = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x1f]);
        assert!(matches!(
            get_uvarint(&mut r),
            Err(DecodeError::VarintTooLong)
        ));
        let mut r = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(matches!(
            get_uvarint(&mut r),
            Err(DecodeError::VarintTooLong)
        ));
        let mut r = Bytes::from_static(&[0x80]);
        assert!(matches!(
            get_uvarint(&mut r),
            Err(DecodeError::NotEnoughBytes { .. })
        ));
    }

    #[test]
    fn array_count_checked_before_allocation() {
        let mut r = Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 0]);
        assert!(matches!(
            get_array_len(&mut r, false, 1, "x"),
            Err(DecodeError::CountTooLarge {
                count: 2147483647,
                ..
            })
        ));
        // Compact count u32::MAX - 1 elements (varint of u32::MAX).
        let mut r = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2]);
        assert!(matches!(
            get_array_len(&mut r, true, 1, "x"),
            Err(DecodeError::CountTooLarge { .. })
        ));
        let mut r = Bytes::from_static(&[0xff, 0xff, 0xff, 0xfe]);
        assert!(matches!(
            get_array_len(&mut r, false, 1, "x"),
            Err(DecodeError::NegativeLength { len: -2, .. })
        ));
    }

    #[test]
    fn uuid_display() {
        let mut u = [0u8; 16];
        u[15] = 1;
        assert_eq!(Uuid(u).to_string(), "00000000-0000-0000-0000-000000000001");
    }
}
