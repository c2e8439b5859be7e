//! What-if results made readable: a table of resource changes with their property deltas for
//! the log, and the same as Markdown for the run's summary page.

use std::fmt::Write as _;

use azure::{Change, ChangeType, PropertyChange, WhatIfResult};
use serde_json::Value;

/// A resource id split into the type and name a person reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceLabel {
    pub resource_type: String,
    pub name: String,
}

/// `…/providers/Ns/typeA/nameA/typeB/nameB` → `Ns/typeA/typeB`, `nameA/nameB`; resource groups
/// and subscriptions by their own types.
pub fn resource_label(id: &str) -> ResourceLabel {
    let lower = id.to_ascii_lowercase();
    if let Some(at) = lower.rfind("/providers/") {
        let rest: Vec<&str> = id[at + "/providers/".len()..]
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        if let Some((namespace, pairs)) = rest.split_first() {
            let mut types = vec![namespace.to_string()];
            let mut names = Vec::new();
            for pair in pairs.chunks(2) {
                types.push(pair[0].to_owned());
                if let Some(n) = pair.get(1) {
                    names.push(n.to_string());
                }
            }
            return ResourceLabel {
                resource_type: types.join("/"),
                name: names.join("/"),
            };
        }
    }
    let parts: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    match parts.as_slice() {
        [_, _, rg, name] if rg.eq_ignore_ascii_case("resourcegroups") => ResourceLabel {
            resource_type: "Microsoft.Resources/resourceGroups".into(),
            name: name.to_string(),
        },
        [_, sub] => ResourceLabel {
            resource_type: "Microsoft.Resources/subscriptions".into(),
            name: sub.to_string(),
        },
        _ => ResourceLabel {
            resource_type: String::new(),
            name: id.to_owned(),
        },
    }
}

fn symbol(change: &ChangeType) -> &'static str {
    match change {
        ChangeType::Create => "+",
        ChangeType::Delete => "-",
        ChangeType::Modify => "~",
        ChangeType::Deploy => "!",
        ChangeType::NoChange => "=",
        ChangeType::Ignore => "*",
        ChangeType::Unsupported | ChangeType::Other(_) => "?",
    }
}

fn order(change: &ChangeType) -> u8 {
    match change {
        ChangeType::Create => 0,
        ChangeType::Modify => 1,
        ChangeType::Delete => 2,
        ChangeType::Deploy => 3,
        ChangeType::Unsupported | ChangeType::Other(_) => 4,
        ChangeType::NoChange => 5,
        ChangeType::Ignore => 6,
    }
}

fn property_symbol(kind: &str) -> &'static str {
    match kind {
        "Create" => "+",
        "Delete" => "-",
        "Modify" => "~",
        "Array" => "~",
        "NoEffect" => "x",
        _ => "?",
    }
}

