//! Charter sources: reading files, and a YAML tree that remembers where every node was written.
//!
//! Each file is parsed once into a [`Node`] tree (with `serde-saphyr`, which keeps line and
//! column for every node). Sections and list items are then deserialized one at a time from
//! that tree, so one bad rule does not hide the next, and every serde error is mapped back to
//! the line and column of the offending node through its key path.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use warden_core::SourceLocation;

use crate::diagnostic::{Diagnostic, Diagnostics};

/// Largest charter file accepted, in bytes.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Most files a charter directory may hold.
pub const MAX_FILES: usize = 256;

/// One charter file's text and the name diagnostics use for it.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file name as given (relative names stay relative).
    pub name: Arc<str>,
    /// The file's contents.
    pub text: String,
    /// Whether the file is a document included by the charter (`include:`), which may hold
    /// only `authority`, `data` and `context`, rather than one of the charter's own files.
    pub included: bool,
}

impl Source {
    /// A source from memory, for tests and tools.
    pub fn new(name: impl Into<Arc<str>>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
            included: false,
        }
    }

    /// An included document from memory (see [`Source::included`](Self#structfield.included)).
    pub fn included(name: impl Into<Arc<str>>, text: impl Into<String>) -> Self {
        Self {
            included: true,
            ..Self::new(name, text)
        }
    }
}

/// The charter's own files (without its includes).
pub(crate) fn read_charter_files(path: &Path) -> Result<Vec<Source>, Diagnostics> {
    let display = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| {
        Diagnostics::one(Diagnostic::error_at_file(
            &display,
            format!("cannot read charter: {e}"),
        ))
    })?;
    let files: Vec<PathBuf> = if meta.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| {
            Diagnostics::one(Diagnostic::error_at_file(
                &display,
                format!("cannot list charter directory: {e}"),
            ))
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            // Every `*.yaml` entry but a directory is read, so a FIFO or a device among them is
            // refused (by `read_capped`) rather than skipped: a charter never loses a file
            // silently.
            .filter(|p| {
                !p.is_dir()
                    && p.extension().is_some_and(|x| {
                        x.eq_ignore_ascii_case("yaml") || x.eq_ignore_ascii_case("yml")
                    })
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Diagnostics::one(
                Diagnostic::error_at_file(&display, "charter directory holds no .yaml files")
                    .with_hint("a charter directory holds one or more `*.yaml` files"),
            ));
        }
        if files.len() > MAX_FILES {
            return Err(Diagnostics::one(Diagnostic::error_at_file(
                &display,
                format!("charter directory holds more than {MAX_FILES} files"),
            )));
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut sources = Vec::with_capacity(files.len());
    let mut diags = Diagnostics::default();
    for file in files {
        let name = file.display().to_string();
        match read_capped(&file) {
            Ok(text) => sources.push(Source::new(name, text)),
            Err(message) => diags.push(Diagnostic::error_at_file(&name, message)),
        }
    }
    diags.into_result(sources)
}

/// Reads one charter file: a regular file (not a FIFO, a device, a socket or a directory) of
/// at most [`MAX_FILE_BYTES`], through the bounded reader of `warden_core::small_file`.
fn read_capped(path: &Path) -> Result<String, String> {
    use warden_core::small_file::{SmallFileError, read_text};
    read_text(path, MAX_FILE_BYTES).map_err(|e| match e {
        SmallFileError::Io(e) => format!("cannot read charter: {e}"),
        SmallFileError::NotRegular(what) => format!("charter is {what}, not a regular file"),
        SmallFileError::TooLarge(limit) => {
            format!("charter file is larger than the limit of {limit} bytes")
        }
        SmallFileError::NotUtf8(at) => {
            format!("charter file is not UTF-8 (invalid byte at offset {at})")
        }
    })
}

/// A YAML node with its position.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: NodeKind,
    pub line: u32,
    pub column: u32,
}

/// The shape of a YAML node.
#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its position.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub name: String,
    pub line: u32,
    pub column: u32,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<NodeKind>::deserialize(d)?;
        Ok(Node {
            kind: spanned.value,
            line: u32::try_from(spanned.referenced.line()).unwrap_or(0),
            column: u32::try_from(spanned.referenced.column()).unwrap_or(0),
        })
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<String>::deserialize(d)?;
        Ok(Key {
            name: spanned.value,
            line: u32::try_from(spanned.referenced.line()).unwrap_or(0),
            column: u32::try_from(spanned.referenced.column()).unwrap_or(0),
        })
    }
}

