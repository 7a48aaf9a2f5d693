//! Configuration: every setting is an environment variable and a flag of the
//! same name, parsed and validated in one place before any port is bound.
//!
//! [`Config::try_from_args`] reports every bad value at once; the binary
//! exits with status 64 (`EX_USAGE`) when it fails.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use service_common::duration::parse_seconds;
use service_common::telemetry::{self, LogFormat};

/// Exit status for a bad configuration (`EX_USAGE` from sysexits.h).
pub const EXIT_CONFIG: i32 = 64;

/// The flags as clap sees them: strings, so that every value can be checked
/// and every error reported, rather than stopping at the first.
#[derive(Debug, Parser)]
#[command(
    name = "edge",
    version,
    about = "The public main API: serves /s3-buckets, /parameters and /parameter/{name} \
             (also under /api/) from the auxiliary service, caches parameter lookups, \
             terminates TLS and drains gracefully on SIGTERM.",
    after_help = "Every option can also be set with the environment variable shown. \
                  Exit status 64 means the configuration was rejected."
)]
struct Args {
    /// Plain HTTP listener (HTTP/1.0 and HTTP/1.1).
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8000")]
    listen_addr: String,

    /// HTTPS listener (HTTP/1.1 and HTTP/2 by ALPN, TLS 1.2 and 1.3). Off when unset; needs
    /// TLS_CERT_FILE and TLS_KEY_FILE.
    #[arg(long, env = "TLS_LISTEN_ADDR")]
    tls_listen_addr: Option<String>,

    /// PEM certificate chain for the HTTPS listener; reloaded when it changes on disk.
    #[arg(long, env = "TLS_CERT_FILE")]
    tls_cert_file: Option<PathBuf>,

    /// PEM private key for the HTTPS listener; reloaded when it changes on disk.
    #[arg(long, env = "TLS_KEY_FILE")]
    tls_key_file: Option<PathBuf>,

    /// Admin listener: /metrics, /healthz, /readyz.
    #[arg(long, env = "ADMIN_ADDR", default_value = "0.0.0.0:9000")]
    admin_addr: String,

    /// Base URL of the auxiliary service (http only). The host name is re-resolved
    /// periodically and requests are spread over every address it resolves to.
    #[arg(
        long,
        env = "AUXILIARY_SERVICE_URL",
        default_value = "http://127.0.0.1:8001"
    )]
    auxiliary_service_url: String,

    /// Version echoed as "main_api_version" in every body.
    #[arg(long, env = "SERVICE_VERSION", default_value = "0.0.0-dev")]
    service_version: String,

    /// Freshness of cached /parameters and /parameter/{name} answers, in seconds.
    #[arg(long, env = "CACHE_TTL_SECONDS", default_value = "30")]
    cache_ttl_seconds: String,

    /// How long after expiry a cached answer may still be served while the auxiliary
    /// service fails or times out, in seconds.
    #[arg(long, env = "CACHE_STALE_IF_ERROR_SECONDS", default_value = "300")]
    cache_stale_if_error_seconds: String,

    /// Upper bound on cached answers.
    #[arg(long, env = "CACHE_MAX_ENTRIES", default_value = "10000")]
    cache_max_entries: String,

    /// Time to establish a connection to the auxiliary service, in seconds.
    #[arg(long, env = "UPSTREAM_CONNECT_TIMEOUT_SECONDS", default_value = "1")]
    upstream_connect_timeout_seconds: String,

    /// Time for the auxiliary service to answer a request completely (connection
    /// included), in seconds; 504 when exceeded.
    #[arg(long, env = "UPSTREAM_TIMEOUT_SECONDS", default_value = "5")]
    upstream_timeout_seconds: String,

    /// Idle time after which a client's keep-alive connection (HTTP/1.1 or HTTP/2) is
    /// closed, in seconds.
    #[arg(long, env = "KEEPALIVE_TIMEOUT_SECONDS", default_value = "60")]
    keepalive_timeout_seconds: String,

    /// After SIGTERM, how long /readyz answers 503 while traffic is still served, in
    /// seconds.
    #[arg(long, env = "SHUTDOWN_DRAIN_SECONDS", default_value = "5")]
    shutdown_drain_seconds: String,

    /// After the drain, the bound on closing listeners, finishing in-flight requests and
    /// exiting, in seconds.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECONDS", default_value = "15")]
    shutdown_timeout_seconds: String,

    /// Log format: json or text.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    log_format: String,

    /// Log filter, e.g. info or edge=debug,info.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    rust_log: String,

    /// Validate the configuration (including the TLS files) and exit 0.
    #[arg(long)]
    check_config: bool,
}

