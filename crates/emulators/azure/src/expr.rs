//! ARM template language expressions: `[parameters('x')]`, `[concat(...)]`,
//! `[resourceGroup().location]` and a useful subset of the standard functions.
//!
//! A function the emulator does not implement (`reference`, `listKeys`, …) leaves the whole
//! string as it was written, so a template that uses one still deploys; an expression that is
//! wrong by ARM's rules (an undeclared parameter, a missing property) is an error, as in ARM.

use serde_json::{json, Map, Value};

/// Why an expression could not be evaluated.
#[derive(Debug)]
pub enum EvalError {
    /// The emulator does not implement something the expression uses: keep the text.
    Unsupported,
    /// The expression is wrong by ARM's rules; the text says why.
    Invalid(String),
}

/// What expressions can see.
pub struct Ctx<'a> {
    pub params: &'a Map<String, Value>,
    pub variables: &'a Map<String, Value>,
    pub resource_group: Option<Value>,
    pub subscription: Value,
    pub deployment: Value,
    pub tenant_id: String,
    pub subscription_id: String,
    pub resource_group_name: Option<String>,
}

#[derive(Debug)]
enum Expr {
    Str(String),
    Num(i64),
    Call(String, Vec<Expr>, Vec<Access>),
}

#[derive(Debug)]
enum Access {
    Prop(String),
    Index(Expr),
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.ws();
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn ident(&mut self) -> Option<String> {
        self.ws();
        let start = self.pos;
        while self
            .chars
            .get(self.pos)
            .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
        {
            self.pos += 1;
        }
        (self.pos > start).then(|| self.chars[start..self.pos].iter().collect())
    }

    fn expr(&mut self) -> Option<Expr> {
        match self.peek()? {
            '\'' => {
                self.pos += 1;
                let mut s = String::new();
                loop {
                    let c = *self.chars.get(self.pos)?;
                    self.pos += 1;
                    if c == '\'' {
                        if self.chars.get(self.pos) == Some(&'\'') {
                            s.push('\'');
                            self.pos += 1;
                        } else {
                            return Some(Expr::Str(s));
                        }
                    } else {
                        s.push(c);
                    }
                }
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = self.pos;
                self.pos += 1;
                while self.chars.get(self.pos).is_some_and(char::is_ascii_digit) {
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                text.parse().ok().map(Expr::Num)
            }
            _ => {
                let name = self.ident()?;
                if !self.eat('(') {
                    return None;
                }
                let mut args = Vec::new();
                if !self.eat(')') {
                    loop {
                        args.push(self.expr()?);
                        if self.eat(')') {
                            break;
                        }
                        if !self.eat(',') {
                            return None;
                        }
                    }
                }
                let mut access = Vec::new();
                loop {
                    if self.eat('.') {
                        access.push(Access::Prop(self.ident()?));
                    } else if self.eat('[') {
                        access.push(Access::Index(self.expr()?));
                        if !self.eat(']') {
                            return None;
                        }
                    } else {
                        break;
                    }
                }
                Some(Expr::Call(name.to_ascii_lowercase(), args, access))
            }
        }
    }
}

/// Evaluates every string in `value` that is an expression.
pub fn eval_value(value: &Value, ctx: &Ctx<'_>) -> Result<Value, String> {
    eval_value_at(value, ctx, 0)
}

fn eval_value_at(value: &Value, ctx: &Ctx<'_>, depth: u32) -> Result<Value, String> {
    if depth > 32 {
        return Err("The template variables form a circular reference".into());
    }
    Ok(match value {
        Value::String(s) => eval_string(s, ctx, depth)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| eval_value_at(v, ctx, depth))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), eval_value_at(v, ctx, depth)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn eval_string(s: &str, ctx: &Ctx<'_>, depth: u32) -> Result<Value, String> {
    if !(s.starts_with('[') && s.ends_with(']')) || s.len() < 2 {
        return Ok(Value::String(s.to_string()));
    }
    if s.starts_with("[[") {
        // `[[` escapes a literal leading bracket.
        return Ok(Value::String(s[1..].to_string()));
    }
    let mut parser = Parser {
        chars: s[1..s.len() - 1].chars().collect(),
        pos: 0,
    };
    let Some(expr) = parser.expr() else {
        return Ok(Value::String(s.to_string()));
    };
    if parser.peek().is_some() {
        return Ok(Value::String(s.to_string()));
    }
    match eval(&expr, ctx, depth) {
        Ok(v) => Ok(v),
        Err(EvalError::Unsupported) => Ok(Value::String(s.to_string())),
        Err(EvalError::Invalid(msg)) => Err(msg),
    }
}

fn lookup<'v>(map: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn as_str(v: &Value) -> Result<String, EvalError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(EvalError::Unsupported),
    }
}

