//! Library names a file loads at run time (`dlopen`), found in its read-only data and code.
//!
//! Two sources, both bounded by the sizes of the sections they read:
//! - `string`: a whole NUL-terminated string in `.rodata*` that is a library name
//!   (`lib[A-Za-z0-9_+.-]+\.so(\.[0-9]+)*`) or an absolute path ending in one. `.dynstr` is not
//!   read, so `DT_NEEDED` and symbol names do not count.
//! - `code_immediate` (x86-64 only): names the compiler wrote into memory with immediate stores
//!   instead of keeping them in `.rodata`, e.g. ONNX Runtime 1.31.1 builds `std::string`s
//!   `"libcudnn.so.9"` and `"libcufft.so.12"` as `movabs $"libcudnn", %rax; mov %rax, 0xb0(%rsp);
//!   movabs $"dnn.so.9", %rax; mov %rax, 0xb5(%rsp)`. A small emulation of those stores rebuilds
//!   the name; only results that are whole library names are kept.

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};
use object::Endianness;
use serde::{Deserialize, Serialize};

use super::elf::{ElfClass, ElfIdentity};
use super::ParseError;

/// Where a run-time library name was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeNameSource {
    /// A NUL-terminated string in the read-only data.
    String,
    /// Rebuilt from immediate stores in x86-64 code.
    CodeImmediate,
}

/// A library the file names in its data or code, which it most likely `dlopen`s.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RuntimeName {
    /// The name as written (a bare soname, or an absolute path).
    pub name: String,
    /// Where it was found.
    pub source: RuntimeNameSource,
}

/// Longest name accepted (`NAME_MAX`).
const MAX_NAME: usize = 255;
/// At most this many names are reported per file.
const MAX_NAMES: usize = 1024;

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'.' | b'-')
}

/// Whether `name` is a shared-library file name: `lib[A-Za-z0-9_+.-]+\.so(\.[0-9]+)*`.
pub fn is_library_name(name: &str) -> bool {
    let b = name.as_bytes();
    if !name.starts_with("lib") || b.len() > MAX_NAME || !b.iter().all(|&c| is_name_byte(c)) {
        return false;
    }
    // Strip the trailing version numbers, then require ".so" right before them.
    let mut end = b.len();
    loop {
        let digits = b[..end]
            .iter()
            .rev()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 || end < digits + 1 || b[end - digits - 1] != b'.' {
            break;
        }
        end -= digits + 1;
    }
    end >= 7 && &b[end - 3..end] == b".so"
}

/// An absolute path whose last component is a library name.
fn is_library_path(s: &str) -> bool {
    s.starts_with('/')
        && !s.ends_with('/')
        && s.bytes().all(|c| is_name_byte(c) || c == b'/')
        && s.rsplit('/').next().is_some_and(is_library_name)
}

/// Finds library names the file loads at run time, excluding `exclude` (its `DT_NEEDED` and
/// `DT_SONAME`). Names come in file order, each once.
pub fn runtime_library_names(
    bytes: &[u8],
    exclude: &[&str],
) -> Result<Vec<RuntimeName>, ParseError> {
    let identity = ElfIdentity::from_header(bytes)?;
    let regions = match identity.class {
        ElfClass::Elf32 => regions::<elf::FileHeader32<Endianness>>(bytes)?,
        ElfClass::Elf64 => regions::<elf::FileHeader64<Endianness>>(bytes)?,
    };
    let mut out: Vec<RuntimeName> = Vec::new();
    let mut push = |name: String, source| {
        if out.len() < MAX_NAMES
            && !exclude.contains(&name.as_str())
            && !out.iter().any(|n| n.name == name)
        {
            out.push(RuntimeName { name, source });
        }
    };
    for data in &regions.rodata {
        for name in strings_in(data) {
            push(name, RuntimeNameSource::String);
        }
    }
    if identity.machine == elf::EM_X86_64.0 {
        for code in &regions.code {
            for name in x86_64_immediate_names(code) {
                push(name, RuntimeNameSource::CodeImmediate);
            }
        }
    }
    Ok(out)
}

struct Regions<'a> {
    rodata: Vec<&'a [u8]>,
    code: Vec<&'a [u8]>,
}

