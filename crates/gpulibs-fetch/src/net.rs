//! The network environment: proxies (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`) and
//! extra certificate authorities (`SSL_CERT_FILE`, `SSL_CERT_DIR`).
//!
//! The rules are pure functions over a [`NetworkEnv`] value, so tests never touch the process
//! environment: [`proxy_for`] picks the proxy for a URL, [`bypasses_proxy`] applies `NO_PROXY`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Proxy and certificate settings, usually from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkEnv {
    /// Proxy for `https://` URLs (`HTTPS_PROXY` / `https_proxy`).
    pub https_proxy: Option<String>,
    /// Proxy for `http://` URLs (`HTTP_PROXY` / `http_proxy`).
    pub http_proxy: Option<String>,
    /// Proxy for either when the specific one is unset (`ALL_PROXY` / `all_proxy`).
    pub all_proxy: Option<String>,
    /// Hosts reached directly (`NO_PROXY` / `no_proxy`).
    pub no_proxy: Option<String>,
    /// PEM file of extra trusted certificate authorities (`SSL_CERT_FILE`).
    pub ssl_cert_file: Option<PathBuf>,
    /// Directory of PEM files of extra trusted certificate authorities (`SSL_CERT_DIR`).
    pub ssl_cert_dir: Option<PathBuf>,
}

impl NetworkEnv {
    /// Reads the variables from the process environment. Lowercase names win over uppercase
    /// ones, as in curl; empty values count as unset.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup` (the environment, or a table in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let var = |lower: &str, upper: &str| {
            [lower, upper]
                .iter()
                .filter_map(|name| lookup(name))
                .find(|value| !value.trim().is_empty())
        };
        NetworkEnv {
            https_proxy: var("https_proxy", "HTTPS_PROXY"),
            http_proxy: var("http_proxy", "HTTP_PROXY"),
            all_proxy: var("all_proxy", "ALL_PROXY"),
            no_proxy: var("no_proxy", "NO_PROXY"),
            ssl_cert_file: var("SSL_CERT_FILE", "SSL_CERT_FILE").map(PathBuf::from),
            ssl_cert_dir: var("SSL_CERT_DIR", "SSL_CERT_DIR").map(PathBuf::from),
        }
    }
}

/// The parts of a URL the network rules look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// `http` or `https`, lowercase.
    pub scheme: String,
    /// Host name or IP address, without brackets, lowercase.
    pub host: String,
    /// Port, explicit or the scheme's default.
    pub port: u16,
    /// Everything from the path on (`/a/b?c`), `/` when empty.
    pub path: &'a str,
}

/// Splits an absolute `http(s)://` URL. Anything else is `None`.
pub fn split_url(url: &str) -> Option<UrlParts<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    Some(UrlParts {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
        path: if path.is_empty() { "/" } else { path },
    })
}

/// The proxy to use for `url`, or `None` to connect directly: `HTTPS_PROXY` for https URLs,
/// `HTTP_PROXY` for http ones, else `ALL_PROXY`; `NO_PROXY` overrides all.
pub fn proxy_for<'e>(env: &'e NetworkEnv, url: &str) -> Option<&'e str> {
    let parts = split_url(url)?;
    let specific = match parts.scheme.as_str() {
        "https" => env.https_proxy.as_deref(),
        _ => env.http_proxy.as_deref(),
    };
    let proxy = specific.or(env.all_proxy.as_deref())?;
    if let Some(no_proxy) = &env.no_proxy {
        if bypasses_proxy(no_proxy, &parts.host, parts.port) {
            return None;
        }
    }
    Some(proxy)
}

/// Whether `NO_PROXY` sends `host:port` directly. Entries are separated by commas or spaces:
/// `*` (every host), a domain (`example.com` matches it and its subdomains; a leading `.` or
/// `*.` is the same), an IP address, a CIDR range (`10.0.0.0/8`, `fd00::/8`), each optionally
/// with `:port`. Case does not matter.
pub fn bypasses_proxy(no_proxy: &str, host: &str, port: u16) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let host_ip: Option<IpAddr> = host.parse().ok();
    no_proxy
        .split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .any(|entry| entry_matches(&entry.to_ascii_lowercase(), &host, host_ip, port))
}

