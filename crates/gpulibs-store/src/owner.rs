//! Whose directory the install root is. gpulibs writes a marker (`gpulibs-root.json`) when it
//! creates a root, adopts a directory laid out exactly as an earlier gpulibs laid out its roots
//! (and nothing else), and refuses any other non-empty directory: it never installs into, nor
//! removes from, a directory holding files it did not put there.
//!
//! What counts as gpulibs' own is plain functions over a plain listing ([`Listed`]), tested
//! with tables; reading the listing and writing the marker are the I/O at the edges.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{io_err, Result, StoreError};
use crate::fsx;
use crate::record::{now_secs, rfc3339_utc};
use crate::store::{is_library_name, valid_id};

/// The file that makes a directory a gpulibs install root.
pub const ROOT_MARKER: &str = "gpulibs-root.json";
/// The layout version this gpulibs writes and reads.
pub const ROOT_FORMAT: u32 = 1;

/// What `gpulibs-root.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootMarker {
    /// The layout version (`1`: the one `docs/store.md` describes).
    pub gpulibs_root: u32,
    /// Who wrote the marker: `gpulibs-store <version>`.
    pub created_by: String,
    /// When, RFC 3339 UTC.
    pub created_at: String,
    /// `created` (the directory was new or empty) or `adopted` (a root an earlier gpulibs made,
    /// before roots had a marker).
    pub origin: String,
}

/// The type of a directory entry, as `lstat` sees it (links are not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

/// One directory entry; `children` are listed for the directories whose contents decide
/// whether they are gpulibs' own (`store/`, `installs/`, `downloads/` and their entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub name: String,
    pub kind: Kind,
    pub children: Vec<Listed>,
    /// A symlink's text (read for entries directly under the root, whose view links count as
    /// gpulibs' own only with the exact text `current/lib/<same name>`).
    pub link: Option<PathBuf>,
}

/// What an entry directly under the root is to gpulibs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RootEntry {
    /// `store/`: components.
    Store,
    /// `installs/`: generations.
    Installs,
    /// `downloads/`: partial downloads.
    Downloads,
    /// `roots/`: the registrations of the roots using a store whose home is this root.
    Roots,
    /// `leases/`: components installs in progress are about to link.
    Leases,
    /// `current`, `previous`, `lock`, `seed-info.json`, `measurements.json`, the marker, and
    /// the temporary names gpulibs writes them through.
    Plain,
}

const STORE: &str = "store";
const INSTALLS: &str = "installs";
const DOWNLOADS: &str = "downloads";
const ROOTS: &str = "roots";
const LEASES: &str = "leases";
/// Files gpulibs writes into the root (besides the marker).
const ROOT_FILES: [&str; 5] = [
    "lock",
    "seed-info.json",
    "measurements.json",
    "store.lock",
    "fetch.lock",
];
/// What a component store's home holds; in a self-contained root (the store's home is the
/// root) these are the store's, which other roots may use too.
pub(crate) const STORE_HOME_ENTRIES: [&str; 6] =
    [STORE, DOWNLOADS, ROOTS, LEASES, "store.lock", "fetch.lock"];

/// Whether `name` under a root is one of the component store's entries
/// ([`STORE_HOME_ENTRIES`]).
pub(crate) fn is_store_home_entry(name: &str) -> bool {
    STORE_HOME_ENTRIES.contains(&name)
}
/// Links gpulibs makes in the root.
const ROOT_LINKS: [&str; 2] = ["current", "previous"];

