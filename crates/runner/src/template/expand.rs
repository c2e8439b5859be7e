//! The expansion walk: expressions and directives in every scalar, key and sequence item,
//! template references in `steps`, `jobs`, `stages` and `variables` lists, `extends`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::expr::{self, Expression, Outcome, Scope, Val};
use crate::variables::Variables;
use crate::yaml::{self, Node, Pos, Value};

use super::{normalize, params, Expanded, Options, Problems, MAX_DEPTH, MAX_FILES};

/// What a sequence holds, by the key it is under: where `- template:` names a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Steps,
    Jobs,
    Stages,
    Variables,
    Other,
}

impl Kind {
    fn of_key(key: &str) -> Kind {
        match key {
            "steps" => Kind::Steps,
            "jobs" => Kind::Jobs,
            "stages" => Kind::Stages,
            "variables" => Kind::Variables,
            _ => Kind::Other,
        }
    }

    fn key(self) -> &'static str {
        match self {
            Kind::Steps => "steps",
            Kind::Jobs => "jobs",
            Kind::Stages => "stages",
            Kind::Variables => "variables",
            Kind::Other => "",
        }
    }
}

/// A repository templates are read from; `alias` is `None` for the pipeline's own.
#[derive(Debug, Clone)]
struct Repo {
    alias: Option<String>,
    root: PathBuf,
}

/// What expressions see at one place: the template's parameters, the `each` variables
/// around, the compile-time variables defined so far.
#[derive(Clone)]
struct Ctx {
    params: Rc<Val>,
    locals: Rc<Vec<(String, Val)>>,
    vars: Rc<Vec<(String, String)>>,
}

impl Ctx {
    fn with_local(&self, name: &str, value: Val) -> Ctx {
        let mut locals = (*self.locals).clone();
        locals.push((name.to_owned(), value));
        Ctx {
            locals: Rc::new(locals),
            ..self.clone()
        }
    }

    fn with_vars(&self, more: Vec<(String, String)>) -> Ctx {
        let mut vars = (*self.vars).clone();
        vars.extend(more);
        Ctx {
            vars: Rc::new(vars),
            ..self.clone()
        }
    }

    fn local_names(&self) -> Vec<&str> {
        self.locals.iter().map(|(n, _)| n.as_str()).collect()
    }
}

struct CtxScope<'a> {
    ctx: &'a Ctx,
    base: &'a Variables,
}

impl Scope for CtxScope<'_> {
    fn variable(&self, name: &str) -> Option<String> {
        self.ctx
            .vars
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .or_else(|| self.base.value(name).map(str::to_owned))
    }
    fn context(&self, name: &str) -> Option<Val> {
        if let Some((_, v)) = self
            .ctx
            .locals
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            return Some(v.clone());
        }
        name.eq_ignore_ascii_case("parameters")
            .then(|| (*self.ctx.params).clone())
    }
    fn outcomes(&self, _: &[String]) -> Result<Vec<Outcome>, String> {
        Err("status functions can be used only in conditions".into())
    }
    fn canceled(&self) -> bool {
        false
    }
}

/// A `${{ }}` key that directs the expansion.
enum Directive {
    If(String),
    ElseIf(String),
    Else,
    Each(String, String),
    Insert,
}

/// The directive a key holds; `None` for an ordinary key (also a computed one).
fn directive(key: &str) -> Option<Result<Directive, String>> {
    let inner = whole_expression(key)?;
    let word = |w: &str| {
        inner
            .strip_prefix(w)
            .filter(|rest| rest.starts_with([' ', '\t', '(']))
            .map(|rest| rest.trim().to_owned())
    };
    if inner == "else" {
        return Some(Ok(Directive::Else));
    }
    if inner == "insert" {
        return Some(Ok(Directive::Insert));
    }
    if let Some(c) = word("if") {
        return Some(Ok(Directive::If(c)));
    }
    if let Some(c) = word("elseif") {
        return Some(Ok(Directive::ElseIf(c)));
    }
    if let Some(rest) = word("each") {
        return Some(match rest.split_once(" in ") {
            Some((name, e))
                if !name.trim().is_empty()
                    && name.trim().chars().all(|c| c.is_alphanumeric() || c == '_') =>
            {
                Ok(Directive::Each(name.trim().to_owned(), e.trim().to_owned()))
            }
            _ => Err(format!(
                "'{}' must read '${{{{ each NAME in EXPRESSION }}}}'",
                key.trim()
            )),
        });
    }
    None
}

