//! The subset of Data Factory's expression language that real pipelines use: `@…` values,
//! `@{…}` interpolation, `pipeline()`, `variables()`, `activity()`, `item()` with property and
//! index access, and the common string, logic, conversion, collection and date functions.

use serde_json::{json, Map, Value};

use crate::clock;

/// What an expression can see.
pub struct Scope<'a> {
    /// The `pipeline()` object (`parameters`, `RunId`, `Pipeline`, …).
    pub pipeline: &'a Value,
    pub variables: &'a Map<String, Value>,
    /// Activity name → `{output, status, error}` of activities that ran before.
    pub activities: &'a Map<String, Value>,
    /// The current `ForEach` item.
    pub item: Option<&'a Value>,
}

#[derive(Debug)]
enum Expr {
    Lit(Value),
    Call(String, Vec<Expr>),
    /// `base.name` (`?.` is the same here: a missing property is null either way).
    Prop(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
}

struct Parser<'s> {
    s: &'s [u8],
    text: &'s str,
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!(
            "the expression '{}' is not valid: {what} at position {}",
            self.text, self.i
        ))
    }

    fn expr(&mut self) -> Result<Expr, String> {
        self.ws();
        let mut e = match self.s.get(self.i) {
            Some(b'\'') => {
                self.i += 1;
                let mut out = String::new();
                loop {
                    match self.s.get(self.i) {
                        None => return self.err("an unterminated string"),
                        Some(b'\'') if self.s.get(self.i + 1) == Some(&b'\'') => {
                            out.push('\'');
                            self.i += 2;
                        }
                        Some(b'\'') => {
                            self.i += 1;
                            break;
                        }
                        Some(_) => {
                            let rest = &self.text[self.i..];
                            let ch = rest.chars().next().unwrap_or(' ');
                            out.push(ch);
                            self.i += ch.len_utf8();
                        }
                    }
                }
                Expr::Lit(Value::String(out))
            }
            Some(c) if c.is_ascii_digit() || *c == b'-' => {
                let start = self.i;
                self.i += 1;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|c| c.is_ascii_digit() || *c == b'.')
                {
                    self.i += 1;
                }
                let t = &self.text[start..self.i];
                match t.parse::<i64>() {
                    Ok(n) => Expr::Lit(json!(n)),
                    Err(_) => match t.parse::<f64>() {
                        Ok(f) => Expr::Lit(json!(f)),
                        Err(_) => return self.err("a bad number"),
                    },
                }
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let name = self.ident();
                match name.as_str() {
                    "true" => Expr::Lit(json!(true)),
                    "false" => Expr::Lit(json!(false)),
                    "null" => Expr::Lit(Value::Null),
                    _ => {
                        if !self.eat(b'(') {
                            return self.err("a function call expected");
                        }
                        let mut args = Vec::new();
                        if !self.eat(b')') {
                            loop {
                                args.push(self.expr()?);
                                if self.eat(b')') {
                                    break;
                                }
                                if !self.eat(b',') {
                                    return self.err("',' or ')' expected");
                                }
                            }
                        }
                        Expr::Call(name, args)
                    }
                }
            }
            _ => return self.err("a value expected"),
        };
        loop {
            self.ws();
            if self.s.get(self.i) == Some(&b'?') && self.s.get(self.i + 1) == Some(&b'.') {
                self.i += 1;
            }
            if self.eat(b'.') {
                self.ws();
                let name = self.ident();
                if name.is_empty() {
                    return self.err("a property name expected");
                }
                e = Expr::Prop(Box::new(e), name);
            } else if self.eat(b'[') {
                let index = self.expr()?;
                if !self.eat(b']') {
                    return self.err("']' expected");
                }
                e = Expr::Index(Box::new(e), Box::new(index));
            } else {
                return Ok(e);
            }
        }
    }

    fn ident(&mut self) -> String {
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'$')
        {
            self.i += 1;
        }
        self.text[start..self.i].to_string()
    }
}

fn parse(text: &str) -> Result<Expr, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
    };
    let e = p.expr()?;
    p.ws();
    if p.i != text.len() {
        return p.err("unexpected text");
    }
    Ok(e)
}

