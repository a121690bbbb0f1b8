//! Reuse of libraries already on the machine, decided by the publisher's range and NVIDIA's
//! rules (docs/reuse.md): one table of machines against one small release, then what the plan
//! and the candidates say.

use gpulibs_plan::{
    candidates, parse_manifest, plan, reuse_decision, Host, Manifest, Policy, Source,
    SystemInventory, SystemLibrary, Why,
};

fn hash(n: u32) -> String {
    format!("{n:064x}")
}

/// ORT (with kernels) needing cuDNN's entry library, cuBLAS and NVRTC; cuDNN, cuBLAS and NVRTC
/// wheels providing more than ORT needs (sub-libraries, `libnvblas`, the builtins of their own
/// minor), with the ranges the ORT wheel's METADATA states. `extra` is appended to the cuDNN
/// component's `[components.reuse]` table.
fn release(cudnn_reuse: &str) -> Manifest {
    let comp = |i: u32, id: &str, kind: &str, version: &str, provides: &[&str], reuse: &str| {
        let p: Vec<String> = provides.iter().map(|s| format!("\"{s}\"")).collect();
        format!(
            "[[components]]\nid = \"{id}\"\nkind = \"{kind}\"\nversion = \"{version}\"\n\
             origin = \"pypi\"\nprovides = [{}]\nneeds = [\"libcuda.so.1\"]\n\
             [components.archive]\nurl = \"pip:{id}=={version}\"\nsha256 = \"{}\"\n\
             size = {}\nunpacked_size = {}\nformat = \"wheel\"\n{reuse}",
            p.join(", "),
            hash(i),
            (i as u64 + 1) * 100_000_000,
            (i as u64 + 1) * 200_000_000,
        )
    };
    let mut t = String::from("schema_version = 1\napp = \"t\"\nversion = \"1\"\n");
    t.push_str(
        "[[components]]\nid = \"ort\"\nkind = \"onnxruntime\"\nversion = \"1.31.1\"\n\
         origin = \"pypi\"\ncuda = \"13.0\"\n\
         needs = [\"libcuda.so.1\", \"libcudnn.so.9\", \"libcublas.so.13\", \
         \"libcublasLt.so.13\", \"libnvrtc.so.13\"]\n\
         [components.archive]\nurl = \"pip:onnxruntime-gpu==1.31.1\"\n",
    );
    t.push_str(&format!(
        "sha256 = \"{}\"\nsize = 256000000\nunpacked_size = 400000000\nformat = \"wheel\"\n\
         [components.coverage]\nsass = [\"sm_90\"]\nptx = []\n",
        hash(99)
    ));
    t.push_str(&comp(
        0,
        "cudnn",
        "cudnn",
        "9.28.1.4",
        &[
            "libcudnn.so.9",
            "libcudnn_graph.so.9",
            "libcudnn_ext.so.9",
            "libcudnn_engines_tensor_ir.so.9",
        ],
        &format!("[components.reuse]\n{cudnn_reuse}"),
    ));
    t.push_str(&comp(
        1,
        "cublas",
        "cublas",
        "13.10.0.20",
        &["libcublas.so.13", "libcublasLt.so.13", "libnvblas.so.13"],
        "[components.reuse]\nversions = \"\"\nversions_from = \"nvidia-cudnn-cu13 \
         Requires-Dist nvidia-cublas\"\n",
    ));
    t.push_str(&comp(
        2,
        "nvrtc",
        "nvrtc",
        "13.5.37",
        &["libnvrtc.so.13", "libnvrtc-builtins.so.13.5"],
        "[components.reuse]\nversions = \"~=13.0\"\nbuilt_with = \"13.0\"\n",
    ));
    t.push_str(
        "[[variants]]\nname = \"gpu\"\ncomponents = [\"ort\", \"cudnn\", \"cublas\", \"nvrtc\"]\n",
    );
    parse_manifest(&t).unwrap()
}

fn lib(dir: &str, soname: &str, version: Option<&str>) -> SystemLibrary {
    SystemLibrary {
        soname: soname.into(),
        path: format!("{dir}/{soname}").into(),
        version: version.map(str::to_owned),
    }
}

