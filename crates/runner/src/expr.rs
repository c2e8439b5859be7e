//! Azure Pipelines expressions: `condition:`s, `$[ ]` runtime expressions and `${{ }}`
//! template expressions. Values are null, booleans, numbers, strings, arrays and objects (and
//! YAML nodes handed in as values: template parameters, `each` items); named contexts
//! (`variables`, `parameters`, `dependencies`, …) come from a [`Scope`]; `a.b`, `a['b']` and
//! `a[0]` reach into objects and arrays; the documented functions are implemented with the
//! service's type conversions. String comparisons ignore case, as on the service.

use std::fmt;

use crate::yaml::{self, Node};

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
    /// A variable's value by its full name (`Build.Reason`); `variables.Build.Reason` and
    /// `variables['Build.Reason']` both ask for `Build.Reason`.
    fn variable(&self, name: &str) -> Option<String>;
    /// Any other named context as a value: `parameters`, `dependencies`,
    /// `stageDependencies`, `pipeline`, an `each` loop's variable… `None`: not known here
    /// (the expression sees null).
    fn context(&self, _name: &str) -> Option<Val> {
        None
    }
    /// The outcomes `succeeded()`/`failed()` judge: the job so far for a step, the named (or
    /// all) dependencies for a job or stage. `Err` names an unknown dependency.
    fn outcomes(&self, names: &[String]) -> Result<Vec<Outcome>, String>;
    /// `dependencies.<name>.result` when [`Scope::context`] gives no `dependencies`.
    fn dependency(&self, _name: &str) -> Option<Outcome> {
        None
    }
    fn canceled(&self) -> bool;
    /// `counter(prefix, seed)`: the next value of the counter named by `prefix`.
    fn counter(&self, _prefix: &str, _seed: i64) -> Result<i64, String> {
        Err("counter() can be used only in a variable's $[ ] expression".into())
    }
}

/// A value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Array(Vec<Val>),
    /// Keys keep their order and are looked up ignoring case.
    Object(Vec<(String, Val)>),
    /// A YAML node handed in as a value: a scalar reads as a string, a sequence as an array, a
    /// mapping as an object; inserted back into YAML it keeps its own file and line.
    Yaml(Node),
}

impl Val {
    /// A YAML node as a value; a null scalar is null.
    pub fn from_node(node: &Node) -> Val {
        if node.is_null() {
            Val::Null
        } else {
            Val::Yaml(node.clone())
        }
    }

    /// A YAML node is read as the plain value it stands for; other values are themselves.
    pub fn plain(&self) -> std::borrow::Cow<'_, Val> {
        use std::borrow::Cow;
        let Val::Yaml(node) = self else {
            return Cow::Borrowed(self);
        };
        Cow::Owned(match &node.value {
            _ if node.is_null() => Val::Null,
            // Every scalar is a string, as the server reads them: `flag: false` in an object
            // parameter is the text 'false' (true as a condition; compare with eq()).
            yaml::Value::Scalar { text, .. } => Val::Str(text.clone()),
            yaml::Value::Seq(items) => Val::Array(items.iter().map(Val::from_node).collect()),
            yaml::Value::Map(entries) => Val::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), Val::from_node(v)))
                    .collect(),
            ),
        })
    }

    /// What kind of value this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match &*self.plain() {
            Val::Null => "null",
            Val::Bool(_) => "a boolean",
            Val::Num(_) => "a number",
            Val::Str(_) => "a string",
            Val::Array(_) => "an array",
            _ => "an object",
        }
    }

    /// A null, boolean, number or string (what can become text).
    pub fn is_scalar(&self) -> bool {
        !matches!(&*self.plain(), Val::Array(_) | Val::Object(_))
    }

    pub fn truthy(&self) -> bool {
        match &*self.plain() {
            Val::Null => false,
            Val::Bool(b) => *b,
            Val::Num(n) => *n != 0.0 && !n.is_nan(),
            Val::Str(s) => !s.is_empty(),
            _ => true,
        }
    }

    /// As the service prints values: booleans as `True`/`False`, arrays and objects by kind.
    pub fn to_text(&self) -> String {
        match &*self.plain() {
            Val::Null => String::new(),
            Val::Bool(true) => "True".into(),
            Val::Bool(false) => "False".into(),
            Val::Num(n) => number_text(*n),
            Val::Str(s) => s.clone(),
            Val::Array(_) => "Array".into(),
            _ => "Object".into(),
        }
    }

    fn to_num(&self) -> f64 {
        match &*self.plain() {
            Val::Null => 0.0,
            Val::Bool(b) => f64::from(u8::from(*b)),
            Val::Num(n) => *n,
            Val::Str(s) if s.trim().is_empty() => 0.0,
            Val::Str(s) => parse_number(s.trim()).unwrap_or(f64::NAN),
            _ => f64::NAN,
        }
    }

    /// `a.b` / `a['b']`: an object's property (ignoring case); null when there is none.
    pub fn property(&self, key: &str) -> Val {
        match self {
            Val::Yaml(node) => node
                .as_map()
                .and_then(|m| {
                    m.iter()
                        .find(|(k, _)| k.as_str().is_some_and(|k| k.eq_ignore_ascii_case(key)))
                })
                .map(|(_, v)| Val::from_node(v))
                .unwrap_or(Val::Null),
            Val::Object(entries) => entries
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.clone())
                .unwrap_or(Val::Null),
            _ => Val::Null,
        }
    }

    /// `a[i]`: an array's item by number, an object's property by text.
    pub fn index(&self, at: &Val) -> Val {
        let plain = self.plain();
        match (&*plain, &*at.plain()) {
            (Val::Array(items), i) => {
                let n = i.to_num();
                if n >= 0.0 && n.fract() == 0.0 {
                    items.get(n as usize).cloned().unwrap_or(Val::Null)
                } else {
                    Val::Null
                }
            }
            (Val::Object(_), key) => self.property(&key.to_text()),
            _ => Val::Null,
        }
    }

    /// The value as JSON, keys in their order, indented as the service's `convertToJson`.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        json(&self.plain(), 0, &mut out);
        out
    }
}

fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn parse_number(s: &str) -> Option<f64> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return i64::from_str_radix(hex, 16).ok().map(|n| n as f64);
    }
    if s.eq_ignore_ascii_case("nan") || s.to_ascii_lowercase().contains("inf") {
        return None;
    }
    s.parse().ok()
}

fn json(v: &Val, indent: usize, out: &mut String) {
    let pad = |n: usize| "  ".repeat(n);
    match v {
        Val::Null => out.push_str("null"),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Num(n) => out.push_str(&number_text(*n)),
        Val::Str(s) => out.push_str(&serde_json::Value::String(s.clone()).to_string()),
        Val::Array(items) if items.is_empty() => out.push_str("[]"),
        Val::Array(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                json(&item.plain(), indent + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push(']');
        }
        Val::Object(entries) if entries.is_empty() => out.push_str("{}"),
        Val::Object(entries) => {
            out.push_str("{\n");
            for (i, (k, item)) in entries.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push_str(": ");
                json(&item.plain(), indent + 1, out);
                out.push_str(if i + 1 < entries.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push('}');
        }
        Val::Yaml(_) => json(&v.plain(), indent, out),
    }
}

/// Equality with the right side converted to the left side's type.
fn equal(a: &Val, b: &Val) -> bool {
    let (a, b) = (a.plain(), b.plain());
    match &*a {
        Val::Null => matches!(&*b, Val::Null) || (b.is_scalar() && b.to_text().is_empty()),
        Val::Bool(x) => *x == b.truthy(),
        Val::Num(x) => b.to_num() == *x,
        Val::Str(x) => b.is_scalar() && x.eq_ignore_ascii_case(&b.to_text()),
        Val::Array(x) => match &*b {
            Val::Array(y) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q)),
            _ => false,
        },
        Val::Object(x) => match &*b {
            Val::Object(y) => {
                x.len() == y.len()
                    && x.iter().all(|(k, v)| {
                        y.iter()
                            .any(|(k2, v2)| k.eq_ignore_ascii_case(k2) && equal(v, v2))
                    })
            }
            _ => false,
        },
        Val::Yaml(_) => false,
    }
}

