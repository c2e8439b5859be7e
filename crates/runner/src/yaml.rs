//! A YAML document as a tree of nodes that remember their file, line and column, so that
//! every pipeline error can point at `file:line` (also inside an included template). Scalars
//! stay the text that was written: Azure Pipelines reads every scalar as a string (`3.10`
//! stays `3.10`, `yes` stays `yes`). [`to_yaml`] writes a tree back out.

use std::fmt;
use std::path::Path;
use std::sync::Mutex;

use saphyr_parser::{Event, Parser, ScalarStyle};

/// Where a node starts: its file (when it was read from one), 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub file: Option<&'static Path>,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = self.file {
            write!(f, "{}:", file.display())?;
        }
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// The one `&'static Path` for `path`, so that positions stay `Copy`. Each file is kept once
/// for the life of the process (a pipeline reads at most 100).
pub fn intern(path: &Path) -> &'static Path {
    static FILES: Mutex<Vec<&'static Path>> = Mutex::new(Vec::new());
    let mut files = FILES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = files.iter().find(|p| **p == path) {
        return p;
    }
    let p: &'static Path = Box::leak(path.to_path_buf().into_boxed_path());
    files.push(p);
    p
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar as written; `plain` is false for quoted and block scalars.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

/// A syntax error with its position.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

impl Node {
    /// A scalar node.
    pub fn scalar(text: &str, plain: bool, pos: Pos) -> Node {
        Node {
            pos,
            value: Value::Scalar {
                text: text.to_owned(),
                plain,
            },
        }
    }

    /// `key:` with nothing after it, `~` or `null`.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if text.is_empty() || text == "~" || text == "null" || text == "Null" || text == "NULL")
    }

    /// The scalar's text; `None` for a sequence or mapping.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// A mapping entry by key.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// What kind of node this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a sequence",
            Value::Map(_) => "a mapping",
        }
    }

    /// Applies `f` to every scalar (keys included), for template-expression substitution.
    pub fn map_scalars(&mut self, f: &mut dyn FnMut(&str) -> Option<String>) {
        match &mut self.value {
            Value::Scalar { text, .. } => {
                if let Some(new) = f(text) {
                    *text = new;
                }
            }
            Value::Seq(items) => items.iter_mut().for_each(|n| n.map_scalars(f)),
            Value::Map(entries) => {
                for (k, v) in entries {
                    k.map_scalars(f);
                    v.map_scalars(f);
                }
            }
        }
    }
}

enum Frame {
    Seq(Pos, usize, Vec<Node>),
    Map(Pos, usize, Vec<(Node, Node)>, Option<Node>),
}

/// Parses the first document of `text`. An empty document is a null scalar.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    parse_file(text, None)
}

/// Parses the first document of `text`, read from `file`: every position names the file.
pub fn parse_file(text: &str, file: Option<&'static Path>) -> Result<Node, SyntaxError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: std::collections::HashMap<usize, Node> = std::collections::HashMap::new();
    let mut root: Option<Node> = None;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| SyntaxError {
            pos: Pos {
                file,
                line: e.marker().line(),
                col: e.marker().col() + 1,
            },
            message: e.info().to_owned(),
        })?;
        let pos = Pos {
            file,
            line: span.start.line(),
            col: span.start.col() + 1,
        };
        let (node, anchor) = match event {
            Event::Scalar(value, style, anchor, _tag) => (
                Node::scalar(&value, style == ScalarStyle::Plain, pos),
                anchor,
            ),
            Event::Alias(id) => match anchors.get(&id) {
                Some(node) => (node.clone(), 0),
                None => {
                    return Err(SyntaxError {
                        pos,
                        message: "unknown alias".into(),
                    })
                }
            },
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq(pos, anchor, Vec::new()));
                continue;
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map(pos, anchor, Vec::new(), None));
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(pos, anchor, items)) => (
                    Node {
                        pos,
                        value: Value::Seq(items),
                    },
                    anchor,
                ),
                _ => continue,
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(pos, anchor, entries, _)) => (
                    Node {
                        pos,
                        value: Value::Map(entries),
                    },
                    anchor,
                ),
                _ => continue,
            },
            Event::DocumentEnd => {
                if root.is_some() {
                    break;
                }
                continue;
            }
            _ => continue,
        };
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            Some(Frame::Seq(_, _, items)) => items.push(node),
            Some(Frame::Map(_, _, entries, key)) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => *key = Some(node),
            },
            None => root = Some(node),
        }
    }
    Ok(root.unwrap_or_else(|| {
        Node::scalar(
            "",
            true,
            Pos {
                file,
                line: 1,
                col: 1,
            },
        )
    }))
}

/// Writes `node` as a YAML document: block style, two-space indents, scalars plain where
/// that reads back as the same text, single-quoted otherwise, multi-line text as `|` blocks.
pub fn to_yaml(node: &Node) -> String {
    let mut out = String::new();
    match &node.value {
        Value::Scalar { .. } => {
            out.push_str(&scalar_text(node, 0));
            out.push('\n');
        }
        _ => block(node, 0, &mut out),
    }
    out
}

/// Writes a mapping or sequence at `indent`, each entry on its own line(s).
fn block(node: &Node, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match &node.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                out.push_str(&pad);
                out.push_str(&scalar_text(k, indent));
                out.push(':');
                value_after(v, indent, out);
            }
        }
        Value::Seq(items) => {
            for item in items {
                out.push_str(&pad);
                out.push('-');
                match &item.value {
                    Value::Map(entries) if !entries.is_empty() => {
                        // The first entry on the dash's line, the others under it.
                        let mut first = String::new();
                        block(item, indent + 2, &mut first);
                        out.push(' ');
                        out.push_str(&first[indent + 2..]);
                    }
                    _ => value_after(item, indent, out),
                }
            }
        }
        Value::Scalar { .. } => {
            out.push_str(&pad);
            out.push_str(&scalar_text(node, indent));
            out.push('\n');
        }
    }
}

