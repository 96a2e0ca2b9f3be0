//! TLS for RTMPS (rustls with the `ring` provider): the server certificate, loaded from PEM
//! files and swapped on reload without touching open connections, and the client
//! configuration relays use (system roots from webpki-roots, or a CA file).
//!
//! - [`ServerTls`]: the listener's certificate resolver and acceptor.
//! - [`client_config`]: verification settings of the relays' `rtmps://` connections.
//! - [`transport`]: a connection's byte stream, plain TCP or TLS over it.

pub mod transport;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustls::crypto::ring as provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

/// What is wrong with a certificate, a key or a CA file, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: cannot read: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("{}: no PEM certificate in it", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: not an X.509 certificate: {reason}", path.display())]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{}: the certificate expired at unix time {not_after}", path.display())]
    Expired { path: PathBuf, not_after: i64 },
    #[error("{}: the certificate is not valid before unix time {not_before}", path.display())]
    NotYetValid { path: PathBuf, not_before: i64 },
    #[error("{}: not a usable private key: {reason}", path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error("{} does not belong to the certificate in {}: {reason}", key.display(), cert.display())]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("TLS settings: {0}")]
    Config(String),
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// The certificates of a PEM file, in order (the leaf first in a chain).
fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    // Read first, so that a missing file says so rather than "no certificate".
    let pem = std::fs::read(path).map_err(|e| read_err(path, e))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The leaf certificate must be valid now: an expired one would fail every client anyway,
/// and the operator should hear it at start-up (or reload), not from users.
fn check_validity(path: &Path, leaf: &CertificateDer<'_>) -> Result<(), TlsError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf).map_err(|e| TlsError::BadCertificate {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let validity = cert.validity();
    let (not_before, not_after) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    if now > not_after {
        return Err(TlsError::Expired {
            path: path.to_owned(),
            not_after,
        });
    }
    if now < not_before {
        return Err(TlsError::NotYetValid {
            path: path.to_owned(),
            not_before,
        });
    }
    Ok(())
}

/// Load a PEM chain and its private key (PKCS#8, PKCS#1 or SEC1) and check that they belong
/// together and that the leaf is valid now.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = load_certs(cert)?;
    check_validity(cert, &chain[0])?;
    let pem = std::fs::read(key).map_err(|e| read_err(key, e))?;
    let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::BadKey {
        path: key.to_owned(),
        reason: e.to_string(),
    })?;
    let signing = provider::sign::any_supported_type(&der).map_err(|e| TlsError::BadKey {
        path: key.to_owned(),
        reason: e.to_string(),
    })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| TlsError::Mismatch {
        cert: cert.to_owned(),
        key: key.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(Arc::new(certified))
}

/// The modification times of the certificate and key files (to notice a renewal).
fn mtimes(cert: &Path, key: &Path) -> Option<(SystemTime, SystemTime)> {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(cert)?, m(key)?))
}

/// The RTMPS listener's certificate: every new TLS handshake takes the current one, so a
/// reload serves new connections and leaves open ones alone.
#[derive(Debug)]
pub struct ServerTls {
    current: ArcSwap<CertifiedKey>,
    files: Mutex<Files>,
}

#[derive(Debug)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    mtimes: Option<(SystemTime, SystemTime)>,
}

#[derive(Debug)]
struct Resolver(Arc<ServerTls>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load_full())
    }
}

impl ServerTls {
    /// Load the certificate and key, or say which file is wrong.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerTls>, TlsError> {
        let certified = load_certified_key(cert, key)?;
        Ok(Arc::new(ServerTls {
            current: ArcSwap::new(certified),
            files: Mutex::new(Files {
                cert: cert.to_owned(),
                key: key.to_owned(),
                mtimes: mtimes(cert, key),
            }),
        }))
    }

    /// An acceptor whose handshakes use the current certificate. TLS 1.2 and 1.3; ALPN is
    /// not used by RTMPS clients (ffmpeg, OBS, librtmp send none).
    pub fn acceptor(self: &Arc<Self>) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError::Config(e.to_string()))?
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(Resolver(self.clone())));
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    /// Load the certificate again, from `cert`/`key` (the paths may have changed). A bad file
    /// is refused and the current certificate kept.
    pub fn reload(&self, cert: &Path, key: &Path) -> Result<(), TlsError> {
        let certified = load_certified_key(cert, key)?;
        self.current.store(certified);
        if let Ok(mut files) = self.files.lock() {
            *files = Files {
                cert: cert.to_owned(),
                key: key.to_owned(),
                mtimes: mtimes(cert, key),
            };
        }
        Ok(())
    }

    /// Reload if either file changed since it was last loaded (a renewal by certbot or a
    /// mounted secret updated). `None` when nothing changed.
    pub fn reload_if_changed(&self) -> Option<Result<(), TlsError>> {
        let (cert, key, seen) = {
            let files = self.files.lock().ok()?;
            (files.cert.clone(), files.key.clone(), files.mtimes)
        };
        let now = mtimes(&cert, &key);
        if now.is_none() || now == seen {
            return None;
        }
        let result = self.reload(&cert, &key);
        if result.is_err() {
            // Refused: remember these times so that the same bad files are reported once.
            if let Ok(mut files) = self.files.lock() {
                files.mtimes = now;
            }
        }
        Some(result)
    }

    /// The files in use.
    pub fn files(&self) -> (PathBuf, PathBuf) {
        match self.files.lock() {
            Ok(f) => (f.cert.clone(), f.key.clone()),
            Err(_) => (PathBuf::new(), PathBuf::new()),
        }
    }
}

/// The TLS client settings of relays: the system roots (Mozilla's, from webpki-roots) or,
/// with `ca_file`, the certificates in that file only (a private CA).
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in load_certs(path)? {
                roots.add(cert).map_err(|e| TlsError::BadCertificate {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests;
