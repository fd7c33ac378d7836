//! Compiling argument matchers, globs and regular expressions.

use std::sync::Arc;

use globset::{Glob, GlobBuilder, GlobMatcher};
use regex::{Regex, RegexBuilder};
use warden_core::SourceLocation;
use warden_core::path::{canonicalize, glob_root};

use crate::compiled::{HostPattern, Matcher, ProvenanceMatch, SqlKind};
use crate::diagnostic::{Diagnostic, Diagnostics, suggest};
use crate::raw::{RawMatcher, RawProvenanceMatch, RawSqlKind};

/// Largest compiled regular expression, in bytes.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Deepest nesting of groups in a regular expression.
const REGEX_NEST_LIMIT: u32 = 64;
/// Longest glob accepted, in bytes.
pub(crate) const MAX_GLOB_LEN: usize = 4096;
/// Deepest nesting of `{…}` alternatives in a glob.
pub(crate) const MAX_GLOB_NESTING: usize = 16;

/// Builds a glob within bounds: at most [`MAX_GLOB_LEN`] bytes and [`MAX_GLOB_NESTING`] levels
/// of `{…}`, and its regular expression must compile within [`REGEX_SIZE_LIMIT`]. `globset`
/// panics when a glob it parsed turns into a regular expression the regex engine refuses (too
/// deeply nested or too large), so the expression is compiled here first, with limits well
/// inside `globset`'s own, and a glob this returns always has a matcher. `path` selects path
/// semantics (`*` does not cross `/`, `\` escapes).
pub(crate) fn bounded_glob(pattern: &str, path: bool) -> Result<Glob, String> {
    if pattern.len() > MAX_GLOB_LEN {
        return Err(format!("it is longer than {MAX_GLOB_LEN} bytes"));
    }
    let depth = brace_depth(pattern);
    if depth > MAX_GLOB_NESTING {
        return Err(format!(
            "its `{{…}}` alternatives nest {depth} deep, more than the limit of {MAX_GLOB_NESTING}"
        ));
    }
    let glob = GlobBuilder::new(pattern)
        .literal_separator(path)
        .backslash_escape(path)
        .build()
        .map_err(|e| e.kind().to_string())?;
    regex::bytes::RegexBuilder::new(glob.regex())
        .size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(REGEX_NEST_LIMIT)
        .build()
        .map_err(|_| "it is too large or too deeply nested to compile".to_owned())?;
    Ok(glob)
}

/// The deepest nesting of `{` in a glob. Escapes and classes are not interpreted, so this
/// can only count more than `globset` nests, never less.
fn brace_depth(pattern: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for c in pattern.chars() {
        match c {
            '{' => {
                depth = depth.saturating_add(1);
                max = max.max(depth);
            }
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// A path glob: its literal root must already be canonical, and it is matched with `*` not
/// crossing `/`.
pub(crate) fn path_glob(
    pattern: &str,
    at: SourceLocation,
    diags: &mut Diagnostics,
) -> Option<GlobMatcher> {
    if pattern.split('/').any(|s| s == "." || s == "..") || pattern.contains("//") {
        diags.push(
            Diagnostic::error(at, format!("path glob `{pattern}` holds `.`, `..` or `//`"))
                .with_hint("paths are compared in canonical form; write the glob that way"),
        );
        return None;
    }
    if pattern.len() > 1 && pattern.ends_with('/') {
        diags.push(
            Diagnostic::error(
                at,
                format!("path glob `{pattern}` ends with `/`, and canonical paths never do"),
            )
            .with_hint(format!(
                "write `{}/**` for what is inside, or drop the `/`",
                pattern.trim_end_matches('/')
            )),
        );
        return None;
    }
    let root = glob_root(pattern);
    if !root.is_empty() && canonicalize(root).as_deref() != Ok(root) {
        diags.push(
            Diagnostic::error(
                at,
                format!("path glob `{pattern}` is not in canonical form"),
            )
            .with_hint("remove percent-encoding, backslashes and look-alike characters"),
        );
        return None;
    }
    match bounded_glob(pattern, true) {
        Ok(g) => Some(g.compile_matcher()),
        Err(e) => {
            diags.push(Diagnostic::error(
                at,
                format!("invalid path glob `{}`: {e}", shorten(pattern)),
            ));
            None
        }
    }
}

/// A regular expression, anchored to the whole value when `anchored`.
pub(crate) fn regex(
    pattern: &str,
    anchored: bool,
    at: SourceLocation,
    diags: &mut Diagnostics,
) -> Option<Regex> {
    let source = if anchored {
        format!("^(?:{pattern})$")
    } else {
        pattern.to_owned()
    };
    match RegexBuilder::new(&source)
        .size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(REGEX_NEST_LIMIT)
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            let detail = e.to_string();
            let last = detail.lines().last().unwrap_or(&detail).trim();
            let last = last.strip_prefix("error: ").unwrap_or(last).to_owned();
            diags.push(
                Diagnostic::error(at, format!("invalid regex `{}`: {last}", shorten(pattern)))
                    .with_hint("the syntax is that of the Rust `regex` crate (no look-around, no backreferences)"),
            );
            None
        }
    }
}

/// A pattern for a message: whole when short, else its first 64 characters and `…`.
pub(crate) fn shorten(pattern: &str) -> String {
    const SHOWN: usize = 64;
    match pattern.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", pattern.get(..end).unwrap_or(pattern)),
        None => pattern.to_owned(),
    }
}

