//! A real HTTP/1.1 server on 127.0.0.1, inside the test process, that injects faults: the one
//! test server of the fetch, install and CLI tests.
//!
//! - **Files per path** ([`Server::put`], [`Server::file`]), served with `Range` honoured
//!   (`206`, `416` with the file's size past the end) and `Connection: close` (one request per
//!   connection).
//! - **A default reply per path** ([`Server::put_with`], [`Server::set_default`]): any
//!   [`Reply`], typically [`Reply::Serve`], [`Reply::trickle`], [`Reply::WrongBytes`],
//!   [`Reply::FlipAt`] or [`Reply::WrongRange`]; it
//!   answers every request that no script answers.
//! - **Scripted replies per request** ([`Server::script`], [`Server::file`]): a queue per path,
//!   taken one reply per request, before the default.
//! - **The request log** ([`Server::log`], [`Server::requests`], [`Server::clear_log`]): method,
//!   path and the `N` of `Range: bytes=N-` of every request, in arrival order.
//!
//! Paths are normalised to a leading `/` everywhere (`"a.tar.zst"` and `"/a.tar.zst"` are the
//! same path), and [`Server::url`] gives the absolute URL of one.
//!
//! Other transports sit in front of the same request handling: [`Server::start_with_front`]
//! hands each accepted TCP connection and a [`Handler`] to a closure, which may wrap the stream
//! (the fetch tests put a `rustls` TLS front there, with a certificate made at test time) and
//! then calls [`Handler::serve`]. The TLS front itself stays in `gpulibs-fetch`'s test support:
//! it needs `rustls` and `rcgen`, which this crate does not pull in. [`Proxy`] is an HTTP
//! `CONNECT` proxy (plain std, so it lives here) that records what it tunnelled to.
//!
//! Only std: no HTTP library on the server side, so the bytes on the wire are exactly the ones
//! written here.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// What the server does with one request for a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Serve the file, honouring `Range` (`206`; `416` with `Content-Range: bytes */LEN` for a
    /// start at or past the end); a path ending in `/` as `text/html`.
    Serve,
    /// Serve the whole file with `200` even when a range was asked for.
    IgnoreRange,
    /// Full headers, then only this many body bytes (of the ranged body), then close.
    DropAfter(usize),
    /// This status, empty body (no file needed).
    Status(u16),
    /// This status with `Retry-After: seconds` (no file needed).
    StatusRetryAfter(u16, u64),
    /// Full headers, then `chunk` body bytes every `delay`, at most `max` bytes, then close.
    /// Honours `Range`. [`Reply::trickle`] sends the whole body.
    Trickle {
        chunk: usize,
        delay: Duration,
        max: usize,
    },
    /// Full headers, this many body bytes, then silence for `wait`, then close.
    Silence { after: usize, wait: Duration },
    /// `Content-Length` claims `extra` more bytes than sent; the whole body is sent, then close.
    LongContentLength { extra: u64 },
    /// `Content-Length` says `short` bytes fewer than the body has; the whole body is written.
    ShortContentLength { short: u64 },
    /// The file with one byte flipped in the middle, honouring `Range`.
    WrongBytes,
    /// The file with the byte at this offset flipped (`FlipAt(0)`: the first byte, where a
    /// decoder looks first), honouring `Range`.
    FlipAt(usize),
    /// A `Range` request answered `206` with the `Content-Range` asked for but the bytes from
    /// the start of the file (a cache that ignores the offset); without `Range`, the file.
    WrongRange,
    /// `302` to this location (absolute or relative; no file needed).
    Redirect(String),
}

