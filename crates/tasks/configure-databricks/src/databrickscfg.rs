//! The `[AZDO]` profile of `~/.databrickscfg`, as the old extension wrote it, for script
//! steps that run the Databricks CLI with `--profile AZDO`.
//!
//! The file is INI. Only the named section is replaced; every other line (other profiles,
//! comments) is kept as it was. The file is written to a temporary file with mode 0600 in the
//! same folder and renamed over the old one, so a crash never leaves half a file and the token
//! is never readable by other users, not even for a moment.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The profile the old extension wrote and pipelines refer to.
pub const PROFILE: &str = "AZDO";

/// The file's path: `$HOME/.databrickscfg` (`USERPROFILE` on Windows).
pub fn default_path(home: Option<&str>) -> Option<PathBuf> {
    home.filter(|h| !h.is_empty())
        .map(|h| Path::new(h).join(".databrickscfg"))
}

fn section_name(line: &str) -> Option<&str> {
    let line = line.trim();
    line.strip_prefix('[')?.strip_suffix(']').map(str::trim)
}

/// `existing` with the section `profile` replaced by `host` and `token` (appended when
/// missing).
pub fn with_profile(existing: &str, profile: &str, host: &str, token: &str) -> String {
    let mut out = String::with_capacity(existing.len() + 128);
    let section = format!("[{profile}]\nhost = {host}\ntoken = {token}\n");
    let mut in_target = false;
    let mut written = false;
    for line in existing.lines() {
        if let Some(name) = section_name(line) {
            in_target = name == profile;
            if in_target {
                if !written {
                    out.push_str(&section);
                    written = true;
                }
                continue;
            }
        }
        if in_target {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !written {
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(&section);
    }
    out
}

/// Writes the profile into the file at `path`, keeping everything else in it.
pub fn write_profile(path: &Path, profile: &str, host: &str, token: &str) -> std::io::Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let content = with_profile(&existing, profile, host, token);
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".databrickscfg.{}.tmp", std::process::id()));
    let result = (|| {
        // A leftover from a crashed run is removed; `create_new` then refuses anything
        // (a file or a planted symlink) that appears at the name in between.
        let _ = std::fs::remove_file(&tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(content.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_to_an_empty_file() {
        assert_eq!(
            with_profile("", "AZDO", "https://h", "t1"),
            "[AZDO]\nhost = https://h\ntoken = t1\n"
        );
    }

    #[test]
    fn replaces_only_its_section() {
        let existing = "; my config\n[DEFAULT]\nhost = https://a\ntoken = ta\n\n[AZDO]\nhost = https://old\ntoken = old\njobs-api-version = 2.0\n\n[other]\nhost = https://o\n";
        let updated = with_profile(existing, "AZDO", "https://new", "tnew");
        assert_eq!(
            updated,
            "; my config\n[DEFAULT]\nhost = https://a\ntoken = ta\n\n[AZDO]\nhost = https://new\ntoken = tnew\n[other]\nhost = https://o\n"
        );
        let appended = with_profile("[DEFAULT]\nhost = https://a", "AZDO", "https://n", "t");
        assert_eq!(
            appended,
            "[DEFAULT]\nhost = https://a\n\n[AZDO]\nhost = https://n\ntoken = t\n"
        );
    }

    #[cfg(unix)]
    #[test]
    fn writes_with_mode_0600_keeping_other_profiles() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".databrickscfg");
        std::fs::write(&path, "[DEFAULT]\nhost = https://a\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_profile(&path, "AZDO", "https://h", "secret-t").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("[DEFAULT]\nhost = https://a\n"), "{text}");
        assert!(text.contains("[AZDO]\nhost = https://h\ntoken = secret-t\n"));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file left behind"
        );
    }
}