/// Writes the value after `key:` or `-`.
fn value_after(v: &Node, indent: usize, out: &mut String) {
    match &v.value {
        Value::Map(e) if e.is_empty() => out.push_str(" {}\n"),
        Value::Seq(i) if i.is_empty() => out.push_str(" []\n"),
        Value::Map(_) => {
            out.push('\n');
            block(v, indent + 2, out);
        }
        Value::Seq(_) => {
            out.push('\n');
            block(v, indent + 2, out);
        }
        Value::Scalar { .. } if v.is_null() && v.as_str() == Some("") => out.push('\n'),
        Value::Scalar { .. } => {
            out.push(' ');
            out.push_str(&scalar_text(v, indent));
            out.push('\n');
        }
    }
}

/// A scalar as YAML text; a multi-line one becomes a literal block indented under `indent`.
fn scalar_text(node: &Node, indent: usize) -> String {
    let Value::Scalar { text, plain } = &node.value else {
        return String::new();
    };
    let body = text.trim_end_matches('\n');
    if text.contains('\n')
        && !body.is_empty()
        && !body.starts_with([' ', '\t'])
        && !text.chars().any(|c| c.is_control() && c != '\n')
    {
        let trailing = text.len() - body.len();
        let mut s = String::from(match trailing {
            0 => "|-",
            1 => "|",
            _ => "|+",
        });
        let pad = " ".repeat(indent + 2);
        for line in body.split('\n') {
            s.push('\n');
            if !line.is_empty() {
                s.push_str(&pad);
                s.push_str(line);
            }
        }
        // `|+` keeps the empty lines after the text; the writer ends the last one.
        s.push_str(&"\n".repeat(trailing.saturating_sub(1)));
        return s;
    }
    if *plain && plain_is_safe(text) {
        return text.clone();
    }
    if text.chars().any(char::is_control) {
        return serde_json::Value::String(text.clone()).to_string();
    }
    format!("'{}'", text.replace('\'', "''"))
}

/// Whether `text` written plain reads back as the same plain scalar.
fn plain_is_safe(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return true;
    };
    let dash_indicator =
        first == '-' && (text == "-" || text.starts_with("- ") || text.starts_with("---"));
    let other_indicator = first != '-' && "?:,[]{}#&*!|>'\"%@`".contains(first);
    !(text.starts_with(' ')
        || text.ends_with(' ')
        || text.ends_with(':')
        || text.contains(": ")
        || text.contains(" #")
        || text.contains('\t')
        || dash_indicator
        || other_indicator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_and_text() {
        let doc = parse("a: 1\nb:\n  - x: '3.10'\n    y: yes\nc:\n").unwrap();
        assert_eq!(doc.get("a").unwrap().as_str(), Some("1"));
        let b = doc.get("b").unwrap().as_seq().unwrap();
        assert_eq!(b[0].pos.line, 3);
        assert_eq!(b[0].get("x").unwrap().as_str(), Some("3.10"));
        assert_eq!(
            b[0].get("y").unwrap().pos,
            Pos {
                file: None,
                line: 4,
                col: 8
            }
        );
        assert!(doc.get("c").unwrap().is_null());
    }

    /// Positions are compared apart: a written tree reads back as the same values.
    fn same(a: &Node, b: &Node) -> bool {
        match (&a.value, &b.value) {
            (Value::Scalar { text: x, .. }, Value::Scalar { text: y, .. }) => {
                x == y && a.is_null() == b.is_null()
            }
            (Value::Seq(x), Value::Seq(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
            }
            (Value::Map(x), Value::Map(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .zip(y)
                        .all(|((k1, v1), (k2, v2))| same(k1, k2) && same(v1, v2))
            }
            _ => false,
        }
    }

    #[test]
    fn writes_what_it_reads() {
        let text = "a: 1\nempty:\nquoted: ''\nnull-text: 'null'\nlist:\n- x\n- k: v\n  other: [1, 2]\n  nested:\n  - deep: {}\n- []\n- - inner\nodd: ': # x'\nlead: ' sp'\ndash: '- x'\nstar: '*x'\nscript: |\n  echo a\n\n    indented\nkeep: |+\n  a\n\n\nstrip: |-\n  a\n  b\nctrl: \"a\\u0001b\"\nquote: it's\n";
        let doc = parse(text).unwrap();
        let written = to_yaml(&doc);
        let back = parse(&written).unwrap();
        assert!(same(&doc, &back), "{written}");
        assert!(
            written.contains("script: |\n  echo a\n\n    indented\n"),
            "{written}"
        );
        assert!(
            written.contains("  - k: v\n    other:\n      - 1\n"),
            "{written}"
        );
        assert!(written.contains("null-text: 'null'"), "{written}");
    }

    #[test]
    fn positions_name_the_file() {
        let f = intern(Path::new("/x/t.yml"));
        let doc = parse_file("a:\n  b: c\n", Some(f)).unwrap();
        let b = doc.get("a").unwrap().get("b").unwrap();
        assert_eq!(b.pos.to_string(), "/x/t.yml:2:6");
        assert!(std::ptr::eq(f, intern(Path::new("/x/t.yml"))));
    }

    #[test]
    fn aliases_and_errors() {
        let doc = parse("a: &x [1, 2]\nb: *x\n").unwrap();
        assert_eq!(doc.get("b").unwrap().as_seq().unwrap().len(), 2);
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 2, "{err:?}");
    }
}
