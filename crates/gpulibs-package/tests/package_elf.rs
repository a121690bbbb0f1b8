//! Packaging synthetic libraries built at test time: a vendor's build directory with SONAME
//! links and a library carrying fatbins, and "NVIDIA" wheels with RECORD files.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use gpulibs_detect::ComputeCapability;
use gpulibs_inspect::{inspect_bytes, InspectOptions, Verdict};
use gpulibs_package::{mirror, package, PackageError, PackageRequest, ZstdSettings};
use gpulibs_testkit::{container, Entry};
use sha2::{Digest, Sha256};

fn cc_arch(s: &str) -> ComputeCapability {
    s.parse().unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `cc -shared` a library from C source, with a SONAME and libraries to link (their SONAMEs
/// become `DT_NEEDED`).
fn cc_so(dir: &Path, file: &str, soname: Option<&str>, src: &str, link: &[&Path]) -> PathBuf {
    let c = dir.join(format!("{file}.c"));
    std::fs::write(&c, src).unwrap();
    let out = dir.join(file);
    let mut cmd = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cmd.args(["-shared", "-fPIC", "-O0", "-o"])
        .arg(&out)
        .arg(&c);
    if let Some(s) = soname {
        cmd.arg(format!("-Wl,-soname,{s}"));
    }
    // Keep every linked library as DT_NEEDED even though the code calls nothing in it.
    cmd.arg("-Wl,--no-as-needed").args(link);
    assert!(cmd.status().unwrap().success(), "cc failed for {file}");
    out
}

/// C source defining a byte array in `.nv_fatbin`.
fn fatbin_source(blob: &[u8]) -> String {
    let bytes: Vec<String> = blob.iter().map(|b| b.to_string()).collect();
    format!(
        "__attribute__((section(\".nv_fatbin\"), aligned(8), used)) const unsigned char \
         fb[{}] = {{{}}};\nint vendor_cuda(void) {{ return 7; }}\n",
        blob.len(),
        bytes.join(",")
    )
}

fn record_hash(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let d = Sha256::digest(data);
    let mut s = String::from("sha256=");
    for c in d.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            s.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    s
}

/// A wheel holding `libs` under `nvidia/cu13/lib/`, with a RECORD (optionally lying about the
/// first library) and a License.txt.
fn wheel(dir: &Path, file: &str, libs: &[&Path], lie: bool) -> PathBuf {
    let path = dir.join(file);
    let (dist, version) = {
        let mut p = file.split('-');
        (p.next().unwrap().to_string(), p.next().unwrap().to_string())
    };
    let info = format!("{dist}-{version}.dist-info");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut record = String::new();
    for (i, l) in libs.iter().enumerate() {
        let name = format!(
            "nvidia/cu13/lib/{}",
            l.file_name().unwrap().to_string_lossy()
        );
        let data = std::fs::read(l).unwrap();
        z.start_file(&name, opts).unwrap();
        z.write_all(&data).unwrap();
        let h = if lie && i == 0 {
            record_hash(b"something else")
        } else {
            record_hash(&data)
        };
        record.push_str(&format!("{name},{h},{}\n", data.len()));
    }
    z.start_file(format!("{info}/License.txt"), opts).unwrap();
    z.write_all(b"NVIDIA SOFTWARE LICENSE (test text)\n")
        .unwrap();
    record.push_str(&format!("{info}/RECORD,,\n"));
    z.start_file(format!("{info}/RECORD"), opts).unwrap();
    z.write_all(record.as_bytes()).unwrap();
    z.finish().unwrap();
    path
}

struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    build: PathBuf,
    cudart_whl: PathBuf,
    cublas_whl: PathBuf,
    cudart: PathBuf,
}

/// The vendor's build directory and two NVIDIA wheels.
fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let nv = root.join("nv");
    std::fs::create_dir_all(&nv).unwrap();
    let cudart = cc_so(
        &nv,
        "libcudart.so.13",
        Some("libcudart.so.13"),
        "int cudart(void){return 13;}\n",
        &[],
    );
    let cublas = cc_so(
        &nv,
        "libcublas.so.13",
        Some("libcublas.so.13"),
        "int cublas(void){return 1;}\n",
        &[&cudart],
    );
    // Nothing loads this one: it is pruned.
    let cufftw = cc_so(
        &nv,
        "libcufftw.so.12",
        Some("libcufftw.so.12"),
        "int cufftw(void){return 2;}\n",
        &[],
    );
    let wheels = root.join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    let cudart_whl = wheel(
        &wheels,
        "nvidia_cuda_runtime-13.0.96-py3-none-manylinux_2_17_x86_64.whl",
        &[&cudart],
        false,
    );
    let cublas_whl = wheel(
        &wheels,
        "nvidia_cublas-13.1.0.3-py3-none-manylinux_2_17_x86_64.whl",
        &[&cublas, &cufftw],
        false,
    );

    // The vendor's build output: libvendor_core with its SONAME chain, and a CUDA library.
    let build = root.join("build/Linux/Release");
    std::fs::create_dir_all(&build).unwrap();
    let core = cc_so(
        &build,
        "libvendor_core.so.1.2.3",
        Some("libvendor_core.so.1"),
        "int core(void){return 3;}\n",
        &[],
    );
    std::os::unix::fs::symlink("libvendor_core.so.1.2.3", build.join("libvendor_core.so.1"))
        .unwrap();
    std::os::unix::fs::symlink("libvendor_core.so.1", build.join("libvendor_core.so")).unwrap();
    let five = vec![
        Entry::sass(75),
        Entry::sass(80),
        Entry::sass(86),
        Entry::sass(90).a(),
        Entry::ptx(90, (8, 8)),
    ];
    let mut blob = container(&five);
    blob.extend(container(&five));
    cc_so(
        &build,
        "libvendor_cuda.so",
        None,
        &fatbin_source(&blob),
        &[&core, &cublas, &cudart],
    );
    // Build leftovers that are not libraries.
    std::fs::write(build.join("CMakeCache.txt"), "x").unwrap();
    World {
        _tmp: tmp,
        root,
        build,
        cudart_whl,
        cublas_whl,
        cudart,
    }
}

