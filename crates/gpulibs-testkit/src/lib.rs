//! Test only: fixtures shared by the tests of several crates.
//!
//! - Fatbin containers written byte by byte (the layout `gpulibs-inspect`'s `fatbin` module
//!   documents) and compiled into real ELF shared objects with the system C compiler, so the
//!   inspect, package and CLI tests read the same kind of file a user has (this module's root:
//!   [`Entry`], [`container`], [`build_so`]); plain libraries with a SONAME and `DT_NEEDED`
//!   entries ([`build_library`]) for the store's, install's and CLI's tests of reused system
//!   libraries.
//! - [`http`]: a real HTTP/1.1 server on 127.0.0.1 with files per path, a default reply per
//!   path, scripted per-request faults and a request log, and a `CONNECT` proxy; the fetch,
//!   install and CLI tests download from it.
//! - [`tree`]: everything under a directory, for tests that check what a run left behind.
//! - [`faults`]: fault tables that run every row, record each row's outcome (for
//!   `docs/fault-table.md`) and fail naming every failed row.
//! - [`fake_nvml`]: the fake NVML library (`crates/gpulibs-fake-nvml`), built once per test
//!   binary with a nested `cargo build`, and its scenario files; the detect and CLI tests load it.
//!
//! Owns: test fixtures. Must not be a dependency of anything shipped (dev-dependencies only).
//! Dependencies stay small (std, plus the two fatbin compressors); TLS for the HTTP server is
//! put in front by the tests that need it (see [`http`]).

pub mod fake_nvml;
pub mod faults;
pub mod http;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const MAGIC: u32 = 0xBA55_ED50;
pub const FLAG_A: u64 = 0x10_0000;
pub const FLAG_F: u64 = 0x20_0000;
const FLAG_LZ4: u64 = 0x2000;
const FLAG_ZSTD: u64 = 0x8000;
/// 64-bit, CUDA producer, Linux host: what entries of the ONNX Runtime wheels carry (0x11).
const BASE_FLAGS: u64 = 0x11;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    Raw,
    Lz4,
    Zstd,
}

/// One entry to write.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: u16,
    pub arch: u32,
    pub flags: u64,
    pub code_version: (u16, u16),
    pub payload: Vec<u8>,
    pub packing: Packing,
    pub header_size: u32,
}

impl Entry {
    /// A cubin entry for `sm_<arch>` with a recognisable payload.
    pub fn sass(arch: u32) -> Self {
        let mut payload = b"\x7fELF".to_vec();
        payload.extend((0..200u32).map(|i| (i * 7 + arch) as u8));
        Self {
            kind: 2,
            arch,
            flags: BASE_FLAGS,
            code_version: (1, 8),
            payload,
            packing: Packing::Raw,
            header_size: 64,
        }
    }

    /// A PTX entry for `compute_<arch>` with ISA `major.minor`. PTX entries carry an options
    /// pair after the 64 header bytes, hence 72 \[E1\].
    pub fn ptx(arch: u32, isa: (u16, u16)) -> Self {
        let text = format!(
            ".version {}.{}\n.target sm_{arch}\n.address_size 64\n{}",
            isa.0,
            isa.1,
            "// body\n".repeat(40)
        );
        Self {
            kind: 1,
            arch,
            flags: BASE_FLAGS,
            code_version: isa,
            payload: text.into_bytes(),
            packing: Packing::Raw,
            header_size: 72,
        }
    }

    pub fn other(kind: u16, arch: u32) -> Self {
        Self {
            kind,
            ..Self::sass(arch)
        }
    }

    pub fn a(mut self) -> Self {
        self.flags |= FLAG_A;
        self
    }

    pub fn f(mut self) -> Self {
        self.flags |= FLAG_F;
        self
    }

    pub fn lz4(mut self) -> Self {
        self.packing = Packing::Lz4;
        self
    }

    pub fn zstd(mut self) -> Self {
        self.packing = Packing::Zstd;
        self
    }

    pub fn header_size(mut self, n: u32) -> Self {
        self.header_size = n;
        self
    }

    /// Header and payload bytes, payload padded to 8 like real producers do.
    pub fn bytes(&self) -> Vec<u8> {
        let (stored, flags, compressed_size) = match self.packing {
            Packing::Raw => (self.payload.clone(), self.flags, 0u32),
            Packing::Lz4 => {
                let c = lz4_flex::block::compress(&self.payload);
                let n = c.len() as u32;
                (c, self.flags | FLAG_LZ4, n)
            }
            Packing::Zstd => {
                let c = ruzstd::encoding::compress_to_vec(
                    self.payload.as_slice(),
                    ruzstd::encoding::CompressionLevel::Fastest,
                );
                let n = c.len() as u32;
                (c, self.flags | FLAG_ZSTD, n)
            }
        };
        let mut padded = stored;
        while padded.len() % 8 != 0 {
            padded.push(0);
        }
        let hs = self.header_size.max(64) as usize;
        let mut h = vec![0u8; hs];
        h[0..2].copy_from_slice(&self.kind.to_le_bytes());
        h[2..4].copy_from_slice(&0x0101u16.to_le_bytes());
        h[4..8].copy_from_slice(&self.header_size.to_le_bytes());
        h[8..16].copy_from_slice(&(padded.len() as u64).to_le_bytes());
        h[0x10..0x14].copy_from_slice(&compressed_size.to_le_bytes());
        h[0x18..0x1A].copy_from_slice(&self.code_version.1.to_le_bytes());
        h[0x1A..0x1C].copy_from_slice(&self.code_version.0.to_le_bytes());
        h[0x1C..0x20].copy_from_slice(&self.arch.to_le_bytes());
        h[0x28..0x30].copy_from_slice(&flags.to_le_bytes());
        h[0x38..0x40].copy_from_slice(&(self.payload.len() as u64).to_le_bytes());
        h.extend_from_slice(&padded);
        h
    }
}

