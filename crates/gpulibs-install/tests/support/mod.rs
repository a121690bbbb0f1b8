//! Test kit shared by the install crate's tests and the CLI's (`#[path]`-included there): a
//! real HTTP/1.1 server on 127.0.0.1 with per-path behaviour and a request log, tar.zst and
//! wheel archives built at test time, test manifests, and a fake pip.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// How the server answers for one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The file, honouring `Range`.
    Serve,
    /// `chunk` bytes every `delay`, honouring `Range`.
    Trickle { chunk: usize, delay: Duration },
    /// The file with one byte changed in the middle.
    Corrupt,
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    pub range_start: Option<u64>,
}

#[derive(Default)]
struct World {
    files: HashMap<String, (Vec<u8>, Mode)>,
    log: Vec<Seen>,
}

pub struct Server {
    pub addr: SocketAddr,
    world: Arc<Mutex<World>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let world = Arc::new(Mutex::new(World::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (w, st) = (Arc::clone(&world), Arc::clone(&stop));
        thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let w = Arc::clone(&w);
                        thread::spawn(move || {
                            let _ = handle(stream, &w);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server { addr, world, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    pub fn put(&self, path: &str, bytes: Vec<u8>) {
        self.put_mode(path, bytes, Mode::Serve);
    }

    pub fn put_mode(&self, path: &str, bytes: Vec<u8>, mode: Mode) {
        let key = format!("/{}", path.trim_start_matches('/'));
        self.world.lock().unwrap().files.insert(key, (bytes, mode));
    }

    pub fn set_mode(&self, path: &str, mode: Mode) {
        let key = format!("/{}", path.trim_start_matches('/'));
        if let Some(f) = self.world.lock().unwrap().files.get_mut(&key) {
            f.1 = mode;
        }
    }

    pub fn log(&self) -> Vec<Seen> {
        self.world.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.world.lock().unwrap().log.clear();
    }

    /// Requests for `path` so far.
    pub fn requests(&self, path: &str) -> Vec<Seen> {
        let key = format!("/{}", path.trim_start_matches('/'));
        self.log().into_iter().filter(|s| s.path == key).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn handle(stream: TcpStream, world: &Mutex<World>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range_start = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        let lower = header.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("range:") {
            range_start = v
                .trim()
                .strip_prefix("bytes=")
                .and_then(|r| r.split('-').next())
                .and_then(|n| n.parse::<u64>().ok());
        }
    }
    let found = {
        let mut w = world.lock().unwrap();
        w.log.push(Seen {
            path: path.clone(),
            range_start,
        });
        w.files.get(&path).cloned()
    };
    let mut out = stream;
    let Some((mut bytes, mode)) = found else {
        write!(
            out,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return Ok(());
    };
    if mode == Mode::Corrupt {
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
    }
    let total = bytes.len() as u64;
    let start = range_start.filter(|&s| s < total).unwrap_or(0);
    let body = &bytes[start as usize..];
    if start > 0 {
        write!(
            out,
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {}-{}/{}\r\nConnection: close\r\n\r\n",
            body.len(),
            start,
            total - 1,
            total
        )?;
    } else {
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: {total}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n"
        )?;
    }
    match mode {
        Mode::Trickle { chunk, delay } => {
            for part in body.chunks(chunk) {
                out.write_all(part)?;
                out.flush()?;
                thread::sleep(delay);
            }
        }
        _ => out.write_all(body)?,
    }
    out.flush()
}

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

/// Another library component.
pub fn lib_archive(name: &str, payload: &[u8]) -> Vec<u8> {
    tar_zst(&[(&format!("lib/{name}"), Entry::File(payload))])
}

/// Compiles a real shared object at `out` with DT_SONAME `soname` (and a `DT_NEEDED` entry for
/// each file of `needs`) with the system C compiler: a library the system scan trusts.
pub fn build_so(out: &std::path::Path, soname: &str, needs: &[&std::path::Path]) {
    let dir = out.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let src = dir.join(format!(".{soname}.c"));
    let symbol: String = soname
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    std::fs::write(&src, format!("int {symbol}(void) {{ return 1; }}\n")).unwrap();
    let mut cmd = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
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

/// cuBLAS 13 as pip lays it out in a PyTorch environment (`site-packages/nvidia/cu13/lib`):
/// `libcublasLt.so.13` and `libcublas.so.13` (which needs it). Returns the directory.
pub fn fake_cu13(base: &std::path::Path) -> std::path::PathBuf {
    let dir = base.join("lib/python3.12/site-packages/nvidia/cu13/lib");
    let lt = dir.join("libcublasLt.so.13");
    build_so(&lt, "libcublasLt.so.13", &[]);
    build_so(&dir.join("libcublas.so.13"), "libcublas.so.13", &[&lt]);
    dir
}
