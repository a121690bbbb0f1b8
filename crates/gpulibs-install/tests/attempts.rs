//! Verification at install time: the planner's ranked candidates tried in turn when
//! verification fails (a reused library → the same variant downloaded → the next variant → the
//! CPU runtime), why an install ends on the CPU runtime, and verification deferred for an install
//! made for a GPU this machine does not have. The test HTTP server, a real store, real ELF
//! libraries for the reused cuBLAS, and verifiers that fail what a rule names (the fault: a
//! kernel image missing at run time, an incompatible reused library).

mod support;

use std::path::PathBuf;
use std::sync::Mutex;

use gpulibs_detect::ComputeCapability;
use gpulibs_install::{
    install, verify_active, AttemptResult, Event, InstallError, InstallReport, InstallRequest,
    Verdict, Verifier, VerifyState,
};
use gpulibs_plan::{
    candidates, parse_manifest, plan, ChosenVariant, Host, Manifest, Plan, Policy, SystemInventory,
    VariantDevice,
};
use gpulibs_sources::{PipError, PipResolver, ResolvedWheel, WheelTarget};
use gpulibs_store::{HostSummary, InstallRecord, Store, VerificationState};
use support::*;

struct NoPip;
impl PipResolver for NoPip {
    fn resolve(&self, _: &[String], _: &WheelTarget) -> Result<Vec<ResolvedWheel>, PipError> {
        panic!("pip must not be asked");
    }
}

/// Fails every install `fails` names (with the reason it returns) and records each call.
struct Judge<F> {
    fails: F,
    seen: Mutex<Vec<(String, bool)>>,
}

fn judge<F: Fn(&InstallRecord) -> Option<&'static str> + Sync>(fails: F) -> Judge<F> {
    Judge {
        fails,
        seen: Mutex::new(Vec::new()),
    }
}

impl<F: Fn(&InstallRecord) -> Option<&'static str> + Sync> Verifier for Judge<F> {
    fn verify(&self, record: &InstallRecord, _env: &gpulibs_store::Env) -> Verdict {
        let why = (self.fails)(record);
        self.seen
            .lock()
            .unwrap()
            .push((record.variant.clone(), !record.system_libraries.is_empty()));
        Verdict {
            passed: why.is_none(),
            summary: match why {
                Some(w) => format!("failed (run): {w}"),
                None => format!("verified ({})", record.variant),
            },
            details: serde_json::json!({}),
        }
    }
}

fn reuses(r: &InstallRecord) -> bool {
    !r.system_libraries.is_empty()
}

/// A server, a root, a fake PyTorch environment holding cuBLAS 13, and a manifest of three
/// variants: `a` (ONNX Runtime with native sm_86 kernels, plus cuBLAS, which the environment
/// can serve), `b` (sm_80 kernels, no cuBLAS) and `cpu`.
struct World {
    server: Server,
    tmp: tempfile::TempDir,
    manifest: Manifest,
    inventory: SystemInventory,
}

fn ort_tar(w: &Server, id: &str, payload: &[u8]) -> TestComponent {
    let archive = ort_archive(payload);
    let name = format!("{id}.tar.zst");
    let c = TestComponent::tar(id, "1.0", w.url(&name), &archive, 1 << 20);
    w.put(&name, archive);
    c
}

fn component_toml(c: &TestComponent, kind: &str, extra: &str) -> String {
    let provides = if c.provides.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = c.provides.iter().map(|p| format!("\"{p}\"")).collect();
        format!("provides = [{}]\n", list.join(", "))
    };
    // A component with kernel coverage names its CUDA runtime (docs/manifest.md, Validation).
    let cuda = if extra.contains("[components.coverage]") {
        "cuda = \"13.0\"\n"
    } else {
        ""
    };
    format!(
        "[[components]]\nid = \"{}\"\nkind = \"{kind}\"\nversion = \"{}\"\n{cuda}{provides}\
         [components.archive]\nurl = \"{}\"\nsha256 = \"{}\"\nsize = {}\nunpacked_size = {}\n\
         format = \"tar.zst\"\n{extra}\n",
        c.id, c.version, c.url, c.sha256, c.size, c.unpacked
    )
}

