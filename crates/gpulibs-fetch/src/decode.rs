//! Streaming decoders for what a sink receives: zstd, gzip and xz streams, and the members of a
//! zip file (wheels), each read front to back with no seeking, so unpacking runs in the same
//! pass as the download (inside a [`PipeSink`](crate::PipeSink) consumer).
//!
//! zstd is libzstd (the `zstd` crate, C built by `cc` at compile time: 2.7x the speed of the
//! pure-Rust `ruzstd`, docs/fetch.md); gzip and xz are pure Rust (`flate2` on `miniz_oxide`,
//! `lzma-rust2`). Nothing for a user or CI to install beyond a C compiler.

use std::io::{self, BufReader, Read};

/// The compression of an archive stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Bytes as they are (a plain tar, or a zip read with [`read_zip_stream`]).
    None,
    /// Zstandard (`.zst`), one or more frames.
    Zstd,
    /// gzip (`.gz`, `.tgz`), one or more members.
    Gzip,
    /// xz (`.xz`), one or more streams.
    Xz,
}

impl Compression {
    /// The compression a file name's extension says (`x.tar.zst`, `x.tgz`, `x.tar.xz`);
    /// [`Compression::None`] for anything else, wheels and zips included.
    pub fn from_file_name(name: &str) -> Compression {
        let name = name.to_ascii_lowercase();
        if name.ends_with(".zst") || name.ends_with(".tzst") {
            Compression::Zstd
        } else if name.ends_with(".gz") || name.ends_with(".tgz") {
            Compression::Gzip
        } else if name.ends_with(".xz") || name.ends_with(".txz") {
            Compression::Xz
        } else {
            Compression::None
        }
    }
}

/// A reader of the decompressed bytes of `reader`.
pub fn decompressor<'a>(compression: Compression, reader: impl Read + 'a) -> Box<dyn Read + 'a> {
    match compression {
        Compression::None => Box::new(reader),
        Compression::Zstd => zstd_reader(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Xz => Box::new(lzma_rust2::XzReader::new(reader, true)),
    }
}

/// zstd through libzstd's streaming decoder (the `zstd` crate): every frame of a concatenated
/// stream, skippable frames skipped, frame checksums checked, a truncated frame an error.
/// Windows up to libzstd's default limit (2^27 = 128 MiB, what `gpulibs package` writes) are
/// accepted; a frame that needs more is refused rather than allocated.
fn zstd_reader<'a>(reader: impl Read + 'a) -> Box<dyn Read + 'a> {
    let source = BufReader::with_capacity(128 * 1024, reader);
    match zstd::stream::read::Decoder::with_buffer(source) {
        Ok(decoder) => Box::new(decoder),
        Err(e) => Box::new(Failed(Some(e))),
    }
}

/// A reader whose first read fails with the setup error (a decoder that could not be set up).
struct Failed(Option<io::Error>);

impl Read for Failed {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(self
            .0
            .take()
            .unwrap_or_else(|| io::Error::other("the zstd decoder could not be created")))
    }
}