/// `.rodata*` and executable sections; without section headers, the read-only and the
/// executable `PT_LOAD` segments.
fn regions<Elf: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<Regions<'_>, ParseError> {
    let header = Elf::parse(data).map_err(|e| ParseError::Truncated(e.to_string()))?;
    let endian = header
        .endian()
        .map_err(|e| ParseError::Malformed(e.to_string()))?;
    let sections = header
        .sections(endian, data)
        .map_err(|e| ParseError::Malformed(format!("section headers: {e}")))?;
    let mut regions = Regions {
        rodata: Vec::new(),
        code: Vec::new(),
    };
    if !sections.is_empty() {
        for section in sections.iter() {
            let kind = section.sh_type(endian);
            if kind == elf::SHT_NOBITS || kind == elf::SHT_NULL {
                continue;
            }
            let flags = section.sh_flags(endian).0;
            let name = sections.section_name(endian, section).unwrap_or_default();
            let is_rodata = name == b".rodata" || name.starts_with(b".rodata.");
            let is_code = flags & elf::SHF_EXECINSTR.0 != 0;
            if !is_rodata && !is_code {
                continue;
            }
            // A section that points outside the file is skipped, not fatal: the rest still counts.
            let Ok(bytes) = section.data(endian, data) else {
                continue;
            };
            if is_rodata {
                regions.rodata.push(bytes);
            } else {
                regions.code.push(bytes);
            }
        }
        return Ok(regions);
    }
    let segments = header
        .program_headers(endian, data)
        .map_err(|e| ParseError::Malformed(format!("program headers: {e}")))?;
    for segment in segments {
        if segment.p_type(endian) != elf::PT_LOAD {
            continue;
        }
        let flags = segment.p_flags(endian).0;
        let Ok(bytes) = segment.data(endian, data) else {
            continue;
        };
        if flags & elf::PF_X.0 != 0 {
            regions.code.push(bytes);
        } else if flags & elf::PF_W.0 == 0 {
            regions.rodata.push(bytes);
        }
    }
    Ok(regions)
}

/// Whole printable strings, ending in NUL, that are library names or paths to one.
fn strings_in(data: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for chunk in data.split(|&b| b == 0) {
        // The printable tail of the chunk: the string itself when binary data precedes it.
        let start = chunk
            .iter()
            .rposition(|&b| !(0x20..0x7f).contains(&b))
            .map_or(0, |p| p + 1);
        let tail = &chunk[start..];
        if tail.len() < 6 || tail.len() > 4096 {
            continue;
        }
        let Ok(s) = std::str::from_utf8(tail) else {
            continue;
        };
        if is_library_name(s) || is_library_path(s) {
            out.push(s.to_owned());
        }
    }
    out
}

/// One immediate store seen in the code: memory operand (without displacement), displacement,
/// and the bytes written.
struct Store {
    base: (u8, u8, u8),
    disp: i64,
    bytes: Vec<u8>,
}

/// How far after a `movabs $"lib...", %reg` the stores that complete the name are looked for.
const WINDOW: usize = 192;

/// Rebuilds names from `movabs $imm64, %reg` + `mov %reg, disp(base)` and
/// `mov{l,w,b} $imm, disp(base)` sequences starting with an immediate that begins with `lib`.
fn x86_64_immediate_names(code: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 2;
    while i + 8 <= code.len() {
        // movabs: REX.W (0x48/0x49) + B8+r, imm64 starting with "lib".
        if &code[i..i + 3] == b"lib"
            && matches!(code[i - 2], 0x48 | 0x49)
            && (0xb8..=0xbf).contains(&code[i - 1])
            && code[i..i + 8].iter().all(|&b| is_name_byte(b))
        {
            let start = i - 2;
            let end = (start + WINDOW).min(code.len());
            if let Some(name) = emulate_stores(&code[start..end]) {
                if !out.contains(&name) {
                    out.push(name);
                }
            }
            i += 8;
        } else {
            i += 1;
        }
    }
    out
}