impl World {
    fn new() -> World {
        let server = Server::start();
        let tmp = tempfile::tempdir().unwrap();
        let cu13 = fake_cu13(&tmp.path().join("venv"));
        let ort_a = ort_tar(&server, "ort-a", b"ort a");
        let ort_b = ort_tar(&server, "ort-b", b"ort b");
        let ort_cpu = ort_tar(&server, "ort-cpu", b"ort cpu");
        let cublas_archive = tar_zst(&[
            ("lib/libcublasLt.so.13", Entry::File(b"lt downloaded")),
            ("lib/libcublas.so.13", Entry::File(b"cublas downloaded")),
        ]);
        let cublas = TestComponent::tar(
            "cublas",
            "13.0",
            server.url("cublas.tar.zst"),
            &cublas_archive,
            1 << 20,
        )
        .providing(&["libcublasLt.so.13", "libcublas.so.13"]);
        server.put("cublas.tar.zst", cublas_archive);
        let toml = format!(
            "schema_version = 1\napp = \"testapp\"\nversion = \"1.0\"\n\n{}{}{}{}\
             [[variants]]\nname = \"a\"\ncomponents = [\"ort-a\", \"cublas\"]\n\n\
             [[variants]]\nname = \"b\"\ncomponents = [\"ort-b\"]\n\n\
             [[variants]]\nname = \"cpu\"\ndevice = \"cpu\"\ncomponents = [\"ort-cpu\"]\n",
            component_toml(
                &ort_a,
                "onnxruntime",
                "[components.coverage]\nsass = [\"sm_86\"]\n"
            ),
            component_toml(
                &ort_b,
                "onnxruntime",
                "[components.coverage]\nsass = [\"sm_80\"]\n"
            ),
            component_toml(&ort_cpu, "onnxruntime", ""),
            component_toml(&cublas, "cublas", ""),
        );
        let manifest = parse_manifest(&toml).unwrap();
        let inventory = gpulibs_sources::SystemSearch::explicit([cu13])
            .scan()
            .inventory();
        World {
            server,
            tmp,
            manifest,
            inventory,
        }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    fn gpu_host() -> Host {
        Host::synthetic(
            &["8.6".parse::<ComputeCapability>().unwrap()],
            Some("580.65.06".parse().unwrap()),
            Some("13.0".parse().unwrap()),
        )
    }

    fn plan_and_candidates(&self, host: &Host) -> (Plan, Vec<ChosenVariant>) {
        let policy = Policy::default();
        (
            plan(host, &self.manifest, &self.inventory, &policy),
            candidates(host, &self.manifest, &self.inventory, &policy),
        )
    }

    /// Installs for `host` with `verifier`, trying the planner's candidates.
    fn run(
        &self,
        host: &Host,
        verifier: &dyn Verifier,
        adjust: impl FnOnce(&mut InstallRequest),
    ) -> (Result<InstallReport, InstallError>, Vec<String>) {
        let (plan, fallbacks) = self.plan_and_candidates(host);
        let mut req = InstallRequest::new(&self.manifest, &plan, self.root(), "testapp", &NoPip);
        req.verifier = Some(verifier);
        req.fallbacks = fallbacks;
        adjust(&mut req);
        let events = Mutex::new(Vec::new());
        let result = install(&req, &|e| {
            if let Event::TryingNext { failed, why, next } = e {
                events
                    .lock()
                    .unwrap()
                    .push(format!("{failed} | {why} | {next}"));
            }
        });
        (result, events.into_inner().unwrap())
    }

    fn installs(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.root().join("installs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        ids.sort();
        ids
    }
}

fn summary(a: &[gpulibs_install::Attempt]) -> Vec<(String, bool, AttemptResult)> {
    a.iter()
        .map(|a| (a.variant.clone(), a.reuses_system, a.result))
        .collect()
}

#[test]
fn candidates_are_the_choice_its_download_the_next_variant_and_the_cpu_runtime_last() {
    let w = World::new();
    let (plan, list) = w.plan_and_candidates(&World::gpu_host());
    let got: Vec<(&str, bool, VariantDevice)> = list
        .iter()
        .map(|c| (c.variant.as_str(), gpulibs_plan::reuses_system(c), c.device))
        .collect();
    assert_eq!(
        got,
        [
            ("a", true, VariantDevice::Cuda),
            ("a", false, VariantDevice::Cuda),
            ("b", false, VariantDevice::Cuda),
            ("cpu", false, VariantDevice::Cpu),
        ]
    );
    assert_eq!(Some(&list[0]), plan.chosen.as_ref());
    // No GPU: the CPU runtime alone.
    let (_, cpu) = w.plan_and_candidates(&Host::synthetic(&[], None, None));
    assert_eq!(
        cpu.iter().map(|c| c.variant.as_str()).collect::<Vec<_>>(),
        ["cpu"]
    );
}

#[test]
fn a_reused_library_that_fails_verification_gives_way_to_the_same_variant_downloaded() {
    let w = World::new();
    let v = judge(|r| reuses(r).then_some("libcublasLt.so.13: undefined symbol"));
    let (result, events) = w.run(&World::gpu_host(), &v, |_| {});
    let report = result.unwrap();

    assert_eq!(report.variant, "a");
    assert_eq!(
        summary(&report.attempts),
        [
            ("a".into(), true, AttemptResult::VerificationFailed),
            ("a".into(), false, AttemptResult::Activated),
        ]
    );
    assert!(report.attempts[0].summary.contains("undefined symbol"));
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("undefined symbol"), "{events:?}");
    assert!(report.system_paths.is_empty());
    assert!(report.why_cpu.is_none());
    let cublas = report.components.iter().find(|c| c.id == "cublas").unwrap();
    assert_eq!(cublas.action, gpulibs_install::Action::Downloaded);
    // ONNX Runtime was fetched once: the failed attempt left it in the store for the next.
    assert_eq!(w.server.requests("ort-a.tar.zst").len(), 1);
    assert_eq!(w.server.requests("cublas.tar.zst").len(), 1);
    assert_eq!(
        report
            .components
            .iter()
            .find(|c| c.id == "ort-a")
            .unwrap()
            .action,
        gpulibs_install::Action::Stored
    );
    // The failed install is gone; the active one records its verification.
    assert_eq!(w.installs(), [report.install_id.as_str()]);
    let store = Store::open(w.root()).unwrap();
    let record = store.current().unwrap().unwrap();
    assert_eq!(record.id, report.install_id);
    assert!(record.system_libraries.is_empty());
    let verification = record.verification.unwrap();
    assert_eq!(verification.state, VerificationState::Verified);
    assert_eq!(verification.summary, "verified (a)");
    // The JSON report carries the attempts.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["attempts"][0]["result"], "verification_failed");
    assert_eq!(json["attempts"][1]["result"], "activated");
}

#[test]
fn a_variant_whose_kernels_fail_at_run_time_gives_way_to_the_next_variant() {
    let w = World::new();
    let v = judge(|r| (r.variant == "a").then_some("no kernel image is available"));
    let (result, events) = w.run(&World::gpu_host(), &v, |_| {});
    let report = result.unwrap();
    assert_eq!(report.variant, "b");
    assert_eq!(
        summary(&report.attempts),
        [
            ("a".into(), true, AttemptResult::VerificationFailed),
            ("a".into(), false, AttemptResult::VerificationFailed),
            ("b".into(), false, AttemptResult::Activated),
        ]
    );
    assert_eq!(events.len(), 2);
    assert_eq!(
        *v.seen.lock().unwrap(),
        [
            ("a".to_string(), true),
            ("a".to_string(), false),
            ("b".to_string(), false)
        ]
    );
    assert_eq!(w.installs(), [report.install_id.as_str()]);
    // Both of a's components stay in the store for a later install; nothing else is left.
    let store = Store::open(w.root()).unwrap();
    let m = &w.manifest;
    for id in ["ort-a", "cublas", "ort-b"] {
        let c = m.components.iter().find(|c| c.id == id).unwrap();
        assert!(store.has_component(&c.archive.sha256), "{id}");
    }
    assert!(std::fs::read_dir(w.root().join("downloads"))
        .map(|d| d.count() == 0)
        .unwrap_or(true));
}

#[test]
fn every_gpu_candidate_failing_ends_on_the_cpu_runtime_saying_why() {
    let w = World::new();
    let v = judge(|r| r.gpu.is_some().then_some("CUDA error: no kernel image"));
    let (result, _) = w.run(&World::gpu_host(), &v, |req| {
        req.gpu = Some(gpulibs_store::GpuRecord::new(None, "8.6".parse().unwrap()));
    });
    let report = result.unwrap();
    assert_eq!(report.variant, "cpu");
    assert_eq!(report.attempts.len(), 4);
    assert_eq!(report.attempts[3].result, AttemptResult::Activated);
    let why = report.why_cpu.expect("a CPU install says why");
    assert!(
        why.reason
            .contains("every GPU candidate failed verification"),
        "{}",
        why.reason
    );
    assert_eq!(why.reason.matches("CUDA error: no kernel image").count(), 3);
    assert!(why.fix.is_some());
    // The CPU candidate is recorded as the CPU runtime, for no GPU.
    let store = Store::open(w.root()).unwrap();
    let record = store.current().unwrap().unwrap();
    assert!(gpulibs_install::is_cpu_runtime(&record));
    assert_eq!(w.installs(), [record.id.as_str()]);
}

#[test]
fn every_candidate_failing_activates_nothing_and_keeps_the_previous_install() {
    let w = World::new();
    let ok = judge(|_| None);
    let first = w
        .run(&Host::synthetic(&[], None, None), &ok, |_| {})
        .0
        .unwrap();
    assert_eq!(first.variant, "cpu");

    // Every GPU candidate fails, and there is no CPU candidate to fall back on.
    let none = judge(|_| Some("everything broken"));
    let err = w
        .run(&World::gpu_host(), &none, |req| {
            req.fallbacks.retain(|c| c.device == VariantDevice::Cuda)
        })
        .0
        .unwrap_err();
    match &err {
        InstallError::NothingVerified { attempts, previous } => {
            assert_eq!(previous.as_deref(), Some(first.install_id.as_str()));
            assert_eq!(attempts.len(), 3, "{attempts:?}");
        }
        other => panic!("{other}"),
    }
    let text = err.to_string();
    assert!(text.contains("each of the 3 candidate(s)"), "{text}");
    assert!(text.contains("stays active"), "{text}");
    let store = Store::open(w.root()).unwrap();
    assert_eq!(
        store.current_id().unwrap().as_deref(),
        Some(first.install_id.as_str())
    );
    // Nothing but the stored components stays of the three failed installs.
    assert_eq!(w.installs(), [first.install_id.as_str()]);

    // Had the CPU runtime been a candidate, the active one is up to date and stays.
    let again = w.run(&World::gpu_host(), &none, |_| {}).0.unwrap();
    assert!(again.up_to_date);
    assert_eq!(again.install_id, first.install_id);
    assert_eq!(
        again.attempts.last().unwrap().result,
        AttemptResult::UpToDate
    );
}

#[test]
fn no_usable_gpu_says_why_and_the_fix_detection_gave() {
    let w = World::new();
    let mut host = Host::synthetic(&[], None, None);
    host.no_gpu_reason = Some("permission denied opening /dev/nvidiactl".into());
    let v = judge(|_| None);
    let (result, _) = w.run(&host, &v, |req| {
        req.no_gpu_fix = Some("add the user to the `video` group".into());
    });
    let report = result.unwrap();
    assert_eq!(report.variant, "cpu");
    let why = report.why_cpu.unwrap();
    assert_eq!(
        why.reason,
        "no usable GPU: permission denied opening /dev/nvidiactl"
    );
    assert_eq!(
        why.fix.as_deref(),
        Some("add the user to the `video` group")
    );
    // A GPU install says nothing of the kind.
    let (gpu, _) = w.run(&World::gpu_host(), &v, |_| {});
    assert!(gpu.unwrap().why_cpu.is_none());
}

#[test]
fn a_driver_too_old_for_every_gpu_variant_is_named_with_its_fix() {
    let w = World::new();
    // Variant a's ONNX Runtime needs CUDA 12.8; give the driver 11.8 and drop variant b.
    let mut m = w.manifest.clone();
    m.components
        .iter_mut()
        .find(|c| c.id == "ort-a")
        .unwrap()
        .cuda = Some("12.8".parse().unwrap());
    m.variants.retain(|v| v.name != "b");
    let host = Host::synthetic(
        &["8.6".parse().unwrap()],
        Some("520.61.05".parse().unwrap()),
        Some("11.8".parse().unwrap()),
    );
    let plan = plan(&host, &m, &w.inventory, &Policy::default());
    let chosen = plan.chosen.clone().unwrap();
    let why = gpulibs_install::why_cpu(&plan, &chosen, &[], None).unwrap();
    assert!(
        why.reason.starts_with("no GPU variant runs"),
        "{}",
        why.reason
    );
    assert!(why.fix.unwrap().contains("update the NVIDIA driver"));
}

#[test]
fn installing_for_a_gpu_this_machine_lacks_is_deferred_until_verified_there() {
    let w = World::new();
    let never = judge(|_| Some("must not run here"));
    let (result, _) = w.run(&World::gpu_host(), &never, |req| {
        req.gpu = Some(gpulibs_store::GpuRecord::new(None, "8.6".parse().unwrap()));
        req.defer_verification = Some("installed for sm_86 (--gpu), not on this machine".into());
    });
    let report = result.unwrap();
    assert!(never.seen.lock().unwrap().is_empty(), "the verifier ran");
    assert_eq!(report.variant, "a");
    assert_eq!(report.attempts.len(), 1);
    match &report.verify {
        VerifyState::Deferred { why, on_target } => {
            assert!(why.contains("sm_86"));
            assert_eq!(on_target, "gpulibs status --verify");
        }
        other => panic!("{other:?}"),
    }
    let store = Store::open(w.root()).unwrap();
    let record = store.current().unwrap().unwrap();
    assert_eq!(record.id, report.install_id);
    assert_eq!(
        record.verification.as_ref().unwrap().state,
        VerificationState::Deferred
    );

    // On the GPU machine, status shows it not yet verified ...
    let target = HostSummary {
        gpus: vec![gpulibs_store::HostGpu {
            index: 0,
            name: None,
            compute_capability: "8.6".parse().unwrap(),
        }],
        driver_cuda: Some("13.0".parse().unwrap()),
    };
    let health = gpulibs_install::health(&store, &target).unwrap();
    assert_eq!(health.verification, Some(VerificationState::Deferred));
    assert!(
        health.message.contains("not yet verified"),
        "{}",
        health.message
    );
    assert!(health.message.contains("gpulibs status --verify"));

    // ... until a verification there records the proof.
    let ok = judge(|_| None);
    let (record, verdict) = verify_active(&store, &ok, &["model.onnx".to_string()]).unwrap();
    assert!(verdict.passed);
    assert_eq!(ok.seen.lock().unwrap().len(), 1);
    let stored = store.install_record(&record.id).unwrap();
    let v = stored.verification.unwrap();
    assert_eq!(v.state, VerificationState::Verified);
    assert_eq!(v.models, ["model.onnx"]);
    let health = gpulibs_install::health(&store, &target).unwrap();
    assert_eq!(health.verification, Some(VerificationState::Verified));
    assert!(!health.message.contains("not yet verified"));

    // A verification that fails there is recorded too, and status is then not ok.
    let bad = judge(|_| Some("no kernel image"));
    let (_, verdict) = verify_active(&store, &bad, &[]).unwrap();
    assert!(!verdict.passed);
    let health = gpulibs_install::health(&store, &target).unwrap();
    assert!(!health.ok);
    assert!(
        health.message.contains("no kernel image"),
        "{}",
        health.message
    );
}

#[test]
fn an_old_record_without_verification_still_reads() {
    let w = World::new();
    let v = judge(|_| None);
    let report = w
        .run(&Host::synthetic(&[], None, None), &v, |_| {})
        .0
        .unwrap();
    let path: PathBuf = w
        .root()
        .join("installs")
        .join(&report.install_id)
        .join("install.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(json.get("verification").is_some());
    json.as_object_mut().unwrap().remove("verification");
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let record = Store::open(w.root())
        .unwrap()
        .install_record(&report.install_id)
        .unwrap();
    assert_eq!(record.verification, None);
}