const CUDNN: &str = "/venv/nvidia/cudnn/lib";
const CU13: &str = "/venv/nvidia/cu13/lib";

/// The lent machine's venv (PyTorch's CUDA 13 wheels, older minors than the release's).
fn lent_machine() -> Vec<SystemLibrary> {
    vec![
        lib(CUDNN, "libcudnn.so.9", Some("9.19.0.56")),
        lib(CUDNN, "libcudnn_graph.so.9", Some("9.19.0.56")),
        lib(CU13, "libcublas.so.13", Some("13.1.0.3")),
        lib(CU13, "libcublasLt.so.13", Some("13.1.0.3")),
        lib(CU13, "libnvblas.so.13", Some("13.1.0.3")),
        lib(CU13, "libnvrtc.so.13", Some("13.0.88")),
        lib(CU13, "libnvrtc-builtins.so.13.0", Some("13.0.88")),
    ]
}

fn decide(m: &Manifest, id: &str, libs: Vec<SystemLibrary>, policy: &Policy) -> Why {
    let variant: Vec<_> = m.components.iter().collect();
    let c = m.components.iter().find(|c| c.id == id).unwrap();
    reuse_decision(c, &variant, &SystemInventory { libraries: libs }, policy)
}

/// A short form of a decision for the table: `reused <dir> [names]`, `refused <name>`, ...
fn short(w: &Why) -> String {
    match w {
        Why::Reused {
            dir, accepted_by, ..
        } => {
            let names: Vec<&str> = accepted_by.iter().map(|c| c.name.as_str()).collect();
            format!("reused {} [{}]", dir.display(), names.join(", "))
        }
        Why::Refused { name, soname, .. } => format!("refused {soname} by {name}"),
        Why::NotFound { soname } => format!("not found {soname}"),
        Why::Incomplete { dir, missing } => format!("incomplete {} {missing}", dir.display()),
        Why::ReuseOff => "off".into(),
        Why::CarriesKernels => "kernels".into(),
        Why::NeverReused => "never".into(),
        Why::NothingToMatch => "nothing".into(),
        Why::RangeUnreadable { .. } => "unreadable".into(),
    }
}

