//! TLS with a custom CA bundle (`SSL_CERT_FILE`, `SSL_CERT_DIR`) and proxies (`HTTPS_PROXY`,
//! `HTTP_PROXY`, `NO_PROXY`), against real servers on 127.0.0.1.

mod support;

use gpulibs_fetch::{fetch, FetchError, Fetcher, NetworkEnv, Progress};
use gpulibs_hint::Hint;
use support::{artifact, quick_options, self_signed_tls, test_bytes, tls_server, Proxy, Server};

fn quiet(_: &Progress) {}

#[test]
fn https_with_a_custom_ca_bundle() {
    let (config, pem) = self_signed_tls();
    let server = tls_server(config);
    let data = test_bytes(100_000);
    server.file("/f", &data, vec![support::Reply::DropAfter(30_000)]);
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("corp-ca.pem");
    std::fs::write(&bundle, &pem).unwrap();
    let mut opts = quick_options(dir.path());
    opts.network.ssl_cert_file = Some(bundle);
    let art = artifact("x", vec![server.url("/f")], &data);
    let mut sink = Vec::new();
    fetch(&art, &mut sink, &opts, &quiet).unwrap();
    assert_eq!(sink, data);
    assert_eq!(
        server.log()[1].range_start,
        Some(30_000),
        "resume works over TLS too"
    );
}

#[test]
fn https_with_a_ca_directory() {
    let (config, pem) = self_signed_tls();
    let server = tls_server(config);
    let data = test_bytes(1_000);
    server.file("/f", &data, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    std::fs::write(certs.join("README"), "not a certificate").unwrap();
    std::fs::write(certs.join("corp.pem"), &pem).unwrap();
    let mut opts = quick_options(dir.path());
    opts.network.ssl_cert_dir = Some(certs);
    let art = artifact("x", vec![server.url("/f")], &data);
    let mut sink = Vec::new();
    fetch(&art, &mut sink, &opts, &quiet).unwrap();
    assert_eq!(sink, data);
}

#[test]
fn untrusted_certificate_fails_at_once_with_a_hint() {
    let (config, _pem) = self_signed_tls();
    let server = tls_server(config);
    server.file("/f", b"abc", vec![]);
    let dir = tempfile::tempdir().unwrap();
    let art = artifact("cudnn-9", vec![server.url("/f")], b"abc");
    let err = fetch(&art, &mut Vec::new(), &quick_options(dir.path()), &quiet).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, FetchError::Tls { .. }), "{text}");
    assert!(
        text.starts_with(&format!("cudnn-9: TLS with {} failed: ", server.url("/f"))),
        "{text}"
    );
    assert!(
        err.hint()
            .unwrap()
            .contains("point SSL_CERT_FILE at its PEM bundle"),
        "{:?}",
        err.hint()
    );
    assert!(server.log().is_empty(), "no request got through");
}

#[test]
fn ca_bundle_errors_name_the_file_and_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = quick_options(dir.path());
    let missing = dir.path().join("missing.pem");
    opts.network.ssl_cert_file = Some(missing.clone());
    let err = Fetcher::new(&opts).err().unwrap();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "CA bundle {}: cannot read it: ",
            missing.display()
        )),
        "{text}"
    );
    assert!(!text.contains("unset"), "the step is the hint's: {text}");
    assert_eq!(err.hint().as_deref(), Some("fix or unset SSL_CERT_FILE"));

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "just text\n").unwrap();
    opts.network.ssl_cert_file = Some(empty.clone());
    let err = Fetcher::new(&opts).err().unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "CA bundle {}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            empty.display()
        )
    );
}

#[test]
fn https_proxy_tunnels_and_no_proxy_bypasses_it() {
    let (config, pem) = self_signed_tls();
    let server = tls_server(config);
    let data = test_bytes(20_000);
    server.file("/f", &data, vec![]);
    let proxy = Proxy::start();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, &pem).unwrap();
    let mut opts = quick_options(dir.path());
    opts.network = NetworkEnv {
        https_proxy: Some(format!("http://{}", proxy.addr)),
        ssl_cert_file: Some(bundle),
        ..NetworkEnv::default()
    };
    let art = artifact("x", vec![server.url("/f")], &data);
    let mut sink = Vec::new();
    fetch(&art, &mut sink, &opts, &quiet).unwrap();
    assert_eq!(sink, data);
    assert_eq!(
        *proxy.targets.lock().unwrap(),
        vec![format!("CONNECT {}", server.addr)]
    );

    opts.network.no_proxy = Some("localhost,127.0.0.0/8".into());
    let mut sink = Vec::new();
    fetch(&art, &mut sink, &opts, &quiet).unwrap();
    assert_eq!(sink, data);
    assert_eq!(
        proxy.targets.lock().unwrap().len(),
        1,
        "NO_PROXY went direct"
    );
    assert_eq!(server.log().len(), 2);
}

#[test]
fn http_proxy_is_used_for_plain_http() {
    let server = Server::start();
    let data = test_bytes(5_000);
    server.file("/f", &data, vec![]);
    let proxy = Proxy::start();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = quick_options(dir.path());
    opts.network.http_proxy = Some(format!("http://{}", proxy.addr));
    // HTTPS_PROXY does not apply to http:// URLs.
    opts.network.https_proxy = Some("http://127.0.0.1:9".into());
    let art = artifact("x", vec![server.url("/f")], &data);
    let mut sink = Vec::new();
    fetch(&art, &mut sink, &opts, &quiet).unwrap();
    assert_eq!(sink, data);
    assert_eq!(proxy.targets.lock().unwrap().len(), 1);
}

#[test]
fn unsupported_proxy_scheme_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = quick_options(dir.path());
    opts.network.all_proxy = Some("socks5://127.0.0.1:1080".into());
    let err = Fetcher::new(&opts).err().unwrap();
    assert_eq!(
        err.to_string(),
        "proxy \"socks5://127.0.0.1:1080\" from ALL_PROXY cannot be used: socks5:// proxies are \
         not supported (http:// and https:// are)"
    );
    assert_eq!(err.hint().as_deref(), Some("fix or unset ALL_PROXY"));
}