/// Where the auxiliary service is: a host name or IP literal and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTarget {
    pub host: String,
    pub port: u16,
}

impl UpstreamTarget {
    /// Parses `http://host[:port][/]`. Only plain HTTP: the worker is reached
    /// inside the cluster.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("{url:?} must start with http://"));
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("{url:?} has no host"))?;
        if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
            return Err(format!("{url:?} must not have a path or query"));
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(Self {
            host: host.to_owned(),
            port: uri.port_u16().unwrap_or(80),
        })
    }

    /// The `Host` header value sent to the worker.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// TLS listener settings.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub listen_addr: SocketAddr,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub tls: Option<TlsConfig>,
    pub admin_addr: SocketAddr,
    pub upstream: UpstreamTarget,
    pub service_version: String,
    pub cache_ttl: Duration,
    pub cache_stale_if_error: Duration,
    pub cache_max_entries: u64,
    pub upstream_connect_timeout: Duration,
    pub upstream_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub shutdown_drain: Duration,
    pub shutdown_timeout: Duration,
    pub log_format: LogFormat,
    pub rust_log: String,
    /// `--check-config`: validate and exit.
    pub check_only: bool,
}

/// Every problem found in the configuration, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// What [`Config::try_from_args`] can return instead of a config.
#[derive(Debug)]
pub enum ConfigOutcome {
    /// `--help` or `--version`: print it and exit 0.
    Info(clap::Error),
    /// Bad values (or unknown flags): print and exit [`EXIT_CONFIG`].
    Invalid(ConfigErrors),
}

/// Collects errors while fields are parsed.
struct Collector(Vec<String>);

impl Collector {
    fn check<T>(&mut self, name: &str, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(format!("{name}: {e}"));
                None
            }
        }
    }
}

fn parse_addr(raw: &str) -> Result<SocketAddr, String> {
    raw.parse()
        .map_err(|_| format!("{raw:?} is not an IP:port socket address"))
}

fn parse_count(raw: &str, min: u64, max: u64) -> Result<u64, String> {
    let v: u64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?} is not a whole number"))?;
    if !(min..=max).contains(&v) {
        return Err(format!("{raw:?} is outside {min}..={max}"));
    }
    Ok(v)
}

