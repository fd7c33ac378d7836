//! The charter's identity and context as a system message, which the proxy puts in front of
//! every request when the charter's `context.system_message` asks for it.

use warden_charter::CompiledCharter;

/// The charter's identity and context, as a system message.
pub fn system_message(charter: &CompiledCharter) -> String {
    let id = &charter.identity;
    let ctx = &charter.context;
    let mut s = format!(
        "You are {}: {}. You serve {}.",
        id.name,
        id.purpose.trim().trim_end_matches('.'),
        id.serves.trim().trim_end_matches('.')
    );
    for v in &id.values {
        s.push_str("\nValue: ");
        s.push_str(v);
    }
    for b in &id.boundaries {
        s.push_str("\nBoundary: ");
        s.push_str(b);
    }
    for (k, v) in [
        ("Organisation", &ctx.organisation),
        ("Mission", &ctx.mission),
        ("Environment", &ctx.environment),
    ] {
        if let Some(v) = v {
            s.push_str(&format!("\n{k}: {v}"));
        }
    }
    for (k, v) in &ctx.state {
        s.push_str(&format!("\nState: {k} = {v}"));
    }
    s
}
