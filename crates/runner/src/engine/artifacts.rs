//! Pipeline artifacts of the run: `publish`, `download`, and the copy both use.

use std::path::{Path, PathBuf};

use super::{Engine, JobState};
use crate::commands::Shown;
use crate::expr::Outcome;

impl Engine<'_> {
    pub(super) fn publish(
        &mut self,
        state: &mut JobState,
        path: &str,
        artifact: &str,
    ) -> (Outcome, String) {
        let artifact = state.vars.expand(artifact);
        let source = self.absolute(state, &state.vars.expand(path));
        let target = self.artifacts_dir.join(&artifact);
        if !source.exists() {
            let msg = format!(
                "Path does not exist: {}",
                state.masker.mask(&source.display().to_string())
            );
            self.printer.shown(&Shown::Error(msg.clone()));
            return (Outcome::Failed, msg);
        }
        if target.exists() {
            let msg = format!("an artifact named '{artifact}' was already published in this run");
            self.printer.shown(&Shown::Error(msg.clone()));
            return (Outcome::Failed, msg);
        }
        match copy_tree(&source, &target) {
            Ok(n) => {
                self.printer.shown(&Shown::Out(format!(
                    "published {n} file(s) from {} as artifact '{artifact}'",
                    source.display()
                )));
                (Outcome::Succeeded, String::new())
            }
            Err(e) => {
                let msg = format!("cannot publish {}: {e}", source.display());
                self.printer.shown(&Shown::Error(msg.clone()));
                (Outcome::Failed, msg)
            }
        }
    }

    pub(super) fn download(
        &mut self,
        state: &mut JobState,
        artifact: Option<&str>,
        path: Option<&str>,
    ) -> (Outcome, String) {
        let ws = PathBuf::from(state.vars.value("Pipeline.Workspace").unwrap_or("."));
        let names: Vec<String> = match artifact {
            Some(a) => vec![a.to_owned()],
            None => {
                let mut names: Vec<String> = std::fs::read_dir(&self.artifacts_dir)
                    .map(|d| {
                        d.flatten()
                            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                names.sort();
                names
            }
        };
        if names.is_empty() {
            self.printer.shown(&Shown::Out(
                "no artifacts published in this run so far".into(),
            ));
        }
        for name in names {
            let source = self.artifacts_dir.join(&name);
            if !source.exists() {
                let msg =
                    format!("artifact '{name}' was not published by an earlier job of this run");
                self.printer.shown(&Shown::Error(msg.clone()));
                return (Outcome::Failed, msg);
            }
            let target = match (path, artifact) {
                (Some(p), Some(_)) => self.absolute(state, p),
                (Some(p), None) => self.absolute(state, p).join(&name),
                (None, _) => ws.join(&name),
            };
            match copy_tree(&source, &target) {
                Ok(n) => self.printer.shown(&Shown::Out(format!(
                    "downloaded artifact '{name}' ({n} file(s)) to {}",
                    target.display()
                ))),
                Err(e) => {
                    let msg = format!("cannot download artifact '{name}': {e}");
                    self.printer.shown(&Shown::Error(msg.clone()));
                    return (Outcome::Failed, msg);
                }
            }
        }
        (Outcome::Succeeded, String::new())
    }
}

/// Copies a file or folder; returns the number of files.
pub fn copy_tree(source: &Path, target: &Path) -> std::io::Result<usize> {
    if source.is_file() {
        // An artifact is a folder: a published file keeps its name inside it.
        std::fs::create_dir_all(target)?;
        std::fs::copy(source, target.join(source.file_name().unwrap_or_default()))?;
        return Ok(1);
    }
    std::fs::create_dir_all(target)?;
    let mut n = 0;
    for entry in std::fs::read_dir(source)? {
        let entry = entry?;
        let from = entry.path();
        let to = target.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            n += copy_tree(&from, &to)?;
        } else {
            std::fs::copy(&from, &to)?;
            n += 1;
        }
    }
    Ok(n)
}
