//! `/etc/ld.so.cache`, the loader's index of the libraries in the `ldconfig` directories.
//!
//! Two layouts exist: the new one (`glibc-ld.so.cache1.1`, the only one written since glibc
//! 2.32) and the old one (`ld.so-1.7.0`), which older `ldconfig`s wrote followed by a new one.
//! When both are present the new one is used, as `ld.so` does. Every offset is bounds-checked;
//! an entry whose strings fall outside the file is dropped, a header that does not fit is an
//! error.

use std::path::{Path, PathBuf};

use object::elf;
use serde::{Deserialize, Serialize};

use super::elf::{ElfClass, ElfIdentity};
use super::DepsError;

/// Why bytes are not a loader cache.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LdCacheError {
    /// Neither magic string is present.
    #[error("not a loader cache (no ld.so.cache magic)")]
    BadMagic,
    /// The header declares more entries than the file holds.
    #[error("truncated loader cache: {0}")]
    Truncated(&'static str),
}

/// One library in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LdCacheEntry {
    /// The soname the entry answers to (`libz.so.1`).
    pub name: String,
    /// The file `ld.so` opens for it.
    pub path: PathBuf,
    /// `FLAG_ELF_LIBC6` plus the ABI bits (`0x0303` = libc6, x86-64), as `ldconfig -p` shows
    /// in words.
    pub flags: u32,
    /// Non-zero for `glibc-hwcaps` and legacy hwcap variants of a library.
    pub hwcap: u64,
}

/// A parsed loader cache.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LdCache {
    /// Entries in file order (sorted by the loader's comparison, as `ldconfig` writes them).
    pub entries: Vec<LdCacheEntry>,
}

const MAGIC_OLD: &[u8] = b"ld.so-1.7.0";
const MAGIC_NEW: &[u8] = b"glibc-ld.so.cache1.1";
const NEW_HEADER: usize = 48;
const NEW_ENTRY: usize = 24;
const OLD_HEADER: usize = 16;
const OLD_ENTRY: usize = 12;
const FLAG_ELF_LIBC6: u32 = 0x0003;

impl LdCache {
    /// Reads and parses a cache file.
    pub fn load(path: &Path) -> Result<Self, DepsError> {
        let bytes = std::fs::read(path).map_err(|source| DepsError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&bytes).map_err(|source| DepsError::LdCache {
            path: path.to_owned(),
            source,
        })
    }

    /// Parses the bytes of a cache file.
    pub fn parse(bytes: &[u8]) -> Result<Self, LdCacheError> {
        if bytes.starts_with(MAGIC_NEW) {
            return parse_new(bytes);
        }
        if !bytes.starts_with(MAGIC_OLD) {
            return Err(LdCacheError::BadMagic);
        }
        let nlibs = read_u32(bytes, 12, false).ok_or(LdCacheError::Truncated("old header"))?;
        let old_end = (nlibs as usize)
            .checked_mul(OLD_ENTRY)
            .and_then(|n| n.checked_add(OLD_HEADER))
            .filter(|&end| end <= bytes.len())
            .ok_or(LdCacheError::Truncated("old entries"))?;
        let new_start = old_end.next_multiple_of(8);
        if bytes
            .get(new_start..)
            .is_some_and(|b| b.starts_with(MAGIC_NEW))
        {
            return parse_new(&bytes[new_start..]);
        }
        // Old layout only: offsets count from the string table after the entries.
        let strings = &bytes[old_end..];
        let mut entries = Vec::new();
        for i in 0..nlibs as usize {
            let at = OLD_HEADER + i * OLD_ENTRY;
            let (Some(flags), Some(key), Some(value)) = (
                read_u32(bytes, at, false),
                read_u32(bytes, at + 4, false),
                read_u32(bytes, at + 8, false),
            ) else {
                break;
            };
            if let (Some(name), Some(path)) = (c_str(strings, key), c_str(strings, value)) {
                entries.push(LdCacheEntry {
                    name,
                    path: PathBuf::from(path),
                    flags,
                    hwcap: 0,
                });
            }
        }
        Ok(LdCache { entries })
    }

