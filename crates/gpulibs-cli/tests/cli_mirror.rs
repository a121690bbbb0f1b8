//! Offline installs of the default (pip) flow, run as a user runs them: the real binary, a real
//! wheel built here, a real HTTP server on 127.0.0.1 as the index's file host, and a fake
//! `python3` (`GPULIBS_PYTHON`) that answers like `pip install --dry-run --report -`.
//!
//! - `gpulibs install --offline DIR` finds a `pip:` component's wheel under its own file name
//!   (not only renamed to its sha256), and refuses other bytes under that name;
//! - `gpulibs mirror MANIFEST DIR` resolves `pip:` components through pip and stores the wheels
//!   under their own names: a directory `install --offline` accepts, without pip;
//! - `gpulibs mirror --embedded DIR` asks pip for the pins of the embedded default's variants
//!   and keeps nothing whose bytes are not the measured ones;
//! - and, with this machine's real pip and a package index on 127.0.0.1 serving the official
//!   CPU wheel, mirrors the embedded default for a machine with no GPU, from which `install
//!   --offline`, with no Python at all, installs and verifies the real ONNX Runtime.

#[path = "../../gpulibs-verify/tests/common/mod.rs"]
mod ort_wheels;
#[path = "../../gpulibs-install/tests/support/mod.rs"]
mod support;
mod world;

use std::path::{Path, PathBuf};
use std::process::Command;

use gpulibs_store::Store;
use support::*;

const WHEEL_NAME: &str = "onnxruntime-1.9.0-cp311-cp311-manylinux_2_28_x86_64.whl";

