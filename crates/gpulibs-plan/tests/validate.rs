//! Manifest validation: every problem at once, each naming what it is about.

use gpulibs_plan::{
    default_system_libraries, parse_manifest, validate, SystemInventory, SystemLibrary,
    ValidationError,
};

const EXAMPLE: &str = include_str!("../fixtures/example.toml");

fn problems(text: &str) -> Vec<ValidationError> {
    validate(
        &parse_manifest(text).unwrap(),
        &default_system_libraries(),
        &SystemInventory::default(),
    )
}

#[test]
fn the_example_is_valid() {
    assert_eq!(problems(EXAMPLE), vec![]);
}

#[test]
fn each_rule_names_its_subject() {
    let ort_sha = "7d1a54127b222502f5b79b5fb0803061152a44f92b37e23c6527baf665d4da9a";
    let file_sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            EXAMPLE.replacen(ort_sha, &ort_sha.to_uppercase(), 1),
            vec![format!(
                "component `ort-cuda`: archive.sha256 `{}` is not a sha256 digest (64 lowercase hex digits)",
                ort_sha.to_uppercase()
            )],
        ),
        (
            EXAMPLE.replacen(file_sha, &file_sha[..63], 1),
            vec![format!(
                "component `ort-cuda`: files[\"lib/libonnxruntime_providers_cuda.so\"].sha256 `{}` is not a sha256 digest (64 lowercase hex digits)",
                &file_sha[..63]
            )],
        ),
        (
            EXAMPLE.replacen("id = \"cudnn-9\"", "id = \"cuda-12.9\"", 1),
            vec![
                "component id `cuda-12.9` is used 2 times; ids must be unique".into(),
                "variant `cuda12` names component `cudnn-9`, which the manifest does not define".into(),
                "variant `cuda12`: component `ort-cuda` needs `libcudnn.so.9`, which no component of the variant provides, the system library list does not name, and this machine does not have".into(),
            ],
        ),
        (
            EXAMPLE.replacen("name = \"cpu\"", "name = \"cuda12\"", 1),
            vec!["variant name `cuda12` is used 2 times; names must be unique".into()],
        ),
        (
            EXAMPLE.replacen("\"ort-cuda\", \"cuda-12.9\"", "\"ort-cuda\", \"cuda-12.8\"", 1),
            vec![
                "variant `cuda12` names component `cuda-12.8`, which the manifest does not define".into(),
                "variant `cuda12`: component `ort-cuda` needs `libcudart.so.12`, which no component of the variant provides, the system library list does not name, and this machine does not have".into(),
                "variant `cuda12`: component `ort-cuda` needs `libcublas.so.12`, which no component of the variant provides, the system library list does not name, and this machine does not have".into(),
                "variant `cuda12`: component `ort-cuda` needs `libcublasLt.so.12`, which no component of the variant provides, the system library list does not name, and this machine does not have".into(),
            ],
        ),
        (
            EXAMPLE.replacen("path = \"lib/libonnxruntime_providers_shared.so\"", "path = \"../libonnxruntime_providers_shared.so\"", 1),
            vec!["component `ort-cuda`: path `../libonnxruntime_providers_shared.so` is not a relative path inside the install root (`..` leaves the install root)".into()],
        ),
        (
            EXAMPLE.replacen("path = \"lib/libonnxruntime_providers_shared.so\"", "path = \"/usr/lib/libonnxruntime_providers_shared.so\"", 1),
            vec!["component `ort-cuda`: path `/usr/lib/libonnxruntime_providers_shared.so` is not a relative path inside the install root (absolute)".into()],
        ),
        (
            EXAMPLE.replacen("components = [\"ort-cpu\"]", "components = []", 1),
            vec!["variant `cpu` has no components".into()],
        ),
        (
            EXAMPLE.replacen("components = [\"ort-cpu\"]", "components = [\"ort-cpu\", \"cudnn-9\"]", 1),
            vec!["CPU variant `cpu` includes component `cudnn-9`, which carries GPU kernels".into()],
        ),
    ];
    for (text, want) in cases {
        assert_ne!(text, EXAMPLE);
        let got: Vec<String> = problems(&text).iter().map(|p| p.to_string()).collect();
        assert_eq!(got, want);
    }
}

