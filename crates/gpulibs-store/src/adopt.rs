//! Adopting the seed's flat `gpu-libs` directory. The seed's installer copied its libraries
//! straight into `$XDG_DATA_HOME/<app>/gpu-libs`; when the user asks gpulibs to manage that
//! app's GPU libraries (`--app NAME`), gpulibs takes the directory over without losing
//! anything and without writing outside it: the libraries are moved (renamed, same file
//! system) into a generation `installs/seed-<time>/lib`, recorded as adopted (not verified),
//! and made current, so the view keeps every name where the app looked for it and `rollback`
//! returns to them after an update.
//!
//! A directory holding anything but shared libraries (`thesis.txt`, `photos/`) is still
//! refused, with the usual message. An adoption interrupted after the marker was written is
//! finished by the next [`Store::open_adopting_seed`].

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{io_err, Result, StoreError};
use crate::fsx;
use crate::owner::{self, Kind, Listed, Ownership};
use crate::record::{
    compact_utc, now_secs, rfc3339_utc, ComponentRecord, InstallRecord, VerificationRecord,
    VerificationState, RECORD_SCHEMA_VERSION,
};
use crate::store::Store;
use crate::view;

/// The component id an adopted generation records.
pub const SEED_COMPONENT: &str = "seed-gpu-libs";
/// The marker's `origin` for a root adopted from the seed's flat directory.
pub const SEED_ORIGIN: &str = "adopted-seed";

/// What [`Store::open_adopting_seed`] took over.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Adopted {
    /// The generation holding the seed's libraries: `seed-20261204T120000Z`.
    pub id: String,
    /// Its `lib/`.
    pub lib: PathBuf,
    /// The names moved there, sorted.
    pub files: Vec<String>,
}

/// The names of a root listing when it is the seed's flat directory (pure): no marker, and
/// every entry a file or link directly in it with a shared library's name. `None` otherwise.
pub(crate) fn seed_flat(listing: &[Listed]) -> Option<Vec<String>> {
    if listing.is_empty() {
        return None;
    }
    let Ownership::Foreign { strangers } = owner::ownership(listing) else {
        return None;
    };
    let flat = strangers.iter().all(|s| {
        !s.contains('/')
            && view::is_view_name(s)
            && listing
                .iter()
                .any(|e| &e.name == s && matches!(e.kind, Kind::File | Kind::Symlink))
    });
    flat.then_some(strangers)
}

impl Store {
    /// [`Store::open`], except that the seed's flat `gpu-libs` directory (only shared
    /// libraries, no marker) is adopted rather than refused: its libraries are moved into a
    /// new generation `installs/seed-<time>/lib`, recorded as adopted and not verified, and
    /// made current (see `adopt.rs`). For a root named by `--app` only: a directory someone
    /// set `GPULIBS_HOME` to may be a system library directory, and stays refused. Returns
    /// what was adopted, if anything (also when finishing an adoption an earlier run began).
    /// `home` is the component store's home, as for [`Store::open_in`].
    pub fn open_adopting_seed(
        root: impl Into<PathBuf>,
        home: impl Into<PathBuf>,
    ) -> Result<(Self, Option<Adopted>)> {
        let root = root.into();
        let home = home.into();
        match Self::open_in(&root, &home) {
            Ok(store) => {
                let finished = store.finish_seed_adoption()?;
                Ok((store, finished))
            }
            Err(StoreError::NotARoot { .. }) if root.is_dir() => {
                let listing = owner::list_root(&root)?;
                let Some(files) = seed_flat(&listing) else {
                    return Err(Self::open_in(&root, &home).expect_err("refused a moment ago"));
                };
                let store = Self::existing(&root).with_store_home(&home);
                let adopted = store.adopt_seed(files)?;
                Ok((store, Some(adopted)))
            }
            Err(e) => Err(e),
        }
    }

