//! Libraries API 2.0: install and uninstall libraries on a cluster, and their status.

use std::fmt;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::client::Call;
use crate::{Error, Workspace};

/// A library as the API describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Library {
    /// A Python wheel at a volume, workspace or DBFS path.
    Whl(String),
    /// A JAR at a volume, workspace or DBFS path.
    Jar(String),
    /// A requirements.txt at a volume or workspace path.
    Requirements(String),
    /// A PyPI package (`name` or `name==version`), optionally from another index.
    Pypi {
        package: String,
        repo: Option<String>,
    },
    /// Maven coordinates `group:artifact:version`, optionally from another repository.
    Maven {
        coordinates: String,
        repo: Option<String>,
        exclusions: Vec<String>,
    },
}

impl Library {
    /// The JSON object the API takes and returns.
    pub fn to_json(&self) -> Value {
        match self {
            Library::Whl(p) => json!({ "whl": p }),
            Library::Jar(p) => json!({ "jar": p }),
            Library::Requirements(p) => json!({ "requirements": p }),
            Library::Pypi { package, repo } => {
                let mut v = json!({ "package": package });
                if let Some(r) = repo {
                    v["repo"] = json!(r);
                }
                json!({ "pypi": v })
            }
            Library::Maven {
                coordinates,
                repo,
                exclusions,
            } => {
                let mut v = json!({ "coordinates": coordinates });
                if let Some(r) = repo {
                    v["repo"] = json!(r);
                }
                if !exclusions.is_empty() {
                    v["exclusions"] = json!(exclusions);
                }
                json!({ "maven": v })
            }
        }
    }

    /// Reads the API's JSON object back (other kinds, e.g. CRAN, are `None`).
    pub fn from_json(value: &Value) -> Option<Library> {
        let text = |p: &str| value.pointer(p).and_then(Value::as_str).map(str::to_owned);
        if let Some(p) = text("/whl") {
            return Some(Library::Whl(p));
        }
        if let Some(p) = text("/jar") {
            return Some(Library::Jar(p));
        }
        if let Some(p) = text("/requirements") {
            return Some(Library::Requirements(p));
        }
        if let Some(package) = text("/pypi/package") {
            return Some(Library::Pypi {
                package,
                repo: text("/pypi/repo"),
            });
        }
        let coordinates = text("/maven/coordinates")?;
        let exclusions = value
            .pointer("/maven/exclusions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Some(Library::Maven {
            coordinates,
            repo: text("/maven/repo"),
            exclusions,
        })
    }

    /// Whether `other` is another version of the same library: the same file name pattern
    /// (`name-<version>…whl`, `name-<version>.jar`), PyPI project or Maven group:artifact.
    pub fn same_library(&self, other: &Library) -> bool {
        match (self, other) {
            (Library::Pypi { package: a, .. }, Library::Pypi { package: b, .. }) => {
                pypi_name(a) == pypi_name(b)
            }
            (Library::Maven { coordinates: a, .. }, Library::Maven { coordinates: b, .. }) => {
                group_artifact(a) == group_artifact(b)
            }
            (Library::Whl(a), Library::Whl(b)) | (Library::Jar(a), Library::Jar(b)) => {
                artifact_name(a) == artifact_name(b)
            }
            (Library::Requirements(a), Library::Requirements(b)) => a == b,
            _ => false,
        }
    }
}

/// A PyPI project name, normalised (PEP 503) and without its version specifier.
fn pypi_name(package: &str) -> String {
    let name: String = package
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

fn group_artifact(coordinates: &str) -> String {
    coordinates.split(':').take(2).collect::<Vec<_>>().join(":")
}

/// The distribution name of a wheel or JAR file: the file name up to the first `-` followed
/// by a digit (`etl_lib-1.2.0-py3-none-any.whl` → `etl_lib`).
fn artifact_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let bytes = file.as_bytes();
    let cut = (1..bytes.len())
        .find(|&i| bytes[i - 1] == b'-' && bytes[i].is_ascii_digit())
        .map_or(file.len(), |i| i - 1);
    file[..cut].to_ascii_lowercase().replace('-', "_")
}

impl fmt::Display for Library {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Library::Whl(p) => write!(f, "wheel {p}"),
            Library::Jar(p) => write!(f, "JAR {p}"),
            Library::Requirements(p) => write!(f, "requirements {p}"),
            Library::Pypi { package, .. } => write!(f, "PyPI {package}"),
            Library::Maven { coordinates, .. } => write!(f, "Maven {coordinates}"),
        }
    }
}

