//! Translation between OpenAI chat completions and Anthropic messages, so the model proxy can
//! route a request in one protocol to a provider that speaks the other, and hand the answer
//! back in the agent's protocol: [`request`] (agent → provider), [`response`] and [`error`]
//! (provider → agent, complete bodies) and [`StreamTranslator`] (provider → agent, SSE).
//! Every function is the identity when both protocols are the same.
//!
//! What has no counterpart is dropped, never invented:
//!
//! - OpenAI → Anthropic requests: `n`, `presence_penalty`, `frequency_penalty`, `logit_bias`,
//!   `logprobs`, `top_logprobs`, `seed`, `response_format`, `stream_options`, `store`,
//!   `reasoning_effort`, `modalities`, `audio`, `prediction`, `service_tag`, message `name`s and
//!   assistant `refusal`s. `temperature` is clamped to Anthropic's `0..=1`. Content parts other
//!   than text and image (audio, files), image URLs that are neither http(s) nor base64
//!   `data:` URLs, and tool-call arguments that are not JSON are errors. `parallel_tool_calls:
//!   false` becomes `disable_parallel_tool_use`.
//! - Anthropic → OpenAI requests: `top_k`, `thinking`, `cache_control`, `citations`,
//!   `metadata` other than `user_id`, `thinking`/`redacted_thinking` blocks, document blocks
//!   and `is_error` on tool results. Server tools (a `type` other than `custom`) are errors.
//! - Responses: only the first OpenAI choice; Anthropic `thinking` blocks; logprobs.
//!   Arguments of an OpenAI tool call that are not JSON stay a string in `input`.
//! - Streams: Anthropic `thinking` and `signature` deltas, `ping`s; OpenAI `refusal` deltas.
//!   An OpenAI stream reports its input tokens only at the end, so the Anthropic
//!   `message_start` says `input_tokens: 0` and the real count is in `message_delta`'s usage.

mod requests;
mod responses;
mod stream;

use serde_json::{Value, json};

pub use requests::request;
pub use responses::{error, response};
pub use stream::StreamTranslator;

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn num_of(v: Option<&Value>, key: &str) -> u64 {
    v.and_then(|v| v.get(key))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// The texts of a `content` (a string, or parts/blocks with `text`), joined by `sep`.
fn joined_text(content: &Value, sep: &str) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| str_of(p, "text"))
            .collect::<Vec<_>>()
            .join(sep),
        _ => String::new(),
    }
}

/// Anthropic's `stop_reason` as OpenAI's `finish_reason`.
fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// OpenAI's `finish_reason` as Anthropic's `stop_reason`.
fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        _ => "end_turn",
    }
}

/// OpenAI usage from Anthropic usage (cached input tokens counted in the prompt).
fn openai_usage(usage: Option<&Value>) -> Value {
    let cache_read = num_of(usage, "cache_read_input_tokens");
    let prompt = num_of(usage, "input_tokens")
        .saturating_add(num_of(usage, "cache_creation_input_tokens"))
        .saturating_add(cache_read);
    let completion = num_of(usage, "output_tokens");
    let mut u = json!({"prompt_tokens": prompt, "completion_tokens": completion,
        "total_tokens": prompt.saturating_add(completion)});
    if cache_read > 0
        && let Some(obj) = u.as_object_mut()
    {
        obj.insert(
            "prompt_tokens_details".into(),
            json!({"cached_tokens": cache_read}),
        );
    }
    u
}

/// Anthropic usage from OpenAI usage (cached prompt tokens as cache reads).
fn anthropic_usage(usage: Option<&Value>) -> Value {
    let cached = usage
        .and_then(|u| u.pointer("/prompt_tokens_details/cached_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let prompt = num_of(usage, "prompt_tokens");
    let mut u = json!({"input_tokens": prompt.saturating_sub(cached),
        "output_tokens": num_of(usage, "completion_tokens")});
    if cached > 0
        && let Some(obj) = u.as_object_mut()
    {
        obj.insert("cache_read_input_tokens".into(), json!(cached));
    }
    u
}

#[cfg(test)]
mod tests;
