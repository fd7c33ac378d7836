//! Evaluating one rule against a request.

use std::cmp::Ordering;
use std::sync::{Arc, LazyLock};

use serde_json::Value;
use warden_charter::{
    ArgConstraint, CompiledCharter, Condition, HostPattern, LabelMatch, Matcher, Principal,
    PrincipalMatch, Rule, SqlKind,
};
use warden_core::path::canonicalize;

use crate::Request;
use crate::provenance;
use crate::request::lookup;
use crate::sql::is_read_only;

/// Whether a rule matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RuleMatch {
    Match,
    NoMatch,
    /// Evaluation failed; what to make of it depends on the rule's tier.
    Error(String),
}

/// Evaluates the rule's conditions (its tool already matched through the index).
///
/// Cheap conditions run first. Array-valued arguments are quantified by the rule's tier: a
/// permissive rule needs every element to satisfy its constraint (an empty list does), a
/// restrictive rule matches when any element does (an empty list does not) — so a list can
/// never smuggle one forbidden item past either. An absent or `null` argument satisfies only
/// an `optional` constraint.
pub(crate) fn eval_rule(
    charter: &CompiledCharter,
    rule: &Rule,
    req: &Request<'_>,
    principal: Option<&Principal>,
) -> RuleMatch {
    if let Some(p) = &rule.principal
        && !principal_matches(p, principal)
    {
        return RuleMatch::NoMatch;
    }
    if let Some(l) = &rule.labels
        && !labels_match(l, req.labels)
    {
        return RuleMatch::NoMatch;
    }
    let restrictive = rule.tier.is_restrictive();
    for constraint in &rule.args {
        match eval_constraint(constraint, req, restrictive) {
            RuleMatch::Match => {}
            other => return other,
        }
    }
    if let Some(cond) = &rule.when {
        return match eval_condition(charter, cond, req, principal) {
            Ok(true) => RuleMatch::Match,
            Ok(false) => RuleMatch::NoMatch,
            Err(e) => RuleMatch::Error(format!("`when`: {e}")),
        };
    }
    RuleMatch::Match
}

/// Whether a rule's principal constraint holds for `principal` (no principal: never).
pub fn principal_matches(m: &PrincipalMatch, principal: Option<&Principal>) -> bool {
    let Some(p) = principal else {
        return false;
    };
    let roles_ok = m
        .roles
        .as_ref()
        .is_none_or(|roles| p.roles.iter().any(|r| roles.contains(r)));
    let ids_ok = m.ids.as_ref().is_none_or(|ids| ids.contains(&p.id));
    roles_ok && ids_ok
}

fn labels_match(m: &LabelMatch, labels: &[Arc<str>]) -> bool {
    let has = |l: &Arc<str>| labels.iter().any(|x| x == l);
    m.any.as_ref().is_none_or(|a| a.iter().any(has))
        && m.all.as_ref().is_none_or(|a| a.iter().all(has))
        && m.none.as_ref().is_none_or(|a| !a.iter().any(has))
}

/// One argument constraint. `null` counts as absent; an absent argument satisfies the
/// constraint only when it is `optional`, else the rule does not match. A list is quantified
/// by the tier: a permissive rule needs every element to hold (an empty list holds), a
/// restrictive rule some element (an empty list does not).
fn eval_constraint(c: &ArgConstraint, req: &Request<'_>, restrictive: bool) -> RuleMatch {
    let value = match lookup(req.args, &c.path) {
        None | Some(Value::Null) => {
            return if c.optional {
                RuleMatch::Match
            } else {
                RuleMatch::NoMatch
            };
        }
        Some(v) => v,
    };
    let name = &c.argument;
    let check = |v: &Value| -> Result<bool, String> {
        if !eval_matcher(&c.matcher, v)? {
            return Ok(false);
        }
        if provenance::uses_provenance(&c.matcher) {
            return provenance::holds(&c.matcher, v, req.provenance);
        }
        Ok(true)
    };
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return if restrictive {
                    RuleMatch::NoMatch
                } else {
                    RuleMatch::Match
                };
            }
            let mut error = None;
            let mut matched = 0usize;
            for item in items {
                match check(item) {
                    Ok(true) => matched += 1,
                    Ok(false) => {}
                    Err(e) => error = error.or(Some(e)),
                }
            }
            if restrictive {
                if matched > 0 {
                    RuleMatch::Match
                } else if let Some(e) = error {
                    RuleMatch::Error(format!("argument `{name}`: {e}"))
                } else {
                    RuleMatch::NoMatch
                }
            } else if let Some(e) = error {
                RuleMatch::Error(format!("argument `{name}`: {e}"))
            } else if matched == items.len() {
                RuleMatch::Match
            } else {
                RuleMatch::NoMatch
            }
        }
        scalar => match check(scalar) {
            Ok(true) => RuleMatch::Match,
            Ok(false) => RuleMatch::NoMatch,
            Err(e) => RuleMatch::Error(format!("argument `{name}`: {e}")),
        },
    }
}

