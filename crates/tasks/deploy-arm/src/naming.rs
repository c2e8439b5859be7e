//! Deployment names: generated as the Microsoft task does when none is given, validated when
//! one is.

use std::time::SystemTime;

/// A deployment name ARM would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the deployment name '{name}' {problem}")]
pub struct NameError {
    pub name: String,
    pub problem: String,
}

/// ARM's rule: `^[-\w\._\(\)]+$` (JavaScript's ASCII `\w`), at most 64 characters.
pub fn validate_deployment_name(name: &str) -> Result<(), NameError> {
    let error = |problem: String| NameError {
        name: name.to_owned(),
        problem,
    };
    if name.is_empty() {
        return Err(error("is empty".into()));
    }
    if let Some(bad) = name.chars().find(|c| !allowed(*c)) {
        return Err(error(format!(
            "contains '{bad}': only letters, digits, '-', '_', '.', '(' and ')' are allowed"
        )));
    }
    let length = name.chars().count();
    if length > 64 {
        return Err(error(format!(
            "has {length} characters; at most 64 are allowed"
        )));
    }
    Ok(())
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')')
}

/// `YYYYMMDD-HHMMSS` in UTC.
pub fn timestamp(now: SystemTime) -> String {
    let t = task_sdk::time::UtcTime::from(now);
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// The Microsoft task's generated name: the template's file name (path or URL) cut at the
/// first `.`, whitespace removed, at most 40 characters, then `-YYYYMMDD-HHMMSS-xxxx`; if
/// that is not a valid name, `deployment-YYYYMMDD-HHMMSS-xxxx`.
pub fn generate_deployment_name(template_source: &str, now: SystemTime, unique: &str) -> String {
    // A URL's query (a SAS token) and fragment are not part of the file name.
    let path = template_source.split(['?', '#']).next().unwrap_or_default();
    let base = path.rsplit(['/', '\\']).next().unwrap_or_default();
    let stem: String = base
        .split('.')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .take(40)
        .collect();
    let suffix = format!("{}-{unique}", timestamp(now));
    let name = format!("{stem}-{suffix}");
    if !stem.is_empty() && validate_deployment_name(&name).is_ok() {
        name
    } else {
        format!("deployment-{suffix}")
    }
}

/// Four random hex digits, like the Microsoft task's `uuid().substr(0, 4)`.
pub fn unique_suffix() -> String {
    format!("{:04x}", fastrand::u16(..))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(at(0)), "19700101-000000");
        // 2024-02-29T13:45:07Z
        assert_eq!(timestamp(at(1_709_214_307)), "20240229-134507");
        assert_eq!(timestamp(at(1_735_689_599)), "20241231-235959");
    }

    #[test]
    fn generated_names() {
        let t = at(1_709_214_307);
        assert_eq!(
            generate_deployment_name("/work/adf/ARMTemplateForFactory.json", t, "ab12"),
            "ARMTemplateForFactory-20240229-134507-ab12"
        );
        assert_eq!(
            generate_deployment_name("/w/my template.v2.json", t, "0f0f"),
            "mytemplate-20240229-134507-0f0f"
        );
        assert_eq!(
            generate_deployment_name("https://x.blob/c/azuredeploy.json?sv=1&sig=abc", t, "0000"),
            "azuredeploy-20240229-134507-0000"
        );
        assert_eq!(
            generate_deployment_name("https://x.blob/c/template?sv=1&sig=a/b", t, "0000"),
            "template-20240229-134507-0000"
        );
        let long = format!("/w/{}.json", "x".repeat(60));
        let name = generate_deployment_name(&long, t, "0000");
        assert_eq!(name, format!("{}-20240229-134507-0000", "x".repeat(40)));
        assert!(validate_deployment_name(&name).is_ok());
        assert_eq!(
            generate_deployment_name("/w/modèle.json", t, "0000"),
            "deployment-20240229-134507-0000"
        );
        assert_eq!(
            generate_deployment_name("/w/.hidden", t, "0000"),
            "deployment-20240229-134507-0000"
        );
        assert_eq!(unique_suffix().len(), 4);
    }

    #[test]
    fn name_validation() {
        assert!(validate_deployment_name("adf-(prod)_v1.2").is_ok());
        assert!(validate_deployment_name(&"a".repeat(64)).is_ok());
        let e = validate_deployment_name(&"a".repeat(65))
            .unwrap_err()
            .to_string();
        assert!(e.contains("65 characters"), "{e}");
        let e = validate_deployment_name("my deployment")
            .unwrap_err()
            .to_string();
        assert!(e.contains("contains ' '"), "{e}");
        assert!(validate_deployment_name("a/b").is_err());
        assert!(validate_deployment_name("").is_err());
    }
}
