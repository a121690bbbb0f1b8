//! The seed-compatible receipt (`$XDG_CONFIG_HOME/<app>/gpu-package-info.json`) and the
//! marker that lets `remove` know whether it is unchanged.

use super::{hex, FaultPoint, InstallLock, SEED_MARKER};
use crate::error::{io_err, Result, StoreError};
use crate::fsx;
use crate::record::{InstallRecord, SeedPackageInfo};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SeedMarker {
    pub(super) path: PathBuf,
    pub(super) sha256: String,
}

impl<'s> InstallLock<'s> {
    /// Writes the seed-compatible receipt for the active install to `path`
    /// (`$XDG_CONFIG_HOME/<app>/gpu-package-info.json`, see [`seed_info_path`](crate::seed_info_path)) and remembers
    /// it, so activation and rollback keep it current and `remove` deletes it.
    pub fn write_seed_info(&self, path: &Path) -> Result<()> {
        let record = self
            .store
            .current()?
            .ok_or_else(|| StoreError::NothingInstalled {
                root: self.store.root.clone(),
            })?;
        self.write_seed_file(path, &record)
    }

    pub(super) fn write_seed_file(&self, path: &Path, record: &InstallRecord) -> Result<()> {
        let libs = self.store.current_link().join("lib");
        let info = SeedPackageInfo::from_record(record, &libs.to_string_lossy());
        let json = serde_json::to_vec_pretty(&info).expect("plain structs serialize");
        let dir = fsx::parent(path);
        fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        fsx::write_atomic(path, &json)?;
        let marker = SeedMarker {
            path: path.to_path_buf(),
            sha256: hex(&Sha256::digest(&json)),
        };
        let marker = serde_json::to_vec_pretty(&marker).expect("plain structs serialize");
        fsx::write_atomic(&self.store.root.join(SEED_MARKER), &marker)?;
        self.store.step(FaultPoint::SeedInfoWritten)
    }

    pub(super) fn seed_marker(&self) -> Option<SeedMarker> {
        let bytes = fs::read(self.store.root.join(SEED_MARKER)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub(super) fn refresh_seed_info(&self, record: &InstallRecord) -> Result<()> {
        match self.seed_marker() {
            Some(marker) => self.write_seed_file(&marker.path, record),
            None => Ok(()),
        }
    }
}