/// A property of an object, by exact name or else case-insensitively (as Data Factory does).
fn prop(v: &Value, name: &str) -> Value {
    match v {
        Value::Object(m) => m
            .get(name)
            .or_else(|| {
                m.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
            .cloned()
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// How Data Factory shows a value inside a string.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn truthy(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(format!("expected a boolean, got {}", text(other))),
    }
}

fn num(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => Ok(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not a number")),
        other => Err(format!("expected a number, got {}", text(other))),
    }
}

fn number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        json!(f as i64)
    } else {
        json!(f)
    }
}

fn eval(e: &Expr, scope: &Scope<'_>) -> Result<Value, String> {
    match e {
        Expr::Lit(v) => Ok(v.clone()),
        Expr::Prop(base, name) => Ok(prop(&eval(base, scope)?, name)),
        Expr::Index(base, index) => {
            let base = eval(base, scope)?;
            match eval(index, scope)? {
                Value::String(name) => Ok(prop(&base, &name)),
                i => {
                    let i = num(&i)? as usize;
                    Ok(base.get(i).cloned().unwrap_or(Value::Null))
                }
            }
        }
        Expr::Call(name, args) => call(name, args, scope),
    }
}

fn call(name: &str, args: &[Expr], scope: &Scope<'_>) -> Result<Value, String> {
    let lower = name.to_ascii_lowercase();
    // `if` evaluates only the branch it takes.
    if lower == "if" {
        if args.len() != 3 {
            return Err("if() takes 3 arguments".into());
        }
        let branch = if truthy(&eval(&args[0], scope)?)? {
            &args[1]
        } else {
            &args[2]
        };
        return eval(branch, scope);
    }
    let a: Vec<Value> = args
        .iter()
        .map(|e| eval(e, scope))
        .collect::<Result<_, _>>()?;
    let arg = |i: usize| -> Result<&Value, String> {
        a.get(i)
            .ok_or_else(|| format!("{name}() needs at least {} argument(s)", i + 1))
    };
    let s = |i: usize| -> Result<String, String> { arg(i).map(text) };
    Ok(match lower.as_str() {
        "pipeline" => scope.pipeline.clone(),
        "variables" => {
            let n = s(0)?;
            scope
                .variables
                .get(&n)
                .cloned()
                .ok_or_else(|| format!("the variable '{n}' is not declared in the pipeline"))?
        }
        "activity" => {
            let n = s(0)?;
            scope.activities.get(&n).cloned().ok_or_else(|| {
                format!(
                    "the activity '{n}' has not run before this expression (add it to dependsOn)"
                )
            })?
        }
        "item" => scope
            .item
            .cloned()
            .ok_or("item() is only valid inside a ForEach")?,
        "concat" => match a.first() {
            Some(Value::Array(_)) => Value::Array(
                a.iter()
                    .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                    .collect(),
            ),
            _ => Value::String(a.iter().map(text).collect()),
        },
        "string" => Value::String(text(arg(0)?)),
        "int" => json!(num(arg(0)?)?.trunc() as i64),
        "float" => json!(num(arg(0)?)?),
        "bool" => json!(truthy(arg(0)?)?),
        "json" => match arg(0)? {
            Value::String(t) => {
                serde_json::from_str(t).map_err(|_| format!("json(): '{t}' is not JSON"))?
            }
            other => other.clone(),
        },
        "equals" => json!(equal(arg(0)?, arg(1)?)),
        "not" => json!(!truthy(arg(0)?)?),
        "and" => json!(a
            .iter()
            .map(truthy)
            .collect::<Result<Vec<_>, _>>()?
            .iter()
            .all(|b| *b)),
        "or" => json!(a
            .iter()
            .map(truthy)
            .collect::<Result<Vec<_>, _>>()?
            .iter()
            .any(|b| *b)),
        "greater" => json!(num(arg(0)?)? > num(arg(1)?)?),
        "greaterorequals" => json!(num(arg(0)?)? >= num(arg(1)?)?),
        "less" => json!(num(arg(0)?)? < num(arg(1)?)?),
        "lessorequals" => json!(num(arg(0)?)? <= num(arg(1)?)?),
        "add" => number(num(arg(0)?)? + num(arg(1)?)?),
        "sub" => number(num(arg(0)?)? - num(arg(1)?)?),
        "mul" => number(num(arg(0)?)? * num(arg(1)?)?),
        "div" | "mod" => {
            let (x, y) = (num(arg(0)?)?, num(arg(1)?)?);
            if y == 0.0 {
                return Err(format!("{name}(): division by zero"));
            }
            if lower == "div" {
                number((x / y).trunc())
            } else {
                number(x % y)
            }
        }
        "length" => json!(match arg(0)? {
            Value::String(t) => t.chars().count(),
            Value::Array(v) => v.len(),
            Value::Object(m) => m.len(),
            _ => 0,
        }),
        "empty" => json!(match arg(0)? {
            Value::String(t) => t.is_empty(),
            Value::Array(v) => v.is_empty(),
            Value::Object(m) => m.is_empty(),
            Value::Null => true,
            _ => false,
        }),
        "contains" => json!(match arg(0)? {
            Value::String(t) => t.contains(&s(1)?),
            Value::Array(v) => v.iter().any(|x| equal(x, &a[1])),
            Value::Object(m) => m.contains_key(&s(1)?),
            _ => false,
        }),
        "coalesce" => a
            .iter()
            .find(|v| !v.is_null())
            .cloned()
            .unwrap_or(Value::Null),
        "createarray" => Value::Array(a.clone()),
        "first" => match arg(0)? {
            Value::Array(v) => v.first().cloned().unwrap_or(Value::Null),
            Value::String(t) => json!(t.chars().next().map(String::from).unwrap_or_default()),
            _ => Value::Null,
        },
        "last" => match arg(0)? {
            Value::Array(v) => v.last().cloned().unwrap_or(Value::Null),
            Value::String(t) => json!(t.chars().last().map(String::from).unwrap_or_default()),
            _ => Value::Null,
        },
        "toupper" => json!(s(0)?.to_uppercase()),
        "tolower" => json!(s(0)?.to_lowercase()),
        "trim" => json!(s(0)?.trim()),
        "replace" => json!(s(0)?.replace(&s(1)?, &s(2)?)),
        "split" => json!(s(0)?.split(s(1)?.as_str()).collect::<Vec<_>>()),
        "startswith" => json!(s(0)?.to_lowercase().starts_with(&s(1)?.to_lowercase())),
        "endswith" => json!(s(0)?.to_lowercase().ends_with(&s(1)?.to_lowercase())),
        "substring" => {
            let t: Vec<char> = s(0)?.chars().collect();
            let start = num(arg(1)?)? as usize;
            let len = a
                .get(2)
                .map(num)
                .transpose()?
                .map_or(t.len().saturating_sub(start), |l| l as usize);
            if start + len > t.len() {
                return Err(format!(
                    "substring(): {start}+{len} is beyond the string's length {}",
                    t.len()
                ));
            }
            json!(t[start..start + len].iter().collect::<String>())
        }
        "guid" => json!(clock::guid()),
        "utcnow" => json!(clock::iso(clock::now_ms())),
        _ => {
            return Err(format!(
                "the emulator does not implement the function '{name}'"
            ))
        }
    })
}

