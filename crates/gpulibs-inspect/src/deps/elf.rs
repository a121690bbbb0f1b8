//! The dynamic section of an ELF file, read from bytes.

use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader, SectionHeader};
use object::read::SectionIndex;
use object::Endianness;
use serde::{Deserialize, Serialize};

use super::runtime_names::{runtime_library_names, RuntimeName};
use super::ParseError;

/// ELF file class (`EI_CLASS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ElfClass {
    /// `ELFCLASS32`.
    Elf32,
    /// `ELFCLASS64`.
    Elf64,
}

/// ELF data encoding (`EI_DATA`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ByteOrder {
    /// `ELFDATA2LSB`.
    Little,
    /// `ELFDATA2MSB`.
    Big,
}

/// What `ld.so` compares before it accepts a candidate file: class, byte order and machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ElfIdentity {
    /// 32- or 64-bit.
    pub class: ElfClass,
    /// Little- or big-endian.
    pub byte_order: ByteOrder,
    /// `e_machine` (62 = x86-64, 3 = i386, 183 = AArch64).
    pub machine: u16,
}

impl ElfIdentity {
    /// Reads the identity from the first 20 bytes of a file.
    pub fn from_header(bytes: &[u8]) -> Result<Self, ParseError> {
        if bytes.len() < 4 || bytes[..4] != elf::ELFMAG {
            return Err(ParseError::NotElf);
        }
        if bytes.len() < 20 {
            return Err(ParseError::Truncated("ELF header".into()));
        }
        let class = match bytes[4] {
            c if c == elf::ELFCLASS32.0 => ElfClass::Elf32,
            c if c == elf::ELFCLASS64.0 => ElfClass::Elf64,
            other => return Err(ParseError::Malformed(format!("unknown ELF class {other}"))),
        };
        let (byte_order, machine) = match bytes[5] {
            d if d == elf::ELFDATA2LSB.0 => (
                ByteOrder::Little,
                u16::from_le_bytes([bytes[18], bytes[19]]),
            ),
            d if d == elf::ELFDATA2MSB.0 => {
                (ByteOrder::Big, u16::from_be_bytes([bytes[18], bytes[19]]))
            }
            other => {
                return Err(ParseError::Malformed(format!(
                    "unknown ELF data encoding {other}"
                )))
            }
        };
        Ok(ElfIdentity {
            class,
            byte_order,
            machine,
        })
    }
}

/// The dynamic-linking facts of one ELF file.
///
/// `rpath` and `runpath` are the raw strings of the file (colon-separated, tokens such as
/// `$ORIGIN` unexpanded); `None` means the tag is absent, which matters: an empty `DT_RUNPATH`
/// still disables `DT_RPATH`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicInfo {
    /// Class, byte order and machine.
    pub identity: ElfIdentity,
    /// Whether the file has a dynamic section at all (static executables and objects do not).
    pub is_dynamic: bool,
    /// `DT_SONAME`.
    pub soname: Option<String>,
    /// `DT_NEEDED`, in file order.
    pub needed: Vec<String>,
    /// `DT_RPATH`.
    pub rpath: Option<String>,
    /// `DT_RUNPATH`.
    pub runpath: Option<String>,
    /// Libraries named in the file's data or code and probably `dlopen`ed; empty when read with
    /// [`dynamic_section`].
    pub runtime_names: Vec<RuntimeName>,
}

/// Reads the dynamic section and scans the file for library names it loads at run time.
pub fn dynamic_info(bytes: &[u8]) -> Result<DynamicInfo, ParseError> {
    let mut info = dynamic_section(bytes)?;
    let mut exclude: Vec<&str> = info.needed.iter().map(String::as_str).collect();
    if let Some(soname) = &info.soname {
        exclude.push(soname);
    }
    info.runtime_names = runtime_library_names(bytes, &exclude)?;
    Ok(info)
}

/// Reads only the dynamic section (cheap: no scan of the file's data); `runtime_names` is empty.
pub fn dynamic_section(bytes: &[u8]) -> Result<DynamicInfo, ParseError> {
    let identity = ElfIdentity::from_header(bytes)?;
    match identity.class {
        ElfClass::Elf32 => parse::<elf::FileHeader32<Endianness>>(bytes, identity),
        ElfClass::Elf64 => parse::<elf::FileHeader64<Endianness>>(bytes, identity),
    }
}

fn malformed(what: &str) -> impl FnOnce(object::Error) -> ParseError + '_ {
    move |e| ParseError::Malformed(format!("{what}: {e}"))
}

