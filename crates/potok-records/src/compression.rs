//! Compression codecs for the records section of a batch, with bounded decompression.
//!
//! Formats are those Kafka's Java client writes and reads:
//!
//! * gzip: an RFC 1952 stream (concatenated members are accepted, as `GZIPInputStream` does).
//! * snappy: snappy-java's "xerial" stream framing — the 8-byte magic `\x82SNAPPY\x00`, a
//!   big-endian i32 version (1) and i32 minimum compatible version (1), then blocks of
//!   `[i32 compressed length][raw snappy block]`, each block holding at most 32 KiB of input.
//!   Without the magic the payload is decoded as one raw snappy block, which is what
//!   `SnappyInputStream` falls back to and what librdkafka writes (verified against
//!   librdkafka 2.16 in `tests/vectors.rs`; it reads both forms).
//! * lz4: the LZ4 frame format (Kafka's `Lz4BlockOutputStream`: 64 KiB independent blocks, no
//!   block checksums, no content size).
//! * zstd: standard zstd frames (KIP-110), level 3 by default as `compression.zstd.level`.
//!
//! Decompression never produces more than the caller's limit: every decoder is read through a
//! cap of `limit + 1` bytes and anything beyond the limit is reported as
//! [`RecordsError::DecompressedTooLarge`], so a decompression bomb costs at most `limit` bytes.
//! Snappy's declared block sizes are checked against the remaining budget before allocating,
//! and zstd's window is capped so a hostile frame header cannot request a huge window.

use std::io::{Read, Write};

use crate::{Compression, RecordsError, Result};

/// Default decompressed-size limit: 64 times Kafka's default `message.max.bytes`
/// (1048588 bytes). Gzip's best ratio is about 1000:1, so honest batches near the size limit
/// that compress extremely well could exceed it; callers with such traffic pass a larger limit.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 64 * 1_048_588;

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;
/// snappy-java's `SnappyOutputStream` default block size.
const XERIAL_BLOCK_SIZE: usize = 32 * 1024;

fn decompress_error(codec: &'static str, e: impl std::fmt::Display) -> RecordsError {
    RecordsError::Decompress {
        codec,
        message: e.to_string(),
    }
}

fn compress_error(codec: &'static str, e: impl std::fmt::Display) -> RecordsError {
    RecordsError::Compress {
        codec,
        message: e.to_string(),
    }
}

/// Reads `reader` to the end, failing once more than `limit` bytes come out.
fn read_bounded<R: Read>(
    reader: R,
    limit: usize,
    size_hint: usize,
    codec: &'static str,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(size_hint.min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| decompress_error(codec, e))?;
    if out.len() > limit {
        return Err(RecordsError::DecompressedTooLarge { limit });
    }
    Ok(out)
}

impl Compression {
    /// Compresses `input` in this codec's Kafka format. `None` copies the input.
    pub fn compress(self, input: &[u8]) -> Result<Vec<u8>> {
        self.compress_level(input, None)
    }

    /// Like [`Self::compress`] at a given level (Kafka's `compression.gzip.level` 1-9 and
    /// `compression.zstd.level` -131072..=22); `None` is the codec's default (gzip 6, zstd 3).
    /// Snappy has no levels and the lz4 frame encoder has one, so both ignore `level`.
    pub fn compress_level(self, input: &[u8], level: Option<i32>) -> Result<Vec<u8>> {
        match self {
            Compression::None => Ok(input.to_vec()),
            Compression::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(input.len() / 2 + 64),
                    // Kafka's default `compression.gzip.level` is the deflater default, 6.
                    flate2::Compression::new(
                        level
                            .and_then(|l| u32::try_from(l).ok())
                            .filter(|l| (1..=9).contains(l))
                            .unwrap_or(6),
                    ),
                );
                enc.write_all(input)
                    .map_err(|e| compress_error("gzip", e))?;
                enc.finish().map_err(|e| compress_error("gzip", e))
            }
            Compression::Snappy => snappy_xerial_compress(input),
            Compression::Lz4 => {
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max64KB)
                    .block_mode(lz4_flex::frame::BlockMode::Independent);
                let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(
                    info,
                    Vec::with_capacity(input.len() / 2 + 64),
                );
                enc.write_all(input).map_err(|e| compress_error("lz4", e))?;
                enc.finish().map_err(|e| compress_error("lz4", e))
            }
            Compression::Zstd => zstd::bulk::compress(input, level.unwrap_or(3))
                .map_err(|e| compress_error("zstd", e)),
        }
    }

    /// Decompresses `input`, failing with [`RecordsError::DecompressedTooLarge`] rather than
    /// producing more than `limit` bytes. `None` copies the input (subject to the same limit).
    pub fn decompress(self, input: &[u8], limit: usize) -> Result<Vec<u8>> {
        let hint = input.len().saturating_mul(4);
        match self {
            Compression::None => {
                if input.len() > limit {
                    return Err(RecordsError::DecompressedTooLarge { limit });
                }
                Ok(input.to_vec())
            }
            Compression::Gzip => read_bounded(
                flate2::read::MultiGzDecoder::new(input),
                limit,
                hint,
                "gzip",
            ),
            Compression::Snappy => snappy_decompress(input, limit),
            Compression::Lz4 => read_bounded(
                lz4_flex::frame::FrameDecoder::new(input),
                limit,
                hint,
                "lz4",
            ),
            Compression::Zstd => {
                let mut dec = zstd::stream::read::Decoder::with_buffer(input)
                    .map_err(|e| decompress_error("zstd", e))?;
                // A window larger than the output limit can never be needed; capping it keeps
                // a hostile frame header from making the decoder reserve up to 128 MiB (the
                // library default). zstd accepts window logs 10..=31.
                dec.window_log_max(window_log_for(limit))
                    .map_err(|e| decompress_error("zstd", e))?;
                read_bounded(dec, limit, hint, "zstd")
            }
        }
    }
}

