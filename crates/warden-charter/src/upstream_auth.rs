//! How the gateway authenticates to a Streamable HTTP upstream: headers whose values come
//! from the gateway's environment or from files, per-principal credentials, and the OAuth 2.0
//! client credentials grant. The charter holds only references (`${NAME}`, `${file:/path}`);
//! the values are read at start-up by `warden-mcp` and never written anywhere.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// One piece of a credential value as written in the charter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Text taken as written.
    Literal(String),
    /// `${NAME}`: a variable of the gateway's environment.
    Env(String),
    /// `${file:/path}`: the text of a file (an absolute path), without its final newline.
    File(PathBuf),
}

/// A credential value as written: literal text and references, resolved at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretTemplate {
    /// The pieces, in order.
    pub parts: Vec<TemplatePart>,
}

impl SecretTemplate {
    /// Parses `text`: `${NAME}` (`[A-Za-z_][A-Za-z0-9_]*`) and `${file:/absolute/path}` are
    /// references, everything else is literal. Fails, saying why, on an unterminated or
    /// malformed reference.
    pub fn parse(text: &str) -> Result<SecretTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some((literal, after)) = rest.split_once("${") {
            if !literal.is_empty() {
                parts.push(TemplatePart::Literal(literal.to_owned()));
            }
            let Some((inner, tail)) = after.split_once('}') else {
                return Err("`${` has no closing `}`".to_owned());
            };
            if let Some(path) = inner.strip_prefix("file:") {
                let path = PathBuf::from(path);
                if !path.is_absolute() {
                    return Err(format!("`${{file:{inner}}}` must name an absolute path"));
                }
                parts.push(TemplatePart::File(path));
            } else if is_variable_name(inner) {
                parts.push(TemplatePart::Env(inner.to_owned()));
            } else {
                return Err(format!(
                    "`${{{inner}}}` is neither `${{NAME}}` (a variable) nor `${{file:/path}}`"
                ));
            }
            rest = tail;
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Literal(rest.to_owned()));
        }
        Ok(SecretTemplate { parts })
    }

    /// Whether the value holds at least one reference (else it is written in clear).
    pub fn has_reference(&self) -> bool {
        self.parts
            .iter()
            .any(|p| !matches!(p, TemplatePart::Literal(_)))
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What a principal without credentials of its own gets on a server with per-principal
/// credentials.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CredentialFallback {
    /// Its calls are refused (and recorded): the default, failing closed.
    #[default]
    Refuse,
    /// Its calls carry the server-wide headers only.
    Shared,
}

/// Credentials by on-behalf-of principal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerPrincipal {
    /// Each principal's headers (over the server-wide ones).
    pub principals: BTreeMap<String, Vec<(String, SecretTemplate)>>,
    /// What a principal not listed gets.
    pub fallback: CredentialFallback,
}

/// The OAuth 2.0 client credentials grant of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// The token endpoint (`https`, or `http` on a loopback address).
    pub token_url: url::Url,
    /// The client id.
    pub client_id: SecretTemplate,
    /// The client secret (always a reference).
    pub client_secret: SecretTemplate,
    /// Scopes asked for (none: the server's default).
    pub scopes: Vec<String>,
}

/// How the gateway authenticates to a Streamable HTTP server (empty for other servers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpAuth {
    /// Headers sent with every request (names lowercase).
    pub headers: Vec<(String, SecretTemplate)>,
    /// Credentials by principal, if any.
    pub per_principal: Option<PerPrincipal>,
    /// The client credentials grant, if any (it sets `Authorization`).
    pub oauth: Option<OAuthClient>,
}

impl HttpAuth {
    /// Whether the server gets no credentials at all.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty() && self.per_principal.is_none() && self.oauth.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_references_and_reject_malformed_ones() {
        let t = SecretTemplate::parse("Bearer ${GITHUB_TOKEN}/${file:/run/secrets/team}!").unwrap();
        assert_eq!(
            t.parts,
            vec![
                TemplatePart::Literal("Bearer ".into()),
                TemplatePart::Env("GITHUB_TOKEN".into()),
                TemplatePart::Literal("/".into()),
                TemplatePart::File("/run/secrets/team".into()),
                TemplatePart::Literal("!".into()),
            ]
        );
        assert!(t.has_reference());
        assert!(!SecretTemplate::parse("plain").unwrap().has_reference());
        for bad in [
            "${",
            "Bearer ${TOKEN",
            "${}",
            "${1X}",
            "${file:relative}",
            "${A B}",
        ] {
            assert!(SecretTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
