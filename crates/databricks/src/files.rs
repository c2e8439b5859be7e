//! Local files as notebooks: which import format a file name means, and whether a file's
//! first line is a Databricks notebook header. Pure functions, no I/O.

use crate::{ImportFormat, Language};

/// How a local file is imported: its format and the workspace name (the file name with the
/// extension stripped, as the legacy CLI's `import_dir` did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileImport {
    pub format: ImportFormat,
    /// The name to import under, e.g. `ingest` for `ingest.py`.
    pub name: String,
}

/// Maps a file name (not a path) to its import, like the legacy CLI (`databricks workspace
/// import_dir`) but with case-insensitive extensions:
///
/// | extension | import |
/// | --- | --- |
/// | `.py` `.scala` `.sql` `.r` | `SOURCE` with the language |
/// | `.ipynb` | `JUPYTER` |
/// | `.dbc` | `DBC` |
/// | `.html` | `HTML` |
///
/// The extension is stripped from the name. Anything else (and a bare `.py`) gives `None`:
/// the legacy CLI skipped such files. The header is not inspected (a plain Python module
/// becomes a notebook, as before); see [`notebook_language`] for that.
pub fn import_format_for_file(file_name: &str) -> Option<FileImport> {
    let (stem, ext) = file_name.rsplit_once('.')?;
    if stem.is_empty() {
        return None;
    }
    let format = match ext.to_ascii_lowercase().as_str() {
        "py" => ImportFormat::Source(Language::Python),
        "scala" => ImportFormat::Source(Language::Scala),
        "sql" => ImportFormat::Source(Language::Sql),
        "r" => ImportFormat::Source(Language::R),
        "ipynb" => ImportFormat::Jupyter,
        "dbc" => ImportFormat::Dbc,
        "html" => ImportFormat::Html,
        _ => return None,
    };
    Some(FileImport {
        format,
        name: stem.to_owned(),
    })
}

/// The first line of `content`, without a UTF-8 byte order mark, `\r` or trailing blanks.
fn first_line(content: &[u8]) -> &[u8] {
    let content = content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content);
    let line = content.split(|b| *b == b'\n').next().unwrap_or_default();
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &line[..end]
}

/// Whether `content` starts with the notebook header of `language`: `# Databricks notebook
/// source` (Python, R), `// Databricks notebook source` (Scala) or `-- Databricks notebook
/// source` (SQL) — what Databricks writes as the first line of an exported source notebook.
pub fn has_notebook_header(content: &[u8], language: Language) -> bool {
    first_line(content) == language.notebook_header().as_bytes()
}

/// The language of a source notebook, judged by the file name's extension (case-insensitive)
/// and confirmed by the header of that language. `None` for a file that is not a source
/// notebook: another extension, or plain code without the header (a module, a script).
pub fn notebook_language(file_name: &str, content: &[u8]) -> Option<Language> {
    match import_format_for_file(file_name)?.format {
        ImportFormat::Source(language) if has_notebook_header(content, language) => Some(language),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_map_like_the_legacy_cli() {
        let f = |n: &str| import_format_for_file(n).map(|i| (i.format, i.name));
        assert_eq!(
            f("ingest.py"),
            Some((ImportFormat::Source(Language::Python), "ingest".into()))
        );
        assert_eq!(
            f("Report.SQL"),
            Some((ImportFormat::Source(Language::Sql), "Report".into()))
        );
        assert_eq!(
            f("job.Scala"),
            Some((ImportFormat::Source(Language::Scala), "job".into()))
        );
        assert_eq!(
            f("model.R"),
            Some((ImportFormat::Source(Language::R), "model".into()))
        );
        assert_eq!(
            f("a.b.r"),
            Some((ImportFormat::Source(Language::R), "a.b".into()))
        );
        assert_eq!(f("nb.ipynb"), Some((ImportFormat::Jupyter, "nb".into())));
        assert_eq!(f("all.DBC"), Some((ImportFormat::Dbc, "all".into())));
        assert_eq!(f("page.html"), Some((ImportFormat::Html, "page".into())));
        assert_eq!(f("README.md"), None);
        assert_eq!(f("Makefile"), None);
        assert_eq!(f(".py"), None);
        assert_eq!(f("data.json"), None);
    }

    #[test]
    fn headers_are_detected_per_language() {
        let py = b"# Databricks notebook source\nprint(1)\n";
        assert!(has_notebook_header(py, Language::Python));
        assert!(has_notebook_header(py, Language::R));
        assert!(!has_notebook_header(py, Language::Scala));
        assert!(has_notebook_header(
            b"\xEF\xBB\xBF// Databricks notebook source\r\nval x = 1",
            Language::Scala
        ));
        assert!(has_notebook_header(
            b"-- Databricks notebook source  \nselect 1",
            Language::Sql
        ));
        assert!(has_notebook_header(
            b"-- Databricks notebook source",
            Language::Sql
        ));
        assert!(!has_notebook_header(
            b"\n# Databricks notebook source",
            Language::Python
        ));
        assert!(!has_notebook_header(
            b"# Databricks notebook source code",
            Language::Python
        ));
        assert!(!has_notebook_header(b"", Language::Python));
        assert_eq!(notebook_language("etl.PY", py), Some(Language::Python));
        assert_eq!(notebook_language("etl.sql", py), None);
        assert_eq!(notebook_language("helpers.py", b"import os\n"), None);
        assert_eq!(notebook_language("nb.ipynb", py), None);
    }
}
