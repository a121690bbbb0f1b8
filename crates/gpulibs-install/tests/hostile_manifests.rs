//! Hostile manifests through the install transaction (issue #16, items 3 and 4), as a table:
//! with v1 installed and active, each row installs an update whose manifest breaks a rule (a
//! link or path leaving the root, a bad digest, duplicate ids, absurd sizes, …) or lies about
//! the archive's files (a listed file with another sha256, or missing). Every row fails with
//! the error it names, and afterwards:
//!
//! - nothing changed anywhere under the test's directory (which holds the install root and the
//!   place a link would have escaped to): same paths before and after, so nothing was written
//!   outside the root and nothing was left inside it;
//! - v1 is still the active install, byte for byte.
//!
//! Rows marked `Validation` are refused before the install root is opened; the others after
//! the archive arrived (the per-file checks while unpacking, or when the install is built from
//! a component already in the store).

mod support;

use gpulibs_hint::Hint;
use std::path::{Path, PathBuf};

use gpulibs_install::{install, InstallError, InstallRequest};
use gpulibs_plan::{parse_manifest, plan, Host, Manifest, Policy, SystemInventory};
use gpulibs_sources::{PipError, PipResolver, ResolvedWheel, WheelTarget};
use gpulibs_store::{activate_at, Store};
use gpulibs_testkit::tree;
use support::*;

struct NoPip;
impl PipResolver for NoPip {
    fn resolve(&self, _: &[String], _: &WheelTarget) -> Result<Vec<ResolvedWheel>, PipError> {
        panic!("pip must not be asked");
    }
}

/// The v1 ONNX Runtime library (also in v2: its archive is in the store when v2 installs).
const ORT_FILE: &str = "lib/libonnxruntime.so.1.2.3";
const ORT_BYTES: &[u8] = b"ort one";
/// The v2 library, in a new archive.
const EXTRA_FILE: &str = "lib/libextra.so.2";
const EXTRA_BYTES: &[u8] = b"extra two";

/// What the update's manifest says about one file.
#[derive(Clone)]
struct File {
    path: String,
    sha256: String,
    size: u64,
    links: Vec<String>,
}

/// The update's manifest, as data the rows change before it is written as TOML.
#[derive(Clone)]
struct Release {
    /// `(id, url, sha256, size, files)` of each component; the first is ONNX Runtime.
    components: Vec<(String, String, String, u64, Vec<File>)>,
    /// The `cpu` variant's component ids.
    variant: Vec<String>,
}