fn request(w: &World, out: &str) -> PackageRequest {
    let mut r = PackageRequest::new(
        "testapp",
        "2.0.0",
        vec![w.build.clone(), w.cudart_whl.clone(), w.cublas_whl.clone()],
        w.root.join(out),
    );
    r.name = "vendor".into();
    // Fast settings for tests; the defaults are for releases.
    r.zstd = ZstdSettings {
        level: 3,
        window_log: 20,
        long_distance_matching: false,
        workers: 0,
    };
    r
}

/// (path, kind, link target, bytes) of every entry of a `.tar.zst`.
fn tar_entries(p: &Path) -> Vec<(String, char, Option<String>, Vec<u8>)> {
    let d = zstd::stream::read::Decoder::new(std::fs::File::open(p).unwrap()).unwrap();
    let mut a = tar::Archive::new(d);
    let mut v = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let kind = match e.header().entry_type() {
            tar::EntryType::Regular => 'f',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Directory => 'd',
            _ => '?',
        };
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        v.push((path, kind, link, data));
    }
    v
}

#[test]
fn universal_package_archives_links_closure_coverage_notices() {
    let w = world();
    let req = request(&w, "out");
    let r = package(&req).unwrap();
    assert_eq!(r.pruned, ["libcufftw.so.12"]);
    let ids: Vec<&str> = r.components.iter().map(|c| c.id.as_str()).collect();
    // NVIDIA components in input order.
    assert_eq!(ids, ["vendor", "nvidia-cuda-runtime", "nvidia-cublas"]);

    // Archives: sha256 and size as reported, links recorded as links.
    for c in &r.components {
        let bytes = std::fs::read(&c.archive).unwrap();
        assert_eq!(hex(&Sha256::digest(&bytes)), c.sha256);
        assert_eq!(bytes.len() as u64, c.size);
    }
    let vendor = tar_entries(&r.components[0].archive);
    let files: Vec<(&str, char, Option<&str>)> = vendor
        .iter()
        .filter(|e| e.1 != 'd')
        .map(|e| (e.0.as_str(), e.1, e.2.as_deref()))
        .collect();
    assert_eq!(
        files,
        [
            ("lib/libvendor_core.so.1.2.3", 'f', None),
            (
                "lib/libvendor_core.so",
                'l',
                Some("libvendor_core.so.1.2.3")
            ),
            (
                "lib/libvendor_core.so.1",
                'l',
                Some("libvendor_core.so.1.2.3")
            ),
            ("lib/libvendor_cuda.so", 'f', None),
        ]
    );
    // NVIDIA's bytes, unchanged, and a notice inside the archive.
    let rt = tar_entries(&r.components[1].archive);
    let cudart = rt.iter().find(|e| e.0 == "lib/libcudart.so.13").unwrap();
    assert_eq!(cudart.3, std::fs::read(&w.cudart).unwrap());
    let notice = rt
        .iter()
        .find(|e| e.0.ends_with("THIRD_PARTY_NOTICES.txt"))
        .unwrap();
    let notice = String::from_utf8(notice.3.clone()).unwrap();
    assert!(
        notice.contains("nvidia_cuda_runtime-13.0.96-py3-none"),
        "{notice}"
    );
    assert!(notice.contains(&hex(&Sha256::digest(std::fs::read(&w.cudart).unwrap()))));
    assert!(notice.contains("NVIDIA SOFTWARE LICENSE (test text)"));
    let all = std::fs::read_to_string(&r.notices).unwrap();
    assert!(all.contains("libcublas.so.13") && all.contains("libcudart.so.13"));
    let cudart_lib = r
        .libraries
        .iter()
        .find(|l| l.name == "libcudart.so.13")
        .unwrap();
    assert!(cudart_lib.verified.as_deref().unwrap().contains("RECORD"));

    // The manifest reads back with gpulibs-plan, with measured coverage and the closure.
    let text = std::fs::read_to_string(&r.manifest).unwrap();
    let m = gpulibs_plan::parse_manifest(&text).unwrap();
    let v = m.components.iter().find(|c| c.id == "vendor").unwrap();
    let cov = v.coverage.as_ref().unwrap();
    let sass: Vec<String> = cov.sass.iter().map(|t| t.0.name()).collect();
    assert_eq!(sass, ["sm_75", "sm_80", "sm_86", "sm_90a"]);
    assert_eq!(cov.ptx.len(), 1);
    assert_eq!(cov.ptx[0].target.0.name(), "compute_90");
    assert_eq!(cov.ptx[0].isa.0.to_string(), "8.8");
    // How the kernels are stored, for rule fatbin-zstd (docs/driver-rules.md): this test
    // library's entries are uncompressed.
    assert_eq!(cov.compression, [gpulibs_inspect::Compression::None]);
    assert!(text.contains("compression = [\"none\"]"), "{text}");
    assert_eq!(v.cuda.unwrap().to_string(), "13.0");
    assert!(v.needs.contains(&"libcublas.so.13".to_string()));
    assert!(!v.needs.contains(&"libvendor_core.so.1".to_string()));
    let core = v
        .files
        .iter()
        .find(|f| f.path == "lib/libvendor_core.so.1.2.3")
        .unwrap();
    assert_eq!(
        core.soname_links,
        ["libvendor_core.so", "libvendor_core.so.1"]
    );
    assert_eq!(m.variants.len(), 1);
    assert!(r.signature.is_none());
    // No work files left behind.
    assert!(!req.out.join(".work").exists());

    // Reproducible: the same inputs give the same archives, so an update that leaves a
    // component's inputs alone leaves its sha256 (and the user's download) alone.
    let again = package(&request(&w, "again")).unwrap();
    let sums = |r: &gpulibs_package::PackageReport| -> Vec<String> {
        r.components.iter().map(|c| c.sha256.clone()).collect()
    };
    assert_eq!(sums(&again), sums(&r));
}