fn compare(a: &Val, b: &Val) -> Result<std::cmp::Ordering, String> {
    let (a, b) = (a.plain(), b.plain());
    match &*a {
        Val::Str(x) => Ok(x
            .to_ascii_lowercase()
            .cmp(&b.to_text().to_ascii_lowercase())),
        Val::Array(_) | Val::Object(_) => Err(format!("cannot compare {}", a.kind())),
        _ => {
            let (x, y) = (a.to_num(), b.to_num());
            x.partial_cmp(&y).ok_or_else(|| {
                format!(
                    "cannot compare '{}' with '{}' as numbers",
                    a.to_text(),
                    b.to_text()
                )
            })
        }
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
        let single = match c {
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            ',' => Some(Tok::Comma),
            '.' if !chars.get(i + 1).is_some_and(char::is_ascii_digit)
                || matches!(
                    out.last(),
                    Some(Tok::Ident(_) | Tok::RBracket | Tok::RParen)
                ) =>
            {
                Some(Tok::Dot)
            }
            _ => None,
        };
        if let Some(t) = single {
            out.push(t);
            i += 1;
            continue;
        }
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string (a quote ' is missing)".into()),
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
            c if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                // A version literal (1.2.3) is a string.
                if s.matches('.').count() > 1 && !s.starts_with(['-', '+']) {
                    out.push(Tok::Str(s));
                } else {
                    out.push(Tok::Num(
                        parse_number(s.trim_start_matches('+'))
                            .ok_or_else(|| format!("'{s}' is not a number"))?,
                    ));
                }
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
    /// A named context: `variables`, `parameters`, an `each` variable…
    Name(String),
    /// `a.b`
    Prop(Box<Expr>, String),
    /// `a[b]`
    Index(Box<Expr>, Box<Expr>),
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

    fn expr(&mut self) -> Result<Expr, String> {
        let mut e = match self.next() {
            Some(Tok::Str(s)) => Expr::Lit(Val::Str(s)),
            Some(Tok::Num(n)) => Expr::Lit(Val::Num(n)),
            Some(Tok::Ident(id)) if self.peek() == Some(&Tok::LParen) => {
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
                Expr::Call(id.to_ascii_lowercase(), args)
            }
            Some(Tok::Ident(id)) => match id.to_ascii_lowercase().as_str() {
                "true" => Expr::Lit(Val::Bool(true)),
                "false" => Expr::Lit(Val::Bool(false)),
                "null" => Expr::Lit(Val::Null),
                _ => Expr::Name(id),
            },
            Some(t) => return Err(format!("unexpected {}", describe(&t))),
            None => return Err("unexpected end of expression".into()),
        };
        loop {
            match self.peek() {
                Some(Tok::Dot) => {
                    self.at += 1;
                    match self.next() {
                        Some(Tok::Ident(k)) => e = Expr::Prop(Box::new(e), k),
                        Some(Tok::Num(n)) => e = Expr::Prop(Box::new(e), number_text(n)),
                        _ => return Err("expected a name after '.'".into()),
                    }
                }
                Some(Tok::LBracket) => {
                    self.at += 1;
                    let at = self.expr()?;
                    if self.next() != Some(Tok::RBracket) {
                        return Err("expected ']'".into());
                    }
                    e = Expr::Index(Box::new(e), Box::new(at));
                }
                _ => return Ok(e),
            }
        }
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Str(s) => format!("'{s}'"),
        Tok::Num(n) => number_text(*n),
        Tok::Ident(s) => s.clone(),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::LBracket => "'['".into(),
        Tok::RBracket => "']'".into(),
        Tok::Comma => "','".into(),
        Tok::Dot => "'.'".into(),
    }
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expression(Expr);

/// The functions, with their least and most numbers of arguments.
const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("and", 2, usize::MAX),
    ("or", 2, usize::MAX),
    ("not", 1, 1),
    ("xor", 2, 2),
    ("eq", 2, 2),
    ("ne", 2, 2),
    ("gt", 2, 2),
    ("lt", 2, 2),
    ("ge", 2, 2),
    ("le", 2, 2),
    ("in", 1, usize::MAX),
    ("notIn", 1, usize::MAX),
    ("contains", 2, 2),
    ("containsValue", 2, 2),
    ("startsWith", 2, 2),
    ("endsWith", 2, 2),
    ("format", 1, usize::MAX),
    ("join", 2, 2),
    ("replace", 3, 3),
    ("split", 2, 2),
    ("lower", 1, 1),
    ("upper", 1, 1),
    ("trim", 1, 1),
    ("length", 1, 1),
    ("coalesce", 1, usize::MAX),
    ("convertToJson", 1, 1),
    ("counter", 0, 2),
    ("iif", 3, 3),
];

/// Functions that judge outcomes: conditions only.
const STATUS_FUNCTIONS: &[&str] = &[
    "succeeded",
    "failed",
    "succeededOrFailed",
    "always",
    "canceled",
];

/// The named contexts a condition or `$[ ]` expression may use.
pub const RUNTIME_NAMES: &[&str] = &[
    "variables",
    "dependencies",
    "stageDependencies",
    "pipeline",
    "resources",
];

/// What a parse allows: the named contexts, and whether status functions are allowed.
struct Allowed<'a> {
    names: &'a [&'a str],
    status: bool,
    /// The context the expression is evaluated in, for error messages.
    what: &'a str,
}

