//! Logging commands (`##vso[area.event k=v;]message`): the one writer and the one parser.
//!
//! The writer escapes exactly as azure-pipelines-task-lib does (taskcommand.ts); the parser
//! finds and unescapes commands exactly as the agent does (Command.cs), so that what a task
//! prints and what the runner reads agree with a real agent.

use std::collections::BTreeMap;
use std::fmt::Write as _;

const PREFIX: &str = "##vso[";

/// Escapes a property value: `%` first, so the other escapes are not escaped again.
pub fn escape_property(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '%' => out.push_str("%AZP25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            ']' => out.push_str("%5D"),
            ';' => out.push_str("%3B"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a message: only `%`, CR and LF; `;` and `]` are safe after the closing bracket.
pub fn escape_message(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '%' => out.push_str("%AZP25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c => out.push(c),
        }
    }
    out
}

/// The agent's unescaping, applied in its order: the `%AZP25` step comes last so that an
/// escaped `%` can never form another escape.
pub fn unescape(value: &str) -> String {
    value
        .replace("%3B", ";")
        .replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%5D", "]")
        .replace("%AZP25", "%")
}

/// Formats one logging command line (without the trailing newline). Empty property values
/// are left out, as task-lib leaves out falsy ones.
pub fn format(command: &str, properties: &[(&str, &str)], message: &str) -> String {
    let mut line = String::with_capacity(PREFIX.len() + command.len() + message.len() + 16);
    line.push_str(PREFIX);
    line.push_str(command);
    let mut first = true;
    for (key, value) in properties {
        if value.is_empty() {
            continue;
        }
        if first {
            line.push(' ');
            first = false;
        }
        let _ = write!(line, "{key}={};", escape_property(value));
    }
    line.push(']');
    line.push_str(&escape_message(message));
    line
}

/// Makes text that did not come from the task itself (a notebook's output, an error trace, a
/// server's message) safe to print as plain log lines: the agent runs a logging command found
/// anywhere in a line of output, so `##vso[` and the display prefix `##[` get a space after
/// the `##`. Without this, a notebook printing `##vso[task.setvariable …]` would set pipeline
/// variables.
pub fn neutralize(text: &str) -> String {
    if !text.contains("##") {
        return text.to_owned();
    }
    text.replace("##vso[", "## vso[").replace("##[", "## [")
}

/// A parsed logging command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub area: String,
    pub event: String,
    /// Property keys lower-cased: the agent compares them case-insensitively.
    pub properties: BTreeMap<String, String>,
    pub data: String,
}

impl Command {
    /// A property by case-insensitive name.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .get(&key.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// A boolean property as the agent reads it (`true`, any case).
    pub fn flag(&self, key: &str) -> bool {
        self.property(key)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// `area.event`, lower-cased, for matching.
    pub fn name(&self) -> String {
        format!(
            "{}.{}",
            self.area.to_ascii_lowercase(),
            self.event.to_ascii_lowercase()
        )
    }
}

/// Parses a line the way the agent does: `##vso[` may appear anywhere; the command runs to
/// the first `]`; `area.event` must split into exactly two parts; properties follow the first
/// space, split on `;` and then on the first `=`, entries with an empty key or value dropped.
/// Returns `None` for a line that is not a command (the agent prints such lines as output).
pub fn parse(line: &str) -> Option<Command> {
    let start = line.find(PREFIX)?;
    let rest = &line[start + PREFIX.len()..];
    let close = rest.find(']')?;
    let info = &rest[..close];
    let data = &rest[close + 1..];
    let (name, props) = match info.find(' ') {
        Some(space) => (&info[..space], &info[space + 1..]),
        None => (info, ""),
    };
    let mut parts = name.split('.');
    let (area, event) = match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(e), None) if !a.is_empty() && !e.is_empty() => (a, e),
        _ => return None,
    };
    let mut properties = BTreeMap::new();
    for entry in props.split(';') {
        let Some((key, value)) = entry.split_once('=') else {
            continue;
        };
        if key.is_empty() || value.is_empty() {
            continue;
        }
        properties.insert(key.to_ascii_lowercase(), unescape(value));
    }
    Some(Command {
        area: area.to_owned(),
        event: event.to_owned(),
        properties,
        data: unescape(data.trim_end_matches(['\r', '\n'])),
    })
}

/// Task results, ordered from best to worst so that `max` merges them as the agent does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TaskResult {
    Succeeded,
    SucceededWithIssues,
    Failed,
}

