//! Azure Pipelines expressions: step/job/stage `condition`s and `${{ }}` template
//! expressions. Literals, `variables['x']` / `variables.x`, `parameters.x`,
//! `dependencies.<job>.result`, and the functions pipelines use most (`and`, `or`, `not`,
//! `eq`, `ne`, `gt`, `lt`, `ge`, `le`, `in`, `notIn`, `contains`, `startsWith`, `endsWith`,
//! `lower`, `upper`, `coalesce`, `succeeded`, `failed`, `succeededOrFailed`, `always`,
//! `canceled`). String comparisons ignore case, as on the service.

use std::fmt;

/// How a step, job or stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Succeeded,
    SucceededWithIssues,
    Failed,
    Canceled,
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "Succeeded",
            Outcome::SucceededWithIssues => "SucceededWithIssues",
            Outcome::Failed => "Failed",
            Outcome::Canceled => "Canceled",
            Outcome::Skipped => "Skipped",
        }
    }

    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Succeeded | Outcome::SucceededWithIssues)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an expression can see.
pub trait Scope {
    fn variable(&self, name: &str) -> Option<String>;
    fn parameter(&self, _name: &str) -> Option<String> {
        None
    }
    /// The outcomes `succeeded()`/`failed()` judge: the job so far for a step, the named (or
    /// all) dependencies for a job or stage. `Err` names an unknown dependency.
    fn outcomes(&self, names: &[String]) -> Result<Vec<Outcome>, String>;
    fn dependency(&self, _name: &str) -> Option<Outcome> {
        None
    }
    fn canceled(&self) -> bool;
}

#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
}

impl Val {
    pub fn truthy(&self) -> bool {
        match self {
            Val::Null => false,
            Val::Bool(b) => *b,
            Val::Num(n) => *n != 0.0,
            Val::Str(s) => !s.is_empty(),
        }
    }

    /// As the service prints values: booleans as `True`/`False`.
    pub fn to_text(&self) -> String {
        match self {
            Val::Null => String::new(),
            Val::Bool(true) => "True".into(),
            Val::Bool(false) => "False".into(),
            Val::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
            Val::Num(n) => n.to_string(),
            Val::Str(s) => s.clone(),
        }
    }

    fn to_num(&self) -> Option<f64> {
        match self {
            Val::Null => Some(0.0),
            Val::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Val::Num(n) => Some(*n),
            Val::Str(s) if s.trim().is_empty() => Some(0.0),
            Val::Str(s) => s.trim().parse().ok(),
        }
    }
}

/// Equality with the right side converted to the left side's type.
fn equal(a: &Val, b: &Val) -> bool {
    match a {
        Val::Null => matches!(b, Val::Null) || b.to_text().is_empty(),
        Val::Bool(x) => *x == b.truthy(),
        Val::Num(x) => b.to_num() == Some(*x),
        Val::Str(x) => x.eq_ignore_ascii_case(&b.to_text()),
    }
}

