//! The credentials of Streamable HTTP upstreams, resolved at start-up.
//!
//! The charter names them (`headers`, `credentials.per_principal`, `oauth`) with references:
//! `${NAME}` is read from the gateway's environment and `${file:/path}` from a file (at most
//! [`MAX_CREDENTIAL_FILE_BYTES`], its final line break dropped), once, before anything is
//! spawned or connected. A reference that cannot be resolved stops start-up, naming the
//! server and the variable or file, never a value. The values are secrets: [`HttpCredentials`]
//! shows header names only, and [`HttpCredentials::secret_values`] hands them to the gateway's
//! redaction.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;

use http::{HeaderMap, HeaderName, HeaderValue};
use warden_charter::{CredentialFallback, HttpAuth, SecretTemplate, TemplatePart};

/// The largest credential file read, in bytes.
pub const MAX_CREDENTIAL_FILE_BYTES: u64 = 64 * 1024;

/// Why a server's credentials could not be resolved. Never holds a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// A `${NAME}` names a variable that is not set (or is empty).
    #[error(
        "server `{server}` needs the environment variable `{variable}` for {what}, which is not set or is empty; set it in the gateway's environment"
    )]
    UnsetVariable {
        /// The server.
        server: String,
        /// The variable.
        variable: String,
        /// What it is for (`header \`authorization\``, …).
        what: String,
    },
    /// A `${file:/path}` could not be read.
    #[error("server `{server}` needs the file `{path}` for {what}, which {reason}")]
    File {
        /// The server.
        server: String,
        /// The file.
        path: PathBuf,
        /// What it is for.
        what: String,
        /// Why it could not be read.
        reason: String,
    },
    /// The resolved value cannot be sent in an HTTP header (a line break, a control
    /// character, or not UTF-8).
    #[error(
        "server `{server}`: {what} is not a valid HTTP header value once resolved (it holds a line break, a control character or bytes that are not UTF-8)"
    )]
    InvalidValue {
        /// The server.
        server: String,
        /// Which value.
        what: String,
    },
}

/// The client credentials grant of a server, resolved.
#[derive(Clone)]
pub(crate) struct OAuthSettings {
    pub(crate) token_url: url::Url,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) scopes: Vec<String>,
}

/// Which headers a call on behalf of a principal carries.
#[derive(Debug)]
pub(crate) enum Choice<'a> {
    /// The server-wide headers (and the OAuth token, if any).
    Shared,
    /// The principal's own headers, over the server-wide ones.
    Principal(&'a HeaderMap),
    /// None: the principal has no credentials and the server does not fall back.
    Refused,
}

/// A Streamable HTTP server's credentials, resolved. Its `Debug` shows header names only.
#[derive(Clone, Default)]
pub struct HttpCredentials {
    pub(crate) shared: HeaderMap,
    per_principal: Option<(HashMap<String, HeaderMap>, CredentialFallback)>,
    pub(crate) oauth: Option<OAuthSettings>,
    secrets: Vec<String>,
}

impl std::fmt::Debug for HttpCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCredentials")
            .field("headers", &self.shared.keys().collect::<Vec<_>>())
            .field(
                "principals",
                &self
                    .per_principal
                    .as_ref()
                    .map(|(p, fallback)| (p.keys().collect::<Vec<_>>(), fallback)),
            )
            .field("oauth", &self.oauth.as_ref().map(|o| o.token_url.as_str()))
            .finish()
    }
}