fn check(e: &Expr, allowed: &Allowed<'_>) -> Result<(), String> {
    match e {
        Expr::Lit(_) => Ok(()),
        Expr::Name(root) => {
            if allowed.names.iter().any(|n| n.eq_ignore_ascii_case(root)) {
                Ok(())
            } else {
                Err(format!(
                    "unrecognized name '{root}' (a {} can use: {})",
                    allowed.what,
                    allowed.names.join(", ")
                ))
            }
        }
        Expr::Prop(e, _) => check(e, allowed),
        Expr::Index(e, at) => check(e, allowed).and_then(|_| check(at, allowed)),
        Expr::Call(name, args) => {
            let range = if STATUS_FUNCTIONS
                .iter()
                .any(|f| f.eq_ignore_ascii_case(name))
            {
                if !allowed.status {
                    return Err(format!(
                        "{name}() can be used only in a condition, not in a {}",
                        allowed.what
                    ));
                }
                if matches!(name.as_str(), "always" | "canceled") {
                    (0, 0)
                } else {
                    (0, usize::MAX)
                }
            } else {
                let Some((_, min, max)) = FUNCTIONS
                    .iter()
                    .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
                else {
                    let mut known: Vec<&str> = FUNCTIONS.iter().map(|(n, _, _)| *n).collect();
                    if allowed.status {
                        known.extend(STATUS_FUNCTIONS);
                    }
                    known.sort_unstable_by_key(|n| n.to_ascii_lowercase());
                    return Err(format!(
                        "unknown function '{name}' (known functions: {})",
                        known.join(", ")
                    ));
                };
                (*min, *max)
            };
            if args.len() < range.0 || args.len() > range.1 {
                return Err(match range {
                    (a, b) if a == b => {
                        format!("{name}() takes {a} argument(s), not {}", args.len())
                    }
                    (a, usize::MAX) => format!(
                        "{name}() takes at least {a} argument(s), not {}",
                        args.len()
                    ),
                    (a, b) => format!("{name}() takes {a} to {b} arguments, not {}", args.len()),
                });
            }
            args.iter().try_for_each(|a| check(a, allowed))
        }
    }
}

impl Expression {
    /// A condition or `$[ ]` runtime expression: [`RUNTIME_NAMES`] and the status functions.
    pub fn parse(text: &str) -> Result<Expression, String> {
        Self::parse_checked(
            text,
            &Allowed {
                names: RUNTIME_NAMES,
                status: true,
                what: "condition",
            },
        )
    }

    /// A `${{ }}` template expression: `parameters`, `variables` and `names` (the variables
    /// of the `each` loops around it); no status functions.
    pub fn parse_template(text: &str, names: &[&str]) -> Result<Expression, String> {
        let mut all = vec!["parameters", "variables"];
        all.extend_from_slice(names);
        Self::parse_checked(
            text,
            &Allowed {
                names: &all,
                status: false,
                what: "template expression",
            },
        )
    }