#[test]
fn per_arch_components_are_thinned_and_reinspected() {
    let w = world();
    let mut req = request(&w, "out");
    req.per_arch = vec![cc_arch("9.0"), cc_arch("8.6"), cc_arch("12.0")];
    let r = package(&req).unwrap();
    let ids: Vec<&str> = r.components.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "vendor",
            "vendor-cuda-sm_90",
            "vendor-cuda-sm_86",
            "vendor-cuda-sm_120",
            "nvidia-cuda-runtime",
            "nvidia-cublas"
        ]
    );
    // The shared component holds the file without CUDA code only.
    assert_eq!(r.components[0].files, ["libvendor_core.so.1.2.3"]);
    let m = gpulibs_plan::parse_manifest(&std::fs::read_to_string(&r.manifest).unwrap()).unwrap();
    let expect = [
        ("sm_90", "9.0", vec!["sm_90a"], 0, Verdict::Native),
        ("sm_86", "8.6", vec!["sm_86"], 0, Verdict::Native),
        ("sm_120", "12.0", vec![], 1, Verdict::Jit { containers: 2 }),
    ];
    for (i, (sm, cc, sass, ptx, verdict)) in expect.into_iter().enumerate() {
        let c = &r.components[i + 1];
        let entries = tar_entries(&c.archive);
        let lib = entries
            .iter()
            .find(|e| e.0 == "lib/libvendor_cuda.so")
            .unwrap();
        let rep = inspect_bytes(
            Path::new("x"),
            &lib.3,
            &InspectOptions {
                gpus: vec![cc_arch(cc)],
                driver: None,
                check_payloads: true,
            },
        );
        assert_eq!(rep.verdicts[0].verdict, verdict, "{sm}");
        assert!(rep.warnings.is_empty(), "{sm}: {:?}", rep.warnings);
        let mc = m
            .components
            .iter()
            .find(|x| x.id == format!("vendor-cuda-{sm}"))
            .unwrap();
        let cov = mc.coverage.as_ref().unwrap();
        let got: Vec<String> = cov.sass.iter().map(|t| t.0.name()).collect();
        assert_eq!(got, sass, "{sm}");
        assert_eq!(cov.ptx.len(), ptx, "{sm}");
        let variant = m.variants.iter().find(|v| v.name == sm).unwrap();
        assert_eq!(
            variant.components,
            [
                "vendor".to_string(),
                format!("vendor-cuda-{sm}"),
                "nvidia-cuda-runtime".into(),
                "nvidia-cublas".into()
            ]
        );
        let t = r.thinning.iter().find(|t| t.0 == sm).unwrap();
        assert_eq!(t.1, "libvendor_cuda.so");
        assert_eq!(t.2.kept_entries, 2);
    }
    // A target the library has nothing for fails the package step.
    let mut req = request(&w, "out2");
    req.per_arch = vec![cc_arch("5.2")];
    let err = package(&req).unwrap_err();
    assert!(
        matches!(err, PackageError::Thin { ref target, .. } if target == "sm_52"),
        "{err}"
    );
}

