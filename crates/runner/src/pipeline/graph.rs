//! Dependency graphs of stages and jobs.

use std::collections::HashSet;

/// A dependency cycle, as `a -> b -> a`, if any.
pub(super) fn find_cycle<'a>(
    nodes: impl Iterator<Item = (&'a str, &'a [String])>,
) -> Option<String> {
    let nodes: Vec<(&str, &[String])> = nodes.collect();
    fn visit<'a>(
        n: &'a str,
        nodes: &[(&'a str, &'a [String])],
        path: &mut Vec<&'a str>,
        done: &mut HashSet<String>,
    ) -> Option<String> {
        if let Some(i) = path.iter().position(|p| p.eq_ignore_ascii_case(n)) {
            let mut cycle: Vec<&str> = path[i..].to_vec();
            cycle.push(n);
            return Some(cycle.join(" -> "));
        }
        if done.contains(&n.to_ascii_lowercase()) {
            return None;
        }
        path.push(n);
        if let Some((_, deps)) = nodes.iter().find(|(name, _)| name.eq_ignore_ascii_case(n)) {
            for d in deps.iter() {
                if let Some(c) = visit(d, nodes, path, done) {
                    return Some(c);
                }
            }
        }
        path.pop();
        done.insert(n.to_ascii_lowercase());
        None
    }
    let mut done = HashSet::new();
    for (name, _) in &nodes {
        if let Some(c) = visit(name, &nodes, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}
