//! The install transaction against a real HTTP server on 127.0.0.1, a real store in a temp
//! directory, a fake pip and fake verifiers.

mod support;

use gpulibs_hint::Hint;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use gpulibs_install::{
    install, Action, Event, InstallError, InstallReport, InstallRequest, Verdict, Verifier,
    VerifyState,
};
use gpulibs_plan::{parse_manifest, plan, Host, Manifest, Plan, Policy, SystemInventory};
use gpulibs_sources::{PipError, PipResolver, ResolvedWheel, WheelTarget};
use gpulibs_store::{activate_at, Env, FaultPoint, InstallRecord, Store, StoreError};
use gpulibs_testkit::{tree, Node};
use support::*;

struct NoPip;
impl PipResolver for NoPip {
    fn resolve(&self, _: &[String], _: &WheelTarget) -> Result<Vec<ResolvedWheel>, PipError> {
        panic!("pip must not be asked");
    }
}

/// Answers from a table and records every call.
struct FakePip {
    wheels: Vec<ResolvedWheel>,
    calls: Mutex<Vec<Vec<String>>>,
}
impl PipResolver for FakePip {
    fn resolve(&self, reqs: &[String], _: &WheelTarget) -> Result<Vec<ResolvedWheel>, PipError> {
        self.calls.lock().unwrap().push(reqs.to_vec());
        Ok(self.wheels.clone())
    }
}

fn cpu_plan(manifest: &Manifest) -> Plan {
    let host = Host::synthetic(&[], None, None);
    plan(
        &host,
        manifest,
        &SystemInventory::default(),
        &Policy::default(),
    )
}

impl World {
    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }
    /// Serves `name` and returns its manifest component.
    fn serve_tar(&self, id: &str, version: &str, name: &str, archive: Vec<u8>) -> TestComponent {
        TestComponent::served(&self.server, id, version, name, archive, 1 << 20)
    }
    fn run(
        &self,
        manifest: &Manifest,
        adjust: impl FnOnce(&mut InstallRequest),
    ) -> Result<InstallReport, InstallError> {
        self.run_verified(manifest, None, adjust)
    }
    fn run_verified(
        &self,
        manifest: &Manifest,
        verifier: Option<&dyn Verifier>,
        adjust: impl FnOnce(&mut InstallRequest),
    ) -> Result<InstallReport, InstallError> {
        let plan = cpu_plan(manifest);
        let pip = NoPip;
        let mut req = InstallRequest::new(manifest, &plan, self.root(), "testapp", &pip);
        req.verifier = verifier;
        req.fetch.retry.attempts = 2;
        req.fetch.retry.base_delay = Duration::from_millis(10);
        adjust(&mut req);
        install(&req, &|_| {})
    }
}

fn v1(w: &World) -> Manifest {
    let ort = w.serve_tar("ort", "1.0", "ort-1.tar.zst", ort_archive(b"ort one"));
    let extra = w.serve_tar(
        "extra",
        "1.0",
        "extra-1.tar.zst",
        lib_archive("libextra.so.1", b"x1"),
    );
    parse_manifest(&manifest_toml("1.0", &[ort, extra])).unwrap()
}

fn v2(w: &World) -> Manifest {
    let ort = w.serve_tar("ort", "1.0", "ort-1.tar.zst", ort_archive(b"ort one"));
    let extra = w.serve_tar(
        "extra",
        "2.0",
        "extra-2.tar.zst",
        lib_archive("libextra.so.1", b"x2"),
    );
    parse_manifest(&manifest_toml("2.0", &[ort, extra])).unwrap()
}

/// Every file in the tree whose name looks like an archive or a partial download.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    tree(dir)
        .into_iter()
        .filter(|(path, node)| {
            let name = path.file_name().unwrap().to_string_lossy();
            *node != Node::Dir
                && (name.ends_with(".partial") || name.ends_with(".zst") || name.len() == 64)
        })
        .map(|(path, _)| dir.join(path))
        .collect()
}