#[test]
fn closure_errors_name_the_library_and_who_needs_it() {
    let w = world();
    // A library needing something nobody provides.
    let other = w.root.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let missing = cc_so(
        &other,
        "libmissing.so.4",
        Some("libmissing.so.4"),
        "int m(void){return 0;}\n",
        &[],
    );
    cc_so(
        &w.build,
        "libneedy.so",
        None,
        "int needy(void){return 0;}\n",
        &[&missing],
    );
    let err = package(&request(&w, "out")).unwrap_err();
    match &err {
        PackageError::Closure { missing } => {
            assert_eq!(
                missing,
                &[("libmissing.so.4".to_string(), "libneedy.so".to_string())]
            )
        }
        e => panic!("{e}"),
    }
    assert!(err
        .to_string()
        .contains("libmissing.so.4 (needed by libneedy.so)"));
    // Excluding the needy library closes it again.
    let mut req = request(&w, "out2");
    req.exclude = vec!["libneedy*".into()];
    package(&req).unwrap();
    // Without the CUDA runtime wheel, libcudart.so.13 is missing for two libraries.
    let mut req = request(&w, "out3");
    req.inputs.retain(|p| p != &w.cudart_whl);
    match package(&req).unwrap_err() {
        PackageError::Closure { missing } => {
            assert!(missing.contains(&("libcudart.so.13".into(), "libcublas.so.13".into())));
            assert!(missing.contains(&("libcudart.so.13".into(), "libvendor_cuda.so".into())));
        }
        e => panic!("{e}"),
    }
}

