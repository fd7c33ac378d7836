//! Path arguments: what is decided is what is forwarded, resolved the way the upstream will
//! open it, never inside warden's data directory, and resolved again just before forwarding.
//!
//! Every argument that a rule of the tool compares with a path glob, or a label source reads,
//! is a *path argument*. Before the decision:
//!
//! 1. It is canonicalised lexically ([`warden_core::path::canonicalize`]), so every matcher of
//!    every rule — `prefix`, `regex`, a CEL `when` — sees the form the globs see. A path that
//!    does not canonicalise is left as written, and the decision refuses it (an evaluation
//!    error); one not in Unicode NFC is refused here, before any decision.
//! 2. For a stdio (local) server, an absolute path is then resolved through symbolic links,
//!    byte for byte as the server will open it ([`resolve::resolve`]); a name that its
//!    directory stores in another Unicode form than the path spells it is refused, and so is a
//!    resolved path not in NFC.
//!
//! The result is what is decided, recorded **and forwarded**: the upstream acts on exactly the
//! path that was decided.
//!
//! Then, ahead of the charter's rules: any string of the arguments (or `file:` URI) that names
//! a place inside warden's data directory refuses the action, whatever the charter allows —
//! absolute, `~/`-relative (the gateway's `HOME`) or relative (to the gateway's working
//! directory, which stdio servers inherit), and for a local server also through links.
//!
//! File-system work runs on tokio's blocking pool; [`PathArguments::recheck`] does it again
//! just before forwarding (after an approval wait, a link may have changed).

mod resolve;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use warden_charter::{CompiledCharter, Matcher, RESOURCE_READ_TOOL};
use warden_core::path::{PathError, canonicalize, is_nfc};

/// Strings longer than this are not paths (`PATH_MAX`): they are not checked.
const MAX_PATH_BYTES: usize = 4096;

/// Most strings of one call checked against the data directory; a call with more is refused.
const MAX_CHECKED_STRINGS: usize = 1024;

/// Path arguments per tool, and the data directory no action may reach.
#[derive(Debug, Default)]
pub struct PathArguments {
    by_tool: HashMap<String, Vec<Vec<String>>>,
    protected: Option<Protected>,
}

fn has_glob(m: &Matcher) -> bool {
    m.globs.is_some() || m.not.as_deref().is_some_and(has_glob)
}

impl PathArguments {
    /// Collects, for every inventoried tool, the arguments its rules and label sources treat
    /// as paths.
    pub fn new(charter: &CompiledCharter) -> PathArguments {
        let mut by_tool: HashMap<String, Vec<Vec<String>>> = HashMap::new();
        for tool in charter.inventory.tools.keys() {
            let mut paths: Vec<Vec<String>> = Vec::new();
            for rule in charter.rules_for(tool) {
                for c in &rule.args {
                    if has_glob(&c.matcher) && !paths.contains(&c.path) {
                        paths.push(c.path.clone());
                    }
                }
            }
            for source in &charter.data.sources {
                let applies = source.tools.as_ref().is_none_or(|t| t.is_match(tool));
                if applies && source.paths.is_some() && !paths.contains(&source.path_argument_path)
                {
                    paths.push(source.path_argument_path.clone());
                }
            }
            if !paths.is_empty() {
                by_tool.insert(tool.clone(), paths);
            }
        }
        PathArguments {
            by_tool,
            protected: None,
        }
    }

    /// The same, refusing every action whose arguments name a place inside `data_dir` (read
    /// once, here: its absolute form and, when it exists, its real path).
    pub fn protecting(mut self, data_dir: &Path) -> PathArguments {
        self.protected = Some(Protected::new(data_dir));
        self
    }

    /// The arguments to decide, record and forward, or why the action is refused before any
    /// decision (a path not in NFC, a name stored in another Unicode form, a link loop, a
    /// place inside the data directory). `local`: the tool's server runs on this machine.
    pub async fn prepare(
        self: &Arc<Self>,
        tool: &str,
        args: &Value,
        local: bool,
    ) -> Result<Value, String> {
        if !local {
            return self.prepare_now(tool, args, false);
        }
        let this = Arc::clone(self);
        let tool = tool.to_owned();
        let args = args.clone();
        tokio::task::spawn_blocking(move || this.prepare_now(&tool, &args, true))
            .await
            .unwrap_or_else(|e| Err(format!("its path arguments could not be resolved: {e}")))
    }

    /// Prepares `raw` again, just before forwarding: an error when it is refused now or no
    /// longer resolves to `decided` (a link changed since the decision).
    pub async fn recheck(
        self: &Arc<Self>,
        tool: &str,
        raw: &Value,
        local: bool,
        decided: &Value,
    ) -> Result<(), String> {
        // Without the file system, preparing is a pure function of the arguments.
        if !local {
            return Ok(());
        }
        let again = self.prepare(tool, raw, true).await?;
        if &again == decided {
            Ok(())
        } else {
            Err(format!(
                "its path arguments resolve differently now than when it was decided (a symbolic link changed): `{again}`, not `{decided}`"
            ))
        }
    }