impl TaskResult {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskResult::Succeeded => "Succeeded",
            TaskResult::SucceededWithIssues => "SucceededWithIssues",
            TaskResult::Failed => "Failed",
        }
    }

    /// Reads a `task.complete result=` value, case-insensitively as the agent does.
    pub fn parse(value: &str) -> Option<TaskResult> {
        [
            TaskResult::Succeeded,
            TaskResult::SucceededWithIssues,
            TaskResult::Failed,
        ]
        .into_iter()
        .find(|r| r.as_str().eq_ignore_ascii_case(value.trim()))
    }
}

/// Issue severity for `task.logissue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueType {
    Error,
    Warning,
}

impl IssueType {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueType::Error => "error",
            IssueType::Warning => "warning",
        }
    }
}

/// Where an issue points in the sources; every field optional.
#[derive(Debug, Clone, Default)]
pub struct IssueSource<'a> {
    pub code: Option<&'a str>,
    pub source_path: Option<&'a str>,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

/// Builders for the commands a task uses. Each returns the line; `emit` prints it.
pub mod line {
    use super::{format, IssueSource, IssueType, TaskResult};

    fn flag(value: bool) -> &'static str {
        if value {
            "true"
        } else {
            "false"
        }
    }

    /// `task.setvariable`. The value of a secret is the caller's to register first.
    pub fn set_variable(
        name: &str,
        value: &str,
        secret: bool,
        output: bool,
        read_only: bool,
    ) -> String {
        format(
            "task.setvariable",
            &[
                ("variable", name),
                ("isSecret", flag(secret)),
                ("isOutput", flag(output)),
                ("isReadOnly", if read_only { "true" } else { "" }),
            ],
            value,
        )
    }

    pub fn set_secret(value: &str) -> String {
        format("task.setsecret", &[], value)
    }

    pub fn log_issue(kind: IssueType, message: &str, source: &IssueSource<'_>) -> String {
        let line_number = source.line.map(|n| n.to_string()).unwrap_or_default();
        let column_number = source.column.map(|n| n.to_string()).unwrap_or_default();
        format(
            "task.logissue",
            &[
                ("type", kind.as_str()),
                ("code", source.code.unwrap_or("")),
                ("sourcepath", source.source_path.unwrap_or("")),
                ("linenumber", &line_number),
                ("columnnumber", &column_number),
            ],
            message,
        )
    }

    pub fn complete(result: TaskResult, message: &str) -> String {
        format("task.complete", &[("result", result.as_str())], message)
    }

    pub fn set_progress(percent: u8, description: &str) -> String {
        let value = percent.min(100).to_string();
        format("task.setprogress", &[("value", &value)], description)
    }

    pub fn debug(message: &str) -> String {
        format("task.debug", &[], message)
    }

    pub fn upload_summary(path: &str) -> String {
        format("task.uploadsummary", &[], path)
    }

    pub fn add_attachment(kind: &str, name: &str, path: &str) -> String {
        format(
            "task.addattachment",
            &[("type", kind), ("name", name)],
            path,
        )
    }

    pub fn prepend_path(dir: &str) -> String {
        format("task.prependpath", &[], dir)
    }

    /// `##[group]` opens a collapsible section; it is display-only, not a command.
    pub fn group(title: &str) -> String {
        format!("##[group]{}", title.replace(['\r', '\n'], " "))
    }

    pub fn end_group() -> String {
        "##[endgroup]".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_format_vectors() {
        assert_eq!(
            format("some.cmd", &[("foo", "bar")], "a message"),
            "##vso[some.cmd foo=bar;]a message"
        );
        assert_eq!(
            format(
                "some.cmd",
                &[("foo", "bar")],
                "cr \r lf \n crlf \r\n eom ] ;"
            ),
            "##vso[some.cmd foo=bar;]cr %0D lf %0A crlf %0D%0A eom ] ;"
        );
        assert_eq!(
            format("some.cmd", &[("foo", ";=\r=\n%3B")], "dog"),
            "##vso[some.cmd foo=%3B=%0D=%0A%AZP253B;]dog"
        );
        assert_eq!(
            format(
                "task.setvariable",
                &[("variable", "bar"), ("isOutput", "true")],
                "dog"
            ),
            "##vso[task.setvariable variable=bar;isOutput=true;]dog"
        );
        assert_eq!(
            format("some.cmd", &[], "a message"),
            "##vso[some.cmd]a message"
        );
        assert_eq!(
            format(
                "task.setvariable",
                &[
                    ("variable", "out.var"),
                    ("isOutput", "true"),
                    ("issecret", "false")
                ],
                "a;b]c%d\r\ne"
            ),
            "##vso[task.setvariable variable=out.var;isOutput=true;issecret=false;]a;b]c%AZP25d%0D%0Ae"
        );
        assert_eq!(
            line::log_issue(
                IssueType::Warning,
                "warn msg",
                &IssueSource {
                    code: Some("W001"),
                    source_path: Some("src/a.rs"),
                    line: Some(10),
                    column: Some(5)
                }
            ),
            "##vso[task.logissue type=warning;code=W001;sourcepath=src/a.rs;linenumber=10;columnnumber=5;]warn msg"
        );
    }

    #[test]
    fn empty_property_values_are_left_out() {
        assert_eq!(
            format("a.b", &[("x", ""), ("y", "1")], "m"),
            "##vso[a.b y=1;]m"
        );
        assert_eq!(format("a.b", &[("x", "")], "m"), "##vso[a.b]m");
    }

    #[test]
    fn spec_parse_vectors() {
        let c =
            parse("##vso[area.event k1=%3B=%0D=%0A=%5D%AZP25;]%3B-%0D-%0A-%5D%AZP253B").unwrap();
        assert_eq!(c.area, "area");
        assert_eq!(c.event, "event");
        assert_eq!(c.property("k1"), Some(";=\r=\n=]%"));
        assert_eq!(c.data, ";-\r-\n-]%3B");

        let c = parse("##vso[area.event k1=;k2=;]").unwrap();
        assert!(c.properties.is_empty());
        assert_eq!(c.data, "");

        let c = parse(">>>   ##vso[area.event k1=v1;]msg").unwrap();
        assert_eq!(c.property("K1"), Some("v1"));
        assert_eq!(c.data, "msg");
    }

    #[test]
    fn not_commands() {
        assert_eq!(parse("plain output"), None);
        assert_eq!(parse("##vso[no closing bracket"), None);
        assert_eq!(parse("##vso[single]x"), None);
        assert_eq!(parse("##vso[a.b.c]x"), None);
        assert_eq!(parse("##[group]title"), None);
    }

    #[test]
    fn neutralized_text_holds_no_command() {
        let hostile = "ok\n##vso[task.setvariable variable=x]y\nnext ##[error]fake";
        let safe = neutralize(hostile);
        assert!(safe.lines().all(|l| parse(l).is_none()), "{safe}");
        assert!(!safe.contains("##["));
        assert_eq!(neutralize("plain # text"), "plain # text");
    }

    #[test]
    fn keys_are_case_insensitive_and_flags_read_true() {
        let c = parse("##vso[task.setvariable variable=x;IsOutput=True;isSecret=false;]v").unwrap();
        assert!(c.flag("isoutput"));
        assert!(!c.flag("issecret"));
        assert_eq!(c.name(), "task.setvariable");
    }

    #[test]
    fn results_merge_to_the_worst() {
        use TaskResult::*;
        assert_eq!(Succeeded.max(SucceededWithIssues), SucceededWithIssues);
        assert_eq!(Failed.max(SucceededWithIssues), Failed);
        assert_eq!(TaskResult::parse("failed"), Some(Failed));
        assert_eq!(TaskResult::parse("nope"), None);
    }

    #[test]
    fn builders() {
        assert_eq!(
            line::set_variable("a.b", "v", true, false, false),
            "##vso[task.setvariable variable=a.b;isSecret=true;isOutput=false;]v"
        );
        assert_eq!(
            line::complete(TaskResult::Failed, "boom"),
            "##vso[task.complete result=Failed;]boom"
        );
        assert_eq!(line::group("a\nb"), "##[group]a b");
    }

    proptest::proptest! {
        #[test]
        fn parse_inverts_format(value in "(?s).*", message in "(?s).*", key in "[a-z][a-z0-9]{0,8}") {
            let line = format("area.event", &[(&key, &value)], &message);
            // The message may not contain a line break once escaped: one command, one line.
            proptest::prop_assert!(!line.contains('\n') && !line.contains('\r'));
            let parsed = parse(&line).unwrap();
            if value.is_empty() {
                proptest::prop_assert!(parsed.properties.is_empty());
            } else {
                proptest::prop_assert_eq!(parsed.property(&key), Some(value.as_str()));
            }
            proptest::prop_assert_eq!(parsed.data, message);
        }

        #[test]
        fn parse_inverts_format_for_tricky_alphabets(
            value in "[;\\]%\r\n=a-zé😀 ]{0,24}",
            message in "[;\\]%\r\n=a-zé😀 ]{0,24}",
        ) {
            let line = format("task.setvariable", &[("variable", &value)], &message);
            let parsed = parse(&line).unwrap();
            if !value.is_empty() {
                proptest::prop_assert_eq!(parsed.property("variable"), Some(value.as_str()));
            }
            proptest::prop_assert_eq!(parsed.data, message);
        }
    }
}
