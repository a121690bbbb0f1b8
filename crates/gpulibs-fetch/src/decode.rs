//! Streaming decoders for what a sink receives: zstd, gzip and xz streams, and the members of a
//! zip file (wheels), each read front to back with no seeking, so unpacking runs in the same
//! pass as the download (inside a [`PipeSink`](crate::PipeSink) consumer).
//!
//! zstd is libzstd (the `zstd` crate, C built by `cc` at compile time: 2.7x the speed of the
//! pure-Rust `ruzstd`, docs/fetch.md); gzip and xz are pure Rust (`flate2` on `miniz_oxide`,
//! `lzma-rust2`). Nothing for a user or CI to install beyond a C compiler.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;

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
///
/// Input the decoder cannot decode is an error of kind [`io::ErrorKind::InvalidData`] (what a
/// [`Sink`](crate::Sink) reports for bytes it refuses); an error of `reader` itself passes
/// through unchanged.
pub fn decompressor<'a>(compression: Compression, reader: impl Read + 'a) -> Box<dyn Read + 'a> {
    let source_failed = Rc::new(Cell::new(false));
    let reader = Tracked {
        inner: reader,
        failed: Rc::clone(&source_failed),
    };
    let decoder: Box<dyn Read + 'a> = match compression {
        Compression::None => return Box::new(reader),
        Compression::Zstd => zstd_reader(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Xz => Box::new(lzma_rust2::XzReader::new(reader, true)),
    };
    Box::new(Decoded {
        inner: decoder,
        source_failed,
    })
}

/// A reader that notes whether it failed, so the decoder over it can tell its own errors apart.
struct Tracked<R> {
    inner: R,
    failed: Rc<Cell<bool>>,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.failed.set(true);
            }
        })
    }
}

/// A decoder's output: its own errors become `InvalidData`.
struct Decoded<'a> {
    inner: Box<dyn Read + 'a>,
    source_failed: Rc<Cell<bool>>,
}

impl Read for Decoded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let own = !self.source_failed.get()
                && !matches!(
                    e.kind(),
                    io::ErrorKind::InvalidData | io::ErrorKind::Interrupted
                );
            if own {
                io::Error::new(io::ErrorKind::InvalidData, e)
            } else {
                e
            }
        })
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
const ZIP64_END_LOCATOR: u32 = 0x0706_4b50;

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
    each: impl FnMut(&ZipMember, &mut dyn Read) -> io::Result<()>,
) -> io::Result<usize> {
    let mut source = Counted::new(BufReader::with_capacity(128 * 1024, reader));
    let mut streamed = Vec::new();
    read_members(&mut source, each, &mut streamed)?;
    Ok(streamed.len())
}

/// One zip member, as streamed (its local header, and its data descriptor when it has one) or
/// as the central directory lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntry {
    /// The path inside the archive, as written.
    pub name: String,
    /// Where the member's local header starts, from the start of the zip.
    pub offset: u64,
    /// CRC-32 of the uncompressed bytes (for a streamed member: checked against them).
    pub crc32: u32,
    /// Uncompressed size (for a streamed member: the bytes counted).
    pub size: u64,
    /// 0 = stored, 8 = deflate.
    pub method: u16,
    /// The Unix mode in the central directory's external attributes, when the zip was made
    /// on Unix (`None` for streamed entries: local headers do not carry it).
    pub unix_mode: Option<u32>,
}

/// What [`read_zip_stream_listed`] saw: the members in the order they streamed, and the
/// central directory that followed them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZipListing {
    pub streamed: Vec<ZipEntry>,
    pub central: Vec<ZipEntry>,
}

