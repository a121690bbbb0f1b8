//! The flat view: the root itself holds, for every library name of the active install, a
//! relative symlink `<root>/<name> -> current/lib/<name>`, plus `<root>/libonnxruntime.so`
//! always. So `LD_LIBRARY_PATH=<root>` and `ORT_DYLIB_PATH=<root>/libonnxruntime.so` (what the
//! seed's consumers use) load the active install, and switching `current` switches every name
//! at once.
//!
//! Activation links the new install's names first (harmless: they resolve through `current`,
//! and a name the old install lacks dangles until the switch), renames `current`, then removes
//! the links whose names the new install lacks. A crash anywhere leaves every link resolving
//! through `current` (always a complete install) or dangling (the loader skips a dangling
//! name); the next lock holder removes the dangling ones and adds any missing ([`sync`]).
//!
//! What to change is a pure function over a plain listing ([`plan`]), tested with a table.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{io_err, Result, StoreError};
use crate::store::is_library_name;

/// The unversioned ONNX Runtime name the seed's consumers look for in the root.
pub const ORT_UNVERSIONED: &str = "libonnxruntime.so";

/// The link text of view name `name`: `current/lib/<name>`.
pub(crate) fn link_text(name: &str) -> PathBuf {
    Path::new("current").join("lib").join(name)
}

/// Whether a bare name can be a view name: a shared library's name, one path component.
pub(crate) fn is_view_name(name: &str) -> bool {
    is_library_name(name)
        && !name.contains('/')
        && !name.chars().any(char::is_control)
        && name != "."
        && name != ".."
}

/// Whether a root entry named `name` that is a symlink with text `text` is one of gpulibs'
/// view links: its text is exactly `current/lib/<same name>`.
pub(crate) fn is_view_link(name: &str, text: &Path) -> bool {
    is_view_name(name) && text == link_text(name)
}

/// One root entry whose name is a library name, as [`plan`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Present {
    pub name: String,
    /// The link text when the entry is a symlink; `None` for anything else.
    pub link: Option<PathBuf>,
}

/// What to change in the root so that its view holds exactly `want`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Names to link (absent now).
    pub create: Vec<String>,
    /// View links whose names are not wanted.
    pub stale: Vec<String>,
    /// Wanted names taken by something that is not a view link (a user's file, a link with
    /// another text): never overwritten.
    pub blocked: Vec<String>,
}

/// The changes that make the view hold `want`, given what is in the root now.
pub(crate) fn plan(present: &[Present], want: &BTreeSet<String>) -> Plan {
    let mut out = Plan::default();
    for name in want {
        match present.iter().find(|p| &p.name == name) {
            None => out.create.push(name.clone()),
            Some(p) if p.link.as_deref().is_some_and(|t| is_view_link(name, t)) => {}
            Some(_) => out.blocked.push(name.clone()),
        }
    }
    for p in present {
        let ours = p.link.as_deref().is_some_and(|t| is_view_link(&p.name, t));
        if ours && !want.contains(&p.name) {
            out.stale.push(p.name.clone());
        }
    }
    out
}

/// The names install `lib` exposes in the view: every library name in it, and the unversioned
/// ONNX Runtime name.
pub(crate) fn wanted(lib: &Path) -> Result<BTreeSet<String>> {
    let mut want = BTreeSet::new();
    for entry in fs::read_dir(lib).map_err(io_err("listing", lib))? {
        let entry = entry.map_err(io_err("listing", lib))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_view_name(&name) {
            want.insert(name);
        }
    }
    want.insert(ORT_UNVERSIONED.to_string());
    Ok(want)
}

/// The root's entries whose names are library names (links not followed).
pub(crate) fn present(root: &Path) -> Result<Vec<Present>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root).map_err(io_err("listing", root))? {
        let entry = entry.map_err(io_err("listing", root))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_view_name(&name) {
            continue;
        }
        let path = entry.path();
        let link = match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                Some(fs::read_link(&path).map_err(io_err("reading link", &path))?)
            }
            Ok(_) => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("inspecting", &path)(e)),
        };
        out.push(Present { name, link });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Makes sure install `lib` has the unversioned ONNX Runtime name: a same-directory link to
/// `ort_file` (its ONNX Runtime library) when the archive did not make one. Installs built by
/// an older gpulibs lack it; the link only adds a name.
pub(crate) fn ensure_unversioned_ort(lib: &Path, ort_file: &str) -> Result<()> {
    let dest = lib.join(ORT_UNVERSIONED);
    if ort_file == ORT_UNVERSIONED || fs::symlink_metadata(&dest).is_ok() {
        return Ok(());
    }
    match std::os::unix::fs::symlink(ort_file, &dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err("creating symlink", &dest)(e)),
    }
}

/// Links every name of `want` that the root lacks (`current/lib/<name>`), then calls `step`
/// once. A wanted name taken by anything else fails with [`StoreError::ViewBlocked`] before any
/// link is made.
pub(crate) fn link_names(
    root: &Path,
    want: &BTreeSet<String>,
    step: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let plan = plan(&present(root)?, want);
    if let Some(name) = plan.blocked.first() {
        return Err(StoreError::ViewBlocked {
            path: root.join(name),
        });
    }
    for name in &plan.create {
        let dest = root.join(name);
        match std::os::unix::fs::symlink(link_text(name), &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("creating symlink", &dest)(e)),
        }
    }
    step()
}