impl Reply {
    /// The whole body, `chunk` bytes every `delay`, honouring `Range`.
    pub fn trickle(chunk: usize, delay: Duration) -> Reply {
        Reply::Trickle {
            chunk,
            delay,
            max: usize::MAX,
        }
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    /// The path (a proxy's absolute form is reduced to its path).
    pub path: String,
    /// `N` of `Range: bytes=N-` (or `bytes=N-M`).
    pub range_start: Option<u64>,
}

#[derive(Default)]
struct World {
    files: HashMap<String, Vec<u8>>,
    defaults: HashMap<String, Reply>,
    scripts: HashMap<String, VecDeque<Reply>>,
    log: Vec<Seen>,
}

/// Answers requests from the shared world of a [`Server`]; handed to a front by
/// [`Server::start_with_front`].
#[derive(Clone)]
pub struct Handler {
    world: Arc<Mutex<World>>,
}

impl Handler {
    /// Reads one request from `stream`, logs it and answers it as the path's script or
    /// default says. The caller closes the connection afterwards.
    pub fn serve(&self, stream: &mut (impl Read + Write)) -> io::Result<()> {
        serve_request(stream, &self.world)
    }
}

type Front = dyn Fn(TcpStream, &Handler) + Send + Sync;

/// The server: stops accepting when dropped.
pub struct Server {
    pub addr: SocketAddr,
    scheme: &'static str,
    handler: Handler,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// A plain `http://` server.
    pub fn start() -> Server {
        Server::start_with_front("http", |mut stream, handler| {
            let _ = handler.serve(&mut stream);
            let _ = stream.shutdown(Shutdown::Both);
        })
    }

