//! A YAML document as a tree of nodes that remember their line and column, so that every
//! pipeline error can point at `file:line`. Scalars stay the text that was written: Azure
//! Pipelines reads every scalar as a string (`3.10` stays `3.10`, `yes` stays `yes`).

use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle};

/// Where a node starts: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
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
    fn scalar(text: &str, plain: bool, pos: Pos) -> Node {
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
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: std::collections::HashMap<usize, Node> = std::collections::HashMap::new();
    let mut root: Option<Node> = None;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| SyntaxError {
            pos: Pos {
                line: e.marker().line(),
                col: e.marker().col() + 1,
            },
            message: e.info().to_owned(),
        })?;
        let pos = Pos {
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
    Ok(root.unwrap_or_else(|| Node::scalar("", true, Pos { line: 1, col: 1 })))
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
        assert_eq!(b[0].get("y").unwrap().pos, Pos { line: 4, col: 8 });
        assert!(doc.get("c").unwrap().is_null());
    }

    #[test]
    fn aliases_and_errors() {
        let doc = parse("a: &x [1, 2]\nb: *x\n").unwrap();
        assert_eq!(doc.get("b").unwrap().as_seq().unwrap().len(), 2);
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 2, "{err:?}");
    }
}
