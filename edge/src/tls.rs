//! TLS for the HTTPS listener: a rustls certificate resolver that notices
//! when the certificate or key changes on disk and serves the new pair to new
//! connections, without a restart.
//!
//! The files are checked at most once a second, on a handshake; a pair that
//! does not load (half-written, key not matching) is ignored and the previous
//! one kept until a valid pair appears.

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

/// A [`ResolvesServerCert`] that reloads the pair when the files change.
pub struct ReloadingResolver {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<(Stamp, Arc<CertifiedKey>)>,
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
    pub fn new(cert_path: PathBuf, key_path: PathBuf) -> Result<Self, TlsFileError> {
        let stamp = Stamp::of(&cert_path, &key_path);
        let key = load_certified_key(&cert_path, &key_path)?;
        Ok(Self {
            cert_path,
            key_path,
            current: RwLock::new((stamp, Arc::new(key))),
            started: Instant::now(),
            next_check_ms: AtomicU64::new(CHECK_INTERVAL_MS),
        })
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
                if let Ok(mut guard) = self.current.write() {
                    *guard = (stamp, Arc::new(key));
                    tracing::info!(cert = %self.cert_path.display(), "TLS certificate reloaded");
                    return true;
                }
                false
            }
            Err(error) => {
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
        self.current.read().ok().map(|guard| guard.1.clone())
    }
}

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.maybe_refresh();
        self.current()
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