    /// The file `ld.so` would take from the cache for `name`, given the flags it accepts
    /// (`None`: any libc6 entry). Baseline entries win over hwcap variants.
    pub fn lookup(&self, name: &str, flags: Option<u32>) -> Option<&LdCacheEntry> {
        let mut matching = self.entries.iter().filter(|e| {
            e.name == name
                && match flags {
                    Some(f) => e.flags == f,
                    None => e.flags & 0xff == FLAG_ELF_LIBC6,
                }
        });
        let first = matching.next()?;
        if first.hwcap == 0 {
            return Some(first);
        }
        matching.find(|e| e.hwcap == 0).or(Some(first))
    }

    /// The cache flags `ld.so` accepts for an object of this class and machine
    /// (`_DL_CACHE_DEFAULT_ID`); `None` where that depends on more than class and machine.
    pub fn flags_for(identity: &ElfIdentity) -> Option<u32> {
        let abi = match (identity.class, identity.machine) {
            (ElfClass::Elf64, m) if m == elf::EM_X86_64.0 => 0x0300,
            (ElfClass::Elf32, m) if m == elf::EM_X86_64.0 => 0x0800, // x32
            (ElfClass::Elf32, m) if m == elf::EM_386.0 => 0,
            (ElfClass::Elf64, m) if m == elf::EM_AARCH64.0 => 0x0a00,
            (ElfClass::Elf64, m) if m == elf::EM_PPC64.0 => 0x0500,
            (ElfClass::Elf64, m) if m == elf::EM_S390.0 => 0x0400,
            _ => return None,
        };
        Some(FLAG_ELF_LIBC6 | abi)
    }
}

fn parse_new(bytes: &[u8]) -> Result<LdCache, LdCacheError> {
    if bytes.len() < NEW_HEADER {
        return Err(LdCacheError::Truncated("header"));
    }
    // Byte 28 says the byte order: 2 little, 3 big, 0 the writer's (assume ours).
    let big = match bytes[28] & 3 {
        2 => false,
        3 => true,
        _ => cfg!(target_endian = "big"),
    };
    let nlibs = read_u32(bytes, 20, big).ok_or(LdCacheError::Truncated("header"))? as usize;
    nlibs
        .checked_mul(NEW_ENTRY)
        .and_then(|n| n.checked_add(NEW_HEADER))
        .filter(|&end| end <= bytes.len())
        .ok_or(LdCacheError::Truncated("entries"))?;
    let mut entries = Vec::with_capacity(nlibs);
    for i in 0..nlibs {
        let at = NEW_HEADER + i * NEW_ENTRY;
        let (Some(flags), Some(key), Some(value), Some(hwcap)) = (
            read_u32(bytes, at, big),
            read_u32(bytes, at + 4, big),
            read_u32(bytes, at + 8, big),
            read_u64(bytes, at + 16, big),
        ) else {
            break;
        };
        // New-format string offsets count from the start of the new header.
        if let (Some(name), Some(path)) = (c_str(bytes, key), c_str(bytes, value)) {
            entries.push(LdCacheEntry {
                name,
                path: PathBuf::from(path),
                flags,
                hwcap,
            });
        }
    }
    Ok(LdCache { entries })
}

fn read_u32(bytes: &[u8], at: usize, big: bool) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if big {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}

fn read_u64(bytes: &[u8], at: usize, big: bool) -> Option<u64> {
    let b: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(if big {
        u64::from_be_bytes(b)
    } else {
        u64::from_le_bytes(b)
    })
}