    fn adopt_seed(&self, files: Vec<String>) -> Result<Adopted> {
        let root = self.root().to_path_buf();
        let installs = root.join("installs");
        fs::create_dir_all(&installs).map_err(io_err("creating", &installs))?;
        let lock = self.try_lock()?;
        let now = now_secs();
        let mut id = format!("seed-{}", compact_utc(now));
        let mut n = 2;
        while self.install_dir(&id).exists() {
            id = format!("seed-{}-{n}", compact_utc(now));
            n += 1;
        }
        let dir = self.install_dir(&id);
        let lib = dir.join("lib");
        fs::create_dir_all(&lib).map_err(io_err("creating", &lib))?;
        let ort = if files.iter().any(|f| f == view::ORT_UNVERSIONED) {
            view::ORT_UNVERSIONED.to_string()
        } else {
            files
                .iter()
                .find(|f| f.starts_with("libonnxruntime.so"))
                .cloned()
                .unwrap_or_else(|| view::ORT_UNVERSIONED.to_string())
        };
        let record = InstallRecord {
            schema_version: RECORD_SCHEMA_VERSION,
            id: id.clone(),
            app: root
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            variant: "seed".into(),
            release: None,
            components: vec![ComponentRecord {
                id: SEED_COMPONENT.into(),
                version: "adopted".into(),
                sha256: String::new(),
                source: root.display().to_string(),
                files: files.clone(),
            }],
            coverage: Vec::new(),
            gpu: None,
            driver: None,
            requires_driver_cuda: None,
            installed_at: rfc3339_utc(now),
            ort_library: format!("lib/{ort}"),
            system_libraries: Vec::new(),
            reused_links: Vec::new(),
            verification: Some(VerificationRecord::now(
                VerificationState::Skipped,
                "adopted from the seed's flat gpu-libs directory as it was; not verified by \
                 gpulibs",
                Vec::new(),
            )),
        };
        let json = serde_json::to_vec_pretty(&record).expect("plain structs serialize");
        fsx::write_atomic(&dir.join("install.json"), &json)?;
        fsx::sync_dir(&root.join("installs"))?;
        // From here the root is gpulibs' own; an interruption is finished by the next open.
        owner::write_marker(&root, SEED_ORIGIN)?;
        self.move_into(&id, &lib, &files)?;
        lock.activate(&id)?;
        Ok(Adopted { id, lib, files })
    }

    fn move_into(&self, id: &str, lib: &Path, files: &[String]) -> Result<()> {
        for name in files {
            let from = self.root().join(name);
            // A view link by now (a finished move followed by activation) is not the seed's.
            if fs::read_link(&from).is_ok_and(|t| view::is_view_link(name, &t)) {
                continue;
            }
            match fs::rename(&from, lib.join(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StoreError::SeedAdoption {
                        path: self.root().to_path_buf(),
                        id: id.to_string(),
                        lib: lib.to_path_buf(),
                        why: format!("moving `{name}` failed: {e}"),
                    })
                }
            }
        }
        fsx::sync_dir(lib)?;
        fsx::sync_dir(self.root())
    }

    /// Finishes an adoption an interrupted run began: the seed's libraries still in the root
    /// are moved into their generation, which is made current if nothing is.
    fn finish_seed_adoption(&self) -> Result<Option<Adopted>> {
        if owner::read_marker(self.root())?.map(|m| m.origin) != Some(SEED_ORIGIN.to_string()) {
            return Ok(None);
        }
        let seeds = self
            .installs()?
            .into_iter()
            .filter(|r| r.components.iter().any(|c| c.id == SEED_COMPONENT));
        for record in seeds {
            let lib = self.install_dir(&record.id).join("lib");
            let files: Vec<String> = record.lib_files().map(str::to_string).collect();
            let pending: Vec<String> = files
                .iter()
                .filter(|n| {
                    let at = self.root().join(n);
                    fs::symlink_metadata(&at).is_ok()
                        && !fs::read_link(&at).is_ok_and(|t| view::is_view_link(n, &t))
                        && fs::symlink_metadata(lib.join(n)).is_err()
                })
                .cloned()
                .collect();
            let inactive = self.current_id()?.is_none();
            if pending.is_empty() && !inactive {
                continue;
            }
            let lock = self.try_lock()?;
            self.move_into(&record.id, &lib, &pending)?;
            if self.current_id()?.is_none() {
                lock.activate(&record.id)?;
            }
            return Ok(Some(Adopted {
                id: record.id,
                lib,
                files,
            }));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str, kind: Kind) -> Listed {
        Listed {
            name: name.into(),
            kind,
            children: vec![],
            link: None,
        }
    }

    #[test]
    fn only_a_directory_of_shared_libraries_is_the_seed_s() {
        let libs = vec![
            e("libcudart.so.12", Kind::File),
            e("libonnxruntime.so", Kind::File),
            e("libcudart.so", Kind::Symlink),
        ];
        type Case = (&'static str, Vec<Listed>, Option<Vec<&'static str>>);
        let cases: Vec<Case> = vec![
            (
                "the seed's libraries",
                libs.clone(),
                Some(vec!["libcudart.so", "libcudart.so.12", "libonnxruntime.so"]),
            ),
            ("empty", vec![], None),
            (
                "a thesis among them",
                {
                    let mut v = libs.clone();
                    v.push(e("thesis.txt", Kind::File));
                    v
                },
                None,
            ),
            (
                "a directory named like a library",
                vec![e("libfoo.so", Kind::Dir)],
                None,
            ),
            (
                "marked: a root already",
                {
                    let mut v = libs.clone();
                    v.push(e(owner::ROOT_MARKER, Kind::File));
                    v
                },
                None,
            ),
        ];
        for (what, listing, want) in cases {
            let want = want.map(|v| v.into_iter().map(String::from).collect::<Vec<_>>());
            assert_eq!(seed_flat(&listing), want, "{what}");
        }
    }
}