#[test]
fn two_components_writing_one_path() {
    // ort-cpu writes the file the CUDA build writes, through a SONAME link.
    let text = EXAMPLE.replacen(
        "format = \"tar.zst\"\n\n[[variants]]",
        "format = \"tar.zst\"\n\n[[components.files]]\npath = \"lib/libonnxruntime.so.1.23.2-cpu\"\nsha256 = \"b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c\"\nsize = 21000000\nsoname_links = [\"libonnxruntime.so.1\"]\n\n[[variants]]",
        1,
    );
    assert_ne!(text, EXAMPLE);
    // Alternatives (the CPU and the CUDA variant) may write the same path…
    assert_eq!(problems(&text), []);
    // …components installed together may not.
    let text = text.replacen(
        "components = [\"ort-cuda\", \"cuda-12.9\", \"cudnn-9\"]",
        "components = [\"ort-cuda\", \"cuda-12.9\", \"cudnn-9\", \"ort-cpu\"]",
        1,
    );
    assert_eq!(
        problems(&text),
        [ValidationError::PathConflict {
            path: "lib/libonnxruntime.so.1".into(),
            first: "ort-cuda".into(),
            second: "ort-cpu".into()
        }]
    );
    // The same path spelt differently still collides.
    let example_together = EXAMPLE.replacen(
        "components = [\"ort-cuda\", \"cuda-12.9\", \"cudnn-9\"]",
        "components = [\"ort-cuda\", \"cuda-12.9\", \"cudnn-9\", \"ort-cpu\"]",
        1,
    );
    let text = example_together.replacen(
        "format = \"tar.zst\"\n\n[[variants]]",
        "format = \"tar.zst\"\n\n[[components.files]]\npath = \"./lib//libonnxruntime_providers_shared.so\"\nsha256 = \"b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c\"\nsize = 1\n\n[[variants]]",
        1,
    );
    assert!(
        matches!(&problems(&text)[..], [ValidationError::PathConflict { path, .. }] if path == "lib/libonnxruntime_providers_shared.so")
    );
}

#[test]
fn needs_met_by_the_system() {
    let text = EXAMPLE.replacen("\"libc.so.6\"]", "\"libc.so.6\", \"libnccl.so.2\"]", 1);
    let m = parse_manifest(&text).unwrap();
    let found = validate(&m, &default_system_libraries(), &SystemInventory::default());
    assert!(
        matches!(&found[..], [ValidationError::UnmetNeed { variant, component, soname }]
        if variant == "cuda12" && component == "ort-cuda" && soname == "libnccl.so.2")
    );
    let here = SystemInventory {
        libraries: vec![SystemLibrary {
            soname: "libnccl.so.2".into(),
            path: "/usr/lib/libnccl.so.2".into(),
            version: None,
        }],
    };
    assert_eq!(validate(&m, &default_system_libraries(), &here), vec![]);
    let mut list = default_system_libraries();
    list.push("libnccl.so.2".into());
    assert_eq!(validate(&m, &list, &SystemInventory::default()), vec![]);
}

