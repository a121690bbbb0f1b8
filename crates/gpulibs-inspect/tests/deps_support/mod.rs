//! Helpers for the `deps_*` tests: build real shared objects with the system C compiler, and an
//! in-memory file system for the pure tests.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use gpulibs_inspect::deps::{dynamic_section, DepsError, DynamicInfo, FileProbe};

/// Compiles `source` (C) into the shared object `out` with `soname` and extra arguments
/// (libraries to link, `-Wl,...` flags). Panics with the compiler's output on failure.
pub fn build_so(out: &Path, soname: &str, source: &str, extra: &[&str]) {
    let src = out.with_extension("c");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&src, source).unwrap();
    let mut cmd = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cmd.args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(out)
        .arg(&src)
        .arg(format!("-Wl,-soname,{soname}"))
        .args(extra);
    let output = cmd.output().expect("running the C compiler (cc)");
    assert!(
        output.status.success(),
        "cc failed for {}:\n{}",
        out.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A trivial library exporting `fn_name`.
pub fn build_leaf(out: &Path, soname: &str, fn_name: &str) {
    build_so(
        out,
        soname,
        &format!("int {fn_name}(void) {{ return 1; }}\n"),
        &[],
    );
}

/// Tries to build a 32-bit shared object (no C library needed); false when the toolchain
/// cannot.
pub fn try_build_so_32(out: &Path, soname: &str) -> bool {
    let src = out.with_extension("c");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&src, "int leaf32(void) { return 1; }\n").unwrap();
    Command::new("cc")
        .args(["-m32", "-nostdlib", "-shared", "-fPIC", "-o"])
        .arg(out)
        .arg(&src)
        .arg(format!("-Wl,-soname,{soname}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn read_info(path: &Path) -> DynamicInfo {
    gpulibs_inspect::deps::dynamic_info(&std::fs::read(path).unwrap()).unwrap()
}

/// Files held in memory.
#[derive(Default)]
pub struct MemFs {
    pub files: HashMap<PathBuf, Vec<u8>>,
}

impl MemFs {
    pub fn add(&mut self, path: impl Into<PathBuf>, bytes: Vec<u8>) {
        self.files.insert(path.into(), bytes);
    }
}

impl FileProbe for MemFs {
    fn head(&self, path: &Path) -> Option<Vec<u8>> {
        self.files.get(path).map(|b| b[..b.len().min(64)].to_vec())
    }

    fn dynamic_section(&self, path: &Path) -> Result<DynamicInfo, DepsError> {
        let bytes = self.files.get(path).ok_or_else(|| DepsError::Io {
            path: path.to_owned(),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        dynamic_section(bytes).map_err(|source| DepsError::Parse {
            path: path.to_owned(),
            source,
        })
    }
}

/// A minimal ELF header: class (1/2), data (1 LE / 2 BE), e_type, e_machine.
pub fn elf_header(class: u8, data: u8, e_type: u16, machine: u16) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = class;
    h[5] = data;
    h[6] = 1;
    let (t, m) = if data == 2 {
        (e_type.to_be_bytes(), machine.to_be_bytes())
    } else {
        (e_type.to_le_bytes(), machine.to_le_bytes())
    };
    h[16..18].copy_from_slice(&t);
    h[18..20].copy_from_slice(&m);
    h
}

/// What goes into a hand-made ELF shared object.
pub struct Crafted<'a> {
    pub class64: bool,
    pub big_endian: bool,
    pub machine: u16,
    pub soname: Option<&'a str>,
    pub needed: &'a [&'a str],
    pub rpath: Option<&'a str>,
    pub runpath: Option<&'a str>,
}

/// A minimal ET_DYN file with no section headers: one PT_LOAD covering the file (vaddr =
/// offset), a PT_DYNAMIC, the dynamic entries and their string table. Any class and byte order.
pub fn craft_elf(c: &Crafted) -> Vec<u8> {
    let (ehsize, phsize, dynsize) = if c.class64 { (64, 56, 16) } else { (52, 32, 8) };
    let mut strtab = vec![0u8];
    let mut add = |s: &str| {
        let at = strtab.len() as u64;
        strtab.extend_from_slice(s.as_bytes());
        strtab.push(0);
        at
    };
    let mut dyns: Vec<(u64, u64)> = Vec::new();
    for n in c.needed {
        dyns.push((1, add(n)));
    }
    if let Some(s) = c.soname {
        dyns.push((14, add(s)));
    }
    if let Some(s) = c.rpath {
        dyns.push((15, add(s)));
    }
    if let Some(s) = c.runpath {
        dyns.push((29, add(s)));
    }
    let dyn_off = ehsize + 2 * phsize;
    let str_off = dyn_off + (dyns.len() + 3) * dynsize;
    dyns.push((5, str_off as u64)); // DT_STRTAB
    dyns.push((10, strtab.len() as u64)); // DT_STRSZ
    dyns.push((0, 0));
    let total = str_off + strtab.len();

    let mut out = Vec::with_capacity(total);
    let be = c.big_endian;
    let w16 = |o: &mut Vec<u8>, v: u16| {
        o.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() })
    };
    let w32 = |o: &mut Vec<u8>, v: u32| {
        o.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() })
    };
    let w64 = |o: &mut Vec<u8>, v: u64| {
        o.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() })
    };
    let word = |o: &mut Vec<u8>, v: u64| {
        if c.class64 {
            w64(o, v)
        } else {
            w32(o, v as u32)
        }
    };

    out.extend_from_slice(b"\x7fELF");
    out.push(if c.class64 { 2 } else { 1 });
    out.push(if be { 2 } else { 1 });
    out.push(1);
    out.extend_from_slice(&[0; 9]);
    w16(&mut out, 3); // ET_DYN
    w16(&mut out, c.machine);
    w32(&mut out, 1);
    word(&mut out, 0); // e_entry
    word(&mut out, ehsize as u64); // e_phoff
    word(&mut out, 0); // e_shoff
    w32(&mut out, 0);
    w16(&mut out, ehsize as u16);
    w16(&mut out, phsize as u16);
    w16(&mut out, 2);
    w16(&mut out, if c.class64 { 64 } else { 40 });
    w16(&mut out, 0);
    w16(&mut out, 0);
    assert_eq!(out.len(), ehsize);
    for (p_type, off, size, flags) in [
        (1u32, 0u64, total as u64, 4u32),
        (2, dyn_off as u64, (dyns.len() * dynsize) as u64, 4),
    ] {
        w32(&mut out, p_type);
        if c.class64 {
            w32(&mut out, flags);
            w64(&mut out, off);
            w64(&mut out, off);
            w64(&mut out, off);
            w64(&mut out, size);
            w64(&mut out, size);
            w64(&mut out, 8);
        } else {
            for v in [off, off, off, size, size] {
                w32(&mut out, v as u32);
            }
            w32(&mut out, flags);
            w32(&mut out, 4);
        }
    }
    for (tag, val) in dyns {
        word(&mut out, tag);
        word(&mut out, val);
    }
    out.extend_from_slice(&strtab);
    assert_eq!(out.len(), total);
    out
}