/// The expression when `text` is exactly one `${{ … }}`.
fn whole_expression(text: &str) -> Option<&str> {
    let t = text.trim();
    if t.len() >= 5
        && t.starts_with("${{")
        && t.ends_with("}}")
        && t[3..].find("}}") == Some(t.len() - 5)
    {
        Some(t[3..t.len() - 2].trim())
    } else {
        None
    }
}

/// A value as YAML; a YAML node keeps its own position, anything else takes `pos`.
fn to_node(v: Val, pos: Pos) -> Node {
    let value = match v {
        Val::Yaml(node) => return node,
        Val::Null => Value::Scalar {
            text: String::new(),
            plain: true,
        },
        Val::Str(s) => {
            // Text that would read as null stays text.
            let plain = !matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL");
            Value::Scalar { text: s, plain }
        }
        v @ (Val::Bool(_) | Val::Num(_)) => Value::Scalar {
            text: v.to_text(),
            plain: true,
        },
        Val::Array(items) => Value::Seq(items.into_iter().map(|i| to_node(i, pos)).collect()),
        Val::Object(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Node::scalar(&k, true, pos), to_node(v, pos)))
                .collect(),
        ),
    };
    Node { pos, value }
}

/// The compile-time variables an expanded `variables:` defines.
fn defined_variables(node: &Node) -> Vec<(String, String)> {
    match &node.value {
        Value::Map(entries) => entries
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
            .collect(),
        Value::Seq(items) => items
            .iter()
            .filter_map(|i| {
                Some((
                    i.get("name")?.as_str()?.to_owned(),
                    i.get("value")
                        .and_then(Node::as_str)
                        .unwrap_or("")
                        .to_owned(),
                ))
            })
            .collect(),
        Value::Scalar { .. } => Vec::new(),
    }
}

/// Keys that make a mapping a pipeline, stage or job: its `variables` come first.
const SCOPE_KEYS: &[&str] = &[
    "stages",
    "jobs",
    "steps",
    "stage",
    "job",
    "deployment",
    "extends",
];

/// A template's expanded content, the context it was expanded in, and its file.
type Body = (Vec<(Node, Node)>, Ctx, &'static Path);

pub struct Expander<'a> {
    options: &'a Options<'a>,
    p: Problems,
    self_repo: Repo,
    repo_of: HashMap<&'static Path, Repo>,
    /// `resources.repositories`: alias, name, where.
    declared: Vec<(String, String, Pos)>,
    /// Aliases a template reference asked for without a `--repo`: reported once.
    missing_repos: Vec<String>,
    files: Vec<&'static Path>,
    cache: HashMap<&'static Path, Option<Rc<Node>>>,
    stack: Vec<&'static Path>,
}

