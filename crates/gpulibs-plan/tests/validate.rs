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
