//! Test support shared by the install crate's tests and the CLI's (`#[path]`-included there):
//! the fault-injecting HTTP server of `gpulibs_testkit::http` (re-exported here), tar.zst and
//! wheel archives built at test time, test manifests, and real shared objects for the system
//! scan.

#![allow(dead_code, unused_imports)]

use std::io::Write;

pub use gpulibs_testkit::http::{Reply, Seen, Server};

/// What every end-to-end test starts from: a test HTTP server on 127.0.0.1 and a temporary
/// directory. Each test file adds the methods it needs (`impl World` there).
pub struct World {
    pub server: Server,
    pub tmp: tempfile::TempDir,
}

impl World {
    pub fn new() -> World {
        World {
            server: Server::start(),
            tmp: tempfile::tempdir().unwrap(),
        }
    }
}
use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Deterministic bytes that do not compress (xorshift).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// An entry of a test archive.
pub enum Entry<'a> {
    File(&'a [u8]),
    Symlink(&'a str),
}

/// A tar.zst archive of `entries`.
pub fn tar_zst(entries: &[(&str, Entry)]) -> Vec<u8> {
    let tar = tar_bytes(entries);
    ruzstd::encoding::compress_to_vec(&tar[..], ruzstd::encoding::CompressionLevel::Fastest)
}

/// An uncompressed tar of `entries`.
pub fn tar_bytes(entries: &[(&str, Entry)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, entry) in entries {
        let mut header = tar::Header::new_gnu();
        match entry {
            Entry::File(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                header.set_mode(0o755);
                builder.append_data(&mut header, path, *bytes).unwrap();
            }
            Entry::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                header.set_mode(0o777);
                builder.append_link(&mut header, path, target).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

/// A wheel (zip) with `files` stored at their paths.
pub fn wheel(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    for (path, bytes) in files {
        zip.start_file(*path, opts).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// One component of a test manifest.
#[derive(Clone)]
pub struct TestComponent {
    pub id: String,
    pub version: String,
    pub url: String,
    pub sha256: String,
    pub size: u64,
    pub unpacked: u64,
    pub format: &'static str,
    pub origin: &'static str,
    /// SONAMEs it provides; a component with some and no kernels may be served by the system.
    pub provides: Vec<String>,
}

impl TestComponent {
    /// A tar.zst component served at `url`.
    pub fn tar(id: &str, version: &str, url: String, archive: &[u8], unpacked: u64) -> Self {
        TestComponent {
            id: id.into(),
            version: version.into(),
            url,
            sha256: sha256_hex(archive),
            size: archive.len() as u64,
            unpacked,
            format: "tar.zst",
            origin: "vendor",
            provides: Vec::new(),
        }
    }

    /// A tar.zst component whose `archive` `server` serves at `name`.
    pub fn served(
        server: &Server,
        id: &str,
        version: &str,
        name: &str,
        archive: Vec<u8>,
        unpacked: u64,
    ) -> Self {
        let c = TestComponent::tar(id, version, server.url(name), &archive, unpacked);
        server.put(name, archive);
        c
    }

    /// The same component, saying it provides `sonames`.
    pub fn providing(mut self, sonames: &[&str]) -> Self {
        self.provides = sonames.iter().map(|s| s.to_string()).collect();
        self
    }
}

/// A manifest with one `cpu` variant holding `components` (the first is ONNX Runtime).
pub fn manifest_toml(version: &str, components: &[TestComponent]) -> String {
    let mut s = format!("schema_version = 1\napp = \"testapp\"\nversion = \"{version}\"\n\n");
    for (i, c) in components.iter().enumerate() {
        let kind = if i == 0 { "onnxruntime" } else { "other" };
        let provides = if c.provides.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = c.provides.iter().map(|p| format!("\"{p}\"")).collect();
            format!("provides = [{}]\n", list.join(", "))
        };
        s.push_str(&format!(
            "[[components]]\nid = \"{}\"\nkind = \"{kind}\"\nversion = \"{}\"\norigin = \"{}\"\n{provides}\n\
             [components.archive]\nurl = \"{}\"\nsha256 = \"{}\"\nsize = {}\nunpacked_size = {}\nformat = \"{}\"\n\n",
            c.id, c.version, c.origin, c.url, c.sha256, c.size, c.unpacked, c.format
        ));
    }
    let ids: Vec<String> = components.iter().map(|c| format!("\"{}\"", c.id)).collect();
    s.push_str(&format!(
        "[[variants]]\nname = \"cpu\"\ndevice = \"cpu\"\ncomponents = [{}]\n",
        ids.join(", ")
    ));
    s
}

/// The ONNX Runtime stand-in: a versioned file and the usual links.
pub fn ort_archive(payload: &[u8]) -> Vec<u8> {
    tar_zst(&[
        ("lib/libonnxruntime.so.1.2.3", Entry::File(payload)),
        (
            "lib/libonnxruntime.so.1",
            Entry::Symlink("libonnxruntime.so.1.2.3"),
        ),
        (
            "lib/libonnxruntime.so",
            Entry::Symlink("libonnxruntime.so.1"),
        ),
    ])
}

/// The manifest text of release `name` served by `server`: the ONNX Runtime stand-in (`ort`,
/// at `ort.tar.zst`) and `libextra.so.1` holding `extra` (`extra`, at `<name>-extra.tar.zst`).
pub fn ort_and_extra_release(server: &Server, name: &str, extra: &[u8]) -> String {
    let ort = TestComponent::served(
        server,
        "ort",
        "1.0",
        "ort.tar.zst",
        ort_archive(b"ort one"),
        4 << 20,
    );
    let extra = TestComponent::served(
        server,
        "extra",
        "1.0",
        &format!("{name}-extra.tar.zst"),
        lib_archive("libextra.so.1", extra),
        4 << 20,
    );
    manifest_toml("1.0", &[ort, extra])
}

/// Another library component.
pub fn lib_archive(name: &str, payload: &[u8]) -> Vec<u8> {
    tar_zst(&[(&format!("lib/{name}"), Entry::File(payload))])
}

pub use gpulibs_testkit::build_library as build_so;

/// cuBLAS 13 as pip lays it out in a PyTorch environment (`site-packages/nvidia/cu13/lib`):
/// `libcublasLt.so.13` and `libcublas.so.13` (which needs it). Returns the directory.
pub fn fake_cu13(base: &std::path::Path) -> std::path::PathBuf {
    let dir = base.join("lib/python3.12/site-packages/nvidia/cu13/lib");
    let lt = dir.join("libcublasLt.so.13");
    build_so(&lt, "libcublasLt.so.13", &[]);
    build_so(&dir.join("libcublas.so.13"), "libcublas.so.13", &[&lt]);
    dir
}
