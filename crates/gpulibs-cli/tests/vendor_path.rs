//! The vendor's path of docs/vendor.md, end to end, with the real tools a vendor and a user
//! have: a key made by `minisign -G -W`, a release packaged by `gpulibs package` from the real
//! CPU `onnxruntime` wheel and signed with that key, served over HTTP (the testkit's server on
//! 127.0.0.1), and the app's two installers from `tests/vendor/`:
//!
//! - an npm package whose `postinstall` runs `gpulibs install --app voicey --manifest URL
//!   --public-key KEY`, packed with `npm pack` and installed with `npm install <tarball>` into a
//!   fresh project (offline, a temporary cache: no registry is ever asked);
//! - a plain shell script doing the same and writing the environment file.
//!
//! Each asserts what the app then finds (the receipt, `gpulibs env --app voicey`, `activate()`)
//! and that ONNX Runtime loads and runs through it; and what a vendor hits when something is
//! wrong: a wrong public key (refused, nothing changed, gpulibs' message visible through npm) and
//! the server down (a clear error, the installer's exit status); and a GPU-only release on a
//! machine without a GPU (nothing installed, `npm install` still succeeds).
//!
//! Without `npm`, `node` or `minisign` these tests fail under CI (`CI` set) and are skipped,
//! loudly, elsewhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gpulibs_testkit::http::Server;
use gpulibs_testkit::{tree, Node};

const APP: &str = "voicey";
/// The CPU `onnxruntime` wheel the other tests use (gpulibs-verify/tests/common).
const ORT_VERSION: &str = "1.23.2";

/// The tools this test needs, or `None` (skipped) outside CI when one is missing.
fn tools() -> Option<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<&str> = ["npm", "node", "minisign"]
        .into_iter()
        .filter(|t| !std::env::split_paths(&path).any(|d| d.join(t).is_file()))
        .collect();
    if missing.is_empty() {
        return Some(());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{missing:?} not on PATH; CI must install them (apt-get install nodejs npm minisign)"
    );
    eprintln!(
        "SKIPPED: {missing:?} not on PATH (apt-get install nodejs npm minisign) — the vendor \
         path is not tested"
    );
    None
}

fn gpulibs_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("gpulibs")
}

fn target_dir() -> PathBuf {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t);
    }
    // target/<profile>/deps/<test binary>
    std::env::current_exe()
        .unwrap()
        .ancestors()
        .nth(3)
        .unwrap()
        .to_path_buf()
}

/// The real `onnxruntime` CPU wheel: from `GPULIBS_TEST_WHEEL_DIR`, from where the other tests
/// downloaded it (`target/ort-wheels/download`), else downloaded there with `pip download`
/// (the user's pip configuration applies).
fn cpu_wheel() -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let download = target_dir().join("ort-wheels").join("download");
    let prefix = format!("onnxruntime-{ORT_VERSION}-");
    let find = |dir: &Path| -> Option<PathBuf> {
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with(&prefix) && n.contains("x86_64") && n.ends_with(".whl")
                })
            })
    };
    if let Some(w) = std::env::var_os("GPULIBS_TEST_WHEEL_DIR").and_then(|d| find(Path::new(&d))) {
        return w;
    }
    if let Some(w) = find(&download) {
        return w;
    }
    std::fs::create_dir_all(&download).unwrap();
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args([
            "--platform",
            "manylinux_2_28_x86_64",
            "--python-version",
            "3.11",
        ])
        .arg(format!("onnxruntime=={ORT_VERSION}"))
        .arg("-d")
        .arg(&download)
        .output()
        .expect("python3 -m pip runs (or set GPULIBS_TEST_WHEEL_DIR)");
    assert!(
        out.status.success(),
        "pip download onnxruntime=={ORT_VERSION} failed (set GPULIBS_TEST_WHEEL_DIR to use a \
         local copy): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    find(&download).expect("pip downloaded the wheel")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", text(&out));
    out
}

/// The vendor's side: a key from `minisign -G -W`, a release packaged and signed by
/// `gpulibs package`, every file of the output directory served as is.
struct Vendor {
    dir: tempfile::TempDir,
    server: Server,
    public_key: String,
}