    /// A server whose connections go through `front` (which calls [`Handler::serve`] on the
    /// stream, wrapped as it likes, and closes it); `scheme` is what [`Server::url`] writes.
    /// Each connection runs on its own thread with 20 s read and write timeouts.
    pub fn start_with_front(
        scheme: &'static str,
        front: impl Fn(TcpStream, &Handler) + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handler = Handler {
            world: Arc::new(Mutex::new(World::default())),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let front: Arc<Front> = Arc::new(front);
        {
            let handler = handler.clone();
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let handler = handler.clone();
                    let front = Arc::clone(&front);
                    thread::spawn(move || {
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
                        let _ = stream.set_write_timeout(Some(Duration::from_secs(20)));
                        front(stream, &handler);
                    });
                }
            });
        }
        Server {
            addr,
            scheme,
            handler,
            stop,
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.handler.world.lock().unwrap()
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, normalise(path))
    }

    /// Serves `bytes` at `path` (the path's default reply and script stay as they are;
    /// [`Reply::Serve`] when none was set).
    pub fn put(&self, path: &str, bytes: impl Into<Vec<u8>>) {
        self.world().files.insert(normalise(path), bytes.into());
    }

    /// Serves `bytes` at `path`, answering with `default` unless a script says otherwise.
    pub fn put_with(&self, path: &str, bytes: impl Into<Vec<u8>>, default: Reply) {
        let mut world = self.world();
        world.files.insert(normalise(path), bytes.into());
        world.defaults.insert(normalise(path), default);
    }

    /// Answers requests for `path` with `default` from now on, unless a script says otherwise.
    pub fn set_default(&self, path: &str, default: Reply) {
        self.world().defaults.insert(normalise(path), default);
    }

    /// Replies to the next requests for `path` with `script`, one reply each, then with the
    /// default. Replaces an earlier script of that path.
    pub fn script(&self, path: &str, script: Vec<Reply>) {
        self.world().scripts.insert(normalise(path), script.into());
    }

    /// [`Server::put`] and [`Server::script`] in one call.
    pub fn file(&self, path: &str, bytes: &[u8], script: Vec<Reply>) {
        self.put(path, bytes);
        self.script(path, script);
    }

    /// The requests seen so far, in arrival order.
    pub fn log(&self) -> Vec<Seen> {
        self.world().log.clone()
    }

    /// Forgets the requests seen so far.
    pub fn clear_log(&self) {
        self.world().log.clear();
    }

    /// The requests for `path` seen so far.
    pub fn requests(&self, path: &str) -> Vec<Seen> {
        let path = normalise(path);
        self.log().into_iter().filter(|s| s.path == path).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

fn normalise(path: &str) -> String {
    format!("/{}", path.trim_start_matches('/'))
}

fn serve_request(stream: &mut (impl Read + Write), world: &Mutex<World>) -> io::Result<()> {
    let (method, target, headers) = read_head(stream)?;
    // A proxy in absolute form sends the whole URL.
    let path = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/".into(), |i| rest[i..].to_string()),
        None => target,
    };
    let range_start = headers
        .get("range")
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .and_then(|(start, _)| start.trim().parse::<u64>().ok());
    let (reply, file) = {
        let mut world = world.lock().unwrap();
        world.log.push(Seen {
            method,
            path: path.clone(),
            range_start,
        });
        let scripted = world.scripts.get_mut(&path).and_then(VecDeque::pop_front);
        let reply = scripted
            .or_else(|| world.defaults.get(&path).cloned())
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
    // The body for a reply that honours Range: 206 with Content-Range, or 200.
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
            (
                200,
                vec![("Accept-Ranges".into(), "bytes".into())],
                body.to_vec(),
            )
        }
    };
    match reply {
        Reply::Serve => {
            if range_start.is_some_and(|s| s >= file.len() as u64) {
                let total = ("Content-Range".into(), format!("bytes */{}", file.len()));
                return respond(stream, 416, &[total], b"");
            }
            let (status, mut headers, body) = ranged(&file);
            // A path ending in `/` is a page, as a package index's project pages are (pip reads
            // only pages that say they are HTML).
            if path.ends_with('/') {
                headers.push(("Content-Type".into(), "text/html".into()));
            }
            respond(stream, status, &headers, &body)
        }
        Reply::IgnoreRange => respond(stream, 200, &[], &file),
        Reply::WrongBytes => {
            let mut bad = file.clone();
            if let Some(byte) = bad.get_mut(file.len() / 2) {
                *byte ^= 0xff;
            }
            let (status, headers, body) = ranged(&bad);
            respond(stream, status, &headers, &body)
        }
        Reply::FlipAt(offset) => {
            let mut bad = file.clone();
            if let Some(byte) = bad.get_mut(offset) {
                *byte ^= 0xff;
            }
            let (status, headers, body) = ranged(&bad);
            respond(stream, status, &headers, &body)
        }
        Reply::WrongRange => {
            let (status, headers, body) = ranged(&file);
            respond(stream, status, &headers, &file[..body.len()])
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
        Reply::Trickle { chunk, delay, max } => {
            let (status, headers, body) = ranged(&file);
            head(stream, status, &headers, body.len() as u64)?;
            for part in body[..max.min(body.len())].chunks(chunk.max(1)) {
                stream.write_all(part)?;
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
            head(
                stream,
                status,
                &headers,
                (body.len() as u64).saturating_sub(short),
            )?;
            stream.write_all(&body)?;
            stream.flush()
        }
        Reply::Redirect(location) => respond(stream, 302, &[("Location".into(), location)], b""),
    }
}

/// Reads a request head: method, target, headers (names lower-cased).
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
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((method, target, headers))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
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

/// An HTTP `CONNECT` proxy on 127.0.0.1 that records the requests it got (`"CONNECT
/// 127.0.0.1:PORT"`) and tunnels only to loopback targets. Other methods get `405`.
pub struct Proxy {
    pub addr: SocketAddr,
    /// `"METHOD TARGET"` of every request, in arrival order.
    pub targets: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    pub fn start() -> Proxy {
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
        Proxy { addr, targets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw GET: (status line, headers, body).
    fn get(server: &Server, path: &str, range: Option<u64>) -> (String, String, Vec<u8>) {
        let mut s = TcpStream::connect(server.addr).unwrap();
        let range = range.map_or(String::new(), |r| format!("Range: bytes={r}-\r\n"));
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{range}\r\n").unwrap();
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(raw[..split].to_vec()).unwrap();
        let (status, headers) = head.split_once("\r\n").unwrap();
        (status.into(), headers.into(), raw[split + 4..].to_vec())
    }

    #[test]
    fn script_then_default_then_log() {
        let server = Server::start();
        server.put_with("f", b"0123456789".to_vec(), Reply::WrongBytes);
        server.script("/f", vec![Reply::DropAfter(3), Reply::Status(503)]);
        let (status, headers, body) = get(&server, "/f", None);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(headers.contains("Content-Length: 10"), "{headers}");
        assert_eq!(body, b"012");
        let (status, _, body) = get(&server, "/f", Some(2));
        assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
        assert!(body.is_empty());
        // The default from now on: one byte flipped in the middle, Range honoured.
        let (status, headers, body) = get(&server, "/f", Some(4));
        assert_eq!(status, "HTTP/1.1 206 Partial Content");
        assert!(headers.contains("Content-Range: bytes 4-9/10"), "{headers}");
        assert_eq!(body, [b'4', b'5' ^ 0xff, b'6', b'7', b'8', b'9']);
        server.set_default("f", Reply::Serve);
        let (status, headers, _) = get(&server, "/f", Some(10));
        assert_eq!(status, "HTTP/1.1 416 Range Not Satisfiable");
        assert!(headers.contains("Content-Range: bytes */10"), "{headers}");
        assert_eq!(get(&server, "/g", None).0, "HTTP/1.1 404 Not Found");
        // A flipped first byte; a range answered with the file's first bytes.
        server.set_default("f", Reply::FlipAt(0));
        assert_eq!(get(&server, "/f", None).2, b"\xcf123456789");
        assert_eq!(get(&server, "/f", Some(3)).2, b"3456789");
        server.set_default("f", Reply::WrongRange);
        let (status, headers, body) = get(&server, "/f", Some(6));
        assert_eq!(status, "HTTP/1.1 206 Partial Content");
        assert!(headers.contains("Content-Range: bytes 6-9/10"), "{headers}");
        assert_eq!(body, b"0123");
        assert_eq!(get(&server, "/f", None).2, b"0123456789");
        let starts: Vec<_> = server.requests("f").iter().map(|s| s.range_start).collect();
        assert_eq!(
            starts,
            [
                None,
                Some(2),
                Some(4),
                Some(10),
                None,
                Some(3),
                Some(6),
                None
            ]
        );
        assert_eq!(server.log().len(), 9);
        assert!(server.log().iter().all(|s| s.method == "GET"));
        server.clear_log();
        assert!(server.log().is_empty());
        assert_eq!(server.url("f"), format!("http://{}/f", server.addr));
    }

    #[test]
    fn trickle_and_content_length_lies() {
        let server = Server::start();
        let data: Vec<u8> = (0..100u8).collect();
        server.file(
            "/t",
            &data,
            vec![
                Reply::Trickle {
                    chunk: 7,
                    delay: Duration::from_millis(1),
                    max: 30,
                },
                Reply::ShortContentLength { short: 10 },
                Reply::LongContentLength { extra: 5 },
            ],
        );
        let (_, headers, body) = get(&server, "/t", Some(50));
        assert!(headers.contains("Content-Length: 50"), "{headers}");
        assert_eq!(body, &data[50..80]);
        let (_, headers, body) = get(&server, "/t", None);
        assert!(headers.contains("Content-Length: 90"), "{headers}");
        assert_eq!(body, data);
        let (_, headers, body) = get(&server, "/t", None);
        assert!(headers.contains("Content-Length: 105"), "{headers}");
        assert_eq!(body, data);
        server.set_default("/t", Reply::trickle(33, Duration::from_millis(1)));
        assert_eq!(get(&server, "/t", None).2, data);
    }

    #[test]
    fn redirects_and_statuses_need_no_file() {
        let server = Server::start();
        server.set_default("/a", Reply::Redirect("/b".into()));
        server.script("/b", vec![Reply::StatusRetryAfter(429, 3)]);
        let (status, headers, _) = get(&server, "/a", None);
        assert_eq!(status, "HTTP/1.1 302 Found");
        assert!(headers.contains("Location: /b"), "{headers}");
        let (status, headers, _) = get(&server, "/b", None);
        assert_eq!(status, "HTTP/1.1 429 Too Many Requests");
        assert!(headers.contains("Retry-After: 3"), "{headers}");
        // The script is used up and there is no file.
        assert_eq!(get(&server, "/b", None).0, "HTTP/1.1 404 Not Found");
    }
}