    fn prepare_now(&self, tool: &str, args: &Value, local: bool) -> Result<Value, String> {
        let mut out = args.clone();
        for path in self.by_tool.get(tool).into_iter().flatten() {
            let name = path.join(".");
            let fail = |e: String| format!("argument `{name}`: {e}");
            match lookup_mut(&mut out, path) {
                Some(Value::String(s)) => prepare_one(s, local).map_err(&fail)?,
                Some(Value::Array(items)) => {
                    for item in items {
                        if let Value::String(s) = item {
                            prepare_one(s, local).map_err(&fail)?;
                        }
                    }
                }
                _ => {}
            }
        }
        if tool
            .split_once('.')
            .is_some_and(|(_, t)| t == RESOURCE_READ_TOOL)
            && let Some(Value::String(uri)) = lookup_mut(&mut out, &["uri".to_owned()])
        {
            prepare_file_uri(uri, local).map_err(|e| format!("argument `uri`: {e}"))?;
        }
        if let Some(protected) = &self.protected {
            protected.check(&out, local)?;
        }
        Ok(out)
    }
}

fn lookup_mut<'v>(v: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    path.iter()
        .try_fold(v, |v, key| v.as_object_mut()?.get_mut(key))
}

/// Replaces a path argument with the form that is decided and forwarded.
fn prepare_one(s: &mut String, local: bool) -> Result<(), String> {
    let canonical = match canonicalize(s) {
        Ok(c) => c,
        Err(e @ PathError::NotNfc(_)) => return Err(format!("`{s}`: {e}")),
        // The decision refuses it, with the reason.
        Err(_) => return Ok(()),
    };
    let decided = if local && canonical.starts_with('/') {
        let resolved = resolve::resolve(Path::new(&canonical))
            .map_err(|e| format!("`{canonical}`: {e}"))?
            .into_os_string()
            .into_string()
            .map_err(|p| {
                format!(
                    "`{canonical}` resolves to `{}`, which is not UTF-8",
                    p.display()
                )
            })?;
        if !is_nfc(&resolved) {
            return Err(format!(
                "`{canonical}` resolves to `{resolved}`, which is not in Unicode NFC: a server may open another entry than the one decided"
            ));
        }
        resolved
    } else {
        canonical
    };
    *s = decided;
    Ok(())
}

/// A `file:` URI of a resource read is a path too: parsed (which removes dot segments),
/// and for a local server resolved like a path argument, then written back as a URI.
/// Another URI, or one with a host, is left as it is.
fn prepare_file_uri(uri: &mut String, local: bool) -> Result<(), String> {
    let Ok(url) = url::Url::parse(uri) else {
        return Ok(());
    };
    if url.scheme() != "file" {
        return Ok(());
    }
    let Some(mut path) = url
        .to_file_path()
        .ok()
        .and_then(|p| p.into_os_string().into_string().ok())
    else {
        return Ok(());
    };
    prepare_one(&mut path, local)?;
    if let Ok(decided) = url::Url::from_file_path(&path) {
        *uri = decided.into();
    }
    Ok(())
}

/// Warden's data directory, which no action's arguments may name.
#[derive(Debug)]
struct Protected {
    /// Absolute, collapsed.
    lexical: PathBuf,
    /// Through links, when it exists.
    real: Option<PathBuf>,
    /// The gateway's working directory, which stdio servers inherit.
    cwd: Option<PathBuf>,
    home: Option<PathBuf>,
}

impl Protected {
    fn new(data_dir: &Path) -> Protected {
        let cwd = std::env::current_dir().ok();
        let absolute = match &cwd {
            Some(cwd) if data_dir.is_relative() => cwd.join(data_dir),
            _ => data_dir.to_path_buf(),
        };
        let lexical = resolve::collapse(&absolute);
        Protected {
            real: std::fs::canonicalize(&lexical).ok(),
            lexical,
            cwd,
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }

    fn inside(&self, p: &Path) -> bool {
        p.starts_with(&self.lexical) || self.real.as_ref().is_some_and(|r| p.starts_with(r))
    }

    /// Refuses arguments any string of which names a place inside the data directory.
    fn check(&self, args: &Value, local: bool) -> Result<(), String> {
        let mut strings = Vec::new();
        if !collect_strings(args, &mut strings) {
            return Err(format!(
                "its arguments hold more than {MAX_CHECKED_STRINGS} strings, more than warden checks against its data directory"
            ));
        }
        for s in strings {
            let Some(place) = self.place(s) else {
                continue;
            };
            let inside = self.inside(&place)
                || (local && resolve::resolve(&place).is_ok_and(|r| self.inside(&r)));
            if inside {
                return Err(format!(
                    "`{s}` is inside warden's data directory (`{}`), which no action may reach, whatever the charter allows",
                    self.lexical.display()
                ));
            }
        }
        Ok(())
    }

    /// Where a string would point as a path: absolute, `~`, `file:` URI or relative.
    fn place(&self, s: &str) -> Option<PathBuf> {
        if s.is_empty() || s.len() > MAX_PATH_BYTES || s.contains('\0') {
            return None;
        }
        let raw = if s.starts_with("file:") {
            url::Url::parse(s).ok()?.to_file_path().ok()?
        } else if s == "~" {
            self.home.clone()?
        } else if let Some(rest) = s.strip_prefix("~/") {
            self.home.as_ref()?.join(rest)
        } else if s.starts_with('/') {
            PathBuf::from(s)
        } else {
            self.cwd.as_ref()?.join(s)
        };
        Some(resolve::collapse(&raw))
    }
}

/// Every string of `v` (keys are not paths to a server); false when there are too many.
fn collect_strings<'v>(v: &'v Value, out: &mut Vec<&'v str>) -> bool {
    match v {
        Value::String(s) => {
            out.push(s);
            out.len() <= MAX_CHECKED_STRINGS
        }
        Value::Array(items) => items.iter().all(|i| collect_strings(i, out)),
        Value::Object(map) => map.values().all(|i| collect_strings(i, out)),
        _ => true,
    }
}
