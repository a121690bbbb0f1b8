//! The seed app's layout contract, tested as its install script uses it (docs/layout.md): a
//! node script (`tests/consumer/seed-consumer.mjs`) reads the receipt, looks for
//! `<gpu-libs>/libonnxruntime.so`, builds `LD_LIBRARY_PATH`/`ORT_DYLIB_PATH` as the seed's
//! systemd unit does, and loads the real CPU ONNX Runtime (from the `onnxruntime` wheel)
//! through them with a small C loader (`tests/consumer/load-ort.c`, built with `cc`). It runs
//! after the seed's flat directory is adopted, an install, updates, `gc` and rollbacks; and an
//! `env --format systemd` file written once keeps loading ONNX Runtime throughout.
//!
//! The real binary with `--app seedapp` and no `GPULIBS_HOME` (so the root is
//! `$XDG_DATA_HOME/seedapp/gpu-libs`, as for the seed), signed manifests, a real HTTP server on
//! 127.0.0.1. Needs `node` (CI installs it) and `cc`.

#[path = "../../gpulibs-verify/tests/common/mod.rs"]
mod ort_wheels;
#[path = "../../gpulibs-install/tests/support/mod.rs"]
mod support;
mod world;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

const APP: &str = "seedapp";

struct Seed {
    tmp: tempfile::TempDir,
    server: Server,
    loader: PathBuf,
    ort: Vec<u8>,
    /// The app's own library directory (the seed puts it on LD_LIBRARY_PATH after gpu-libs).
    app_lib: PathBuf,
}

impl Seed {
    fn new() -> Seed {
        let tmp = tempfile::tempdir().unwrap();
        let consumer = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/consumer");
        let loader = tmp.path().join("load-ort");
        let status = Command::new("cc")
            .arg("-o")
            .arg(&loader)
            .arg(consumer.join("load-ort.c"))
            .arg("-ldl")
            .status()
            .expect("cc runs");
        assert!(status.success(), "building load-ort.c failed");
        let ort = std::fs::read(ort_wheels::cpu_ort()).unwrap();
        let app_lib = tmp.path().join("app/lib");
        std::fs::create_dir_all(&app_lib).unwrap();
        Seed {
            tmp,
            server: Server::start(),
            loader,
            ort,
            app_lib,
        }
    }
    fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }
    fn root(&self) -> PathBuf {
        self.data().join(APP).join("gpu-libs")
    }
    fn env(&self, cmd: &mut Command) {
        cmd.env("XDG_DATA_HOME", self.data())
            .env("XDG_CONFIG_HOME", self.tmp.path().join("config"))
            .env("HOME", self.tmp.path().join("home"))
            .env_remove("GPULIBS_HOME")
            .env_remove("ORT_DYLIB_PATH")
            .env_remove("LD_LIBRARY_PATH");
    }
    fn gpulibs(&self) -> Command {
        let mut cmd = world::isolated_gpulibs(self.tmp.path(), &self.root());
        self.env(&mut cmd);
        cmd
    }
    /// A signed manifest: ONNX Runtime (the real CPU library, as `libonnxruntime.so.1.23.2`
    /// and its SONAME link, without the unversioned name) and an `extra` component holding
    /// real ELF libraries named `libs`.
    fn manifest(&self, version: &str, libs: &[&str]) -> PathBuf {
        let ort = tar_zst(&[
            ("lib/libonnxruntime.so.1.23.2", Entry::File(&self.ort)),
            (
                "lib/libonnxruntime.so.1",
                Entry::Symlink("libonnxruntime.so.1.23.2"),
            ),
        ]);
        let built = self.tmp.path().join(format!("built-{version}"));
        let bytes: Vec<(String, Vec<u8>)> = libs
            .iter()
            .map(|n| {
                let out = built.join(n);
                build_so(&out, n, &[]);
                (format!("lib/{n}"), std::fs::read(&out).unwrap())
            })
            .collect();
        let entries: Vec<(&str, Entry)> = bytes
            .iter()
            .map(|(n, b)| (n.as_str(), Entry::File(b)))
            .collect();
        let extra = tar_zst(&entries);
        let ort_name = "ort-1.23.2.tar.zst".to_string();
        let extra_name = format!("extra-{version}.tar.zst");
        let ort_c = TestComponent::tar("ort", "1.23.2", self.server.url(&ort_name), &ort, 64 << 20);
        let extra_c = TestComponent::tar(
            "extra",
            version,
            self.server.url(&extra_name),
            &extra,
            4 << 20,
        );
        self.server.put(&ort_name, ort);
        self.server.put(&extra_name, extra);
        let path = self.tmp.path().join(format!("{version}.toml"));
        let text = manifest_toml(version, &[ort_c, extra_c]);
        world::write_signed(&path, &text)
    }
    fn install(&self, manifest: &Path) -> String {
        run_ok(
            self.gpulibs()
                .arg("install")
                .arg("--manifest")
                .arg(manifest)
                .args(["--public-key", &world::key().public_key()])
                .args(["--cpu", "--no-reuse", "--no-verify", "--app", APP]),
        )
    }
    /// The seed's script, run by node: the JSON it prints.
    fn consumer(&self, libraries: &[&str], context: &str) -> serde_json::Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/consumer/seed-consumer.mjs");
        let mut cmd = Command::new("node");
        self.env(&mut cmd);
        cmd.arg(script)
            .arg(APP)
            .arg(&self.loader)
            .arg(&self.app_lib)
            .args(libraries);
        let out = cmd
            .output()
            .expect("node runs (CI installs nodejs; install it to run this test)");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{context}: not JSON ({e}): {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert!(out.status.success(), "{context}: {json}");
        assert_eq!(json["ok"], true, "{context}: {json}");
        assert_eq!(
            json["loader"]["stdout"], "onnxruntime 1.23.2",
            "{context}: {json}"
        );
        assert_eq!(
            json["ortDylibPath"],
            self.root().join("libonnxruntime.so").to_str().unwrap(),
            "{context}"
        );
        json
    }
    fn current(&self) -> String {
        std::fs::read_link(self.root().join("current"))
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Loads ONNX Runtime (and `libraries` by name) with only what an `EnvironmentFile=` gives.
fn load_with_env_file(loader: &Path, env_file: &str, libraries: &[&str], context: &str) {
    let vars: BTreeMap<&str, &str> = env_file.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(
        vars.keys().copied().collect::<Vec<_>>(),
        ["LD_LIBRARY_PATH", "ORT_DYLIB_PATH"],
        "{context}: {env_file}"
    );
    let out = Command::new(loader)
        .env_clear()
        .env("LD_LIBRARY_PATH", vars["LD_LIBRARY_PATH"])
        .arg(vars["ORT_DYLIB_PATH"])
        .args(libraries)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{context}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "onnxruntime 1.23.2",
        "{context}"
    );
}

