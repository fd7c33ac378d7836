//! The provenance matchers (`in_task`, `provenance`) and the explanation a decision carries.
//!
//! A value is traced through the session's [`SessionProvenance`] only when a rule being
//! evaluated has one of these matchers ([`uses_provenance`]): a decision whose candidate rules
//! use none never traces and allocates nothing here.

use std::sync::Arc;

use serde_json::Value;
use warden_charter::{Matcher, ProvenanceMatch, Rule};
use warden_core::ArgProvenance;
use warden_provenance::SessionProvenance;

use crate::request::lookup;

/// Most explanation entries one decision carries.
pub const MAX_EXPLAINED: usize = 16;
/// Longest value kept in an explanation entry, in bytes (longer ones are ellipsized).
pub const MAX_EXPLAINED_VALUE: usize = 200;
/// Most strings and numbers traced inside one object or list element by a `provenance`
/// matcher; past it the matcher errs (a restrictive rule denies, a permissive one does not
/// match).
pub const MAX_LEAVES: usize = 256;
/// Deepest nesting walked inside one element.
const MAX_DEPTH: usize = 16;

/// Whether a matcher judges provenance (so its values are traced).
pub(crate) fn uses_provenance(m: &Matcher) -> bool {
    m.in_task.is_some() || m.provenance.is_some()
}

/// Judges one present, non-null value (an element, for a list) with the matcher's `in_task`
/// and `provenance`: `Ok(true)` when both hold.
///
/// `in_task: true` holds iff trusted text states the value, `false` iff it does not; it needs
/// a string or a number (a number is traced as its JSON text). `provenance.from` holds iff
/// the value came from content of one of its labels, `not_from` iff it did not; a string or
/// number is traced as itself, an object or list leaf by leaf (a leaf from the labels counts
/// for the whole). Anything else is wrong-typed: an error.
pub(crate) fn holds(m: &Matcher, v: &Value, prov: &SessionProvenance) -> Result<bool, String> {
    if let Some(want) = m.in_task {
        let text = scalar_text(v)
            .ok_or_else(|| format!("`in_task` needs a string or a number, got {}", kind(v)))?;
        if prov.trace(&text).is_stated() != want {
            return Ok(false);
        }
    }
    if let Some(p) = &m.provenance {
        let leaves = leaves(v)?;
        let mut from_any = false;
        let mut not_from_any = false;
        for leaf in &leaves {
            let trace = prov.trace(leaf);
            if let Some(from) = &p.from {
                from_any |= trace.from_any(from);
            }
            if let Some(not_from) = &p.not_from {
                not_from_any |= trace.from_any(not_from);
            }
        }
        if !provenance_holds(p, from_any, not_from_any) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The explanation of the determining `rules`: for each argument one of them judges with
/// `in_task` or `provenance`, one entry per value traced (each element of a list, each leaf
/// of an object), at most [`MAX_EXPLAINED`] in all.
pub(crate) fn explain(
    rules: &[&Rule],
    args: &Value,
    prov: &SessionProvenance,
) -> Vec<ArgProvenance> {
    let mut out = Vec::new();
    for rule in rules {
        for c in rule.args.iter().filter(|c| uses_provenance(&c.matcher)) {
            let values: &[Value] = match lookup(args, &c.path) {
                None | Some(Value::Null) => continue,
                Some(Value::Array(items)) => items,
                Some(v) => std::slice::from_ref(v),
            };
            for v in values {
                let texts = if c.matcher.provenance.is_some() {
                    leaves(v).unwrap_or_default()
                } else {
                    scalar_text(v).into_iter().collect()
                };
                for text in texts {
                    if out.len() >= MAX_EXPLAINED {
                        return out;
                    }
                    let trace = prov.trace(&text);
                    out.push(ArgProvenance {
                        rule: Arc::clone(&rule.id),
                        argument: c.argument.clone(),
                        value: warden_core::text::ellipsize(&text, MAX_EXPLAINED_VALUE),
                        trusted: trace.stated,
                        found: trace.untrusted,
                        incomplete: trace.incomplete,
                    });
                }
            }
        }
    }
    out
}

/// `from` holds when some leaf came from one of its labels; `not_from` when none did.
fn provenance_holds(p: &ProvenanceMatch, from_any: bool, not_from_any: bool) -> bool {
    (p.from.is_none() || from_any) && (p.not_from.is_none() || !not_from_any)
}

/// The text a string or number is traced as: a string itself, a number its JSON text.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The strings and numbers a `provenance` matcher traces in `v`: `v` itself when it is one;
/// the leaves of an object or list (booleans and `null` inside carry no text and are
/// skipped). A boolean, `null`, or an object or list with no leaf is wrong-typed.
fn leaves(v: &Value) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    walk(v, 0, &mut out)?;
    if out.is_empty() {
        return Err(format!(
            "`provenance` needs a string or a number, got {}",
            kind(v)
        ));
    }
    Ok(out)
}

fn walk(v: &Value, depth: usize, out: &mut Vec<String>) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("a value nested deeper than {MAX_DEPTH} levels"));
    }
    match v {
        Value::Array(items) => items.iter().try_for_each(|i| walk(i, depth + 1, out)),
        Value::Object(map) => map.values().try_for_each(|i| walk(i, depth + 1, out)),
        other => {
            if let Some(text) = scalar_text(other) {
                if out.len() >= MAX_LEAVES {
                    return Err(format!("more than {MAX_LEAVES} values to trace"));
                }
                out.push(text);
            }
            Ok(())
        }
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    fn m(from: Option<&str>, not_from: Option<&str>) -> ProvenanceMatch {
        let l = |x: Option<&str>| x.map(|l| vec![Arc::<str>::from(l)]);
        ProvenanceMatch {
            from: l(from),
            not_from: l(not_from),
        }
    }

    #[test]
    fn from_and_not_from_combine() {
        assert!(provenance_holds(&m(Some("a"), None), true, false));
        assert!(!provenance_holds(&m(Some("a"), None), false, false));
        assert!(provenance_holds(&m(None, Some("a")), false, false));
        assert!(!provenance_holds(&m(None, Some("a")), false, true));
        assert!(!provenance_holds(&m(Some("a"), Some("b")), true, true));
    }

    #[test]
    fn leaves_of_nested_values() {
        let v = serde_json::json!({"a": ["x", 1.5, true, null], "b": {"c": "y"}});
        assert_eq!(leaves(&v).unwrap(), ["x", "1.5", "y"]);
        assert!(leaves(&Value::Bool(true)).is_err());
        assert!(leaves(&serde_json::json!({"a": true})).is_err());
        let mut deep = Value::String("x".into());
        for _ in 0..20 {
            deep = Value::Array(vec![deep]);
        }
        assert!(leaves(&deep).is_err());
        let wide = Value::Array((0..=MAX_LEAVES).map(|i| Value::from(i as u64)).collect());
        assert!(leaves(&wide).is_err());
    }

    #[test]
    fn numbers_are_traced_as_json_text() {
        assert_eq!(
            scalar_text(&serde_json::json!(120.5)).as_deref(),
            Some("120.5")
        );
        assert_eq!(scalar_text(&Value::Bool(true)), None);
    }
}
