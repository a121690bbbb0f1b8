//! Leases and garbage collection: what no generation of any registered root and no running
//! install uses is deleted, under the store lock.

use super::components::check_sha256;
use super::remove::remove_tree_aside;
use super::{
    remove_dir_if_empty, valid_id, InstallLock, Store, INSTALLS_DIR, RECORD, TRASH_PREFIX,
};
use crate::error::{io_err, Result};
use crate::record::InstallRecord;
use crate::shared::{DiskUsage, Lease, STORE_DIR};
use crate::{owner, shared};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::{fs, io};

/// What [`InstallLock::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    pub removed_installs: Vec<String>,
    pub removed_components: Vec<String>,
    /// Leftovers of interrupted runs cleaned when the lock was taken.
    pub removed_temporaries: Vec<PathBuf>,
    /// Bytes on disk freed: each file counted once however many hard links it had, and only
    /// when its last link went.
    pub freed_bytes: u64,
    /// The shared store's component directory (`<store home>/store`).
    pub store: PathBuf,
    /// Components no generation of this root uses any more, kept because another app's
    /// generation (or an install in progress) uses them.
    pub kept_for_others: Vec<String>,
    /// Other app roots registered with the store whose generations were respected.
    pub other_roots: Vec<PathBuf>,
    /// Registered roots that could not be read: while there is one, no shared component is
    /// deleted.
    pub unreadable_roots: Vec<PathBuf>,
    /// Registered roots that no longer exist, dropped from the registry.
    pub dropped_roots: Vec<PathBuf>,
}

impl<'s> InstallLock<'s> {
    /// Records that this install is about to link `components` into a new generation, so that
    /// no `gc` or `remove` of any app deletes them from the shared store until the lease is
    /// dropped (after the generation, whose record names them, exists). Taken under the
    /// store lock, like every deletion, so a deletion either saw the lease or finished before
    /// it: then the components are missing and are fetched again.
    pub fn lease(&self, components: &[String]) -> Result<Lease> {
        let _store = self.store.store_lock()?;
        shared::write_lease(&self.store.home, &self.store.root, components)
    }

    /// Removes installs other than `current`, `previous` and the `keep` newest others, then
    /// components no remaining install of any app uses. Never touches anything outside the
    /// root and the store, nor anything in them that is not an install or a component;
    /// refuses a root without the marker ([`StoreError::NotARoot`](crate::StoreError::NotARoot)).
    ///
    /// In the shared store a component is deleted only when no generation of any registered
    /// root and no live lease (an install in progress) uses it, and only while every
    /// registered root could be read; a registered root that no longer exists is dropped from
    /// the registry. A root's own old `store/` (made before the store was shared) is
    /// collected by this root's generations alone.
    pub fn gc(&self, keep: usize) -> Result<GcReport> {
        let store = self.store;
        owner::claim(&store.root)?;
        let mut report = GcReport {
            removed_temporaries: std::mem::take(
                &mut *self.cleaned.lock().unwrap_or_else(|p| p.into_inner()),
            ),
            store: store.home.join(STORE_DIR),
            ..GcReport::default()
        };
        let mut usage = DiskUsage::default();
        let pinned: BTreeSet<String> = [store.current_id()?, store.previous_id()?]
            .into_iter()
            .flatten()
            .collect();
        let mut others: Vec<InstallRecord> = store
            .installs()?
            .into_iter()
            .filter(|r| !pinned.contains(&r.id))
            .collect();
        // Newest first; keep the first `keep`.
        others.reverse();
        let mut kept: BTreeSet<String> = pinned.clone();
        kept.extend(others.iter().take(keep).map(|r| r.id.clone()));

        let installs = store.root.join(INSTALLS_DIR);
        for entry in fs::read_dir(&installs).map_err(io_err("listing", &installs))? {
            let entry = entry.map_err(io_err("listing", &installs))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // An install is a directory gpulibs made with its record in it; anything else
            // under `installs/` is not gpulibs' to delete.
            let is_install = fs::symlink_metadata(entry.path().join(RECORD))
                .is_ok_and(|m| m.file_type().is_file());
            if !valid_id(&name) || kept.contains(&name) || !is_install {
                continue;
            }
            remove_tree_aside(&entry.path(), &format!("{TRASH_PREFIX}{name}"), &mut usage)?;
            report.removed_installs.push(name);
        }

        let mut mine = BTreeSet::new();
        for id in &kept {
            if let Ok(r) = store.install_record(id) {
                mine.extend(r.components.into_iter().map(|c| c.sha256));
            }
        }
        // The root's own old store: only this root's generations link into it, and this
        // root's lock is held.
        if let Some(legacy) = store.legacy_store() {
            report
                .removed_components
                .extend(collect_components(&legacy, &mine, &mut usage)?);
            if legacy.exists() {
                remove_dir_if_empty(&legacy)?;
            }
        }
        let refs = store.collect_shared(&mut usage, &mut report.removed_components)?;
        let root = shared::canonical_root(&store.root);
        report.other_roots = refs.roots.into_iter().filter(|r| *r != root).collect();
        report.unreadable_roots = refs.unreadable;
        report.dropped_roots = refs.dropped;
        report.kept_for_others = refs
            .used
            .iter()
            .filter(|sha| !mine.contains(*sha) && store.home.join(STORE_DIR).join(sha).is_dir())
            .cloned()
            .collect();
        report.freed_bytes = usage.freed();
        report.removed_installs.sort();
        report.removed_components.sort();
        Ok(report)
    }
}

/// Deletes the components in `dir` (directories named by a sha256) that `used` does not
/// name; returns their names.
pub(super) fn collect_components(
    dir: &Path,
    used: &BTreeSet<String>,
    usage: &mut DiskUsage,
) -> Result<Vec<String>> {
    let listing = match fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("listing", dir)(e)),
    };
    let mut removed = Vec::new();
    for entry in listing {
        let entry = entry.map_err(io_err("listing", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if check_sha256(&name).is_err() || used.contains(&name) || !is_dir {
            continue;
        }
        remove_tree_aside(&entry.path(), &format!("{TRASH_PREFIX}{name}"), usage)?;
        removed.push(name);
    }
    Ok(removed)
}

impl Store {
    /// Deletes, under the store lock, every component of the shared store that no registered
    /// root and no live lease uses (nothing while a registered root cannot be read).
    pub(super) fn collect_shared(
        &self,
        usage: &mut DiskUsage,
        removed: &mut Vec<String>,
    ) -> Result<shared::References> {
        let _store = self.store_lock()?;
        self.clean_store_temporaries(false)?;
        let refs = shared::references(&self.home)?;
        if refs.unreadable.is_empty() {
            removed.extend(collect_components(
                &self.home.join(STORE_DIR),
                &refs.used,
                usage,
            )?);
        }
        Ok(refs)
    }
}
