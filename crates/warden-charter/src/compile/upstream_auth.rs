//! Compiling a Streamable HTTP server's credentials: `headers`, `credentials` and `oauth`.

use std::collections::BTreeMap;

use super::collect::Item;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::raw::{RawFallback, RawServer};
use crate::upstream_auth::{
    CredentialFallback, HttpAuth, OAuthClient, PerPrincipal, SecretTemplate,
};

/// Headers the MCP transport sets itself (or that HTTP owns); a charter may not set them.
const RESERVED: [&str; 8] = [
    "accept",
    "content-type",
    "content-length",
    "host",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
    "transfer-encoding",
];

/// The server's credentials: empty when it writes none. They apply only to a server with a
/// `url`; a header name that is not an HTTP token or is reserved, a malformed reference, a
/// client secret written in clear, and `oauth` beside an `Authorization` header or
/// per-principal credentials are errors at their position.
pub(super) fn http_auth(item: &Item<'_, RawServer>, diags: &mut Diagnostics) -> HttpAuth {
    let raw = &item.raw;
    if raw.headers.is_empty() && raw.credentials.is_none() && raw.oauth.is_none() {
        return HttpAuth::default();
    }
    if raw.url.is_none() {
        for (key, present) in [
            ("headers", !raw.headers.is_empty()),
            ("credentials", raw.credentials.is_some()),
            ("oauth", raw.oauth.is_some()),
        ] {
            if present {
                diags.push(
                    Diagnostic::error(
                        item.at_path(&[key]),
                        format!("`{key}` applies only to a Streamable HTTP server (`url`)"),
                    )
                    .with_hint("a stdio server gets its credentials through `env`"),
                );
            }
        }
        return HttpAuth::default();
    }
    let headers = header_list(item, &raw.headers, &["headers"], diags);
    let per_principal = raw.credentials.as_ref().map(|c| {
        let mut principals = BTreeMap::new();
        for (principal, creds) in &c.per_principal {
            let path = [
                "credentials",
                "per_principal",
                principal.as_str(),
                "headers",
            ];
            principals.insert(
                principal.clone(),
                header_list(item, &creds.headers, &path, diags),
            );
        }
        if principals.is_empty() {
            diags.push(Diagnostic::error(
                item.at_path(&["credentials", "per_principal"]),
                "`credentials.per_principal` names no principal",
            ));
        }
        PerPrincipal {
            principals,
            fallback: match c.fallback {
                None | Some(RawFallback::Refuse) => CredentialFallback::Refuse,
                Some(RawFallback::Shared) => CredentialFallback::Shared,
            },
        }
    });
    let oauth = raw.oauth.as_ref().and_then(|o| {
        if per_principal.is_some() {
            diags.push(
                Diagnostic::error(
                    item.at_path(&["oauth"]),
                    "a server takes `oauth` or `credentials.per_principal`, not both",
                )
                .with_hint("the client credentials grant gives one token for every principal"),
            );
        }
        if headers.iter().any(|(n, _)| n == "authorization") {
            diags.push(
                Diagnostic::error(
                    item.at_path(&["headers", "Authorization"]),
                    "a server with `oauth` may not set an `Authorization` header",
                )
                .with_hint("the OAuth token is sent as `Authorization: Bearer`"),
            );
        }
        let token_url = match url::Url::parse(&o.token_url) {
            Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && is_loopback(&u)) => Some(u),
            Ok(_) | Err(_) => {
                diags.push(
                    Diagnostic::error(
                        item.at_path(&["oauth", "token_url"]),
                        format!("invalid token url `{}`", o.token_url),
                    )
                    .with_hint("an `https` URL (or `http` on a loopback address): the client secret travels in it"),
                );
                None
            }
        };
        let client_id = template(item, &o.client_id, &["oauth", "client_id"], diags);
        let client_secret = template(item, &o.client_secret, &["oauth", "client_secret"], diags);
        if !o.client_secret.is_empty() && !client_secret.has_reference() {
            diags.push(
                Diagnostic::error(
                    item.at_path(&["oauth", "client_secret"]),
                    "`client_secret` is written in clear in the charter",
                )
                .with_hint("write `${NAME}` (an environment variable) or `${file:/path}`"),
            );
        }
        for scope in &o.scopes {
            if scope.is_empty() || scope.contains(char::is_whitespace) {
                diags.push(Diagnostic::error(
                    item.at_path(&["oauth", "scopes"]),
                    format!("invalid scope `{scope}`"),
                ));
            }
        }
        Some(OAuthClient {
            token_url: token_url?,
            client_id,
            client_secret,
            scopes: o.scopes.clone(),
        })
    });
    HttpAuth {
        headers,
        per_principal,
        oauth,
    }
}

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// A header map: names checked and lowercased, values parsed.
fn header_list(
    item: &Item<'_, RawServer>,
    raw: &BTreeMap<String, String>,
    path: &[&str],
    diags: &mut Diagnostics,
) -> Vec<(String, SecretTemplate)> {
    let mut out: Vec<(String, SecretTemplate)> = Vec::new();
    for (name, value) in raw {
        let mut at: Vec<&str> = path.to_vec();
        at.push(name);
        let lower = name.to_ascii_lowercase();
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            diags.push(Diagnostic::error(
                item.at_path(&at),
                format!("invalid header name `{name}`"),
            ));
            continue;
        }
        if RESERVED.contains(&lower.as_str()) {
            diags.push(
                Diagnostic::error(
                    item.at_path(&at),
                    format!("header `{name}` is set by the gateway and may not be configured"),
                )
                .with_hint("remove it"),
            );
            continue;
        }
        if out.iter().any(|(n, _)| *n == lower) {
            diags.push(Diagnostic::error(
                item.at_path(&at),
                format!("header `{name}` is set twice (header names ignore case)"),
            ));
            continue;
        }
        let t = template(item, value, &at, diags);
        if lower == "authorization" && !t.has_reference() && !value.is_empty() {
            diags.push(
                Diagnostic::warning(
                    item.at_path(&at),
                    "the `Authorization` header is written in clear in the charter",
                )
                .with_hint(
                    "write the credential as `${NAME}` or `${file:/path}`: the charter is recorded",
                ),
            );
        }
        out.push((lower, t));
    }
    out
}

/// One value: its references parsed, and its literal text valid in an HTTP header.
fn template(
    item: &Item<'_, RawServer>,
    value: &str,
    at: &[&str],
    diags: &mut Diagnostics,
) -> SecretTemplate {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        diags.push(Diagnostic::error(
            item.at_path(at),
            "a credential value may not hold control characters (line breaks included)",
        ));
        return SecretTemplate::default();
    }
    match SecretTemplate::parse(value) {
        Ok(t) => t,
        Err(why) => {
            diags.push(Diagnostic::error(item.at_path(at), why));
            SecretTemplate::default()
        }
    }
}