fn truthy(v: &Value) -> Result<bool, EvalError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(EvalError::Invalid(format!(
            "The template language function expects a boolean, not '{v}'"
        ))),
    }
}

/// A 64-bit FNV-1a hash: stable across runs and platforms, unlike `DefaultHasher`.
pub fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn unique_string(parts: &[String]) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut h = fnv(&parts.join("-"));
    (0..13)
        .map(|_| {
            let c = ALPHABET[(h % 32) as usize] as char;
            h = (h / 32) ^ fnv(&h.to_string());
            c
        })
        .collect()
}

fn deterministic_guid(parts: &[String]) -> String {
    let a = fnv(&parts.join("-"));
    let b = fnv(&format!("{a}{}", parts.join("|")));
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Builds `providers/ns/t1/n1/t2/n2` from a full type and a full name; `None` when their
/// segment counts do not fit together.
pub fn provider_path(resource_type: &str, name: &str) -> Option<String> {
    let types: Vec<&str> = resource_type.split('/').collect();
    let names: Vec<&str> = name.split('/').collect();
    if types.len() != names.len() + 1 || types.iter().any(|t| t.is_empty()) {
        return None;
    }
    let mut path = format!("providers/{}", types[0]);
    for (t, n) in types[1..].iter().zip(&names) {
        path.push_str(&format!("/{t}/{n}"));
    }
    Some(path)
}

fn eval(expr: &Expr, ctx: &Ctx<'_>, depth: u32) -> Result<Value, EvalError> {
    match expr {
        Expr::Str(s) => Ok(Value::String(s.clone())),
        Expr::Num(n) => Ok(json!(n)),
        Expr::Call(name, args, access) => {
            let mut value = call(name, args, ctx, depth)?;
            for a in access {
                value = match a {
                    Access::Prop(p) => match &value {
                        Value::Object(map) => lookup(map, p).cloned().ok_or_else(|| {
                            let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                            EvalError::Invalid(format!(
                                "The language expression property '{p}' doesn't exist, available properties are '{}'",
                                keys.join(", ")
                            ))
                        })?,
                        _ => return Err(EvalError::Unsupported),
                    },
                    Access::Index(e) => {
                        let index = eval(e, ctx, depth)?;
                        match (&value, &index) {
                            (Value::Array(items), Value::Number(n)) => n
                                .as_u64()
                                .and_then(|i| items.get(i as usize))
                                .cloned()
                                .ok_or_else(|| {
                                    EvalError::Invalid(format!(
                                        "The language expression array index '{n}' is out of bounds"
                                    ))
                                })?,
                            (Value::Object(map), Value::String(k)) => {
                                lookup(map, k).cloned().ok_or(EvalError::Unsupported)?
                            }
                            _ => return Err(EvalError::Unsupported),
                        }
                    }
                };
            }
            Ok(value)
        }
    }
}

fn call(name: &str, args: &[Expr], ctx: &Ctx<'_>, depth: u32) -> Result<Value, EvalError> {
    let values =
        || -> Result<Vec<Value>, EvalError> { args.iter().map(|a| eval(a, ctx, depth)).collect() };
    let strings = || -> Result<Vec<String>, EvalError> { values()?.iter().map(as_str).collect() };
    let arg = |i: usize| -> Result<Value, EvalError> {
        args.get(i)
            .map(|a| eval(a, ctx, depth))
            .unwrap_or(Err(EvalError::Invalid(format!(
                "The template language function '{name}' expects more arguments"
            ))))
    };
    match name {
        "parameters" => {
            let n = as_str(&arg(0)?)?;
            lookup(ctx.params, &n).cloned().ok_or_else(|| {
                EvalError::Invalid(format!("The template parameter '{n}' is not found"))
            })
        }
        "variables" => {
            let n = as_str(&arg(0)?)?;
            let raw = lookup(ctx.variables, &n).ok_or_else(|| {
                EvalError::Invalid(format!("The template variable '{n}' is not found"))
            })?;
            eval_value_at(raw, ctx, depth + 1).map_err(EvalError::Invalid)
        }
        "concat" => {
            let vs = values()?;
            if vs.first().is_some_and(Value::is_array) {
                let mut out = Vec::new();
                for v in vs {
                    match v {
                        Value::Array(items) => out.extend(items),
                        other => out.push(other),
                    }
                }
                Ok(Value::Array(out))
            } else {
                Ok(Value::String(
                    vs.iter().map(as_str).collect::<Result<String, _>>()?,
                ))
            }
        }
        // The base's last segment is replaced unless it ends in '/' (RFC 3986, as .NET's Uri).
        "uri" => {
            let (base, relative) = (as_str(&arg(0)?)?, as_str(&arg(1)?)?);
            url::Url::parse(&base)
                .and_then(|u| u.join(&relative))
                .map(|u| Value::String(u.to_string()))
                .map_err(|_| {
                    EvalError::Invalid(format!(
                        "The template language function 'uri' expects an absolute URI as its first argument; '{base}' is not"
                    ))
                })
        }
        "resourcegroup" => ctx.resource_group.clone().ok_or_else(|| {
            EvalError::Invalid(
                "The template function 'RESOURCEGROUP' is not expected at this location".into(),
            )
        }),
        "subscription" => Ok(ctx.subscription.clone()),
        "deployment" => Ok(ctx.deployment.clone()),
        "tenant" => Ok(json!({"tenantId": ctx.tenant_id})),
        "tolower" => Ok(Value::String(as_str(&arg(0)?)?.to_lowercase())),
        "toupper" => Ok(Value::String(as_str(&arg(0)?)?.to_uppercase())),
        "trim" => Ok(Value::String(as_str(&arg(0)?)?.trim().to_string())),
        "string" => match arg(0)? {
            Value::String(s) => Ok(Value::String(s)),
            other => Ok(Value::String(other.to_string())),
        },
        "int" => match arg(0)? {
            Value::Number(n) => Ok(Value::Number(n)),
            Value::String(s) => s.trim().parse::<i64>().map(|n| json!(n)).map_err(|_| {
                EvalError::Invalid(format!("The value '{s}' cannot be converted to an integer"))
            }),
            _ => Err(EvalError::Unsupported),
        },
        "bool" => Ok(Value::Bool(truthy(&arg(0)?)?)),
        "json" => serde_json::from_str(&as_str(&arg(0)?)?).map_err(|e| {
            EvalError::Invalid(format!(
                "The template function 'json' got invalid JSON: {e}"
            ))
        }),
        "true" => Ok(Value::Bool(true)),
        "false" => Ok(Value::Bool(false)),
        "null" => Ok(Value::Null),
        "equals" => Ok(Value::Bool(arg(0)? == arg(1)?)),
        "not" => Ok(Value::Bool(!truthy(&arg(0)?)?)),
        "and" => Ok(Value::Bool(
            values()?
                .iter()
                .map(truthy)
                .collect::<Result<Vec<_>, _>>()?
                .iter()
                .all(|b| *b),
        )),
        "or" => Ok(Value::Bool(
            values()?
                .iter()
                .map(truthy)
                .collect::<Result<Vec<_>, _>>()?
                .iter()
                .any(|b| *b),
        )),
        "if" => {
            if truthy(&arg(0)?)? {
                arg(1)
            } else {
                arg(2)
            }
        }
        "coalesce" => Ok(values()?
            .into_iter()
            .find(|v| !v.is_null())
            .unwrap_or(Value::Null)),
        "empty" => Ok(Value::Bool(match arg(0)? {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        })),
        "length" => match arg(0)? {
            Value::String(s) => Ok(json!(s.chars().count())),
            Value::Array(a) => Ok(json!(a.len())),
            Value::Object(o) => Ok(json!(o.len())),
            _ => Err(EvalError::Unsupported),
        },
        "contains" => match (arg(0)?, arg(1)?) {
            (Value::String(s), v) => Ok(Value::Bool(s.contains(&as_str(&v)?))),
            (Value::Array(a), v) => Ok(Value::Bool(a.contains(&v))),
            (Value::Object(o), v) => Ok(Value::Bool(lookup(&o, &as_str(&v)?).is_some())),
            _ => Err(EvalError::Unsupported),
        },
        "add" => match (arg(0)?.as_i64(), arg(1)?.as_i64()) {
            (Some(a), Some(b)) => Ok(json!(a.wrapping_add(b))),
            _ => Err(EvalError::Unsupported),
        },
        "replace" => Ok(Value::String(
            as_str(&arg(0)?)?.replace(&as_str(&arg(1)?)?, &as_str(&arg(2)?)?),
        )),
        "format" => {
            let parts = strings()?;
            let Some((fmt, rest)) = parts.split_first() else {
                return Err(EvalError::Unsupported);
            };
            let mut out = fmt.clone();
            for (i, p) in rest.iter().enumerate() {
                out = out.replace(&format!("{{{i}}}"), p);
            }
            Ok(Value::String(out))
        }
        "uniquestring" => Ok(Value::String(unique_string(&strings()?))),
        "guid" => Ok(Value::String(deterministic_guid(&strings()?))),
        "createarray" => Ok(Value::Array(values()?)),
        "createobject" => {
            let vs = values()?;
            let mut map = Map::new();
            for pair in vs.chunks(2) {
                if let [k, v] = pair {
                    map.insert(as_str(k)?, v.clone());
                }
            }
            Ok(Value::Object(map))
        }
        "resourceid" => {
            let parts = strings()?;
            let Some(type_index) = parts.iter().position(|p| p.contains('/')) else {
                return Err(EvalError::Unsupported);
            };
            let (sub, rg) = match type_index {
                0 => (ctx.subscription_id.clone(), ctx.resource_group_name.clone()),
                1 => (ctx.subscription_id.clone(), Some(parts[0].clone())),
                2 => (parts[0].clone(), Some(parts[1].clone())),
                _ => return Err(EvalError::Unsupported),
            };
            let path = provider_path(&parts[type_index], &parts[type_index + 1..].join("/"))
                .ok_or(EvalError::Unsupported)?;
            Ok(Value::String(match rg {
                Some(rg) => format!("/subscriptions/{sub}/resourceGroups/{rg}/{path}"),
                None => format!("/subscriptions/{sub}/{path}"),
            }))
        }
        "subscriptionresourceid" => {
            let parts = strings()?;
            let (sub, rest) = match parts.iter().position(|p| p.contains('/')) {
                Some(0) => (ctx.subscription_id.clone(), &parts[..]),
                Some(1) => (parts[0].clone(), &parts[1..]),
                _ => return Err(EvalError::Unsupported),
            };
            let path =
                provider_path(&rest[0], &rest[1..].join("/")).ok_or(EvalError::Unsupported)?;
            Ok(Value::String(format!("/subscriptions/{sub}/{path}")))
        }
        _ => Err(EvalError::Unsupported),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_ctx<T>(f: impl FnOnce(&Ctx<'_>) -> T) -> T {
        let params = json!({"name": "app", "count": 3, "flag": true});
        let vars = json!({"prefix": "[concat('pre-', parameters('name'))]", "loop": "[variables('loop')]"});
        let ctx = Ctx {
            params: params.as_object().unwrap(),
            variables: vars.as_object().unwrap(),
            resource_group: Some(json!({"name": "rg1", "location": "westeurope"})),
            subscription: json!({"subscriptionId": "sub"}),
            deployment: json!({"name": "dep"}),
            tenant_id: "tid".into(),
            subscription_id: "sub".into(),
            resource_group_name: Some("rg1".into()),
        };
        f(&ctx)
    }

    #[test]
    fn evaluates_common_expressions() {
        with_ctx(|ctx| {
            let ev = |s: &str| eval_value(&json!(s), ctx).unwrap();
            assert_eq!(ev("[parameters('name')]"), json!("app"));
            assert_eq!(ev("[parameters('count')]"), json!(3));
            assert_eq!(ev("[variables('prefix')]"), json!("pre-app"));
            assert_eq!(
                ev("[concat(variables('prefix'), '-', 'x''y')]"),
                json!("pre-app-x'y")
            );
            assert_eq!(ev("[resourceGroup().location]"), json!("westeurope"));
            assert_eq!(ev("[toUpper(parameters('name'))]"), json!("APP"));
            assert_eq!(ev("[if(parameters('flag'), 'yes', 'no')]"), json!("yes"));
            assert_eq!(ev("[[literal]"), json!("[literal]"));
            assert_eq!(ev("plain"), json!("plain"));
            assert_eq!(
                ev("[resourceId('Microsoft.Storage/storageAccounts', 'sa')]"),
                json!("/subscriptions/sub/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/sa")
            );
            assert_eq!(ev("[format('{0}-{1}', 'a', 2)]"), json!("a-2"));
            assert_eq!(ev("[uniqueString('a')]"), ev("[uniqueString('a')]"));
            assert_eq!(ev("[uniqueString('a')]").as_str().unwrap().len(), 13);
        });
    }

    #[test]
    fn unknown_functions_stay_as_written() {
        with_ctx(|ctx| {
            let text = "[reference('x').outputs.y]";
            assert_eq!(eval_value(&json!(text), ctx).unwrap(), json!(text));
            let text = "[concat('a', listKeys('k', '1').keys[0].value)]";
            assert_eq!(eval_value(&json!(text), ctx).unwrap(), json!(text));
        });
    }

    #[test]
    fn wrong_references_are_errors() {
        with_ctx(|ctx| {
            let err = eval_value(&json!("[parameters('nope')]"), ctx).unwrap_err();
            assert!(err.contains("'nope' is not found"), "{err}");
            let err = eval_value(&json!("[variables('loop')]"), ctx).unwrap_err();
            assert!(err.contains("circular"), "{err}");
            let err = eval_value(&json!("[resourceGroup().nope]"), ctx).unwrap_err();
            assert!(err.contains("'nope' doesn't exist"), "{err}");
        });
    }

    #[test]
    fn provider_paths_check_segments() {
        assert_eq!(
            provider_path("Microsoft.DataFactory/factories/pipelines", "f/p").as_deref(),
            Some("providers/Microsoft.DataFactory/factories/f/pipelines/p")
        );
        assert_eq!(
            provider_path("Microsoft.DataFactory/factories/pipelines", "p"),
            None
        );
    }
}
