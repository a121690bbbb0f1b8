//! Generations: reading the installs of a root, building a new one (its `lib/` linked from
//! stored components and reused system libraries), atomic activation, rollback, verification
//! records, discarding.

use super::libc_errno;
use super::remove::remove_tree_aside;
use super::{
    check_app_name, hex, is_library_name, valid_id, FaultPoint, InstallLock, Store,
    StoredComponent, COMPONENT_TREE, CURRENT, INSTALLS_DIR, PREVIOUS, RECORD, TMP_PREFIX,
    TRASH_PREFIX,
};
use crate::error::{io_err, Result, StoreError};
use crate::record::{
    compact_utc, now_secs, rfc3339_utc, ComponentRecord, InstallRecord, InstallSpec,
    RECORD_SCHEMA_VERSION,
};
use crate::shared::DiskUsage;
use crate::unpack::{resolve_in_report, EntryKind, UnpackReport};
use crate::{fsx, reuse, unpack, view};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::{fs, io};

impl Store {
    /// `installs/<id>`.
    pub fn install_dir(&self, id: &str) -> PathBuf {
        self.root.join(INSTALLS_DIR).join(id)
    }

    /// `<root>/current`: a stable path to the active install (its `lib/` is what the
    /// seed-compatible receipt names).
    pub fn current_link(&self) -> PathBuf {
        self.root.join(CURRENT)
    }

