//! The `[otel]` section of the config file: OpenTelemetry export (see docs/opentelemetry.md).
//!
//! ```toml
//! [otel]
//! endpoint = "http://127.0.0.1:4318"          # spans go to {endpoint}/v1/traces
//! headers = { "authorization" = "env:OTEL_AUTH" }
//! service_name = "warden"                      # default
//! capture_content = false                      # default: no prompts, completions, arguments
//! ```
//!
//! Without the section, the standard `OTEL_EXPORTER_OTLP_ENDPOINT` variable turns export on
//! with the defaults; with neither, export is off. A header's value is only ever the name of
//! an environment variable (`env:NAME`), so no credential is written in the file; a variable
//! that is not set is an error at start-up (fail closed: export with a missing credential
//! would only be refused), naming the variable, never a value.

use serde::Deserialize;
use warden_otel::{DEFAULT_SERVICE_NAME, OtelConfig};

use super::{ConfigError, ConfigSource};

/// The most headers the section may list.
const MAX_HEADERS: usize = 32;

/// The `[otel]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOtel {
    /// The collector's OTLP/HTTP base URL.
    pub endpoint: Option<String>,
    /// Header name → `env:VARIABLE`.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// The resource's `service.name` (default `warden`).
    pub service_name: Option<String>,
    /// Export prompts, completions and tool arguments (clipped); default `false`.
    #[serde(default)]
    pub capture_content: bool,
}

/// The export settings: the file's section, else `OTEL_EXPORTER_OTLP_ENDPOINT`, else off.
pub(super) fn resolve(
    file: Option<&RawOtel>,
    env: &dyn ConfigSource,
) -> Result<Option<OtelConfig>, ConfigError> {
    let (raw, origin) = match file {
        Some(raw) => (raw.clone(), "the config file"),
        None => match env.var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Some(endpoint) => (
                RawOtel {
                    endpoint: Some(endpoint),
                    ..RawOtel::default()
                },
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            None => return Ok(None),
        },
    };
    let invalid = |setting: &'static str, value: String, reason: &str| ConfigError::Invalid {
        setting,
        origin,
        value,
        reason: reason.to_owned(),
    };
    let endpoint = raw.endpoint.unwrap_or_default();
    let parsed = url::Url::parse(&endpoint).map_err(|_| {
        invalid(
            "otel.endpoint",
            endpoint.clone(),
            "an http or https URL such as `http://127.0.0.1:4318`",
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.query().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(invalid(
            "otel.endpoint",
            endpoint,
            "an http or https URL without credentials or query (credentials go in `headers`)",
        ));
    }
    if raw.headers.len() > MAX_HEADERS {
        return Err(invalid(
            "otel.headers",
            format!("{} headers", raw.headers.len()),
            "at most 32 headers",
        ));
    }
    let mut headers = Vec::new();
    for (name, value) in &raw.headers {
        let Some(var) = value.strip_prefix("env:").filter(|v| !v.is_empty()) else {
            return Err(invalid(
                "otel.headers",
                name.clone(),
                "a header's value is `env:VARIABLE`, the environment variable that holds it (never the value itself)",
            ));
        };
        let Some(secret) = env.var(var) else {
            return Err(invalid(
                "otel.headers",
                name.clone(),
                &format!("the environment variable `{var}` is not set"),
            ));
        };
        headers.push((name.to_ascii_lowercase(), secret));
    }
    let service_name = raw
        .service_name
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
    if service_name.is_empty() || service_name.len() > 256 {
        return Err(invalid(
            "otel.service_name",
            service_name,
            "1 to 256 characters",
        ));
    }
    let config = OtelConfig {
        endpoint: endpoint.trim_end_matches('/').to_owned(),
        headers,
        service_name,
        capture_content: raw.capture_content,
    };
    // Header names and values are checked now, not at the first export (a value's text is
    // never in the message).
    config
        .header_map()
        .map_err(|why| invalid("otel.headers", String::new(), &why))?;
    Ok(Some(config))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn section(toml_text: &str) -> RawOtel {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn off_without_section_or_variable() {
        assert_eq!(resolve(None, &env(&[])).unwrap(), None);
    }

    #[test]
    fn the_standard_variable_turns_export_on_with_the_defaults() {
        let c = resolve(
            None,
            &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.traces_url(), "http://c:4318/v1/traces");
        assert_eq!(c.service_name, "warden");
        assert!(!c.capture_content);
    }

    #[test]
    fn header_values_come_from_the_environment_and_are_never_shown() {
        let raw = section(
            r#"endpoint = "http://127.0.0.1:4318"
headers = { "Authorization" = "env:OTEL_AUTH" }
service_name = "gw"
capture_content = true"#,
        );
        let c = resolve(Some(&raw), &env(&[("OTEL_AUTH", "Bearer s3cret")]))
            .unwrap()
            .unwrap();
        assert_eq!(
            c.headers,
            vec![("authorization".to_owned(), "Bearer s3cret".to_owned())]
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        let missing = resolve(Some(&raw), &env(&[])).unwrap_err().to_string();
        assert!(missing.contains("`OTEL_AUTH` is not set"), "{missing}");
        let literal = section(
            r#"endpoint = "http://x:4318"
headers = { "authorization" = "Bearer s3cret" }"#,
        );
        let e = resolve(Some(&literal), &env(&[])).unwrap_err().to_string();
        assert!(e.contains("env:VARIABLE") && !e.contains("s3cret"), "{e}");
        let bad_value = resolve(Some(&raw), &env(&[("OTEL_AUTH", "line\nbreak")]))
            .unwrap_err()
            .to_string();
        assert!(!bad_value.contains("line"), "{bad_value}");
    }

    #[test]
    fn bad_endpoints_and_unknown_keys_are_refused() {
        for endpoint in [
            "",
            "127.0.0.1:4318",
            "ftp://x",
            "http://u:p@x:4318",
            "http://x?a=b",
        ] {
            let raw = RawOtel {
                endpoint: Some(endpoint.to_owned()),
                ..RawOtel::default()
            };
            assert!(resolve(Some(&raw), &env(&[])).is_err(), "{endpoint}");
        }
        assert!(toml::from_str::<RawOtel>("endpoint = \"http://x\"\nsampler = 1").is_err());
    }
}