fn equal(x: &Value, y: &Value) -> bool {
    match (x, y) {
        (Value::Number(_), Value::Number(_)) => num(x).ok() == num(y).ok(),
        (Value::String(a), Value::String(b)) => a == b,
        _ => x == y,
    }
}

/// Evaluates one expression (the text after `@`).
pub fn eval_expression(text: &str, scope: &Scope<'_>) -> Result<Value, String> {
    eval(&parse(text)?, scope)
}

/// A string as Data Factory reads it: `@expr` is evaluated, `@@` escapes a leading `@`,
/// `@{expr}` anywhere is replaced by the expression's text, anything else is literal.
pub fn eval_string(s: &str, scope: &Scope<'_>) -> Result<Value, String> {
    if let Some(rest) = s.strip_prefix("@@") {
        return Ok(Value::String(format!("@{rest}")));
    }
    if s.starts_with('@') && !s.starts_with("@{") {
        return eval_expression(&s[1..], scope);
    }
    if !s.contains("@{") {
        return Ok(Value::String(s.to_string()));
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("@{") {
        out.push_str(&rest[..at]);
        let inner = &rest[at + 2..];
        let end = closing_brace(inner)
            .ok_or_else(|| format!("the interpolation in '{s}' has no closing '}}'"))?;
        out.push_str(&text(&eval_expression(&inner[..end], scope)?));
        rest = &inner[end + 1..];
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

/// The index of the `}` that closes an interpolation, skipping quoted strings.
fn closing_brace(s: &str) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '}' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// A JSON property value as Data Factory reads it: `{"value": "…", "type": "Expression"}`
/// and strings are evaluated, objects and arrays evaluated member by member.
pub fn eval_value(v: &Value, scope: &Scope<'_>) -> Result<Value, String> {
    match v {
        Value::Object(m)
            if m.get("type").and_then(Value::as_str) == Some("Expression")
                && m.get("value").is_some_and(Value::is_string) =>
        {
            eval_string(m["value"].as_str().unwrap_or_default(), scope)
        }
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(k.clone(), eval_value(v, scope)?);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items.iter().map(|v| eval_value(v, scope)).collect(),
        Value::String(s) => eval_string(s, scope),
        other => Ok(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with<T>(f: impl FnOnce(&Scope<'_>) -> T) -> T {
        let pipeline =
            json!({"parameters": {"x": "abc", "n": 3}, "RunId": "run-1", "Pipeline": "p"});
        let variables = json!({"v": "val", "list": [1, 2]})
            .as_object()
            .unwrap()
            .clone();
        let activities =
            json!({"A": {"output": {"runOutput": {"rows": 5}, "value": [{"name": "f1"}]}, "status": "Succeeded"}})
                .as_object()
                .unwrap()
                .clone();
        let item = json!({"name": "it"});
        f(&Scope {
            pipeline: &pipeline,
            variables: &variables,
            activities: &activities,
            item: Some(&item),
        })
    }

    fn ev(s: &str) -> Result<Value, String> {
        with(|scope| eval_string(s, scope))
    }

    #[test]
    fn functions_and_access() {
        assert_eq!(ev("@pipeline().parameters.x").unwrap(), "abc");
        assert_eq!(ev("@pipeline().RunId").unwrap(), "run-1");
        assert_eq!(ev("@pipeline().runid").unwrap(), "run-1");
        assert_eq!(ev("@variables('v')").unwrap(), "val");
        assert_eq!(ev("@concat('a', variables('v'), 'b')").unwrap(), "avalb");
        assert_eq!(ev("@activity('A').output.runOutput.rows").unwrap(), 5);
        assert_eq!(ev("@activity('A').output.value[0].name").unwrap(), "f1");
        assert_eq!(
            ev("@activity('A')?.output['runOutput']['rows']").unwrap(),
            5
        );
        assert_eq!(ev("@equals(pipeline().parameters.n, 3)").unwrap(), true);
        assert_eq!(ev("@if(equals(1, 2), 'yes', 'no')").unwrap(), "no");
        assert_eq!(ev("@string(pipeline().parameters.n)").unwrap(), "3");
        assert_eq!(ev("@int('42')").unwrap(), 42);
        assert_eq!(ev("@add(int('2'), 3)").unwrap(), 5);
        assert_eq!(ev("@item().name").unwrap(), "it");
        assert_eq!(ev("@length(variables('list'))").unwrap(), 2);
        assert_eq!(ev("@and(greater(2, 1), not(empty('x')))").unwrap(), true);
        assert_eq!(ev("@toUpper('it''s')").unwrap(), "IT'S");
        assert_eq!(ev("@split('a,b', ',')").unwrap(), json!(["a", "b"]));
        assert!(ev("@utcnow()").unwrap().as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn interpolation_literals_and_escapes() {
        assert_eq!(
            ev("run @{pipeline().RunId} of @{pipeline().Pipeline}").unwrap(),
            "run run-1 of p"
        );
        assert_eq!(ev("@{concat('}', 'x')}!").unwrap(), "}x!");
        assert_eq!(ev("plain").unwrap(), "plain");
        assert_eq!(ev("@@literal").unwrap(), "@literal");
        assert_eq!(ev("user@example.com").unwrap(), "user@example.com");
        let v = with(|scope| {
            eval_value(&json!({"a": {"value": "@variables('v')", "type": "Expression"}, "b": [1, "@{variables('v')}"]}), scope)
        })
        .unwrap();
        assert_eq!(v, json!({"a": "val", "b": [1, "val"]}));
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(ev("@variables('nope')").unwrap_err().contains("'nope'"));
        assert!(ev("@activity('B').output").unwrap_err().contains("'B'"));
        assert!(ev("@frobnicate(1)").unwrap_err().contains("frobnicate"));
        assert!(ev("@concat('a'").unwrap_err().contains("not valid"));
        assert!(ev("@div(1, 0)").unwrap_err().contains("division by zero"));
    }
}
