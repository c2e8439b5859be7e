//! Notebook formats: source headers, cell separators, Jupyter conversion, AUTO detection.

use serde_json::{json, Value};

/// A notebook language, as the Workspace API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Python,
    Scala,
    Sql,
    R,
}

impl Language {
    pub fn parse(s: &str) -> Option<Language> {
        match s {
            "PYTHON" => Some(Language::Python),
            "SCALA" => Some(Language::Scala),
            "SQL" => Some(Language::Sql),
            "R" => Some(Language::R),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Python => "PYTHON",
            Language::Scala => "SCALA",
            Language::Sql => "SQL",
            Language::R => "R",
        }
    }

    /// The line comment that prefixes the header, cell separators and `MAGIC` lines.
    pub fn comment(self) -> &'static str {
        match self {
            Language::Python | Language::R => "#",
            Language::Scala => "//",
            Language::Sql => "--",
        }
    }

    /// First line of an exported source notebook.
    pub fn header(self) -> String {
        format!("{} Databricks notebook source", self.comment())
    }

    pub fn cell_separator(self) -> String {
        format!("{} COMMAND ----------", self.comment())
    }

    /// The `file_type` the export endpoint reports for SOURCE.
    pub fn extension(self) -> &'static str {
        match self {
            Language::Python => "py",
            Language::Scala => "scala",
            Language::Sql => "sql",
            Language::R => "r",
        }
    }

    /// Language implied by a file extension, as the legacy CLI and AUTO map them.
    pub fn from_extension(ext: &str) -> Option<Language> {
        match ext {
            "py" => Some(Language::Python),
            "scala" => Some(Language::Scala),
            "sql" | "SQL" => Some(Language::Sql),
            "r" | "R" => Some(Language::R),
            _ => None,
        }
    }
}

/// Import/export formats (case-sensitive, like the real API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Auto,
    Dbc,
    Html,
    Jupyter,
    Raw,
    RMarkdown,
    Source,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "AUTO" => Some(Format::Auto),
            "DBC" => Some(Format::Dbc),
            "HTML" => Some(Format::Html),
            "JUPYTER" => Some(Format::Jupyter),
            "RAW" => Some(Format::Raw),
            "R_MARKDOWN" => Some(Format::RMarkdown),
            "SOURCE" => Some(Format::Source),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Auto => "AUTO",
            Format::Dbc => "DBC",
            Format::Html => "HTML",
            Format::Jupyter => "JUPYTER",
            Format::Raw => "RAW",
            Format::RMarkdown => "R_MARKDOWN",
            Format::Source => "SOURCE",
        }
    }
}

/// Removes a leading UTF-8 byte order mark.
fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Whether `content` starts with the notebook header of `language`.
pub fn has_header(content: &[u8], language: Language) -> bool {
    match std::str::from_utf8(content) {
        Ok(text) => {
            let first = strip_bom(text).lines().next().unwrap_or("");
            first.trim_end() == language.header()
        }
        Err(_) => false,
    }
}

/// The notebook body: the source without its header line (we add the header back on export).
pub fn body_from_source(content: &[u8], language: Language) -> String {
    let text = String::from_utf8_lossy(content);
    let text = strip_bom(&text);
    let mut lines = text.split_inclusive('\n');
    let mut first = lines.next().unwrap_or("");
    if first.trim_end() == language.header() {
        first = "";
    }
    let mut body = String::with_capacity(text.len());
    body.push_str(first);
    for line in lines {
        body.push_str(line);
    }
    body
}

/// Source export: header line, then the body.
pub fn to_source(body: &str, language: Language) -> String {
    format!("{}\n{}", language.header(), body)
}

/// Splits a notebook body into cells on the language's `COMMAND ----------` separator.
pub fn cells(body: &str, language: Language) -> Vec<String> {
    let separator = language.cell_separator();
    let mut cells = vec![String::new()];
    for line in body.split_inclusive('\n') {
        if line.trim_end() == separator {
            cells.push(String::new());
        } else if let Some(cell) = cells.last_mut() {
            cell.push_str(line);
        }
    }
    cells
}