#[test]
fn nvidia_libraries_must_match_nvidias_release() {
    let w = world();
    // A wheel whose RECORD does not match its library: modified.
    let bad = wheel(
        &w.root.join("wheels"),
        "nvidia_cuda_runtime-13.0.97-py3-none-manylinux_2_17_x86_64.whl",
        &[&w.cudart],
        true,
    );
    let mut req = request(&w, "out");
    req.inputs = vec![w.build.clone(), bad, w.cublas_whl.clone()];
    let err = package(&req).unwrap_err();
    assert!(matches!(err, PackageError::NvidiaModified { .. }), "{err}");
    // An NVIDIA library from a directory with no official copy among the inputs.
    let loose = w.root.join("loose");
    std::fs::create_dir_all(&loose).unwrap();
    std::fs::copy(&w.cudart, loose.join("libcudart.so.13")).unwrap();
    let mut req = request(&w, "out2");
    req.inputs = vec![w.build.clone(), loose.clone(), w.cublas_whl.clone()];
    let err = package(&req).unwrap_err();
    assert!(
        matches!(err, PackageError::NvidiaUnverified { ref name, .. } if name == "libcudart.so.13"),
        "{err}"
    );
    // The same file next to its wheel is fine: the wheel's copy is packaged.
    let mut req = request(&w, "out3");
    req.inputs.push(loose);
    let r = package(&req).unwrap();
    let l = r
        .libraries
        .iter()
        .find(|l| l.name == "libcudart.so.13")
        .unwrap();
    assert!(l.source.ends_with(".whl"));
}