fn entry_matches(entry: &str, host: &str, host_ip: Option<IpAddr>, port: u16) -> bool {
    if entry == "*" {
        return true;
    }
    // A CIDR range or an IP address, either possibly bracketed (IPv6) and with a port.
    let (pattern, entry_port) = split_entry_port(entry);
    if let Some(p) = entry_port {
        if p != port {
            return false;
        }
    }
    if let Some((net, bits)) = pattern.split_once('/') {
        let (Ok(net), Ok(bits), Some(ip)) = (net.parse::<IpAddr>(), bits.parse::<u8>(), host_ip)
        else {
            return false;
        };
        return in_cidr(ip, net, bits);
    }
    if let Ok(ip) = pattern.parse::<IpAddr>() {
        return host_ip == Some(ip);
    }
    let domain = pattern
        .trim_start_matches('*')
        .trim_start_matches('.')
        .trim_end_matches('.');
    if domain.is_empty() {
        return false;
    }
    host == domain
        || (host.len() > domain.len()
            && host.ends_with(domain)
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.')
}

/// Splits `host:port`, `[v6]:port`, `[v6]`, bare IPv6 (several colons: no port) and CIDR.
fn split_entry_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        if let Some((inside, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            let (addr, bits) = match after.split_once('/') {
                Some((_, bits)) => (inside, Some(bits)),
                None => (inside, None),
            };
            return match bits {
                // `[fd00::]/8` is unusual; keep the address and ignore the range.
                Some(_) => (addr, None),
                None => (addr, port),
            };
        }
    }
    if entry.matches(':').count() == 1 {
        if let Some((host, port)) = entry.split_once(':') {
            if let Ok(port) = port.parse() {
                return (host, Some(port));
            }
        }
    }
    (entry, None)
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// A certificate file or directory that could not be used.
#[derive(Debug)]
pub(crate) struct CaError {
    pub variable: &'static str,
    pub path: PathBuf,
    pub detail: String,
}

/// DER certificates from `SSL_CERT_FILE` and every PEM file in `SSL_CERT_DIR`. A file named
/// by `SSL_CERT_FILE` must exist and hold at least one certificate; files in `SSL_CERT_DIR`
/// that hold none (keys, CRLs, readme files) are skipped.
pub(crate) fn extra_roots(env: &NetworkEnv) -> Result<Vec<Vec<u8>>, CaError> {
    let mut certs = Vec::new();
    if let Some(file) = &env.ssl_cert_file {
        let found = pem_certificates(file).map_err(|detail| CaError {
            variable: "SSL_CERT_FILE",
            path: file.clone(),
            detail,
        })?;
        if found.is_empty() {
            return Err(CaError {
                variable: "SSL_CERT_FILE",
                path: file.clone(),
                detail: "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
            });
        }
        certs.extend(found);
    }
    if let Some(dir) = &env.ssl_cert_dir {
        let entries = std::fs::read_dir(dir).map_err(|e| CaError {
            variable: "SSL_CERT_DIR",
            path: dir.clone(),
            detail: format!("cannot list it: {e}"),
        })?;
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        paths.sort();
        for path in paths.iter().filter(|p| p.is_file()) {
            certs.extend(pem_certificates(path).unwrap_or_default());
        }
    }
    Ok(certs)
}

fn pem_certificates(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => certs.push(cert.der().to_vec()),
            Ok(_) => {}
            Err(e) => return Err(format!("not a valid PEM file: {e}")),
        }
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_rules() {
        let table: &[(&str, &str, u16, bool)] = &[
            ("*", "example.com", 443, true),
            ("example.com", "example.com", 443, true),
            ("example.com", "dl.example.com", 443, true),
            ("example.com", "badexample.com", 443, false),
            (".example.com", "dl.example.com", 443, true),
            (".example.com", "example.com", 443, true),
            ("*.example.com", "dl.example.com", 443, true),
            ("EXAMPLE.com", "Dl.Example.COM", 443, true),
            ("example.com:8443", "example.com", 443, false),
            ("example.com:8443", "example.com", 8443, true),
            ("127.0.0.1", "127.0.0.1", 80, true),
            ("127.0.0.1", "127.0.0.2", 80, false),
            ("10.0.0.0/8", "10.1.2.3", 80, true),
            ("10.0.0.0/8", "11.1.2.3", 80, false),
            ("10.0.0.0/8", "ten.example", 80, false),
            ("::1", "::1", 80, true),
            ("[::1]", "[::1]", 80, true),
            ("[::1]:8080", "::1", 8080, true),
            ("[::1]:8080", "::1", 80, false),
            ("fd00::/8", "fd12::1", 80, true),
            ("fd00::/8", "fe80::1", 80, false),
            ("localhost, internal.corp", "internal.corp", 80, true),
            ("localhost internal.corp", "x.internal.corp", 80, true),
            ("", "example.com", 80, false),
            (".", "example.com", 80, false),
        ];
        for &(no_proxy, host, port, expected) in table {
            assert_eq!(
                bypasses_proxy(no_proxy, host, port),
                expected,
                "NO_PROXY={no_proxy:?} host={host} port={port}"
            );
        }
    }

    #[test]
    fn proxy_per_scheme() {
        let env = NetworkEnv {
            https_proxy: Some("http://secure-proxy:3128".into()),
            http_proxy: Some("http://plain-proxy:3128".into()),
            all_proxy: Some("http://any-proxy:3128".into()),
            no_proxy: Some("internal.corp".into()),
            ..NetworkEnv::default()
        };
        assert_eq!(
            proxy_for(&env, "https://example.com/a"),
            Some("http://secure-proxy:3128")
        );
        assert_eq!(
            proxy_for(&env, "http://example.com/a"),
            Some("http://plain-proxy:3128")
        );
        assert_eq!(proxy_for(&env, "https://mirror.internal.corp/a"), None);
        let only_all = NetworkEnv {
            all_proxy: Some("http://any-proxy:3128".into()),
            ..NetworkEnv::default()
        };
        assert_eq!(
            proxy_for(&only_all, "https://example.com/"),
            Some("http://any-proxy:3128")
        );
        assert_eq!(
            proxy_for(&NetworkEnv::default(), "https://example.com/"),
            None
        );
    }

    #[test]
    fn env_lookup_prefers_lowercase_and_skips_empty() {
        let vars = [
            ("https_proxy", "http://lower:1"),
            ("HTTPS_PROXY", "http://upper:1"),
            ("http_proxy", ""),
            ("HTTP_PROXY", "http://upper:2"),
            ("NO_PROXY", "localhost"),
            ("SSL_CERT_FILE", "/etc/corp.pem"),
        ];
        let env = NetworkEnv::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        });
        assert_eq!(env.https_proxy.as_deref(), Some("http://lower:1"));
        assert_eq!(env.http_proxy.as_deref(), Some("http://upper:2"));
        assert_eq!(env.all_proxy, None);
        assert_eq!(env.no_proxy.as_deref(), Some("localhost"));
        assert_eq!(env.ssl_cert_file, Some(PathBuf::from("/etc/corp.pem")));
    }

    #[test]
    fn url_parts() {
        let p = split_url("HTTPS://User:pw@Example.COM:8443/a/b?c=1").unwrap();
        assert_eq!(
            (p.scheme.as_str(), p.host.as_str(), p.port, p.path),
            ("https", "example.com", 8443, "/a/b?c=1")
        );
        let p = split_url("http://[::1]/x").unwrap();
        assert_eq!((p.host.as_str(), p.port, p.path), ("::1", 80, "/x"));
        assert_eq!(split_url("https://host").unwrap().path, "/");
        assert!(split_url("ftp://host/x").is_none());
        assert!(split_url("host/x").is_none());
        assert!(split_url("http://:80/").is_none());
    }
}
