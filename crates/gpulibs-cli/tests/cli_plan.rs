//! `gpulibs plan` and `gpulibs install` with `--manifest URL`: the real binary against a real
//! HTTP server on 127.0.0.1 serving a signed test manifest whose archive URLs are relative to it.

#[path = "../../gpulibs-install/tests/support/mod.rs"]
mod support;
mod world;

use std::process::{Command, Output};

use gpulibs_plan::sign_manifest;
use support::*;

impl World {
    fn gpulibs(&self) -> Command {
        world::isolated_gpulibs(self.tmp.path(), &self.tmp.path().join("root"))
    }

    /// Publishes a release under `/rel/`: two archives named by relative URLs (one with a
    /// relative mirror), one absolute URL on another path, and `manifest.toml`. Returns the
    /// manifest's bytes (unsigned: the caller publishes a signature or not).
    fn publish(&self) -> Vec<u8> {
        let ort = ort_archive(b"ort from the url manifest");
        self.server.put("rel/ort-1.tar.zst", ort.clone());
        let ort = TestComponent::tar("ort", "1.0", "ort-1.tar.zst".into(), &ort, 4 << 20);
        let extra = lib_archive("libextra.so.1", b"extra");
        self.server.put("rel/sub/extra-1.tar.zst", extra.clone());
        let extra = TestComponent::tar(
            "extra",
            "1.0",
            "sub/extra-1.tar.zst".into(),
            &extra,
            1 << 20,
        );
        let abs = lib_archive("libabs.so.1", b"absolute");
        self.server.put("elsewhere/abs-1.tar.zst", abs.clone());
        let abs = TestComponent::tar(
            "abs",
            "1.0",
            self.server.url("elsewhere/abs-1.tar.zst"),
            &abs,
            1 << 20,
        );
        let text = manifest_toml("1.0", &[ort, extra, abs]).replace(
            "url = \"ort-1.tar.zst\"\n",
            "url = \"ort-1.tar.zst\"\nmirrors = [\"../mirror/ort-1.tar.zst\"]\n",
        );
        self.server
            .put("rel/manifest.toml", text.clone().into_bytes());
        text.into_bytes()
    }

    fn sign(&self, bytes: &[u8]) {
        self.server.put(
            "rel/manifest.toml.minisig",
            sign_manifest(bytes, &world::key()).into_bytes(),
        );
    }

    fn manifest_url(&self) -> String {
        self.server.url("rel/manifest.toml")
    }

    fn plan(&self, extra: &[&str]) -> Output {
        self.gpulibs()
            .arg("plan")
            .args(["--manifest", &self.manifest_url()])
            .args(["--cpu", "--no-reuse"])
            .args(extra)
            .output()
            .unwrap()
    }
}

