//! Template and parameters files: a pattern that must match exactly one file, the encodings
//! the Microsoft task reads (UTF-8, UTF-16 with a byte order mark), and JSON with comments.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Why a template or parameters file cannot be used. The errors about finding and reading
/// the file name the input it came from.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: no file matches the {what} pattern '{pattern}'{searched}: check the path (a relative one starts at $(System.DefaultWorkingDirectory)) and that the artifact was downloaded or the repository checked out", input_of(what))]
    NoMatch {
        what: &'static str,
        pattern: String,
        searched: String,
    },
    #[error(
        "{}: the {what} pattern '{pattern}' matches {count} files, it must match exactly one: {listed}", input_of(what)
    )]
    SeveralMatches {
        what: &'static str,
        pattern: String,
        count: usize,
        listed: String,
    },
    #[error("{}: the {what} pattern '{pattern}' matches the folder '{}', not a file: give the path of the {what} itself{holds}", input_of(what), path.display())]
    Directory {
        what: &'static str,
        pattern: String,
        path: PathBuf,
        /// `; the folder holds a.json, b.json`, or empty.
        holds: String,
    },
    #[error("{}: the {what} pattern '{pattern}' matches '{}', which is not a regular file (a named pipe, socket or device): give the path of the {what} itself", input_of(what), path.display())]
    NotAFile {
        what: &'static str,
        pattern: String,
        path: PathBuf,
    },
    #[error("{}: cannot read the {what} '{}' ({source}): make it readable by the agent's user", input_of(what), path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the {what} '{}' {problem}", path.display())]
    Encoding {
        what: &'static str,
        path: PathBuf,
        problem: String,
    },
    #[error("the {what} '{}' is not valid JSON: {problem}", path.display())]
    Json {
        what: &'static str,
        path: PathBuf,
        problem: String,
    },
    #[error("{input}: in the parameters file '{}', {} no {{\"value\": …}} wrapper, so ARM would not get {} and would say {} not provided. Write each entry as \"{}\": {{\"value\": …}}, or as \"{}\": {{\"reference\": {{\"keyVault\": {{\"id\": \"…\"}}, \"secretName\": \"…\"}}}} for a Key Vault secret",
        path.display(),
        if names.len() == 1 { format!("the entry '{}' has", names[0]) } else { format!("the entries {} have", names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")) },
        if names.len() == 1 { "it" } else { "them" },
        if names.len() == 1 { "it is" } else { "they are" },
        names[0], names[0])]
    Unwrapped {
        input: &'static str,
        path: PathBuf,
        names: Vec<String>,
    },
}

/// The input a file of this kind comes from, as messages name it.
fn input_of(what: &str) -> &'static str {
    match what {
        "parameters file" => "input 'Template parameters' (csmParametersFile)",
        _ => "input 'Template' (csmFile)",
    }
}

/// `; the folder holds a.json, b.json` (its JSON files, up to 5), for a folder given as a file.
fn json_files_in(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.to_ascii_lowercase().ends_with(".json"))
        .collect();
    names.sort();
    if names.is_empty() {
        return String::new();
    }
    let more = names.len().saturating_sub(5);
    names.truncate(5);
    format!(
        "; the folder holds {}{}",
        names.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}

fn is_wildcard(segment: &str) -> bool {
    segment.contains(['*', '?'])
}

