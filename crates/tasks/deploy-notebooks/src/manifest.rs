//! What the last deploy left in the workspace, kept in the workspace itself
//! (`<workspaceFolder>/.azdo-deploy-manifest.json`, a workspace file), so that a fresh agent
//! with no local state can skip unchanged notebooks.
//!
//! Per deployed object: the content hash (with how it was imported) and the `modified_at` the
//! workspace reported right after the import. A different hash means the source changed; a
//! different `modified_at` means someone edited the object in the workspace since.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest's name inside the target folder.
pub const FILE_NAME: &str = ".azdo-deploy-manifest.json";

const VERSION: u32 = 1;

/// One deployed object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// SHA-256 of the import format and the content, hex.
    pub sha256: String,
    /// The workspace's `modified_at` (ms since the epoch) right after our import.
    pub modified_at: i64,
}

/// The whole manifest: entries by path relative to the target folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// Who wrote it, for people who open the file.
    #[serde(default)]
    pub written_by: String,
    #[serde(default)]
    pub entries: BTreeMap<String, Entry>,
}

impl Manifest {
    pub fn new(entries: BTreeMap<String, Entry>) -> Manifest {
        Manifest {
            version: VERSION,
            written_by: format!(
                "azdo-data-tasks deploynotebooks {}",
                env!("CARGO_PKG_VERSION")
            ),
            entries,
        }
    }

    /// Reads a manifest; `None` (deploy everything) for anything that is not one we can use.
    pub fn parse(bytes: &[u8]) -> Option<Manifest> {
        let manifest: Manifest = serde_json::from_slice(bytes).ok()?;
        (manifest.version == VERSION).then_some(manifest)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // A map of strings and numbers always serialises.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_other_versions() {
        let mut entries = BTreeMap::new();
        entries.insert(
            "a/b".to_owned(),
            Entry {
                sha256: "00ff".into(),
                modified_at: 12,
            },
        );
        let m = Manifest::new(entries);
        assert_eq!(Manifest::parse(&m.to_bytes()), Some(m));
        assert_eq!(Manifest::parse(b"{\"version\":2,\"entries\":{}}"), None);
        assert_eq!(Manifest::parse(b"not json"), None);
    }
}