fn as_str<'v>(v: &'v Value, what: &str) -> Result<&'v str, String> {
    v.as_str()
        .ok_or_else(|| format!("expected a string for {what}, got {}", kind(v)))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Evaluates every constraint of a matcher against one value.
///
/// With `glob`, the value is a path: the later keys (`regex`, `prefix`, `suffix`, `not`) see
/// its canonical form, so `/ws/../etc` is `/etc` to each of them, as it is to the glob.
pub(crate) fn eval_matcher(m: &Matcher, v: &Value) -> Result<bool, String> {
    let canonical;
    let v = match &m.globs {
        Some(globs) => {
            let path = canonicalize(as_str(v, "a path glob")?).map_err(|e| e.to_string())?;
            if !glob_matches(globs, &path)? {
                return Ok(false);
            }
            canonical = Value::String(path);
            &canonical
        }
        None => v,
    };
    if m.schemes.is_some() || m.hosts.is_some() {
        let text = as_str(v, "a URL")?;
        let url = url::Url::parse(text).map_err(|e| format!("invalid URL: {e}"))?;
        if let Some(schemes) = &m.schemes
            && !schemes.iter().any(|s| s == url.scheme())
        {
            return Ok(false);
        }
        if let Some(hosts) = &m.hosts {
            let host = url
                .host_str()
                .ok_or_else(|| "URL has no host".to_owned())?
                .to_ascii_lowercase();
            let host = host.trim_end_matches('.');
            if !hosts.iter().any(|p| host_matches(p, host)) {
                return Ok(false);
            }
        }
    }
    if let Some(values) = &m.one_of
        && !values.iter().any(|x| scalar_eq(x, v))
    {
        return Ok(false);
    }
    if m.min.is_some() || m.max.is_some() {
        let n = number(v)?;
        if let Some(min) = &m.min
            && compare(&n, min) == Some(Ordering::Less)
        {
            return Ok(false);
        }
        if let Some(max) = &m.max
            && compare(&n, max) == Some(Ordering::Greater)
        {
            return Ok(false);
        }
    }
    if let Some(re) = &m.regex
        && !re.is_match(as_str(v, "a regex")?)
    {
        return Ok(false);
    }
    if let Some(prefix) = &m.prefix
        && !as_str(v, "a prefix")?.starts_with(prefix.as_str())
    {
        return Ok(false);
    }
    if let Some(suffix) = &m.suffix
        && !as_str(v, "a suffix")?.ends_with(suffix.as_str())
    {
        return Ok(false);
    }
    if let Some(kind) = m.sql {
        let read_only = is_read_only(as_str(v, "SQL")?)?;
        let ok = match kind {
            SqlKind::ReadOnly => read_only,
            SqlKind::Writing => !read_only,
        };
        if !ok {
            return Ok(false);
        }
    }
    if let Some(inner) = &m.not
        && eval_matcher(inner, v)?
    {
        return Ok(false);
    }
    Ok(true)
}