fn compare(a: &Val, b: &Val) -> Option<std::cmp::Ordering> {
    match a {
        Val::Str(x) => Some(
            x.to_ascii_lowercase()
                .cmp(&b.to_text().to_ascii_lowercase()),
        ),
        _ => a.to_num()?.partial_cmp(&b.to_num()?),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Num(f64),
    Ident(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
}

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => (out.push(Tok::LParen), i += 1).1,
            ')' => (out.push(Tok::RParen), i += 1).1,
            '[' => (out.push(Tok::LBracket), i += 1).1,
            ']' => (out.push(Tok::RBracket), i += 1).1,
            ',' => (out.push(Tok::Comma), i += 1).1,
            '.' if !chars.get(i + 1).is_some_and(char::is_ascii_digit) => {
                (out.push(Tok::Dot), i += 1).1
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string".into()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(c) => {
                            s.push(*c);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                out.push(Tok::Num(
                    s.parse().map_err(|_| format!("bad number '{s}'"))?,
                ));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '-')
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            c => return Err(format!("unexpected character '{c}'")),
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Lit(Val),
    Call(String, Vec<Expr>),
    /// `variables.x`, `variables['x']`, `dependencies.a.result`…: the root and the keys.
    Path(String, Vec<String>),
}

struct ExprParser {
    toks: Vec<Tok>,
    at: usize,
}

impl ExprParser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<(), String> {
        match self.next() {
            Some(t) if t == tok => Ok(()),
            _ => Err(format!("expected {what}")),
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Expr::Lit(Val::Str(s))),
            Some(Tok::Num(n)) => Ok(Expr::Lit(Val::Num(n))),
            Some(Tok::Ident(id)) => {
                if self.peek() == Some(&Tok::LParen) {
                    self.at += 1;
                    let mut args = Vec::new();
                    if self.peek() == Some(&Tok::RParen) {
                        self.at += 1;
                    } else {
                        loop {
                            args.push(self.expr()?);
                            match self.next() {
                                Some(Tok::Comma) => continue,
                                Some(Tok::RParen) => break,
                                _ => return Err(format!("expected ',' or ')' in {id}(…)")),
                            }
                        }
                    }
                    return Ok(Expr::Call(id.to_ascii_lowercase(), args));
                }
                match id.to_ascii_lowercase().as_str() {
                    "true" => return Ok(Expr::Lit(Val::Bool(true))),
                    "false" => return Ok(Expr::Lit(Val::Bool(false))),
                    "null" => return Ok(Expr::Lit(Val::Null)),
                    _ => {}
                }
                let mut keys = Vec::new();
                loop {
                    match self.peek() {
                        Some(Tok::Dot) => {
                            self.at += 1;
                            match self.next() {
                                Some(Tok::Ident(k)) => keys.push(k),
                                Some(Tok::Num(n)) => keys.push(n.to_string()),
                                _ => return Err(format!("expected a name after '{id}.'")),
                            }
                        }
                        Some(Tok::LBracket) => {
                            self.at += 1;
                            match self.next() {
                                Some(Tok::Str(k)) => keys.push(k),
                                _ => return Err("expected a quoted name inside [ ]".into()),
                            }
                            self.expect(Tok::RBracket, "']'")?;
                        }
                        _ => break,
                    }
                }
                Ok(Expr::Path(id, keys))
            }
            Some(t) => Err(format!("unexpected {t:?}")),
            None => Err("unexpected end of expression".into()),
        }
    }
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expression(Expr);

const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("and", 2, usize::MAX),
    ("or", 2, usize::MAX),
    ("not", 1, 1),
    ("eq", 2, 2),
    ("ne", 2, 2),
    ("gt", 2, 2),
    ("lt", 2, 2),
    ("ge", 2, 2),
    ("le", 2, 2),
    ("in", 1, usize::MAX),
    ("notin", 1, usize::MAX),
    ("contains", 2, 2),
    ("startswith", 2, 2),
    ("endswith", 2, 2),
    ("lower", 1, 1),
    ("upper", 1, 1),
    ("coalesce", 1, usize::MAX),
    ("succeeded", 0, usize::MAX),
    ("failed", 0, usize::MAX),
    ("succeededorfailed", 0, usize::MAX),
    ("always", 0, 0),
    ("canceled", 0, 0),
];

fn check(e: &Expr) -> Result<(), String> {
    match e {
        Expr::Lit(_) => Ok(()),
        Expr::Path(root, _) => match root.to_ascii_lowercase().as_str() {
            "variables" | "parameters" | "dependencies" | "stagedependencies" => Ok(()),
            other => Err(format!("unknown name '{other}'")),
        },
        Expr::Call(name, args) => {
            let Some((_, min, max)) = FUNCTIONS.iter().find(|(n, _, _)| n == name) else {
                return Err(format!("unknown function '{name}'"));
            };
            if args.len() < *min || args.len() > *max {
                return Err(format!("wrong number of arguments to {name}()"));
            }
            args.iter().try_for_each(check)
        }
    }
}

