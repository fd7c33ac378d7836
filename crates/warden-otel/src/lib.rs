//! OpenTelemetry export (skeleton: the otel part fills it in).
//!
//! Follows the ledger's committed head and turns records into OTLP/HTTP (protobuf) spans: a
//! trace per session (or the agent's own trace, continued from the `traceparent` recorded
//! with an attempt or a model request), `chat {model}` spans for model calls and
//! `execute_tool {tool}` spans for actions, with the GenAI semantic-convention attributes and
//! warden's decision. Asynchronous and bounded: a slow or dead collector never delays or fails
//! an action.