impl Config {
    /// Parses flags and environment (flags win) and validates every value.
    pub fn try_from_args<I, T>(args: I) -> Result<Self, ConfigOutcome>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args = match Args::try_parse_from(args) {
            Ok(a) => a,
            Err(e) => {
                use clap::error::ErrorKind;
                return Err(match e.kind() {
                    ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ConfigOutcome::Info(e),
                    _ => ConfigOutcome::Invalid(ConfigErrors(vec![e.to_string()])),
                });
            }
        };
        Self::validate(args).map_err(ConfigOutcome::Invalid)
    }

    fn validate(a: Args) -> Result<Self, ConfigErrors> {
        let mut c = Collector(Vec::new());
        let listen_addr = c.check("LISTEN_ADDR", parse_addr(&a.listen_addr));
        let admin_addr = c.check("ADMIN_ADDR", parse_addr(&a.admin_addr));
        let tls_addr = a
            .tls_listen_addr
            .as_deref()
            .filter(|s| !s.is_empty())
            .and_then(|s| c.check("TLS_LISTEN_ADDR", parse_addr(s)));
        let tls_requested = a.tls_listen_addr.as_deref().is_some_and(|s| !s.is_empty());
        let cert = a.tls_cert_file.filter(|p| !p.as_os_str().is_empty());
        let key = a.tls_key_file.filter(|p| !p.as_os_str().is_empty());
        let mut tls = None;
        if tls_requested {
            match (cert, key) {
                (Some(cert_file), Some(key_file)) => {
                    let loaded = c.check(
                        "TLS_CERT_FILE/TLS_KEY_FILE",
                        crate::tls::load_certified_key(&cert_file, &key_file)
                            .map_err(|e| e.to_string()),
                    );
                    if let (Some(listen_addr), Some(_)) = (tls_addr, loaded) {
                        tls = Some(TlsConfig {
                            listen_addr,
                            cert_file,
                            key_file,
                        });
                    }
                }
                _ => c.0.push(
                    "TLS_CERT_FILE and TLS_KEY_FILE: both are required when TLS_LISTEN_ADDR is set"
                        .to_owned(),
                ),
            }
        } else if cert.is_some() || key.is_some() {
            c.0.push(
                "TLS_CERT_FILE/TLS_KEY_FILE: set without TLS_LISTEN_ADDR, so they would be ignored"
                    .to_owned(),
            );
        }
        let upstream = c.check(
            "AUXILIARY_SERVICE_URL",
            UpstreamTarget::parse(&a.auxiliary_service_url),
        );
        let service_version = c.check("SERVICE_VERSION", check_version(a.service_version));
        let cache_max_entries = c.check(
            "CACHE_MAX_ENTRIES",
            parse_count(&a.cache_max_entries, 1, 10_000_000),
        );
        let log_format = c.check("LOG_FORMAT", a.log_format.parse::<LogFormat>());
        let rust_log = c.check(
            "RUST_LOG",
            telemetry::validate_filter(&a.rust_log).map(|()| a.rust_log),
        );
        let mut secs = |name: &str, raw: &str, min: f64, max: f64| {
            c.check(name, parse_seconds(raw, min, max))
                .unwrap_or_default()
        };
        let cache_ttl = secs("CACHE_TTL_SECONDS", &a.cache_ttl_seconds, 0.0, 86_400.0);
        let cache_stale_if_error = secs(
            "CACHE_STALE_IF_ERROR_SECONDS",
            &a.cache_stale_if_error_seconds,
            0.0,
            86_400.0,
        );
        let upstream_connect_timeout = secs(
            "UPSTREAM_CONNECT_TIMEOUT_SECONDS",
            &a.upstream_connect_timeout_seconds,
            0.01,
            60.0,
        );
        let upstream_timeout = secs(
            "UPSTREAM_TIMEOUT_SECONDS",
            &a.upstream_timeout_seconds,
            0.01,
            60.0,
        );
        let keepalive_timeout = secs(
            "KEEPALIVE_TIMEOUT_SECONDS",
            &a.keepalive_timeout_seconds,
            1.0,
            3600.0,
        );
        let shutdown_drain = secs(
            "SHUTDOWN_DRAIN_SECONDS",
            &a.shutdown_drain_seconds,
            0.0,
            300.0,
        );
        let shutdown_timeout = secs(
            "SHUTDOWN_TIMEOUT_SECONDS",
            &a.shutdown_timeout_seconds,
            2.0,
            300.0,
        );
        if let (Some(addr), Some(admin)) = (listen_addr, admin_addr)
            && addr == admin
        {
            c.0.push("ADMIN_ADDR: must differ from LISTEN_ADDR".to_owned());
        }
        if let (Some(t), Some(addr), Some(admin)) = (&tls, listen_addr, admin_addr)
            && (t.listen_addr == addr || t.listen_addr == admin)
        {
            c.0.push("TLS_LISTEN_ADDR: must differ from LISTEN_ADDR and ADMIN_ADDR".to_owned());
        }
        if upstream_connect_timeout > upstream_timeout && !upstream_timeout.is_zero() {
            c.0.push(
                "UPSTREAM_CONNECT_TIMEOUT_SECONDS: must not exceed UPSTREAM_TIMEOUT_SECONDS"
                    .to_owned(),
            );
        }
        let (
            Some(listen_addr),
            Some(admin_addr),
            Some(upstream),
            Some(service_version),
            Some(cache_max_entries),
            Some(log_format),
            Some(rust_log),
        ) = (
            listen_addr,
            admin_addr,
            upstream,
            service_version,
            cache_max_entries,
            log_format,
            rust_log,
        )
        else {
            return Err(ConfigErrors(c.0));
        };
        if !c.0.is_empty() {
            return Err(ConfigErrors(c.0));
        }
        Ok(Config {
            listen_addr,
            tls,
            admin_addr,
            upstream,
            service_version,
            cache_ttl,
            cache_stale_if_error,
            cache_max_entries,
            upstream_connect_timeout,
            upstream_timeout,
            keepalive_timeout,
            shutdown_drain,
            shutdown_timeout,
            log_format,
            rust_log,
            check_only: a.check_config,
        })
    }
}