impl Vendor {
    fn new() -> Vendor {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        std::fs::create_dir(&keys).unwrap();
        run_ok(
            Command::new("minisign")
                .args(["-G", "-W", "-p"])
                .arg(keys.join("vendor.pub"))
                .arg("-s")
                .arg(keys.join("vendor.key"))
                .stdin(std::process::Stdio::null()),
        );
        let public = std::fs::read_to_string(keys.join("vendor.pub")).unwrap();
        let public_key = public.lines().nth(1).unwrap().trim().to_string();
        let release = dir.path().join("release");
        run_ok(
            Command::new(gpulibs_bin())
                .args([
                    "package",
                    "--release",
                    "1.0.0",
                    "--app",
                    APP,
                    "--zstd-level",
                    "3",
                ])
                .arg("--from")
                .arg(cpu_wheel())
                .arg("--out")
                .arg(&release)
                .arg("--sign-key")
                .arg(keys.join("vendor.key")),
        );
        let server = Server::start();
        let mut served = Vec::new();
        for entry in std::fs::read_dir(&release).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            server.put(&name, std::fs::read(&path).unwrap());
            served.push(name);
        }
        served.sort();
        assert!(
            served.contains(&"manifest.toml".to_string())
                && served.contains(&"manifest.toml.minisig".to_string())
                && served.contains(&format!("onnxruntime-{ORT_VERSION}.tar.zst")),
            "the release directory holds {served:?}"
        );
        Vendor {
            dir,
            server,
            public_key,
        }
    }

    fn manifest_url(&self) -> String {
        self.server.url("manifest.toml")
    }

    /// A GPU-only release (one `sm_86` variant, no `cpu` variant), signed with `minisign -S`
    /// (signing apart from packaging), served under `gpu/`; returns its manifest's URL. Its
    /// archive is never fetched on a machine without a GPU.
    fn gpu_only_release(&self) -> String {
        let dir = self.dir.path().join("gpu-release");
        std::fs::create_dir_all(&dir).unwrap();
        let archive = vec![0x5a_u8; 1000];
        let sha = sha256_hex(&archive);
        let manifest = format!(
            "schema_version = 1\napp = \"{APP}\"\nversion = \"2.0.0\"\n\n\
             [[components]]\nid = \"ort-gpu\"\nkind = \"onnxruntime\"\nversion = \"1.23.2\"\n\
             cuda = \"12.8\"\n\n[components.archive]\nurl = \"ort-gpu.tar.zst\"\n\
             sha256 = \"{sha}\"\nsize = 1000\nunpacked_size = 4000\nformat = \"tar.zst\"\n\n\
             [components.coverage]\nsass = [\"sm_86\"]\n\n\
             [[variants]]\nname = \"sm_86\"\ncomponents = [\"ort-gpu\"]\n"
        );
        std::fs::write(dir.join("manifest.toml"), &manifest).unwrap();
        run_ok(
            Command::new("minisign")
                .arg("-S")
                .arg("-s")
                .arg(self.dir.path().join("keys/vendor.key"))
                .arg("-m")
                .arg(dir.join("manifest.toml"))
                .stdin(std::process::Stdio::null()),
        );
        self.server.put("gpu/manifest.toml", manifest);
        self.server.put(
            "gpu/manifest.toml.minisig",
            std::fs::read(dir.join("manifest.toml.minisig")).unwrap(),
        );
        self.server.put("gpu/ort-gpu.tar.zst", archive);
        self.server.url("gpu/manifest.toml")
    }

    /// The public key of another `minisign -G -W` key pair: not the vendor's.
    fn other_key(&self) -> String {
        let d = self.dir.path().join("other");
        std::fs::create_dir_all(&d).unwrap();
        run_ok(
            Command::new("minisign")
                .args(["-G", "-W", "-p"])
                .arg(d.join("o.pub"))
                .arg("-s")
                .arg(d.join("o.key"))
                .stdin(std::process::Stdio::null()),
        );
        let text = std::fs::read_to_string(d.join("o.pub")).unwrap();
        text.lines().nth(1).unwrap().trim().to_string()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A URL on 127.0.0.1 where nothing listens.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/voicey/manifest.toml")
}