impl Expression {
    pub fn parse(text: &str) -> Result<Expression, String> {
        let mut p = ExprParser {
            toks: tokenize(text)?,
            at: 0,
        };
        let e = p.expr()?;
        if p.at < p.toks.len() {
            return Err(format!(
                "unexpected {:?} after the expression",
                p.toks[p.at]
            ));
        }
        check(&e)?;
        Ok(Expression(e))
    }

    pub fn eval(&self, scope: &dyn Scope) -> Result<Val, String> {
        eval(&self.0, scope)
    }
}

fn names(args: &[Expr], scope: &dyn Scope) -> Result<Vec<String>, String> {
    args.iter()
        .map(|a| eval(a, scope).map(|v| v.to_text()))
        .collect()
}

fn eval(e: &Expr, scope: &dyn Scope) -> Result<Val, String> {
    Ok(match e {
        Expr::Lit(v) => v.clone(),
        Expr::Path(root, keys) => match root.to_ascii_lowercase().as_str() {
            "variables" => scope
                .variable(&keys.join("."))
                .map(Val::Str)
                .unwrap_or(Val::Null),
            "parameters" => scope
                .parameter(&keys.join("."))
                .map(Val::Str)
                .unwrap_or(Val::Null),
            _ => match keys.as_slice() {
                [job, what] if what.eq_ignore_ascii_case("result") => scope
                    .dependency(job)
                    .map(|o| Val::Str(o.as_str().into()))
                    .unwrap_or(Val::Null),
                _ => Val::Null,
            },
        },
        Expr::Call(name, args) => {
            let arg = |i: usize| eval(&args[i], scope);
            match name.as_str() {
                "and" => {
                    for a in args {
                        if !eval(a, scope)?.truthy() {
                            return Ok(Val::Bool(false));
                        }
                    }
                    Val::Bool(true)
                }
                "or" => {
                    for a in args {
                        if eval(a, scope)?.truthy() {
                            return Ok(Val::Bool(true));
                        }
                    }
                    Val::Bool(false)
                }
                "not" => Val::Bool(!arg(0)?.truthy()),
                "eq" => Val::Bool(equal(&arg(0)?, &arg(1)?)),
                "ne" => Val::Bool(!equal(&arg(0)?, &arg(1)?)),
                "gt" | "lt" | "ge" | "le" => {
                    let ord = compare(&arg(0)?, &arg(1)?);
                    use std::cmp::Ordering::*;
                    Val::Bool(match (name.as_str(), ord) {
                        (_, None) => false,
                        ("gt", Some(o)) => o == Greater,
                        ("lt", Some(o)) => o == Less,
                        ("ge", Some(o)) => o != Less,
                        (_, Some(o)) => o != Greater,
                    })
                }
                "in" | "notin" => {
                    let needle = arg(0)?;
                    let mut found = false;
                    for a in &args[1..] {
                        found |= equal(&needle, &eval(a, scope)?);
                    }
                    Val::Bool(found == (name == "in"))
                }
                "contains" | "startswith" | "endswith" => {
                    let hay = arg(0)?.to_text().to_ascii_lowercase();
                    let needle = arg(1)?.to_text().to_ascii_lowercase();
                    Val::Bool(match name.as_str() {
                        "contains" => hay.contains(&needle),
                        "startswith" => hay.starts_with(&needle),
                        _ => hay.ends_with(&needle),
                    })
                }
                "lower" => Val::Str(arg(0)?.to_text().to_lowercase()),
                "upper" => Val::Str(arg(0)?.to_text().to_uppercase()),
                "coalesce" => {
                    for a in args {
                        let v = eval(a, scope)?;
                        if !v.to_text().is_empty() {
                            return Ok(v);
                        }
                    }
                    Val::Null
                }
                "always" => Val::Bool(true),
                "canceled" => Val::Bool(scope.canceled()),
                "succeeded" | "failed" | "succeededorfailed" => {
                    if scope.canceled() {
                        return Ok(Val::Bool(false));
                    }
                    let outcomes = scope.outcomes(&names(args, scope)?)?;
                    Val::Bool(match name.as_str() {
                        "succeeded" => outcomes.iter().all(|o| o.is_success()),
                        "failed" => outcomes.contains(&Outcome::Failed),
                        _ => outcomes
                            .iter()
                            .all(|o| o.is_success() || *o == Outcome::Failed),
                    })
                }
                _ => return Err(format!("unknown function '{name}'")),
            }
        }
    })
}