fn check_version(v: String) -> Result<String, String> {
    if v.is_empty() || v.len() > 128 || v.chars().any(char::is_control) {
        Err(format!("{v:?} must be 1 to 128 printable characters"))
    } else {
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigOutcome> {
        let mut all = vec!["edge"];
        all.extend_from_slice(args);
        Config::try_from_args(all)
    }

    #[test]
    fn defaults_are_valid() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.listen_addr, "0.0.0.0:8000".parse().unwrap());
        assert_eq!(c.admin_addr, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(
            c.upstream,
            UpstreamTarget {
                host: "127.0.0.1".into(),
                port: 8001
            }
        );
        assert!(c.tls.is_none());
        assert_eq!(c.cache_ttl, Duration::from_secs(30));
        assert_eq!(c.cache_stale_if_error, Duration::from_secs(300));
        assert_eq!(c.cache_max_entries, 10_000);
        assert!(c.upstream_timeout <= Duration::from_secs(5));
        assert_eq!(c.shutdown_drain, Duration::from_secs(5));
        assert_eq!(c.shutdown_timeout, Duration::from_secs(15));
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn every_bad_value_is_reported() {
        let Err(ConfigOutcome::Invalid(errors)) = parse(&[
            "--listen-addr",
            "nope",
            "--admin-addr",
            "1.2.3.4",
            "--auxiliary-service-url",
            "https://x",
            "--cache-ttl-seconds=-1",
            "--cache-max-entries",
            "0",
            "--upstream-timeout-seconds",
            "abc",
            "--log-format",
            "xml",
            "--tls-listen-addr",
            "127.0.0.1:8443",
        ]) else {
            panic!("expected errors")
        };
        let text = errors.to_string();
        for name in [
            "LISTEN_ADDR",
            "ADMIN_ADDR",
            "AUXILIARY_SERVICE_URL",
            "CACHE_TTL_SECONDS",
            "CACHE_MAX_ENTRIES",
            "UPSTREAM_TIMEOUT_SECONDS",
            "LOG_FORMAT",
            "TLS_CERT_FILE and TLS_KEY_FILE",
        ] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
        assert_eq!(errors.0.len(), 8, "{text}");
    }

    #[test]
    fn upstream_urls() {
        let t = UpstreamTarget::parse("http://auxiliary-service:8001").unwrap();
        assert_eq!(t.host, "auxiliary-service");
        assert_eq!(t.port, 8001);
        assert_eq!(t.authority(), "auxiliary-service:8001");
        let t = UpstreamTarget::parse("http://[::1]:81/").unwrap();
        assert_eq!(t.host, "::1");
        assert_eq!(t.authority(), "[::1]:81");
        assert_eq!(UpstreamTarget::parse("http://x").unwrap().port, 80);
        assert!(UpstreamTarget::parse("http://x/api").is_err());
        assert!(UpstreamTarget::parse("ftp://x").is_err());
        assert!(UpstreamTarget::parse("x:80").is_err());
    }

    #[test]
    fn missing_tls_files_are_reported_clearly() {
        let Err(ConfigOutcome::Invalid(errors)) = parse(&[
            "--tls-listen-addr",
            "127.0.0.1:8443",
            "--tls-cert-file",
            "/nonexistent/cert.pem",
            "--tls-key-file",
            "/nonexistent/key.pem",
        ]) else {
            panic!("expected errors")
        };
        assert!(
            errors.to_string().contains("/nonexistent/cert.pem"),
            "{errors}"
        );
    }

    #[test]
    fn help_is_info() {
        assert!(matches!(parse(&["--help"]), Err(ConfigOutcome::Info(_))));
    }
}