#[test]
fn signed_manifest_and_mirror() {
    let w = world();
    let mut req = request(&w, "out");
    let key = gpulibs_plan::SecretKey::from_seed([7; 32], [1, 2, 3, 4, 5, 6, 7, 8]);
    let public = key.public_key();
    req.sign_key = Some(key);
    req.base_url = "https://downloads.example.com/testapp/2.0.0/".into();
    let r = package(&req).unwrap();
    let text = std::fs::read(&r.manifest).unwrap();
    let sig = std::fs::read_to_string(r.signature.as_ref().unwrap()).unwrap();
    gpulibs_plan::verify_manifest(&text, &sig, &public).unwrap();

    // Mirror a package whose archive URLs are relative (served next to the manifest).
    let mut req = request(&w, "rel");
    req.base_url = String::new();
    let r = package(&req).unwrap();
    let dest = w.root.join("mirror");
    let m = mirror(r.manifest.to_str().unwrap(), &dest).unwrap();
    assert_eq!(m.artifacts.len(), r.components.len());
    assert!(m.artifacts.iter().all(|a| a.2), "all copied");
    for c in &r.components {
        let name = c.archive.file_name().unwrap();
        assert_eq!(
            std::fs::read(dest.join(name)).unwrap(),
            std::fs::read(&c.archive).unwrap()
        );
    }
    assert_eq!(
        std::fs::read(dest.join("manifest.toml")).unwrap(),
        std::fs::read(&r.manifest).unwrap()
    );
    // Again: nothing to copy.
    let m = mirror(dest.to_str().unwrap(), &w.root.join("mirror")).unwrap();
    assert!(m.artifacts.iter().all(|a| !a.2));
    // A damaged source archive is refused and not kept.
    let victim = &r.components[0].archive;
    let mut bytes = std::fs::read(victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(victim, bytes).unwrap();
    let dest2 = w.root.join("mirror2");
    let err = mirror(r.manifest.to_str().unwrap(), &dest2).unwrap_err();
    assert!(matches!(err, PackageError::MirrorDigest { .. }), "{err}");
    assert!(!dest2.join(victim.file_name().unwrap()).exists());
    assert!(!dest2.join("manifest.toml").exists());
}

#[test]
fn output_directory_must_be_empty() {
    let w = world();
    let req = request(&w, "out");
    std::fs::create_dir_all(&req.out).unwrap();
    std::fs::write(req.out.join("old"), "x").unwrap();
    assert!(matches!(
        package(&req).unwrap_err(),
        PackageError::OutNotEmpty { .. }
    ));
}

#[test]
fn libraries_declared_as_system_become_needs_of_the_component() {
    let w = world();
    // A CUDA library of the vendor that links cuBLAS and loads cuDNN by name (as ONNX Runtime
    // 1.31's provider does), packaged for users who already have CUDA 13 and cuDNN.
    let other = w.root.join("system");
    std::fs::create_dir_all(&other).unwrap();
    let sys_cublas = cc_so(
        &other,
        "libcublasLt.so.13",
        Some("libcublasLt.so.13"),
        "int lt(void){return 0;}\n",
        &[],
    );
    let only = w.root.join("only");
    std::fs::create_dir_all(&only).unwrap();
    let sm86 = container(&[Entry::sass(86)]);
    cc_so(
        &only,
        "libprovider.so",
        None,
        &format!(
            "{}const char *cudnn_name = \"libcudnn.so.9\";\nint p(void){{return cudnn_name[0];}}\n",
            fatbin_source(&sm86)
        ),
        &[&sys_cublas],
    );
    let mut req = PackageRequest::new(
        "testapp",
        "1.0.0",
        vec![only.clone()],
        w.root.join("out-sys"),
    );
    req.zstd = ZstdSettings {
        level: 3,
        window_log: 20,
        long_distance_matching: false,
        workers: 0,
    };
    req.cuda = Some(gpulibs_detect::CudaVersion::new(13, 0));
    // Undeclared, the DT_NEEDED library breaks the closure.
    assert!(matches!(package(&req), Err(PackageError::Closure { .. })));
    req.out = w.root.join("out-sys2");
    req.system_libraries.push("libcublasLt.so.13".into());
    req.system_libraries.push("libcudnn.so.9".into());
    let report = package(&req).unwrap();
    let manifest =
        gpulibs_plan::parse_manifest(&std::fs::read_to_string(&report.manifest).unwrap()).unwrap();
    let needs = &manifest.components[0].needs;
    assert!(
        needs.contains(&"libcublasLt.so.13".to_string()),
        "{needs:?}"
    );
    // The run-time name is a need only because it was declared.
    assert!(needs.contains(&"libcudnn.so.9".to_string()), "{needs:?}");
    assert!(
        !report.warnings.iter().any(|w| w.library == "libcudnn.so.9"),
        "{:?}",
        report.warnings
    );
}

fn fast(mut req: PackageRequest) -> PackageRequest {
    req.zstd = ZstdSettings {
        level: 3,
        window_log: 20,
        long_distance_matching: false,
        workers: 0,
    };
    req
}

/// An ONNX Runtime build directory as the CPU wheel holds it: `libonnxruntime.so.1.31.1`
/// (SONAME `libonnxruntime.so.1`), naming providers it may load, and the shared provider.
fn ort_cpu_build(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    cc_so(
        dir,
        "libonnxruntime.so.1.31.1",
        Some("libonnxruntime.so.1"),
        "const char *eps[] = {\"libonnxruntime_providers_cuda.so\", \
         \"libonnxruntime_providers_tensorrt.so\"};\nint ort(void){return eps[0][0];}\n",
        &[],
    );
    cc_so(
        dir,
        "libonnxruntime_providers_shared.so",
        None,
        "int shared(void){return 0;}\n",
        &[],
    );
}

#[test]
fn cpu_only_inputs_give_a_cpu_variant_at_the_onnxruntime_version() {
    let tmp = tempfile::tempdir().unwrap();
    let build = tmp.path().join("capi");
    ort_cpu_build(&build);
    let req = fast(PackageRequest::new(
        "testapp",
        "2.0.0",
        vec![build],
        tmp.path().join("out"),
    ));
    let report = package(&req).unwrap();
    let manifest =
        gpulibs_plan::parse_manifest(&std::fs::read_to_string(&report.manifest).unwrap()).unwrap();
    let variants: Vec<(&str, gpulibs_plan::VariantDevice)> = manifest
        .variants
        .iter()
        .map(|v| (v.name.as_str(), v.device))
        .collect();
    assert_eq!(variants, [("cpu", gpulibs_plan::VariantDevice::Cpu)]);
    let c = &manifest.components[0];
    assert_eq!(
        (c.id.as_str(), c.version.as_str()),
        ("onnxruntime", "1.31.1")
    );
    assert_eq!(c.archive.url, "onnxruntime-1.31.1.tar.zst");
    assert!(c.coverage.is_none() && c.cuda.is_none(), "{c:?}");
    // The release keeps its own version.
    assert_eq!(manifest.version, "2.0.0");
    // The planner installs it on a machine without a GPU.
    let host = gpulibs_plan::Host::synthetic(&[], None, None);
    let plan = gpulibs_plan::plan(
        &host,
        &manifest,
        &gpulibs_plan::SystemInventory::default(),
        &gpulibs_plan::Policy {
            allow_unsigned: true,
            ..Default::default()
        },
    );
    assert!(!plan.is_refused(), "{:?}", plan.lines());
    // An explicit component version still wins.
    let mut req2 = req.clone();
    req2.out = tmp.path().join("out2");
    req2.component_version = Some("1.31.1+vendor1".into());
    let m2 = package(&req2).unwrap();
    let text = std::fs::read_to_string(&m2.manifest).unwrap();
    assert!(text.contains("version = \"1.31.1+vendor1\""), "{text}");
}

#[test]
fn a_gpu_variant_no_gpu_can_run_is_refused_and_no_manifest_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let build = tmp.path().join("build");
    ort_cpu_build(&build);
    // A CUDA provider built without kernels: a GPU build the planner can place on no GPU.
    cc_so(
        &build,
        "libonnxruntime_providers_cuda.so",
        None,
        "int cuda_ep(void){return 1;}\n",
        &[],
    );
    let out = tmp.path().join("out");
    let req = fast(PackageRequest::new(
        "testapp",
        "2.0.0",
        vec![build],
        out.clone(),
    ));
    let err = package(&req).unwrap_err();
    match &err {
        PackageError::NeverInstallable { variants } => {
            assert_eq!(variants.len(), 1, "{variants:?}");
            assert_eq!(variants[0].0, "cuda");
            assert!(variants[0].1.contains("kernel coverage"), "{variants:?}");
        }
        other => panic!("expected NeverInstallable, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("variant `cuda`"), "{msg}");
    let hint = gpulibs_hint::Hint::hint(&err).expect("a step");
    assert!(hint.contains("CPU-only"), "{hint}");
    assert!(!out.join("manifest.toml").exists());
    assert!(!out.join("package-report.json").exists());
}

#[test]
fn runtime_warnings_are_grouped_by_what_the_vendor_must_do() {
    let w = world();
    // A library of the vendor that may load cuDNN (packaged nowhere), cuFFT as an absolute
    // path, the CUDA 12 runtime (13 is packaged) and two optional ONNX Runtime providers.
    cc_so(
        &w.build,
        "libvendor_loader.so",
        None,
        "const char *n[] = {\"libcudnn.so.9\", \"/opt/x/libcufft.so.12\", \"libcudart.so.12\", \
         \"libonnxruntime_providers_tensorrt.so\", \"libonnxruntime_providers_openvino.so\"};\n\
         int l(void){return n[0][0];}\n",
        &[],
    );
    let r = package(&request(&w, "out")).unwrap();
    let names = |ws: &[gpulibs_package::RuntimeWarning]| {
        ws.iter().map(|w| w.library.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(&r.warnings.must_act),
        ["/opt/x/libcufft.so.12", "libcudnn.so.9"]
    );
    assert_eq!(
        names(&r.warnings.information),
        [
            "libcudart.so.12",
            "libonnxruntime_providers_openvino.so",
            "libonnxruntime_providers_tensorrt.so"
        ]
    );
    let cudnn = &r.warnings.must_act[1];
    assert_eq!(cudnn.loaded_by, ["libvendor_loader.so"]);
    assert!(
        cudnn.message.contains("--system libcudnn.so.9"),
        "{}",
        cudnn.message
    );
    // The report on disk holds the same groups.
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(w.root.join("out/package-report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["warnings"]["must_act"][1]["library"], "libcudnn.so.9");
    assert_eq!(json["warnings"]["must_act"][1]["action"], "must_act");
    assert_eq!(json["warnings"]["information"].as_array().unwrap().len(), 3);
}
