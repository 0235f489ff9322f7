//! The CRC-framed append-only files the broker keeps: the metadata log
//! (`crate::metadata_log`) and a voter's Raft log (`crate::quorum::storage`). Both are a
//! sequence of frames, each written with one write and fsynced before anything depends on it:
//!
//! ```text
//! u32 BE  payload length n (1..=MAX_FRAME_BYTES)
//! u32 BE  CRC-32C (Castagnoli) of the payload
//! n bytes payload (the owner's layout)
//! ```
//!
//! Both are read whole at start. The longest prefix of whole frames with matching checksums is
//! kept and a torn tail (a short frame, a bad length or a bad checksum) is truncated with a
//! warning: nothing after a torn frame was ever acted on, because a frame counts only after
//! its fsync. A frame whose checksum matches but whose payload does not decode is corruption
//! (or a newer writer) and refuses the open rather than being cut away.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::Path;

use crate::error::{BrokerError, Result};

/// The largest frame payload; larger lengths on disk are corruption, never allocated.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// `payload` as one frame. `what` names the write in the error when the payload exceeds
/// [`MAX_FRAME_BYTES`].
pub fn frame(payload: &[u8], what: &str) -> Result<Vec<u8>> {
    if payload.len() > MAX_FRAME_BYTES {
        return Err(BrokerError::Config(format!(
            "{what} of {} bytes exceeds {MAX_FRAME_BYTES}",
            payload.len()
        )));
    }
    let mut frame = Vec::with_capacity(payload.len() + 8);
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    frame.extend_from_slice(payload);
    Ok(frame)
}

/// Decodes every whole frame of `data` with `decode(byte position, payload)`, in order, and
/// returns the decoded values with the length of the valid prefix (what follows it is a torn
/// tail). The first error of `decode` is returned as is.
pub fn parse<T>(
    data: &[u8],
    mut decode: impl FnMut(usize, &[u8]) -> Result<T>,
) -> Result<(Vec<T>, usize)> {
    let mut values = Vec::new();
    let mut pos = 0usize;
    while let Some(head) = data.get(pos..pos + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 || len > MAX_FRAME_BYTES {
            break;
        }
        let Some(payload) = data.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        values.push(decode(pos, payload)?);
        pos += 8 + len;
    }
    Ok((values, pos))
}

/// Opens `path` for appending (creating it when `create`), decodes its frames with [`parse`]
/// and truncates a torn tail with a warning naming `what`. Returns the file, the decoded
/// values and whether the file was empty.
pub fn open<T>(
    path: &Path,
    create: bool,
    what: &str,
    decode: impl FnMut(usize, &[u8]) -> Result<T>,
) -> Result<(File, Vec<T>, bool)> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(create)
        .open(path)
        .map_err(|e| BrokerError::io(path, e))?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .map_err(|e| BrokerError::io(path, e))?;
    let (values, good_end) = parse(&data, decode)?;
    if good_end < data.len() {
        tracing::warn!(
            path = %path.display(),
            valid_bytes = good_end,
            dropped_bytes = data.len() - good_end,
            "{what} has a torn or corrupt tail; truncating it (nothing in it was acknowledged or acted on)"
        );
        file.set_len(good_end as u64)
            .and_then(|_| file.sync_all())
            .map_err(|e| BrokerError::io(path, e))?;
    }
    Ok((file, values, data.is_empty()))
}