impl Release {
    fn toml(&self) -> String {
        let q = |s: &str| format!("{s:?}").replace("\\0", "\\u0000");
        let mut t = "schema_version = 1\napp = \"testapp\"\nversion = \"2.0\"\n\n".to_string();
        for (i, (id, url, sha, size, files)) in self.components.iter().enumerate() {
            let kind = if i == 0 { "onnxruntime" } else { "other" };
            t += &format!(
                "[[components]]\nid = {}\nkind = \"{kind}\"\nversion = \"2.0\"\n\n\
                 [components.archive]\nurl = {}\nsha256 = {}\nsize = {size}\n\
                 unpacked_size = 1048576\nformat = \"tar.zst\"\n\n",
                q(id),
                q(url),
                q(sha)
            );
            for f in files {
                let links: Vec<String> = f.links.iter().map(|l| q(l)).collect();
                t += &format!(
                    "[[components.files]]\npath = {}\nsha256 = {}\nsize = {}\nsoname_links = [{}]\n\n",
                    q(&f.path),
                    q(&f.sha256),
                    f.size,
                    links.join(", ")
                );
            }
        }
        let ids: Vec<String> = self.variant.iter().map(|i| q(i)).collect();
        t += &format!(
            "[[variants]]\nname = \"cpu\"\ndevice = \"cpu\"\ncomponents = [{}]\n",
            ids.join(", ")
        );
        t
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    /// `InstallError::Manifest`, before the root is opened.
    Validation,
    /// The archive's files disagree with the manifest while unpacking.
    Unpack,
    /// The stored component's files disagree with the manifest when the install is built.
    Build,
}

struct Row {
    name: &'static str,
    change: fn(&mut Release, &Ctx),
    stage: Stage,
    /// The error with its causes contains each of these.
    says: fn(&Ctx) -> Vec<String>,
}

struct Ctx {
    /// Where an escaping link or path would land: `<tmp>/escape`, beside the root.
    escape: PathBuf,
    extra_sha256: String,
}

fn ort_file(r: &mut Release) -> &mut File {
    &mut r.components[0].4[0]
}

fn extra_file(r: &mut Release) -> &mut File {
    &mut r.components[1].4[0]
}

fn invalid(what: String) -> Vec<String> {
    vec![
        "the manifest was refused before anything was written; the active install, if any, \
         stays active"
            .into(),
        "caused by: the manifest is invalid".into(),
        what,
    ]
}

fn table() -> Vec<Row> {
    use Stage::*;
    vec![
        Row {
            name: "SONAME link to an absolute path",
            change: |r, c| extra_file(r).links = vec![c.escape.display().to_string()],
            stage: Validation,
            says: |c| {
                invalid(format!(
                    "component `extra`: file `{EXTRA_FILE}` declares the SONAME link `{}`, which \
                     is not a bare file name (it contains `/`)",
                    c.escape.display()
                ))
            },
        },
        Row {
            name: "SONAME link climbing out of the root",
            change: |r, _| extra_file(r).links = vec!["../../../escape".into()],
            stage: Validation,
            says: |_| {
                invalid("the SONAME link `../../../escape`, which is not a bare file name".into())
            },
        },
        Row {
            name: "SONAME link with a slash",
            change: |r, _| extra_file(r).links = vec!["sub/libextra.so".into()],
            stage: Validation,
            says: |_| {
                invalid("the SONAME link `sub/libextra.so`, which is not a bare file name".into())
            },
        },
        Row {
            name: "SONAME link named ..",
            change: |r, _| extra_file(r).links = vec!["..".into()],
            stage: Validation,
            says: |_| invalid("(`.` and `..` name directories)".into()),
        },
        Row {
            name: "file path climbing out",
            change: |r, _| extra_file(r).path = "../x".into(),
            stage: Validation,
            says: |_| {
                invalid(
                    "component `extra`: path `../x` is not a relative path inside the install \
                     root (`..` leaves the install root)"
                        .into(),
                )
            },
        },
        Row {
            name: "absolute file path",
            change: |r, _| extra_file(r).path = "/etc/passwd".into(),
            stage: Validation,
            says: |_| {
                invalid(
                    "path `/etc/passwd` is not a relative path inside the install root (absolute)"
                        .into(),
                )
            },
        },
        Row {
            name: "NUL in a file path",
            change: |r, _| extra_file(r).path = "lib/libextra.so\0.2".into(),
            stage: Validation,
            says: |_| invalid("(it contains a control character)".into()),
        },
        Row {
            name: "file sha256 XYZ",
            change: |r, _| extra_file(r).sha256 = "XYZ".into(),
            stage: Validation,
            says: |_| {
                invalid(format!(
                    "component `extra`: files[\"{EXTRA_FILE}\"].sha256 `XYZ` is not a sha256 \
                     digest (64 lowercase hex digits)"
                ))
            },
        },
        Row {
            name: "duplicate component ids",
            change: |r, _| r.components[1].0 = "ort".into(),
            stage: Validation,
            says: |_| invalid("component id `ort` is used 2 times; ids must be unique".into()),
        },
        Row {
            name: "empty component id",
            change: |r, _| {
                r.components[1].0 = String::new();
                r.variant[1] = String::new();
            },
            stage: Validation,
            says: |_| invalid("a component id is empty".into()),
        },
        Row {
            name: "one file listed twice",
            change: |r, _| {
                let mut twice = extra_file(r).clone();
                twice.path = format!("./{}", twice.path.replace('/', "//"));
                r.components[1].4.push(twice);
            },
            stage: Validation,
            says: |_| {
                invalid(format!(
                    "component `extra`: path `{EXTRA_FILE}` is listed 2 times"
                ))
            },
        },
        Row {
            name: "archive size 0",
            change: |r, _| r.components[1].3 = 0,
            stage: Validation,
            says: |_| {
                invalid("component `extra`: archive.size is 0; an archive is never empty".into())
            },
        },
        Row {
            name: "archive size 2^63 - 1",
            change: |r, _| r.components[1].3 = i64::MAX as u64,
            stage: Validation,
            says: |_| {
                invalid(
                    "component `extra`: archive.size is 9223372036854775807 bytes, more than the \
                     1099511627776 bytes (1 TiB) any release may declare"
                        .into(),
                )
            },
        },
        Row {
            name: "a listed file whose sha256 disagrees with the archive",
            change: |r, _| extra_file(r).sha256 = sha256_hex(b"what the vendor meant to ship"),
            stage: Unpack,
            says: |_| {
                vec![
                    "1 of 1 downloads failed; nothing was activated".into(),
                    // The archive is the one the manifest names (its digest matched) and the
                    // unpacker refused it: the fetcher says so and deletes the bytes.
                    "match the manifest's sha256".into(),
                    "but the unpacker refused them (deleted)".into(),
                    format!(
                        "archive entry `{EXTRA_FILE}` has sha256 {}; the manifest lists {} for it",
                        sha256_hex(EXTRA_BYTES),
                        sha256_hex(b"what the vendor meant to ship")
                    ),
                ]
            },
        },
        Row {
            name: "a listed file the archive does not have",
            change: |r, _| {
                let mut gone = extra_file(r).clone();
                gone.path = "lib/libgone.so.1".into();
                r.components[1].4.push(gone);
            },
            stage: Unpack,
            says: |_| {
                vec![
                    // The archive is the one the manifest names (its digest matched) and the
                    // unpacker refused it: the fetcher says so and deletes the bytes.
                    "match the manifest's sha256".into(),
                    "but the unpacker refused them (deleted)".into(),
                    "the manifest lists the file `lib/libgone.so.1`, but the archive has nothing \
                     there; the component is refused"
                        .into(),
                ]
            },
        },
        Row {
            name: "a stored component's file listed with another sha256",
            change: |r, _| ort_file(r).sha256 = sha256_hex(b"another ort"),
            stage: Build,
            says: |_| {
                vec![
                    "building the new install failed; nothing was activated, install".into(),
                    format!(
                        "component ort: `{ORT_FILE}` has sha256 {}; the manifest lists {}",
                        sha256_hex(ORT_BYTES),
                        sha256_hex(b"another ort")
                    ),
                ]
            },
        },
        Row {
            name: "a stored component's file that is not in it",
            change: |r, _| ort_file(r).path = "lib/libonnxruntime.so.9".into(),
            stage: Build,
            says: |_| {
                vec![
                    "component ort: the manifest lists `lib/libonnxruntime.so.9`, but the stored \
                      component has no such file"
                        .into(),
                ]
            },
        },
    ]
}

struct World {
    server: Server,
    tmp: tempfile::TempDir,
    v1: Manifest,
    v2: Release,
    ctx: Ctx,
}

impl World {
    fn new() -> World {
        let server = Server::start();
        let ort = ort_archive(ORT_BYTES);
        let extra = lib_archive("libextra.so.2", EXTRA_BYTES);
        let ort_c = TestComponent::tar("ort", "1.0", server.url("ort-1.tar.zst"), &ort, 1 << 20);
        let extra1 = lib_archive("libextra.so.1", b"x1");
        let extra1_c = TestComponent::tar(
            "extra",
            "1.0",
            server.url("extra-1.tar.zst"),
            &extra1,
            1 << 20,
        );
        server.put("ort-1.tar.zst", ort.clone());
        server.put("extra-1.tar.zst", extra1);
        server.put("extra-2.tar.zst", extra.clone());
        let v1 = parse_manifest(&manifest_toml("1.0", &[ort_c, extra1_c])).unwrap();
        let file = |path: &str, bytes: &[u8]| File {
            path: path.into(),
            sha256: sha256_hex(bytes),
            size: bytes.len() as u64,
            links: vec![],
        };
        let mut extra_file = file(EXTRA_FILE, EXTRA_BYTES);
        extra_file.links = vec!["libextra.so".into()];
        let v2 = Release {
            components: vec![
                (
                    "ort".into(),
                    server.url("ort-1.tar.zst"),
                    sha256_hex(&ort),
                    ort.len() as u64,
                    vec![file(ORT_FILE, ORT_BYTES)],
                ),
                (
                    "extra".into(),
                    server.url("extra-2.tar.zst"),
                    sha256_hex(&extra),
                    extra.len() as u64,
                    vec![extra_file],
                ),
            ],
            variant: vec!["ort".into(), "extra".into()],
        };
        let tmp = tempfile::tempdir().unwrap();
        let ctx = Ctx {
            escape: tmp.path().join("escape"),
            extra_sha256: sha256_hex(&extra),
        };
        World {
            server,
            tmp,
            v1,
            v2,
            ctx,
        }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    fn run(&self, manifest: &Manifest) -> Result<gpulibs_install::InstallReport, InstallError> {
        let plan = plan(
            &Host::synthetic(&[], None, None),
            manifest,
            &SystemInventory::default(),
            &Policy::default(),
        );
        let pip = NoPip;
        let mut req = InstallRequest::new(manifest, &plan, self.root(), "testapp", &pip);
        req.fetch.retry.attempts = 1;
        install(&req, &|_| {})
    }
}

/// The error and its causes, as the CLI prints them.
fn chain(err: &InstallError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(&format!(" / caused by: {s}"));
        source = s.source();
    }
    text
}

fn paths(dir: &Path) -> Vec<String> {
    tree(dir)
        .into_keys()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

fn check_row(row: Row) {
    let name = row.name;
    let w = World::new();
    w.run(&w.v1)
        .unwrap_or_else(|e| panic!("{name}: v1: {}", chain(&e)));
    let v1 = activate_at(&w.root()).unwrap();
    let store = Store::open(w.root()).unwrap();
    let v1_tree = tree(&store.install_dir(&v1.install_id));
    let before = paths(w.tmp.path());

    // The unchanged update is valid (so each row's failure is its change's doing).
    let clean = parse_manifest(&w.v2.toml()).unwrap();
    assert!(
        gpulibs_plan::check_manifest(&clean).is_ok(),
        "{name}: the unchanged update is invalid"
    );

    let mut release = w.v2.clone();
    (row.change)(&mut release, &w.ctx);
    let text = release.toml();
    let manifest = parse_manifest(&text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
    w.server.clear_log();
    let err = match w.run(&manifest) {
        Ok(r) => panic!("{name}: installed: {r:?}"),
        Err(e) => e,
    };
    let message = chain(&err);
    match row.stage {
        Stage::Validation => {
            assert!(
                matches!(err, InstallError::Manifest(_)),
                "{name}: {message}"
            );
            assert!(err.hint().is_some(), "{name}");
            assert!(
                w.server.log().is_empty(),
                "{name}: requests were made: {:?}",
                w.server.log()
            );
        }
        Stage::Unpack => {
            assert!(
                matches!(err, InstallError::Fetch { .. }),
                "{name}: {message}"
            );
            assert!(!store.has_component(&w.ctx.extra_sha256), "{name}");
        }
        Stage::Build => {
            assert!(
                matches!(err, InstallError::Store { .. }),
                "{name}: {message}"
            );
            assert!(err.hint().is_some(), "{name}");
        }
    }
    for want in (row.says)(&w.ctx) {
        assert!(
            message.contains(&want),
            "{name}: {want:?} not in: {message}"
        );
    }
    if row.stage != Stage::Validation {
        assert!(
            message.contains(&format!("install {} stays active", v1.install_id)),
            "{name}: {message}"
        );
    }

    // Nothing escaped, nothing was left, v1 is still current and whole.
    assert!(
        w.ctx.escape.symlink_metadata().is_err(),
        "{name}: {} was made",
        w.ctx.escape.display()
    );
    let mut after = paths(w.tmp.path());
    match row.stage {
        // The new archive was stored before the install was built from it; that is all.
        Stage::Build => {
            after.retain(|p| !p.starts_with(&format!("root/store/{}", w.ctx.extra_sha256)))
        }
        // Bytes the unpacker refused are deleted, not kept for a next run that would replay
        // them: nothing is left at all.
        Stage::Unpack | Stage::Validation => {}
    }
    assert_eq!(
        after, before,
        "{name}: paths changed under the test directory"
    );
    assert_eq!(activate_at(&w.root()).unwrap(), v1, "{name}");
    assert!(
        tree(&store.install_dir(&v1.install_id)) == v1_tree,
        "{name}: the files of install {} changed",
        v1.install_id
    );
}

#[test]
fn hostile_manifests_fail_keeping_v1_and_write_nothing_outside_the_root() {
    gpulibs_testkit::faults::run_rows(
        "install: hostile manifests (crates/gpulibs-install/tests/hostile_manifests.rs)",
        table(),
        |row| row.name.to_string(),
        |row| {
            let words = format!(
                "refused at {:?}; v1 stays current; nothing written outside the root",
                row.stage
            );
            check_row(row);
            words
        },
    );
}

/// A manifest built in memory (a library caller's) with sizes no TOML file can hold is refused
/// as well, before the root is even created.
#[test]
fn sizes_of_u64_max_are_refused_before_the_root_exists() {
    let w = World::new();
    let mut m = parse_manifest(&w.v2.toml()).unwrap();
    m.components[1].archive.size = u64::MAX;
    m.components[1].archive.unpacked_size = Some(u64::MAX);
    m.components[1].files[0].size = u64::MAX;
    let err = w.run(&m).expect_err("u64::MAX sizes");
    let message = chain(&err);
    assert!(matches!(err, InstallError::Manifest(_)), "{message}");
    for field in [
        "archive.size",
        "archive.unpacked_size",
        "files[\"lib/libextra.so.2\"].size",
    ] {
        assert!(
            message.contains(&format!("{field} is 18446744073709551615 bytes")),
            "{field} not in: {message}"
        );
    }
    assert!(!w.root().exists(), "the root was created");
}