/// One library's state on a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryStatus {
    /// `None` for kinds this client does not model (e.g. CRAN).
    pub library: Option<Library>,
    /// `PENDING, RESOLVING, INSTALLING, INSTALLED, FAILED, SKIPPED, RESTORED,
    /// UNINSTALL_ON_RESTART`.
    pub status: String,
    pub messages: Vec<String>,
}

impl LibraryStatus {
    /// Whether the status will not change by itself.
    pub fn is_final(&self) -> bool {
        matches!(
            self.status.as_str(),
            "INSTALLED" | "FAILED" | "SKIPPED" | "UNINSTALL_ON_RESTART"
        )
    }
}

#[derive(Deserialize)]
struct Statuses {
    #[serde(default)]
    library_statuses: Vec<RawStatus>,
}

#[derive(Deserialize)]
struct RawStatus {
    library: Value,
    status: String,
    #[serde(default)]
    messages: Vec<String>,
}

impl Workspace {
    /// Asks the cluster to install `libraries` (asynchronous: follow with
    /// [`Workspace::library_statuses`]). Installing what is installed is a no-op, so a replay
    /// is harmless.
    pub async fn install_libraries(
        &self,
        cluster_id: &str,
        libraries: &[Library],
    ) -> Result<(), Error> {
        let libs: Vec<Value> = libraries.iter().map(Library::to_json).collect();
        let body = json!({ "cluster_id": cluster_id, "libraries": libs });
        self.send::<Value>(Call::post("/api/2.0/libraries/install", body).replay_safe())
            .await
            .map(drop)
    }

    /// Marks `libraries` for removal; they are gone after the cluster restarts.
    pub async fn uninstall_libraries(
        &self,
        cluster_id: &str,
        libraries: &[Library],
    ) -> Result<(), Error> {
        let libs: Vec<Value> = libraries.iter().map(Library::to_json).collect();
        let body = json!({ "cluster_id": cluster_id, "libraries": libs });
        self.send::<Value>(Call::post("/api/2.0/libraries/uninstall", body).replay_safe())
            .await
            .map(drop)
    }

    /// Every library of a cluster with its status.
    pub async fn library_statuses(&self, cluster_id: &str) -> Result<Vec<LibraryStatus>, Error> {
        let answer: Statuses = self
            .send(Call::get("/api/2.0/libraries/cluster-status").query("cluster_id", cluster_id))
            .await?;
        Ok(answer
            .library_statuses
            .into_iter()
            .map(|s| LibraryStatus {
                library: Library::from_json(&s.library),
                status: s.status,
                messages: s.messages,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_versions() {
        let libs = [
            Library::Whl("/Volumes/m/s/v/etl_lib-1.2.0-py3-none-any.whl".into()),
            Library::Jar("dbfs:/jars/etl-2.0.jar".into()),
            Library::Requirements("/Workspace/Shared/requirements.txt".into()),
            Library::Pypi {
                package: "requests==2.32.3".into(),
                repo: Some("https://pypi.example/simple".into()),
            },
            Library::Maven {
                coordinates: "com.acme:etl:1.0".into(),
                repo: None,
                exclusions: vec!["org.slf4j:slf4j-api".into()],
            },
        ];
        for l in &libs {
            assert_eq!(Library::from_json(&l.to_json()).as_ref(), Some(l));
        }
        let w = |p: &str| Library::Whl(p.into());
        assert!(w("/a/etl_lib-1.2.0-py3-none-any.whl")
            .same_library(&w("/b/etl-lib-1.3.0-py3-none-any.whl")));
        assert!(!w("/a/etl_lib-1.2.0-py3-none-any.whl")
            .same_library(&w("/a/other-1.2.0-py3-none-any.whl")));
        let p = |n: &str| Library::Pypi {
            package: n.into(),
            repo: None,
        };
        assert!(p("Requests==2.0").same_library(&p("requests>=2.1")));
        let m = |c: &str| Library::Maven {
            coordinates: c.into(),
            repo: None,
            exclusions: vec![],
        };
        assert!(m("g:a:1").same_library(&m("g:a:2")) && !m("g:a:1").same_library(&m("g:b:1")));
        assert!(!w("/a/x-1.whl").same_library(&Library::Jar("/a/x-1.jar".into())));
    }
}