/// The user's machine: a home, XDG directories, no GPU (NVML missing), none of the runner's
/// gpulibs, CUDA or proxy settings.
struct User {
    tmp: tempfile::TempDir,
}

impl User {
    fn new() -> User {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["home", "data", "config", "npm-cache"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        User { tmp }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }
    fn root(&self) -> PathBuf {
        self.path("data").join(APP).join("gpu-libs")
    }
    fn receipt(&self) -> PathBuf {
        self.path("config").join(APP).join("gpu-package-info.json")
    }
    /// `program` with this user's environment.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("HOME", self.path("home"))
            .env("XDG_DATA_HOME", self.path("data"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("GPULIBS_NVML_LIBRARY", self.path("no-nvml.so"))
            .env("NO_COLOR", "1")
            .env("npm_config_cache", self.path("npm-cache"))
            .env("npm_config_update_notifier", "false")
            .env_remove("GPULIBS_HOME")
            .env_remove("GPULIBS_PUBLIC_KEY")
            .env_remove("GPULIBS_BIN")
            .env_remove("CUDA_VISIBLE_DEVICES")
            .env_remove("ORT_DYLIB_PATH")
            .env_remove("LD_LIBRARY_PATH");
        for v in [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            cmd.env_remove(v);
        }
        cmd
    }
    fn gpulibs(&self) -> Command {
        self.command(gpulibs_bin())
    }
    /// The root's files and the receipt, to show that a failed run changed nothing. The lock
    /// file's content (the pid of the last holder) is not state.
    fn state(&self) -> (BTreeMap<PathBuf, Node>, Option<Vec<u8>>) {
        let mut t = tree(&self.root());
        t.remove(Path::new("lock"));
        (t, std::fs::read(self.receipt()).ok())
    }

    /// What an app finds after an install: the receipt, `gpulibs env --app`, `activate()`; and
    /// that ONNX Runtime loads and runs through what they give.
    fn assert_installed(&self) {
        let receipt: serde_json::Value = serde_json::from_slice(
            &std::fs::read(self.receipt())
                .unwrap_or_else(|e| panic!("no receipt at {}: {e}", self.receipt().display())),
        )
        .unwrap();
        assert_eq!(receipt["variant"], "cpu", "{receipt}");
        assert_eq!(receipt["version"], "1.0.0", "{receipt}");
        let libs = PathBuf::from(receipt["libsPath"].as_str().unwrap());
        assert!(libs.starts_with(self.root()), "{receipt}");
        assert!(
            libs.is_dir(),
            "libsPath {} is not a directory",
            libs.display()
        );

        let out = run_ok(
            self.gpulibs()
                .args(["env", "--app", APP, "--format", "json"]),
        );
        let env: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let ort = PathBuf::from(env["ort_dylib_path"].as_str().unwrap());
        assert!(ort.starts_with(self.root()), "{env}");
        assert!(
            ort.is_file(),
            "ORT_DYLIB_PATH {} is not a file",
            ort.display()
        );
        let name = ort.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("libonnxruntime.so"), "{env}");
        let sh = run_ok(self.gpulibs().args(["env", "--app", APP]));
        assert!(
            String::from_utf8_lossy(&sh.stdout).contains("export ORT_DYLIB_PATH="),
            "{}",
            text(&sh)
        );

        // activate(), as a Rust app calls it, names the same library.
        let activation = gpulibs_store::activate_at(&self.root()).unwrap();
        assert_eq!(
            activation.ort_library.canonicalize().unwrap(),
            ort.canonicalize().unwrap()
        );
        assert!(
            activation.preload.is_empty(),
            "a CPU install preloads nothing"
        );

        // ONNX Runtime loads from that path and runs the probe model (exit 4: on the CPU).
        let out = self
            .gpulibs()
            .args(["verify", "--device", "cpu", "--runs", "1", "--ort"])
            .arg(&ort)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(4), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("CPU only"), "{}", text(&out));
        assert!(stdout.contains(ORT_VERSION), "{}", text(&out));

        self.run_activate_example();
    }

