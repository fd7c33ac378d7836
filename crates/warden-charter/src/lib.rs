//! Charter documents: the governance layer of warden, parsed, validated and compiled.
//!
//! A charter (YAML, one file or a directory) says who the agent is, what it is provisioned
//! with, which tier every action falls into, who may direct and approve, which data is
//! sensitive, and what the situation is. [`load`] or [`compile`] produce a
//! [`CompiledCharter`] — immutable, content-hashed, with every rule's file:line:col kept — or
//! every [`Diagnostic`] at once. The format is documented in `docs/charter.md`.
//!
//! Sits above `warden-core` in the workspace DAG; `warden-pdp` decides with what it produces.
//! No IO beyond reading the charter files, no async runtime.

pub mod amount;
mod cell;
mod compile;
mod compiled;
mod diagnostic;
pub mod diff;
mod include;
mod index;
pub mod names;
mod raw;
mod set;
mod set_check;
mod set_load;
mod source;
mod upstream_auth;

pub use cell::CharterCell;
pub use compile::{
    CEL_VARIABLES, CHARTER_VERSION, Compiled, DEFAULT_APPROVAL_TIMEOUT,
    DEFAULT_DELEGATION_CHILDREN, DEFAULT_DELEGATION_DEPTH, DEFAULT_MODEL_TIMEOUT, DEFAULT_RULE_ID,
    MAX_DELEGATION_CHILDREN, MAX_DELEGATION_DEPTH, MODEL_SERVER, MODEL_TOOLS, RESOURCE_READ_TOOL,
    compile, load, parse_duration,
};
pub use compiled::*;
pub use diagnostic::{Diagnostic, Diagnostics, Severity};
pub use include::read_sources;
pub use names::{agent_tool_name, charter_tool_name, is_function_name};
pub use set::{CharterSet, DuplicateAgent, SetError};
pub use set_load::{CompiledSet, load_set, set_directory};
pub use source::{MAX_FILE_BYTES, MAX_FILES, Source};
pub use upstream_auth::*;