/// Decodes the few instruction forms that build a string in memory, in a byte window, and
/// returns the name written at the base where the leading "lib" immediate was stored.
fn emulate_stores(code: &[u8]) -> Option<String> {
    let mut regs: [Option<[u8; 8]>; 16] = [None; 16];
    let mut stores: Vec<Store> = Vec::new();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        // movabs $imm64, %r
        if rest.len() >= 10 && matches!(rest[0], 0x48 | 0x49) && (0xb8..=0xbf).contains(&rest[1]) {
            let reg = usize::from(rest[1] - 0xb8) | (usize::from(rest[0] & 1) << 3);
            let mut imm = [0u8; 8];
            imm.copy_from_slice(&rest[2..10]);
            regs[reg] = Some(imm);
            i += 10;
            continue;
        }
        // mov %r64, mem: REX.W 89 /r
        if rest.len() >= 3 && (rest[0] & 0xf8) == 0x48 && rest[1] == 0x89 {
            if let Some((base, disp, len)) = memory_operand(rest[0], &rest[2..]) {
                let reg = usize::from((rest[2] >> 3) & 7) | (usize::from(rest[0] & 4) << 1);
                if let Some(imm) = regs[reg] {
                    stores.push(Store {
                        base,
                        disp,
                        bytes: imm.to_vec(),
                    });
                }
                i += 2 + len;
                continue;
            }
        }
        // mov{l,w,b} $imm, mem: [66] [REX without W] C7 /0 imm32|imm16, C6 /0 imm8
        // (with REX.W, C7 stores its imm32 sign-extended to 8 bytes).
        let (prefix, width) = match rest.first() {
            Some(0x66) => (1, 2),
            _ => (0, 4),
        };
        let rex = rest.get(prefix).copied().filter(|b| (b & 0xf0) == 0x40);
        let op_at = prefix + usize::from(rex.is_some());
        if let Some(&op) = rest.get(op_at) {
            if op == 0xc7 || (op == 0xc6 && prefix == 0) {
                let width = if op == 0xc6 { 1 } else { width };
                if let Some(modrm) = rest.get(op_at + 1) {
                    if (modrm >> 3) & 7 == 0 {
                        if let Some((base, disp, len)) =
                            memory_operand(rex.unwrap_or(0x40), &rest[op_at + 1..])
                        {
                            let imm_at = op_at + 1 + len;
                            if let Some(imm) = rest.get(imm_at..imm_at + width) {
                                let mut bytes = imm.to_vec();
                                if op == 0xc7 && rex.is_some_and(|r| r & 8 != 0) && width == 4 {
                                    let fill = if imm[3] & 0x80 != 0 { 0xff } else { 0 };
                                    bytes.extend_from_slice(&[fill; 4]);
                                }
                                stores.push(Store { base, disp, bytes });
                                i += imm_at + width;
                                continue;
                            }
                        }
                    }
                }
            }
        }
        i += 1;
    }

    let head = stores
        .iter()
        .position(|s| s.bytes.starts_with(b"lib") && s.bytes.len() == 8)?;
    let base = stores[head].base;
    let origin = stores[head].disp;
    // The name is complete once it reads as a library name; a later store to the same buffer
    // (the code reusing it) ends the search rather than spoiling the result.
    let mut buffer: Vec<Option<u8>> = vec![None; 64];
    let mut best = None;
    for store in stores[head..].iter().filter(|s| s.base == base) {
        // Stores below the name or far beyond it belong to other variables.
        let Ok(offset) = usize::try_from(store.disp - origin) else {
            continue;
        };
        if offset.saturating_add(store.bytes.len()) > buffer.len() {
            continue;
        }
        for (k, &b) in store.bytes.iter().enumerate() {
            buffer[offset + k] = Some(b);
        }
        let name: Vec<u8> = buffer
            .iter()
            .map_while(|b| b.filter(|&c| is_name_byte(c)))
            .collect();
        match String::from_utf8(name) {
            Ok(name) if is_library_name(&name) => best = Some(name),
            _ if best.is_some() => break,
            _ => {}
        }
    }
    best
}