    fn parse_checked(text: &str, allowed: &Allowed<'_>) -> Result<Expression, String> {
        let mut p = ExprParser {
            toks: tokenize(text)?,
            at: 0,
        };
        let e = p.expr()?;
        if let Some(t) = p.toks.get(p.at) {
            return Err(format!("unexpected {} after the expression", describe(t)));
        }
        check(&e, allowed)?;
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

/// An access path `root.a['b'][0]`, split into its root and its steps.
fn path(e: &Expr) -> Option<(&str, Vec<&Expr>)> {
    match e {
        Expr::Name(root) => Some((root, Vec::new())),
        Expr::Prop(inner, _) | Expr::Index(inner, _) => {
            let (root, mut steps) = path(inner)?;
            steps.push(e);
            Some((root, steps))
        }
        _ => None,
    }
}

/// The literal key of an access step (`.b` or `['b']`), if it has one.
fn literal_key(step: &Expr) -> Option<String> {
    match step {
        Expr::Prop(_, k) => Some(k.clone()),
        Expr::Index(_, at) => match &**at {
            Expr::Lit(Val::Str(k)) => Some(k.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn apply(value: Val, step: &Expr, scope: &dyn Scope) -> Result<Val, String> {
    Ok(match step {
        Expr::Prop(_, k) => value.property(k),
        Expr::Index(_, at) => value.index(&eval(at, scope)?),
        _ => value,
    })
}

fn lookup(root: &str, steps: &[&Expr], scope: &dyn Scope) -> Result<Val, String> {
    if root.eq_ignore_ascii_case("variables") {
        if let Some(vars) = scope.context(root) {
            return steps.iter().try_fold(vars, |v, s| apply(v, s, scope));
        }
        // Variable names hold dots (`Build.Reason`): the longest literal prefix that names a
        // variable wins, the rest reaches into its value.
        let keys: Vec<String> = steps.iter().map_while(|s| literal_key(s)).collect();
        for n in (1..=keys.len()).rev() {
            if let Some(value) = scope.variable(&keys[..n].join(".")) {
                return steps[n..]
                    .iter()
                    .try_fold(Val::Str(value), |v, s| apply(v, s, scope));
            }
        }
        return Ok(Val::Null);
    }
    match scope.context(root) {
        Some(value) => steps.iter().try_fold(value, |v, s| apply(v, s, scope)),
        None if root.eq_ignore_ascii_case("dependencies") => {
            let keys: Vec<String> = steps.iter().map_while(|s| literal_key(s)).collect();
            Ok(match keys.as_slice() {
                [job, what] if what.eq_ignore_ascii_case("result") => scope
                    .dependency(job)
                    .map(|o| Val::Str(o.as_str().into()))
                    .unwrap_or(Val::Null),
                _ => Val::Null,
            })
        }
        None => Ok(Val::Null),
    }
}

fn string_arg(v: &Val, function: &str) -> Result<String, String> {
    if v.is_scalar() {
        Ok(v.to_text())
    } else {
        Err(format!("{function}() expects a string, not {}", v.kind()))
    }
}

fn format(template: &str, args: &[Val]) -> Result<String, String> {
    let chars: Vec<char> = template.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '{' if chars.get(i + 1) == Some(&'{') => {
                out.push('{');
                i += 2;
            }
            '}' if chars.get(i + 1) == Some(&'}') => {
                out.push('}');
                i += 2;
            }
            '{' => {
                let end = chars[i..]
                    .iter()
                    .position(|c| *c == '}')
                    .ok_or_else(|| format!("format('{template}'): a '{{' is not closed"))?;
                let inner: String = chars[i + 1..i + end].iter().collect();
                let (index, spec) = match inner.split_once(':') {
                    Some((n, s)) => (n, Some(s)),
                    None => (inner.as_str(), None),
                };
                let n: usize = index.trim().parse().map_err(|_| {
                    format!("format('{template}'): '{{{inner}}}' is not an argument number")
                })?;
                let value = args.get(n).ok_or_else(|| {
                    format!(
                        "format('{template}'): argument {{{n}}} is missing (given: {})",
                        args.len()
                    )
                })?;
                match spec {
                    None => out.push_str(&string_arg(value, "format")?),
                    Some(spec) => {
                        let date = match value {
                            Val::Str(text) => parse_date(text),
                            _ => None,
                        }
                        .ok_or_else(|| {
                            format!(
                                "format('{template}'): the format specifier '{spec}' applies only to dates (such as pipeline.startTime), not to {}",
                                value.kind()
                            )
                        })?;
                        let text = format_date(&date, spec)
                            .map_err(|e| format!("format('{template}'): {e}"))?;
                        out.push_str(&text);
                    }
                }
                i += end + 1;
            }
            '}' => {
                return Err(format!(
                    "format('{template}'): a '}}' without '{{' (write '}}}}')"
                ))
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// A date as `yyyy-MM-ddTHH:mm:ss[.fff][Z]` (how dates such as `pipeline.startTime` are
/// carried): year, month, day, hour, minute, second, fraction digits.
fn parse_date(text: &str) -> Option<[u32; 6]> {
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let date = [
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    ];
    let ok = (1..=12).contains(&date[1])
        && (1..=31).contains(&date[2])
        && date[3] < 24
        && date[4] < 60
        && date[5] < 61;
    ok.then_some(date)
}

/// A date through the .NET custom format specifiers the service documents for `format`
/// (yyyy yy MM M dd d HH H mm m ss s f ff fff ffff K); other letters are an error, anything
/// else is copied.
fn format_date(date: &[u32; 6], spec: &str) -> Result<String, String> {
    let [year, month, day, hour, minute, second] = *date;
    let chars: Vec<char> = spec.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|x| **x == c).count();
        match (c, run) {
            ('y', 4) => out.push_str(&format!("{year:04}")),
            ('y', 2) => out.push_str(&format!("{:02}", year % 100)),
            ('M', 2) => out.push_str(&format!("{month:02}")),
            ('M', 1) => out.push_str(&month.to_string()),
            ('d', 2) => out.push_str(&format!("{day:02}")),
            ('d', 1) => out.push_str(&day.to_string()),
            ('H', 2) => out.push_str(&format!("{hour:02}")),
            ('H', 1) => out.push_str(&hour.to_string()),
            ('m', 2) => out.push_str(&format!("{minute:02}")),
            ('m', 1) => out.push_str(&minute.to_string()),
            ('s', 2) => out.push_str(&format!("{second:02}")),
            ('s', 1) => out.push_str(&second.to_string()),
            ('f', 1..=4) => out.push_str(&"0".repeat(run)),
            ('K', 1) => out.push('Z'),
            (c, _) if c.is_ascii_alphabetic() => {
                return Err(format!(
                    "the date format specifier '{}' is not one the service documents (yyyy yy MM M dd d HH H mm m ss s f ff fff ffff K)",
                    chars[i..i + run].iter().collect::<String>()
                ))
            }
            _ => (0..run).for_each(|_| out.push(c)),
        }
        i += run;
    }
    Ok(out)
}

fn eval(e: &Expr, scope: &dyn Scope) -> Result<Val, String> {
    let (name, args) = match e {
        Expr::Lit(v) => return Ok(v.clone()),
        Expr::Name(_) | Expr::Prop(..) | Expr::Index(..) => {
            return match path(e) {
                Some((root, steps)) => lookup(root, &steps, scope),
                // `func().x`: reach into a computed value.
                None => match e {
                    Expr::Prop(inner, _) | Expr::Index(inner, _) => {
                        apply(eval(inner, scope)?, e, scope)
                    }
                    _ => Ok(Val::Null),
                },
            };
        }
        Expr::Call(name, args) => (name.as_str(), args),
    };
    let arg = |i: usize| eval(&args[i], scope);
    Ok(match name {
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
        "xor" => Val::Bool(arg(0)?.truthy() != arg(1)?.truthy()),
        "iif" => {
            if arg(0)?.truthy() {
                arg(1)?
            } else {
                arg(2)?
            }
        }
        "eq" => Val::Bool(equal(&arg(0)?, &arg(1)?)),
        "ne" => Val::Bool(!equal(&arg(0)?, &arg(1)?)),
        "gt" | "lt" | "ge" | "le" => {
            use std::cmp::Ordering::*;
            let o = compare(&arg(0)?, &arg(1)?).map_err(|m| format!("{name}(): {m}"))?;
            Val::Bool(match name {
                "gt" => o == Greater,
                "lt" => o == Less,
                "ge" => o != Less,
                _ => o != Greater,
            })
        }
        "in" | "notin" => {
            let needle = arg(0)?;
            let mut found = false;
            for a in &args[1..] {
                if equal(&needle, &eval(a, scope)?) {
                    found = true;
                    break;
                }
            }
            Val::Bool(found == (name == "in"))
        }
        "contains" | "startswith" | "endswith" => {
            let hay = string_arg(&arg(0)?, name)?.to_lowercase();
            let needle = string_arg(&arg(1)?, name)?.to_lowercase();
            Val::Bool(match name {
                "contains" => hay.contains(&needle),
                "startswith" => hay.starts_with(&needle),
                _ => hay.ends_with(&needle),
            })
        }
        "containsvalue" => {
            let collection = arg(0)?;
            let needle = arg(1)?;
            Val::Bool(match &*collection.plain() {
                Val::Array(items) => items.iter().any(|i| equal(i, &needle)),
                Val::Object(entries) => entries.iter().any(|(_, v)| equal(v, &needle)),
                other => {
                    return Err(format!(
                        "containsValue() expects an array or an object, not {}",
                        other.kind()
                    ))
                }
            })
        }
        "format" => {
            let template = string_arg(&arg(0)?, name)?;
            let values = args[1..]
                .iter()
                .map(|a| eval(a, scope))
                .collect::<Result<Vec<_>, _>>()?;
            Val::Str(format(&template, &values)?)
        }
        "join" => {
            let separator = string_arg(&arg(0)?, name)?;
            let collection = arg(1)?;
            let plain = collection.plain();
            match &*plain {
                Val::Array(items) => Val::Str(
                    items
                        .iter()
                        .map(|i| {
                            if i.is_scalar() {
                                i.to_text()
                            } else {
                                String::new()
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(&separator),
                ),
                v if v.is_scalar() => Val::Str(v.to_text()),
                _ => Val::Str(String::new()),
            }
        }
        "replace" => Val::Str(
            string_arg(&arg(0)?, name)?
                .replace(&string_arg(&arg(1)?, name)?, &string_arg(&arg(2)?, name)?),
        ),
        "split" => {
            let text = string_arg(&arg(0)?, name)?;
            let delimiter = string_arg(&arg(1)?, name)?;
            if delimiter.is_empty() {
                Val::Array(vec![Val::Str(text)])
            } else {
                Val::Array(
                    text.split(delimiter.as_str())
                        .map(|s| Val::Str(s.to_owned()))
                        .collect(),
                )
            }
        }
        "lower" => Val::Str(string_arg(&arg(0)?, name)?.to_lowercase()),
        "upper" => Val::Str(string_arg(&arg(0)?, name)?.to_uppercase()),
        "trim" => Val::Str(string_arg(&arg(0)?, name)?.trim().to_owned()),
        "length" => Val::Num(match &*arg(0)?.plain() {
            Val::Null => 0,
            Val::Str(s) => s.chars().count(),
            Val::Array(items) => items.len(),
            Val::Object(entries) => entries.len(),
            other => {
                return Err(format!(
                    "length() expects a string, an array or an object, not {}",
                    other.kind()
                ))
            }
        } as f64),
        "coalesce" => {
            for a in args {
                let v = eval(a, scope)?;
                if !(matches!(&*v.plain(), Val::Null | Val::Str(_)) && v.to_text().is_empty()) {
                    return Ok(v);
                }
            }
            Val::Null
        }
        "converttojson" => Val::Str(arg(0)?.to_json()),
        "counter" => {
            let prefix = match args.first() {
                Some(a) => string_arg(&eval(a, scope)?, name)?,
                None => String::new(),
            };
            let seed = match args.get(1) {
                Some(a) => {
                    let n = eval(a, scope)?.to_num();
                    if n.fract() != 0.0 || n.is_nan() {
                        return Err("counter(): the seed must be a whole number".into());
                    }
                    n as i64
                }
                None => 0,
            };
            Val::Num(scope.counter(&prefix, seed)? as f64)
        }
        "always" => Val::Bool(true),
        "canceled" => Val::Bool(scope.canceled()),
        "succeeded" | "failed" | "succeededorfailed" => {
            if scope.canceled() {
                return Ok(Val::Bool(false));
            }
            let outcomes = scope.outcomes(&names(args, scope)?)?;
            Val::Bool(match name {
                "succeeded" => outcomes.iter().all(|o| o.is_success()),
                "failed" => outcomes.contains(&Outcome::Failed),
                _ => outcomes
                    .iter()
                    .all(|o| o.is_success() || *o == Outcome::Failed),
            })
        }
        _ => return Err(format!("unknown function '{name}'")),
    })
}

/// Replaces every `${{ expr }}` in `text` with its value's text (`names`: the `each`
/// variables in scope). An array or object cannot become text.
pub fn substitute_template(
    text: &str,
    scope: &dyn Scope,
    names: &[&str],
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let end = after.find("}}").ok_or("'${{' without '}}'")?;
        let inner = after[..end].trim();
        let value = Expression::parse_template(inner, names)?.eval(scope)?;
        if !value.is_scalar() {
            return Err(format!(
                "'${{{{ {inner} }}}}' is {}, which cannot be part of a text (use it as the whole value)",
                value.kind()
            ));
        }
        out.push_str(&value.to_text());
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
        contexts: Vec<(String, Val)>,
    }

    impl Scope for S {
        fn variable(&self, name: &str) -> Option<String> {
            self.vars
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        }
        fn context(&self, name: &str) -> Option<Val> {
            self.contexts
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

    fn scope(outcomes: Vec<Outcome>, canceled: bool) -> S {
        let params = crate::yaml::parse(
            "env: prod\nregions: [westeurope, northeurope]\nflags: {Fast: 'true', n: 3}\nempty: []\n",
        )
        .unwrap();
        S {
            vars: [
                ("Build.Reason".to_string(), "Manual".to_string()),
                ("flag".into(), "true".into()),
            ]
            .into(),
            outcomes,
            canceled,
            contexts: vec![
                ("parameters".into(), Val::Yaml(params)),
                (
                    "dependencies".into(),
                    Val::Object(vec![(
                        "Build".into(),
                        Val::Object(vec![
                            ("result".into(), Val::Str("Succeeded".into())),
                            (
                                "outputs".into(),
                                Val::Object(vec![("setv.tag".into(), Val::Str("v1".into()))]),
                            ),
                        ]),
                    )]),
                ),
            ],
        }
    }

    fn eval_with(text: &str, outcomes: Vec<Outcome>, canceled: bool) -> bool {
        Expression::parse(text)
            .unwrap()
            .eval(&scope(outcomes, canceled))
            .unwrap()
            .truthy()
    }

    fn value(text: &str) -> Result<Val, String> {
        Expression::parse_template(text, &[])?.eval(&scope(vec![], false))
    }

    fn text(expr: &str) -> String {
        value(expr).unwrap().to_text()
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
        assert!(ok("eq(dependencies.build.result, 'Succeeded')"));
        assert!(ok("eq(dependencies.Build.outputs['setv.tag'], 'v1')"));
    }

    #[test]
    fn objects_arrays_and_indexing() {
        assert_eq!(text("parameters.env"), "prod");
        assert_eq!(text("parameters['env']"), "prod");
        assert_eq!(text("parameters.regions[1]"), "northeurope");
        assert_eq!(text("parameters.flags.fast"), "true");
        assert_eq!(text("parameters.flags['N']"), "3");
        assert_eq!(value("parameters.nothing.deeper").unwrap(), Val::Null);
        assert_eq!(value("parameters.regions[5]").unwrap(), Val::Null);
        assert_eq!(text("length(parameters.regions)"), "2");
        assert_eq!(text("length(parameters.flags)"), "2");
        assert_eq!(text("length(parameters.empty)"), "0");
        assert_eq!(text("length('héllo')"), "5");
        assert_eq!(text("split('a,b,c', ',')[2]"), "c");
        assert_eq!(
            text("join(';', parameters.regions)"),
            "westeurope;northeurope"
        );
        assert_eq!(text("join(';', 'single')"), "single");
        assert!(value("containsValue(parameters.regions, 'NorthEurope')")
            .unwrap()
            .truthy());
        assert!(value("containsValue(parameters.flags, 3)")
            .unwrap()
            .truthy());
        assert!(!value("containsValue(parameters.regions, 'east')")
            .unwrap()
            .truthy());
        assert!(value("containsValue('text', 'e')").is_err());
    }

    #[test]
    fn string_and_logic_functions() {
        assert_eq!(text("format('{0}-{1}-{{x}}', 'a', 2)"), "a-2-{x}");
        assert!(value("format('{0:yyyy}', 'a')").is_err());
        assert!(value("format('{1}', 'a')").is_err());
        assert_eq!(text("replace('a-b-c', '-', '_')"), "a_b_c");
    }

    #[test]
    fn format_takes_the_documented_date_specifiers() {
        let date = "'2026-03-07T09:05:04Z'";
        let f = |spec: &str| value(&format!("format('{{0:{spec}}}', {date})"));
        assert_eq!(f("yyyyMMdd").unwrap().to_text(), "20260307");
        assert_eq!(f("yy.M.d").unwrap().to_text(), "26.3.7");
        assert_eq!(f("HH:mm:ss").unwrap().to_text(), "09:05:04");
        assert_eq!(f("H-m-s ffK").unwrap().to_text(), "9-5-4 00Z");
        assert_eq!(
            text("format('{0:yyyy}-{1}', '2026-12-31T23:59:59.123Z', 'x')"),
            "2026-x"
        );
        let bad = f("yyyyMMMdd").unwrap_err();
        assert!(bad.contains("'MMM'") && bad.contains("documents"), "{bad}");
        assert!(value("format('{0:yyyy}', '2026-13-01T00:00:00Z')").is_err());
        assert_eq!(text("upper(lower('MiX'))"), "MIX");
        assert_eq!(text("trim('  x ')"), "x");
        assert_eq!(text("coalesce('', null, 'z')"), "z");
        assert_eq!(
            text("iif(eq(parameters.env, 'PROD'), 'big', 'small')"),
            "big"
        );
        assert_eq!(text("xor(true, false)"), "True");
        assert_eq!(text("xor(true, 'x')"), "False");
        assert_eq!(text("notIn('a', 'b', 'c')"), "True");
        assert_eq!(text("endsWith('file.yml', '.YML')"), "True");
        assert_eq!(text("ge(2, '2')"), "True");
        assert_eq!(text("lt('abc', 'ABD')"), "True");
        assert_eq!(text("1.5"), "1.5");
        assert_eq!(text("-3"), "-3");
        assert_eq!(text("1.2.3"), "1.2.3");
        assert!(value("gt(1, 'x')").is_err());
        assert!(value("length(1)").is_err());
        assert!(value("lower(parameters.regions)").is_err());
    }

    #[test]
    fn converts_to_json_in_order() {
        assert_eq!(
            text("convertToJson(parameters.flags)"),
            "{\n  \"Fast\": \"true\",\n  \"n\": \"3\"\n}"
        );
        assert_eq!(
            text("convertToJson(split('a,b', ','))"),
            "[\n  \"a\",\n  \"b\"\n]"
        );
        assert_eq!(text("convertToJson(parameters.empty)"), "[]");
    }

    #[test]
    fn yaml_scalars_are_strings() {
        let node = crate::yaml::parse("{off: false, n: 12, q: 'false'}").unwrap();
        let obj = Val::Yaml(node);
        assert_eq!(
            obj.property("off").plain().into_owned(),
            Val::Str("false".into())
        );
        assert!(
            obj.property("off").truthy(),
            "the text 'false' is not empty"
        );
        assert!(equal(&obj.property("off"), &Val::Bool(false)));
        assert!(!equal(&obj.property("off"), &Val::Bool(true)));
        assert!(!equal(&obj.property("off"), &Val::Str(String::new())));
        assert!(equal(&obj.property("n"), &Val::Num(12.0)));
        assert_eq!(obj.property("q").to_text(), "false");
    }

    #[test]
    fn counter_needs_a_scope_that_keeps_counters() {
        let e = Expression::parse("counter('x', 5)").unwrap();
        let err = e.eval(&scope(vec![], false)).unwrap_err();
        assert!(err.contains("$[ ]"), "{err}");
    }

    #[test]
    fn errors_are_reported() {
        let err = Expression::parse("succeded()").unwrap_err();
        assert!(err.contains("unknown function 'succeded'"), "{err}");
        assert!(Expression::parse("eq(1)").unwrap_err().contains("takes 2"));
        assert!(Expression::parse("eq(1, 2").is_err());
        assert!(Expression::parse("foo.bar")
            .unwrap_err()
            .contains("unrecognized name 'foo'"));
        assert!(Expression::parse("parameters.x").is_err());
        assert!(Expression::parse_template("succeeded()", &[])
            .unwrap_err()
            .contains("only in a condition"));
        assert!(Expression::parse_template("item.x", &[]).is_err());
        assert!(Expression::parse_template("item.x", &["item"]).is_ok());
        assert!(Expression::parse_template("'open", &[]).is_err());
        assert!(Expression::parse_template("a[0", &["a"]).is_err());
    }

    #[test]
    fn template_substitution() {
        let s = S {
            vars: [("System.TeamProject".to_string(), "proj".to_string())].into(),
            outcomes: vec![],
            canceled: false,
            contexts: vec![],
        };
        assert_eq!(
            substitute_template(
                "git://${{variables['System.TeamProject']}}@x ${{ variables.system.teamproject }}",
                &s,
                &[]
            )
            .unwrap(),
            "git://proj@x proj"
        );
        let err = substitute_template("x ${{ split('a', ',') }}", &s, &[]).unwrap_err();
        assert!(err.contains("an array"), "{err}");
    }
}
