//! Decompressing entry payloads, only when asked.
//!
//! Inspection never needs this (targets come from entry headers); it is for checks that want the
//! cubin or PTX text itself. Formats (facts §1 "Compression" \[ZL\]\[E1\]): flag 0x2000 is an LZ4 raw
//! block with no frame, flag 0x8000 a Zstandard frame. The output size is the header's
//! uncompressed size, and the caller's `max_size` is a hard cap on it, so hostile input cannot
//! make this allocate more than the caller allowed.

use std::io::Read;

use crate::fatbin::{Compression, FatbinEntry};

/// Why a payload could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecompressError {
    #[error("entry payload lies outside the data ({offset:#x} + {len})")]
    OutOfBounds { offset: u64, len: u64 },
    #[error("entry declares {declared} uncompressed bytes, above the cap of {cap}")]
    TooLarge { declared: u64, cap: usize },
    #[error("compression method unknown (flags {flags:#x})")]
    UnknownMethod { flags: u64 },
    #[error("LZ4 block is corrupt: {0}")]
    Lz4(String),
    #[error("zstd frame is corrupt: {0}")]
    Zstd(String),
    #[error(
        "entry declares {declared} uncompressed bytes but the payload decompresses to {actual}"
    )]
    SizeMismatch { declared: u64, actual: u64 },
}

/// The entry's payload, decompressed if it is compressed. `buf` is the buffer the entry was
/// scanned from (the whole file). At most `max_size` bytes are ever allocated for the output.
pub fn decompress_entry(
    buf: &[u8],
    entry: &FatbinEntry,
    max_size: usize,
) -> Result<Vec<u8>, DecompressError> {
    let oob = || DecompressError::OutOfBounds {
        offset: entry.offset,
        len: entry.payload_size,
    };
    let range = entry.payload_range().ok_or_else(oob)?;
    let input = buf.get(range).ok_or_else(oob)?;
    if entry.compression == Compression::None {
        if input.len() > max_size {
            return Err(DecompressError::TooLarge {
                declared: input.len() as u64,
                cap: max_size,
            });
        }
        return Ok(input.to_vec());
    }
    let declared = entry.uncompressed_size;
    let size = usize::try_from(declared)
        .ok()
        .filter(|&n| n <= max_size)
        .ok_or(DecompressError::TooLarge {
            declared,
            cap: max_size,
        })?;
    match entry.compression {
        Compression::Lz4 => {
            let mut out = vec![0u8; size];
            let n = lz4_flex::block::decompress_into(input, &mut out)
                .map_err(|e| DecompressError::Lz4(e.to_string()))?;
            if n != size {
                return Err(DecompressError::SizeMismatch {
                    declared,
                    actual: n as u64,
                });
            }
            Ok(out)
        }
        Compression::Zstd => {
            let decoder = ruzstd::decoding::StreamingDecoder::new(input)
                .map_err(|e| DecompressError::Zstd(e.to_string()))?;
            // Read one byte more than declared to notice output that is too long, without ever
            // holding more than size + 1 bytes.
            let mut out = Vec::with_capacity(size.min(1 << 20));
            decoder
                .take(size as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| DecompressError::Zstd(e.to_string()))?;
            if out.len() != size {
                return Err(DecompressError::SizeMismatch {
                    declared,
                    actual: out.len() as u64,
                });
            }
            Ok(out)
        }
        Compression::Unknown => Err(DecompressError::UnknownMethod { flags: entry.flags }),
        Compression::None => unreachable!("handled above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fatbin::{EntryKind, FLAG_COMPRESSED_LZ4, FLAG_COMPRESSED_ZSTD};

    fn entry_for(payload: &[u8], flags: u64, compressed: bool, unc: u64) -> FatbinEntry {
        let compression = match flags & (FLAG_COMPRESSED_LZ4 | FLAG_COMPRESSED_ZSTD) {
            FLAG_COMPRESSED_LZ4 => Compression::Lz4,
            FLAG_COMPRESSED_ZSTD => Compression::Zstd,
            0 => Compression::None,
            _ => Compression::Unknown,
        };
        FatbinEntry {
            offset: 0,
            kind: EntryKind::Elf,
            header_size: 64,
            payload_size: payload.len() as u64,
            compressed_size: if compressed { payload.len() as u32 } else { 0 },
            code_version: (1, 8),
            arch: 90,
            flags,
            uncompressed_size: unc,
            compression,
        }
    }

    fn with_header(payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b.extend_from_slice(payload);
        b
    }

    fn sample() -> Vec<u8> {
        (0..5000u32).flat_map(|i| (i % 251).to_le_bytes()).collect()
    }

    #[test]
    fn lz4_round_trip_and_cap() {
        let data = sample();
        let packed = lz4_flex::block::compress(&data);
        let buf = with_header(&packed);
        let e = entry_for(&packed, FLAG_COMPRESSED_LZ4, true, data.len() as u64);
        assert_eq!(decompress_entry(&buf, &e, 1 << 20).unwrap(), data);
        assert!(matches!(
            decompress_entry(&buf, &e, 100),
            Err(DecompressError::TooLarge { .. })
        ));
        // Declared size larger than the real output.
        let e = entry_for(&packed, FLAG_COMPRESSED_LZ4, true, data.len() as u64 + 5);
        assert!(decompress_entry(&buf, &e, 1 << 20).is_err());
        // Corrupt block.
        let mut bad = packed.clone();
        bad.truncate(bad.len() / 2);
        let buf = with_header(&bad);
        let e = entry_for(&bad, FLAG_COMPRESSED_LZ4, true, data.len() as u64);
        assert!(decompress_entry(&buf, &e, 1 << 20).is_err());
    }

    #[test]
    fn zstd_round_trip_and_cap() {
        let data = sample();
        let packed = ruzstd::encoding::compress_to_vec(
            data.as_slice(),
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let buf = with_header(&packed);
        let e = entry_for(&packed, FLAG_COMPRESSED_ZSTD, true, data.len() as u64);
        assert_eq!(decompress_entry(&buf, &e, 1 << 20).unwrap(), data);
        // Declared smaller than the real output: caught, and never more than declared + 1 read.
        let e = entry_for(&packed, FLAG_COMPRESSED_ZSTD, true, 10);
        assert_eq!(
            decompress_entry(&buf, &e, 1 << 20),
            Err(DecompressError::SizeMismatch {
                declared: 10,
                actual: 11
            })
        );
        let e = entry_for(&packed, FLAG_COMPRESSED_ZSTD, true, u64::MAX);
        assert!(matches!(
            decompress_entry(&buf, &e, 1 << 20),
            Err(DecompressError::TooLarge { .. })
        ));
        let garbage = [0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0xff];
        let buf = with_header(&garbage);
        let e = entry_for(&garbage, FLAG_COMPRESSED_ZSTD, true, 100);
        assert!(decompress_entry(&buf, &e, 1 << 20).is_err());
    }

    #[test]
    fn raw_and_out_of_bounds() {
        let buf = with_header(b"hello");
        let e = entry_for(b"hello", 0, false, 5);
        assert_eq!(decompress_entry(&buf, &e, 100).unwrap(), b"hello");
        assert!(decompress_entry(&buf[..60], &e, 100).is_err());
        let e = entry_for(
            b"hello",
            FLAG_COMPRESSED_LZ4 | FLAG_COMPRESSED_ZSTD,
            true,
            5,
        );
        assert!(matches!(
            decompress_entry(&buf, &e, 100),
            Err(DecompressError::UnknownMethod { .. })
        ));
    }
}