/// Whether `name` is one of the temporary names gpulibs writes root files through: the
/// `current.tmp`/`previous.tmp` links, `<file>.tmp-<pid>` (atomic writes) and
/// `measurements.json.tmp`.
pub(crate) fn is_root_temp(name: &str) -> bool {
    if ROOT_LINKS
        .iter()
        .any(|l| name.strip_suffix(".tmp") == Some(l))
        || name == "measurements.json.tmp"
    {
        return true;
    }
    ["seed-info.json", ROOT_MARKER].iter().any(|f| {
        name.strip_prefix(f)
            .and_then(|rest| rest.strip_prefix(".tmp-"))
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// What `name` (of type `kind`) directly under the root is, if gpulibs makes such an entry.
pub(crate) fn root_entry(name: &str, kind: Kind) -> Option<RootEntry> {
    match (name, kind) {
        (STORE, Kind::Dir) => Some(RootEntry::Store),
        (INSTALLS, Kind::Dir) => Some(RootEntry::Installs),
        (DOWNLOADS, Kind::Dir) => Some(RootEntry::Downloads),
        (ROOTS, Kind::Dir) => Some(RootEntry::Roots),
        (LEASES, Kind::Dir) => Some(RootEntry::Leases),
        (n, Kind::Symlink) if ROOT_LINKS.contains(&n) => Some(RootEntry::Plain),
        (n, Kind::File) if ROOT_FILES.contains(&n) || n == ROOT_MARKER => Some(RootEntry::Plain),
        (n, Kind::File | Kind::Symlink) if is_root_temp(n) => Some(RootEntry::Plain),
        _ => None,
    }
}

/// What a listed entry directly under the root is, if gpulibs makes such an entry: as
/// [`root_entry`], plus the view links (`<name> -> current/lib/<name>`, see `view.rs`).
pub(crate) fn entry_of(e: &Listed) -> Option<RootEntry> {
    match (e.kind, &e.link) {
        (Kind::Symlink, Some(text)) if crate::view::is_view_link(&e.name, text) => {
            Some(RootEntry::Plain)
        }
        _ => root_entry(&e.name, e.kind),
    }
}

fn is_sha256(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_temp_dir(name: &str) -> bool {
    name.starts_with(".tmp-") || name.starts_with(".trash-")
}

/// Whether `entry` of `store/`, `installs/` or `downloads/` is one gpulibs made: a component
/// directory (`<sha256>/` holding `component.json` and `tree/`), an install (`<id>/` holding
/// `install.json` and `lib/`), a temp or trash directory of an interrupted run, or a download
/// (`<sha256>`, `<sha256>.partial`).
pub(crate) fn own_child(parent: RootEntry, entry: &Listed) -> bool {
    let names = || entry.children.iter().map(|c| c.name.as_str());
    match (parent, entry.kind) {
        (RootEntry::Store | RootEntry::Installs, Kind::Dir) if is_temp_dir(&entry.name) => true,
        (RootEntry::Store, Kind::Dir) => {
            is_sha256(&entry.name) && names().all(|n| n == "component.json" || n == "tree")
        }
        (RootEntry::Installs, Kind::Dir) => {
            valid_id(&entry.name)
                && entry
                    .children
                    .iter()
                    .any(|c| c.name == "install.json" && c.kind == Kind::File)
                && names().all(|n| n == "install.json" || n == "lib")
        }
        (RootEntry::Roots, Kind::File) => {
            // `<hex>.json`, or its temporary `<hex>.json.tmp-<pid>`.
            let Some((stem, rest)) = entry.name.split_once(".json") else {
                return false;
            };
            !stem.is_empty()
                && stem.bytes().all(|b| b.is_ascii_hexdigit())
                && (rest.is_empty()
                    || rest.strip_prefix(".tmp-").is_some_and(|pid| {
                        !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
                    }))
        }
        (RootEntry::Leases, Kind::File) => entry.name.strip_suffix(".json").is_some_and(|stem| {
            !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        }),
        (RootEntry::Downloads, Kind::File) => {
            entry.name.len() >= 64
                && entry.name.is_char_boundary(64)
                && is_sha256(&entry.name[..64])
                && (entry.name.len() == 64 || entry.name[64..].starts_with('.'))
        }
        _ => false,
    }
}

/// The entries of a root listing that gpulibs did not make, as paths relative to the root.
pub(crate) fn strangers(listing: &[Listed]) -> Vec<String> {
    let mut out = Vec::new();
    for e in listing {
        match entry_of(e) {
            None => out.push(e.name.clone()),
            Some(RootEntry::Plain) => {}
            Some(dir) => out.extend(
                e.children
                    .iter()
                    .filter(|c| !own_child(dir, c))
                    .map(|c| format!("{}/{}", e.name, c.name)),
            ),
        }
    }
    out.sort();
    out
}

/// Whose a directory is, from its listing and whether it has a marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ownership {
    /// Empty: gpulibs may make it a root.
    Empty,
    /// It has the marker.
    Marked,
    /// No marker, but everything in it is laid out as an earlier gpulibs laid out its roots.
    Adoptable,
    /// Something in it is not gpulibs'.
    Foreign { strangers: Vec<String> },
}

pub(crate) fn ownership(listing: &[Listed]) -> Ownership {
    if listing.is_empty() {
        return Ownership::Empty;
    }
    if listing
        .iter()
        .any(|e| e.name == ROOT_MARKER && e.kind == Kind::File)
    {
        return Ownership::Marked;
    }
    let strangers = strangers(listing);
    if strangers.is_empty() {
        Ownership::Adoptable
    } else {
        Ownership::Foreign { strangers }
    }
}

/// The error for a directory holding `strangers`: names a few of them and the fix, and says
/// when they look like an earlier installer's flat library directory (the seed's `gpu-libs`).
pub(crate) fn not_a_root(path: &Path, strangers: &[String]) -> StoreError {
    const SHOWN: usize = 5;
    let mut named: Vec<String> = strangers
        .iter()
        .take(SHOWN)
        .map(|s| format!("`{s}`"))
        .collect();
    if strangers.len() > SHOWN {
        named.push(format!("{} more", strangers.len() - SHOWN));
    }
    let libraries = strangers
        .iter()
        .all(|s| !s.contains('/') && is_library_name(s));
    let fix = if libraries {
        format!(
            "they are shared libraries, as an earlier installer (the seed's flat `gpu-libs`) \
             left them; `gpulibs install --app NAME` (without GPULIBS_HOME) adopts such a \
             directory into an install it manages, losing nothing (`gpulibs rollback` returns \
             to them); otherwise move them aside (`mv {p} {p}.old`) and run again, or set \
             GPULIBS_HOME to a new or empty directory",
            p = path.display()
        )
    } else {
        "gpulibs installs into and removes from only a directory it made: set GPULIBS_HOME to a \
         new or empty directory (or unset it for the default), or move those files elsewhere"
            .to_string()
    };
    StoreError::NotARoot {
        path: path.to_path_buf(),
        strangers: named.join(", "),
        fix,
    }
}

fn kind_of(meta: &fs::Metadata) -> Kind {
    let t = meta.file_type();
    if t.is_symlink() {
        Kind::Symlink
    } else if t.is_dir() {
        Kind::Dir
    } else if t.is_file() {
        Kind::File
    } else {
        Kind::Other
    }
}

/// Lists `dir` (links not followed), `depth` levels of children for directories
/// (0: names and kinds only).
fn list(dir: &Path, depth: usize) -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("listing", dir))? {
        let entry = entry.map_err(io_err("listing", dir))?;
        let path = entry.path();
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("inspecting", &path)(e)),
        };
        let kind = kind_of(&meta);
        let children = if kind == Kind::Dir && depth > 0 {
            list(&path, depth - 1)?
        } else {
            Vec::new()
        };
        let link = match kind {
            Kind::Symlink => fs::read_link(&path).ok(),
            _ => None,
        };
        out.push(Listed {
            name: entry.file_name().to_string_lossy().into_owned(),
            kind,
            children,
            link,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The root's listing as [`ownership`] and `remove` read it: the root, the entries of
/// `store/`, `installs/` and `downloads/`, and the names inside each of their directories.
pub(crate) fn list_root(root: &Path) -> Result<Vec<Listed>> {
    let mut listing = list(root, 0)?;
    for e in &mut listing {
        if matches!(
            entry_of(e),
            Some(
                RootEntry::Store
                    | RootEntry::Installs
                    | RootEntry::Downloads
                    | RootEntry::Roots
                    | RootEntry::Leases
            )
        ) {
            e.children = list(&root.join(&e.name), 1)?;
        }
    }
    Ok(listing)
}

/// The marker of `root`, if it has one; a marker gpulibs cannot read, or one from a newer
/// layout, is an error (nothing is changed under a root that is not understood).
pub(crate) fn read_marker(root: &Path) -> Result<Option<RootMarker>> {
    let path = root.join(ROOT_MARKER);
    match fs::symlink_metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("inspecting", &path)(e)),
        Ok(m) if !m.file_type().is_file() => {
            return Err(StoreError::BadRootMarker { path, source: None })
        }
        Ok(_) => {}
    }
    let bytes = fs::read(&path).map_err(io_err("reading", &path))?;
    let marker: RootMarker =
        serde_json::from_slice(&bytes).map_err(|e| StoreError::BadRootMarker {
            path: path.clone(),
            source: Some(e),
        })?;
    if marker.gpulibs_root > ROOT_FORMAT {
        return Err(StoreError::NewerRoot {
            path,
            format: marker.gpulibs_root,
        });
    }
    Ok(Some(marker))
}

pub(crate) fn write_marker(root: &Path, origin: &str) -> Result<()> {
    let marker = RootMarker {
        gpulibs_root: ROOT_FORMAT,
        created_by: format!("gpulibs-store {}", env!("CARGO_PKG_VERSION")),
        created_at: rfc3339_utc(now_secs()),
        origin: origin.to_string(),
    };
    let mut json = serde_json::to_vec_pretty(&marker).expect("plain structs serialize");
    json.push(b'\n');
    fsx::write_atomic(&root.join(ROOT_MARKER), &json)
}

/// Makes `root` (an existing directory) gpulibs' own, or refuses: a marked root is taken as it
/// is, an empty directory gets a marker (`created`), a directory laid out exactly as an
/// earlier gpulibs' root gets one too (`adopted`), anything else is [`StoreError::NotARoot`]
/// with nothing written.
pub(crate) fn claim(root: &Path) -> Result<()> {
    if read_marker(root)?.is_some() {
        return Ok(());
    }
    match ownership(&list_root(root)?) {
        Ownership::Marked => Ok(()),
        Ownership::Empty => write_marker(root, "created"),
        Ownership::Adoptable => write_marker(root, "adopted"),
        Ownership::Foreign { strangers } => Err(not_a_root(root, &strangers)),
    }
}

/// Whose `root` is, without writing anything: `None` when it does not exist or is empty (nothing
/// installed), `Some(true)` with a marker, `Some(false)` for an earlier gpulibs' root without
/// one; [`StoreError::NotARoot`] for a directory holding anything else.
pub(crate) fn inspect(root: &Path) -> Result<Option<bool>> {
    match fs::metadata(root) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("inspecting", root)(e)),
        Ok(m) if !m.is_dir() => {
            return Err(not_a_root(
                root,
                &[root
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()],
            ))
        }
        Ok(_) => {}
    }
    if read_marker(root)?.is_some() {
        return Ok(Some(true));
    }
    match ownership(&list_root(root)?) {
        Ownership::Empty => Ok(None),
        Ownership::Marked => Ok(Some(true)),
        Ownership::Adoptable => Ok(Some(false)),
        Ownership::Foreign { strangers } => Err(not_a_root(root, &strangers)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(name: &str, children: Vec<Listed>) -> Listed {
        Listed {
            name: name.into(),
            kind: Kind::Dir,
            children,
            link: None,
        }
    }
    fn f(name: &str) -> Listed {
        Listed {
            name: name.into(),
            kind: Kind::File,
            children: vec![],
            link: None,
        }
    }
    fn l(name: &str) -> Listed {
        Listed {
            name: name.into(),
            kind: Kind::Symlink,
            children: vec![],
            link: None,
        }
    }
    fn lt(name: &str, text: &str) -> Listed {
        Listed {
            name: name.into(),
            kind: Kind::Symlink,
            children: vec![],
            link: Some(PathBuf::from(text)),
        }
    }
    const SHA: &str = "3f2a9c1b0d4e3f2a9c1b0d4e3f2a9c1b0d4e3f2a9c1b0d4e3f2a9c1b0d4e3f2a";

    /// A root as gpulibs 0.x left it: components, two installs, links, lock, receipt marker,
    /// a partial download, leftovers of an interrupted run.
    fn legacy() -> Vec<Listed> {
        vec![
            d(
                "store",
                vec![
                    d(SHA, vec![f("component.json"), d("tree", vec![])]),
                    d(&format!(".tmp-{SHA}-42"), vec![d("tree", vec![])]),
                ],
            ),
            d(
                "installs",
                vec![
                    d(
                        "20250601T120000Z-modern-3f2a9c1b0d4e",
                        vec![f("install.json"), d("lib", vec![])],
                    ),
                    d(".trash-old", vec![]),
                ],
            ),
            d("downloads", vec![f(&format!("{SHA}.partial"))]),
            l("current"),
            l("previous"),
            l("current.tmp"),
            f("lock"),
            f("seed-info.json"),
            f("seed-info.json.tmp-1234"),
            f("measurements.json"),
        ]
    }

    #[test]
    fn whose_directory_it_is() {
        let with = |extra: Listed| {
            let mut v = legacy();
            v.push(extra);
            v
        };
        let in_installs = |extra: Listed| {
            let mut v = legacy();
            v[1].children.push(extra);
            v
        };
        let foreign = |s: &[&str]| Ownership::Foreign {
            strangers: s.iter().map(|s| s.to_string()).collect(),
        };
        let cases: Vec<(&str, Vec<Listed>, Ownership)> = vec![
            ("empty", vec![], Ownership::Empty),
            ("an earlier gpulibs' root", legacy(), Ownership::Adoptable),
            ("marked", with(f(ROOT_MARKER)), Ownership::Marked),
            (
                "marked, with a user's file too: the marker says gpulibs owns it",
                vec![f(ROOT_MARKER), f("notes.txt")],
                Ownership::Marked,
            ),
            (
                "a user's file",
                with(f("thesis.txt")),
                foreign(&["thesis.txt"]),
            ),
            (
                "a home directory that merely holds `installs/`",
                vec![
                    d("installs", vec![d("photos", vec![f("a.jpg")])]),
                    d("Documents", vec![]),
                ],
                foreign(&["Documents", "installs/photos"]),
            ),
            (
                "an install without its record is not gpulibs'",
                in_installs(d("myapp", vec![d("lib", vec![])])),
                foreign(&["installs/myapp"]),
            ),
            (
                "an install with something else in it",
                in_installs(d("v1", vec![f("install.json"), f("README")])),
                foreign(&["installs/v1"]),
            ),
            (
                "`current` as a directory is not gpulibs' link",
                vec![d("current", vec![])],
                foreign(&["current"]),
            ),
            (
                "a self-contained root: the store's registry, leases and locks are gpulibs'",
                {
                    let mut v = legacy();
                    v.push(d(
                        "roots",
                        vec![
                            f("0123456789abcdef0123456789abcdef.json"),
                            f("0123456789abcdef0123456789abcdef.json.tmp-77"),
                        ],
                    ));
                    v.push(d("leases", vec![f("4242-0.json")]));
                    v.push(f("store.lock"));
                    v.push(f("fetch.lock"));
                    v
                },
                Ownership::Adoptable,
            ),
            (
                "other names in roots/ and leases/ are not",
                {
                    let mut v = legacy();
                    v.push(d("roots", vec![f("notes.json"), f("ab.json.tmp-x")]));
                    v.push(d("leases", vec![f("mine.json"), d("1-2.json", vec![])]));
                    v
                },
                foreign(&[
                    "leases/1-2.json",
                    "leases/mine.json",
                    "roots/ab.json.tmp-x",
                    "roots/notes.json",
                ]),
            ),
            (
                "a file in store/ that is no component",
                {
                    let mut v = legacy();
                    v[0].children.push(f("keep.txt"));
                    v
                },
                foreign(&["store/keep.txt"]),
            ),
            (
                "a marker that is a directory does not count",
                vec![d(ROOT_MARKER, vec![])],
                foreign(&[ROOT_MARKER]),
            ),
            (
                "the seed's flat library directory",
                vec![f("libcudart.so.12"), l("libcudart.so")],
                foreign(&["libcudart.so", "libcudart.so.12"]),
            ),
            (
                "the library view: links `current/lib/<same name>` are gpulibs'",
                {
                    let mut v = legacy();
                    v.push(lt("libonnxruntime.so", "current/lib/libonnxruntime.so"));
                    v.push(lt("libcudnn.so.9", "current/lib/libcudnn.so.9"));
                    v
                },
                Ownership::Adoptable,
            ),
            (
                "a library link with any other text is not",
                {
                    let mut v = legacy();
                    v.push(lt("libcudnn.so.9", "current/lib/libcudnn.so.9.1"));
                    v.push(lt("libfoo.so", "/usr/lib/libfoo.so"));
                    v
                },
                foreign(&["libcudnn.so.9", "libfoo.so"]),
            ),
            (
                "only a lock and gpulibs' temp links",
                vec![
                    f("lock"),
                    l("previous.tmp"),
                    f(&format!("{ROOT_MARKER}.tmp-7")),
                ],
                Ownership::Adoptable,
            ),
            (
                "a name that merely contains .tmp",
                vec![f("notes.tmp.txt"), f("seed-info.json.tmp-x")],
                foreign(&["notes.tmp.txt", "seed-info.json.tmp-x"]),
            ),
        ];
        for (what, listing, want) in cases {
            assert_eq!(ownership(&listing), want, "{what}");
        }
    }

    #[test]
    fn the_refusal_names_files_and_the_fix() {
        let many: Vec<String> = (0..8).map(|i| format!("file{i}")).collect();
        let e = not_a_root(Path::new("/home/u"), &many);
        let msg = format!("{e}; {}", gpulibs_hint::Hint::hint(&e).unwrap());
        assert!(
            msg.contains("`/home/u` is not a gpulibs install root"),
            "{msg}"
        );
        assert!(
            msg.contains("`file0`, `file1`, `file2`, `file3`, `file4`, 3 more"),
            "{msg}"
        );
        assert!(
            msg.contains("set GPULIBS_HOME to a new or empty directory"),
            "{msg}"
        );
        let seed = not_a_root(
            Path::new("/h/.local/share/swictation/gpu-libs"),
            &["libcudart.so.12".into(), "libcudnn.so.9".into()],
        );
        let seed = format!("{seed}; {}", gpulibs_hint::Hint::hint(&seed).unwrap());
        assert!(seed.contains("shared libraries"), "{seed}");
        assert!(
            seed.contains(
                "mv /h/.local/share/swictation/gpu-libs /h/.local/share/swictation/gpu-libs.old"
            ),
            "{seed}"
        );
    }
}