impl<'a> Expander<'a> {
    pub fn new(options: &'a Options<'a>) -> Expander<'a> {
        Expander {
            options,
            p: Problems::default(),
            self_repo: Repo {
                alias: None,
                root: options.self_root.clone(),
            },
            repo_of: HashMap::new(),
            declared: Vec::new(),
            missing_repos: Vec::new(),
            files: Vec::new(),
            cache: HashMap::new(),
            stack: Vec::new(),
        }
    }

    fn finish(self, root: Option<Node>) -> Expanded {
        Expanded {
            root,
            problems: self.p.errors,
            warnings: self.p.warnings,
        }
    }

    pub fn pipeline(mut self, file: &Path, text: &str) -> Expanded {
        let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let path = yaml::intern(&normalize(&absolute));
        self.repo_of.insert(path, self.self_repo.clone());
        let root = match yaml::parse_file(text, Some(path)) {
            Ok(root) => root,
            Err(e) => {
                self.p.error(e.pos, format!("YAML syntax: {}", e.message));
                return self.finish(None);
            }
        };
        let Some(entries) = root.as_map() else {
            return self.finish(Some(root));
        };
        self.resources(&root);
        let decls = params::declarations(root.get("parameters"), &mut self.p);
        let given = self.given_parameters(&decls);
        let params = params::bind(
            &decls,
            given.as_ref(),
            root.pos,
            params::PIPELINE,
            &mut self.p,
        );
        let ctx = Ctx {
            params: Rc::new(params),
            locals: Rc::new(Vec::new()),
            vars: Rc::new(Vec::new()),
        };
        self.stack.push(path);
        let body: Vec<(Node, Node)> = entries
            .iter()
            .filter(|(k, _)| k.as_str() != Some("parameters"))
            .cloned()
            .collect();
        let mut chain = None;
        let (mut out, _) = self.map(&body, &ctx, Kind::Other, &mut chain, false);
        if let Some(i) = out.iter().position(|(k, _)| k.as_str() == Some("extends")) {
            let (key, ext) = out.remove(i);
            for own in ["stages", "jobs", "steps"] {
                if let Some((k, _)) = out.iter().find(|(k, _)| k.as_str() == Some(own)) {
                    self.p.error(
                        k.pos,
                        format!("a pipeline with 'extends' has no '{own}' of its own (the template gives them)"),
                    );
                }
            }
            if let Some(body) = self.extends(&key, &ext, &ctx) {
                self.merge(&mut out, body);
            }
        }
        self.stack.pop();
        self.unused_repositories();
        let root = Node {
            pos: root.pos,
            value: Value::Map(out),
        };
        self.finish(Some(root))
    }

    /// `--param NAME=VALUE` as the mapping a reference would pass: text for strings, numbers
    /// and booleans, YAML for objects and lists. Positions name no file (the command line).
    fn given_parameters(&mut self, decls: &[params::Decl]) -> Option<Node> {
        if self.options.parameters.is_empty() {
            return None;
        }
        fn unplaced(node: &mut Node) {
            node.pos = Pos::default();
            match &mut node.value {
                Value::Scalar { .. } => {}
                Value::Seq(items) => items.iter_mut().for_each(unplaced),
                Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
                    unplaced(k);
                    unplaced(v);
                }),
            }
        }
        let mut entries = Vec::new();
        for (name, text) in self.options.parameters {
            let structured = decls
                .iter()
                .find(|d| d.name.eq_ignore_ascii_case(name))
                .is_some_and(|d| params::structured(d.ty));
            let mut value = match structured.then(|| yaml::parse(text)) {
                Some(Ok(node)) => node,
                Some(Err(e)) => {
                    self.p.error(
                        Pos::default(),
                        format!("--param {name}: the value is not YAML: {}", e.message),
                    );
                    continue;
                }
                None => Node::scalar(text, false, Pos::default()),
            };
            unplaced(&mut value);
            entries.push((Node::scalar(name, true, Pos::default()), value));
        }
        Some(Node {
            pos: Pos::default(),
            value: Value::Map(entries),
        })
    }

    /// `extends: {template, parameters}`: the template's expanded body (its own `extends`
    /// followed).
    fn extends(&mut self, key: &Node, ext: &Node, ctx: &Ctx) -> Option<Vec<(Node, Node)>> {
        let Some(body) = self.template_body(ext, ctx, None) else {
            if ext.as_map().is_none() {
                self.p.error(
                    key.pos,
                    "'extends' must be a mapping with 'template' (and 'parameters')",
                );
            }
            return None;
        };
        let (mut out, callee, file) = body;
        let result = if let Some(i) = out.iter().position(|(k, _)| k.as_str() == Some("extends")) {
            let (k, inner) = out.remove(i);
            self.stack.push(file);
            let nested = self.extends(&k, &inner, &callee);
            self.stack.pop();
            if let Some(nested) = nested {
                self.merge(&mut out, nested);
            }
            out
        } else {
            out
        };
        Some(result)
    }

    /// Adds a template's top-level entries to the pipeline's; `variables` lists join.
    fn merge(&mut self, out: &mut Vec<(Node, Node)>, body: Vec<(Node, Node)>) {
        for (k, v) in body {
            let key = k.as_str().unwrap_or_default().to_owned();
            match out.iter_mut().find(|(o, _)| o.as_str() == Some(&key)) {
                None => out.push((k, v)),
                Some((_, existing)) if key == "variables" => {
                    let mut items = as_variable_list(existing);
                    items.extend(as_variable_list(&v));
                    *existing = Node {
                        pos: existing.pos,
                        value: Value::Seq(items),
                    };
                }
                Some(_) => self.p.error(
                    k.pos,
                    format!("'{key}' is given both by the pipeline and by the template it extends"),
                ),
            }
        }
    }

    /// Reads a template reference (`template:` and `parameters:`), binds its parameters and
    /// expands its body. `kind`: what the reference stands in (`None` for `extends`).
    fn template_body(&mut self, reference: &Node, ctx: &Ctx, kind: Option<Kind>) -> Option<Body> {
        let entries = reference.as_map()?;
        for (k, _) in entries {
            let key = k.as_str().unwrap_or_default();
            if key != "template" && key != "parameters" {
                self.p.error(
                    k.pos,
                    format!(
                        "a template reference has only 'template' and 'parameters', not '{key}'"
                    ),
                );
            }
        }
        let t = reference.get("template")?;
        let Some(path_text) = t.as_str().filter(|s| !s.trim().is_empty()) else {
            self.p
                .error(t.pos, "'template' must be the path of a YAML file");
            return None;
        };
        let (file, body) = self.load(path_text.trim(), t.pos)?;
        if let Some(i) = self.stack.iter().position(|f| *f == file) {
            let mut chain: Vec<String> = self.stack[i..].iter().map(|f| self.shown(f)).collect();
            chain.push(self.shown(file));
            self.p.error(
                t.pos,
                format!(
                    "template '{path_text}' includes itself: {}",
                    chain.join(" -> ")
                ),
            );
            return None;
        }
        if self.stack.len() >= MAX_DEPTH {
            self.p.error(
                t.pos,
                format!(
                    "template '{path_text}' is nested more than {MAX_DEPTH} levels deep (the server's limit)"
                ),
            );
            return None;
        }
        let Some(entries) = body.as_map() else {
            self.p.error(
                body.pos,
                "a template must be a mapping ('parameters:' and its content)",
            );
            return None;
        };
        if let Some(kind) = kind {
            for (k, _) in entries {
                let key = k.as_str().unwrap_or_default();
                if key != "parameters" && key != kind.key() && directive(key).is_none() {
                    self.p.error(
                        k.pos,
                        format!(
                            "'{key}' is not allowed in a template used in '{}': a {} template holds 'parameters' and '{}' only",
                            kind.key(),
                            &kind.key()[..kind.key().len() - 1],
                            kind.key()
                        ),
                    );
                }
            }
        }
        if kind.is_none() {
            // An extends template may declare the repositories its own templates come from.
            self.resources(&body);
        }
        let decls = params::declarations(body.get("parameters"), &mut self.p);
        let what = format!("template '{path_text}'");
        let bound = params::bind(
            &decls,
            reference.get("parameters"),
            t.pos,
            &what,
            &mut self.p,
        );
        // A template sees its own parameters only, and the pipeline's variables.
        let callee = Ctx {
            params: Rc::new(bound),
            locals: Rc::new(Vec::new()),
            vars: ctx.vars.clone(),
        };
        let content: Vec<(Node, Node)> = entries
            .iter()
            .filter(|(k, _)| k.as_str() != Some("parameters"))
            .cloned()
            .collect();
        self.stack.push(file);
        let mut chain = None;
        let (out, _) = self.map(&content, &callee, Kind::Other, &mut chain, false);
        self.stack.pop();
        Some((out, callee, file))
    }

    /// A `- template:` item of a `steps`, `jobs`, `stages` or `variables` list: the items
    /// its file gives.
    fn include(&mut self, reference: &Node, ctx: &Ctx, kind: Kind) -> Vec<Node> {
        let Some((out, _, _)) = self.template_body(reference, ctx, Some(kind)) else {
            return Vec::new();
        };
        let t = reference.get("template").map_or(reference.pos, |t| t.pos);
        let name = reference
            .get("template")
            .and_then(Node::as_str)
            .unwrap_or_default();
        match out.iter().find(|(k, _)| k.as_str() == Some(kind.key())) {
            None => {
                self.p.error(
                    t,
                    format!(
                        "template '{name}' has no '{}:', so it cannot be used in '{}'",
                        kind.key(),
                        kind.key()
                    ),
                );
                Vec::new()
            }
            Some((_, list)) => match &list.value {
                Value::Seq(items) => items.clone(),
                Value::Map(_) if kind == Kind::Variables => as_variable_list(list),
                _ if list.is_null() => Vec::new(),
                _ => {
                    self.p.error(
                        list.pos,
                        format!("'{}' must be a list, not {}", kind.key(), list.kind()),
                    );
                    Vec::new()
                }
            },
        }
    }

    /// Finds and reads a template file (once), with the server's limits.
    fn load(&mut self, text: &str, pos: Pos) -> Option<(&'static Path, Rc<Node>)> {
        let (path, alias) = match text.rsplit_once('@') {
            Some((p, a)) if !a.is_empty() && !a.contains(['/', '\\']) => (p, Some(a)),
            _ => (text, None),
        };
        let from = pos.file;
        let repo = from
            .and_then(|f| self.repo_of.get(f).cloned())
            .unwrap_or_else(|| self.self_repo.clone());
        let (repo, full) = match alias {
            None => {
                let full = match (path.strip_prefix('/'), from.and_then(Path::parent)) {
                    (Some(rooted), _) => repo.root.join(rooted),
                    (None, Some(dir)) => dir.join(path),
                    (None, None) => repo.root.join(path),
                };
                (repo, full)
            }
            Some(a) if a.eq_ignore_ascii_case("self") => (
                self.self_repo.clone(),
                self.self_repo.root.join(path.trim_start_matches('/')),
            ),
            Some(a) => {
                let declared = self
                    .declared
                    .iter()
                    .find(|(alias, _, _)| alias.eq_ignore_ascii_case(a))
                    .cloned();
                let Some((_, name, _)) = declared else {
                    self.p.error(
                        pos,
                        format!("template '{text}': no repository '{a}' is declared under resources.repositories"),
                    );
                    return None;
                };
                let Some((_, dir)) = self
                    .options
                    .repos
                    .iter()
                    .find(|(alias, _)| alias.eq_ignore_ascii_case(a))
                else {
                    if !self.missing_repos.iter().any(|m| m.eq_ignore_ascii_case(a)) {
                        self.missing_repos.push(a.to_owned());
                    }
                    self.p.error(
                        pos,
                        format!("template '{text}' is in repository '{a}' ({name}), which azp-local does not fetch: pass a local checkout with --repo {a}=PATH"),
                    );
                    return None;
                };
                let root = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
                (
                    Repo {
                        alias: Some(a.to_owned()),
                        root: root.clone(),
                    },
                    root.join(path.trim_start_matches('/')),
                )
            }
        };
        let key = yaml::intern(&normalize(&full));
        if let Some(cached) = self.cache.get(key) {
            return cached.clone().map(|n| (key, n));
        }
        if self.files.len() >= MAX_FILES {
            self.p.error(
                pos,
                format!("template '{text}': a pipeline may use at most {MAX_FILES} template files (the server's limit)"),
            );
            return None;
        }
        self.files.push(key);
        let node = match std::fs::read_to_string(key) {
            Err(e) => {
                let where_ = match &repo.alias {
                    Some(a) => format!(" in repository '{a}' ({})", repo.root.display()),
                    None => String::new(),
                };
                let why = if e.kind() == std::io::ErrorKind::NotFound {
                    "there is no such file".to_owned()
                } else {
                    format!("it cannot be read: {e}")
                };
                let shown = key
                    .strip_prefix(&repo.root)
                    .unwrap_or(key)
                    .display()
                    .to_string();
                self.p.error(
                    pos,
                    format!("template '{text}' not found{where_}: {why} ({shown})"),
                );
                None
            }
            Ok(content) => match yaml::parse_file(&content, Some(key)) {
                Ok(n) => Some(Rc::new(n)),
                Err(e) => {
                    self.p.error(e.pos, format!("YAML syntax: {}", e.message));
                    None
                }
            },
        };
        self.repo_of.insert(key, repo);
        self.cache.insert(key, node.clone());
        node.map(|n| (key, n))
    }

    /// `resources:` azp-local cannot fetch are warnings naming what to pass instead.
    fn resources(&mut self, root: &Node) {
        let Some(resources) = root.get("resources") else {
            return;
        };
        if let Some(repos) = resources.get("repositories").and_then(Node::as_seq) {
            for r in repos {
                let Some(alias) = r.get("repository").and_then(Node::as_str) else {
                    continue;
                };
                if alias.eq_ignore_ascii_case("self")
                    || self
                        .declared
                        .iter()
                        .any(|(a, _, _)| a.eq_ignore_ascii_case(alias))
                {
                    continue;
                }
                let name = r
                    .get("name")
                    .and_then(Node::as_str)
                    .unwrap_or(alias)
                    .to_owned();
                self.declared.push((alias.to_owned(), name, r.pos));
            }
        }
        for kind in ["pipelines", "builds", "containers", "packages", "webhooks"] {
            for item in resources
                .get(kind)
                .and_then(Node::as_seq)
                .unwrap_or_default()
            {
                let name = item
                    .as_map()
                    .and_then(|m| m.first())
                    .and_then(|(_, v)| v.as_str())
                    .unwrap_or("?");
                self.p.warn(
                    item.pos,
                    format!("resources.{kind} '{name}' is not fetched by azp-local: what a run would take from it is empty (pass values it would give with --var NAME=VALUE)"),
                );
            }
        }
    }

    /// Declared repositories no template needed and no `--repo` gives: `checkout` of them
    /// cannot fetch anything.
    fn unused_repositories(&mut self) {
        for (alias, _) in self.options.repos {
            if !self
                .declared
                .iter()
                .any(|(a, _, _)| a.eq_ignore_ascii_case(alias))
            {
                self.p.warn(
                    Pos::default(),
                    format!("--repo {alias}: the pipeline declares no repository '{alias}' under resources.repositories"),
                );
            }
        }
        for (alias, name, pos) in self.declared.clone() {
            let given = self
                .options
                .repos
                .iter()
                .any(|(a, _)| a.eq_ignore_ascii_case(&alias));
            let reported = self
                .missing_repos
                .iter()
                .any(|m| m.eq_ignore_ascii_case(&alias));
            if !given && !reported {
                self.p.warn(
                    pos,
                    format!("repository '{alias}' ({name}) is not available locally: a 'checkout: {alias}' step fetches nothing (pass a local checkout with --repo {alias}=PATH)"),
                );
            }
        }
    }

    /// A file as messages show it: from its repository's root.
    fn shown(&self, file: &Path) -> String {
        let root = self
            .repo_of
            .get(file)
            .map_or(&self.self_repo.root, |r| &r.root);
        file.strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string()
    }

    fn scope<'s>(&'s self, ctx: &'s Ctx) -> CtxScope<'s> {
        CtxScope {
            ctx,
            base: self.options.variables,
        }
    }

    /// A scalar with its expressions evaluated: a whole `${{ }}` gives its value (a
    /// mapping or sequence too), anything else text.
    fn scalar(&mut self, node: &Node, ctx: &Ctx) -> Option<Node> {
        let text = node.as_str()?;
        if !text.contains("${{") {
            return Some(node.clone());
        }
        let names = ctx.local_names();
        if let Some(inner) = whole_expression(text) {
            let result =
                Expression::parse_template(inner, &names).and_then(|e| e.eval(&self.scope(ctx)));
            return match result {
                Ok(v) => Some(to_node(v, node.pos)),
                Err(e) => {
                    self.p
                        .error(node.pos, format!("{e} (in '${{{{ {inner} }}}}')"));
                    // Kept as written, so that nothing else fails because of it.
                    Some(node.clone())
                }
            };
        }
        match expr::substitute_template(text, &self.scope(ctx), &names) {
            Ok(s) => Some(Node::scalar(&s, true, node.pos)),
            Err(e) => {
                self.p.error(node.pos, e);
                Some(node.clone())
            }
        }
    }

    /// A value (not an item of a sequence), expanded.
    fn value(&mut self, node: &Node, ctx: &Ctx, kind: Kind) -> Option<Node> {
        match &node.value {
            Value::Scalar { text, .. } => {
                let has_expression = text.contains("${{");
                let v = self.scalar(node, ctx)?;
                if has_expression && !matches!(v.value, Value::Scalar { .. }) {
                    // A mapping or sequence from an expression (a caller's steps…): its
                    // expressions were evaluated where it was written; its template
                    // references are read here.
                    return self.value(&v, ctx, kind);
                }
                Some(v)
            }
            Value::Seq(items) => Some(Node {
                pos: node.pos,
                value: Value::Seq(self.seq(items, ctx, kind)),
            }),
            Value::Map(entries) => {
                let mut chain = None;
                let (entries, spliced) = self.map(entries, ctx, kind, &mut chain, false);
                if let Some(s) = spliced.first() {
                    self.p
                        .error(s.pos, "a sequence cannot be inserted into a mapping");
                }
                Some(Node {
                    pos: node.pos,
                    value: Value::Map(entries),
                })
            }
        }
    }

    /// The items of a sequence, with directives' items inserted and template references
    /// replaced by their items.
    fn seq(&mut self, items: &[Node], ctx: &Ctx, kind: Kind) -> Vec<Node> {
        let mut out = Vec::new();
        let mut chain = None;
        let mut own = ctx.clone();
        for item in items {
            // A variable of a list is known to the expressions of the items after it.
            if kind == Kind::Variables {
                own = ctx.with_vars(defined_variables(&Node {
                    pos: item.pos,
                    value: Value::Seq(out.clone()),
                }));
            }
            let ctx = &own;
            let directive_item = item
                .as_map()
                .and_then(|m| m.first())
                .and_then(|(k, _)| k.as_str())
                .is_some_and(|k| directive(k).is_some());
            if directive_item {
                let entries = item.as_map().unwrap_or_default();
                let (entries, spliced) = self.map(entries, ctx, kind, &mut chain, true);
                if !entries.is_empty() {
                    let node = Node {
                        pos: item.pos,
                        value: Value::Map(entries),
                    };
                    self.push_item(node, ctx, kind, &mut out);
                }
                out.extend(spliced);
            } else {
                chain = None;
                let from_expression = item.as_str().is_some_and(|t| whole_expression(t).is_some());
                match self.value(item, ctx, kind) {
                    // `- ${{ parameters.steps }}`: a sequence's items join this one.
                    Some(Node {
                        value: Value::Seq(items),
                        ..
                    }) if from_expression => out.extend(items),
                    Some(node) => self.push_item(node, ctx, kind, &mut out),
                    None => {}
                }
            }
        }
        out
    }

    fn push_item(&mut self, node: Node, ctx: &Ctx, kind: Kind, out: &mut Vec<Node>) {
        if kind != Kind::Other && node.get("template").is_some() {
            out.extend(self.include(&node, ctx, kind));
        } else {
            out.push(node);
        }
    }

    /// The entries of a mapping, expanded; `splice`: the mapping is an item of a sequence,
    /// whose directives may give items of that sequence (returned second). `chain` carries
    /// an `if`/`elseif`/`else` chain: `Some(taken)` after an `if`.
    fn map(
        &mut self,
        entries: &[(Node, Node)],
        ctx: &Ctx,
        kind: Kind,
        chain: &mut Option<bool>,
        splice: bool,
    ) -> (Vec<(Node, Node)>, Vec<Node>) {
        let mut out = Vec::new();
        let mut spliced = Vec::new();
        // A pipeline's, stage's or job's variables are known to the expressions after them.
        let mut ctx = ctx.clone();
        let scope_map = entries
            .iter()
            .any(|(k, _)| k.as_str().is_some_and(|k| SCOPE_KEYS.contains(&k)));
        let var_index = scope_map
            .then(|| {
                entries
                    .iter()
                    .position(|(k, _)| k.as_str() == Some("variables"))
            })
            .flatten();
        let mut variables = None;
        if let Some(i) = var_index {
            variables = self.value(&entries[i].1, &ctx, Kind::Variables);
            if let Some(v) = &variables {
                ctx = ctx.with_vars(defined_variables(v));
            }
        }
        for (i, (k, v)) in entries.iter().enumerate() {
            if Some(i) == var_index {
                if let Some(v) = variables.take() {
                    out.push((k.clone(), v));
                }
                continue;
            }
            let key = k.as_str().unwrap_or_default();
            match directive(key) {
                Some(Err(message)) => self.p.error(k.pos, message),
                Some(Ok(d)) => {
                    self.directive(d, k, v, &ctx, kind, chain, splice, &mut out, &mut spliced)
                }
                None => {
                    *chain = None;
                    let Some(key_node) = self.scalar(k, &ctx) else {
                        continue;
                    };
                    let Some(key_text) = key_node.as_str() else {
                        self.p.error(
                            k.pos,
                            format!("a key must be text, but '{key}' gives {}", key_node.kind()),
                        );
                        continue;
                    };
                    let child = Kind::of_key(key_text);
                    if let Some(value) = self.value(v, &ctx, child) {
                        out.push((key_node, value));
                    }
                }
            }
        }
        (out, spliced)
    }

    #[allow(clippy::too_many_arguments)]
    fn directive(
        &mut self,
        d: Directive,
        k: &Node,
        v: &Node,
        ctx: &Ctx,
        kind: Kind,
        chain: &mut Option<bool>,
        splice: bool,
        out: &mut Vec<(Node, Node)>,
        spliced: &mut Vec<Node>,
    ) {
        match d {
            Directive::If(c) => {
                let taken = self.condition(&c, k.pos, ctx);
                // A condition that cannot be evaluated takes no branch of its chain.
                *chain = Some(taken != Some(false));
                if taken == Some(true) {
                    self.insert(v, ctx, kind, splice, out, spliced);
                }
            }
            Directive::ElseIf(c) => match *chain {
                None => self.p.error(
                    k.pos,
                    "'${{ elseif }}' must follow '${{ if }}' or '${{ elseif }}'",
                ),
                Some(true) => {}
                Some(false) => {
                    let taken = self.condition(&c, k.pos, ctx);
                    *chain = Some(taken != Some(false));
                    if taken == Some(true) {
                        self.insert(v, ctx, kind, splice, out, spliced);
                    }
                }
            },
            Directive::Else => {
                match *chain {
                    None => self.p.error(
                        k.pos,
                        "'${{ else }}' must follow '${{ if }}' or '${{ elseif }}'",
                    ),
                    Some(true) => {}
                    Some(false) => self.insert(v, ctx, kind, splice, out, spliced),
                }
                *chain = None;
            }
            Directive::Each(name, e) => {
                *chain = None;
                let collection = Expression::parse_template(&e, &ctx.local_names())
                    .and_then(|x| x.eval(&self.scope(ctx)));
                let items = match collection {
                    Err(message) => {
                        self.p.error(
                            k.pos,
                            format!("{message} (in '${{{{ each {name} in {e} }}}}')"),
                        );
                        return;
                    }
                    Ok(c) => match c.plain().into_owned() {
                        Val::Array(items) => items,
                        // A parameter that is not there: nothing to repeat, as on the server.
                        Val::Null => Vec::new(),
                        Val::Object(entries) => entries
                            .into_iter()
                            .map(|(key, value)| {
                                Val::Object(vec![
                                    ("key".into(), Val::Str(key)),
                                    ("value".into(), value),
                                ])
                            })
                            .collect(),
                        other => {
                            self.p.error(
                                k.pos,
                                format!(
                                    "'${{{{ each {name} in {e} }}}}' needs a sequence or a mapping, but '{e}' is {}",
                                    other.kind()
                                ),
                            );
                            return;
                        }
                    },
                };
                for item in items {
                    let inner = ctx.with_local(&name, item);
                    self.insert(v, &inner, kind, splice, out, spliced);
                }
            }
            Directive::Insert => {
                *chain = None;
                self.insert(v, ctx, kind, splice, out, spliced);
            }
        }
    }

    /// Evaluates an `if`/`elseif` condition; `None` when it cannot be (reported).
    fn condition(&mut self, text: &str, pos: Pos, ctx: &Ctx) -> Option<bool> {
        match Expression::parse_template(text, &ctx.local_names())
            .and_then(|e| e.eval(&self.scope(ctx)))
        {
            Ok(v) => Some(v.truthy()),
            Err(e) => {
                self.p
                    .error(pos, format!("{e} (in '${{{{ if {text} }}}}')"));
                None
            }
        }
    }

    /// Inserts a directive's value: a mapping's entries into the mapping, a sequence's
    /// items into the sequence around (`splice`).
    fn insert(
        &mut self,
        v: &Node,
        ctx: &Ctx,
        kind: Kind,
        splice: bool,
        out: &mut Vec<(Node, Node)>,
        spliced: &mut Vec<Node>,
    ) {
        match &v.value {
            Value::Map(entries) => {
                let mut chain = None;
                let (e, s) = self.map(entries, ctx, kind, &mut chain, splice);
                out.extend(e);
                spliced.extend(s);
            }
            Value::Seq(items) if splice => spliced.extend(self.seq(items, ctx, kind)),
            Value::Seq(_) => self
                .p
                .error(v.pos, "a sequence cannot be inserted into a mapping"),
            Value::Scalar { .. } if v.is_null() => {}
            Value::Scalar { .. } => {
                let Some(n) = self.value(v, ctx, kind) else {
                    return;
                };
                match n.value {
                    Value::Map(entries) => out.extend(entries),
                    Value::Seq(items) if splice => spliced.extend(items),
                    _ if n.is_null() => {}
                    _ if splice => self.push_item(n, ctx, kind, spliced),
                    _ => self.p.error(
                        v.pos,
                        format!("a mapping is expected here, not {}", n.kind()),
                    ),
                }
            }
        }
    }
}

/// `variables:` as a list of `name`/`value` items (a mapping becomes one).
fn as_variable_list(node: &Node) -> Vec<Node> {
    match &node.value {
        Value::Seq(items) => items.clone(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| Node {
                pos: k.pos,
                value: Value::Map(vec![
                    (Node::scalar("name", true, k.pos), k.clone()),
                    (Node::scalar("value", true, v.pos), v.clone()),
                ]),
            })
            .collect(),
        Value::Scalar { .. } => Vec::new(),
    }
}