/// [`read_zip_stream`], then the central directory (which a zip keeps at its end, and which is
/// what `pip` and every seeking reader trust) and the end records, to the end of the input: a
/// byte after the end record is an error, so the caller's reader is always read to its end.
///
/// It does not compare the two lists; a caller that must install exactly what `pip` would
/// (the store's `ZipStream::finish`) does, once the listing is complete.
pub fn read_zip_stream_listed(
    reader: impl Read,
    each: impl FnMut(&ZipMember, &mut dyn Read) -> io::Result<()>,
) -> io::Result<ZipListing> {
    let mut source = Counted::new(BufReader::with_capacity(128 * 1024, reader));
    let mut listing = ZipListing::default();
    let mut signature = read_members(&mut source, each, &mut listing.streamed)?;
    let directory_start = source.position - 4;
    while signature == CENTRAL_HEADER {
        listing.central.push(read_central_entry(&mut source)?);
        signature = read_u32(&mut source)?;
    }
    let directory_size = source.position - 4 - directory_start;
    if signature == ZIP64_END_OF_CENTRAL {
        let size = read_u64(&mut source)?;
        io::copy(&mut (&mut source).take(size), &mut io::sink())?;
        signature = read_u32(&mut source)?;
        if signature == ZIP64_END_LOCATOR {
            io::copy(&mut (&mut source).take(16), &mut io::sink())?;
            signature = read_u32(&mut source)?;
        }
    }
    if signature != END_OF_CENTRAL {
        return Err(invalid(format!(
            "unexpected record {signature:#010x} after the zip's central directory"
        )));
    }
    let mut end = [0u8; 18];
    source.read_exact(&mut end)?;
    let total = u16::from_le_bytes([end[6], end[7]]);
    let size = u32::from_le_bytes(end[8..12].try_into().unwrap());
    let offset = u32::from_le_bytes(end[12..16].try_into().unwrap());
    let comment = u16::from_le_bytes([end[16], end[17]]);
    io::copy(&mut (&mut source).take(u64::from(comment)), &mut io::sink())?;
    if total != 0xFFFF && usize::from(total) != listing.central.len() {
        return Err(invalid(format!(
            "the zip's end record counts {total} members, its central directory lists {}",
            listing.central.len()
        )));
    }
    if (offset != 0xFFFF_FFFF && u64::from(offset) != directory_start)
        || (size != 0xFFFF_FFFF && u64::from(size) != directory_size)
    {
        return Err(invalid(format!(
            "the zip's end record places its central directory at {offset} ({size} bytes); \
             it is at {directory_start} ({directory_size} bytes)"
        )));
    }
    let mut byte = [0u8; 1];
    if source.read(&mut byte)? != 0 {
        return Err(invalid("bytes after the zip's end record".into()));
    }
    Ok(listing)
}

/// Reads local members until the first record that is not one; returns its signature.
fn read_members<R: BufRead>(
    mut source: &mut Counted<R>,
    mut each: impl FnMut(&ZipMember, &mut dyn Read) -> io::Result<()>,
    streamed: &mut Vec<ZipEntry>,
) -> io::Result<u32> {
    loop {
        let count = streamed.len();
        let offset = source.position;
        let signature = match read_u32(source) {
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
            CENTRAL_HEADER | END_OF_CENTRAL | ZIP64_END_OF_CENTRAL => return Ok(signature),
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
        streamed.push(ZipEntry {
            name: member.name,
            offset,
            crc32: expected_crc,
            size: expected_size,
            method,
            unix_mode: None,
        });
    }
}

fn read_central_entry(source: &mut impl Read) -> io::Result<ZipEntry> {
    let mut header = [0u8; 42];
    source.read_exact(&mut header)?;
    let u16_at = |i: usize| u16::from_le_bytes([header[i], header[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().unwrap());
    let made_by = u16_at(0);
    let method = u16_at(6);
    let crc32 = u32_at(12);
    let mut compressed = u64::from(u32_at(16));
    let mut size = u64::from(u32_at(20));
    let mut name = vec![0u8; usize::from(u16_at(24))];
    let mut extra = vec![0u8; usize::from(u16_at(26))];
    let comment = u64::from(u16_at(28));
    let external = u32_at(34);
    let mut offset = u64::from(u32_at(38));
    source.read_exact(&mut name)?;
    source.read_exact(&mut extra)?;
    io::copy(&mut source.take(comment), &mut io::sink())?;
    let name = String::from_utf8(name)
        .map_err(|e| invalid(format!("zip directory name is not UTF-8: {e}")))?;
    // Zip64: only the fields whose 32-bit value is saturated are in the extra field, in order.
    let mut wide = [
        (size == 0xFFFF_FFFF, &mut size),
        (compressed == 0xFFFF_FFFF, &mut compressed),
        (offset == 0xFFFF_FFFF, &mut offset),
    ];
    if wide.iter().any(|(w, _)| *w) {
        let body = extra_field(&extra, 1)
            .ok_or_else(|| invalid(format!("{name}: zip64 fields missing in the directory")))?;
        let mut at = 0;
        for (saturated, value) in wide.iter_mut() {
            if *saturated {
                let bytes = body
                    .get(at..at + 8)
                    .ok_or_else(|| invalid(format!("{name}: zip64 field too short")))?;
                **value = u64::from_le_bytes(bytes.try_into().unwrap());
                at += 8;
            }
        }
    }
    let _ = compressed;
    Ok(ZipEntry {
        name,
        offset,
        crc32,
        size,
        method,
        unix_mode: (made_by >> 8 == 3).then_some(external >> 16),
    })
}

fn extra_field(extra: &[u8], wanted: u16) -> Option<&[u8]> {
    let mut rest = extra;
    while rest.len() >= 4 {
        let id = u16::from_le_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
        let body = rest.get(4..4 + len)?;
        if id == wanted {
            return Some(body);
        }
        rest = &rest[4 + len..];
    }
    None
}

/// A buffered reader that knows how many bytes its users consumed (zip offsets).
struct Counted<R> {
    inner: R,
    position: u64,
}

impl<R> Counted<R> {
    fn new(inner: R) -> Self {
        Counted { inner, position: 0 }
    }
}

impl<R: BufRead> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.position += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.position += amount as u64;
        self.inner.consume(amount);
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