fn c_str(bytes: &[u8], offset: u32) -> Option<String> {
    let rest = bytes.get(offset as usize..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    (end > 0).then(|| String::from_utf8_lossy(&rest[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new-format cache with the given (flags, name, path, hwcap) entries.
    pub(crate) fn build_new(entries: &[(u32, &str, &str, u64)], big: bool) -> Vec<u8> {
        let put32 = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let put64 = |v: u64| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut strings = Vec::new();
        let base = NEW_HEADER + entries.len() * NEW_ENTRY;
        let mut table = Vec::new();
        for &(flags, name, path, hwcap) in entries {
            let key = (base + strings.len()) as u32;
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
            let value = (base + strings.len()) as u32;
            strings.extend_from_slice(path.as_bytes());
            strings.push(0);
            table.extend_from_slice(&put32(flags));
            table.extend_from_slice(&put32(key));
            table.extend_from_slice(&put32(value));
            table.extend_from_slice(&put32(0));
            table.extend_from_slice(&put64(hwcap));
        }
        let mut out = MAGIC_NEW.to_vec();
        out.extend_from_slice(&put32(entries.len() as u32));
        out.extend_from_slice(&put32(strings.len() as u32));
        out.push(if big { 3 } else { 2 });
        out.extend_from_slice(&[0; 3]);
        out.extend_from_slice(&[0; 16]);
        assert_eq!(out.len(), NEW_HEADER);
        out.extend_from_slice(&table);
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn parses_new_format_both_byte_orders() {
        for big in [false, true] {
            let bytes = build_new(
                &[
                    (0x0303, "libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1", 0),
                    (0x0003, "libz.so.1", "/lib/i386-linux-gnu/libz.so.1", 0),
                ],
                big,
            );
            let cache = LdCache::parse(&bytes).unwrap();
            assert_eq!(cache.entries.len(), 2);
            let x64 = cache.lookup("libz.so.1", Some(0x0303)).unwrap();
            assert_eq!(x64.path, Path::new("/lib/x86_64-linux-gnu/libz.so.1"));
            let i386 = cache.lookup("libz.so.1", Some(0x0003)).unwrap();
            assert_eq!(i386.path, Path::new("/lib/i386-linux-gnu/libz.so.1"));
            assert!(cache.lookup("libz.so.1", Some(0x0a03)).is_none());
        }
    }

    #[test]
    fn baseline_entry_preferred_over_hwcaps() {
        let bytes = build_new(
            &[
                (
                    0x0303,
                    "libm.so.6",
                    "/usr/lib/glibc-hwcaps/x86-64-v3/libm.so.6",
                    1 << 62,
                ),
                (0x0303, "libm.so.6", "/usr/lib/libm.so.6", 0),
            ],
            false,
        );
        let cache = LdCache::parse(&bytes).unwrap();
        assert_eq!(
            cache.lookup("libm.so.6", Some(0x0303)).unwrap().path,
            Path::new("/usr/lib/libm.so.6")
        );
    }

    #[test]
    fn old_followed_by_new_uses_new() {
        let new = build_new(&[(0x0303, "libfoo.so.1", "/new/libfoo.so.1", 0)], false);
        let mut bytes = MAGIC_OLD.to_vec();
        bytes.push(0);
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&[3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // one old entry
        while bytes.len() % 8 != 0 {
            bytes.push(0);
        }
        bytes.extend_from_slice(&new);
        let cache = LdCache::parse(&bytes).unwrap();
        assert_eq!(cache.entries.len(), 1);
        assert_eq!(cache.entries[0].path, Path::new("/new/libfoo.so.1"));
    }

    #[test]
    fn old_format_alone() {
        let mut bytes = MAGIC_OLD.to_vec();
        bytes.push(0);
        bytes.extend_from_slice(&1u32.to_le_bytes());
        for v in [0x0303u32, 0, 12] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes.extend_from_slice(b"libold.so.1\0/old/libold.so.1\0");
        let cache = LdCache::parse(&bytes).unwrap();
        assert_eq!(cache.entries[0].name, "libold.so.1");
        assert_eq!(cache.entries[0].path, Path::new("/old/libold.so.1"));
    }

    #[test]
    fn hostile_bytes_are_errors_or_skipped_entries() {
        assert_eq!(LdCache::parse(b""), Err(LdCacheError::BadMagic));
        assert_eq!(
            LdCache::parse(b"glibc-ld.so.cache1.1"),
            Err(LdCacheError::Truncated("header"))
        );
        // nlibs = u32::MAX
        let mut bytes = build_new(&[(0x0303, "liba.so.1", "/a", 0)], false);
        bytes[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            LdCache::parse(&bytes),
            Err(LdCacheError::Truncated("entries"))
        );
        // String offsets pointing past the end: entry dropped.
        let mut bytes = build_new(&[(0x0303, "liba.so.1", "/a", 0)], false);
        bytes[NEW_HEADER + 4..NEW_HEADER + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(LdCache::parse(&bytes).unwrap().entries.is_empty());
        // Every truncation of a valid cache: no panic.
        let bytes = build_new(
            &[(0x0303, "liba.so.1", "/a", 0), (3, "libb.so", "/b", 0)],
            false,
        );
        for cut in 0..bytes.len() {
            let _ = LdCache::parse(&bytes[..cut]);
        }
        let mut old = MAGIC_OLD.to_vec();
        old.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            LdCache::parse(&old),
            Err(LdCacheError::Truncated("old entries"))
        );
    }
}
