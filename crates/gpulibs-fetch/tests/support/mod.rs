//! Test support of the fetch tests: the shared fault-injecting HTTP server
//! (`gpulibs_testkit::http`, re-exported here) with a TLS front made of `rustls` and a
//! certificate made at test time (kept here so the test kit needs no TLS crates), and helpers
//! for artifacts and fast fetch options.

#![allow(dead_code, unused_imports)]

use std::io::Write;
use std::net::Shutdown;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gpulibs_fetch::{Artifact, FetchOptions, RetryPolicy, Sha256Digest, StallRule};
pub use gpulibs_testkit::http::{Proxy, Reply, Seen, Server};
use sha2::{Digest, Sha256};

/// The shared server behind a TLS front speaking with `config` (`https://` URLs).
pub fn tls_server(config: Arc<rustls::ServerConfig>) -> Server {
    Server::start_with_front("https", move |stream, handler| {
        let Ok(conn) = rustls::ServerConnection::new(Arc::clone(&config)) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(conn, stream);
        let _ = handler.serve(&mut tls);
        tls.conn.send_close_notify();
        let _ = tls.flush();
        let _ = tls.sock.shutdown(Shutdown::Both);
    })
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
        max_attempts: 50,
        max_elapsed: Duration::from_secs(60),
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

/// Where a fetch with [`quick_options`]`(dir)` keeps the bytes of `art` between runs; the
/// directory is created, so a test can leave bytes there as an earlier run would.
pub fn partial_path(dir: &Path, art: &Artifact) -> PathBuf {
    let partial = dir.join("partial");
    std::fs::create_dir_all(&partial).unwrap();
    partial.join(format!("{}.partial", art.sha256))
}