/// The smallest power-of-two exponent covering `limit`, clamped to 24..=27. Streaming
/// compressors (zstd-jni in the Java client, librdkafka) do not pledge the input size, so their
/// frames announce the level's default window (2 MiB at level 3, up to 8 MiB at high levels)
/// even for tiny batches; 16 MiB keeps all of those decodable. 27 is the largest window a
/// zstd decoder accepts by default.
fn window_log_for(limit: usize) -> u32 {
    let bits = usize::BITS - limit.max(1).saturating_sub(1).leading_zeros();
    bits.clamp(24, 27)
}

fn snappy_xerial_compress(input: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + input.len() / 2 + 64);
    out.extend_from_slice(XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes()); // version
    out.extend_from_slice(&1i32.to_be_bytes()); // minimum compatible version
    let mut enc = snap::raw::Encoder::new();
    for chunk in input.chunks(XERIAL_BLOCK_SIZE) {
        let block = enc
            .compress_vec(chunk)
            .map_err(|e| compress_error("snappy", e))?;
        // A 32 KiB chunk compresses to well under 2 GiB, so the length always fits.
        let len = i32::try_from(block.len()).map_err(|e| compress_error("snappy", e))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

/// Decodes one raw snappy block into `out`, checking its declared size against `budget` first.
fn snappy_raw_block(block: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<()> {
    let declared = snap::raw::decompress_len(block).map_err(|e| decompress_error("snappy", e))?;
    if declared > limit.saturating_sub(out.len()) {
        return Err(RecordsError::DecompressedTooLarge { limit });
    }
    let start = out.len();
    out.resize(start + declared, 0);
    let n = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| decompress_error("snappy", e))?;
    out.truncate(start + n);
    Ok(())
}

fn snappy_decompress(input: &[u8], limit: usize) -> Result<Vec<u8>> {
    if !input.starts_with(XERIAL_MAGIC) {
        let mut out = Vec::new();
        snappy_raw_block(input, &mut out, limit)?;
        return Ok(out);
    }
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < input.len() {
        let rest = &input[pos..];
        // snappy-java accepts a new stream header where a block length would be, so that
        // concatenated xerial streams decode as one; a block length starting with 0x82 would be
        // negative, so the two cannot be confused.
        if rest.starts_with(XERIAL_MAGIC) {
            let header = rest
                .get(..XERIAL_HEADER_LEN)
                .ok_or_else(|| decompress_error("snappy", "xerial stream header is truncated"))?;
            let compat = i32::from_be_bytes([header[12], header[13], header[14], header[15]]);
            if compat > 1 {
                return Err(decompress_error(
                    "snappy",
                    format!("unsupported xerial minimum compatible version {compat}"),
                ));
            }
            pos += XERIAL_HEADER_LEN;
            continue;
        }
        let len_bytes = rest
            .get(..4)
            .ok_or_else(|| decompress_error("snappy", "xerial block length is truncated"))?;
        let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        let len = usize::try_from(len).map_err(|_| {
            decompress_error("snappy", format!("negative xerial block length {len}"))
        })?;
        let block = rest.get(4..).and_then(|r| r.get(..len)).ok_or_else(|| {
            decompress_error("snappy", "xerial block is longer than the remaining input")
        })?;
        snappy_raw_block(block, &mut out, limit)?;
        pos += 4 + len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn sample(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i * 7 % 251) as u8 ^ (i / 1000) as u8)
            .collect()
    }

    #[test]
    fn every_codec_roundtrips() {
        for c in ALL {
            for n in [0, 1, 100, 32 * 1024, 32 * 1024 + 1, 200_000] {
                let data = sample(n);
                let z = c.compress(&data).unwrap();
                assert_eq!(c.decompress(&z, 1 << 20).unwrap(), data, "{c:?} n={n}");
            }
        }
    }

    #[test]
    fn xerial_framing_matches_snappy_java() {
        let data = sample(70_000);
        let z = Compression::Snappy.compress(&data).unwrap();
        assert_eq!(&z[..16], b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01");
        // 70 000 bytes in 32 KiB blocks is three blocks.
        let mut pos = 16;
        let mut blocks = 0;
        while pos < z.len() {
            let len = i32::from_be_bytes(z[pos..pos + 4].try_into().unwrap()) as usize;
            pos += 4 + len;
            blocks += 1;
        }
        assert_eq!((pos, blocks), (z.len(), 3));
    }

    #[test]
    fn raw_snappy_accepted() {
        let data = sample(5000);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(Compression::Snappy.decompress(&raw, 1 << 20).unwrap(), data);
    }

    #[test]
    fn concatenated_xerial_streams_accepted() {
        let mut z = Compression::Snappy.compress(b"hello ").unwrap();
        z.extend(Compression::Snappy.compress(b"world").unwrap());
        assert_eq!(
            Compression::Snappy.decompress(&z, 100).unwrap(),
            b"hello world"
        );
    }

    #[test]
    fn lz4_frame_header_is_standard() {
        let z = Compression::Lz4.compress(b"abc").unwrap();
        // LZ4 frame magic 0x184D2204 little-endian; FLG: version 01, block independence set;
        // BD: 64 KiB max block size (4 << 4).
        assert_eq!(&z[..4], &[0x04, 0x22, 0x4d, 0x18]);
        assert_eq!(z[4] & 0xc0, 0x40);
        assert_eq!(z[4] & 0x20, 0x20);
        assert_eq!(z[5], 0x40);
    }

    #[test]
    fn decompression_bombs_are_bounded() {
        let zeros = vec![0u8; 4 << 20];
        for c in ALL {
            let z = c.compress(&zeros).unwrap();
            assert_eq!(
                c.decompress(&z, 1 << 20),
                Err(RecordsError::DecompressedTooLarge { limit: 1 << 20 }),
                "{c:?}"
            );
            // Exactly at the limit is fine.
            assert_eq!(c.decompress(&z, 4 << 20).unwrap().len(), 4 << 20);
        }
    }

    #[test]
    fn snappy_declared_size_checked_before_allocating() {
        // A raw snappy block whose preamble claims ~4 GiB: varint 0xffffffff0f.
        let hostile = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert!(Compression::Snappy.decompress(&hostile, 1 << 20).is_err());
        let mut xerial = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        xerial.extend_from_slice(&(hostile.len() as i32).to_be_bytes());
        xerial.extend_from_slice(&hostile);
        assert_eq!(
            Compression::Snappy.decompress(&xerial, 1 << 20),
            Err(RecordsError::DecompressedTooLarge { limit: 1 << 20 })
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let garbage: Vec<u8> = (0..300u32).map(|i| (i * 31 + 7) as u8).collect();
        for c in ALL[1..].iter() {
            assert!(c.decompress(&garbage, 1 << 20).is_err(), "{c:?}");
            // Empty input may decode to nothing or fail, depending on the codec; it must not
            // panic or produce data.
            assert!(c.decompress(&[], 1 << 20).map_or(true, |v| v.is_empty()));
        }
        let mut bad_len = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        bad_len.extend_from_slice(&(-5i32).to_be_bytes());
        assert!(Compression::Snappy.decompress(&bad_len, 100).is_err());
        bad_len.truncate(18);
        assert!(Compression::Snappy.decompress(&bad_len, 100).is_err());
    }

    #[test]
    fn zstd_frame_demanding_a_huge_window_is_refused() {
        // Frame header: magic, FHD 0 (no content size, not single-segment), window descriptor
        // with exponent 21 -> window log 31 (2 GiB), then a last raw block of 1 byte.
        let frame = [
            0x28,
            0xb5,
            0x2f,
            0xfd,
            0x00,
            21 << 3,
            0x09,
            0x00,
            0x00,
            b'x',
        ];
        assert!(matches!(
            Compression::Zstd.decompress(&frame, 1 << 20),
            Err(RecordsError::Decompress { codec: "zstd", .. })
        ));
        // The same frame with a 1 KiB window decodes, so the refusal is about the window.
        let small = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00, 0x09, 0x00, 0x00, b'x'];
        assert_eq!(Compression::Zstd.decompress(&small, 1 << 20).unwrap(), b"x");
    }

    #[test]
    fn zstd_window_log_tracks_limit() {
        assert_eq!(window_log_for(0), 24);
        assert_eq!(window_log_for(1 << 25), 25);
        assert_eq!(window_log_for((1 << 25) + 1), 26);
        assert_eq!(window_log_for(usize::MAX), 27);
    }
}