impl HttpCredentials {
    /// Resolves `auth` of the server `server`, reading variables through `lookup`.
    pub fn resolve(
        server: &str,
        auth: &HttpAuth,
        lookup: &impl Fn(&str) -> Option<OsString>,
    ) -> Result<HttpCredentials, CredentialError> {
        let mut r = Resolver {
            server,
            lookup,
            secrets: Vec::new(),
        };
        let shared = r.headers(&auth.headers, None)?;
        let per_principal = match &auth.per_principal {
            None => None,
            Some(p) => {
                let mut principals = HashMap::new();
                for (principal, headers) in &p.principals {
                    let mut merged = shared.clone();
                    for (name, value) in r.headers(headers, Some(principal))? {
                        if let Some(name) = name {
                            merged.insert(name, value);
                        }
                    }
                    principals.insert(principal.clone(), merged);
                }
                Some((principals, p.fallback))
            }
        };
        let oauth = match &auth.oauth {
            None => None,
            Some(o) => Some(OAuthSettings {
                token_url: o.token_url.clone(),
                client_id: r.value(&o.client_id, "`oauth.client_id`")?,
                client_secret: r.value(&o.client_secret, "`oauth.client_secret`")?,
                scopes: o.scopes.clone(),
            }),
        };
        Ok(HttpCredentials {
            shared,
            per_principal,
            oauth,
            secrets: r.secrets,
        })
    }

    /// Every resolved value (each reference's and each whole header value), for redaction.
    pub fn secret_values(&self) -> &[String] {
        &self.secrets
    }

    /// Which headers a call on behalf of `principal` carries.
    pub(crate) fn choice(&self, principal: &str) -> Choice<'_> {
        match &self.per_principal {
            None => Choice::Shared,
            Some((principals, fallback)) => match (principals.get(principal), fallback) {
                (Some(h), _) => Choice::Principal(h),
                (None, CredentialFallback::Shared) => Choice::Shared,
                (None, CredentialFallback::Refuse) => Choice::Refused,
            },
        }
    }
}

struct Resolver<'a, L> {
    server: &'a str,
    lookup: &'a L,
    secrets: Vec<String>,
}

impl<L: Fn(&str) -> Option<OsString>> Resolver<'_, L> {
    fn headers(
        &mut self,
        headers: &[(String, SecretTemplate)],
        principal: Option<&str>,
    ) -> Result<HeaderMap, CredentialError> {
        let mut map = HeaderMap::new();
        for (name, template) in headers {
            let what = match principal {
                None => format!("header `{name}`"),
                Some(p) => format!("header `{name}` of principal `{p}`"),
            };
            let value = self.value(template, &what)?;
            let invalid = || CredentialError::InvalidValue {
                server: self.server.to_owned(),
                what: what.clone(),
            };
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
            let mut value = HeaderValue::from_str(&value).map_err(|_| invalid())?;
            // Kept out of reqwest's and hyper's debug output.
            value.set_sensitive(true);
            map.insert(name, value);
        }
        Ok(map)
    }

    /// The value of `template`; each resolved reference, and the whole value when it holds
    /// one, is kept as a secret.
    fn value(&mut self, template: &SecretTemplate, what: &str) -> Result<String, CredentialError> {
        let mut out = String::new();
        for part in &template.parts {
            match part {
                TemplatePart::Literal(text) => out.push_str(text),
                TemplatePart::Env(variable) => {
                    let unset = || CredentialError::UnsetVariable {
                        server: self.server.to_owned(),
                        variable: variable.clone(),
                        what: what.to_owned(),
                    };
                    let value = (self.lookup)(variable).ok_or_else(unset)?;
                    let value = value
                        .into_string()
                        .map_err(|_| CredentialError::InvalidValue {
                            server: self.server.to_owned(),
                            what: what.to_owned(),
                        })?;
                    if value.is_empty() {
                        return Err(unset());
                    }
                    out.push_str(&value);
                    self.secrets.push(value);
                }
                TemplatePart::File(path) => {
                    let text = warden_core::small_file::read_text(path, MAX_CREDENTIAL_FILE_BYTES)
                        .map_err(|e| CredentialError::File {
                            server: self.server.to_owned(),
                            path: path.clone(),
                            what: what.to_owned(),
                            reason: e.to_string(),
                        })?;
                    let value = text.trim_end_matches(['\n', '\r']).to_owned();
                    if value.is_empty() {
                        return Err(CredentialError::File {
                            server: self.server.to_owned(),
                            path: path.clone(),
                            what: what.to_owned(),
                            reason: "is empty".to_owned(),
                        });
                    }
                    out.push_str(&value);
                    self.secrets.push(value);
                }
            }
        }
        if template.has_reference() {
            self.secrets.push(out.clone());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
