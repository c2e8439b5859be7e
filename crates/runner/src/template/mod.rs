//! What the server does to a pipeline before it runs: `template:` references (steps, jobs,
//! stages, variables, `extends:`), typed `parameters:`, and `${{ }}` expressions and
//! directives (`if`/`elseif`/`else`, `each`, `insert`), giving one plain YAML tree that the
//! pipeline loader reads. Every problem names its file and line; all of them are reported.
//!
//! Templates are found relative to the file that includes them, `/`-paths from the root of
//! that file's repository, `path@alias` in a repository of `resources.repositories` given as
//! a local checkout (`--repo ALIAS=PATH`). The server's limits hold: 100 files, 20 levels.

mod expand;
pub mod params;

use std::path::{Component, Path, PathBuf};

use crate::pipeline::Problem;
use crate::variables::Variables;
use crate::yaml::{Node, Pos};

/// At most this many template files in one pipeline, as on the server.
pub const MAX_FILES: usize = 100;
/// At most this many templates inside each other, as on the server.
pub const MAX_DEPTH: usize = 20;

/// What expansion needs besides the pipeline file.
pub struct Options<'a> {
    /// Variables `${{ variables.x }}` sees before the pipeline defines its own (predefined
    /// and queue-time ones).
    pub variables: &'a Variables,
    /// Values of the pipeline's own parameters (`--param NAME=VALUE`).
    pub parameters: &'a [(String, String)],
    /// Local checkouts of `resources.repositories`: alias and folder (`--repo`).
    pub repos: &'a [(String, PathBuf)],
    /// The root of the pipeline's own repository (for `/`-paths and `@self`).
    pub self_root: PathBuf,
}

/// The expanded pipeline (when the file could be read as YAML) and what was found.
#[derive(Debug, Default)]
pub struct Expanded {
    pub root: Option<Node>,
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

/// Errors and warnings collected along the way.
#[derive(Debug, Default)]
pub struct Problems {
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl Problems {
    /// Records an error; the same error at the same place (a template used twice) once.
    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        let problem = Problem {
            pos,
            message: message.into(),
        };
        if !self.errors.contains(&problem) {
            self.errors.push(problem);
        }
    }

    pub fn warn(&mut self, pos: Pos, message: impl Into<String>) {
        self.warnings.push(Problem {
            pos,
            message: message.into(),
        });
    }
}

/// Expands the pipeline `text` read from `file`.
pub fn expand_pipeline(file: &Path, text: &str, options: &Options<'_>) -> Expanded {
    expand::Expander::new(options).pipeline(file, text)
}

/// The root of the repository `file` is in, when it is inside `sources`; else its folder.
pub fn self_root(file: &Path, sources: &Path) -> PathBuf {
    let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    if file.starts_with(sources) {
        sources.to_path_buf()
    } else {
        file.parent().map(Path::to_path_buf).unwrap_or_default()
    }
}

/// `a/./b/../c` → `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests;