#[test]
fn fresh_install_streams_into_the_store_and_activates() {
    let w = World::new();
    let m = v1(&w);
    let report = w.run(&m, |_| {}).unwrap();
    assert!(!report.up_to_date);
    assert_eq!(report.previous, None);
    assert_eq!(report.components.len(), 2);
    assert!(report
        .components
        .iter()
        .all(|c| c.action == Action::Downloaded && c.requests == 1));
    assert_eq!(
        report.downloaded_bytes,
        m.components.iter().map(|c| c.archive.size).sum::<u64>()
    );
    let a = activate_at(&w.root()).unwrap();
    assert_eq!(a.install_id, report.install_id);
    assert_eq!(std::fs::read(&a.ort_library).unwrap(), b"ort one");
    // The root's view names it; the report's env is `gpulibs env`'s.
    assert_eq!(a.ort_library, w.root().join("libonnxruntime.so"));
    assert_eq!(a.record.ort_library, "lib/libonnxruntime.so");
    assert_eq!(report.env.ort_dylib_path, a.ort_library);
    assert!(
        leftovers(&w.root()).is_empty(),
        "{:?}",
        leftovers(&w.root())
    );
    assert!(matches!(report.verify, VerifyState::Skipped { .. }));

    // The same plan again: nothing fetched, nothing switched.
    w.server.clear_log();
    let again = w.run(&m, |_| {}).unwrap();
    assert!(again.up_to_date);
    assert_eq!(again.install_id, report.install_id);
    assert!(w.server.log().is_empty());
}

#[test]
fn gzip_and_xz_components_stream_into_the_store_like_zstd() {
    use std::io::Write;
    let w = World::new();
    let ort = w.serve_tar("ort", "1.0", "ort-1.tar.zst", ort_archive(b"ort one"));
    let gz_tar = tar_bytes(&[("lib/libgz.so.1", Entry::File(&[7u8; 300_000]))]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&gz_tar).unwrap();
    let mut gz = w.serve_tar("gz", "1.0", "gz-1.tar.gz", gz.finish().unwrap());
    gz.format = "tar.gz";
    let xz_tar = tar_bytes(&[
        ("lib/libxz.so.1.0", Entry::File(&[9u8; 300_000])),
        ("lib/libxz.so.1", Entry::Symlink("libxz.so.1.0")),
    ]);
    let mut xz =
        lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(1)).unwrap();
    xz.write_all(&xz_tar).unwrap();
    let mut xz = w.serve_tar("xz", "1.0", "xz-1.tar.xz", xz.finish().unwrap());
    xz.format = "tar.xz";
    let m = parse_manifest(&manifest_toml("1.0", &[ort, gz, xz])).unwrap();

    let report = w.run(&m, |_| {}).unwrap();
    assert!(report
        .components
        .iter()
        .all(|c| c.action == Action::Downloaded && c.requests == 1));
    let lib = activate_at(&w.root()).unwrap().ort_library;
    let lib = lib.parent().unwrap();
    assert_eq!(
        std::fs::read(lib.join("libgz.so.1")).unwrap(),
        [7u8; 300_000]
    );
    assert_eq!(
        std::fs::read(lib.join("libxz.so.1")).unwrap(),
        [9u8; 300_000]
    );
    assert!(
        leftovers(&w.root()).is_empty(),
        "{:?}",
        leftovers(&w.root())
    );
}

#[test]
fn an_update_downloads_only_the_changed_component() {
    let w = World::new();
    let first = w.run(&v1(&w), |_| {}).unwrap();
    w.server.clear_log();
    let second = w.run(&v2(&w), |_| {}).unwrap();
    let paths: Vec<String> = w.server.log().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, vec!["/extra-2.tar.zst"]);
    assert_eq!(second.previous.as_deref(), Some(first.install_id.as_str()));
    assert_eq!(second.reused_components, 1);
    let ort = second.components.iter().find(|c| c.id == "ort").unwrap();
    assert_eq!(ort.action, Action::Stored);
    let store = Store::open(w.root()).unwrap();
    assert_eq!(store.current_id().unwrap(), Some(second.install_id.clone()));
    assert_eq!(store.previous_id().unwrap(), Some(first.install_id));
    let lib = store.install_dir(&second.install_id).join("lib");
    assert_eq!(std::fs::read(lib.join("libextra.so.1")).unwrap(), b"x2");
}

