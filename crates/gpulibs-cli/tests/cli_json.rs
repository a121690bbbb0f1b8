//! The documented JSON of `plan`, `install`, `status`, `env`, `rollback`, `gc`, `remove`,
//! `recommend` (and its receipt), `package` and `mirror` (`docs/json.md`): the real binary's `--json` output decoded into structs that refuse unknown
//! fields, so a field the docs do not list fails here; and a snapshot of each command's whole
//! human output (`tests/snapshots/`), with temporary paths, install ids, times and sizes
//! filtered.
//!
//! A changed output: `INSTA_UPDATE=always cargo test -p gpulibs-cli --test cli_json`, then read
//! the `.snap` diffs before committing them.

#[path = "../../gpulibs-install/tests/support/mod.rs"]
mod support;
mod world;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use support::*;

// ---------------------------------------------------------------------------------------------
// The documented shapes, test side.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct PlanJson {
    schema_version: u32,
    manifest: String,
    trust: Value,
    install_root: String,
    plan: PlanBody,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct PlanBody {
    target_gpus: Vec<TargetGpu>,
    outcome: Value,
    chosen: Option<Chosen>,
    rejected: Vec<Rejection>,
    warnings: Vec<Value>,
    totals: Totals,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct TargetGpu {
    index: u32,
    name: Option<String>,
    compute_capability: String,
    memory_free_bytes: Option<u64>,
    memory_total_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Chosen {
    variant: String,
    label: String,
    device: String,
    components: Vec<PlannedComponent>,
    needs: Vec<Value>,
    why: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct PlannedComponent {
    id: String,
    source: Value,
    why: Value,
    in_store: bool,
    download_bytes: u64,
    unpacked_bytes: Option<u64>,
    per_gpu: Vec<(u32, Value)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Rejection {
    variant: String,
    label: String,
    reasons: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Totals {
    download_bytes: u64,
    unpacked_bytes: u64,
    disk_bytes: u64,
}

/// A driver as data: `{"version": null, "cuda": "12.2"}`.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Driver {
    version: Option<String>,
    cuda: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DriverTooOld {
    reason: String,
    component: String,
    cuda: String,
    needs: Option<String>,
    have: Driver,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct MinorVersionCompatibility {
    warning: String,
    component: String,
    cuda: String,
    driver: Driver,
    full_support_from: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct StatusJson {
    schema_version: u32,
    root: String,
    store: String,
    health: Health,
    install: Option<InstallJson>,
    verified: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Health {
    status: Value,
    cpu_runtime: bool,
    ok: bool,
    message: String,
    problems: Vec<String>,
    verification: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct InstallJson {
    schema_version: u32,
    id: String,
    app: String,
    variant: String,
    release: Option<String>,
    components: Vec<Value>,
    coverage: Vec<Value>,
    gpu: Option<Value>,
    driver: Option<Value>,
    requires_driver_cuda: Option<String>,
    installed_at: String,
    ort_library: String,
    system_libraries: Vec<Value>,
    #[serde(default)]
    reused_links: Vec<Value>,
    #[serde(default)]
    verification: Option<Value>,
}

#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvJson {
    schema_version: u32,
    install_id: String,
    lib_dirs: Vec<String>,
    ld_library_path: String,
    ort_dylib_path: String,
    preload: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackJson {
    schema_version: u32,
    active: String,
    variant: String,
    previous: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct GcJson {
    schema_version: u32,
    removed_installs: Vec<String>,
    removed_components: Vec<String>,
    removed_temporaries: Vec<String>,
    freed_bytes: u64,
    store: String,
    kept_for_others: Vec<String>,
    other_roots: Vec<String>,
    unreadable_roots: Vec<String>,
    dropped_roots: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RemoveJson {
    schema_version: u32,
    removed: bool,
    root: String,
    freed_bytes: u64,
    removed_components: Vec<String>,
    kept_for_others: Vec<String>,
    unreadable_roots: Vec<String>,
    root_removed: bool,
    kept: Vec<String>,
    seed_info_removed: Option<String>,
    seed_info_kept: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RecommendJson {
    schema_version: u32,
    winner: Option<Value>,
    losses: Vec<LossJson>,
    resources: ResourcesJson,
    headroom: HeadroomJson,
    recorded_in: Option<String>,
}

/// The recommendation receipt `gpulibs-recommendation.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ReceiptJson {
    schema_version: u32,
    winner: Option<String>,
    losses: Vec<LossJson>,
}

/// A loss whose reason is `files_missing` or `no_gpu` (the others carry other fields).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct LossJson {
    model: String,
    quality_rank: u32,
    reason: String,
    message: String,
    #[serde(default)]
    missing: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ResourcesJson {
    free_vram_bytes: Option<u64>,
    free_ram_bytes: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct HeadroomJson {
    fraction: f64,
    min_bytes: u64,
}

// ---------------------------------------------------------------------------------------------
// The world.

impl World {
    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    fn gpulibs(&self) -> Command {
        world::isolated_gpulibs(self.tmp.path(), &self.root())
    }

    /// A signed manifest `name` of an ONNX Runtime and one more library holding `extra`.
    fn signed(&self, name: &str, extra: &[u8]) -> PathBuf {
        let text = ort_and_extra_release(&self.server, name, extra);
        world::write_signed(&self.tmp.path().join(format!("{name}.toml")), &text)
    }

    /// Installs `manifest` for the CPU, without verification.
    fn install(&self, manifest: &Path) {
        let mut cmd = self.gpulibs();
        cmd.arg("install")
            .arg("--manifest")
            .arg(manifest)
            .args(["--public-key", &world::key().public_key()])
            .args(["--cpu", "--no-reuse", "--no-verify"]);
        run(&mut cmd, 0);
    }

    /// `args` with `--json`, exiting `code`, its stdout decoded as `T`.
    fn json<T: DeserializeOwned>(&self, args: &[&str], code: i32) -> T {
        let out = run(self.gpulibs().arg("--json").args(args), code);
        decode(&out)
    }

    /// Snapshots the whole human output of `args` as `name`.
    fn snapshot(&self, name: &str, args: &[&str]) {
        let out = self.gpulibs().args(args).output().unwrap();
        world::snapshot(name, &out, &[(self.tmp.path(), "[TMP]")]);
    }
}

/// Runs `cmd`, asserting its exit code.
fn run(cmd: &mut Command, code: i32) -> Output {
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{cmd:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn decode<T: DeserializeOwned>(out: &Output) -> T {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

// ---------------------------------------------------------------------------------------------
// plan

const PLAN_ARGS: [&str; 5] = ["plan", "--gpu", "8.6", "--driver-cuda", "12.2"];

/// Planned for a driver known only by its CUDA version: the JSON has the documented fields
/// only, and says the driver as data (`{"version": null, "cuda": "12.2"}`), not as prose.
#[test]
fn plan_json_is_documented_and_says_the_driver_as_data() {
    let w = World::new();
    let plan: PlanJson = w.json(&PLAN_ARGS, 0);
    assert_eq!(plan.schema_version, 1);
    let want = Driver {
        version: None,
        cuda: Some("12.2".into()),
    };
    let mut too_old = 0;
    for reason in plan.plan.rejected.iter().flat_map(|r| &r.reasons) {
        match reason["reason"].as_str() {
            Some("driver_too_old") => {
                let r: DriverTooOld = serde_json::from_value(reason.clone()).unwrap();
                assert_eq!(r.have, want, "{reason}");
                too_old += 1;
            }
            Some("driver_cannot_read_kernels") => {
                let have: Driver = serde_json::from_value(reason["have"].clone()).unwrap();
                assert_eq!(have, want, "{reason}");
            }
            _ => {}
        }
    }
    assert!(too_old > 0, "no variant was rejected for the driver");
    let mvc: Vec<MinorVersionCompatibility> = plan
        .plan
        .warnings
        .iter()
        .filter(|w| w["warning"] == "minor_version_compatibility")
        .map(|w| serde_json::from_value(w.clone()).unwrap())
        .collect();
    assert!(!mvc.is_empty(), "{:?}", plan.plan.warnings);
    for w in mvc {
        assert_eq!(w.driver, want);
    }
    let chosen = plan.plan.chosen.expect("a CUDA 12 variant runs");
    assert!(!chosen.components.is_empty());
}

/// The human plan reads as English where only the driver's CUDA version is known ("runs on a
/// driver that runs CUDA 12.2", never "runs on driver a driver …").
#[test]
fn plan_human_output() {
    let w = World::new();
    let out = run(w.gpulibs().args(PLAN_ARGS), 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("runs on a driver that runs CUDA 12.2 through CUDA minor-version"),
        "{text}"
    );
    assert!(!text.contains("driver a driver"), "{text}");
    world::snapshot("json_plan_human", &out, &[(w.tmp.path(), "[TMP]")]);
}

/// Colour follows what a line is: the chosen variant green, warnings yellow, rejections plain.
#[test]
fn plan_colours_lines_by_their_kind() {
    let w = World::new();
    let out = run(
        w.gpulibs()
            .env_remove("NO_COLOR")
            .args(["--color", "always"])
            .args(PLAN_ARGS),
        0,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let chosen: Vec<&&str> = lines.iter().filter(|l| l.contains(": chosen,")).collect();
    assert_eq!(chosen.len(), 1, "{text}");
    assert!(chosen[0].starts_with("\x1b[32m"), "{text}");
    let warnings: Vec<&&str> = lines.iter().filter(|l| l.contains("warning:")).collect();
    assert!(!warnings.is_empty(), "{text}");
    assert!(warnings.iter().all(|l| l.starts_with("\x1b[33m")), "{text}");
    let rejected: Vec<&&str> = lines.iter().filter(|l| l.contains(": rejected,")).collect();
    assert!(!rejected.is_empty(), "{text}");
    assert!(rejected.iter().all(|l| !l.contains('\x1b')), "{text}");
}

// ---------------------------------------------------------------------------------------------
// status, env, rollback, gc, remove

/// Nothing installed: `status` and `remove` still answer in their documented shapes.
#[test]
fn status_and_remove_with_nothing_installed() {
    let w = World::new();
    let status: StatusJson = w.json(&["status"], 3);
    assert_eq!(status.schema_version, 1);
    assert!(!status.health.ok);
    assert!(status.install.is_none());
    assert_eq!(status.root, w.root().display().to_string());
    w.snapshot("json_status_nothing_installed", &["status"]);

    let remove: RemoveJson = w.json(&["remove", "--yes"], 0);
    assert_eq!(remove.schema_version, 1);
    assert!(!remove.removed);
    assert!(!remove.root_removed);
    assert_eq!(remove.root, w.root().display().to_string());
    w.snapshot("json_remove_nothing_installed", &["remove", "--yes"]);
}

/// Three installs, then each life-cycle command: its JSON decodes into the documented fields
/// and says what happened; its human output is snapshotted.
#[test]
fn life_cycle_json_and_text() {
    let w = World::new();
    let ids: Vec<String> = ["one", "two", "three"]
        .iter()
        .map(|name| {
            w.install(&w.signed(name, name.as_bytes()));
            let status: StatusJson = w.json(&["status"], 0);
            status.install.expect("installed").id
        })
        .collect();

    let status: StatusJson = w.json(&["status"], 0);
    assert_eq!(status.schema_version, 1);
    assert!(status.health.ok);
    assert!(status.health.cpu_runtime);
    assert!(status.verified.is_none());
    let install = status.install.expect("an active install");
    assert_eq!(install.id, ids[2]);
    assert_eq!(status.root, w.root().display().to_string());
    w.snapshot("json_status_human", &["status"]);

    // `--json` and `--format json` are the same object.
    let env: EnvJson = w.json(&["env"], 0);
    assert_eq!(env.schema_version, 1);
    assert_eq!(env.install_id, ids[2]);
    assert_eq!(env.ld_library_path, env.lib_dirs.join(":"));
    let formatted: EnvJson = decode(&run(w.gpulibs().args(["env", "--format", "json"]), 0));
    assert_eq!(formatted, env);
    w.snapshot("json_env_sh", &["env"]);
    // `-q` silences what people read, not what `eval "$(gpulibs -q env)"` consumes.
    let quiet = run(w.gpulibs().args(["-q", "env"]), 0);
    let plain = run(w.gpulibs().arg("env"), 0);
    assert!(!plain.stdout.is_empty());
    assert_eq!(quiet.stdout, plain.stdout);

    let rollback: RollbackJson = w.json(&["rollback"], 0);
    assert_eq!(rollback.schema_version, 1);
    assert_eq!(rollback.active, ids[1]);
    assert_eq!(rollback.previous.as_deref(), Some(ids[2].as_str()));
    assert_eq!(rollback.variant, install.variant);
    // A second rollback undoes the first; its text is snapshotted.
    w.snapshot("json_rollback_human", &["rollback"]);

    let gc: GcJson = w.json(&["gc"], 0);
    assert_eq!(gc.schema_version, 1);
    assert_eq!(gc.removed_installs, [ids[0].clone()]);
    assert_eq!(gc.removed_components.len(), 1, "{gc:?}");
    assert!(gc.freed_bytes > 0);
    // A fourth install leaves the second neither active nor previous: the text of its removal.
    w.install(&w.signed("four", b"four"));
    w.snapshot("json_gc_human", &["gc"]);

    // The removal's text, then a fresh install for the JSON of a removal.
    w.snapshot("json_remove_human", &["remove", "--yes"]);
    assert!(!w.root().exists());
    w.install(&w.signed("five", b"five"));
    let remove: RemoveJson = w.json(&["remove", "--yes"], 0);
    assert_eq!(remove.schema_version, 1);
    assert!(remove.removed);
    assert!(remove.root_removed);
    assert!(!w.root().exists());
}

// ---------------------------------------------------------------------------------------------
// recommend

const CATALOG: &str = r#"schema_version = 1

[[model]]
name = "big-gpu"
quality_rank = 1
device = "gpu"
vram_mib = 6000
ram_mib = 100
files = ["big.onnx"]

[[model]]
name = "small-cpu"
quality_rank = 2
device = "cpu"
vram_mib = 0
ram_mib = 100
files = ["small.onnx"]
"#;

/// No GPU and a CPU model whose file is missing: no winner (exit 3), each loss with its reason,
/// in the documented fields; with `--app` the file the choice went to.
#[test]
fn recommend_json_and_text() {
    let w = World::new();
    let catalog = w.tmp.path().join("catalog.toml");
    fs::write(&catalog, CATALOG).unwrap();
    fs::write(
        w.tmp.path().join("big.onnx"),
        b"not verified: there is no GPU",
    )
    .unwrap();
    let args = [
        "recommend",
        "--catalog",
        catalog.to_str().unwrap(),
        "--ort",
        "/nonexistent/libonnxruntime.so",
    ];
    let rec: RecommendJson = w.json(&args, 3);
    assert_eq!(rec.schema_version, 1);
    assert!(rec.winner.is_none());
    assert!(rec.recorded_in.is_none());
    assert_eq!(rec.resources.free_vram_bytes, None);
    let reasons: Vec<(&str, &str)> = rec
        .losses
        .iter()
        .map(|l| (l.model.as_str(), l.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [("big-gpu", "no_gpu"), ("small-cpu", "files_missing")]
    );
    let small = w.tmp.path().join("small.onnx").display().to_string();
    assert_eq!(rec.losses[1].missing, Some(vec![small]));

    let mut with_app = args.to_vec();
    with_app.extend(["--app", "myapp"]);
    let rec: RecommendJson = w.json(&with_app, 3);
    let recorded = PathBuf::from(rec.recorded_in.expect("--app records the choice"));
    assert!(recorded.is_file(), "{}", recorded.display());
    let receipt: ReceiptJson =
        serde_json::from_str(&fs::read_to_string(&recorded).unwrap()).unwrap();
    assert_eq!(receipt.schema_version, 1);
    assert!(receipt.winner.is_none());
    assert_eq!(receipt.losses.len(), 2);

    w.snapshot("json_recommend_human", &args);
}

// ---------------------------------------------------------------------------------------------
// install

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct InstallResultJson {
    schema_version: u32,
    installed: bool,
    root: String,
    install_id: String,
    variant: String,
    release: Option<String>,
    previous: Option<String>,
    up_to_date: bool,
    components: Vec<InstalledComponentJson>,
    downloaded_bytes: u64,
    resumed_bytes: u64,
    reused_components: u64,
    elapsed_ms: u64,
    verify: Value,
    seed_receipt: Option<String>,
    env: Value,
    system_paths: Vec<String>,
    attempts: Vec<Value>,
    why_cpu: Option<Value>,
    trust: Value,
    warnings: Vec<Value>,
    #[serde(default)]
    adopted: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct InstalledComponentJson {
    id: String,
    version: String,
    sha256: String,
    action: String,
    bytes: u64,
    resumed_bytes: u64,
    requests: u32,
    source: String,
    #[serde(default)]
    why: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct InstallRefusedJson {
    schema_version: u32,
    installed: bool,
    plan: PlanBody,
}

/// A CPU install, then the same again: the JSON has the documented fields, each component says
/// why it was downloaded, and the second run is up to date.
#[test]
fn install_json_and_text() {
    let w = World::new();
    let manifest = w.signed("one", b"one");
    let install = |json: bool| {
        let mut cmd = w.gpulibs();
        if json {
            cmd.arg("--json");
        }
        cmd.arg("install")
            .arg("--manifest")
            .arg(&manifest)
            .args(["--public-key", &world::key().public_key()])
            .args(["--cpu", "--no-reuse", "--no-verify"]);
        cmd
    };
    let out: InstallResultJson = decode(&run(&mut install(true), 0));
    assert_eq!(out.schema_version, 1);
    assert!(out.installed);
    assert!(!out.up_to_date);
    assert_eq!(out.variant, "cpu");
    assert_eq!(out.components.len(), 2);
    for c in &out.components {
        assert_eq!(c.action, "downloaded", "{c:?}");
        assert_eq!(
            c.why.as_ref().map(|w| &w["kind"]),
            Some(&Value::from("reuse_off"))
        );
    }
    assert!(out.downloaded_bytes > 0);

    let again = run(&mut install(false), 0);
    world::snapshot(
        "json_install_up_to_date_human",
        &again,
        &[(w.tmp.path(), "[TMP]")],
    );

    // Another release: what a fresh install says, from the download to the activation.
    let two = w.signed("two", b"two");
    let mut cmd = w.gpulibs();
    cmd.arg("install")
        .arg("--manifest")
        .arg(&two)
        .args(["--public-key", &world::key().public_key()])
        .args(["--cpu", "--no-reuse", "--no-verify"]);
    world::snapshot(
        "json_install_human",
        &run(&mut cmd, 0),
        &[
            (w.tmp.path(), "[TMP]"),
            (Path::new(&w.server.url("")), "[URL]/"),
        ],
    );

    // A library of the active install deleted by hand: `status` says which, and exits 3.
    let lib = w.root().join("current/lib/libextra.so.1");
    let target = fs::canonicalize(&lib).unwrap();
    fs::remove_file(&target).unwrap();
    let status: StatusJson = w.json(&["status"], 3);
    assert!(!status.health.ok);
    w.snapshot("json_status_damaged_human", &["status"]);
}

/// A manifest whose only variant is a GPU one that declares no kernels, on a machine with no
/// GPU: nothing may be installed (exit 3), and the JSON is the refusal with the plan.
#[test]
fn install_refused_json_and_text() {
    let w = World::new();
    let ort = TestComponent::served(
        &w.server,
        "ort",
        "1.0",
        "ort.tar.zst",
        ort_archive(b"ort one"),
        4 << 20,
    );
    let text = manifest_toml("1.0", &[ort]).replace("device = \"cpu\"", "device = \"cuda\"");
    let manifest = w.tmp.path().join("gpu-only.toml");
    world::write_signed(&manifest, &text);
    let args = [
        "install",
        "--manifest",
        manifest.to_str().unwrap(),
        "--public-key",
        &world::key().public_key(),
    ];
    let out: InstallRefusedJson = w.json(&args, 3);
    assert_eq!(out.schema_version, 1);
    assert!(!out.installed);
    assert!(out.plan.chosen.is_none());
    assert!(!w.root().join("current").exists());
    w.snapshot("json_install_refused_human", &args);
    // `plan` of the same: exit 3, and why nothing is installed.
    let mut plan = args.to_vec();
    plan[0] = "plan";
    w.snapshot("json_plan_nothing_installable_human", &plan);
}

// ---------------------------------------------------------------------------------------------
// package and mirror

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct PackageJson {
    schema_version: u32,
    manifest: String,
    signature: Option<String>,
    notices: String,
    libraries: Vec<PackagedLibraryJson>,
    pruned: Vec<String>,
    components: Vec<PackagedComponentJson>,
    thinning: Vec<(String, String, ThinJson)>,
    warnings: PackageWarningsJson,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct PackagedLibraryJson {
    name: String,
    soname: Option<String>,
    links: Vec<String>,
    sha256: String,
    size: u64,
    source: String,
    nvidia: bool,
    verified: Option<String>,
    has_cuda_code: bool,
    needed: Vec<String>,
    runtime_names: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct PackagedComponentJson {
    id: String,
    archive: String,
    sha256: String,
    size: u64,
    unpacked_size: u64,
    files: Vec<String>,
    seconds: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ThinJson {
    target: String,
    driver: Option<String>,
    verdict_before: Value,
    verdict_after: Value,
    containers: Vec<Value>,
    kept_bytes: u64,
    removed_bytes: u64,
    kept_entries: u64,
    removed_entries: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct PackageWarningsJson {
    must_act: Vec<Value>,
    information: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct MirrorJson {
    schema_version: u32,
    manifest: String,
    signature: Option<String>,
    #[serde(default)]
    upstream_manifest: Option<String>,
    artifacts: Vec<(String, u64, bool)>,
}

/// A build directory holding one library with kernels for sm_75, sm_86 and sm_90a (+ PTX).
fn vendor_build(w: &World) -> PathBuf {
    let build = w.tmp.path().join("build");
    fs::create_dir_all(&build).unwrap();
    gpulibs_testkit::vendor_cuda_library(&build);
    build
}

/// `package --per-arch` from a build directory: the JSON has the documented fields, one
/// thinning report per target, and the text lists the archives; a second run into the same
/// directory is refused.
#[test]
fn package_json_and_text() {
    let w = World::new();
    let build = vendor_build(&w);
    let build = build.to_str().unwrap();
    let args = |out: &str| {
        [
            "package",
            "--release",
            "1.0.0",
            "--per-arch",
            "sm_86,sm_90",
            "--zstd-level",
            "3",
            "--cuda",
            "12.9",
            "--from",
            build,
            "--out",
        ]
        .into_iter()
        .map(String::from)
        .chain([w.tmp.path().join(out).display().to_string()])
        .collect::<Vec<_>>()
    };
    let json_args = args("release-json");
    let json_args: Vec<&str> = json_args.iter().map(String::as_str).collect();
    let pkg: PackageJson = w.json(&json_args, 0);
    assert_eq!(pkg.schema_version, 1);
    assert!(pkg.manifest.ends_with("manifest.toml"), "{}", pkg.manifest);
    assert!(pkg.signature.is_none());
    assert_eq!(pkg.libraries.len(), 1);
    assert!(pkg.libraries[0].has_cuda_code);
    let targets: Vec<&str> = pkg.thinning.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(targets, ["sm_86", "sm_90"]);
    assert!(!pkg.components.is_empty());

    let text_args = args("release");
    let text_args: Vec<&str> = text_args.iter().map(String::as_str).collect();
    w.snapshot("json_package_human", &text_args);
    // Again into the same directory: refused, nothing overwritten.
    w.snapshot("json_package_out_not_empty", &text_args);
}

/// A release written by `package`, mirrored twice: the JSON has the documented fields, the
/// first run copies every archive, the second verifies them; the text says which.
#[test]
fn mirror_json_and_text() {
    let w = World::new();
    let build = vendor_build(&w);
    let release = w.tmp.path().join("release");
    run(
        w.gpulibs()
            .args(["package", "--release", "1.0.0", "--zstd-level", "3"])
            .arg("--cuda")
            .arg("12.9")
            .arg("--from")
            .arg(&build)
            .arg("--out")
            .arg(&release),
        0,
    );
    let manifest = release.join("manifest.toml");
    let manifest = manifest.to_str().unwrap();
    let dir = w.tmp.path().join("mirror");
    let dir = dir.to_str().unwrap();
    let first: MirrorJson = w.json(&["mirror", manifest, dir], 0);
    assert_eq!(first.schema_version, 1);
    assert!(!first.artifacts.is_empty());
    assert!(first.artifacts.iter().all(|a| a.2), "{first:?}");
    let second: MirrorJson = w.json(&["mirror", manifest, dir], 0);
    assert!(second.artifacts.iter().all(|a| !a.2), "{second:?}");

    w.snapshot("json_mirror_human", &["mirror", manifest, dir]);
}

/// A manifest that is not TOML: exit 1, and the error names the file.
#[test]
fn mirror_bad_manifest() {
    let w = World::new();
    let manifest = w.tmp.path().join("manifest.toml");
    fs::write(&manifest, "this is not a manifest\n").unwrap();
    let dir = w.tmp.path().join("mirror");
    w.snapshot(
        "json_mirror_bad_manifest",
        &["mirror", manifest.to_str().unwrap(), dir.to_str().unwrap()],
    );
}