/// Replaces every `${{ expr }}` in `text`. A whole-text expression that is not a simple
/// value still becomes its text.
pub fn substitute_template(text: &str, scope: &dyn Scope) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let end = after.find("}}").ok_or("'${{' without '}}'")?;
        let inner = after[..end].trim();
        if inner.starts_with("if ")
            || inner.starts_with("each ")
            || inner == "else"
            || inner.starts_with("elseif ")
        {
            return Err(format!(
                "template directive '${{{{ {inner} }}}}' is not supported by azp-local"
            ));
        }
        out.push_str(&Expression::parse(inner)?.eval(scope)?.to_text());
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct S {
        vars: HashMap<String, String>,
        outcomes: Vec<Outcome>,
        canceled: bool,
    }

    impl Scope for S {
        fn variable(&self, name: &str) -> Option<String> {
            self.vars
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        }
        fn outcomes(&self, names: &[String]) -> Result<Vec<Outcome>, String> {
            if names.iter().any(|n| n == "missing") {
                return Err("no job missing".into());
            }
            Ok(self.outcomes.clone())
        }
        fn canceled(&self) -> bool {
            self.canceled
        }
    }

    fn eval_with(text: &str, outcomes: Vec<Outcome>, canceled: bool) -> bool {
        let s = S {
            vars: [
                ("Build.Reason".to_string(), "Manual".to_string()),
                ("flag".into(), "true".into()),
            ]
            .into(),
            outcomes,
            canceled,
        };
        Expression::parse(text).unwrap().eval(&s).unwrap().truthy()
    }

    #[test]
    fn status_functions() {
        use Outcome::*;
        assert!(eval_with(
            "succeeded()",
            vec![Succeeded, SucceededWithIssues],
            false
        ));
        assert!(!eval_with("succeeded()", vec![Failed], false));
        assert!(eval_with("failed()", vec![Failed], false));
        assert!(!eval_with("failed()", vec![Succeeded], false));
        assert!(eval_with("succeededOrFailed()", vec![Failed], false));
        assert!(!eval_with("succeededOrFailed()", vec![Failed], true));
        assert!(eval_with("always()", vec![Failed], true));
        assert!(eval_with("canceled()", vec![], true));
    }

    #[test]
    fn comparisons_and_lookups() {
        let ok = |t| eval_with(t, vec![Outcome::Succeeded], false);
        assert!(ok("eq(variables['Build.Reason'], 'manual')"));
        assert!(ok(
            "and(succeeded(), ne(variables.Build.Reason, 'PullRequest'))"
        ));
        assert!(ok("eq(variables.flag, true)"));
        assert!(ok("not(eq(variables.nothing, 'x'))"));
        assert!(ok("in(variables['Build.Reason'], 'Schedule', 'Manual')"));
        assert!(ok(
            "or(false, startsWith('refs/heads/main', 'refs/heads/'))"
        ));
        assert!(ok("eq('it''s', 'IT''S')"));
        assert!(ok("gt(10, 9)"));
    }

    #[test]
    fn errors_are_reported() {
        assert!(Expression::parse("succeded()").is_err());
        assert!(Expression::parse("eq(1)").is_err());
        assert!(Expression::parse("eq(1, 2").is_err());
        assert!(Expression::parse("foo.bar").is_err());
    }

    #[test]
    fn template_substitution() {
        let s = S {
            vars: [("System.TeamProject".to_string(), "proj".to_string())].into(),
            outcomes: vec![],
            canceled: false,
        };
        assert_eq!(
            substitute_template(
                "git://${{variables['System.TeamProject']}}@x ${{ variables.system.teamproject }}",
                &s
            )
            .unwrap(),
            "git://proj@x proj"
        );
    }
}