#[test]
fn a_digest_mismatch_names_both_digests_deletes_the_bytes_and_keeps_the_old_install() {
    let w = World::new();
    let first = w.run(&v1(&w), |_| {}).unwrap();
    let m = v2(&w);
    w.server.set_default("extra-2.tar.zst", Reply::WrongBytes);
    let err = w.run(&m, |_| {}).unwrap_err();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        text.push_str(&format!(" / {s}"));
        source = s.source();
    }
    let expected = &m
        .components
        .iter()
        .find(|c| c.id == "extra")
        .unwrap()
        .archive
        .sha256;
    assert!(text.contains("sha256 mismatch for extra"), "{text}");
    assert!(text.contains(&format!("expected {expected}")), "{text}");
    assert!(text.contains(", got "), "{text}");
    assert!(
        text.contains(&format!("install {} stays active", first.install_id)),
        "{text}"
    );
    assert!(err.hint().is_some());
    let store = Store::open(w.root()).unwrap();
    assert_eq!(store.current_id().unwrap(), Some(first.install_id));
    assert!(!store.has_component(expected));
    assert!(
        leftovers(&w.root()).is_empty(),
        "{:?}",
        leftovers(&w.root())
    );
}

#[test]
fn offline_directory_installs_with_the_same_verification() {
    let w = World::new();
    let m = v1(&w);
    let dir = w.tmp.path().join("offline");
    std::fs::create_dir(&dir).unwrap();
    // One file under its URL's name, the other under its sha256.
    std::fs::write(dir.join("ort-1.tar.zst"), ort_archive(b"ort one")).unwrap();
    let extra = &m.components[1].archive.sha256;
    std::fs::write(dir.join(extra), lib_archive("libextra.so.1", b"x1")).unwrap();
    w.server.clear_log();
    let report = w.run(&m, |r| r.offline_dir = Some(dir.clone())).unwrap();
    assert!(w.server.log().is_empty(), "offline made requests");
    assert!(report
        .components
        .iter()
        .all(|c| c.action == Action::Offline));
    // The user's files stay.
    assert!(dir.join(extra).is_file());

    // A wrong file is refused with both digests and left alone.
    let w2 = World::new();
    let m2 = v2(&w2);
    std::fs::write(dir.join("extra-2.tar.zst"), b"not the archive").unwrap();
    let m2 = {
        let mut m2 = m2;
        m2.components[1].archive.size = 15;
        m2
    };
    let err = w2
        .run(&m2, |r| r.offline_dir = Some(dir.clone()))
        .unwrap_err();
    assert!(format!("{:?}", err).contains("DigestMismatch"), "{err:?}");
    assert!(dir.join("extra-2.tar.zst").is_file());

    let missing = w2
        .run(&m2, |r| r.offline_dir = Some(w2.tmp.path().join("nope")))
        .unwrap_err();
    assert!(matches!(missing, InstallError::NoOfflineDir { .. }));
}

