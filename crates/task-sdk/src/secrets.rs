//! The process-wide secret register: every secret the task reads or creates is announced to
//! the agent with `task.setsecret` before it could appear in any output, and masked in every
//! message this crate prints itself.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Mutex, MutexGuard};

use crate::command::line;

static SECRETS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn secrets() -> MutexGuard<'static, BTreeSet<String>> {
    // A poisoned lock still holds a valid set: masking must keep working after a panic.
    SECRETS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers a secret: prints `##vso[task.setsecret]` for the whole value and, for a
/// multi-line value, for each line (the agent masks log output line by line), then masks it
/// in everything [`mask`] sees. Registering a value twice prints nothing the second time.
pub fn register(value: &str) {
    let mut pieces: Vec<&str> = vec![value];
    if value.contains(['\n', '\r']) {
        pieces.extend(value.split(['\n', '\r']));
    }
    let mut set = secrets();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for piece in pieces {
        let piece = piece.trim();
        // Masking one or two characters would shred the log and protects nothing.
        if piece.len() < 3 || !set.insert(piece.to_owned()) {
            continue;
        }
        let _ = writeln!(out, "{}", line::set_secret(piece));
    }
    let _ = out.flush();
}

/// Replaces every registered secret in `text` with `***`, longest first so that a secret
/// containing another is masked whole.
pub fn mask(text: &str) -> String {
    let set = secrets();
    if set.is_empty() {
        return text.to_owned();
    }
    let mut ordered: Vec<&String> = set.iter().collect();
    ordered.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for secret in ordered {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_registered_values_longest_first() {
        register("abc-secret-value");
        register("abc-secret-value-longer");
        assert_eq!(
            mask("x abc-secret-value-longer y abc-secret-value"),
            "x *** y ***"
        );
    }

    #[test]
    fn multi_line_secrets_are_masked_per_line() {
        register("first-line-xyz\nsecond-line-xyz");
        assert_eq!(mask("got second-line-xyz"), "got ***");
    }
}
