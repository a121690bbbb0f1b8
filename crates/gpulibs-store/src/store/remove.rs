//! Removing a root: only the entries gpulibs made, components only when no other root uses
//! them, the seed receipt only when unchanged.

use super::{hex, remove_any, remove_dir_if_empty, InstallLock, LOCK};
use crate::error::{io_err, Result};
use crate::owner::{RootEntry, ROOT_MARKER};
use crate::shared::DiskUsage;
use crate::{fsx, owner, shared};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// What [`InstallLock::remove`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RemoveReport {
    pub root: PathBuf,
    /// Bytes on disk freed, each file counted once (see [`GcReport::freed_bytes`](crate::GcReport::freed_bytes)).
    pub freed_bytes: u64,
    /// Components of the shared store deleted because no other app uses them.
    pub removed_components: Vec<String>,
    /// Components this root used that stay because another app's generation uses them.
    pub kept_for_others: Vec<String>,
    /// Registered roots that could not be read (no shared component was deleted).
    pub unreadable_roots: Vec<PathBuf>,
    /// Whether the root directory itself is gone (it stays when something gpulibs did not put
    /// there is left in it).
    pub root_removed: bool,
    /// What was left because gpulibs did not put it there.
    pub kept: Vec<PathBuf>,
    /// The seed-compatible receipt, deleted because gpulibs wrote it and it is unchanged.
    pub seed_info_removed: Option<PathBuf>,
    /// The receipt, kept because it changed since gpulibs wrote it.
    pub seed_info_kept: Option<PathBuf>,
}

impl<'s> InstallLock<'s> {
    /// Deletes what gpulibs put in the root, and the seed-compatible receipt if gpulibs wrote it
    /// and it is unchanged since. Only entries gpulibs makes are deleted (its components,
    /// installs, downloads, links, lock, records and their temporaries); anything else is left
    /// where it is and listed in [`RemoveReport::kept`], and the root directory goes only if
    /// it is empty then. Refuses a directory without the marker unless it is laid out exactly
    /// as an earlier gpulibs' root ([`StoreError::NotARoot`](crate::StoreError::NotARoot), nothing deleted).
    ///
    /// The root leaves the store's registry, and the shared store's components that no other
    /// app's generation (nor an install in progress) uses are deleted; those another app uses
    /// stay ([`RemoveReport::kept_for_others`]). A self-contained root's store goes with it
    /// once no other registered root uses it.
    pub fn remove(self) -> Result<RemoveReport> {
        let root = self.store.root.clone();
        owner::claim(&root)?;
        let listing = owner::list_root(&root)?;
        let mut report = RemoveReport {
            root: root.clone(),
            ..RemoveReport::default()
        };
        let mut usage = DiskUsage::default();
        let mine: BTreeSet<String> = self
            .store
            .installs()
            .unwrap_or_default()
            .into_iter()
            .flat_map(|r| r.components.into_iter().map(|c| c.sha256))
            .collect();
        if let Some(marker) = self.seed_marker() {
            match fs::read(&marker.path) {
                Ok(bytes) if hex(&Sha256::digest(&bytes)) == marker.sha256 => {
                    fs::remove_file(&marker.path).map_err(io_err("removing", &marker.path))?;
                    report.seed_info_removed = Some(marker.path);
                }
                Ok(_) => report.seed_info_kept = Some(marker.path),
                Err(_) => {}
            }
        }
        let self_contained = self.store.is_self_contained();
        // The store's own entries, when the store lives in this root: handled after the
        // root's generations are gone, as other roots may use it.
        let store_entry = |name: &str| self_contained && owner::is_store_home_entry(name);
        let not_store: Vec<&owner::Listed> =
            listing.iter().filter(|e| !store_entry(&e.name)).collect();
        remove_own(&root, &not_store, &mut usage, &mut report.kept)?;
        shared::unregister(&self.store.home, &root, &mut usage)?;
        let refs = self
            .store
            .collect_shared(&mut usage, &mut report.removed_components)?;
        report.kept_for_others = mine
            .iter()
            .filter(|sha| refs.used.contains(*sha))
            .cloned()
            .collect();
        report.unreadable_roots = refs.unreadable.clone();
        if self_contained {
            // The store lived here: it goes when no other root uses it and no install is
            // in progress; else it stays, and so does the root directory.
            let others = refs
                .roots
                .iter()
                .any(|r| *r != shared::canonical_root(&root));
            // Listed again: the registry and the store lock were written since.
            let listing = owner::list_root(&root)?;
            let store: Vec<&owner::Listed> =
                listing.iter().filter(|e| store_entry(&e.name)).collect();
            if others || refs.leases > 0 || !refs.unreadable.is_empty() {
                report.kept.extend(store.iter().map(|e| root.join(&e.name)));
            } else {
                remove_own(&root, &store, &mut usage, &mut report.kept)?;
            }
        }
        report.removed_components.sort();
        for last in [ROOT_MARKER, LOCK] {
            usage.add_tree(&root.join(last));
            remove_any(&root.join(last))?;
        }
        report.freed_bytes = usage.freed();
        drop(self);
        report.kept.sort();
        // Another process may have queued on the lock and recreated it; then it stays.
        report.root_removed = report.kept.is_empty() && remove_dir_if_empty(&root)?;
        Ok(report)
    }
}

/// Deletes the listed entries of `root` that gpulibs made, links and files first (a reader
/// then finds nothing active rather than a half-deleted install), then the directories' own
/// entries; the marker and the lock are left for last, to the caller. What gpulibs did not
/// make is added to `kept`.
pub(super) fn remove_own(
    root: &Path,
    listing: &[&owner::Listed],
    usage: &mut DiskUsage,
    kept: &mut Vec<PathBuf>,
) -> Result<()> {
    let mut order: Vec<&owner::Listed> = listing.to_vec();
    order.sort_by_key(|e| owner::entry_of(e) != Some(RootEntry::Plain));
    for e in order {
        let path = root.join(&e.name);
        match owner::entry_of(e) {
            None => kept.push(path),
            Some(RootEntry::Plain) if e.name == LOCK || e.name == ROOT_MARKER => {}
            Some(RootEntry::Plain) => {
                usage.add_tree(&path);
                remove_any(&path)?;
            }
            Some(dir) => {
                for child in &e.children {
                    let path = path.join(&child.name);
                    if owner::own_child(dir, child) {
                        usage.add_tree(&path);
                        remove_any(&path)?;
                    } else {
                        kept.push(path);
                    }
                }
                remove_dir_if_empty(&path)?;
            }
        }
    }
    Ok(())
}

/// Renames `path` aside, notes its files in `usage`, then deletes it.
pub(super) fn remove_tree_aside(
    path: &Path,
    trash_name: &str,
    usage: &mut DiskUsage,
) -> Result<()> {
    let trash = fsx::parent(path).join(trash_name);
    fs::rename(path, &trash).map_err(io_err("moving aside", path))?;
    usage.add_tree(&trash);
    fs::remove_dir_all(&trash).map_err(io_err("removing", &trash))
}