#[test]
fn pip_is_asked_only_for_missing_wheels_and_a_placeholder_is_never_fetched() {
    let w = World::new();
    let payload = b"wheel ort";
    let whl = wheel(&[
        ("onnxruntime/capi/libonnxruntime.so.1.9.0", payload),
        ("onnxruntime/__init__.py", b"print()"),
    ]);
    w.server.put("ort-1.9.0-py3-none-any.whl", whl.clone());
    let c = TestComponent {
        id: "onnxruntime-1.9.0".into(),
        version: "1.9.0".into(),
        url: "pip:onnxruntime==1.9.0".into(),
        sha256: sha256_hex(&whl),
        size: whl.len() as u64,
        unpacked: 1 << 20,
        format: "wheel",
        origin: "pypi",
        provides: vec![],
    };
    let m = parse_manifest(&manifest_toml("1", std::slice::from_ref(&c))).unwrap();
    let pip = FakePip {
        wheels: vec![ResolvedWheel {
            name: "onnxruntime".into(),
            version: "1.9.0".into(),
            url: w.server.url("ort-1.9.0-py3-none-any.whl"),
            filename: "ort-1.9.0-py3-none-any.whl".into(),
            sha256: Some(c.sha256.clone()),
            size: None,
            requires_dist: vec![],
        }],
        calls: Mutex::new(Vec::new()),
    };
    let plan = cpu_plan(&m);
    let req = InstallRequest::new(&m, &plan, w.root(), "testapp", &pip);
    let report = install(&req, &|_| {}).unwrap();
    assert_eq!(
        *pip.calls.lock().unwrap(),
        vec![vec!["onnxruntime==1.9.0".to_string()]]
    );
    let a = activate_at(&w.root()).unwrap();
    // A wheel's versioned file, reached through the unversioned name in the root's view.
    assert_eq!(a.record.ort_library, "lib/libonnxruntime.so.1.9.0");
    assert_eq!(a.ort_library, w.root().join("libonnxruntime.so"));
    assert_eq!(std::fs::read(&a.ort_library).unwrap(), payload);
    assert_eq!(
        report.components[0].source,
        w.server.url("ort-1.9.0-py3-none-any.whl")
    );
    assert!(
        leftovers(&w.root()).is_empty(),
        "{:?}",
        leftovers(&w.root())
    );

    // Installed already: pip is not asked again.
    install(&req, &|_| {}).unwrap();
    assert_eq!(pip.calls.lock().unwrap().len(), 1);

    // A vendor component with a `pip:` URL is refused before any request.
    let mut bad = c;
    bad.origin = "vendor";
    bad.sha256 = "1".repeat(64);
    let m = parse_manifest(&manifest_toml("1", &[bad])).unwrap();
    w.server.clear_log();
    let err = w.run(&m, |_| {}).unwrap_err();
    assert!(matches!(err, InstallError::Resolve(_)), "{err:?}");
    assert!(w.server.log().is_empty());
}

struct FakeVerifier {
    pass: bool,
    root: PathBuf,
    seen: Mutex<Vec<(String, Option<String>, bool)>>,
}
impl Verifier for FakeVerifier {
    fn verify(&self, record: &InstallRecord, env: &Env) -> Verdict {
        let current = Store::open(&self.root).unwrap().current_id().unwrap();
        self.seen
            .lock()
            .unwrap()
            .push((record.id.clone(), current, env.ort_dylib_path.is_file()));
        Verdict {
            passed: self.pass,
            summary: if self.pass {
                "ran".into()
            } else {
                "the model crashed".into()
            },
            details: serde_json::json!({}),
        }
    }
}

#[test]
fn verification_runs_before_activation_and_a_failure_keeps_the_previous_install() {
    let w = World::new();
    let good = FakeVerifier {
        pass: true,
        root: w.root(),
        seen: Mutex::new(Vec::new()),
    };
    let first = w.run_verified(&v1(&w), Some(&good), |_| {}).unwrap();
    assert!(matches!(first.verify, VerifyState::Passed { .. }));
    // Verified while nothing was active yet, on its own lib/.
    assert_eq!(
        *good.seen.lock().unwrap(),
        vec![(first.install_id.clone(), None, true)]
    );

    let bad = FakeVerifier {
        pass: false,
        root: w.root(),
        seen: Mutex::new(Vec::new()),
    };
    let err = w.run_verified(&v2(&w), Some(&bad), |_| {}).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("the model crashed"), "{text}");
    assert!(
        text.contains(&format!("install {} stays active", first.install_id)),
        "{text}"
    );
    let store = Store::open(w.root()).unwrap();
    assert_eq!(store.current_id().unwrap(), Some(first.install_id.clone()));
    assert_eq!(bad.seen.lock().unwrap()[0].1, Some(first.install_id));
}

