//! TLS for the HTTPS listener: a rustls certificate resolver that notices
//! when the certificate or key changes on disk and serves the new pair to new
//! connections, without a restart.
//!
//! The files are checked at most once a second (on a handshake, and by the
//! background [`CertificateWatch`]); a pair that does not load (half-written,
//! key not matching) is ignored and the previous one kept until a valid pair
//! appears.
//!
//! **A late certificate.** The files may not exist yet when the edge starts
//! (a cert-manager Secret issued after the pod was scheduled, mounted with
//! `optional: true`). The edge then starts anyway: plain HTTP serves, the
//! HTTPS listener refuses handshakes, `/readyz` answers `503` with the reason
//! `waiting for TLS certificate`, and a warning names the files every
//! [`WAITING_LOG_EVERY`] until they load. Files that exist but do not load
//! at start are a configuration error (exit 64).
//!
//! The leaf certificate's expiry is exported as
//! `edge_tls_certificate_expiry_timestamp_seconds`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often, at most, the files are looked at.
const CHECK_INTERVAL_MS: u64 = 1000;
/// How often the wait for missing files is logged.
pub const WAITING_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// What `/readyz` says while the files are missing.
pub const WAITING_REASON: &str = "waiting for TLS certificate";

#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: PathBuf },
    #[error("{path}: unsupported private key: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("the private key in {key} does not match the certificate in {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
}

/// Loads and checks a certificate chain and its key.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsFileError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsFileError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsFileError::NoCertificate {
            path: cert.to_owned(),
        });
    }
    let private: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| TlsFileError::NoKey {
            path: key.to_owned(),
        })?;
    let signing = any_supported_type(&private).map_err(|e| TlsFileError::BadKey {
        path: key.to_owned(),
        reason: e.to_string(),
    })?;
    let certified = CertifiedKey::new(certs, signing);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        // `Unknown` means the key type cannot be compared; accept it.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(_) => Err(TlsFileError::Mismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
        }),
    }
}

/// What identifies one version of the files on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    cert: Option<(SystemTime, u64)>,
    key: Option<(SystemTime, u64)>,
}

impl Stamp {
    fn of(cert: &Path, key: &Path) -> Self {
        let meta = |p: &Path| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        };
        Self {
            cert: meta(cert),
            key: meta(key),
        }
    }
}

/// The leaf certificate's `notAfter`, as Unix seconds.
pub fn not_after(key: &CertifiedKey) -> Option<i64> {
    let leaf = key.cert.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

fn publish_expiry(key: &CertifiedKey) {
    if let Some(t) = not_after(key) {
        crate::metrics::metrics().tls_certificate_expiry.set(t);
    }
}

/// A [`ResolvesServerCert`] that reloads the pair when the files change;
/// holds no pair until the files first load.
pub struct ReloadingResolver {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<(Stamp, Option<Arc<CertifiedKey>>)>,
    started: Instant,
    next_check_ms: AtomicU64,
}

impl fmt::Debug for ReloadingResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingResolver")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl ReloadingResolver {
    /// Loads the pair if the files are there; a missing file is not an error
    /// (see the module docs), a broken one is.
    pub fn new(cert_path: PathBuf, key_path: PathBuf) -> Result<Self, TlsFileError> {
        let stamp = Stamp::of(&cert_path, &key_path);
        let key = if stamp.cert.is_none() && stamp.key.is_none() {
            None
        } else {
            let key = load_certified_key(&cert_path, &key_path)?;
            publish_expiry(&key);
            Some(Arc::new(key))
        };
        Ok(Self {
            cert_path,
            key_path,
            current: RwLock::new((stamp, key)),
            started: Instant::now(),
            next_check_ms: AtomicU64::new(CHECK_INTERVAL_MS),
        })
    }

    /// Whether a pair is loaded (handshakes can succeed).
    pub fn is_loaded(&self) -> bool {
        self.current().is_some()
    }

    pub fn paths(&self) -> (&Path, &Path) {
        (&self.cert_path, &self.key_path)
    }

    /// Reloads the pair if the files changed since the last load. Returns
    /// whether a new pair was installed.
    pub fn refresh(&self) -> bool {
        let stamp = Stamp::of(&self.cert_path, &self.key_path);
        let unchanged = self
            .current
            .read()
            .map(|guard| guard.0 == stamp)
            .unwrap_or(false);
        if unchanged {
            return false;
        }
        match load_certified_key(&self.cert_path, &self.key_path) {
            Ok(key) => {
                publish_expiry(&key);
                if let Ok(mut guard) = self.current.write() {
                    let first = guard.1.is_none();
                    *guard = (stamp, Some(Arc::new(key)));
                    if first {
                        tracing::info!(cert = %self.cert_path.display(), "TLS certificate loaded; HTTPS is serving");
                    } else {
                        tracing::info!(cert = %self.cert_path.display(), "TLS certificate reloaded");
                    }
                    return true;
                }
                false
            }
            Err(error) => {
                if let Ok(mut guard) = self.current.write() {
                    // Not again until the files change once more.
                    guard.0 = stamp;
                }
                tracing::warn!(%error, "TLS files changed but do not load; keeping the previous certificate");
                false
            }
        }
    }

    fn maybe_refresh(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let due = self.next_check_ms.load(Ordering::Relaxed);
        if now >= due
            && self
                .next_check_ms
                .compare_exchange(
                    due,
                    now + CHECK_INTERVAL_MS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            self.refresh();
        }
    }

    fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().and_then(|guard| guard.1.clone())
    }
}

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.maybe_refresh();
        self.current()
    }
}

