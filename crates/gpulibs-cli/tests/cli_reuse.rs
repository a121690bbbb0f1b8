//! `gpulibs plan` with the embedded default on a machine whose Python environment holds
//! PyTorch's CUDA 13 wheels at older minors than the release pins (the lent GPU machine of
//! issue 12, `/work/wt/lent-venv-inventory.txt`): real ELF libraries with the real SONAMEs and
//! file names, `dist-info` directories with METADATA and RECORD naming the real versions. The
//! plan downloads only the ONNX Runtime wheel and says, for every NVIDIA component, where it
//! comes from and which rules accepted it.

mod world;

use std::path::{Path, PathBuf};
use std::process::Command;

use gpulibs_sources::CoverageTable;

/// (distribution, version, Requires-Dist, directory under `nvidia/`, SONAMEs = file names).
type Dist = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static [&'static str],
);

const LENT_VENV: &[Dist] = &[
    (
        "nvidia_cublas",
        "13.1.0.3",
        &[],
        "cu13",
        &["libcublas.so.13", "libcublasLt.so.13", "libnvblas.so.13"],
    ),
    (
        "nvidia_cuda_runtime",
        "13.0.96",
        &[],
        "cu13",
        &["libcudart.so.13"],
    ),
    (
        "nvidia_cuda_nvrtc",
        "13.0.88",
        &[],
        "cu13",
        &[
            "libnvrtc.so.13",
            "libnvrtc-builtins.so.13.0",
            "libnvrtc.alt.so.13",
            "libnvrtc-builtins.alt.so.13.0",
        ],
    ),
    (
        "nvidia_cudnn_cu13",
        "9.19.0.56",
        &["nvidia-cublas"],
        "cudnn",
        &[
            "libcudnn.so.9",
            "libcudnn_adv.so.9",
            "libcudnn_cnn.so.9",
            "libcudnn_engines_precompiled.so.9",
            "libcudnn_engines_runtime_compiled.so.9",
            "libcudnn_graph.so.9",
            "libcudnn_heuristic.so.9",
            "libcudnn_ops.so.9",
        ],
    ),
    (
        "nvidia_cufft",
        "12.0.0.61",
        &["nvidia-nvjitlink"],
        "cu13",
        &["libcufft.so.12", "libcufftw.so.12"],
    ),
    (
        "nvidia_curand",
        "10.4.0.35",
        &[],
        "cu13",
        &["libcurand.so.10"],
    ),
    (
        "nvidia_nvjitlink",
        "13.0.88",
        &[],
        "cu13",
        &["libnvJitLink.so.13"],
    ),
    (
        "nvidia_cusparse",
        "12.6.3.3",
        &["nvidia-nvjitlink"],
        "cu13",
        &["libcusparse.so.12"],
    ),
];

/// Lays out `venv` as pip leaves it: `lib/python3.12/site-packages/nvidia/<dir>/lib/<so>` and
/// `<dist>-<version>.dist-info/{METADATA,RECORD}`.
fn lent_venv(venv: &Path) -> PathBuf {
    let site = venv.join("lib/python3.12/site-packages");
    for (dist, version, requires, dir, files) in LENT_VENV {
        let mut record = String::new();
        for f in *files {
            let rel = format!("nvidia/{dir}/lib/{f}");
            gpulibs_testkit::build_library(&site.join(&rel), f, &[]);
            record.push_str(&format!("{rel},,\n"));
        }
        let info = site.join(format!("{dist}-{version}.dist-info"));
        std::fs::create_dir_all(&info).unwrap();
        let mut metadata = format!(
            "Metadata-Version: 2.1\nName: {}\nVersion: {version}\n",
            dist.replace('_', "-")
        );
        for r in *requires {
            metadata.push_str(&format!("Requires-Dist: {r}\n"));
        }
        record.push_str(&format!("{dist}-{version}.dist-info/METADATA,,\n"));
        std::fs::write(info.join("METADATA"), metadata).unwrap();
        std::fs::write(info.join("RECORD"), record).unwrap();
    }
    site
}

fn gpulibs(tmp: &Path, venv: &Path) -> Command {
    let mut cmd = world::isolated_gpulibs(tmp, &tmp.join("root"));
    cmd.env("VIRTUAL_ENV", venv)
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("CUDA_HOME")
        .env_remove("CUDA_PATH")
        .env_remove("CONDA_PREFIX")
        .env_remove("PYENV_ROOT");
    cmd
}