/// The labels a provenance matcher may name.
pub(crate) struct LabelScope<'a> {
    /// Every declared label.
    pub declared: &'a [Arc<str>],
    /// The declared labels marked `untrusted: true`.
    pub untrusted: &'a [Arc<str>],
    /// Whether `data.labels` was read whole (else unknown labels are not reported).
    pub complete: bool,
}

/// Compiles one argument's matcher. `at` gives the location of a key of the matcher.
/// `optional` is read by the caller; here it is only refused where it means nothing.
pub(crate) fn compile(
    raw: &RawMatcher,
    argument: &str,
    at: &dyn Fn(&[&str]) -> SourceLocation,
    labels: &LabelScope<'_>,
    diags: &mut Diagnostics,
) -> Matcher {
    compile_level(raw, argument, at, labels, true, diags)
}

fn compile_level(
    raw: &RawMatcher,
    argument: &str,
    at: &dyn Fn(&[&str]) -> SourceLocation,
    labels: &LabelScope<'_>,
    top: bool,
    diags: &mut Diagnostics,
) -> Matcher {
    let mut m = Matcher::default();
    // `optional` is not a value constraint: a matcher of `optional` alone is empty.
    let empty = raw.glob.is_none()
        && raw.scheme.is_none()
        && raw.host.is_none()
        && raw.one_of.is_none()
        && raw.min.is_none()
        && raw.max.is_none()
        && raw.regex.is_none()
        && raw.prefix.is_none()
        && raw.suffix.is_none()
        && raw.sql.is_none()
        && raw.in_task.is_none()
        && raw.provenance.is_none()
        && raw.not.is_none();
    if empty {
        let hint = if raw.optional.is_some() {
            "`optional` only says what an absent argument does; add a value constraint (`glob`, `one_of`, `in_task`, `provenance`, …) or drop the argument"
        } else {
            "use one of `glob`, `scheme`, `host`, `one_of`, `min`, `max`, `regex`, `prefix`, `suffix`, `sql`, `in_task`, `provenance`, `not`"
        };
        diags.push(
            Diagnostic::error(
                at(&[]),
                format!("the constraint on argument `{argument}` is empty"),
            )
            .with_hint(hint),
        );
    }
    if !top {
        for (key, set) in [
            ("optional", raw.optional.is_some()),
            ("in_task", raw.in_task.is_some()),
            ("provenance", raw.provenance.is_some()),
        ] {
            if set {
                diags.push(
                    Diagnostic::error(at(&[key]), format!("`{key}` is not allowed inside `not`"))
                        .with_hint(match key {
                            "optional" => {
                                "write `optional` next to the argument's other constraints"
                            }
                            "in_task" => "write `in_task: false` outside `not`",
                            _ => "write `provenance: { not_from: [...] }` outside `not`",
                        }),
                );
            }
        }
    }
    m.in_task = raw.in_task;
    if let Some(p) = &raw.provenance {
        m.provenance = Some(provenance(p, at, labels, diags));
    }
    if let Some(globs) = &raw.glob {
        m.globs = Some(
            globs
                .clone()
                .into_vec()
                .iter()
                .filter_map(|g| path_glob(g, at(&["glob"]), diags))
                .collect(),
        );
    }
    if let Some(schemes) = &raw.scheme {
        let mut out = Vec::new();
        for s in schemes {
            let lower = s.to_ascii_lowercase();
            let valid = lower.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && lower
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            if valid {
                out.push(lower);
            } else {
                diags.push(Diagnostic::error(
                    at(&["scheme"]),
                    format!("invalid URL scheme `{s}`"),
                ));
            }
        }
        m.schemes = Some(out);
    }
    if let Some(hosts) = &raw.host {
        let mut out = Vec::new();
        for h in hosts {
            let lower = h.to_ascii_lowercase();
            let lower = lower.trim_end_matches('.');
            let (pattern, domain) = match lower.strip_prefix("*.") {
                Some(d) => (HostPattern::Subdomains(d.to_owned()), d),
                None => (HostPattern::Exact(lower.to_owned()), lower),
            };
            // A bracketed IPv6 literal holds colons; anything else with one names a port,
            // which hosts are compared without.
            let ipv6 = domain.starts_with('[') && domain.ends_with(']');
            let valid = !domain.is_empty()
                && (ipv6
                    || domain
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.')));
            if valid {
                out.push(pattern);
            } else {
                diags.push(
                    Diagnostic::error(at(&["host"]), format!("invalid host pattern `{h}`"))
                        .with_hint("write `example.com` or `*.example.com` (subdomains only), without scheme, port or path"),
                );
            }
        }
        m.hosts = Some(out);
    }
    if let Some(values) = &raw.one_of {
        if values.is_empty() {
            diags.push(Diagnostic::error(
                at(&["one_of"]),
                "`one_of` is empty, so it can never match",
            ));
        }
        if values
            .iter()
            .any(|v| v.is_array() || v.is_object() || v.is_null())
        {
            diags.push(Diagnostic::error(
                at(&["one_of"]),
                "`one_of` holds strings, numbers or booleans",
            ));
        }
        m.one_of = Some(values.clone());
    }
    if let (Some(min), Some(max)) = (&raw.min, &raw.max)
        && min.as_f64().zip(max.as_f64()).is_some_and(|(a, b)| a > b)
    {
        diags.push(Diagnostic::error(
            at(&["min"]),
            format!("`min` {min} is greater than `max` {max}, so the rule can never match"),
        ));
    }
    m.min = raw.min.clone();
    m.max = raw.max.clone();
    if let Some(r) = &raw.regex {
        m.regex = regex(r, true, at(&["regex"]), diags);
    }
    m.prefix = raw.prefix.clone();
    m.suffix = raw.suffix.clone();
    m.sql = raw.sql.map(|k| match k {
        RawSqlKind::ReadOnly => SqlKind::ReadOnly,
        RawSqlKind::Writing => SqlKind::Writing,
    });
    if let Some(inner) = &raw.not {
        let nested = |keys: &[&str]| {
            let mut k = vec!["not"];
            k.extend_from_slice(keys);
            at(&k)
        };
        m.not = Some(Box::new(compile_level(
            inner, argument, &nested, labels, false, diags,
        )));
    }
    m
}

/// Compiles `provenance: {from, not_from}`: each label must be declared and marked
/// `untrusted: true` (an empty list could never hold, or always would: refused too).
fn provenance(
    raw: &RawProvenanceMatch,
    at: &dyn Fn(&[&str]) -> SourceLocation,
    labels: &LabelScope<'_>,
    diags: &mut Diagnostics,
) -> ProvenanceMatch {
    if raw.from.is_none() && raw.not_from.is_none() {
        diags.push(
            Diagnostic::error(
                at(&["provenance"]),
                "`provenance` needs `from` or `not_from`",
            )
            .with_hint("write `provenance: { from: [label] }` or `{ not_from: [label] }`"),
        );
    }
    let mut resolve = |list: &Option<Vec<String>>, key: &str| {
        let names = list.as_ref()?;
        if names.is_empty() {
            diags.push(Diagnostic::error(
                at(&["provenance", key]),
                format!("`provenance.{key}` is empty"),
            ));
        }
        let mut out: Vec<Arc<str>> = Vec::with_capacity(names.len());
        for n in names {
            if let Some(l) = labels.untrusted.iter().find(|l| ***l == **n) {
                out.push(l.clone());
            } else if labels.declared.iter().any(|l| **l == **n) {
                diags.push(
                    Diagnostic::error(
                        at(&["provenance", key]),
                        format!("label `{n}` is not marked untrusted"),
                    )
                    .with_hint(format!(
                        "add `untrusted: true` to label `{n}` under `data.labels`, so the content it labels is indexed"
                    )),
                );
            } else if labels.complete {
                diags.push(
                    Diagnostic::error(at(&["provenance", key]), format!("unknown label `{n}`"))
                        .with_hint_opt(suggest(n, labels.untrusted.iter().map(|l| &**l)).or_else(
                            || {
                                Some(
                                    "declare it under `data.labels` with `untrusted: true`"
                                        .to_owned(),
                                )
                            },
                        )),
                );
            }
        }
        Some(out)
    };
    let from = resolve(&raw.from, "from");
    let not_from = resolve(&raw.not_from, "not_from");
    ProvenanceMatch { from, not_from }
}