#[test]
fn the_lock_makes_a_second_install_wait_or_refuse() {
    let w = World::new();
    let m = v1(&w);
    let store = Store::open(w.root()).unwrap();
    let held = store.try_lock().unwrap();
    let err = w.run(&m, |r| r.wait_for_lock = false).unwrap_err();
    match &err {
        InstallError::Store { source, .. } => match &**source {
            StoreError::Locked { pid, .. } => assert_eq!(*pid, Some(std::process::id())),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    assert!(err.hint().unwrap().contains("without --no-wait"));

    let waited = Mutex::new(false);
    std::thread::scope(|s| {
        let t = s.spawn(|| {
            let plan = cpu_plan(&m);
            let pip = NoPip;
            let req = InstallRequest::new(&m, &plan, w.root(), "testapp", &pip);
            install(&req, &|e| {
                if let Event::WaitingForLock { .. } = e {
                    *waited.lock().unwrap() = true;
                }
            })
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            store.current_id().unwrap().is_none(),
            "installed while locked"
        );
        drop(held);
        t.join().unwrap().unwrap();
    });
    assert!(*waited.lock().unwrap());
    assert!(store.current_id().unwrap().is_some());
}

#[test]
fn a_failure_at_any_store_step_keeps_the_old_install_and_the_next_run_completes() {
    for point in FaultPoint::ALL {
        if point == FaultPoint::SeedInfoWritten {
            continue; // no receipt in this test
        }
        let w = World::new();
        let first = w.run(&v1(&w), |_| {}).unwrap();
        let m = v2(&w);
        let hook: gpulibs_store::StepHook = std::sync::Arc::new(move |p| {
            if p == point {
                Err(StoreError::Injected(p))
            } else {
                Ok(())
            }
        });
        let result = w.run(&m, |r| r.step_hook = Some(hook.clone()));
        let store = Store::open(w.root()).unwrap();
        let current = store.current_id().unwrap().unwrap();
        match result {
            // Failures after `current` switched leave the new install active, complete.
            Err(_) if current == first.install_id => {}
            Err(e) => assert!(
                matches!(point, FaultPoint::CurrentSwitched | FaultPoint::ViewPruned),
                "{point:?}: {e}"
            ),
            Ok(_) => panic!("{point:?} was never reached"),
        }
        assert!(
            store.check_install(&current).unwrap().is_empty(),
            "{point:?}"
        );
        activate_at(&w.root()).unwrap();
        let done = w.run(&m, |_| {}).unwrap();
        assert_eq!(store.current_id().unwrap(), Some(done.install_id.clone()));
        let lib = store.install_dir(&done.install_id).join("lib");
        assert_eq!(
            std::fs::read(lib.join("libextra.so.1")).unwrap(),
            b"x2",
            "{point:?}"
        );
    }
}

#[test]
fn the_seed_receipt_is_written_when_asked() {
    let w = World::new();
    let receipt = w.tmp.path().join("config/testapp/gpu-package-info.json");
    let report = w
        .run(&v1(&w), |r| r.seed_receipt = Some(receipt.clone()))
        .unwrap();
    assert_eq!(report.seed_receipt.as_deref(), Some(receipt.as_path()));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    assert_eq!(json["variant"], "cpu");
    assert_eq!(json["version"], "1.0");
    assert!(json["libsPath"].as_str().unwrap().ends_with("current/lib"));
}

/// Keeps what the verifier was handed.
struct EnvRecorder {
    seen: Mutex<Vec<Env>>,
}
impl Verifier for EnvRecorder {
    fn verify(&self, _: &InstallRecord, env: &Env) -> Verdict {
        self.seen.lock().unwrap().push(env.clone());
        Verdict {
            passed: true,
            summary: "ran".into(),
            details: serde_json::json!({}),
        }
    }
}

#[test]
fn a_component_served_by_the_system_is_recorded_preloaded_verified_and_checked() {
    let w = World::new();
    let cu13 = fake_cu13(&w.tmp.path().join("venv"));
    let ort = w.serve_tar("ort", "1.0", "ort-1.tar.zst", ort_archive(b"ort one"));
    // cuBLAS is in the manifest (with an archive that must not be fetched) and on the machine.
    let cublas = w
        .serve_tar(
            "cublas",
            "13.0",
            "cublas.tar.zst",
            lib_archive("libcublas.so.13", b"never"),
        )
        .providing(&["libcublasLt.so.13", "libcublas.so.13"]);
    let m = parse_manifest(&manifest_toml("1.0", &[ort, cublas])).unwrap();
    // The real scanner over the fake environment: what `gpulibs install` does without --no-reuse.
    let inventory = gpulibs_sources::SystemSearch::explicit([cu13.clone()])
        .scan()
        .inventory();
    let host = Host::synthetic(&[], None, None);
    let plan = plan(&host, &m, &inventory, &Policy::default());
    let run = |verifier: &EnvRecorder| {
        let mut req = InstallRequest::new(&m, &plan, w.root(), "testapp", &NoPip);
        req.verifier = Some(verifier);
        install(&req, &|_| {}).unwrap()
    };

    let verifier = EnvRecorder {
        seen: Mutex::new(Vec::new()),
    };
    let report = run(&verifier);
    assert!(w.server.requests("cublas.tar.zst").is_empty());
    let served = report.components.iter().find(|c| c.id == "cublas").unwrap();
    assert_eq!(served.action, Action::System);
    assert_eq!(
        report.system_paths,
        [cu13.join("libcublasLt.so.13"), cu13.join("libcublas.so.13")]
    );

    // The record keeps both libraries, for the component they serve.
    let store = Store::open(w.root()).unwrap();
    let record = store.install_record(&report.install_id).unwrap();
    let kept: Vec<(&str, &str, &Path)> = record
        .system_libraries
        .iter()
        .map(|l| (l.component.as_str(), l.soname.as_str(), l.path.as_path()))
        .collect();
    assert_eq!(
        kept,
        [
            (
                "cublas",
                "libcublasLt.so.13",
                cu13.join("libcublasLt.so.13").as_path()
            ),
            (
                "cublas",
                "libcublas.so.13",
                cu13.join("libcublas.so.13").as_path()
            ),
        ]
    );

    // The verifier got the install's lib/ first, then the system directory, and the preload
    // list in load order; the report's env and activate() name the root's view, whose names
    // reach the same files (the install's lib/ links the reused ones).
    let lib = store.install_dir(&report.install_id).join("lib");
    let seen = verifier.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].lib_dirs, [lib.clone(), cu13.clone()]);
    assert_eq!(
        seen[0].preload,
        [cu13.join("libcublasLt.so.13"), cu13.join("libcublas.so.13")]
    );
    let a = activate_at(&w.root()).unwrap();
    let root = w.root();
    assert_eq!(a.lib_dirs, std::slice::from_ref(&root));
    assert_eq!(
        a.preload,
        [root.join("libcublasLt.so.13"), root.join("libcublas.so.13")]
    );
    for (via_root, direct) in a.preload.iter().zip(&seen[0].preload) {
        assert_eq!(
            via_root.canonicalize().unwrap(),
            direct.canonicalize().unwrap()
        );
    }
    assert_eq!(
        (report.env.lib_dirs.clone(), report.env.preload.clone()),
        (a.lib_dirs, a.preload)
    );

    // Again, unchanged: up to date.
    let again = run(&verifier);
    assert!(again.up_to_date);
    assert_eq!(again.install_id, report.install_id);

    // A pip upgrade rewrites cuBLASLt: status says so, naming the file and the fix ...
    let lt = cu13.join("libcublasLt.so.13");
    let mut bytes = std::fs::read(&lt).unwrap();
    bytes.extend_from_slice(&[0; 4096]);
    std::fs::write(&lt, &bytes).unwrap();
    let summary = gpulibs_store::HostSummary {
        gpus: vec![],
        driver_cuda: None,
    };
    let health = gpulibs_install::health(&store, &summary).unwrap();
    assert!(!health.ok, "{}", health.message);
    assert_eq!(health.problems.len(), 1, "{:?}", health.problems);
    assert!(health.problems[0].contains(&lt.display().to_string()));
    assert!(health.problems[0].contains("--no-reuse"));
    assert!(health.message.contains("changed"), "{}", health.message);

    // ... and the next install builds and verifies a new generation recording the new file.
    let third = run(&verifier);
    assert!(!third.up_to_date);
    assert_ne!(third.install_id, report.install_id);
    let record = store.install_record(&third.install_id).unwrap();
    assert_eq!(record.system_libraries[0].size, bytes.len() as u64);
    assert!(gpulibs_install::health(&store, &summary).unwrap().ok);
    assert_eq!(verifier.seen.lock().unwrap().len(), 2);
}

#[test]
fn a_need_found_on_the_system_is_recorded_and_handed_to_the_app() {
    let w = World::new();
    let cu13 = fake_cu13(&w.tmp.path().join("venv"));
    let ort = w.serve_tar("ort", "1.0", "ort-1.tar.zst", ort_archive(b"ort one"));
    // The ONNX Runtime component needs cuBLASLt, which no component provides: the machine does
    // (a vendor release packaged with `--system libcublasLt.so.13`).
    let toml = manifest_toml("1.0", &[ort]).replacen(
        "id = \"ort\"\n",
        "id = \"ort\"\nneeds = [\"libcublasLt.so.13\"]\n",
        1,
    );
    let m = parse_manifest(&toml).unwrap();
    let inventory = gpulibs_sources::SystemSearch::explicit([cu13.clone()])
        .scan()
        .inventory();
    let p = plan(
        &Host::synthetic(&[], None, None),
        &m,
        &inventory,
        &Policy::default(),
    );
    assert!(p.chosen.is_some(), "{:?}", p.lines());
    let verifier = EnvRecorder {
        seen: Mutex::new(Vec::new()),
    };
    let mut req = InstallRequest::new(&m, &p, w.root(), "testapp", &NoPip);
    req.verifier = Some(&verifier);
    let report = install(&req, &|_| {}).unwrap();
    let record = Store::open(w.root())
        .unwrap()
        .install_record(&report.install_id)
        .unwrap();
    let kept: Vec<(&str, &Path)> = record
        .system_libraries
        .iter()
        .map(|l| (l.soname.as_str(), l.path.as_path()))
        .collect();
    assert_eq!(
        kept,
        [(
            "libcublasLt.so.13",
            cu13.join("libcublasLt.so.13").as_path()
        )]
    );
    // The verifier (and so the app, through env and activate()) gets the directory.
    let seen = verifier.seen.lock().unwrap();
    assert!(
        seen.iter().any(|env| env.lib_dirs.contains(&cu13)),
        "{seen:?}"
    );
}

/// A wheel written the way a streaming zip writer does (no seeking: every member has a data
/// descriptor, sizes after the data), with a member that is not a library.
fn streamed_wheel(files: &[(&str, &[u8])]) -> Vec<u8> {
    struct NoSeek(Vec<u8>);
    impl std::io::Write for NoSeek {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut zip = zip::ZipWriter::new_stream(NoSeek(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    for (path, bytes) in files {
        zip.start_file(*path, opts).unwrap();
        std::io::Write::write_all(&mut zip, bytes).unwrap();
    }
    zip.finish().unwrap().into_inner().0
}

/// `zip` with the central-directory record of `name` removed (the end record fixed up): the
/// member still streams, but `pip`, which reads the directory, would not install it.
fn without_directory_entry(zip: &[u8], name: &str) -> Vec<u8> {
    let eocd = zip.len() - 22;
    assert_eq!(&zip[eocd..eocd + 4], b"PK\x05\x06");
    let u16_at = |i: usize| u16::from_le_bytes([zip[i], zip[i + 1]]) as usize;
    let u32_at = |i: usize| u32::from_le_bytes(zip[i..i + 4].try_into().unwrap()) as usize;
    let (count, cd_size, cd_start) = (u16_at(eocd + 10), u32_at(eocd + 12), u32_at(eocd + 16));
    let mut directory = Vec::new();
    let mut at = cd_start;
    let mut kept = 0u16;
    for _ in 0..count {
        let len = 46 + u16_at(at + 28) + u16_at(at + 30) + u16_at(at + 32);
        let entry_name = &zip[at + 46..at + 46 + u16_at(at + 28)];
        if entry_name != name.as_bytes() {
            directory.extend_from_slice(&zip[at..at + len]);
            kept += 1;
        }
        at += len;
    }
    assert_eq!(at, cd_start + cd_size);
    assert_eq!(kept as usize, count - 1, "{name} is in the directory");
    let mut out = zip[..cd_start].to_vec();
    out.extend_from_slice(&directory);
    let mut end = zip[eocd..].to_vec();
    end[8..10].copy_from_slice(&kept.to_le_bytes());
    end[10..12].copy_from_slice(&kept.to_le_bytes());
    end[12..16].copy_from_slice(&(directory.len() as u32).to_le_bytes());
    out.extend_from_slice(&end);
    out
}

fn wheel_component(w: &World, id: &str, name: &str, whl: &[u8]) -> TestComponent {
    w.server.put(name, whl.to_vec());
    TestComponent {
        id: id.into(),
        version: "1.0".into(),
        url: w.server.url(name),
        sha256: sha256_hex(whl),
        size: whl.len() as u64,
        unpacked: 1 << 20,
        format: "wheel",
        origin: "vendor",
        provides: vec![],
    }
}

#[test]
fn wheels_stream_into_the_store_in_one_pass() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new();
    let lib: Vec<u8> = (0..200_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    // One wheel as `pip wheel` writes it (sizes in the local headers), one with data
    // descriptors, in one install.
    let ort = wheel(&[
        (
            "onnxruntime/capi/libonnxruntime.so.1.9.0",
            b"ort in a wheel",
        ),
        ("onnxruntime/__init__.py", b"print()"),
    ]);
    let cuda = streamed_wheel(&[
        ("nvidia/cublas/__init__.py", b""),
        ("nvidia/cublas/lib/libcublas.so.12", &lib),
        ("nvidia_cublas-12.dist-info/RECORD", b"record"),
    ]);
    let m = parse_manifest(&manifest_toml(
        "1",
        &[
            wheel_component(&w, "ort", "ort-1.whl", &ort),
            wheel_component(&w, "cublas", "cublas-12.whl", &cuda),
        ],
    ))
    .unwrap();
    w.run(&m, |_| {}).unwrap();
    let a = activate_at(&w.root()).unwrap();
    assert_eq!(std::fs::read(&a.ort_library).unwrap(), b"ort in a wheel");
    let cublas = a.ort_library.parent().unwrap().join("libcublas.so.12");
    assert_eq!(std::fs::read(&cublas).unwrap(), lib);
    // Executable, as the central directory (arriving after the data) says.
    let mode = std::fs::metadata(&cublas).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o555, "{mode:o}");
    // Only the selected members were written.
    let store = Store::open(w.root()).unwrap();
    let meta = store.component(&sha256_hex(&cuda)).unwrap();
    let paths: Vec<&str> = meta.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "nvidia",
            "nvidia/cublas",
            "nvidia/cublas/lib",
            "nvidia/cublas/lib/libcublas.so.12"
        ]
    );
    // Nothing kept: no wheel file, no partial download.
    assert!(
        leftovers(&w.root()).is_empty(),
        "{:?}",
        leftovers(&w.root())
    );
    assert_eq!(w.server.log().len(), 2, "{:?}", w.server.log());
}

#[test]
fn a_wheel_member_missing_from_the_central_directory_refuses_the_component() {
    let w = World::new();
    // The hidden library streams (local header and data are intact), but pip would not
    // install it: the directory does not list it.
    let good = wheel(&[
        ("onnxruntime/capi/libonnxruntime.so.1.9.0", b"ort"),
        ("onnxruntime/capi/libhidden.so", b"not listed"),
    ]);
    let hostile = without_directory_entry(&good, "onnxruntime/capi/libhidden.so");
    let m = parse_manifest(&manifest_toml(
        "1",
        &[wheel_component(&w, "ort", "ort-1.whl", &hostile)],
    ))
    .unwrap();
    let err = w.run(&m, |_| {}).unwrap_err();
    let text = format!("{err:?} {}", error_chain(&err));
    assert!(
        text.contains("onnxruntime/capi/libhidden.so") && text.contains("not in the central"),
        "{text}"
    );
    let store = Store::open(w.root()).unwrap();
    assert!(!store.has_component(&sha256_hex(&hostile)));
    assert!(store.current_id().unwrap().is_none());
    // No temporary component left behind.
    let left: Vec<_> = std::fs::read_dir(w.root().join("store"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