/// A member of a zip file, from its local header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipMember {
    /// The path inside the archive, as written (`/`-separated).
    pub name: String,
    /// Whether the name ends in `/`.
    pub is_dir: bool,
    /// Uncompressed size, when the local header has it (not with a data descriptor).
    pub size: Option<u64>,
    /// 0 = stored, 8 = deflate.
    pub method: u16,
}

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL: u32 = 0x0605_4b50;
const ZIP64_END_OF_CENTRAL: u32 = 0x0606_4b50;
const DATA_DESCRIPTOR: u32 = 0x0807_4b50;

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Reads a zip file front to back (as a wheel arrives), calling `each` with every member and a
/// reader of its uncompressed bytes; whatever `each` leaves unread is read and checked anyway.
/// Each member's CRC-32 and size are verified. Stops at the central directory and returns the
/// number of members. Stored and deflated members are supported (what wheels use); encrypted
/// members and other methods are errors naming the member.
pub fn read_zip_stream(
    reader: impl Read,
    mut each: impl FnMut(&ZipMember, &mut dyn Read) -> io::Result<()>,
) -> io::Result<usize> {
    let mut source = BufReader::with_capacity(128 * 1024, reader);
    let mut count = 0;
    loop {
        let signature = match read_u32(&mut source) {
            Ok(sig) => sig,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && count > 0 => {
                return Err(invalid(format!(
                    "zip ends after {count} members without a central directory"
                )))
            }
            Err(e) => return Err(e),
        };
        match signature {
            LOCAL_HEADER => {}
            CENTRAL_HEADER | END_OF_CENTRAL | ZIP64_END_OF_CENTRAL => return Ok(count),
            other => {
                return Err(invalid(format!(
                    "not a zip member header after {count} members (signature {other:#010x})"
                )))
            }
        }
        let mut header = [0u8; 26];
        source.read_exact(&mut header)?;
        let u16_at = |i: usize| u16::from_le_bytes([header[i], header[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().unwrap());
        let flags = u16_at(2);
        let method = u16_at(4);
        let header_crc = u32_at(10);
        let mut compressed = u64::from(u32_at(14));
        let mut size = u64::from(u32_at(18));
        let mut name = vec![0u8; usize::from(u16_at(22))];
        let mut extra = vec![0u8; usize::from(u16_at(24))];
        source.read_exact(&mut name)?;
        source.read_exact(&mut extra)?;
        let name = String::from_utf8(name)
            .map_err(|e| invalid(format!("zip member name is not UTF-8: {e}")))?;
        let zip64 = compressed == 0xFFFF_FFFF || size == 0xFFFF_FFFF;
        if zip64 {
            let (s, c) = zip64_sizes(&extra)
                .ok_or_else(|| invalid(format!("{name}: zip64 sizes missing")))?;
            size = s;
            compressed = c;
        }
        if flags & 1 != 0 {
            return Err(invalid(format!(
                "{name}: encrypted zip members are not supported"
            )));
        }
        let descriptor = flags & 8 != 0;
        let member = ZipMember {
            is_dir: name.ends_with('/'),
            name,
            size: (!descriptor).then_some(size),
            method,
        };
        let mut crc = MemberCheck::default();
        let limit = if descriptor { u64::MAX } else { size };
        match (method, descriptor) {
            (0, false) => {
                let mut limited = (&mut source).take(compressed);
                run_member(&member, &mut limited, &mut crc, limit, &mut each)?;
            }
            (8, false) => {
                let mut limited = (&mut source).take(compressed);
                let mut inflate = flate2::bufread::DeflateDecoder::new(&mut limited);
                run_member(&member, &mut inflate, &mut crc, limit, &mut each)?;
                drop(inflate);
                if limited.limit() != 0 {
                    return Err(invalid(format!(
                        "{}: compressed data ends {} bytes before its declared size",
                        member.name,
                        limited.limit()
                    )));
                }
            }
            (8, true) => {
                let mut inflate = flate2::bufread::DeflateDecoder::new(&mut source);
                run_member(&member, &mut inflate, &mut crc, limit, &mut each)?;
            }
            (0, true) => {
                return Err(invalid(format!(
                    "{}: stored member with a data descriptor cannot be streamed",
                    member.name
                )))
            }
            (m, _) => {
                return Err(invalid(format!(
                    "{}: compression method {m} is not supported (stored and deflate are)",
                    member.name
                )))
            }
        }
        let (expected_crc, expected_size) = if descriptor {
            read_descriptor(&mut source, zip64)?
        } else {
            (header_crc, size)
        };
        if crc.count != expected_size {
            return Err(invalid(format!(
                "{}: {} bytes, the zip says {expected_size}",
                member.name, crc.count
            )));
        }
        if crc.crc.sum() != expected_crc {
            return Err(invalid(format!(
                "{}: CRC-32 {:08x}, the zip says {expected_crc:08x}",
                member.name,
                crc.crc.sum()
            )));
        }
        count += 1;
    }
}

fn run_member(
    member: &ZipMember,
    data: &mut dyn Read,
    crc: &mut MemberCheck,
    limit: u64,
    each: &mut impl FnMut(&ZipMember, &mut dyn Read) -> io::Result<()>,
) -> io::Result<()> {
    let mut checked = CrcReader {
        inner: data,
        crc,
        limit,
        name: &member.name,
    };
    each(member, &mut checked)?;
    io::copy(&mut checked, &mut io::sink())?;
    Ok(())
}

/// CRC-32 and length of a member's uncompressed bytes (`flate2::Crc` counts in 32 bits).
#[derive(Default)]
struct MemberCheck {
    crc: flate2::Crc,
    count: u64,
}

/// Counts and checksums what the member's reader yields, refusing more than the declared size.
struct CrcReader<'a, 'b> {
    inner: &'a mut (dyn Read + 'b),
    crc: &'a mut MemberCheck,
    limit: u64,
    name: &'a str,
}

impl Read for CrcReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.crc.update(&buf[..n]);
        self.crc.count += n as u64;
        if self.crc.count > self.limit {
            return Err(invalid(format!(
                "{}: more than the declared {} bytes",
                self.name, self.limit
            )));
        }
        Ok(n)
    }
}

fn zip64_sizes(extra: &[u8]) -> Option<(u64, u64)> {
    let mut rest = extra;
    while rest.len() >= 4 {
        let id = u16::from_le_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
        let body = rest.get(4..4 + len)?;
        if id == 1 && len >= 16 {
            let size = u64::from_le_bytes(body[0..8].try_into().ok()?);
            let compressed = u64::from_le_bytes(body[8..16].try_into().ok()?);
            return Some((size, compressed));
        }
        rest = &rest[4 + len..];
    }
    None
}

fn read_descriptor(source: &mut impl Read, zip64: bool) -> io::Result<(u32, u64)> {
    let first = read_u32(source)?;
    let crc = if first == DATA_DESCRIPTOR {
        read_u32(source)?
    } else {
        first
    };
    let size = if zip64 {
        let _compressed = read_u64(source)?;
        read_u64(source)?
    } else {
        let _compressed = read_u32(source)?;
        u64::from(read_u32(source)?)
    };
    Ok((crc, size))
}

fn read_u32(source: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    source.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(source: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    source.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_from_name() {
        for (name, expected) in [
            ("cuda-12.8.tar.zst", Compression::Zstd),
            ("a.TAR.GZ", Compression::Gzip),
            ("a.tgz", Compression::Gzip),
            ("a.tar.xz", Compression::Xz),
            (
                "onnxruntime_gpu-1.22.0-cp312-cp312-manylinux_2_27_x86_64.whl",
                Compression::None,
            ),
            ("a.tar", Compression::None),
        ] {
            assert_eq!(Compression::from_file_name(name), expected, "{name}");
        }
    }
}