fn run_json(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_lent_machine_downloads_only_the_onnxruntime_wheel() {
    let tmp = tempfile::tempdir().unwrap();
    let venv = tmp.path().join("venv");
    let site = lent_venv(&venv);
    let ort_size = CoverageTable::embedded()
        .releases
        .iter()
        .find(|r| r.version == "1.31.1")
        .unwrap()
        .wheel
        .size;

    let args = ["plan", "--gpu", "9.0", "--driver-cuda", "13.0"];
    let json = run_json(gpulibs(tmp.path(), &venv).arg("--json").args(args));
    let chosen = &json["plan"]["chosen"];
    assert_eq!(chosen["variant"], "ort-1.31.1-cuda13", "{json}");
    let components = chosen["components"].as_array().unwrap();
    let downloaded: Vec<&str> = components
        .iter()
        .filter(|c| c["download_bytes"].as_u64().unwrap() > 0)
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(downloaded, ["onnxruntime-gpu-1.31.1"], "{json:#}");
    assert_eq!(json["plan"]["totals"]["download_bytes"], ort_size);

    // Every NVIDIA component: reused, from which directory, the version found, the rules.
    let cu13 = site.join("nvidia/cu13/lib");
    let cudnn = site.join("nvidia/cudnn/lib");
    let want = [
        (
            "nvidia-cudnn-cu13-9.28.1.4",
            &cudnn,
            "9.19.0.56",
            "publisher ~=9.0",
        ),
        (
            "nvidia-cublas-13.10.0.20",
            &cu13,
            "13.1.0.3",
            "SONAME major",
        ),
        (
            "nvidia-cuda-nvrtc-13.5.37",
            &cu13,
            "13.0.88",
            "NVIDIA NVRTC rule",
        ),
        (
            "nvidia-cuda-runtime-13.5.37",
            &cu13,
            "13.0.96",
            "NVIDIA CUDA runtime rule",
        ),
        (
            "nvidia-cufft-12.5.0.14",
            &cu13,
            "12.0.0.61",
            "publisher ~=12.0",
        ),
        (
            "nvidia-curand-10.4.5.25",
            &cu13,
            "10.4.0.35",
            "publisher ~=10.0",
        ),
        ("nvidia-nvjitlink-13.5.37", &cu13, "13.0.88", "SONAME major"),
    ];
    for (id, dir, version, rule) in want {
        let c = components
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {json:#}"));
        let why = &c["why"];
        assert_eq!(why["kind"], "reused", "{id}: {why:#}");
        assert_eq!(why["dir"], dir.to_str().unwrap(), "{id}");
        assert_eq!(why["libraries"][0]["version"], version, "{id}: {why:#}");
        let names: Vec<&str> = why["accepted_by"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&rule), "{id}: {names:?}");
        assert_eq!(c["source"]["source"], "system", "{id}");
    }
    // Only what ORT needs from the family: cuDNN's entry library, not the sub-libraries the
    // release has and 9.19 lacks; cuBLAS without libnvblas; NVRTC without its builtins.
    let libs = |id: &str| -> Vec<String> {
        components.iter().find(|c| c["id"] == id).unwrap()["why"]["libraries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["soname"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(libs("nvidia-cudnn-cu13-9.28.1.4"), ["libcudnn.so.9"]);
    assert_eq!(
        libs("nvidia-cublas-13.10.0.20"),
        ["libcublas.so.13", "libcublasLt.so.13"]
    );
    assert_eq!(libs("nvidia-cuda-nvrtc-13.5.37"), ["libnvrtc.so.13"]);

    // The table: one line per component, where from and why.
    let out = gpulibs(tmp.path(), &venv).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} in\n{text}"))
            .to_owned()
    };
    let cudnn_line = line("nvidia-cudnn-cu13-9.28.1.4");
    assert!(cudnn_line.contains("this machine"), "{cudnn_line}");
    assert!(
        cudnn_line.contains(&format!("9.19.0.56 in {}", cudnn.display())),
        "{cudnn_line}"
    );
    assert!(
        cudnn_line.contains("publisher ~=9.0, NVIDIA cuDNN rule"),
        "{cudnn_line}"
    );
    assert!(line("onnxruntime-gpu-1.31.1").contains("carries GPU kernels"));

    // --no-reuse: everything downloaded, each saying so.
    let json = run_json(
        gpulibs(tmp.path(), &venv)
            .arg("--json")
            .args(args)
            .arg("--no-reuse"),
    );
    let components = json["plan"]["chosen"]["components"].as_array().unwrap();
    assert!(components
        .iter()
        .all(|c| c["download_bytes"].as_u64().unwrap() > 0));
    assert!(components
        .iter()
        .filter(|c| c["id"] != "onnxruntime-gpu-1.31.1")
        .all(|c| c["why"]["kind"] == "reuse_off"));
}

#[test]
fn an_older_cudnn_than_the_publishers_floor_is_refused_with_the_rule() {
    // The embedded release says `~=9.0`: a `libcudnn.so.9` whose pip RECORD belongs to a
    // distribution versioned 10.0.0 (a broken environment) is outside it, and the plan says
    // which file, which version, which publisher's rule.
    let tmp = tempfile::tempdir().unwrap();
    let venv = tmp.path().join("venv");
    let site = lent_venv(&venv);
    let info = site.join("nvidia_cudnn_cu13-9.19.0.56.dist-info");
    let broken = site.join("nvidia_cudnn_cu13-10.0.0.dist-info");
    std::fs::rename(&info, &broken).unwrap();
    let json = run_json(gpulibs(tmp.path(), &venv).args([
        "--json",
        "plan",
        "--gpu",
        "9.0",
        "--driver-cuda",
        "13.0",
    ]));
    let c = json["plan"]["chosen"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "nvidia-cudnn-cu13-9.28.1.4")
        .unwrap()
        .clone();
    let why = &c["why"];
    assert_eq!(why["kind"], "refused", "{why:#}");
    assert_eq!(why["version"], "10.0.0");
    assert_eq!(why["specifier"], "~=9.0");
    assert!(
        why["rule"]
            .as_str()
            .unwrap()
            .contains("onnxruntime-gpu 1.31.1 Requires-Dist nvidia-cudnn-cu13~=9.0"),
        "{why:#}"
    );
    assert!(c["download_bytes"].as_u64().unwrap() > 0);
}