    /// The `activate_ort` example of gpulibs-store (a Rust app calling `activate()` and loading
    /// ONNX Runtime through it), when this build has it: `cargo test --workspace` builds every
    /// example before it runs a test, so under CI it must be there.
    fn run_activate_example(&self) {
        // target/<profile>/deps/<this test> → target/<profile>/examples/activate_ort
        let here = std::env::current_exe().unwrap();
        let example = here
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("examples/activate_ort");
        if !example.is_file() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{} is missing: `cargo test --workspace` builds it",
                example.display()
            );
            eprintln!(
                "SKIPPED (part): {} not built; `cargo build -p gpulibs-store --example \
                 activate_ort` builds it",
                example.display()
            );
            return;
        }
        let out = run_ok(self.command(&example).arg(APP));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("ONNX Runtime {ORT_VERSION} loaded from")),
            "{}",
            text(&out)
        );
        assert!(stdout.contains("variant cpu"), "{}", text(&out));
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vendor")
}

/// The npm fixture with its `gpulibs` field set to this release, packed with `npm pack`;
/// returns the tarball.
fn npm_pack(user: &User, version: &str, manifest: &str, key: &str) -> PathBuf {
    let src = fixtures().join("npm-app");
    let pkg = user.path(&format!("pkg-{version}"));
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::copy(src.join("postinstall.js"), pkg.join("postinstall.js")).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("package.json")).unwrap()).unwrap();
    assert_eq!(json["scripts"]["postinstall"], "node postinstall.js");
    json["version"] = version.into();
    json["gpulibs"]["manifest"] = manifest.into();
    json["gpulibs"]["publicKey"] = key.into();
    std::fs::write(
        pkg.join("package.json"),
        serde_json::to_vec_pretty(&json).unwrap(),
    )
    .unwrap();
    let out_dir = user.path("tarballs");
    std::fs::create_dir_all(&out_dir).unwrap();
    run_ok(
        user.command("npm")
            .args(["pack", "--pack-destination"])
            .arg(&out_dir)
            .current_dir(&pkg),
    );
    let tarball = out_dir.join(format!("{APP}-{version}.tgz"));
    assert!(tarball.is_file(), "npm pack wrote no {}", tarball.display());
    tarball
}

/// `npm install <tarball>` into `project` (made when missing), offline, with gpulibs given by
/// `GPULIBS_BIN`.
fn npm_install(user: &User, project: &Path, tarball: &Path) -> Output {
    if !project.join("package.json").exists() {
        std::fs::create_dir_all(project).unwrap();
        std::fs::write(
            project.join("package.json"),
            r#"{"name":"user-project","version":"0.0.0","private":true}"#,
        )
        .unwrap();
    }
    user.command("npm")
        .args(["install", "--offline", "--no-audit", "--no-fund"])
        .arg(tarball)
        .env("GPULIBS_BIN", gpulibs_bin())
        .current_dir(project)
        .output()
        .unwrap()
}

#[test]
fn npm_postinstall_installs_the_signed_release_and_the_app_loads_it() {
    let Some(()) = tools() else { return };
    let vendor = Vendor::new();
    let user = User::new();
    let project = user.path("project");

    let tarball = npm_pack(&user, "1.0.0", &vendor.manifest_url(), &vendor.public_key);
    let out = npm_install(&user, &project, &tarball);
    assert!(out.status.success(), "npm install: {}", text(&out));
    assert!(project.join("node_modules/voicey/postinstall.js").is_file());
    // The postinstall fetched the manifest, its signature and the archive from the host.
    let paths: Vec<String> = vendor.server.log().into_iter().map(|s| s.path).collect();
    for want in [
        "/manifest.toml".to_string(),
        "/manifest.toml.minisig".to_string(),
        format!("/onnxruntime-{ORT_VERSION}.tar.zst"),
    ] {
        assert!(paths.contains(&want), "{want} not fetched: {paths:?}");
    }
    user.assert_installed();

    // An update of the app's package signed for another key: npm install fails with gpulibs'
    // own message, and the install the app has is untouched.
    let before = user.state();
    let bad = npm_pack(&user, "1.0.1", &vendor.manifest_url(), &vendor.other_key());
    let out = npm_install(&user, &project, &bad);
    assert!(!out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("not by the key this app trusts"), "{all}");
    assert!(all.contains("gpulibs install failed (exit 1)"), "{all}");
    assert_eq!(
        user.state(),
        before,
        "a refused manifest changed the install"
    );
    user.assert_installed();
}