impl<'de> Deserialize<'de> for NodeKind {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = NodeKind;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<NodeKind, E> {
                Ok(NodeKind::Null)
            }
            fn visit_none<E>(self) -> Result<NodeKind, E> {
                Ok(NodeKind::Null)
            }
            fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<NodeKind, D::Error> {
                NodeKind::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<NodeKind, E> {
                Ok(NodeKind::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<NodeKind, E> {
                Ok(NodeKind::Int(i128::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<NodeKind, E> {
                Ok(NodeKind::Int(i128::from(v)))
            }
            fn visit_i128<E>(self, v: i128) -> Result<NodeKind, E> {
                Ok(NodeKind::Int(v))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<NodeKind, E> {
                i128::try_from(v)
                    .map(NodeKind::Int)
                    .map_err(|_| E::custom("integer is too large"))
            }
            fn visit_f64<E>(self, v: f64) -> Result<NodeKind, E> {
                Ok(NodeKind::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<NodeKind, E> {
                Ok(NodeKind::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<NodeKind, E> {
                Ok(NodeKind::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeKind, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Node>()? {
                    items.push(item);
                }
                Ok(NodeKind::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeKind, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<Key, Node>()? {
                    entries.push((k, v));
                }
                Ok(NodeKind::Map(entries))
            }
        }
        d.deserialize_any(NodeVisitor)
    }
}

/// A parsed file: its name and its root node.
#[derive(Debug)]
pub(crate) struct ParsedFile {
    pub name: Arc<str>,
    pub root: Node,
    /// An included document (see [`Source::included`](Source#structfield.included)).
    pub included: bool,
}

impl ParsedFile {
    /// Parses YAML text into a node tree, or one diagnostic at the syntax error.
    pub(crate) fn parse(source: &Source) -> Result<Self, Diagnostic> {
        let options = serde_saphyr::options! {
            strict_booleans: true,
            budget: serde_saphyr::budget! {
                max_documents: 1,
                max_depth: 64,
            },
        };
        if source.text.trim().is_empty() {
            return Err(Diagnostic::error_at_file(
                &source.name,
                "charter file is empty",
            ));
        }
        match serde_saphyr::from_str_with_options::<Node>(&source.text, options) {
            Ok(root) => Ok(ParsedFile {
                name: source.name.clone(),
                root,
                included: source.included,
            }),
            Err(e) => {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((1, 1));
                let message = first_line(&e.without_snippet().to_string());
                let diagnostic = Diagnostic::error(
                    SourceLocation {
                        file: source.name.clone(),
                        line: u32::try_from(line).unwrap_or(1).max(1),
                        column: u32::try_from(column).unwrap_or(1).max(1),
                    },
                    format!("invalid YAML: {message}"),
                );
                // `*.example.com` unquoted is a YAML alias (`*name`) to an anchor that does
                // not exist: the message says "alias", the fix is quoting.
                let lower = message.to_ascii_lowercase();
                let alias = lower.contains("alias") || lower.contains("anchor");
                Err(if alias {
                    diagnostic.with_hint(ALIAS_HINT)
                } else {
                    diagnostic
                })
            }
        }
    }

    /// The location of a node of this file.
    pub(crate) fn at(&self, node: &Node) -> SourceLocation {
        self.loc(node.line, node.column)
    }

    /// The location of a key of this file.
    pub(crate) fn at_key(&self, key: &Key) -> SourceLocation {
        self.loc(key.line, key.column)
    }

    fn loc(&self, line: u32, column: u32) -> SourceLocation {
        SourceLocation {
            file: self.name.clone(),
            line: line.max(1),
            column: column.max(1),
        }
    }
}

/// The hint for a YAML alias error: most often a glob or host pattern starting with `*`.
const ALIAS_HINT: &str = "quote a value that starts with `*`: YAML reads `*name` as an alias of an anchor, so write `\"*.example.com\"`";

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).trim().to_owned()
}

impl Node {
    /// The value under `key` of a mapping node, with its key.
    pub(crate) fn get(&self, key: &str) -> Option<(&Key, &Node)> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.name == key)
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// The items of a sequence node (empty for anything else).
    pub(crate) fn items(&self) -> &[Node] {
        match &self.kind {
            NodeKind::Seq(items) => items,
            _ => &[],
        }
    }

    /// The node as a JSON value, for typed deserialization. Non-finite floats become strings,
    /// so a typed field rejects them with a clear error.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(i) => {
                if let Ok(v) = i64::try_from(*i) {
                    Value::from(v)
                } else if let Ok(v) = u64::try_from(*i) {
                    Value::from(v)
                } else {
                    Value::String(i.to_string())
                }
            }
            NodeKind::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(f.to_string())),
            NodeKind::Str(s) => Value::String(s.clone()),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Follows a serde key path as far as it goes and returns the deepest node reached, and the
    /// key under which it sits when the path ended at a mapping entry.
    pub(crate) fn follow<'a>(
        &'a self,
        path: &serde_path_to_error::Path,
    ) -> (&'a Node, Option<&'a Key>) {
        use serde_path_to_error::Segment;
        let mut node = self;
        let mut key = None;
        for segment in path.iter() {
            let next = match segment {
                Segment::Seq { index } => node.items().get(*index).map(|n| (n, None)),
                Segment::Map { key: k } => node.get(k).map(|(k, n)| (n, Some(k))),
                Segment::Enum { .. } | Segment::Unknown => None,
            };
            match next {
                Some((n, k)) => {
                    node = n;
                    key = k;
                }
                None => break,
            }
        }
        (node, key)
    }
}