/// Checks the files every second: loads a late or rotated pair, and keeps
/// `/readyz` failing (with [`WAITING_REASON`]) while none is loaded.
#[derive(Debug)]
pub struct CertificateWatch {
    pub resolver: Arc<ReloadingResolver>,
    pub readiness: Arc<service_common::admin::Readiness>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for CertificateWatch {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let mut last_warning: Option<Instant> = None;
        loop {
            self.resolver.refresh();
            if self.resolver.is_loaded() {
                self.readiness.set_waiting(None);
            } else {
                self.readiness.set_waiting(Some(WAITING_REASON));
                if last_warning.is_none_or(|t| t.elapsed() >= WAITING_LOG_EVERY) {
                    let (cert, key) = self.resolver.paths();
                    tracing::warn!(
                        cert = %cert.display(),
                        key = %key.display(),
                        "waiting for the TLS certificate files; /readyz answers 503 and HTTPS refuses handshakes until they load"
                    );
                    last_warning = Some(Instant::now());
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(CHECK_INTERVAL_MS)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let cert_path = dir.join("tls.crt");
        let key_path = dir.join("tls.key");
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
        (cert_path, key_path, cert.cert.der().to_vec())
    }

    fn tempdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("edge-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn loads_reloads_and_keeps_old_pair_on_bad_files() {
        let dir = tempdir("reload");
        let (cert, key, der1) = write_pair(&dir, "one.test");
        let resolver = ReloadingResolver::new(cert.clone(), key.clone()).unwrap();
        assert_eq!(resolver.current().unwrap().cert[0].as_ref(), &der1[..]);
        assert!(!resolver.refresh(), "unchanged files are not reloaded");

        std::thread::sleep(std::time::Duration::from_millis(20));
        let (_, _, der2) = write_pair(&dir, "two.test");
        assert!(resolver.refresh());
        assert_eq!(resolver.current().unwrap().cert[0].as_ref(), &der2[..]);

        std::fs::write(&key, "garbage").unwrap();
        assert!(!resolver.refresh());
        assert_eq!(resolver.current().unwrap().cert[0].as_ref(), &der2[..]);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn missing_files_are_waited_for_and_picked_up() {
        let dir = tempdir("late");
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        let resolver = ReloadingResolver::new(cert.clone(), key.clone()).unwrap();
        assert!(!resolver.is_loaded());
        assert!(!resolver.refresh());
        let (_, _, der) = write_pair(&dir, "late.test");
        assert!(resolver.refresh());
        assert_eq!(resolver.current().unwrap().cert[0].as_ref(), &der[..]);
        let expiry = not_after(&resolver.current().unwrap()).unwrap();
        assert!(expiry > 1_700_000_000, "{expiry}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn clear_errors() {
        let dir = tempdir("errors");
        let missing = load_certified_key(&dir.join("nope.crt"), &dir.join("nope.key"));
        assert!(matches!(missing, Err(TlsFileError::Read { .. })));
        let (cert, key, _) = write_pair(&dir, "a.test");
        let other = rcgen::generate_simple_self_signed(vec!["b.test".to_owned()]).unwrap();
        std::fs::write(&key, other.key_pair.serialize_pem()).unwrap();
        assert!(matches!(
            load_certified_key(&cert, &key),
            Err(TlsFileError::Mismatch { .. })
        ));
        std::fs::write(&cert, "not pem").unwrap();
        assert!(matches!(
            load_certified_key(&cert, &key),
            Err(TlsFileError::NoCertificate { .. })
        ));
        std::fs::remove_dir_all(dir).ok();
    }
}