#[test]
fn npm_postinstall_with_the_server_down_fails_npm_install_with_the_reason() {
    let Some(()) = tools() else { return };
    let vendor = Vendor::new();
    let user = User::new();
    let tarball = npm_pack(&user, "1.0.0", &dead_url(), &vendor.public_key);
    let out = npm_install(&user, &user.path("project"), &tarball);
    assert!(!out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("Connection refused"), "{all}");
    assert!(all.contains("check the URL given to --manifest"), "{all}");
    assert!(all.contains("gpulibs install failed (exit 1)"), "{all}");
    assert!(!user.receipt().exists());
    assert!(
        !user.root().join("current").exists(),
        "nothing may be active"
    );
}

/// The shell installer with gpulibs found on `PATH`.
fn shell_install(user: &User, manifest: &str, key: &str) -> Output {
    let bin_dir = gpulibs_bin().parent().unwrap().to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path =
        std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(&path))).unwrap();
    user.command("sh")
        .arg(fixtures().join("shell/install-gpu-libs.sh"))
        .env("PATH", path)
        .env("VOICEY_MANIFEST", manifest)
        .env("VOICEY_PUBLIC_KEY", key)
        .output()
        .unwrap()
}

#[test]
fn shell_installer_installs_writes_the_env_file_and_refuses_a_wrong_key() {
    let Some(()) = tools() else { return };
    let vendor = Vendor::new();
    let user = User::new();
    let out = shell_install(&user, &vendor.manifest_url(), &vendor.public_key);
    assert!(out.status.success(), "{}", text(&out));
    user.assert_installed();

    // The environment file it wrote names the library gpulibs env names, which exists.
    let env_file = std::fs::read_to_string(user.path("config/voicey/gpu.env")).unwrap();
    let ort = env_file
        .lines()
        .find_map(|l| l.strip_prefix("ORT_DYLIB_PATH="))
        .unwrap_or_else(|| panic!("no ORT_DYLIB_PATH in {env_file}"));
    assert!(Path::new(ort).is_file(), "{env_file}");
    assert!(env_file.contains("LD_LIBRARY_PATH="), "{env_file}");

    let before = user.state();
    let out = shell_install(&user, &vendor.manifest_url(), &vendor.other_key());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not by the key this app trusts"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(
        user.state(),
        before,
        "a refused manifest changed the install"
    );

    // The server down: the same, with the network's reason.
    let out = shell_install(&user, &dead_url(), &vendor.public_key);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert_eq!(
        user.state(),
        before,
        "a failed download changed the install"
    );
    user.assert_installed();
}

#[test]
fn npm_postinstall_of_a_gpu_only_release_without_a_gpu_installs_nothing_and_npm_succeeds() {
    let Some(()) = tools() else { return };
    let vendor = Vendor::new();
    let manifest = vendor.gpu_only_release();
    let user = User::new();
    let project = user.path("project");
    let tarball = npm_pack(&user, "2.0.0", &manifest, &vendor.public_key);
    let out = npm_install(&user, &project, &tarball);
    assert!(out.status.success(), "npm install: {}", text(&out));
    // gpulibs said why (exit 3), the postinstall turned it into success, nothing was installed
    // and the archive was never downloaded.
    assert!(project.join("node_modules/voicey/postinstall.js").is_file());
    assert!(!user.receipt().exists());
    assert!(
        !user.root().join("current").exists(),
        "nothing may be active"
    );
    let paths: Vec<String> = vendor.server.log().into_iter().map(|s| s.path).collect();
    assert!(
        paths.contains(&"/gpu/manifest.toml.minisig".to_string()),
        "{paths:?}"
    );
    assert!(
        !paths.contains(&"/gpu/ort-gpu.tar.zst".to_string()),
        "{paths:?}"
    );
    let out = user.gpulibs().args(["env", "--app", APP]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing is installed"),
        "{}",
        text(&out)
    );
}