    pub(super) fn link_id(&self, name: &str) -> Result<Option<String>> {
        let link = self.root.join(name);
        Ok(fsx::read_link_opt(&link)?.and_then(|t| {
            t.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| valid_id(n))
        }))
    }

    /// The id `current` points at, if any.
    pub fn current_id(&self) -> Result<Option<String>> {
        self.link_id(CURRENT)
    }

    /// The id `previous` points at, if any: what `rollback` returns to.
    pub fn previous_id(&self) -> Result<Option<String>> {
        self.link_id(PREVIOUS)
    }

    /// The record of install `id`.
    pub fn install_record(&self, id: &str) -> Result<InstallRecord> {
        let path = self.install_dir(id).join(RECORD);
        let bytes = fs::read(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::NoSuchInstall {
                    id: id.to_string(),
                    path: self.root.join(INSTALLS_DIR),
                }
            } else {
                io_err("reading", &path)(e)
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::BadRecord { path, source })
    }

    /// The active install's record, if one is active. [`StoreError::CurrentGone`] when
    /// `current` names an install directory that no longer exists.
    pub fn current(&self) -> Result<Option<InstallRecord>> {
        match self.current_id()? {
            Some(id) => self.current_record(&id).map(Some),
            None => Ok(None),
        }
    }

    /// The record of `id`, read as the active install: a missing directory is a dangling
    /// `current` link.
    pub(crate) fn current_record(&self, id: &str) -> Result<InstallRecord> {
        match self.install_record(id) {
            Err(StoreError::NoSuchInstall { .. }) if !self.install_dir(id).exists() => {
                Err(StoreError::CurrentGone {
                    link: self.current_link(),
                    target: self.install_dir(id),
                    previous_usable: self.previous_usable(),
                })
            }
            other => other,
        }
    }

    /// Whether `previous` names an install other than the current one whose record is there:
    /// what `rollback` could return to.
    pub fn previous_usable(&self) -> bool {
        match (self.previous_id(), self.current_id()) {
            (Ok(Some(p)), Ok(c)) => {
                c.as_deref() != Some(p.as_str()) && self.install_record(&p).is_ok()
            }
            _ => false,
        }
    }

    /// Every complete install, oldest first.
    pub fn installs(&self) -> Result<Vec<InstallRecord>> {
        let dir = self.root.join(INSTALLS_DIR);
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
            let entry = entry.map_err(io_err("listing", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !valid_id(&name) {
                continue;
            }
            if let Ok(record) = self.install_record(&name) {
                out.push(record);
            }
        }
        out.sort_by(|a, b| a.installed_at.cmp(&b.installed_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Problems with install `id` on disk: missing or unreadable files of its `lib/`, libraries
    /// reused from this machine that are gone, resolve to another file, or changed size or
    /// modification time since the install was built, and (for the active install) names of
    /// its `lib/` missing from the root's view (one `stat` each; nothing outside
    /// the root is read or touched otherwise). Empty when every file named in the record opens
    /// and every reused library is as recorded.
    pub fn check_install(&self, id: &str) -> Result<Vec<String>> {
        let record = self.install_record(id)?;
        let lib = self.install_dir(id).join("lib");
        let mut problems = Vec::new();
        for name in record.lib_files() {
            let path = lib.join(name);
            if let Err(e) = File::open(&path) {
                problems.push(format!("{}: {e}", path.display()));
            }
        }
        let ort = self.install_dir(id).join(&record.ort_library);
        if !ort.is_file() {
            problems.push(format!(
                "{}: the ONNX Runtime library is missing",
                ort.display()
            ));
        }
        problems.extend(record.system_libraries.iter().filter_map(reuse::check));
        let recorded: BTreeSet<&str> = record
            .system_libraries
            .iter()
            .map(|l| l.soname.as_str())
            .collect();
        problems.extend(
            record
                .reused_links
                .iter()
                .filter(|l| !recorded.contains(l.name.as_str()))
                .filter_map(|l| reuse::check_link(&lib, l)),
        );
        if self.current_id()?.as_deref() == Some(id) {
            problems.extend(view::missing(&self.root, &lib)?);
        }
        Ok(problems)
    }
}

impl<'s> InstallLock<'s> {
    /// Builds a new install (a generation) from stored components: `installs/<id>/lib` holds
    /// every shared library of every component, hard-linked from the store, with the
    /// components' SONAME symlinks recreated beside them; `install.json` records it. Not
    /// active until [`activate`](Self::activate).
    pub fn new_install(&self, spec: &InstallSpec) -> Result<InstallRecord> {
        let store = self.store;
        check_app_name(&spec.app)?;
        let mut plan = lib_plan(store, spec)?;
        // The unversioned name the seed's consumers load (`<root>/libonnxruntime.so`), next to
        // a versioned ONNX Runtime (a wheel's `libonnxruntime.so.1.23.2`).
        let ort_owner = plan
            .iter()
            .find(|p| p.name == spec.ort_library)
            .map(|p| p.sha256.clone());
        if let Some(sha256) = ort_owner {
            if !plan.iter().any(|p| p.name == view::ORT_UNVERSIONED) {
                plan.push(LibEntry {
                    name: view::ORT_UNVERSIONED.to_string(),
                    sha256,
                    how: Placement::Symlink(spec.ort_library.clone()),
                });
            }
        }
        // `lib_plan` only makes bare names; a `/` or `..` would write outside `lib/`. Checked
        // before anything is created.
        for p in &plan {
            let target = match &p.how {
                Placement::Symlink(t) => Some(t),
                Placement::File(_) => None,
            };
            for name in std::iter::once(&p.name).chain(target) {
                if let Some(why) = link_name_problem(name) {
                    return Err(StoreError::UnsafeLink {
                        component: p.sha256.clone(),
                        name: name.clone(),
                        why,
                    });
                }
            }
        }
        if !plan.iter().any(|p| p.name == spec.ort_library) {
            return Err(StoreError::NoOrtLibrary {
                name: spec.ort_library.clone(),
            });
        }
        // Read outside the root, before anything is created: a vanished or unreadable
        // library fails the install here, with nothing to clean up.
        let system_libraries = reuse::record_all(&spec.system_libraries)?;
        let taken: BTreeSet<String> = plan.iter().map(|p| p.name.clone()).collect();
        let reused_links = reuse::link_plan(
            &system_libraries,
            &reuse::listings(&system_libraries),
            &taken,
        );
        let now = now_secs();
        let id = self.unique_id(now, spec);
        let installs = store.root.join(INSTALLS_DIR);
        let tmp = installs.join(format!("{TMP_PREFIX}{id}"));
        let lib = tmp.join("lib");
        fs::create_dir_all(&lib).map_err(io_err("creating", &lib))?;
        store.step(FaultPoint::InstallStarted)?;

        let mut files: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for p in &plan {
            let dest = lib.join(&p.name);
            match &p.how {
                Placement::File(src) => link_file(src, &dest, &store.root)?,
                Placement::Symlink(target) => std::os::unix::fs::symlink(target, &dest)
                    .map_err(io_err("creating symlink", &dest))?,
            }
            files
                .entry(p.sha256.as_str())
                .or_default()
                .push(p.name.clone());
            store.step(FaultPoint::FileLinked)?;
        }
        // Reused libraries, by absolute path: `LD_LIBRARY_PATH=<root>` then finds them too.
        for l in &reused_links {
            let dest = lib.join(&l.name);
            std::os::unix::fs::symlink(&l.target, &dest)
                .map_err(io_err("creating symlink", &dest))?;
        }

        let record = InstallRecord {
            schema_version: RECORD_SCHEMA_VERSION,
            id: id.clone(),
            app: spec.app.clone(),
            variant: spec.variant.clone(),
            release: spec.release.clone(),
            components: spec
                .components
                .iter()
                .map(|c| ComponentRecord {
                    id: c.id.clone(),
                    version: c.version.clone(),
                    sha256: c.sha256.clone(),
                    source: c.source.clone(),
                    files: files.remove(c.sha256.as_str()).unwrap_or_default(),
                })
                .collect(),
            coverage: spec.coverage.clone(),
            gpu: spec.gpu.clone(),
            driver: spec.driver.clone(),
            requires_driver_cuda: spec.requires_driver_cuda,
            installed_at: rfc3339_utc(now),
            ort_library: format!("lib/{}", spec.ort_library),
            system_libraries,
            reused_links,
            verification: None,
        };
        let json = serde_json::to_vec_pretty(&record).expect("plain structs serialize");
        fsx::write_atomic(&tmp.join(RECORD), &json)?;
        store.step(FaultPoint::RecordWritten)?;
        fsx::sync_dir(&lib)?;
        let dest = installs.join(&id);
        fs::rename(&tmp, &dest).map_err(io_err("renaming into place", &dest))?;
        fsx::sync_dir(&installs)?;
        store.step(FaultPoint::InstallCommitted)?;
        Ok(record)
    }

    pub(super) fn unique_id(&self, now: u64, spec: &InstallSpec) -> String {
        let mut h = Sha256::new();
        h.update(spec.variant.as_bytes());
        for c in &spec.components {
            h.update(c.sha256.as_bytes());
        }
        for l in &spec.system_libraries {
            h.update(l.soname.as_bytes());
            h.update(l.path.as_os_str().as_encoded_bytes());
        }
        let digest = hex(&h.finalize());
        let variant: String = spec
            .variant
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .take(40)
            .collect();
        let base = format!("{}-{}-{}", compact_utc(now), variant, &digest[..12]);
        let mut id = base.clone();
        let mut n = 2;
        while self.store.install_dir(&id).exists() {
            id = format!("{base}-{n}");
            n += 1;
        }
        id
    }

    /// Makes install `id` the active one: `previous` is pointed at the install that was
    /// current, then `current` at `id`, each by one `rename(2)`. Rewrites the seed-compatible
    /// receipt if one was written before.
    pub fn activate(&self, id: &str) -> Result<InstallRecord> {
        let store = self.store;
        let record = store.install_record(id)?;
        let old = store.current_id()?;
        let want = self.view_names(&record)?;
        if old.as_deref() != Some(id) {
            if let Some(old) = &old {
                self.point(PREVIOUS, old, FaultPoint::PreviousLinkTemp)?;
                store.step(FaultPoint::PreviousSwitched)?;
            }
            self.point(CURRENT, id, FaultPoint::CurrentLinkTemp)?;
            store.step(FaultPoint::CurrentSwitched)?;
        }
        self.prune_view(&want)?;
        self.refresh_seed_info(&record)?;
        Ok(record)
    }

    /// The first half of switching the root's view to `record` (see `view.rs`): its `lib/`
    /// gets the unversioned ONNX Runtime name if it lacks it, and the root a link
    /// `<name> -> current/lib/<name>` for each of its names it lacks. Returns the names.
    pub(super) fn view_names(&self, record: &InstallRecord) -> Result<BTreeSet<String>> {
        let store = self.store;
        let lib = store.install_dir(&record.id).join("lib");
        view::ensure_unversioned_ort(&lib, base(&record.ort_library))?;
        let want = view::wanted(&lib)?;
        view::link_names(&store.root, &want, || store.step(FaultPoint::ViewLinked))?;
        Ok(want)
    }

    /// The second half, after `current` switched: links of names `want` lacks go.
    pub(super) fn prune_view(&self, want: &BTreeSet<String>) -> Result<()> {
        view::prune(&self.store.root, want)?;
        fsx::sync_dir(&self.store.root)?;
        self.store.step(FaultPoint::ViewPruned)
    }

    pub(super) fn point(&self, link: &str, id: &str, between: FaultPoint) -> Result<()> {
        let target = Path::new(INSTALLS_DIR).join(id);
        fsx::replace_symlink(&self.store.root.join(link), &target, || {
            self.store.step(between)
        })
    }

    /// Makes `previous` current again and the current install `previous`, so a second
    /// rollback undoes the first.
    pub fn rollback(&self) -> Result<InstallRecord> {
        let store = self.store;
        let no_previous = || StoreError::NoPrevious {
            root: store.root.clone(),
        };
        let previous = store.previous_id()?.ok_or_else(no_previous)?;
        let current = store.current_id()?;
        if current.as_deref() == Some(previous.as_str()) {
            return Err(no_previous());
        }
        let record = store.install_record(&previous)?;
        let want = self.view_names(&record)?;
        // `current` first: a crash in between leaves both links on the rolled-back-to install,
        // which is consistent; the other order could leave `current` on the old one and
        // `previous` lost.
        self.point(CURRENT, &previous, FaultPoint::CurrentLinkTemp)?;
        store.step(FaultPoint::CurrentSwitched)?;
        if let Some(current) = current {
            self.point(PREVIOUS, &current, FaultPoint::PreviousLinkTemp)?;
            store.step(FaultPoint::PreviousSwitched)?;
        }
        self.prune_view(&want)?;
        self.refresh_seed_info(&record)?;
        Ok(record)
    }

    /// Rewrites install `id`'s `install.json` with `verification` (atomically: a reader sees
    /// the old record or the new one). Returns the new record.
    pub fn record_verification(
        &self,
        id: &str,
        verification: crate::record::VerificationRecord,
    ) -> Result<InstallRecord> {
        let mut record = self.store.install_record(id)?;
        record.verification = Some(verification);
        let json = serde_json::to_vec_pretty(&record).expect("plain structs serialize");
        fsx::write_atomic(&self.store.install_dir(id).join(RECORD), &json)?;
        Ok(record)
    }

    /// Deletes install `id`, one that was built but not activated (a failed verification), so
    /// that only its components stay, in the store, for the next install to reuse. `current`
    /// and `previous` are never deleted: returns `false` for them and for an unknown id.
    pub fn discard_install(&self, id: &str) -> Result<bool> {
        let store = self.store;
        let pinned = [store.current_id()?, store.previous_id()?];
        if !valid_id(id) || pinned.iter().flatten().any(|p| p == id) {
            return Ok(false);
        }
        let dir = store.install_dir(id);
        if !dir.is_dir() {
            return Ok(false);
        }
        remove_tree_aside(
            &dir,
            &format!("{TRASH_PREFIX}{id}"),
            &mut DiskUsage::default(),
        )?;
        Ok(true)
    }
}

/// One name in an install's `lib/`.
pub(super) struct LibEntry {
    name: String,
    sha256: String,
    how: Placement,
}

pub(super) enum Placement {
    /// Hard-link this store file.
    File(PathBuf),
    /// A symlink with this (same-directory) target.
    Symlink(String),
}

/// Which names each component contributes to `lib/`, and how.
pub(super) fn lib_plan(store: &Store, spec: &InstallSpec) -> Result<Vec<LibEntry>> {
    let mut plan: Vec<LibEntry> = Vec::new();
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for c in &spec.components {
        let meta = store.component(&c.sha256)?;
        let report = UnpackReport {
            entries: meta.entries.clone(),
            unpacked_bytes: meta.unpacked_bytes,
        };
        let tree = store.component_dir(&c.sha256).join(COMPONENT_TREE);
        check_declared_files(&c.id, &tree, &meta, &c.files)?;
        // Files first, so links can name them.
        let mut local: BTreeMap<String, String> = BTreeMap::new(); // resolved path -> lib name
        let mut entries: Vec<&unpack::UnpackedEntry> = meta
            .entries
            .iter()
            .filter(|e| e.kind != EntryKind::Dir && is_library_name(base(&e.path)))
            .collect();
        entries.sort_by_key(|e| (e.kind != EntryKind::File, e.path.clone()));
        for e in entries {
            let name = base(&e.path).to_string();
            if let Some(first) = owner.get(&name) {
                return Err(StoreError::NameClash {
                    name,
                    first: first.clone(),
                    second: c.id.clone(),
                });
            }
            let how = match e.kind {
                EntryKind::File => {
                    local.insert(e.path.clone(), name.clone());
                    Placement::File(tree.join(&e.path))
                }
                _ => match resolve_in_report(&report, &e.path) {
                    Some((resolved, EntryKind::File)) => match local.get(&resolved) {
                        Some(target) => Placement::Symlink(target.clone()),
                        // A link to a file that is not itself a library name: install the
                        // file under the link's name.
                        None => Placement::File(tree.join(&resolved)),
                    },
                    // Links to directories or to nothing installable are not libraries.
                    _ => continue,
                },
            };
            owner.insert(name.clone(), c.id.clone());
            plan.push(LibEntry {
                name,
                sha256: c.sha256.clone(),
                how,
            });
        }
        for link in &c.links {
            // Checked again here, where the link is made (the manifest's validation said so
            // first): a link is a bare name in `lib/` to a bare name in `lib/`.
            for name in [&link.name, &link.target] {
                if let Some(why) = link_name_problem(name) {
                    return Err(StoreError::UnsafeLink {
                        component: c.id.clone(),
                        name: name.clone(),
                        why,
                    });
                }
            }
            if !local.values().any(|file| *file == link.target) {
                return Err(StoreError::LinkTarget {
                    component: c.id.clone(),
                    name: link.name.clone(),
                    target: link.target.clone(),
                });
            }
            match owner.get(&link.name) {
                // The archive made it already.
                Some(first) if *first == c.id => continue,
                Some(first) => {
                    return Err(StoreError::NameClash {
                        name: link.name.clone(),
                        first: first.clone(),
                        second: c.id.clone(),
                    })
                }
                None => {}
            }
            owner.insert(link.name.clone(), c.id.clone());
            plan.push(LibEntry {
                name: link.name.clone(),
                sha256: c.sha256.clone(),
                how: Placement::Symlink(link.target.clone()),
            });
        }
    }
    Ok(plan)
}

/// Why `name` is not a bare file name for `lib/`, if it is not.
pub(super) fn link_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty")
    } else if name.contains('/') {
        Some("it contains `/`")
    } else if name == "." || name == ".." {
        Some("`.` and `..` name directories")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else {
        None
    }
}

/// Every file the manifest lists for a component is in its stored tree: a regular file with
/// the listed size and sha256 (the digest recorded when it was unpacked, or computed now for a
/// component stored by an older gpulibs).
pub(super) fn check_declared_files(
    component: &str,
    tree: &Path,
    meta: &StoredComponent,
    files: &[crate::record::DeclaredFile],
) -> Result<()> {
    let key = |p: &str| -> String {
        p.split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect::<Vec<_>>()
            .join("/")
    };
    for f in files {
        let path = key(&f.path);
        let Some(entry) = meta
            .entries
            .iter()
            .find(|e| e.kind == EntryKind::File && e.path == path)
        else {
            return Err(StoreError::ListedFileMissing {
                component: component.to_string(),
                path: f.path.clone(),
            });
        };
        let mismatch = |what, expected: String, actual: String| StoreError::ListedFileMismatch {
            component: component.to_string(),
            path: f.path.clone(),
            what,
            expected,
            actual,
        };
        if entry.size != f.size {
            return Err(mismatch("size", f.size.to_string(), entry.size.to_string()));
        }
        let actual = match &entry.sha256 {
            Some(sha) => sha.clone(),
            None => {
                let file = tree.join(&entry.path);
                let mut hasher = Sha256::new();
                let mut reader = File::open(&file).map_err(io_err("opening", &file))?;
                io::copy(&mut reader, &mut hasher).map_err(io_err("reading", &file))?;
                hex(&hasher.finalize())
            }
        };
        if actual != f.sha256 {
            return Err(mismatch("sha256", f.sha256.clone(), actual));
        }
    }
    Ok(())
}

pub(super) fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Hard-links `src` to `dest`. Hard links keep each install self-contained (`$ORIGIN` is the
/// install's `lib/`, whatever the loader does with symlinks) at no extra space; where the file
/// system refuses them, a relative symlink into the store is the fallback.
pub(super) fn link_file(src: &Path, dest: &Path, root: &Path) -> Result<()> {
    match fs::hard_link(src, dest) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(
                    libc_errno::EXDEV
                        | libc_errno::EPERM
                        | libc_errno::EMLINK
                        | libc_errno::ENOTSUP
                )
            ) =>
        {
            // Relative inside the root (`installs/<id>/lib/x` up to the root); absolute into a
            // shared store elsewhere.
            let target = match src.strip_prefix(root) {
                Ok(rel) => Path::new("../../..").join(rel),
                Err(_) => src.to_path_buf(),
            };
            std::os::unix::fs::symlink(&target, dest).map_err(io_err("creating symlink", dest))
        }
        Err(e) => Err(io_err("hard-linking", dest)(e)),
    }
}
