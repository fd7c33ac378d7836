//! A route's provider: the protocol it speaks, its endpoint, and how a route is recorded.

use serde_json::{Value, json};
use warden_charter::{ModelRoute, Provider};
use warden_llm::Protocol;

/// The protocol a provider speaks.
pub(crate) fn protocol_of(p: Provider) -> Protocol {
    match p {
        Provider::Openai => Protocol::OpenAi,
        Provider::Anthropic => Protocol::Anthropic,
    }
}

/// The endpoint URL of a route.
pub(crate) fn endpoint(route: &ModelRoute, protocol: Protocol) -> String {
    let base = route.base_url.as_str().trim_end_matches('/');
    if base.ends_with("/v1") {
        format!("{base}/{}", protocol.endpoint())
    } else {
        format!("{base}/v1/{}", protocol.endpoint())
    }
}

/// A route as recorded.
pub(crate) fn route_json(route: &ModelRoute) -> Value {
    json!({ "provider": protocol_of(route.provider).as_str(), "model": route.model, "base_url": route.base_url.as_str() })
}