/// A value on one line, shortened.
fn short(value: &Option<Value>) -> String {
    let text = match value {
        None => return String::new(),
        Some(v) => v.to_string(),
    };
    if text.chars().count() > 100 {
        let cut: String = text.chars().take(97).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// One line per property change, children indented under their array.
fn delta_lines(delta: &[PropertyChange], depth: usize, out: &mut Vec<(usize, String)>) {
    for p in delta {
        let sym = property_symbol(&p.property_change_type);
        let line = match p.property_change_type.as_str() {
            "Create" => format!("{sym} {}: {}", p.path, short(&p.after)),
            "Delete" => format!("{sym} {}: {}", p.path, short(&p.before)),
            "Modify" => format!(
                "{sym} {}: {} => {}",
                p.path,
                short(&p.before),
                short(&p.after)
            ),
            "Array" => format!("{sym} {}: [", p.path),
            "NoEffect" => format!("{sym} {}: {} (no effect)", p.path, short(&p.after)),
            other => format!("{sym} {} ({other})", p.path),
        };
        out.push((depth, line));
        if !p.children.is_empty() {
            delta_lines(&p.children, depth + 1, out);
        }
        if p.property_change_type == "Array" {
            out.push((depth, "  ]".into()));
        }
    }
}

/// How many changes of each kind.
pub fn summary_line(result: &WhatIfResult) -> String {
    let count = |t: ChangeType| result.changes.iter().filter(|c| c.change_type == t).count();
    let mut parts = vec![
        format!("{} to create", count(ChangeType::Create)),
        format!("{} to modify", count(ChangeType::Modify)),
        format!("{} to delete", count(ChangeType::Delete)),
    ];
    let deploy = count(ChangeType::Deploy);
    if deploy > 0 {
        parts.push(format!("{deploy} to deploy"));
    }
    parts.push(format!("{} unchanged", count(ChangeType::NoChange)));
    parts.push(format!("{} ignored", count(ChangeType::Ignore)));
    let unsupported = result
        .changes
        .iter()
        .filter(|c| {
            matches!(
                c.change_type,
                ChangeType::Unsupported | ChangeType::Other(_)
            )
        })
        .count();
    if unsupported > 0 {
        parts.push(format!("{unsupported} not predictable"));
    }
    parts.join(", ")
}

fn sorted(result: &WhatIfResult) -> Vec<&Change> {
    let mut changes: Vec<&Change> = result.changes.iter().collect();
    changes.sort_by_key(|c| (order(&c.change_type), c.resource_id.to_ascii_lowercase()));
    changes
}

/// The log's table: one row per resource, property deltas under modified ones.
pub fn render_text(result: &WhatIfResult) -> String {
    let changes = sorted(result);
    let mut out = format!("Resource changes: {}.\n", summary_line(result));
    if changes.is_empty() {
        out.push_str("The template changes no resource.\n");
        return out;
    }
    let labels: Vec<ResourceLabel> = changes
        .iter()
        .map(|c| resource_label(&c.resource_id))
        .collect();
    let kind_width = changes
        .iter()
        .map(|c| c.change_type.to_string().len())
        .max()
        .unwrap_or(6)
        .max(6);
    let type_width = labels
        .iter()
        .map(|l| l.resource_type.len())
        .max()
        .unwrap_or(4)
        .max(13);
    let _ = writeln!(
        out,
        "\n    {:kind_width$}  {:type_width$}  Name",
        "Change", "Resource type"
    );
    for (change, label) in changes.iter().zip(&labels) {
        let _ = writeln!(
            out,
            "  {} {:kind_width$}  {:type_width$}  {}",
            symbol(&change.change_type),
            change.change_type.to_string(),
            label.resource_type,
            label.name
        );
        if let Some(reason) = &change.unsupported_reason {
            let _ = writeln!(out, "        reason: {reason}");
        }
        let mut lines = Vec::new();
        delta_lines(&change.delta, 0, &mut lines);
        for (depth, line) in lines {
            let _ = writeln!(out, "        {}{line}", "  ".repeat(depth));
        }
    }
    out.push_str("\nLegend: + create, ~ modify, - delete, ! deploy, = no change, * ignore, ? cannot be predicted.\n");
    out
}

fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The summary page's Markdown.
pub fn render_markdown(result: &WhatIfResult, title: &str) -> String {
    let mut out = format!("## {}\n\n**{}**\n\n", md_cell(title), summary_line(result));
    let changes = sorted(result);
    if changes.is_empty() {
        out.push_str("The template changes no resource.\n");
        return out;
    }
    out.push_str(
        "| Change | Resource type | Name | Property changes |\n| --- | --- | --- | --- |\n",
    );
    for change in changes {
        let label = resource_label(&change.resource_id);
        let mut lines = Vec::new();
        delta_lines(&change.delta, 0, &mut lines);
        let mut details: Vec<String> = lines
            .into_iter()
            .map(|(depth, line)| {
                format!(
                    "{}`{}`",
                    "&nbsp;&nbsp;".repeat(depth),
                    md_cell(&line).replace('`', "'")
                )
            })
            .collect();
        if let Some(reason) = &change.unsupported_reason {
            details.insert(0, md_cell(reason));
        }
        let _ = writeln!(
            out,
            "| {} {} | `{}` | `{}` | {} |",
            symbol(&change.change_type),
            change.change_type,
            md_cell(&label.resource_type),
            md_cell(&label.name),
            details.join("<br>")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(id: &str, t: ChangeType, delta: Vec<PropertyChange>) -> Change {
        Change {
            resource_id: id.into(),
            change_type: t,
            delta,
            before: None,
            after: None,
            unsupported_reason: None,
        }
    }

    fn pc(path: &str, kind: &str, before: Option<Value>, after: Option<Value>) -> PropertyChange {
        PropertyChange {
            path: path.into(),
            property_change_type: kind.into(),
            before,
            after,
            children: vec![],
        }
    }

    fn sample() -> WhatIfResult {
        let rg = "/subscriptions/s/resourceGroups/rg/providers";
        WhatIfResult {
            changes: vec![
                change(
                    &format!("{rg}/Microsoft.Storage/storageAccounts/old"),
                    ChangeType::Delete,
                    vec![],
                ),
                change(
                    &format!("{rg}/Microsoft.DataFactory/factories/adf/pipelines/p1"),
                    ChangeType::Modify,
                    vec![
                        pc(
                            "properties.variables.f.defaultValue",
                            "Modify",
                            Some(json!("a.csv")),
                            Some(json!("b.csv")),
                        ),
                        pc("tags.env", "Create", None, Some(json!("dev"))),
                        PropertyChange {
                            children: vec![pc("0", "Delete", Some(json!("x|y")), None)],
                            ..pc("properties.list", "Array", None, None)
                        },
                    ],
                ),
                change(
                    &format!("{rg}/Microsoft.DataFactory/factories/adf"),
                    ChangeType::Create,
                    vec![],
                ),
                change(
                    &format!("{rg}/Microsoft.Web/sites/same"),
                    ChangeType::NoChange,
                    vec![],
                ),
            ],
        }
    }

    #[test]
    fn labels() {
        assert_eq!(
            resource_label("/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataFactory/factories/adf/pipelines/p1"),
            ResourceLabel { resource_type: "Microsoft.DataFactory/factories/pipelines".into(), name: "adf/p1".into() }
        );
        assert_eq!(
            resource_label("/subscriptions/s/resourceGroups/rg"),
            ResourceLabel {
                resource_type: "Microsoft.Resources/resourceGroups".into(),
                name: "rg".into()
            }
        );
        assert_eq!(
            resource_label("/subscriptions/s").resource_type,
            "Microsoft.Resources/subscriptions"
        );
    }

    #[test]
    fn text_table() {
        let text = render_text(&sample());
        assert!(
            text.starts_with(
                "Resource changes: 1 to create, 1 to modify, 1 to delete, 1 unchanged, 0 ignored."
            ),
            "{text}"
        );
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
            .collect();
        assert_eq!(rows.len(), 4, "{text}");
        assert!(
            rows[0].starts_with("  + Create")
                && rows[0].ends_with("Microsoft.DataFactory/factories            adf"),
            "{text}"
        );
        assert!(
            rows[1].starts_with("  ~ Modify") && rows[1].ends_with("adf/p1"),
            "{text}"
        );
        assert!(
            rows[2].starts_with("  - Delete") && rows[2].ends_with("old"),
            "{text}"
        );
        assert!(rows[3].starts_with("  = NoChange"), "{text}");
        assert!(
            text.contains("~ properties.variables.f.defaultValue: \"a.csv\" => \"b.csv\""),
            "{text}"
        );
        assert!(text.contains("+ tags.env: \"dev\""), "{text}");
        assert!(text.contains("  - 0: \"x|y\""), "{text}");
    }

    #[test]
    fn markdown_table() {
        let md = render_markdown(&sample(), "What-if of deployment d");
        assert!(
            md.starts_with("## What-if of deployment d\n\n**1 to create"),
            "{md}"
        );
        assert!(
            md.contains("| + Create | `Microsoft.DataFactory/factories` | `adf` |  |"),
            "{md}"
        );
        assert!(
            md.contains("`~ properties.variables.f.defaultValue: \"a.csv\" => \"b.csv\"`<br>"),
            "{md}"
        );
        // A pipe inside a value cannot break the table.
        assert!(md.contains("x\\|y"), "{md}");
    }

    #[test]
    fn nothing_to_change() {
        let empty = WhatIfResult { changes: vec![] };
        assert!(render_text(&empty).contains("changes no resource"));
        assert!(render_markdown(&empty, "t").contains("changes no resource"));
    }
}
