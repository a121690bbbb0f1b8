//! A real HTTP/1.1 server on 127.0.0.1 inside the test process, with scripted faults per
//! request, an optional TLS front (certificate made at test time) and a CONNECT proxy.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use gpulibs_fetch::{Artifact, FetchOptions, RetryPolicy, Sha256Digest, StallRule};
use sha2::{Digest, Sha256};

/// What the server does with one request for a path.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Serve the file, honouring `Range` (206).
    Serve,
    /// Serve the whole file with 200 even when a range was asked for.
    IgnoreRange,
    /// Full headers, then only this many body bytes, then close.
    DropAfter(usize),
    /// This status, empty body.
    Status(u16),
    /// This status with `Retry-After: seconds`.
    StatusRetryAfter(u16, u64),
    /// One byte per `delay`, at most `max` bytes, then close.
    Trickle { delay: Duration, max: usize },
    /// This many bytes, then silence for the duration, then close.
    Silence { after: usize, wait: Duration },
    /// `Content-Length` claims `extra` more bytes than sent; the whole body is sent, then close.
    LongContentLength { extra: u64 },
    /// `Content-Length` says `short` bytes fewer than the body has.
    ShortContentLength { short: u64 },
    /// The file with one byte changed in the middle.
    WrongBytes,
    /// `302` to this location.
    Redirect(String),
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// `N` of `Range: bytes=N-`.
    pub range_start: Option<u64>,
}

#[derive(Default)]
struct World {
    files: HashMap<String, Vec<u8>>,
    scripts: HashMap<String, VecDeque<Reply>>,
    log: Vec<Seen>,
}

pub struct TestServer {
    pub addr: SocketAddr,
    scheme: &'static str,
    world: Arc<Mutex<World>>,
    stop: Arc<AtomicBool>,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(None)
    }

    /// A server speaking TLS with `config`.
    pub fn start_tls(config: Arc<rustls::ServerConfig>) -> TestServer {
        Self::start_with(Some(config))
    }

    fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let world = Arc::new(Mutex::new(World::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let scheme = if tls.is_some() { "https" } else { "http" };
        {
            let world = Arc::clone(&world);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let world = Arc::clone(&world);
                    let tls = tls.clone();
                    thread::spawn(move || {
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
                        let _ = stream.set_write_timeout(Some(Duration::from_secs(20)));
                        match tls {
                            None => {
                                let mut stream = stream;
                                let _ = serve_connection(&mut stream, &world);
                                let _ = stream.shutdown(Shutdown::Both);
                            }
                            Some(config) => {
                                let Ok(conn) = rustls::ServerConnection::new(config) else {
                                    return;
                                };
                                let mut tls = rustls::StreamOwned::new(conn, stream);
                                let _ = serve_connection(&mut tls, &world);
                                tls.conn.send_close_notify();
                                let _ = tls.flush();
                                let _ = tls.sock.shutdown(Shutdown::Both);
                            }
                        }
                    });
                }
            });
        }
        TestServer {
            addr,
            scheme,
            world,
            stop,
        }
    }

    /// Serves `bytes` at `path`, replying to successive requests with `script` (then `Serve`).
    pub fn file(&self, path: &str, bytes: &[u8], script: Vec<Reply>) {
        let mut world = self.world.lock().unwrap();
        world.files.insert(path.to_string(), bytes.to_vec());
        world.scripts.insert(path.to_string(), script.into());
    }

    /// Replies to `path` with `script` (no file behind it).
    pub fn script(&self, path: &str, script: Vec<Reply>) {
        let mut world = self.world.lock().unwrap();
        world.scripts.insert(path.to_string(), script.into());
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// The requests seen so far.
    pub fn log(&self) -> Vec<Seen> {
        self.world.lock().unwrap().log.clone()
    }

    pub fn requests_for(&self, path: &str) -> Vec<Seen> {
        self.log().into_iter().filter(|s| s.path == path).collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_connection(stream: &mut (impl Read + Write), world: &Mutex<World>) -> io::Result<()> {
    let (method, path, headers) = read_head(stream)?;
    let range_start = headers
        .get("range")
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.strip_suffix('-'))
        .and_then(|v| v.parse::<u64>().ok());
    let (reply, file) = {
        let mut world = world.lock().unwrap();
        world.log.push(Seen {
            method: method.clone(),
            path: path.clone(),
            range_start,
        });
        let reply = world
            .scripts
            .get_mut(&path)
            .and_then(|s| s.pop_front())
            .unwrap_or(Reply::Serve);
        (reply, world.files.get(&path).cloned())
    };
    let Some(file) = file.or_else(|| match reply {
        Reply::Redirect(_) | Reply::Status(_) | Reply::StatusRetryAfter(..) => Some(Vec::new()),
        _ => None,
    }) else {
        return respond(stream, 404, &[], b"not found");
    };
    let start = range_start.unwrap_or(0).min(file.len() as u64) as usize;
    let ranged = |body: &[u8]| -> (u16, Vec<(String, String)>, Vec<u8>) {
        if range_start.is_some() {
            let end = file.len().saturating_sub(1);
            (
                206,
                vec![(
                    "Content-Range".into(),
                    format!("bytes {start}-{end}/{}", file.len()),
                )],
                body[start..].to_vec(),
            )
        } else {
            (200, vec![], body.to_vec())
        }
    };
    match reply {
        Reply::Serve => {
            if range_start.is_some_and(|s| s >= file.len() as u64) {
                return respond(stream, 416, &[], b"");
            }
            let (status, headers, body) = ranged(&file);
            respond(stream, status, &headers, &body)
        }
        Reply::IgnoreRange => respond(stream, 200, &[], &file),
        Reply::WrongBytes => {
            let mut bad = file.clone();
            let middle = bad.len() / 2;
            bad[middle] ^= 0xff;
            let (status, headers, body) = ranged(&bad);
            respond(stream, status, &headers, &body)
        }
        Reply::DropAfter(n) => {
            let (status, headers, body) = ranged(&file);
            head(stream, status, &headers, body.len() as u64)?;
            stream.write_all(&body[..n.min(body.len())])?;
            stream.flush()
        }
        Reply::Status(code) => respond(stream, code, &[], b""),
        Reply::StatusRetryAfter(code, secs) => respond(
            stream,
            code,
            &[("Retry-After".into(), secs.to_string())],
            b"",
        ),
        Reply::Trickle { delay, max } => {
            let (status, headers, body) = ranged(&file);
            head(stream, status, &headers, body.len() as u64)?;
            for byte in body.iter().take(max) {
                stream.write_all(&[*byte])?;
                stream.flush()?;
                thread::sleep(delay);
            }
            Ok(())
        }
        Reply::Silence { after, wait } => {
            let (status, headers, body) = ranged(&file);
            head(stream, status, &headers, body.len() as u64)?;
            stream.write_all(&body[..after.min(body.len())])?;
            stream.flush()?;
            thread::sleep(wait);
            Ok(())
        }
        Reply::LongContentLength { extra } => {
            let (status, headers, body) = ranged(&file);
            head(stream, status, &headers, body.len() as u64 + extra)?;
            stream.write_all(&body)?;
            stream.flush()
        }
        Reply::ShortContentLength { short } => {
            let (status, headers, body) = ranged(&file);
            head(stream, status, &headers, body.len() as u64 - short)?;
            stream.write_all(&body)?;
            stream.flush()
        }
        Reply::Redirect(location) => respond(stream, 302, &[("Location".into(), location)], b""),
    }
}

fn read_head(stream: &mut impl Read) -> io::Result<(String, String, HashMap<String, String>)> {
    // Byte by byte, so nothing past the head is consumed (GET requests have no body anyway).
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("").to_string();
    // A proxy in absolute form sends the whole URL.
    let path = match target.split_once("://") {
        Some((_, rest)) => rest
            .find('/')
            .map_or("/".to_string(), |i| rest[i..].to_string()),
        None => target,
    };
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((method, path, headers))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

fn head(
    stream: &mut impl Write,
    status: u16,
    headers: &[(String, String)],
    length: u64,
) -> io::Result<()> {
    let mut text = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {length}\r\nConnection: close\r\n",
        reason(status)
    );
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes())
}