/// Converts an `.ipynb` document to (language, notebook body). `None` when it is not one.
pub fn from_jupyter(content: &[u8], fallback: Option<Language>) -> Option<(Language, String)> {
    let doc: Value = serde_json::from_slice(content).ok()?;
    let cells_json = doc.get("cells")?.as_array()?;
    let declared = doc
        .pointer("/metadata/kernelspec/language")
        .or_else(|| doc.pointer("/metadata/language_info/name"))
        .and_then(Value::as_str)
        .and_then(|name| Language::parse(&name.to_ascii_uppercase()));
    let language = declared.or(fallback).unwrap_or(Language::Python);
    let magic = format!("{} MAGIC ", language.comment());
    let mut cells = Vec::new();
    for cell in cells_json {
        let source = match cell.get("source") {
            Some(Value::Array(parts)) => parts.iter().filter_map(Value::as_str).collect::<String>(),
            Some(Value::String(text)) => text.clone(),
            _ => String::new(),
        };
        let source = source.trim_end_matches('\n').to_string();
        match cell.get("cell_type").and_then(Value::as_str) {
            Some("markdown") => {
                let mut text = format!("{magic}%md");
                for line in source.lines() {
                    text.push('\n');
                    text.push_str(magic.trim_end());
                    if !line.is_empty() {
                        text.push(' ');
                        text.push_str(line);
                    }
                }
                cells.push(text);
            }
            Some("code") => cells.push(source),
            _ => {}
        }
    }
    let separator = format!("\n\n{}\n\n", language.cell_separator());
    Some((language, cells.join(&separator)))
}

/// Converts a notebook body to a minimal nbformat 4 document.
pub fn to_jupyter(body: &str, language: Language, name: &str) -> Value {
    let magic_md = format!("{} MAGIC %md", language.comment());
    let magic = format!("{} MAGIC", language.comment());
    let mut out = Vec::new();
    for cell in cells(body, language) {
        let trimmed = cell.trim_matches('\n');
        if let Some(rest) = trimmed.strip_prefix(&magic_md) {
            let text: Vec<String> = rest
                .lines()
                .skip(1)
                .map(|line| {
                    let line = line.strip_prefix(&magic).unwrap_or(line);
                    line.strip_prefix(' ').unwrap_or(line).to_string()
                })
                .collect();
            out.push(json!({"cell_type": "markdown", "metadata": {}, "source": text.join("\n")}));
        } else {
            out.push(json!({
                "cell_type": "code", "execution_count": null, "metadata": {},
                "outputs": [], "source": trimmed,
            }));
        }
    }
    json!({
        "cells": out,
        "metadata": {
            "application/vnd.databricks.v1+notebook": {"notebookName": name, "language": language.as_str().to_ascii_lowercase()},
            "language_info": {"name": language.as_str().to_ascii_lowercase()},
        },
        "nbformat": 4,
        "nbformat_minor": 0,
    })
}

/// A minimal HTML rendering of a notebook (the real one embeds the notebook model).
pub fn to_html(body: &str, name: &str) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    format!(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>{}</title></head>\n<body><pre>{}</pre></body>\n</html>\n",
        escape(name),
        escape(body)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_stripped_and_restored() {
        let src = b"# Databricks notebook source\nprint(1)\n";
        assert!(has_header(src, Language::Python));
        assert!(!has_header(src, Language::Scala));
        let body = body_from_source(src, Language::Python);
        assert_eq!(body, "print(1)\n");
        assert_eq!(to_source(&body, Language::Python).as_bytes(), src);
    }

    #[test]
    fn cells_split_on_separator() {
        let body = "a = 1\n\n# COMMAND ----------\n\nb = 2\n";
        let cells = cells(body, Language::Python);
        assert_eq!(cells.len(), 2);
        assert!(cells[1].contains("b = 2"));
    }

    #[test]
    fn jupyter_round_trip_keeps_code_and_markdown() {
        let ipynb = br##"{"cells":[{"cell_type":"markdown","source":["# Title"]},{"cell_type":"code","source":["x = 1\n","print(x)"]}],"metadata":{"kernelspec":{"language":"python"}},"nbformat":4}"##;
        let (language, body) = from_jupyter(ipynb, None).expect("valid notebook");
        assert_eq!(language, Language::Python);
        assert!(body.contains("# MAGIC %md\n# MAGIC # Title"));
        assert!(body.contains("x = 1\nprint(x)"));
        let back = to_jupyter(&body, language, "nb");
        assert_eq!(back["cells"][0]["cell_type"], "markdown");
        assert_eq!(back["cells"][0]["source"], "# Title");
        assert_eq!(back["cells"][1]["source"], "x = 1\nprint(x)");
    }

    #[test]
    fn not_jupyter_is_none() {
        assert!(from_jupyter(b"print(1)", None).is_none());
    }
}
