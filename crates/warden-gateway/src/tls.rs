//! TLS on the listeners: a plane's certificate and key, read from PEM files at start-up
//! (before anything is bound) and again on every reload (SIGHUP).
//!
//! What it guarantees:
//! - A plane configured with a certificate serves only TLS (TLS 1.2 and 1.3, ALPN
//!   `http/1.1`); a plain-HTTP request to it fails the handshake and is closed.
//! - A reload that fails (a file missing, unreadable, not PEM, a key that does not match the
//!   certificate) keeps the certificate in use and logs why; it never leaves a plane without
//!   one. Connections already open keep the certificate they were accepted with.
//! - Error messages name the file and what is wrong with it, never the key's content.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;

/// The largest certificate or key file read, in bytes (a chain is a few kilobytes).
pub const MAX_PEM_FILE_BYTES: u64 = 1024 * 1024;

/// Why a plane's certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: warden_core::small_file::SmallFileError,
    },
    /// The certificate file holds no PEM certificate.
    #[error("`{path}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The certificate file is not valid PEM.
    #[error("`{path}` is not a valid PEM certificate chain")]
    BadCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no usable private key.
    #[error(
        "`{path}` holds no PEM private key (PKCS#8 `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)"
    )]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the pair (a key that does not match the certificate, an unsupported
    /// key type).
    #[error("the certificate `{cert}` and the key `{key}` cannot be used: {reason}")]
    Unusable {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason (it never quotes the key).
        reason: String,
    },
}

/// Reads `files` and builds the server configuration a plane serves TLS with.
pub fn load(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |path: &Path| {
        warden_core::small_file::read_text(path, MAX_PEM_FILE_BYTES).map_err(|source| {
            TlsError::Read {
                path: path.to_path_buf(),
                source,
            }
        })
    };
    let cert_text = read(&files.cert)?;
    let chain = CertificateDer::pem_slice_iter(cert_text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::BadCertificate {
            path: files.cert.clone(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key_text = read(&files.key)?;
    // The parser's error is dropped: it could quote a line of the key file.
    let key = PrivateKeyDer::from_pem_slice(key_text.as_bytes()).map_err(|_| TlsError::NoKey {
        path: files.key.clone(),
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let unusable = |e: rustls::Error| TlsError::Unusable {
        cert: files.cert.clone(),
        key: files.key.clone(),
        reason: e.to_string(),
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(unusable)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(unusable)?;
    // The listeners speak HTTP/1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A plane's TLS configuration in force, swapped whole by [`PlaneTls::reload`]; each new
/// connection takes the one in force when it is accepted.
#[derive(Debug)]
pub struct PlaneTls {
    /// `agent` or `operator` (for logs).
    plane: &'static str,
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl PlaneTls {
    /// Loads `files` for `plane`.
    pub fn load(plane: &'static str, files: &TlsFiles) -> Result<PlaneTls, TlsError> {
        Ok(PlaneTls {
            plane,
            current: RwLock::new(load(files)?),
            files: files.clone(),
        })
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the files again and puts the new configuration in force; on failure the old one
    /// stays, and the error is logged and returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        match load(&self.files) {
            Ok(config) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
                tracing::info!(
                    plane = self.plane,
                    cert = %self.files.cert.display(),
                    "TLS certificate reloaded."
                );
                Ok(())
            }
            Err(e) => {
                tracing::error!(
                    plane = self.plane,
                    error = %e,
                    "TLS certificate reload failed; the previous certificate stays in use."
                );
                Err(e)
            }
        }
    }
}

/// The TLS of both planes (either may be plain HTTP).
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// The agent plane's, if it serves TLS.
    pub agent: Option<Arc<PlaneTls>>,
    /// The operator plane's, if it serves TLS.
    pub operator: Option<Arc<PlaneTls>>,
}

impl Tls {
    /// Loads the certificates of every plane configured with TLS.
    pub fn load(deployment: &crate::config::Deployment) -> Result<Tls, TlsError> {
        let plane = |name, files: &Option<TlsFiles>| {
            files
                .as_ref()
                .map(|f| PlaneTls::load(name, f).map(Arc::new))
                .transpose()
        };
        Ok(Tls {
            agent: plane("agent", &deployment.agent.tls)?,
            operator: plane("operator", &deployment.operator.tls)?,
        })
    }

    /// Whether any plane serves TLS.
    pub fn any(&self) -> bool {
        self.agent.is_some() || self.operator.is_some()
    }

    /// Reloads every plane's certificate; the first error, if any (each plane is tried, and
    /// a plane whose reload failed keeps its certificate).
    pub fn reload(&self) -> Result<(), TlsError> {
        let agent = self.agent.as_ref().map_or(Ok(()), |t| t.reload());
        let operator = self.operator.as_ref().map_or(Ok(()), |t| t.reload());
        agent.and(operator)
    }
}

/// Whether `addr` can be reached from beyond this machine without TLS: it is not a loopback
/// address and `has_tls` is false (a wildcard address such as `0.0.0.0` counts as reachable).
pub fn exposed_without_tls(addr: std::net::SocketAddr, has_tls: bool) -> bool {
    !has_tls && !addr.ip().is_loopback()
}

/// Logs a loud warning when `plane` listens beyond loopback without TLS: its bearer tokens
/// (and, on the agent plane, every tool call and model call) would cross the network in clear.
pub(crate) fn warn_if_exposed(plane: &'static str, addr: std::net::SocketAddr, has_tls: bool) {
    if exposed_without_tls(addr, has_tls) {
        tracing::warn!(
            plane,
            address = %addr,
            "The {plane} plane listens beyond loopback WITHOUT TLS: its tokens and traffic cross the network in clear. Set `{plane}_tls_cert` and `{plane}_tls_key`, or listen on 127.0.0.1 behind a TLS proxy."
        );
    }
}

#[cfg(test)]
mod tests;
