//! Archives built in memory, byte by byte where a hostile name needs it, and a small world of
//! components and installs for the life-cycle and crash tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use gpulibs_detect::{ComputeCapability, CudaVersion};
use gpulibs_hint::Hint;
use gpulibs_inspect::{KernelEntry, KernelTarget};
use gpulibs_store::*;
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

/// One tar member. Names and link targets are written into the header as raw bytes, so `..`
/// and absolute paths reach the archive (the `tar` crate's `set_path` refuses them).
pub enum M<'a> {
    File(&'a str, &'a [u8]),
    Exec(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Special(&'a str, EntryType),
    /// A header that declares `size` bytes followed by no data at all.
    Declares(&'a str, u64),
}

fn header(name: &str, kind: EntryType, size: u64, link: &str, mode: u32) -> Header {
    let mut h = Header::new_gnu();
    {
        let old = h.as_old_mut();
        assert!(name.len() < 100 && link.len() < 100);
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_cksum();
    h
}

pub fn tar_of(members: &[M]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        let (h, data): (Header, &[u8]) = match *m {
            M::File(n, d) => (header(n, EntryType::Regular, d.len() as u64, "", 0o644), d),
            M::Exec(n, d) => (header(n, EntryType::Regular, d.len() as u64, "", 0o755), d),
            M::Dir(n) => (header(n, EntryType::Directory, 0, "", 0o755), &[]),
            M::Symlink(n, t) => (header(n, EntryType::Symlink, 0, t, 0o777), &[]),
            M::Hardlink(n, t) => (header(n, EntryType::Link, 0, t, 0o644), &[]),
            M::Special(n, k) => (header(n, k, 0, "", 0o644), &[]),
            M::Declares(n, size) => {
                out.extend_from_slice(header(n, EntryType::Regular, size, "", 0o644).as_bytes());
                continue;
            }
        };
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

/// `data` as two xz streams back to back (the decoder must read past the first).
pub fn xz(data: &[u8]) -> Vec<u8> {
    let (a, b) = data.split_at(data.len() / 2);
    let mut out = Vec::new();
    for part in [a, b] {
        let mut w =
            lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(1)).unwrap();
        w.write_all(part).unwrap();
        out.extend(w.finish().unwrap());
    }
    out
}

pub fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fake shared library: recognisable bytes of a given length.
pub fn lib_bytes(name: &str, len: usize) -> Vec<u8> {
    let mut v = format!("\x7fELF {name} ").into_bytes();
    v.resize(len, b'.');
    v
}

/// One component of the test world: its archive and spec.
#[derive(Clone)]
pub struct Fixture {
    pub id: String,
    pub archive: Vec<u8>,
    pub format: ArchiveFormat,
    pub spec: ComponentSpec,
}

impl Fixture {
    pub fn limits(&self) -> UnpackLimits {
        UnpackLimits::unpacked(64 << 20)
    }
}

/// A component laid out like the seed's tiers: `<tier>/libs/` with real files and SONAME links.
pub fn component(id: &str, version: &str, libs: &[(&str, &[&str])], file_len: usize) -> Fixture {
    let mut owned: Vec<(String, Vec<u8>)> = Vec::new();
    let mut links: Vec<(String, String)> = Vec::new();
    for (real, aliases) in libs {
        owned.push((format!("{id}/libs/{real}"), lib_bytes(real, file_len)));
        for alias in *aliases {
            links.push((format!("{id}/libs/{alias}"), real.to_string()));
        }
    }
    let mut members: Vec<M> = vec![M::Dir("./"), M::Dir(leak(format!("{id}/libs/")))];
    for (n, d) in &owned {
        members.push(M::Exec(n, d));
    }
    for (n, t) in &links {
        members.push(M::Symlink(n, t));
    }
    let archive = zstd(&tar_of(&members));
    Fixture {
        id: id.to_string(),
        spec: ComponentSpec {
            id: id.to_string(),
            version: version.to_string(),
            sha256: sha256(&archive),
            source: format!("file:///fixtures/{id}.tar.zst"),
            links: Vec::new(),
            files: Vec::new(),
        },
        archive,
        format: ArchiveFormat::TarZstd,
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

pub fn cuda(file_len: usize) -> Fixture {
    component(
        "cuda",
        "12.9",
        &[
            ("libcudart.so.12.9.79", &["libcudart.so.12", "libcudart.so"]),
            ("libcublasLt.so.12.9.1.4", &["libcublasLt.so.12"]),
            ("libcublas.so.12.9.1.4", &["libcublas.so.12"]),
        ],
        file_len,
    )
}

pub fn cudnn(file_len: usize) -> Fixture {
    component(
        "cudnn",
        "9.15.1",
        &[
            ("libcudnn.so.9.15.1", &["libcudnn.so.9"]),
            ("libcudnn_graph.so.9.15.1", &["libcudnn_graph.so.9"]),
            ("libcudnn_ops.so.9.15.1", &["libcudnn_ops.so.9"]),
        ],
        file_len,
    )
}

pub fn ort(tier: &str, file_len: usize) -> Fixture {
    component(
        &format!("ort-{tier}"),
        "1.23.2",
        &[
            ("libonnxruntime.so.1.23.2", &["libonnxruntime.so"]),
            ("libonnxruntime_providers_cuda.so", &[]),
            ("libonnxruntime_providers_shared.so", &[]),
        ],
        file_len,
    )
}

pub fn spec(variant: &str, parts: &[&Fixture], sass: &[u32]) -> InstallSpec {
    InstallSpec {
        app: "testapp".into(),
        variant: variant.into(),
        release: Some("1.1.1".into()),
        components: parts.iter().map(|f| f.spec.clone()).collect(),
        coverage: sass
            .iter()
            .map(|n| KernelEntry {
                target: KernelTarget::sass(n / 10, n % 10),
                ptx_isa: None,
            })
            .collect(),
        gpu: Some(GpuRecord::new(
            Some("NVIDIA RTX A4000".into()),
            ComputeCapability::new(8, 6),
        )),
        driver: Some(DriverRecord {
            version: Some("580.65.06".into()),
            cuda: Some(CudaVersion::new(13, 0)),
        }),
        requires_driver_cuda: Some(CudaVersion::new(12, 0)),
        ort_library: "libonnxruntime.so".into(),
        system_libraries: vec![],
    }
}

/// Stages what is missing, builds the install and activates it: what `gpulibs install` does.
pub fn install(store: &Store, parts: &[&Fixture], spec: &InstallSpec) -> Result<InstallRecord> {
    let lock = store.try_lock()?;
    for f in parts {
        if store.has_component(&f.spec.sha256) {
            continue;
        }
        let mut stager = lock.stage_component(&f.spec.sha256, f.limits())?;
        stager.unpack_tar(SlowReader::new(&f.archive[..], 0), f.format)?;
        stager.commit()?;
    }
    let record = lock.new_install(spec)?;
    lock.activate(&record.id)
}

/// Hands out at most 4 KiB per read, sleeping `micros` before each: a slow download.
pub struct SlowReader<R> {
    inner: R,
    micros: u64,
}

impl<R> SlowReader<R> {
    pub fn new(inner: R, micros: u64) -> Self {
        Self { inner, micros }
    }
}

impl<R: std::io::Read> std::io::Read for SlowReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.micros > 0 {
            std::thread::sleep(std::time::Duration::from_micros(self.micros));
        }
        let n = buf.len().min(4096);
        self.inner.read(&mut buf[..n])
    }
}

/// Paths under `root` left by interrupted runs.
pub fn temporaries(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [
        root.to_path_buf(),
        root.join("store"),
        root.join("installs"),
    ] {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(".tmp-") || n.starts_with(".trash-") || n.contains(".tmp") {
                    out.push(e.path());
                }
            }
        }
    }
    out
}

/// The invariant after any interruption: `current` names one of `allowed` (or nothing, when
/// `allowed` has `None`), and that install is whole: its record parses, every library opens,
/// and an app can activate it. Returns the active id.
pub fn assert_whole(root: &Path, allowed: &[Option<&str>], context: &str) -> Option<String> {
    let store = Store::open(root).unwrap();
    let id = store.current_id().unwrap();
    assert!(
        allowed.contains(&id.as_deref()),
        "{context}: current is {id:?}, expected one of {allowed:?}"
    );
    let id = id?;
    let problems = store.check_install(&id).unwrap();
    assert!(
        problems.is_empty(),
        "{context}: install {id} is broken: {problems:?}"
    );
    let a = activate_at(root).unwrap();
    assert_eq!(a.install_id, id, "{context}");
    assert!(a.ort_library.is_file(), "{context}: {:?}", a.ort_library);
    for lib in &a.preload {
        std::fs::File::open(lib).unwrap_or_else(|e| panic!("{context}: {lib:?}: {e}"));
    }
    Some(id)
}

/// The root's library view (`<root>/<name> -> current/lib/<name>`): every name of the active
/// install's `lib/`, and `libonnxruntime.so`, is linked and opens through the root; a link
/// whose name the active install lacks dangles (allowed only when `allow_stale`, after an
/// interruption: the loader skips it, the next run removes it). Returns the names linked.
pub fn assert_view(root: &Path, allow_stale: bool, context: &str) -> Vec<String> {
    let lib = root.join("current/lib");
    let mut want: Vec<String> = std::fs::read_dir(&lib)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    want.sort();
    assert!(
        want.iter().any(|n| n == "libonnxruntime.so"),
        "{context}: the active lib/ has no libonnxruntime.so: {want:?}"
    );
    for name in &want {
        let link = root.join(name);
        assert_eq!(
            std::fs::read_link(&link).unwrap_or_else(|e| panic!("{context}: {link:?}: {e}")),
            Path::new("current/lib").join(name),
            "{context}"
        );
        std::fs::File::open(&link).unwrap_or_else(|e| panic!("{context}: {link:?}: {e}"));
    }
    let mut linked = Vec::new();
    for e in std::fs::read_dir(root).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(text) = std::fs::read_link(e.path()) else {
            continue;
        };
        if text != Path::new("current/lib").join(&name) {
            continue;
        }
        if !want.contains(&name) {
            assert!(
                allow_stale,
                "{context}: `{name}` is linked but the active install lacks it"
            );
            assert!(
                !e.path().exists(),
                "{context}: a stale `{name}` resolves to something"
            );
        }
        linked.push(name);
    }
    linked.sort();
    linked
}

/// What the user reads of a store error: its message, then its hint (the CLI's `hint:` line),
/// joined by `; hint: `. For asserting the advice an error gives, wherever it is printed.
pub fn told(e: &StoreError) -> String {
    match e.hint() {
        Some(hint) => format!("{e}; hint: {hint}"),
        None => e.to_string(),
    }
}