#[test]
fn the_seed_s_script_loads_onnx_runtime_through_every_update_gc_and_rollback() {
    let s = Seed::new();

    // What the seed's installer left: its libraries flat in gpu-libs.
    let root = s.root();
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("libonnxruntime.so"), &s.ort).unwrap();
    build_so(&root.join("libseedonly.so.1"), "libseedonly.so.1", &[]);
    std::fs::remove_file(root.join(".libseedonly.so.1.c")).ok();

    // install --app adopts them (nothing lost), then installs v1 over them.
    let v1 = s.manifest("1.0", &["libextra.so.1", "libextra_v1.so.1"]);
    let out = s.install(&v1);
    assert!(out.contains("adopted 2 libraries"), "{out}");
    let receipt: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            s.tmp
                .path()
                .join(format!("config/{APP}/gpu-package-info.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(receipt["variant"], "cpu");
    let first = s.consumer(&["libextra.so.1", "libextra_v1.so.1"], "v1");
    assert_eq!(
        first["ldLibraryPath"].as_str().unwrap().split(':').next(),
        root.to_str()
    );
    let env_file = run_ok(
        s.gpulibs()
            .args(["env", "--format", "systemd", "--app", APP]),
    );
    assert!(!env_file.contains("installs/"), "{env_file}");
    load_with_env_file(&s.loader, &env_file, &["libextra.so.1"], "v1 env file");
    let v1_id = s.current();

    // Rollback returns to the seed's own libraries, still where the seed's script looks.
    run_ok(s.gpulibs().args(["rollback", "--app", APP]));
    assert!(s.current().starts_with("seed-"), "{}", s.current());
    s.consumer(&["libseedonly.so.1"], "rolled back to the seed");
    run_ok(s.gpulibs().args(["rollback", "--app", APP]));
    assert_eq!(s.current(), v1_id);

    // Two updates (v2 drops a library, v3 adds one), then gc of every other install.
    let v2 = s.manifest("2.0", &["libextra.so.1"]);
    s.install(&v2);
    s.consumer(&["libextra.so.1"], "v2");
    assert!(
        std::fs::symlink_metadata(root.join("libextra_v1.so.1")).is_err(),
        "a name the active install lacks is gone from the view"
    );
    let v3 = s.manifest("3.0", &["libextra.so.1", "libextra_v3.so.1"]);
    s.install(&v3);
    let gc = run_ok(s.gpulibs().args(["gc", "--keep", "0", "--app", APP]));
    assert!(!root.join("installs").join(&v1_id).exists(), "{gc}");
    s.consumer(&["libextra.so.1", "libextra_v3.so.1"], "v3 after gc");
    // The env file written after the first install still loads ONNX Runtime, unchanged.
    assert_eq!(
        run_ok(
            s.gpulibs()
                .args(["env", "--format", "systemd", "--app", APP])
        ),
        env_file
    );
    load_with_env_file(
        &s.loader,
        &env_file,
        &["libextra_v3.so.1"],
        "v1's env file after two updates and gc",
    );

    // Rollback to v2: the same script, the same paths, v2's libraries.
    run_ok(s.gpulibs().args(["rollback", "--app", APP]));
    s.consumer(&["libextra.so.1"], "rolled back to v2");
    assert!(std::fs::symlink_metadata(root.join("libextra_v3.so.1")).is_err());
    load_with_env_file(&s.loader, &env_file, &[], "v1's env file after rollback");
}