fn respond(
    stream: &mut impl Write,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> io::Result<()> {
    head(stream, status, headers, body.len() as u64)?;
    stream.write_all(body)?;
    stream.flush()
}

/// An HTTP CONNECT proxy on 127.0.0.1 that records the targets it tunnels to.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub targets: Arc<Mutex<Vec<String>>>,
}

impl TestProxy {
    pub fn start() -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&targets);
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let seen = Arc::clone(&seen);
                thread::spawn(move || -> io::Result<()> {
                    client.set_read_timeout(Some(Duration::from_secs(20)))?;
                    let (method, target, _) = read_head(&mut client)?;
                    seen.lock().unwrap().push(format!("{method} {target}"));
                    if method != "CONNECT" {
                        return respond(&mut client, 405, &[], b"");
                    }
                    // Only loopback targets: this proxy never reaches out.
                    if !target.starts_with("127.0.0.1:") {
                        return respond(&mut client, 403, &[], b"");
                    }
                    let upstream = TcpStream::connect(&target)?;
                    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
                    let (mut c2, mut u2) = (client.try_clone()?, upstream.try_clone()?);
                    let pump = thread::spawn(move || {
                        let _ = io::copy(&mut c2, &mut u2);
                        let _ = u2.shutdown(Shutdown::Write);
                    });
                    let (mut client, mut upstream) = (client, upstream);
                    let _ = io::copy(&mut upstream, &mut client);
                    let _ = client.shutdown(Shutdown::Both);
                    let _ = pump.join();
                    Ok(())
                });
            }
        });
        TestProxy { addr, targets }
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost: (server config, PEM of the cert).
pub fn self_signed_tls() -> (Arc<rustls::ServerConfig>, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let pem = cert.cert.pem();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der], key)
    .unwrap();
    (Arc::new(config), pem)
}

/// Deterministic test bytes that compress poorly and differ at every offset.
pub fn test_bytes(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

pub fn sha256_of(bytes: &[u8]) -> Sha256Digest {
    Sha256Digest(Sha256::digest(bytes).into())
}

pub fn artifact(name: &str, urls: Vec<String>, bytes: &[u8]) -> Artifact {
    Artifact {
        name: name.into(),
        urls,
        sha256: sha256_of(bytes),
        size: Some(bytes.len() as u64),
    }
}

/// Options with tiny delays and timeouts, so fault tests run fast.
pub fn quick_options(dir: &Path) -> FetchOptions {
    let mut opts = FetchOptions::new(dir.join("partial"));
    opts.retry = RetryPolicy {
        attempts: 4,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    opts.connect_timeout = Duration::from_secs(10);
    opts.idle_timeout = Duration::from_secs(10);
    opts.stall = StallRule {
        min_bytes_per_sec: 1,
        window: Duration::from_secs(60),
    };
    opts
}