/// Decodes a ModRM memory operand (mod != 3) and returns (base key, displacement, length of
/// ModRM + SIB + displacement).
fn memory_operand(rex: u8, bytes: &[u8]) -> Option<((u8, u8, u8), i64, usize)> {
    let modrm = *bytes.first()?;
    let mode = modrm >> 6;
    let rm = modrm & 7;
    if mode == 3 {
        return None;
    }
    let mut len = 1;
    let mut sib = 0;
    if rm == 4 {
        sib = *bytes.get(1)?;
        len += 1;
    }
    let disp_len = match mode {
        0 if rm == 5 || (rm == 4 && sib & 7 == 5) => 4,
        0 => 0,
        1 => 1,
        _ => 4,
    };
    let disp = match disp_len {
        0 => 0,
        1 => i64::from(*bytes.get(len)? as i8),
        _ => {
            let d = bytes.get(len..len + 4)?;
            i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]]))
        }
    };
    len += disp_len;
    // The base register, whatever the displacement size; RIP-relative gets its own key.
    let base = if mode == 0 && rm == 5 { 0xff } else { rm };
    Some(((base, sib, rex & 3), disp, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_name_pattern() {
        for ok in [
            "libcudnn.so.9",
            "libc.so.6",
            "libnvrtc.so",
            "libstdc++.so.6",
            "libx.so.1.2.3",
        ] {
            assert!(is_library_name(ok), "{ok}");
        }
        for bad in [
            "libcudnn",
            "cudnn.so.9",
            "libfoo.so.",
            "libfoo.so.x",
            "lib.so",
            "libfoo.sox",
            "libfoo.so.9a",
            "lib foo.so",
            "libfoo.dll",
            "",
        ] {
            assert!(!is_library_name(bad), "{bad}");
        }
    }

    #[test]
    fn strings_need_to_be_whole() {
        let data = b"\0libcudnn.so.9\0cannot load libfoo.so.1\0\x01\x02libcufft.so.12\0\
                     /opt/x/libbar.so.2\0libnvrtc.so";
        assert_eq!(
            strings_in(data),
            [
                "libcudnn.so.9",
                "libcufft.so.12",
                "/opt/x/libbar.so.2",
                "libnvrtc.so"
            ]
        );
    }

    #[test]
    fn rebuilds_overlapping_immediate_stores() {
        // Bytes from libonnxruntime_providers_cuda.so 1.31.1 (.text at file offset 0x49894e).
        let code = [
            0x48, 0xb8, b'l', b'i', b'b', b'c', b'u', b'd', b'n',
            b'n', // movabs "libcudnn",%rax
            0x48, 0x89, 0x84, 0x24, 0xb0, 0, 0, 0, // mov %rax,0xb0(%rsp)
            0x48, 0xb8, b'd', b'n', b'n', b'.', b's', b'o', b'.',
            b'9', // movabs "dnn.so.9",%rax
            0x48, 0xc7, 0x44, 0x24, 0x48, 0, 0, 0, 0, // movq $0,0x48(%rsp)
            0xc6, 0x44, 0x24, 0x50, 0, // movb $0,0x50(%rsp)
            0x48, 0x89, 0x84, 0x24, 0xb5, 0, 0, 0, // mov %rax,0xb5(%rsp)
            0xc6, 0x84, 0x24, 0xbd, 0, 0, 0, 0, // movb $0,0xbd(%rsp)
        ];
        assert_eq!(x86_64_immediate_names(&code), ["libcudnn.so.9"]);

        // movabs "libcudnn"; mov %rax,0xb0(%rsp); movl $"n.so",0xb7(%rsp) -> "libcudnn.so"
        let code = [
            0x48, 0xb8, b'l', b'i', b'b', b'c', b'u', b'd', b'n', b'n', 0x48, 0x89, 0x84, 0x24,
            0xb0, 0, 0, 0, 0xc7, 0x84, 0x24, 0xb7, 0, 0, 0, b'n', b'.', b's', b'o',
        ];
        assert_eq!(x86_64_immediate_names(&code), ["libcudnn.so"]);

        // ... and when the buffer is cleared afterwards (movq $0,0xb0(%rsp)), the name stays.
        let mut cleared = code.to_vec();
        cleared.extend_from_slice(&[0x48, 0xc7, 0x84, 0x24, 0xb0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(x86_64_immediate_names(&cleared), ["libcudnn.so"]);

        // gcc -O2 for memcpy(p, "libcufft.so.12", 15): stores through %rdi with and without
        // a displacement.
        let code = [
            0x48, 0xb8, b'l', b'i', b'b', b'c', b'u', b'f', b'f', b't', 0x48, 0x89, 0x07, 0x48,
            0xb8, b't', b'.', b's', b'o', b'.', b'1', b'2', 0, 0x48, 0x89, 0x47, 0x07, 0xc3,
        ];
        assert_eq!(x86_64_immediate_names(&code), ["libcufft.so.12"]);

        // A "lib" immediate that never becomes a library name is not reported.
        let code = [
            0x48, 0xb8, b'l', b'i', b'b', b'r', b'a', b'r', b'y', b'_', 0xc3,
        ];
        assert!(x86_64_immediate_names(&code).is_empty());
    }

    #[test]
    fn hostile_code_windows_do_not_panic() {
        let mut code = vec![0x48, 0xb8, b'l', b'i', b'b', b'a', b'a', b'a', b'a', b'a'];
        code.extend_from_slice(&[0x48, 0x89, 0x84, 0x24, 0xff, 0xff, 0xff, 0x7f, 0xc7, 0x84]);
        let _ = x86_64_immediate_names(&code);
        for cut in 0..code.len() {
            let _ = x86_64_immediate_names(&code[..cut]);
            let _ = emulate_stores(&code[cut..]);
        }
    }
}