/// Whether a canonical path matches any of `globs`; an error when it matches none and some
/// glob cannot place it (see [`placeable`]), so a path written relative to somewhere else
/// never walks around a rule by not matching it.
fn glob_matches(globs: &[globset::GlobMatcher], path: &str) -> Result<bool, String> {
    let mut unplaceable = None;
    for g in globs {
        let pattern = g.glob().glob();
        if !placeable(path, pattern) {
            unplaceable = unplaceable.or(Some(pattern));
        } else if g.is_match(path) {
            return Ok(true);
        }
    }
    match unplaceable {
        Some(pattern) => Err(format!(
            "path `{path}` cannot be placed under the glob `{pattern}`: {}",
            if path.starts_with('~') {
                "`~` is expanded by the server, to a home directory warden does not know"
            } else if path.starts_with('/') {
                "the path is absolute and the glob is relative"
            } else {
                "the path is relative, so where it points depends on the server; write an absolute path"
            }
        )),
        None => Ok(false),
    }
}

/// Whether a canonical path and a glob are anchored alike, so that not matching means being
/// outside. A path starting with `~` is placed nowhere (servers expand it to a home directory
/// of their own); an absolute glob places only absolute paths and a relative one (`data/**`,
/// `notes.md`) only relative ones. A glob starting with `*` (`**/.env`, `*.md`) has no root
/// and places every other path.
fn placeable(path: &str, glob: &str) -> bool {
    if path.starts_with('~') {
        return false;
    }
    glob.starts_with('*') || path.starts_with('/') == glob.starts_with('/')
}

fn host_matches(p: &HostPattern, host: &str) -> bool {
    match p {
        HostPattern::Exact(h) => h == host,
        HostPattern::Subdomains(d) => host
            .strip_suffix(d.as_str())
            .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
    }
}

/// Equality for `one_of`: numbers compare by value (`1 == 1.0`), everything else exactly.
fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare(x, y) == Some(Ordering::Equal),
        _ => a == b,
    }
}

/// A number from a JSON number or a numeric string.
fn number(v: &Value) -> Result<serde_json::Number, String> {
    match v {
        Value::Number(n) => Ok(n.clone()),
        Value::String(s) => {
            let t = s.trim();
            let looks_numeric = !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'));
            if looks_numeric {
                if let Ok(i) = t.parse::<i64>() {
                    return Ok(i.into());
                }
                if let Some(n) = t.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                    return Ok(n);
                }
            }
            Err(format!("expected a number, got the string `{s}`"))
        }
        other => Err(format!("expected a number, got {}", kind(other))),
    }
}

/// Numeric comparison: exact for integers, by value for decimals.
fn compare(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    let int = |n: &serde_json::Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(a), int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

static CEL_ENV: LazyLock<Arc<cel::Env>> = LazyLock::new(|| Arc::new(cel::Env::stdlib()));

fn eval_condition(
    charter: &CompiledCharter,
    cond: &Condition,
    req: &Request<'_>,
    principal: Option<&Principal>,
) -> Result<bool, String> {
    let mut ctx = cel::Context::with_env(Arc::clone(&CEL_ENV));
    // Bind only what the expression reads: converting the arguments dominates the cost.
    for var in &cond.variables {
        let value = match var.as_str() {
            "args" => cel::to_value(req.args).map_err(|e| e.to_string())?,
            "tool" => cel::Value::from(req.tool.to_owned()),
            "principal" => {
                let p = serde_json::json!({
                    "id": principal.map(|p| p.id.as_ref()),
                    "roles": principal
                        .map(|p| p.roles.iter().map(|r| r.as_ref()).collect::<Vec<_>>())
                        .unwrap_or_default(),
                });
                cel::to_value(&p).map_err(|e| e.to_string())?
            }
            "labels" => {
                let labels: Vec<&str> = req.labels.iter().map(|l| l.as_ref()).collect();
                cel::to_value(&labels).map_err(|e| e.to_string())?
            }
            "environment" => {
                cel::Value::from(charter.context.environment.clone().unwrap_or_default())
            }
            "task" => cel::Value::from(req.provenance.trusted_text()),
            other => return Err(format!("unknown variable `{other}`")),
        };
        ctx.add_variable_from_value(var.as_str(), value);
    }
    match cond.program.execute(&ctx) {
        Ok(cel::Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("expected a boolean, got {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}
