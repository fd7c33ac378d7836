//! Fuzzes the reading of provider-side actions (`warden_llm::provider_actions`): never a
//! panic on any JSON body and any `anthropic-beta` value, and every action names a tool the
//! charter lets rules name, with an object of arguments.

#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_llm::{Protocol, provider_actions};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line is the beta header, the rest the body.
    let (beta, body) = text.split_once('\n').unwrap_or(("", text));
    let Ok(body) = serde_json::from_str::<serde_json::Value>(body) else {
        return;
    };
    for protocol in [Protocol::OpenAi, Protocol::Anthropic] {
        for action in provider_actions(protocol, &body, &[beta]) {
            assert!(
                warden_charter::MODEL_TOOLS.contains(&action.tool),
                "{} is not a charter tool",
                action.tool
            );
            assert!(action.args.is_object(), "{}", action.args);
        }
    }
});
