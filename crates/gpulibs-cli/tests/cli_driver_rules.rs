//! The driver rules (`docs/driver-rules.md`) through the real binary: `gpulibs plan` for a common
//! R535 machine never gets a build its driver cannot load, and `gpulibs inspect --driver` says
//! why a library with zstd-compressed kernels cannot load there.

mod world;

use std::process::{Command, Output};

use gpulibs_testkit::{build_so, container, Entry, Place};

fn gpulibs(tmp: &tempfile::TempDir) -> Command {
    world::isolated_gpulibs(tmp.path(), &tmp.path().join("root"))
}

fn text_of(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `gpulibs plan --gpu 8.6 --driver 535.183.01` with the embedded default: the newest CUDA 12
/// release (LZ4 kernels); every CUDA 13 release is rejected (it needs R580). On 5.2 the only
/// release with sm_52.
#[test]
fn r535_is_planned_a_release_it_can_load() {
    let tmp = tempfile::tempdir().unwrap();
    for (gpu, want) in [("8.6", "ort-1.26.0-cuda12"), ("5.2", "ort-1.20.2-cuda12")] {
        let out = gpulibs(&tmp)
            .args([
                "plan",
                "--gpu",
                gpu,
                "--driver",
                "535.183.01",
                "--no-reuse",
                "--json",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text_of(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(json["manifest"].as_str().unwrap().starts_with("embedded"));
        assert_eq!(json["plan"]["chosen"]["variant"], want, "{gpu}");
        let rejected = json["plan"]["rejected"].as_array().unwrap();
        let r131 = rejected
            .iter()
            .find(|r| r["variant"] == "ort-1.31.1-cuda13")
            .expect("1.31.1 is rejected");
        let reasons = r131["reasons"].as_array().unwrap();
        assert!(reasons.iter().any(|r| r["reason"] == "driver_too_old"));
        // On 8.6 its sm_86 kernels are zstd too: said, naming the rule. (5.2 has none there.)
        let zstd = reasons
            .iter()
            .find(|r| r["reason"] == "driver_cannot_read_kernels");
        assert_eq!(zstd.is_some(), gpu == "8.6", "{reasons:?}");
        if let Some(z) = zstd {
            assert_eq!(z["rule"], "fatbin-zstd");
            assert_eq!(z["needs"], "550.54.14");
        }
    }
}

/// A vendor manifest with a CUDA 12.8 build whose kernels are zstd (ollama's case) and the same
/// build LZ4: R535 gets the LZ4 one and is told why not the other, naming rule fatbin-zstd;
/// R550 gets the smaller zstd one.
#[test]
fn r535_is_never_given_zstd_kernels() {
    let tmp = tempfile::tempdir().unwrap();
    let mut toml = String::from("schema_version = 1\napp = \"t\"\nversion = \"1\"\n");
    for (i, (name, compression, size)) in [("zstd", "zstd", 100), ("lz4", "lz4", 200)]
        .iter()
        .enumerate()
    {
        toml.push_str(&format!(
            "[[components]]\nid = \"{name}\"\nkind = \"onnxruntime\"\nversion = \"1\"\n\
             cuda = \"12.8\"\nneeds = [\"libcuda.so.1\"]\n[components.archive]\n\
             url = \"https://example.com/{name}.tar.zst\"\nsha256 = \"{:064x}\"\n\
             size = {size}\nunpacked_size = {size}\nformat = \"tar.zst\"\n\
             [components.coverage]\nsass = [\"sm_75\", \"sm_86\"]\n\
             compression = [\"{compression}\"]\n\
             [[variants]]\nname = \"{name}\"\ncomponents = [\"{name}\"]\n",
            i + 1
        ));
    }
    let manifest = tmp.path().join("manifest.toml");
    std::fs::write(&manifest, toml).unwrap();
    let plan = |driver: &str, json: bool| {
        let mut cmd = gpulibs(&tmp);
        cmd.args(["plan", "--allow-unsigned", "--no-reuse", "--manifest"])
            .arg(&manifest)
            .args(["--gpu", "8.6", "--driver", driver]);
        if json {
            cmd.arg("--json");
        }
        cmd.output().unwrap()
    };
    let out = plan("535.183.01", true);
    assert!(out.status.success(), "{}", text_of(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["plan"]["chosen"]["variant"], "lz4");
    let rejected = &json["plan"]["rejected"][0];
    assert_eq!(rejected["variant"], "zstd");
    let reason = &rejected["reasons"][0];
    assert_eq!(reason["reason"], "driver_cannot_read_kernels");
    assert_eq!(reason["rule"], "fatbin-zstd");
    assert_eq!(reason["compression"], "zstd");
    assert_eq!(reason["needs"], "550.54.14");
    assert_eq!(reason["target"]["cc"], "8.6");
    // The human form names the rule and its source.
    let out = plan("535.183.01", false);
    let text = text_of(&out);
    assert!(text.contains("rule fatbin-zstd"), "{text}");
    assert!(text.contains("docs.nvidia.com"), "{text}");
    // R550 reads zstd: the smaller download wins.
    let out = plan("550.54.14", true);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["plan"]["chosen"]["variant"],
        "zstd",
        "{}",
        text_of(&out)
    );
}

/// `gpulibs inspect --gpu 8.6 --driver 535.183.01` on a real ELF whose sm_86 kernels are zstd:
/// `driver cannot load`, exit 3; with R550 it loads.
#[test]
fn inspect_says_an_r535_driver_cannot_read_zstd_kernels() {
    let tmp = tempfile::tempdir().unwrap();
    let so = build_so(
        tmp.path(),
        "libzstd.so",
        &[(
            Place::Section(".nv_fatbin"),
            container(&[Entry::sass(75).zstd(), Entry::sass(86).zstd()]),
        )],
    );
    let out = gpulibs(&tmp)
        .args([
            "inspect",
            "--no-deps",
            "--gpu",
            "8.6",
            "--driver",
            "535.183.01",
        ])
        .arg(&so)
        .output()
        .unwrap();
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("driver cannot load"), "{text}");
    assert!(text.contains("zstd-compressed"), "{text}");
    assert!(text.contains("550.54.14"), "{text}");
    let out = gpulibs(&tmp)
        .args([
            "inspect",
            "--no-deps",
            "--json",
            "--gpu",
            "8.6",
            "--driver",
            "535.183.01",
        ])
        .arg(&so)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["driver_cuda"], "12.2");
    assert_eq!(
        json["files"][0]["verdicts"][0]["verdict"],
        "driver_cannot_load"
    );
    assert_eq!(json["files"][0]["verdicts"][0]["rule"], "fatbin-zstd");
    // R550 reads zstd.
    let out = gpulibs(&tmp)
        .args([
            "inspect",
            "--no-deps",
            "--gpu",
            "8.6",
            "--driver",
            "550.54.14",
        ])
        .arg(&so)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    // A driver older than every known toolkit is refused with a hint, not guessed.
    let out = gpulibs(&tmp)
        .args([
            "inspect",
            "--no-deps",
            "--gpu",
            "8.6",
            "--driver",
            "470.256.02",
        ])
        .arg(&so)
        .output()
        .unwrap();
    let text = text_of(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("--driver-cuda"), "{text}");
}