/// A container: 16-byte header (`magic | version 1 | header_size 16 | fat_size`), then entries.
pub fn container(entries: &[Entry]) -> Vec<u8> {
    let body: Vec<u8> = entries.iter().flat_map(Entry::bytes).collect();
    let mut c = Vec::new();
    c.extend_from_slice(&MAGIC.to_le_bytes());
    c.extend_from_slice(&1u16.to_le_bytes());
    c.extend_from_slice(&16u16.to_le_bytes());
    c.extend_from_slice(&(body.len() as u64).to_le_bytes());
    c.extend_from_slice(&body);
    c
}

/// Where a blob goes in the C file.
#[derive(Debug, Clone, Copy)]
pub enum Place {
    /// `__attribute__((section(NAME)))`, read-only.
    Section(&'static str),
    /// A writable global: `.data`.
    Data,
    /// A `const` global: `.rodata`.
    Rodata,
}

/// A vendor's CUDA library as the CLI tests use it: `dir/libvendor_cuda.so` with one
/// `.nv_fatbin` container holding SASS for sm_75, sm_86 and sm_90a and PTX for compute_90
/// (ISA 8.8).
pub fn vendor_cuda_library(dir: &Path) -> PathBuf {
    let kernels = [
        Entry::sass(75),
        Entry::sass(86),
        Entry::sass(90).a(),
        Entry::ptx(90, (8, 8)),
    ];
    build_so(
        dir,
        "libvendor_cuda.so",
        &[(Place::Section(".nv_fatbin"), container(&kernels))],
    )
}

/// Compiles `blobs` into a shared object `name` in `dir` with `cc -shared -fPIC`.
pub fn build_so(dir: &Path, name: &str, blobs: &[(Place, Vec<u8>)]) -> PathBuf {
    let mut src = String::from("/* generated by gpulibs-testkit */\n");
    for (i, (place, data)) in blobs.iter().enumerate() {
        let attr = match place {
            Place::Section(s) => {
                format!("__attribute__((section(\"{s}\"), aligned(8), used)) const")
            }
            Place::Data => "__attribute__((aligned(8), used))".to_string(),
            Place::Rodata => "__attribute__((aligned(8), used)) const".to_string(),
        };
        let bytes: Vec<String> = data.iter().map(|b| b.to_string()).collect();
        src.push_str(&format!(
            "{attr} unsigned char blob{i}[{}] = {{{}}};\n",
            data.len().max(1),
            if bytes.is_empty() {
                "0".to_string()
            } else {
                bytes.join(",")
            }
        ));
    }
    src.push_str("int gpulibs_test_function(void) { return 42; }\n");
    if !blobs.is_empty() {
        // Where the loader mapped the first blob, to compare loaded bytes with the file.
        src.push_str("const void *gpulibs_test_blob0(void) { return blob0; }\n");
    }
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).unwrap();
    let out = dir.join(name);
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-shared", "-fPIC", "-O0", "-o"])
        .arg(&out)
        .arg(&c)
        .status()
        .expect("run the C compiler (cc)");
    assert!(status.success(), "cc failed for {}", c.display());
    out
}

/// Compiles a real shared object at `out` with `DT_SONAME` `soname` and a `DT_NEEDED` entry for
/// each file of `needs` (linked against) with the system C compiler: a library that the
/// loader, `gpulibs-inspect` and the system scan of `gpulibs-sources` all accept.
pub fn build_library(out: &Path, soname: &str, needs: &[&Path]) {
    let dir = out.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let src = dir.join(format!(".{soname}.c"));
    let symbol: String = soname
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    std::fs::write(&src, format!("int {symbol}(void) {{ return 1; }}\n")).unwrap();
    let mut cmd = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cmd.args(["-shared", "-fPIC", "-o"])
        .arg(out)
        .arg(&src)
        .arg(format!("-Wl,-soname,{soname}"));
    for n in needs {
        cmd.arg(n);
    }
    let output = cmd.output().expect("running the C compiler (cc)");
    std::fs::remove_file(&src).unwrap();
    assert!(
        output.status.success(),
        "cc failed for {}:\n{}",
        out.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One entry of a [`tree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File(Vec<u8>),
    /// A symbolic link and its target (never followed).
    Link(PathBuf),
    Dir,
}

/// Every file, link and directory under `dir`, by path relative to `dir`, with file contents
/// and link targets; a missing `dir` is an empty tree.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let node = if meta.is_symlink() {
                Node::Link(std::fs::read_link(&p).unwrap())
            } else if meta.is_dir() {
                stack.push(p);
                Node::Dir
            } else {
                Node::File(std::fs::read(&p).unwrap())
            };
            out.insert(rel, node);
        }
    }
    out
}