impl World {
    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }
    /// The binary with a temp home, no NVML, no proxies, and `python` as pip's interpreter.
    fn gpulibs(&self, python: &Path) -> Command {
        let mut cmd = world::isolated_gpulibs(self.tmp.path(), &self.root());
        cmd.env("GPULIBS_PYTHON", python);
        cmd
    }
    /// A Python that does not exist: pip must not be run.
    fn no_python(&self) -> PathBuf {
        self.tmp.path().join("no-python3")
    }
    /// A signed manifest with one PyPI component, `pip:onnxruntime==1.9.0`, pinned to `whl`.
    fn manifest(&self, whl: &[u8]) -> PathBuf {
        let c = TestComponent {
            id: "onnxruntime-1.9.0".into(),
            version: "1.9.0".into(),
            url: "pip:onnxruntime==1.9.0".into(),
            sha256: sha256_hex(whl),
            size: whl.len() as u64,
            unpacked: 1 << 20,
            format: "wheel",
            origin: "pypi",
            provides: vec![],
        };
        let path = self.tmp.path().join("release.toml");
        let text = manifest_toml("1", &[c]);
        world::write_signed(&path, &text)
    }
    fn install(&self, manifest: &Path, offline: &Path) -> Command {
        let mut cmd = self.gpulibs(&self.no_python());
        cmd.arg("install")
            .arg("--manifest")
            .arg(manifest)
            .args(["--public-key", &world::key().public_key()])
            .args(["--cpu", "--no-reuse", "--no-verify"])
            .arg("--offline")
            .arg(offline);
        cmd
    }
    fn current(&self) -> Option<String> {
        Store::open(self.root()).unwrap().current_id().unwrap()
    }
    /// A fake `python3` that records its arguments in `args` and prints `report`.
    fn fake_pip(&self, report: &str) -> PathBuf {
        let dir = self.tmp.path().join("py");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("report.json"), report).unwrap();
        let body = format!(
            "printf '%s\\n' \"$@\" > '{0}/args'\ncat '{0}/report.json'",
            dir.display()
        );
        let path = dir.join("python3");
        // Written by a child process: a file this process holds open for writing is inherited by
        // whatever another test thread forks meanwhile, and exec'ing it fails with ETXTBSY.
        let status = Command::new("sh")
            .args([
                "-c",
                "printf '%s\\n' \"$1\" > \"$2\" && chmod 755 \"$2\"",
                "sh",
            ])
            .arg(format!("#!/bin/sh\n{body}"))
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        path
    }
    fn pip_args(&self) -> Vec<String> {
        std::fs::read_to_string(self.tmp.path().join("py/args"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// A real wheel with ONNX Runtime's library in it.
fn ort_wheel(payload: &[u8]) -> Vec<u8> {
    wheel(&[
        ("onnxruntime/capi/libonnxruntime.so.1.9.0", payload),
        ("onnxruntime/__init__.py", b"print()"),
    ])
}

/// The embedded default's CPU variant's one component, and its pip requirement
/// (`onnxruntime==1.31.1`).
fn embedded_cpu_wheel() -> (gpulibs_plan::Component, String) {
    use gpulibs_sources::{embedded_default, CoverageTable, PIP_URL_SCHEME};
    let m = embedded_default(CoverageTable::embedded());
    let cpu = m.variants.iter().find(|v| v.name == "cpu").unwrap();
    let c = m
        .components
        .iter()
        .find(|c| c.id == cpu.components[0])
        .unwrap()
        .clone();
    let requirement = c
        .archive
        .url
        .strip_prefix(PIP_URL_SCHEME)
        .unwrap()
        .to_string();
    (c, requirement)
}

/// pip's report (format 1) for one wheel.
fn report(name: &str, version: &str, url: &str, sha256: &str) -> String {
    format!(
        r#"{{"version":"1","install":[{{"download_info":{{"url":"{url}","archive_info":{{"hashes":{{"sha256":"{sha256}"}}}}}},"metadata":{{"name":"{name}","version":"{version}"}}}}]}}"#
    )
}

fn output(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn offline_install_finds_a_pip_wheel_under_its_own_file_name() {
    let w = World::new();
    let whl = ort_wheel(b"ort wheel");
    let m = w.manifest(&whl);
    let dir = w.tmp.path().join("usb");
    std::fs::create_dir(&dir).unwrap();

    // Other bytes under the wheel's name: refused (size, sha256), nothing activated, the file
    // kept.
    let other = ort_wheel(b"something else");
    std::fs::write(dir.join(WHEEL_NAME), &other).unwrap();
    let (ok, text) = output(&mut w.install(&m, &dir));
    assert!(!ok, "{text}");
    assert!(text.contains("nothing was activated"), "{text}");
    assert!(text.contains(WHEEL_NAME), "{text}");
    assert_eq!(w.current(), None);
    assert_eq!(std::fs::read(dir.join(WHEEL_NAME)).unwrap(), other);

    // The wheel under its own name: installed, without pip and without a request.
    std::fs::write(dir.join(WHEEL_NAME), &whl).unwrap();
    let (ok, text) = output(&mut w.install(&m, &dir));
    assert!(ok, "{text}");
    assert!(text.contains("offline file"), "{text}");
    assert!(text.contains(WHEEL_NAME), "{text}");
    assert!(w.current().is_some());
    assert!(w.server.log().is_empty());

    // Named by its sha256, as before: still found.
    let w2 = World::new();
    let m2 = w2.manifest(&whl);
    let dir2 = w2.tmp.path().join("usb");
    std::fs::create_dir(&dir2).unwrap();
    std::fs::write(dir2.join(sha256_hex(&whl)), &whl).unwrap();
    let (ok, text) = output(&mut w2.install(&m2, &dir2));
    assert!(ok, "{text}");
    assert!(w2.current().is_some());
}

#[test]
fn mirror_resolves_pip_wheels_into_a_directory_install_offline_accepts() {
    let w = World::new();
    let whl = ort_wheel(b"ort wheel");
    let m = w.manifest(&whl);
    let path = format!("/files/ab/cd/{WHEEL_NAME}");
    w.server.put(&path, whl.clone());
    let python = w.fake_pip(&report(
        "onnxruntime",
        "1.9.0",
        &w.server.url(&path),
        &sha256_hex(&whl),
    ));
    let dir = w.tmp.path().join("usb");

    let (ok, text) = output(w.gpulibs(&python).arg("mirror").arg(&m).arg(&dir));
    assert!(ok, "{text}");
    assert!(w.pip_args().contains(&"onnxruntime==1.9.0".to_string()));
    assert_eq!(std::fs::read(dir.join(WHEEL_NAME)).unwrap(), whl);
    // The written manifest names the wheel by its file name; the signed one is kept as is.
    let written = std::fs::read_to_string(dir.join("manifest.toml")).unwrap();
    assert!(
        written.contains(&format!("url = \"{WHEEL_NAME}\"")),
        "{written}"
    );
    assert_eq!(
        std::fs::read(dir.join("manifest.upstream.toml")).unwrap(),
        std::fs::read(&m).unwrap()
    );
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.') && n != ".partial")
        .collect();
    assert!(files.is_empty(), "temporaries left: {files:?}");

    // Offline, from the signed manifest: no pip, no request.
    w.server.clear_log();
    let (ok, text) = output(&mut w.install(&m, &dir));
    assert!(ok, "{text}");
    assert!(text.contains("offline file"), "{text}");
    assert!(w.current().is_some());
    assert!(w.server.log().is_empty());

    // Mirrored again: verified in place, nothing downloaded.
    let (ok, text) = output(w.gpulibs(&python).arg("mirror").arg(&m).arg(&dir));
    assert!(ok, "{text}");
    assert!(text.contains("verified"), "{text}");
    assert!(!w.server.log().iter().any(|s| s.path == path));
}

#[test]
fn mirror_embedded_asks_pip_for_the_variants_pins_and_keeps_only_measured_bytes() {
    let w = World::new();
    let (c, requirement) = embedded_cpu_wheel();
    let (name, version) = requirement.split_once("==").unwrap();
    let file = format!(
        "{}-{version}-cp311-cp311-manylinux_2_28_x86_64.whl",
        name.replace('-', "_")
    );
    // The index says the measured sha256 but serves other bytes.
    let path = format!("/files/{file}");
    w.server.put(&path, vec![7u8; 1000]);
    let python = w.fake_pip(&report(
        name,
        version,
        &w.server.url(&path),
        &c.archive.sha256,
    ));
    let dir = w.tmp.path().join("usb");

    let (ok, text) = output(
        w.gpulibs(&python)
            .args(["mirror", "--embedded", "--cpu"])
            .arg(&dir),
    );
    assert!(!ok, "{text}");
    assert_eq!(w.pip_args().last(), Some(&requirement));
    assert!(text.contains(&c.id), "{text}");
    assert!(!dir.join(&file).exists());
    assert!(!dir.join("gpulibs-mirror.json").exists());

    // A manifest and --embedded together, or neither a manifest nor --embedded: usage errors.
    let (ok, text) = output(w.gpulibs(&python).args(["mirror", "--embedded", "a", "b"]));
    assert!(
        !ok && text.contains("--embedded takes only the directory"),
        "{text}"
    );
    let (ok, text) = output(w.gpulibs(&python).args(["mirror", "a"]));
    assert!(
        !ok && text.contains("give the manifest and the directory"),
        "{text}"
    );
}

/// The embedded default, mirrored for a machine with no GPU by this machine's real pip from a
/// package index on 127.0.0.1 (a PEP 503 project page, as PyPI serves it, holding the official
/// CPU wheel): the wheel is kept under its own name and recorded; `install --offline` from the
/// directory, with no Python at all, installs the real ONNX Runtime and verifies it on the CPU.
#[test]
fn mirror_embedded_with_real_pip_then_install_offline_without_pip() {
    let w = World::new();
    let (c, requirement) = embedded_cpu_wheel();
    let (name, version) = requirement.split_once("==").unwrap();
    let wheel = ort_wheels::wheel(name, version);
    let file = wheel.file_name().unwrap().to_str().unwrap().to_string();
    let bytes = std::fs::read(&wheel).unwrap();
    assert_eq!(
        sha256_hex(&bytes),
        c.archive.sha256,
        "{file} is not the measured wheel"
    );
    w.server.put(&format!("/files/{file}"), bytes);
    w.server.put(
        &format!("/simple/{name}/"),
        format!(
            "<!DOCTYPE html><html><body><a href=\"/files/{file}#sha256={}\">{file}</a></body></html>",
            c.archive.sha256
        ),
    );
    let dir = w.tmp.path().join("usb");
    let mut mirror = w.gpulibs(Path::new("python3"));
    mirror
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_INDEX_URL", w.server.url("/simple/"))
        .env_remove("PIP_EXTRA_INDEX_URL")
        .env_remove("PIP_FIND_LINKS")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .args(["mirror", "--embedded", "--cpu"])
        .arg(&dir);
    let out = mirror.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    world::snapshot(
        "mirror_embedded_cpu",
        &out,
        &[
            (w.tmp.path(), "[TMP]"),
            (Path::new(&w.server.url("")), "[INDEX]/"),
        ],
    );
    assert!(dir.join(&file).is_file());
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("gpulibs-mirror.json")).unwrap()).unwrap();
    assert_eq!(record["schema_version"], 1);
    assert_eq!(record["variants"], serde_json::json!(["cpu"]));
    assert_eq!(record["wheels"][0]["file"], file.as_str());
    assert_eq!(record["wheels"][0]["sha256"], c.archive.sha256.as_str());
    // pip was asked once, through the index on 127.0.0.1; the wheel was fetched by gpulibs.
    let paths: Vec<String> = w.server.log().into_iter().map(|s| s.path).collect();
    assert!(paths.contains(&format!("/simple/{name}/")), "{paths:?}");
    assert!(paths.contains(&format!("/files/{file}")), "{paths:?}");

    // No Python, no network: the directory alone.
    w.server.clear_log();
    let (ok, text) = output(
        w.gpulibs(&w.no_python())
            .args(["install", "--cpu", "--offline"])
            .arg(&dir),
    );
    assert!(ok, "{text}");
    assert!(text.contains("verify: CPU only (ONNX Runtime"), "{text}");
    // Read from DIR, not downloaded: the summary says which.
    assert!(text.contains(" from the offline directory, "), "{text}");
    assert!(!text.contains("downloaded "), "{text}");
    assert!(w.server.log().is_empty(), "{:?}", w.server.log());
    let lib = w
        .root()
        .join("current/lib")
        .join(format!("libonnxruntime.so.{version}"));
    assert!(lib.is_file(), "{text}");
}