/// Matches one path segment against a pattern segment of `*` (any run) and `?` (one
/// character); everything else, `[` included, is literal, as the Microsoft task escapes `[`.
fn segment_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && same_char(p[pi], n[ni]))) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn same_char(a: char, b: char) -> bool {
    // The agent matches case-insensitively on Windows only (task-lib's `nocase`).
    if cfg!(windows) {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

fn split_segments(pattern: &str) -> Vec<String> {
    let separators: &[char] = if cfg!(windows) { &['/', '\\'] } else { &['/'] };
    pattern.split(separators).map(str::to_owned).collect()
}

const MAX_DEPTH: usize = 64;

fn walk(dir: &Path, rest: &[String], depth: usize, out: &mut Vec<PathBuf>) {
    let Some((first, tail)) = rest.split_first() else {
        out.push(dir.to_path_buf());
        return;
    };
    if depth > MAX_DEPTH {
        return;
    }
    if first.is_empty() || first == "." {
        walk(dir, tail, depth, out);
        return;
    }
    if first == "**" {
        // Zero directories, then each subdirectory with `**` still in force.
        walk(dir, tail, depth + 1, out);
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut dirs: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            dirs.sort();
            for d in dirs {
                walk(&d, rest, depth + 1, out);
            }
        }
        return;
    }
    if !is_wildcard(first) {
        let next = dir.join(first);
        if next.exists() {
            walk(&next, tail, depth + 1, out);
        }
        return;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut matched: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| segment_matches(first, &e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect();
        matched.sort();
        for m in matched {
            if tail.is_empty() || m.is_dir() {
                walk(&m, tail, depth + 1, out);
            }
        }
    }
}

/// Every path matching `pattern` (relative patterns are taken from `root`), sorted and
/// without duplicates.
pub fn find_matches(root: &Path, pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    };
    let text = absolute.to_string_lossy().into_owned();
    let segments = split_segments(&text);
    // Start from the longest literal prefix.
    let literal = segments.iter().take_while(|s| !is_wildcard(s)).count();
    let base: PathBuf = if literal == segments.len() {
        return if absolute.exists() {
            vec![absolute]
        } else {
            Vec::new()
        };
    } else {
        let prefix = segments[..literal].join("/");
        if prefix.is_empty() {
            PathBuf::from("/")
        } else {
            PathBuf::from(prefix)
        }
    };
    let mut out = Vec::new();
    walk(&base, &segments[literal..], 0, &mut out);
    out.sort();
    out.dedup();
    out
}

/// The one file `pattern` matches; zero matches, several, or a directory is an error listing
/// what was found.
pub fn find_single_file(
    root: &Path,
    pattern: &str,
    what: &'static str,
) -> Result<PathBuf, FileError> {
    let matches = find_matches(root, pattern);
    match matches.as_slice() {
        [] => Err(FileError::NoMatch {
            what,
            pattern: pattern.to_owned(),
            searched: if Path::new(pattern).is_absolute() {
                String::new()
            } else {
                format!(" under '{}'", root.display())
            },
        }),
        [one] if one.is_dir() => Err(FileError::Directory {
            what,
            pattern: pattern.to_owned(),
            path: one.clone(),
            holds: json_files_in(one),
        }),
        // Reading a named pipe would wait for a writer forever.
        [one] if !one.is_file() => Err(FileError::NotAFile {
            what,
            pattern: pattern.to_owned(),
            path: one.clone(),
        }),
        [one] => Ok(one.clone()),
        many => {
            let mut listed: Vec<String> = many
                .iter()
                .take(10)
                .map(|p| p.display().to_string())
                .collect();
            if many.len() > 10 {
                listed.push(format!("and {} more", many.len() - 10));
            }
            Err(FileError::SeveralMatches {
                what,
                pattern: pattern.to_owned(),
                count: many.len(),
                listed: listed.join(", "),
            })
        }
    }
}

fn utf16(bytes: &[u8], big_endian: bool) -> Option<String> {
    if bytes.len() % 2 != 0 {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| {
            if big_endian {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_le_bytes([c[0], c[1]])
            }
        })
        .collect();
    String::from_utf16(&units).ok()
}

/// Decodes a text file: UTF-8 (with or without BOM), UTF-16LE/BE with BOM, and UTF-16
/// without BOM when it plainly is (ASCII text with every other byte zero).
pub fn decode_text(bytes: &[u8]) -> Result<String, String> {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8(rest.to_vec())
            .map_err(|e| format!("starts with a UTF-8 byte order mark but is not UTF-8 ({e})"));
    }
    if bytes.starts_with(&[0xFF, 0xFE, 0, 0]) || bytes.starts_with(&[0, 0, 0xFE, 0xFF]) {
        return Err("is UTF-32, which is not supported: save it as UTF-8".into());
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, false)
            .ok_or_else(|| "starts with a UTF-16LE byte order mark but is not UTF-16LE".into());
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, true)
            .ok_or_else(|| "starts with a UTF-16BE byte order mark but is not UTF-16BE".into());
    }
    if bytes.len() >= 4 && bytes.len() % 2 == 0 {
        let even_zero = bytes.iter().step_by(2).take(64).all(|b| *b == 0);
        let odd_zero = bytes.iter().skip(1).step_by(2).take(64).all(|b| *b == 0);
        if odd_zero && !even_zero {
            if let Some(s) = utf16(bytes, false) {
                return Ok(s);
            }
        }
        if even_zero && !odd_zero {
            if let Some(s) = utf16(bytes, true) {
                return Ok(s);
            }
        }
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        "is neither UTF-8 nor UTF-16 with a byte order mark: save it as UTF-8".to_owned()
    })
}