/// Removes the view links whose names `want` lacks; returns their names.
pub(crate) fn prune(root: &Path, want: &BTreeSet<String>) -> Result<Vec<String>> {
    let plan = plan(&present(root)?, want);
    for name in &plan.stale {
        let path = root.join(name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing", &path)(e)),
        }
    }
    Ok(plan.stale)
}

/// The names of the active install (`lib`, its `lib/`) the root's view lacks, each as a
/// problem naming the path and the fix (a root made before the view existed, or one someone
/// edited): the next gpulibs run that takes the install lock adds them.
pub(crate) fn missing(root: &Path, lib: &Path) -> Result<Vec<String>> {
    if !lib.is_dir() {
        return Ok(Vec::new());
    }
    let want = wanted(lib)?;
    let present = present(root)?;
    let plan = plan(&present, &want);
    Ok(plan
        .create
        .iter()
        .map(|name| {
            format!(
                "{}: missing from the root's library view (what `LD_LIBRARY_PATH={}` finds); \
                 `gpulibs gc` or the next `gpulibs install` adds it",
                root.join(name).display(),
                root.display()
            )
        })
        .chain(plan.blocked.iter().map(|name| {
            format!(
                "{}: is not gpulibs' link to `current/lib/{name}`, so `LD_LIBRARY_PATH={}` finds \
                 something else under that name; move it out of the root",
                root.join(name).display(),
                root.display()
            )
        }))
        .collect())
}

/// Brings the view in line with the install `current` names (`lib` is its `lib/`), as the next
/// lock holder after an interrupted activation does: adds missing names (a root made by a
/// gpulibs before the view existed), removes dangling ones. A name taken by something else is
/// left alone here (activation reports it). Nothing happens when no install is active.
pub(crate) fn repair(root: &Path, lib: Option<&Path>) -> Result<()> {
    let Some(lib) = lib.filter(|l| l.is_dir()) else {
        return Ok(());
    };
    let want = wanted(lib)?;
    let plan = plan(&present(root)?, &want);
    for name in &plan.create {
        let dest = root.join(name);
        match std::os::unix::fs::symlink(link_text(name), &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("creating symlink", &dest)(e)),
        }
    }
    prune(root, &want)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, text: &str) -> Present {
        Present {
            name: name.into(),
            link: Some(PathBuf::from(text)),
        }
    }
    fn file(name: &str) -> Present {
        Present {
            name: name.into(),
            link: None,
        }
    }
    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }
    fn v(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn view_links_are_exactly_current_lib_same_name() {
        let cases = [
            ("libcudart.so.12", "current/lib/libcudart.so.12", true),
            ("libcudart.so.12", "current/lib/libcudart.so.13", false),
            ("libcudart.so.12", "/abs/current/lib/libcudart.so.12", false),
            ("libcudart.so.12", "installs/x/lib/libcudart.so.12", false),
            (
                "libcudart.so.12",
                "current/lib/../lib/libcudart.so.12",
                false,
            ),
            ("notes.txt", "current/lib/notes.txt", false),
            ("libonnxruntime.so", "current/lib/libonnxruntime.so", true),
        ];
        for (name, text, want) in cases {
            assert_eq!(
                is_view_link(name, Path::new(text)),
                want,
                "{name} -> {text}"
            );
        }
    }

    #[test]
    fn plans_links_first_then_prunes_only_its_own() {
        struct Case {
            what: &'static str,
            present: Vec<Present>,
            want: BTreeSet<String>,
            plan: Plan,
        }
        let cases = [
            Case {
                what: "empty root: link everything",
                present: vec![],
                want: set(&["libonnxruntime.so", "libcudart.so.12"]),
                plan: Plan {
                    create: v(&["libcudart.so.12", "libonnxruntime.so"]),
                    ..Plan::default()
                },
            },
            Case {
                what: "update: new names linked, old-only names stale",
                present: vec![
                    link("libcudnn.so.9", "current/lib/libcudnn.so.9"),
                    link("libonnxruntime.so", "current/lib/libonnxruntime.so"),
                ],
                want: set(&["libonnxruntime.so", "libcudart.so.13"]),
                plan: Plan {
                    create: v(&["libcudart.so.13"]),
                    stale: v(&["libcudnn.so.9"]),
                    ..Plan::default()
                },
            },
            Case {
                what: "a user's file or foreign link with a wanted name is blocked, never stale",
                present: vec![
                    file("libcudart.so.12"),
                    link("libfoo.so", "/usr/lib/libfoo.so"),
                    link("libbar.so", "/usr/lib/libbar.so"),
                ],
                want: set(&["libcudart.so.12", "libfoo.so"]),
                plan: Plan {
                    blocked: v(&["libcudart.so.12", "libfoo.so"]),
                    ..Plan::default()
                },
            },
            Case {
                what: "already in line: nothing to do",
                present: vec![link("libonnxruntime.so", "current/lib/libonnxruntime.so")],
                want: set(&["libonnxruntime.so"]),
                plan: Plan::default(),
            },
        ];
        for c in cases {
            assert_eq!(plan(&c.present, &c.want), c.plan, "{}", c.what);
        }
    }
}