/// Hostile manifests (issue #16, items 3 and 4): each is refused by `load_manifest`, the one
/// reader every user of a manifest calls, with every problem named.
#[test]
fn hostile_manifests_are_refused_where_they_are_read() {
    use gpulibs_plan::{load_manifest, ManifestError, MAX_DECLARED_BYTES};
    let file = "[[components.files]]\npath = \"lib/libonnxruntime.so.1.23.2\"";
    let link = "soname_links = [\"libonnxruntime.so.1\", \"libonnxruntime.so\"]";
    let shared_sha = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "link to an absolute path",
            EXAMPLE.replacen(link, "soname_links = [\"/tmp/gpulibs-escape\"]", 1),
            vec!["component `ort-cuda`: file `lib/libonnxruntime.so.1.23.2` declares the SONAME link `/tmp/gpulibs-escape`, which is not a bare file name (it contains `/`)"],
        ),
        (
            "link climbing out",
            EXAMPLE.replacen(link, "soname_links = [\"../../x\"]", 1),
            vec!["SONAME link `../../x`, which is not a bare file name (it contains `/`)"],
        ),
        (
            "link named ..",
            EXAMPLE.replacen(link, "soname_links = [\"..\"]", 1),
            vec!["SONAME link `..`, which is not a bare file name (`.` and `..` name directories)"],
        ),
        (
            "empty link name",
            EXAMPLE.replacen(link, "soname_links = [\"\"]", 1),
            vec!["SONAME link ``, which is not a bare file name (empty)"],
        ),
        (
            "NUL in a link name",
            EXAMPLE.replacen(link, "soname_links = [\"libx.so\\u0000\"]", 1),
            vec!["which is not a bare file name (it contains a control character)"],
        ),
        (
            "path climbing out",
            EXAMPLE.replacen(file, "[[components.files]]\npath = \"../x\"", 1),
            vec!["component `ort-cuda`: path `../x` is not a relative path inside the install root (`..` leaves the install root)"],
        ),
        (
            "absolute path",
            EXAMPLE.replacen(file, "[[components.files]]\npath = \"/etc/passwd\"", 1),
            vec!["component `ort-cuda`: path `/etc/passwd` is not a relative path inside the install root (absolute)"],
        ),
        (
            "NUL in a path",
            EXAMPLE.replacen(file, "[[components.files]]\npath = \"lib/libx.so\\u0000.1\"", 1),
            vec!["is not a relative path inside the install root (it contains a control character)"],
        ),
        (
            "path naming the root",
            EXAMPLE.replacen(file, "[[components.files]]\npath = \"./.\"", 1),
            vec!["component `ort-cuda`: path `./.` is not a relative path inside the install root (names the install root itself)"],
        ),
        (
            "file sha256 XYZ",
            EXAMPLE.replacen(shared_sha, "XYZ", 1),
            vec!["component `ort-cuda`: files[\"lib/libonnxruntime_providers_shared.so\"].sha256 `XYZ` is not a sha256 digest (64 lowercase hex digits)"],
        ),
        (
            "duplicate component ids",
            EXAMPLE.replacen("id = \"ort-cpu\"", "id = \"ort-cuda\"", 1),
            vec!["component id `ort-cuda` is used 2 times; ids must be unique"],
        ),
        (
            "empty component id",
            EXAMPLE
                .replacen("id = \"ort-cpu\"", "id = \"\"", 1)
                .replacen("components = [\"ort-cpu\"]", "components = [\"\"]", 1),
            vec!["a component id is empty", "variant `cpu`: a component id is empty"],
        ),
        (
            "newline in a variant name",
            EXAMPLE.replacen("name = \"cpu\"", "name = \"cpu\\nrm -rf\"", 1),
            vec!["a variant name `cpu\\nrm -rf` contains a control character"],
        ),
        (
            "one file listed twice",
            EXAMPLE.replacen(
                "path = \"lib/libonnxruntime_providers_shared.so\"",
                "path = \"./lib//libonnxruntime_providers_cuda.so\"",
                1,
            ),
            vec!["component `ort-cuda`: path `lib/libonnxruntime_providers_cuda.so` is listed 2 times; list each file once"],
        ),
        (
            "empty archive",
            EXAMPLE.replacen("size = 7000000", "size = 0", 1),
            vec!["component `ort-cpu`: archive.size is 0; an archive is never empty"],
        ),
        (
            "archive of 8 EiB",
            EXAMPLE.replacen("size = 7000000", "size = 9223372036854775807", 1),
            vec!["component `ort-cpu`: archive.size is 9223372036854775807 bytes, more than the 1099511627776 bytes (1 TiB) any release may declare"],
        ),
        (
            "file of 8 EiB",
            EXAMPLE.replacen("size = 1000000\n", "size = 9223372036854775807\n", 1),
            vec!["component `ort-cuda`: files[\"lib/libonnxruntime_providers_shared.so\"].size is 9223372036854775807 bytes"],
        ),
        (
            "unpacked size below its files",
            EXAMPLE.replacen("unpacked_size = 310000000", "unpacked_size = 3", 1),
            vec!["component `ort-cuda`: archive.unpacked_size is 3 bytes, less than the 310000000 bytes its files add up to"],
        ),
    ];
    assert_eq!(MAX_DECLARED_BYTES, 1 << 40);
    load_manifest(EXAMPLE.as_bytes()).expect("the example loads");
    for (name, text, wants) in cases {
        assert_ne!(text, EXAMPLE, "{name}: the case changed nothing");
        let err = load_manifest(text.as_bytes()).expect_err(name);
        assert!(
            matches!(err, ManifestError::Invalid { .. }),
            "{name}: {err:?}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with("the manifest is invalid"),
            "{name}: {message}"
        );
        for want in wants {
            assert!(message.contains(want), "{name}: {want:?} not in: {message}");
        }
    }
}

/// `coverage.zstd_targets` must name targets of the coverage, with `zstd` in `compression`: a
/// misspelt target would let rule fatbin-zstd pass an entry it should refuse.
#[test]
fn zstd_targets_name_covered_targets() {
    let ptx = "ptx = [{ target = \"compute_90\", isa = \"8.8\" }]";
    assert!(EXAMPLE.contains(ptx));
    let with = |extra: &str| EXAMPLE.replacen(ptx, &format!("{ptx}\n{extra}"), 1);
    assert_eq!(
        problems(&with(
            "compression = [\"lz4\", \"zstd\"]\nzstd_targets = [\"sm_120a\", \"compute_90\"]"
        )),
        vec![]
    );
    let bad = problems(&with(
        "compression = [\"lz4\", \"zstd\"]\nzstd_targets = [\"sm_120\"]",
    ));
    assert_eq!(
        bad.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        [
            "component `ort-cuda`: coverage.zstd_targets names `sm_120`, which is not one of its \
          sass/ptx targets or while `compression` does not list `zstd`; list the targets whose \
          entries are zstd-compressed, as `gpulibs inspect` reports them"
        ]
    );
    // Without zstd in `compression` the list is refused as well.
    let bad = problems(&with(
        "compression = [\"lz4\"]\nzstd_targets = [\"sm_120a\"]",
    ));
    assert!(
        matches!(bad.as_slice(), [ValidationError::BadZstdTarget { .. }]),
        "{bad:?}"
    );
}