/// Removes `//` and `/* */` comments outside JSON strings. A block comment becomes a space,
/// so that it never joins two tokens; a line comment keeps its line break, so that JSON error
/// positions still point at the right line.
pub fn strip_json_comments(text: &str) -> Result<String, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut in_string = false;
    let mut line = 1;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if in_string {
            out.push(c);
            if c == '\\' {
                if let Some(n) = next {
                    out.push(n);
                    i += 1;
                }
            } else if c == '"' {
                in_string = false;
            }
            if c == '\n' {
                line += 1;
            }
            i += 1;
            continue;
        }
        match (c, next) {
            ('"', _) => {
                in_string = true;
                out.push(c);
                i += 1;
            }
            ('/', Some('/')) => {
                while i < chars.len() && chars[i] != '\n' && chars[i] != '\r' {
                    i += 1;
                }
            }
            ('/', Some('*')) => {
                let start_line = line;
                i += 2;
                loop {
                    if i + 1 >= chars.len() {
                        return Err(format!(
                            "has a /* comment opened on line {start_line} that is never closed"
                        ));
                    }
                    if chars[i] == '*' && chars[i + 1] == '/' {
                        i += 2;
                        break;
                    }
                    if chars[i] == '\n' {
                        line += 1;
                        // Keep line numbers of later errors right.
                        out.push('\n');
                    }
                    i += 1;
                }
                out.push(' ');
            }
            _ => {
                if c == '\n' {
                    line += 1;
                }
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Reads a JSON file (any supported encoding, comments allowed).
pub fn read_json_file(path: &Path, what: &'static str) -> Result<Value, FileError> {
    let bytes = std::fs::read(path).map_err(|source| FileError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    parse_json_text(&bytes, path, what)
}

/// Parses downloaded or read bytes as JSON with comments.
pub fn parse_json_text(bytes: &[u8], path: &Path, what: &'static str) -> Result<Value, FileError> {
    let encoding = |problem: String| FileError::Encoding {
        what,
        path: path.to_path_buf(),
        problem,
    };
    let text = decode_text(bytes).map_err(encoding)?;
    let text = strip_json_comments(&text).map_err(encoding)?;
    serde_json::from_str(&text).map_err(|e| FileError::Json {
        what,
        path: path.to_path_buf(),
        problem: e.to_string(),
    })
}

/// The `parameters` object of a parameters file (deploymentParameters schema); anything else
/// in the file is ignored. Every entry must hold a `value` or a `reference`: the Microsoft task
/// drops one that does not, and ARM then says the parameter is not provided. `input` names
/// where the file came from.
pub fn parameters_object(
    file: &Value,
    path: &Path,
    input: &'static str,
) -> Result<Map<String, Value>, FileError> {
    let parameters = match file.get("parameters") {
        Some(Value::Object(m)) => m.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(FileError::Json {
            what: "parameters file",
            path: path.to_path_buf(),
            problem: "its \"parameters\" is not an object (expected {\"parameters\": {\"name\": {\"value\": …}}})".into(),
        }),
    };
    let unwrapped: Vec<String> = parameters
        .iter()
        .filter(|(_, entry)| entry.get("value").is_none() && entry.get("reference").is_none())
        .map(|(name, _)| name.clone())
        .collect();
    if !unwrapped.is_empty() {
        return Err(FileError::Unwrapped {
            input,
            path: path.to_path_buf(),
            names: unwrapped,
        });
    }
    Ok(parameters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("adf/sub")).unwrap();
        std::fs::create_dir_all(root.join("other")).unwrap();
        std::fs::write(root.join("adf/ARMTemplateForFactory.json"), "{}").unwrap();
        std::fs::write(root.join("adf/ARMTemplateParametersForFactory.json"), "{}").unwrap();
        std::fs::write(root.join("adf/sub/nested.json"), "{}").unwrap();
        std::fs::write(root.join("other/[x].json"), "{}").unwrap();
        dir
    }

    #[test]
    fn glob_matching() {
        let dir = tree();
        let root = dir.path();
        assert_eq!(
            find_single_file(root, "adf/ARMTemplateForFactory.json", "template").unwrap(),
            root.join("adf/ARMTemplateForFactory.json")
        );
        assert_eq!(
            find_single_file(root, "**/ARMTemplateFor*.json", "template").unwrap(),
            root.join("adf/ARMTemplateForFactory.json")
        );
        assert_eq!(
            find_single_file(root, "**/nest?d.json", "template").unwrap(),
            root.join("adf/sub/nested.json")
        );
        let abs = root.join("adf/*Parameters*.json");
        assert_eq!(
            find_single_file(root, abs.to_str().unwrap(), "parameters file").unwrap(),
            root.join("adf/ARMTemplateParametersForFactory.json")
        );
        // `[` is literal, as the Microsoft task escapes it.
        assert_eq!(
            find_single_file(root, "other/[x].json", "template").unwrap(),
            root.join("other/[x].json")
        );
        assert_eq!(find_matches(root, "**/*.json").len(), 4);
    }

    #[test]
    fn glob_errors_list_what_matched() {
        let dir = tree();
        let root = dir.path();
        let e = find_single_file(root, "adf/*.json", "template")
            .unwrap_err()
            .to_string();
        assert!(e.contains("matches 2 files"), "{e}");
        assert!(
            e.contains("ARMTemplateForFactory.json")
                && e.contains("ARMTemplateParametersForFactory.json"),
            "{e}"
        );
        let e = find_single_file(root, "nothing/*.json", "template")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("input 'Template' (csmFile): no file matches the template pattern 'nothing/*.json' under"),
            "{e}"
        );
        let e = find_single_file(root, "adf", "parameters file")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("input 'Template parameters' (csmParametersFile): the parameters file pattern 'adf' matches the folder")
                && e.ends_with("; the folder holds ARMTemplateForFactory.json, ARMTemplateParametersForFactory.json"),
            "{e}"
        );
    }

    #[test]
    fn segment_wildcards() {
        assert!(segment_matches("*.json", "a.json"));
        assert!(segment_matches("a*b*c", "aXXbYYc"));
        assert!(!segment_matches("a*b*c", "aXXbYY"));
        assert!(segment_matches("?", "x"));
        assert!(!segment_matches("?", ""));
        assert!(segment_matches("*", ""));
    }

    #[test]
    fn encodings() {
        let text = "{\"a\": \"é\"}";
        assert_eq!(decode_text(text.as_bytes()).unwrap(), text);
        let mut bom8 = vec![0xEF, 0xBB, 0xBF];
        bom8.extend_from_slice(text.as_bytes());
        assert_eq!(decode_text(&bom8).unwrap(), text);
        let mut le = vec![0xFF, 0xFE];
        le.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
        assert_eq!(decode_text(&le).unwrap(), text);
        let mut be = vec![0xFE, 0xFF];
        be.extend(text.encode_utf16().flat_map(|u| u.to_be_bytes()));
        assert_eq!(decode_text(&be).unwrap(), text);
        let no_bom: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        assert_eq!(decode_text(&no_bom).unwrap(), text);
        assert!(decode_text(&[0xC3, 0x28, 0x41, 0x42, 0x43])
            .unwrap_err()
            .contains("UTF-8"));
    }

    #[test]
    fn comments_are_stripped_outside_strings() {
        let text = "{\n  // line comment\n  \"url\": \"http://x//y\", /* block */ \"n\": 1,\n  \"s\": \"a /* not */ b \\\" // still\"\n}";
        let v: Value = serde_json::from_str(&strip_json_comments(text).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"url": "http://x//y", "n": 1, "s": "a /* not */ b \" // still"})
        );
        assert!(strip_json_comments("{ /* open")
            .unwrap_err()
            .contains("line 1"));
        // Error positions keep their line.
        let e = parse_json_text(b"{\n/* a\nb */\n \"x\": }", Path::new("t.json"), "template")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 4"), "{e}");
    }

    #[test]
    fn parameters_object_only() {
        let file =
            json!({"$schema": "x", "contentVersion": "1.0.0.0", "parameters": {"a": {"value": 1}}});
        let read = |v: &Value| parameters_object(v, Path::new("p.json"), "input 'X' (x)");
        let p = read(&file).unwrap();
        assert_eq!(Value::Object(p), json!({"a": {"value": 1}}));
        assert!(read(&json!({})).unwrap().is_empty());
        assert!(read(&json!({"parameters": []})).is_err());
        // An entry without its wrapper is named, with the wrapper to write.
        let e = read(
            &json!({"parameters": {"a": {"value": 1}, "name": "st1", "tier": {"metadata": {}}}}),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("input 'X' (x): in the parameters file 'p.json', the entries 'name', 'tier' have no {\"value\": …} wrapper")
                && e.contains("\"name\": {\"value\": …}")
                && e.contains("\"reference\": {\"keyVault\""),
            "{e}"
        );
    }
}