fn text_of(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn plan_from_a_signed_url_manifest() {
    let w = World::new();
    let bytes = w.publish();
    w.sign(&bytes);
    let public = world::key().public_key();
    let out = w.plan(&["--public-key", &public, "--json"]);
    assert!(out.status.success(), "{}", text_of(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["manifest"], w.manifest_url());
    assert_eq!(json["trust"]["trust"], "signed");
    let components = json["plan"]["chosen"]["components"].as_array().unwrap();
    let source = |id: &str| {
        components
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {components:?}"))["source"]
            .clone()
    };
    // Relative URLs resolved against the manifest's URL; an absolute one unchanged.
    assert_eq!(source("ort")["url"], w.server.url("rel/ort-1.tar.zst"));
    assert_eq!(
        source("ort")["mirrors"],
        serde_json::json!([w.server.url("mirror/ort-1.tar.zst")])
    );
    assert_eq!(
        source("extra")["url"],
        w.server.url("rel/sub/extra-1.tar.zst")
    );
    assert_eq!(
        source("abs")["url"],
        w.server.url("elsewhere/abs-1.tar.zst")
    );
    // Planning downloads the manifest and its signature, and no archive.
    let paths: Vec<String> = w.server.log().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/rel/manifest.toml", "/rel/manifest.toml.minisig"]);

    // The human form names the URL too.
    let out = w.plan(&["--public-key", &public]);
    assert!(out.status.success(), "{}", text_of(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&w.manifest_url()),
        "{}",
        text_of(&out)
    );

    // --signature takes a URL.
    w.server.put(
        "sigs/release.minisig",
        sign_manifest(&bytes, &world::key()).into_bytes(),
    );
    let sig = w.server.url("sigs/release.minisig");
    let out = w.plan(&["--public-key", &public, "--signature", &sig]);
    assert!(out.status.success(), "{}", text_of(&out));
}

#[test]
fn unsigned_url_manifest_is_refused_unless_allowed() {
    let w = World::new();
    w.publish();
    let public = world::key().public_key();
    let out = w.plan(&["--public-key", &public]);
    assert_eq!(out.status.code(), Some(1), "{}", text_of(&out));
    let text = text_of(&out);
    assert!(text.contains("not signed"), "{text}");
    assert!(
        text.contains(&format!("{}.minisig", w.manifest_url())),
        "names where the signature was looked for: {text}"
    );
    assert!(text.contains("--allow-unsigned"), "{text}");

    let out = w.plan(&["--public-key", &public, "--allow-unsigned", "--json"]);
    assert!(out.status.success(), "{}", text_of(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["trust"]["trust"], "unverified_allowed");

    // An explicit --signature that is not there is an error, not "unsigned".
    let missing = w.server.url("sigs/none.minisig");
    let out = w.plan(&[
        "--public-key",
        &public,
        "--signature",
        &missing,
        "--allow-unsigned",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text_of(&out));
    assert!(text_of(&out).contains(&missing), "{}", text_of(&out));

    // No manifest at the URL.
    let out = w
        .gpulibs()
        .args(["plan", "--cpu", "--allow-unsigned", "--manifest"])
        .arg(w.server.url("rel/nothing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = text_of(&out);
    assert!(
        text.contains("no manifest at") && text.contains("/rel/nothing.toml"),
        "{text}"
    );
}

#[test]
fn url_manifest_altered_by_one_byte_is_refused() {
    let w = World::new();
    let bytes = w.publish();
    w.sign(&bytes);
    let mut altered = bytes.clone();
    let at = altered.iter().position(|&b| b == b'1').unwrap();
    altered[at] = b'2';
    w.server.put("rel/manifest.toml", altered);
    let out = w.plan(&["--public-key", &world::key().public_key()]);
    assert_eq!(out.status.code(), Some(1), "{}", text_of(&out));
    let text = text_of(&out);
    assert!(text.contains("altered"), "{text}");
    assert!(text.contains(&w.manifest_url()), "{text}");
}

#[test]
fn install_from_a_url_manifest_fetches_relative_archives_from_its_server() {
    let w = World::new();
    let bytes = w.publish();
    w.sign(&bytes);
    let out = w
        .gpulibs()
        .arg("install")
        .args(["--manifest", &w.manifest_url()])
        .args(["--public-key", &world::key().public_key()])
        .args(["--cpu", "--no-reuse", "--no-verify"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text_of(&out));
    let text = text_of(&out);
    assert!(text.contains("installed "), "{text}");
    assert!(text.contains(&w.manifest_url()), "{text}");
    for path in [
        "/rel/manifest.toml",
        "/rel/manifest.toml.minisig",
        "/rel/ort-1.tar.zst",
        "/rel/sub/extra-1.tar.zst",
        "/elsewhere/abs-1.tar.zst",
    ] {
        assert_eq!(
            w.server.requests(path).len(),
            1,
            "{path}: {:?}",
            w.server.log()
        );
    }
    // The primary answered: the mirror was not needed.
    assert!(w.server.requests("/mirror/ort-1.tar.zst").is_empty());
    let active = gpulibs_store::activate_at(&w.tmp.path().join("root")).unwrap();
    assert_eq!(
        std::fs::read(active.ort_library).unwrap(),
        b"ort from the url manifest"
    );
}