#[test]
fn reuse_decisions() {
    let publisher = "versions = \"~=9.0\"\n";
    let with_built = |b: &str| format!("versions = \"~=9.0\"\nbuilt_with = \"{b}\"\n");
    let without = |drop: &str| {
        let mut l = lent_machine();
        l.retain(|x| x.soname != drop);
        l
    };
    let no_builtins = without("libnvrtc-builtins.so.13.0");
    let no_lt = without("libcublasLt.so.13");
    // (case, cuDNN's reuse table, component, machine, policy, expected)
    let on = Policy::default();
    let off = Policy {
        reuse_system: false,
        ..Policy::default()
    };
    type Case<'a> = (
        &'a str,
        String,
        &'a str,
        Vec<SystemLibrary>,
        &'a Policy,
        String,
    );
    let cases: Vec<Case> = vec![
        (
            "cuDNN 9.19 serves a release pinned to 9.28: only libcudnn.so.9 is needed",
            publisher.into(),
            "cudnn",
            lent_machine(),
            &on,
            format!("reused {CUDNN} [publisher ~=9.0, NVIDIA cuDNN rule]"),
        ),
        (
            "cuBLAS 13.1 serves 13.10; libnvblas is not needed",
            publisher.into(),
            "cublas",
            lent_machine()
                .into_iter()
                .filter(|l| l.soname != "libnvblas.so.13")
                .collect(),
            &on,
            format!("reused {CU13} [publisher any version, SONAME major]"),
        ),
        (
            "NVRTC 13.0 with its own builtins serves 13.5",
            publisher.into(),
            "nvrtc",
            lent_machine(),
            &on,
            format!("reused {CU13} [publisher ~=13.0, NVIDIA NVRTC rule]"),
        ),
        (
            "NVRTC without the builtins of its own minor",
            publisher.into(),
            "nvrtc",
            no_builtins,
            &on,
            format!("incomplete {CU13} libnvrtc-builtins.so.13.0"),
        ),
        (
            "cuBLAS without cuBLASLt anywhere",
            publisher.into(),
            "cublas",
            no_lt,
            &on,
            "not found libcublasLt.so.13".into(),
        ),
        (
            "cuBLAS split across two directories is taken from the one holding both",
            publisher.into(),
            "cublas",
            vec![
                lib("/a", "libcublas.so.13", Some("13.1.0.3")),
                lib("/b", "libcublas.so.13", Some("13.2.0.9")),
                lib("/b", "libcublasLt.so.13", Some("13.2.0.9")),
            ],
            &on,
            "reused /b [publisher any version, SONAME major]".into(),
        ),
        (
            "cuDNN older than the publisher's floor",
            "versions = \">=9.20,<10\"\n".into(),
            "cudnn",
            lent_machine(),
            &on,
            "refused libcudnn.so.9 by publisher >=9.20,<10".into(),
        ),
        (
            "cuDNN older than the build's minor (NVIDIA: not guaranteed)",
            with_built("9.20"),
            "cudnn",
            lent_machine(),
            &on,
            "refused libcudnn.so.9 by NVIDIA cuDNN rule".into(),
        ),
        (
            "cuDNN newer than the build's minor",
            with_built("9.8"),
            "cudnn",
            lent_machine(),
            &on,
            format!("reused {CUDNN} [publisher ~=9.0, NVIDIA cuDNN rule]"),
        ),
        (
            "unknown version, range is the whole major: the SONAME proves it",
            publisher.into(),
            "cudnn",
            vec![lib(CUDNN, "libcudnn.so.9", None)],
            &on,
            format!("reused {CUDNN} [publisher ~=9.0, NVIDIA cuDNN rule]"),
        ),
        (
            "unknown version, narrower range",
            "versions = \"~=9.10\"\n".into(),
            "cudnn",
            vec![lib(CUDNN, "libcudnn.so.9", None)],
            &on,
            "refused libcudnn.so.9 by publisher ~=9.10".into(),
        ),
        (
            "cuDNN 8 does not serve libcudnn.so.9",
            publisher.into(),
            "cudnn",
            vec![lib(CUDNN, "libcudnn.so.8", Some("8.9.7"))],
            &on,
            "not found libcudnn.so.9".into(),
        ),
        (
            "the vendor's own SONAME list overrides the default",
            "sonames = [\"libcudnn.so.9\", \"libcudnn_ext.so.9\"]\n".into(),
            "cudnn",
            lent_machine(),
            &on,
            "not found libcudnn_ext.so.9".into(),
        ),
        (
            "never reused by the vendor's word",
            "never = true\n".into(),
            "cudnn",
            lent_machine(),
            &on,
            "never".into(),
        ),
        (
            "--no-reuse",
            publisher.into(),
            "cudnn",
            lent_machine(),
            &off,
            "off".into(),
        ),
        (
            "kernels are never reused",
            publisher.into(),
            "ort",
            lent_machine(),
            &on,
            "kernels".into(),
        ),
    ];
    let mut failures = Vec::new();
    for (case, cudnn, id, libs, policy, want) in cases {
        let m = release(&cudnn);
        let got = short(&decide(&m, id, libs, policy));
        if got != want {
            failures.push(format!("{case}:\n  want {want}\n  got  {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_refusal_names_the_path_the_version_and_the_rule() {
    let m = release("versions = \">=9.20,<10\"\n");
    let w = decide(&m, "cudnn", lent_machine(), &Policy::default());
    let Why::Refused {
        path,
        version,
        rule,
        detail,
        ..
    } = &w
    else {
        panic!("{w:?}")
    };
    assert_eq!(path.to_str(), Some("/venv/nvidia/cudnn/lib/libcudnn.so.9"));
    assert_eq!(version.as_deref(), Some("9.19.0.56"));
    assert!(rule.contains("reuse.versions"), "{rule}");
    assert_eq!(detail, "9.19.0.56 is not in >=9.20,<10");
    assert_eq!(
        w.to_string(),
        "download: /venv/nvidia/cudnn/lib/libcudnn.so.9 refused by publisher >=9.20,<10: \
         9.19.0.56 is not in >=9.20,<10"
    );
}

#[test]
fn the_plan_downloads_only_the_runtime_on_the_lent_machine() {
    let m = release("versions = \"~=9.0\"\n");
    let h = Host::synthetic(
        &["9.0".parse().unwrap()],
        None,
        Some("13.0".parse().unwrap()),
    );
    let system = SystemInventory {
        libraries: lent_machine(),
    };
    let p = plan(&h, &m, &system, &Policy::default());
    let chosen = p.chosen.as_ref().unwrap();
    let downloaded: Vec<&str> = chosen
        .components
        .iter()
        .filter(|c| c.download_bytes > 0)
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(downloaded, ["ort"]);
    assert_eq!(p.totals.download_bytes, 256_000_000);
    for c in &chosen.components[1..] {
        assert!(c.why.is_reused(), "{}: {}", c.id, c.why);
        assert!(matches!(c.source, Source::System { .. }), "{}", c.id);
    }
    // Structured in JSON: the kind, the directory, each library's version, the rules.
    let json = serde_json::to_value(&chosen.components[1]).unwrap();
    assert_eq!(json["why"]["kind"], "reused");
    assert_eq!(json["why"]["dir"], CUDNN);
    assert_eq!(json["why"]["libraries"][0]["version"], "9.19.0.56");
    assert_eq!(json["why"]["accepted_by"][0]["specifier"], "~=9.0");
    assert_eq!(json["source"]["source"], "system");
    assert_eq!(
        serde_json::to_value(&chosen.components[0]).unwrap()["why"]["kind"],
        "carries_kernels"
    );

    // Archives already in the store are not downloaded again.
    let stored = Policy {
        stored_archives: [hash(99)].into_iter().collect(),
        ..Policy::default()
    };
    let p = plan(&h, &m, &system, &stored);
    assert_eq!(p.totals.download_bytes, 0);
    assert!(p.chosen.unwrap().components[0].in_store);
}

#[test]
fn a_reused_older_minor_is_tried_first_and_the_download_follows() {
    // Verification proves what the rules accept; if the reused cuDNN 9.19 fails it, install
    // moves to the next candidate: the same variant with every component downloaded
    // (gpulibs-install's attempts test runs that loop with a failing reused library).
    let m = release("versions = \"~=9.0\"\n");
    let h = Host::synthetic(
        &["9.0".parse().unwrap()],
        None,
        Some("13.0".parse().unwrap()),
    );
    let system = SystemInventory {
        libraries: lent_machine(),
    };
    let c = candidates(&h, &m, &system, &Policy::default());
    assert_eq!(c.len(), 2, "{c:?}");
    assert_eq!(
        (c[0].variant.as_str(), c[1].variant.as_str()),
        ("gpu", "gpu")
    );
    assert!(c[0].components[1..].iter().all(|p| p.why.is_reused()));
    assert!(c[1]
        .components
        .iter()
        .all(|p| !p.why.is_reused() && !matches!(p.source, Source::System { .. })));
    assert!(c[1].components[1..]
        .iter()
        .all(|p| p.why == Why::ReuseOff && p.download_bytes > 0));
}

#[test]
fn a_bad_range_in_a_manifest_is_refused_naming_the_component_and_the_fix() {
    let good = release("versions = \"~=9.0\"\n");
    let text = gpulibs_plan::to_toml(&good);
    assert!(text.contains("[components.reuse]"), "{text}");
    assert!(gpulibs_plan::load_manifest(text.as_bytes()).is_ok());
    for (bad, words) in [
        (
            "versions = \"~=9\"",
            "`~=` needs at least two release numbers",
        ),
        (
            "versions = \">=9.0rc1\"",
            "pre-, post-, dev- and local versions",
        ),
        ("built_with = \"nine\"", "reuse.built_with `nine`"),
    ] {
        let text = gpulibs_plan::to_toml(&release(&format!("{bad}\n")));
        let e = gpulibs_plan::load_manifest(text.as_bytes()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("component `cudnn`") && msg.contains(words),
            "{bad}: {msg}"
        );
    }
    // Fields it does not know are errors, as everywhere in the manifest.
    let text = gpulibs_plan::to_toml(&good).replace(
        "[components.reuse]\n",
        "[components.reuse]\nversion = \"~=9.0\"\n",
    );
    let e = gpulibs_plan::load_manifest(text.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("unknown field `version`"), "{e}");
}