/// Reads the dynamic entries through the section headers, or through `PT_DYNAMIC` when the file
/// has none (the loader itself only uses the program headers).
fn parse<Elf: FileHeader<Endian = Endianness>>(
    data: &[u8],
    identity: ElfIdentity,
) -> Result<DynamicInfo, ParseError> {
    let header = Elf::parse(data).map_err(|e| ParseError::Truncated(e.to_string()))?;
    let endian = header.endian().map_err(malformed("ELF header"))?;

    let mut entries: Vec<(i64, u64)> = Vec::new();
    let mut strtab: &[u8] = &[];
    let mut found = false;

    let sections = header
        .sections(endian, data)
        .map_err(malformed("section headers"))?;
    if let Some(section) = sections
        .iter()
        .find(|s| s.sh_type(endian) == elf::SHT_DYNAMIC)
    {
        let dyns: &[Elf::Dyn] = section
            .data_as_array(endian, data)
            .map_err(|e| ParseError::Truncated(format!("dynamic section: {e}")))?;
        entries = collect(endian, dyns);
        let link = SectionIndex(section.sh_link(endian) as usize);
        let strings = sections
            .section(link)
            .map_err(malformed("dynamic string table"))?;
        strtab = strings
            .data(endian, data)
            .map_err(|e| ParseError::Truncated(format!("dynamic string table: {e}")))?;
        found = true;
    } else {
        let segments = header
            .program_headers(endian, data)
            .map_err(malformed("program headers"))?;
        for segment in segments {
            if let Some(dyns) = segment
                .dynamic(endian, data)
                .map_err(malformed("PT_DYNAMIC"))?
            {
                entries = collect(endian, dyns);
                found = true;
                break;
            }
        }
        if found {
            let addr = entries
                .iter()
                .find(|e| e.0 == elf::DT_STRTAB.0)
                .map(|e| e.1);
            let size = entries.iter().find(|e| e.0 == elf::DT_STRSZ.0).map(|e| e.1);
            if let (Some(addr), Some(size)) = (addr, size) {
                strtab = segments
                    .iter()
                    .filter(|s| s.p_type(endian) == elf::PT_LOAD)
                    .find_map(|s| s.data_range(endian, data, addr, size).ok().flatten())
                    .ok_or_else(|| ParseError::Truncated("DT_STRTAB outside the file".into()))?;
            }
        }
    }

    let string = |offset: u64| -> Result<String, ParseError> {
        let start = usize::try_from(offset)
            .ok()
            .filter(|&s| s < strtab.len())
            .ok_or_else(|| {
                ParseError::Malformed(format!("string offset {offset} outside .dynstr"))
            })?;
        let rest = &strtab[start..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| ParseError::Malformed("unterminated string in .dynstr".into()))?;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    };

    let mut info = DynamicInfo {
        identity,
        is_dynamic: found,
        soname: None,
        needed: Vec::new(),
        rpath: None,
        runpath: None,
        runtime_names: Vec::new(),
    };
    // glibc keeps the last entry of each single-valued tag; do the same.
    for &(tag, val) in &entries {
        match tag {
            t if t == elf::DT_NEEDED.0 => info.needed.push(string(val)?),
            t if t == elf::DT_SONAME.0 => info.soname = Some(string(val)?),
            t if t == elf::DT_RPATH.0 => info.rpath = Some(string(val)?),
            t if t == elf::DT_RUNPATH.0 => info.runpath = Some(string(val)?),
            _ => {}
        }
    }
    Ok(info)
}

fn collect<D: Dyn>(endian: D::Endian, dyns: &[D]) -> Vec<(i64, u64)> {
    dyns.iter()
        .map(|d| (d.d_tag(endian).0, d.d_val(endian).into()))
        .take_while(|&(tag, _)| tag != elf::DT_NULL.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_rejects_non_elf_and_short_headers() {
        assert_eq!(
            ElfIdentity::from_header(b"MZ\x90\0"),
            Err(ParseError::NotElf)
        );
        assert!(matches!(
            ElfIdentity::from_header(b"\x7fELF\x02\x01"),
            Err(ParseError::Truncated(_))
        ));
        let mut h = [0u8; 20];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 9;
        assert!(matches!(
            ElfIdentity::from_header(&h),
            Err(ParseError::Malformed(_))
        ));
        h[4] = 2;
        h[5] = 2;
        h[18] = 0;
        h[19] = 21; // EM_PPC64, big-endian
        let id = ElfIdentity::from_header(&h).unwrap();
        assert_eq!(
            id,
            ElfIdentity {
                class: ElfClass::Elf64,
                byte_order: ByteOrder::Big,
                machine: 21
            }
        );
    }
}
