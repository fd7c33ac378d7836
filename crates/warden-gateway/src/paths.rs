//! Symbolic links in path arguments, resolved before deciding for servers on this machine.
//!
//! The decision compares paths lexically; a symbolic link inside an allowed root can point
//! anywhere. For a stdio (local) upstream, every argument that a rule of the tool compares
//! with a path glob (or a label source reads) is resolved with the file system — the longest
//! existing ancestor through `realpath`, the rest appended — and the resolved path is what is
//! decided, recorded **and forwarded**, so the upstream acts on exactly the path that was
//! decided. Paths that do not canonicalise lexically are left alone: the decision refuses them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use warden_charter::{CompiledCharter, Matcher};
use warden_core::path::canonicalize;

/// Argument paths compared with globs, per tool.
#[derive(Debug, Default)]
pub struct PathArguments {
    by_tool: HashMap<String, Vec<Vec<String>>>,
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
        PathArguments { by_tool }
    }

    /// `args` with the path arguments of `tool` resolved through symbolic links.
    pub fn resolve(&self, tool: &str, args: &Value) -> Value {
        let Some(paths) = self.by_tool.get(tool) else {
            return args.clone();
        };
        let mut out = args.clone();
        for path in paths {
            if let Some(v) = lookup_mut(&mut out, path) {
                match v {
                    Value::String(s) => {
                        if let Some(r) = resolve_one(s) {
                            *s = r;
                        }
                    }
                    Value::Array(items) => {
                        for item in items {
                            if let Value::String(s) = item
                                && let Some(r) = resolve_one(s)
                            {
                                *s = r;
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        out
    }
}

fn lookup_mut<'v>(v: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    path.iter()
        .try_fold(v, |v, key| v.as_object_mut()?.get_mut(key))
}

/// Most symbolic links followed while resolving one path (as Linux's `ELOOP` limit).
const MAX_LINK_HOPS: usize = 40;

/// The path with symbolic links resolved, when it is absolute, canonical and changes.
///
/// Resolution walks the path one component at a time and follows every link — dangling ones
/// included, whose target is resolved as far as it exists — so a link to a file that does not
/// exist yet is decided as its target, not as its own name. A loop resolves to nothing and the
/// path is left as written.
fn resolve_one(raw: &str) -> Option<String> {
    let canonical = canonicalize(raw).ok()?;
    if !canonical.starts_with('/') {
        return None;
    }
    let resolved = resolve_links(Path::new(&canonical))?;
    let resolved = resolved.to_str()?.to_owned();
    (resolved != canonical || raw != canonical).then_some(resolved)
}

/// `realpath` that also follows dangling links.
fn resolve_links(path: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut pending: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect();
    let mut out = PathBuf::from("/");
    let mut hops = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            out.pop();
            continue;
        }
        let next = out.join(&name);
        match std::fs::symlink_metadata(&next) {
            Ok(meta) if meta.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return None;
                }
                let target = std::fs::read_link(&next).ok()?;
                if target.is_absolute() {
                    out = PathBuf::from("/");
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(n.to_os_string()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => out = next,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_to_their_target() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("allowed")).unwrap();
        std::fs::create_dir(root.join("secret")).unwrap();
        std::os::unix::fs::symlink(root.join("secret"), root.join("allowed/link")).unwrap();
        let through = format!("{}/allowed/link/key.pem", root.display());
        assert_eq!(
            resolve_one(&through).unwrap(),
            format!("{}/secret/key.pem", root.display())
        );
        // A dangling link is resolved to its (missing) target.
        std::os::unix::fs::symlink(root.join("secret/new.txt"), root.join("allowed/dangle"))
            .unwrap();
        let dangling = format!("{}/allowed/dangle", root.display());
        assert_eq!(
            resolve_one(&dangling).unwrap(),
            format!("{}/secret/new.txt", root.display())
        );
        // Relative links, and a loop.
        std::os::unix::fs::symlink("../secret", root.join("allowed/rel")).unwrap();
        assert_eq!(
            resolve_one(&format!("{}/allowed/rel/x", root.display())).unwrap(),
            format!("{}/secret/x", root.display())
        );
        std::os::unix::fs::symlink(root.join("allowed/loop"), root.join("allowed/loop")).unwrap();
        assert_eq!(
            resolve_one(&format!("{}/allowed/loop/x", root.display())),
            None
        );
        let plain = format!("{}/allowed/notes.txt", root.display());
        assert_eq!(resolve_one(&plain), None);
        assert_eq!(resolve_one("relative/x"), None);
        assert_eq!(resolve_one("/a/%2e%2e/b"), None);
    }
}
