//! Configuration: every setting is an environment variable and a flag of the
//! same name, parsed and validated in one place before any port is bound.
//!
//! [`Config::try_from_args`] reports every bad value at once; the binary
//! exits with status 64 (`EX_USAGE`) when it fails.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
pub use service_common::config::{ConfigErrors, EXIT_CONFIG};
use service_common::config::{
    Problems, check_version, parse_addr, parse_count, parse_ratio, parse_seconds,
};
use service_common::telemetry::{self, LogFormat};

/// Names of the environment variables, the one place they are spelled.
pub mod env {
    pub const LISTEN_ADDR: &str = "LISTEN_ADDR";
    pub const TLS_LISTEN_ADDR: &str = "TLS_LISTEN_ADDR";
    pub const TLS_CERT_FILE: &str = "TLS_CERT_FILE";
    pub const TLS_KEY_FILE: &str = "TLS_KEY_FILE";
    pub const STRICT_TRANSPORT_SECURITY: &str = "STRICT_TRANSPORT_SECURITY";
    pub const ADMIN_ADDR: &str = "ADMIN_ADDR";
    pub const AUXILIARY_SERVICE_URL: &str = "AUXILIARY_SERVICE_URL";
    pub const SERVICE_VERSION: &str = "SERVICE_VERSION";
    pub const CACHE_TTL_SECONDS: &str = "CACHE_TTL_SECONDS";
    pub const CACHE_STALE_WHILE_REVALIDATE_SECONDS: &str = "CACHE_STALE_WHILE_REVALIDATE_SECONDS";
    pub const CACHE_STALE_IF_ERROR_SECONDS: &str = "CACHE_STALE_IF_ERROR_SECONDS";
    pub const CACHE_NEGATIVE_TTL_SECONDS: &str = "CACHE_NEGATIVE_TTL_SECONDS";
    pub const CACHE_MAX_ENTRIES: &str = "CACHE_MAX_ENTRIES";
    pub const UPSTREAM_CONNECT_TIMEOUT_SECONDS: &str = "UPSTREAM_CONNECT_TIMEOUT_SECONDS";
    pub const UPSTREAM_TIMEOUT_SECONDS: &str = "UPSTREAM_TIMEOUT_SECONDS";
    pub const UPSTREAM_RETRIES: &str = "UPSTREAM_RETRIES";
    pub const UPSTREAM_MAX_IN_FLIGHT: &str = "UPSTREAM_MAX_IN_FLIGHT";
    pub const UPSTREAM_POOL_IDLE_MAX: &str = "UPSTREAM_POOL_IDLE_MAX";
    pub const UPSTREAM_IDLE_TIMEOUT_SECONDS: &str = "UPSTREAM_IDLE_TIMEOUT_SECONDS";
    pub const UPSTREAM_RESOLVE_INTERVAL_SECONDS: &str = "UPSTREAM_RESOLVE_INTERVAL_SECONDS";
    pub const UPSTREAM_MAX_BODY_BYTES: &str = "UPSTREAM_MAX_BODY_BYTES";
    pub const HEADER_READ_TIMEOUT_SECONDS: &str = "HEADER_READ_TIMEOUT_SECONDS";
    pub const KEEPALIVE_TIMEOUT_SECONDS: &str = "KEEPALIVE_TIMEOUT_SECONDS";
    pub const MAX_CONNECTIONS: &str = "MAX_CONNECTIONS";
    pub const CLIENT_MISS_RATE_PER_SECOND: &str = "CLIENT_MISS_RATE_PER_SECOND";
    pub const TRACE_SAMPLE_RATIO: &str = "TRACE_SAMPLE_RATIO";
    pub const SHUTDOWN_DRAIN_SECONDS: &str = "SHUTDOWN_DRAIN_SECONDS";
    pub const SHUTDOWN_TIMEOUT_SECONDS: &str = "SHUTDOWN_TIMEOUT_SECONDS";
    pub const LOG_FORMAT: &str = "LOG_FORMAT";
    pub const RUST_LOG: &str = "RUST_LOG";
}

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
    #[arg(long, env = env::LISTEN_ADDR, default_value = "0.0.0.0:8000")]
    listen_addr: String,

    /// HTTPS listener (HTTP/1.1 and HTTP/2 by ALPN, TLS 1.2 and 1.3). Off when unset; needs
    /// TLS_CERT_FILE and TLS_KEY_FILE.
    #[arg(long, env = env::TLS_LISTEN_ADDR)]
    tls_listen_addr: Option<String>,

    /// PEM certificate chain for the HTTPS listener; reloaded when it changes on disk. If it
    /// does not exist yet, the edge starts with /readyz failing until it appears.
    #[arg(long, env = env::TLS_CERT_FILE)]
    tls_cert_file: Option<PathBuf>,

    /// PEM private key for the HTTPS listener; reloaded when it changes on disk.
    #[arg(long, env = env::TLS_KEY_FILE)]
    tls_key_file: Option<PathBuf>,

    /// Strict-Transport-Security value sent on HTTPS answers (never on plain HTTP); empty
    /// sends none.
    #[arg(
        long,
        env = env::STRICT_TRANSPORT_SECURITY,
        default_value = "max-age=31536000"
    )]
    strict_transport_security: String,

    /// Admin listener: /metrics, /healthz, /readyz and the cache purge endpoints.
    #[arg(long, env = env::ADMIN_ADDR, default_value = "0.0.0.0:9000")]
    admin_addr: String,

    /// Base URL of the auxiliary service (http only). The host name is resolved in the
    /// background; misses for one parameter go to one address (consistent hashing), other
    /// requests are spread over every address.
    #[arg(
        long,
        env = env::AUXILIARY_SERVICE_URL,
        default_value = "http://127.0.0.1:8001"
    )]
    auxiliary_service_url: String,

    /// Version echoed as "main_api_version" in every body.
    #[arg(long, env = env::SERVICE_VERSION, default_value = "0.0.0-dev")]
    service_version: String,

    /// Longest freshness of a cached /parameters or /parameter/{name} answer, in seconds.
    /// A worker answer that says it is older (Age) or fresh for less (max-age) stays fresh
    /// only for what is left.
    #[arg(long, env = env::CACHE_TTL_SECONDS, default_value = "30")]
    cache_ttl_seconds: String,

    /// After an answer stops being fresh, how long it is still served at once (x-cache:
    /// STALE) while one background request refreshes it, in seconds.
    #[arg(long, env = env::CACHE_STALE_WHILE_REVALIDATE_SECONDS, default_value = "10")]
    cache_stale_while_revalidate_seconds: String,

    /// How long after it stops being fresh a cached answer may replace a worker failure
    /// (timeout, connection failure, 5xx), in seconds.
    #[arg(long, env = env::CACHE_STALE_IF_ERROR_SECONDS, default_value = "300")]
    cache_stale_if_error_seconds: String,

    /// How long a 404 parameter_not_found or 403 secure_parameter is cached, in seconds
    /// (never longer than CACHE_TTL_SECONDS).
    #[arg(long, env = env::CACHE_NEGATIVE_TTL_SECONDS, default_value = "5")]
    cache_negative_ttl_seconds: String,

    /// Upper bound on cached answers (one entry per key).
    #[arg(long, env = env::CACHE_MAX_ENTRIES, default_value = "10000")]
    cache_max_entries: String,

    /// Time to establish a connection to the auxiliary service, in seconds. A connection
    /// that cannot be made in time is retried on the next address.
    #[arg(long, env = env::UPSTREAM_CONNECT_TIMEOUT_SECONDS, default_value = "1")]
    upstream_connect_timeout_seconds: String,

    /// Time for the auxiliary service to answer a request completely, retries included, in
    /// seconds; 504 when exceeded. Keep it above the worker's AWS_CALL_TIMEOUT_SECONDS.
    #[arg(long, env = env::UPSTREAM_TIMEOUT_SECONDS, default_value = "5")]
    upstream_timeout_seconds: String,

    /// Extra attempts on another address when nothing reached the worker (connection
    /// refused or timed out, or a pooled connection found dead) (0 to 5).
    #[arg(long, env = env::UPSTREAM_RETRIES, default_value = "2")]
    upstream_retries: String,

    /// Worker requests in flight for the whole process; past it, a miss gets 503
    /// overloaded at once (1 to 100000).
    #[arg(long, env = env::UPSTREAM_MAX_IN_FLIGHT, default_value = "256")]
    upstream_max_in_flight: String,

    /// Idle connections to the worker kept for reuse (1 to 10000).
    #[arg(long, env = env::UPSTREAM_POOL_IDLE_MAX, default_value = "128")]
    upstream_pool_idle_max: String,

    /// Idle time after which a pooled worker connection is closed, in seconds. Keep it below
    /// the worker's HEADER_READ_TIMEOUT_SECONDS (10 by default), after which the worker
    /// closes idle connections itself.
    #[arg(long, env = env::UPSTREAM_IDLE_TIMEOUT_SECONDS, default_value = "8")]
    upstream_idle_timeout_seconds: String,

    /// How often the worker's host name is resolved again, in seconds.
    #[arg(long, env = env::UPSTREAM_RESOLVE_INTERVAL_SECONDS, default_value = "5")]
    upstream_resolve_interval_seconds: String,

    /// Largest worker answer body accepted, in bytes; a larger one is a 502.
    #[arg(long, env = env::UPSTREAM_MAX_BODY_BYTES, default_value = "4194304")]
    upstream_max_body_bytes: String,

    /// Time a client has to send a complete request head, in seconds: from the connection's
    /// start (the TLS handshake included), or from the first byte of a later request on a
    /// kept-alive connection. Sending slowly does not extend it.
    #[arg(long, env = env::HEADER_READ_TIMEOUT_SECONDS, default_value = "10")]
    header_read_timeout_seconds: String,

    /// Idle time after which a client's keep-alive connection (HTTP/1.1 or HTTP/2) is
    /// closed, in seconds.
    #[arg(long, env = env::KEEPALIVE_TIMEOUT_SECONDS, default_value = "60")]
    keepalive_timeout_seconds: String,

    /// Open client connections per process; new ones past it are closed at once (1 to
    /// 1000000).
    #[arg(long, env = env::MAX_CONNECTIONS, default_value = "10000")]
    max_connections: String,

    /// Cache misses (requests that would start a worker call) per second per client
    /// address, with bursts of twice that; more get 429 rate_limited. Hits, coalesced and
    /// stale answers are never limited. 0 turns the limit off.
    #[arg(long, env = env::CLIENT_MISS_RATE_PER_SECOND, default_value = "20")]
    client_miss_rate_per_second: String,

    /// Share of requests arriving without trace context whose new trace is marked sampled
    /// (0 to 1). Incoming traceparent/tracestate/B3 headers are always passed on unchanged.
    #[arg(long, env = env::TRACE_SAMPLE_RATIO, default_value = "0.01")]
    trace_sample_ratio: String,

    /// After SIGTERM, how long /readyz answers 503 while traffic is still served (HTTP/1
    /// answers then carry Connection: close, HTTP/2 connections get GOAWAY), in seconds.
    #[arg(long, env = env::SHUTDOWN_DRAIN_SECONDS, default_value = "5")]
    shutdown_drain_seconds: String,

    /// After the drain, the bound on closing listeners, finishing in-flight requests and
    /// exiting, in seconds.
    #[arg(long, env = env::SHUTDOWN_TIMEOUT_SECONDS, default_value = "15")]
    shutdown_timeout_seconds: String,

    /// Log format: json or text.
    #[arg(long, env = env::LOG_FORMAT, default_value = "json")]
    log_format: String,

    /// Log filter, e.g. info or edge=debug,info; access lines are target "access" at info.
    #[arg(long, env = env::RUST_LOG, default_value = "info")]
    rust_log: String,

    /// Validate the configuration (including any TLS files present) and exit 0.
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
    /// `None`: no `Strict-Transport-Security` header.
    pub hsts: Option<String>,
}

/// Cache timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    pub ttl: Duration,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    pub negative_ttl: Duration,
    pub max_entries: u64,
}

/// Everything about reaching the worker.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub target: UpstreamTarget,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub retries: usize,
    pub max_in_flight: usize,
    pub pool_idle_max: usize,
    pub idle_timeout: Duration,
    pub resolve_interval: Duration,
    pub max_body_bytes: usize,
}

/// Client-facing limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientConfig {
    pub header_read_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub max_connections: usize,
    /// 0: no limit.
    pub miss_rate_per_second: u32,
    pub trace_sample_ratio: f64,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub tls: Option<TlsConfig>,
    pub admin_addr: SocketAddr,
    pub service_version: String,
    pub cache: CacheConfig,
    pub upstream: UpstreamConfig,
    pub client: ClientConfig,
    pub shutdown_drain: Duration,
    pub shutdown_timeout: Duration,
    pub log_format: LogFormat,
    pub rust_log: String,
    /// `--check-config`: validate and exit.
    pub check_only: bool,
}

/// What [`Config::try_from_args`] can return instead of a config.
#[derive(Debug)]
pub enum ConfigOutcome {
    /// `--help` or `--version`: print it and exit 0.
    Info(clap::Error),
    /// Bad values (or unknown flags): print and exit [`EXIT_CONFIG`].
    Invalid(ConfigErrors),
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
        let mut p = Problems::default();
        let listen_addr = p.check(env::LISTEN_ADDR, parse_addr(&a.listen_addr));
        let admin_addr = p.check(env::ADMIN_ADDR, parse_addr(&a.admin_addr));
        let tls = tls_config(&mut p, &a);
        let target = p.check(
            env::AUXILIARY_SERVICE_URL,
            UpstreamTarget::parse(&a.auxiliary_service_url),
        );
        let service_version = p.check(env::SERVICE_VERSION, check_version(&a.service_version));
        let log_format = p.check(env::LOG_FORMAT, a.log_format.parse::<LogFormat>());
        let rust_log = p.check(
            env::RUST_LOG,
            telemetry::validate_filter(&a.rust_log).map(|()| a.rust_log.clone()),
        );
        let mut secs = |name: &str, raw: &str, min: f64, max: f64| {
            p.check(name, parse_seconds(raw, min, max))
                .unwrap_or_default()
        };
        let ttl = secs(env::CACHE_TTL_SECONDS, &a.cache_ttl_seconds, 0.0, 86_400.0);
        let stale_while_revalidate = secs(
            env::CACHE_STALE_WHILE_REVALIDATE_SECONDS,
            &a.cache_stale_while_revalidate_seconds,
            0.0,
            86_400.0,
        );
        let stale_if_error = secs(
            env::CACHE_STALE_IF_ERROR_SECONDS,
            &a.cache_stale_if_error_seconds,
            0.0,
            86_400.0,
        );
        let negative_ttl = secs(
            env::CACHE_NEGATIVE_TTL_SECONDS,
            &a.cache_negative_ttl_seconds,
            0.0,
            3_600.0,
        );
        let connect_timeout = secs(
            env::UPSTREAM_CONNECT_TIMEOUT_SECONDS,
            &a.upstream_connect_timeout_seconds,
            0.01,
            60.0,
        );
        let timeout = secs(
            env::UPSTREAM_TIMEOUT_SECONDS,
            &a.upstream_timeout_seconds,
            0.01,
            60.0,
        );
        let idle_timeout = secs(
            env::UPSTREAM_IDLE_TIMEOUT_SECONDS,
            &a.upstream_idle_timeout_seconds,
            0.1,
            300.0,
        );
        let resolve_interval = secs(
            env::UPSTREAM_RESOLVE_INTERVAL_SECONDS,
            &a.upstream_resolve_interval_seconds,
            0.1,
            3_600.0,
        );
        let header_read_timeout = secs(
            env::HEADER_READ_TIMEOUT_SECONDS,
            &a.header_read_timeout_seconds,
            0.1,
            300.0,
        );
        let keepalive_timeout = secs(
            env::KEEPALIVE_TIMEOUT_SECONDS,
            &a.keepalive_timeout_seconds,
            1.0,
            3_600.0,
        );
        let shutdown_drain = secs(
            env::SHUTDOWN_DRAIN_SECONDS,
            &a.shutdown_drain_seconds,
            0.0,
            300.0,
        );
        let shutdown_timeout = secs(
            env::SHUTDOWN_TIMEOUT_SECONDS,
            &a.shutdown_timeout_seconds,
            2.0,
            300.0,
        );
        let mut count = |name: &str, raw: &str, min: u64, max: u64| {
            p.check(name, parse_count(raw, min, max)).unwrap_or(min)
        };
        let max_entries = count(env::CACHE_MAX_ENTRIES, &a.cache_max_entries, 1, 10_000_000);
        let retries = count(env::UPSTREAM_RETRIES, &a.upstream_retries, 0, 5);
        let max_in_flight = count(
            env::UPSTREAM_MAX_IN_FLIGHT,
            &a.upstream_max_in_flight,
            1,
            100_000,
        );
        let pool_idle_max = count(
            env::UPSTREAM_POOL_IDLE_MAX,
            &a.upstream_pool_idle_max,
            1,
            10_000,
        );
        let max_body_bytes = count(
            env::UPSTREAM_MAX_BODY_BYTES,
            &a.upstream_max_body_bytes,
            1_024,
            1 << 30,
        );
        let max_connections = count(env::MAX_CONNECTIONS, &a.max_connections, 1, 1_000_000);
        let miss_rate = count(
            env::CLIENT_MISS_RATE_PER_SECOND,
            &a.client_miss_rate_per_second,
            0,
            1_000_000,
        );
        let trace_sample_ratio = p
            .check(env::TRACE_SAMPLE_RATIO, parse_ratio(&a.trace_sample_ratio))
            .unwrap_or_default();

        if let (Some(addr), Some(admin)) = (listen_addr, admin_addr)
            && addr == admin
        {
            p.push(format!(
                "{}: must differ from {}",
                env::ADMIN_ADDR,
                env::LISTEN_ADDR
            ));
        }
        if let (Some(t), Some(addr), Some(admin)) = (&tls, listen_addr, admin_addr)
            && (t.listen_addr == addr || t.listen_addr == admin)
        {
            p.push(format!(
                "{}: must differ from {} and {}",
                env::TLS_LISTEN_ADDR,
                env::LISTEN_ADDR,
                env::ADMIN_ADDR
            ));
        }
        let both_parsed = parse_seconds(&a.upstream_connect_timeout_seconds, 0.01, 60.0).is_ok()
            && parse_seconds(&a.upstream_timeout_seconds, 0.01, 60.0).is_ok();
        if both_parsed && connect_timeout > timeout {
            p.push(format!(
                "{}: must not exceed {}",
                env::UPSTREAM_CONNECT_TIMEOUT_SECONDS,
                env::UPSTREAM_TIMEOUT_SECONDS
            ));
        }
        let (
            Some(listen_addr),
            Some(admin_addr),
            Some(target),
            Some(service_version),
            Some(log_format),
            Some(rust_log),
        ) = (
            listen_addr,
            admin_addr,
            target,
            service_version,
            log_format,
            rust_log,
        )
        else {
            return Err(ConfigErrors(p.0));
        };
        if !p.is_empty() {
            return Err(ConfigErrors(p.0));
        }
        Ok(Config {
            listen_addr,
            tls,
            admin_addr,
            service_version,
            cache: CacheConfig {
                ttl,
                stale_while_revalidate,
                stale_if_error,
                negative_ttl: negative_ttl.min(ttl),
                max_entries,
            },
            upstream: UpstreamConfig {
                target,
                connect_timeout,
                timeout,
                retries: retries as usize,
                max_in_flight: max_in_flight as usize,
                pool_idle_max: pool_idle_max as usize,
                idle_timeout,
                resolve_interval,
                max_body_bytes: max_body_bytes as usize,
            },
            client: ClientConfig {
                header_read_timeout,
                keepalive_timeout,
                max_connections: max_connections as usize,
                miss_rate_per_second: u32::try_from(miss_rate).unwrap_or(u32::MAX),
                trace_sample_ratio,
            },
            shutdown_drain,
            shutdown_timeout,
            log_format,
            rust_log,
            check_only: a.check_config,
        })
    }
}

/// The TLS listener, if asked for. Certificate files that do not exist yet
/// are accepted (the edge waits for them); files that exist must load.
fn tls_config(p: &mut Problems, a: &Args) -> Option<TlsConfig> {
    let requested = a.tls_listen_addr.as_deref().is_some_and(|s| !s.is_empty());
    let cert = a
        .tls_cert_file
        .clone()
        .filter(|f| !f.as_os_str().is_empty());
    let key = a.tls_key_file.clone().filter(|f| !f.as_os_str().is_empty());
    if !requested {
        if cert.is_some() || key.is_some() {
            p.push(format!(
                "{}/{}: set without {}, so they would be ignored",
                env::TLS_CERT_FILE,
                env::TLS_KEY_FILE,
                env::TLS_LISTEN_ADDR
            ));
        }
        return None;
    }
    let addr = p.check(
        env::TLS_LISTEN_ADDR,
        parse_addr(a.tls_listen_addr.as_deref().unwrap_or_default()),
    );
    let (Some(cert_file), Some(key_file)) = (cert, key) else {
        p.push(format!(
            "{} and {}: both are required when {} is set",
            env::TLS_CERT_FILE,
            env::TLS_KEY_FILE,
            env::TLS_LISTEN_ADDR
        ));
        return None;
    };
    let hsts = a.strict_transport_security.trim();
    if hsts.bytes().any(|c| !(b' '..=b'~').contains(&c)) {
        p.push(format!(
            "{}: {hsts:?} is not a valid header value",
            env::STRICT_TRANSPORT_SECURITY
        ));
    }
    if cert_file.exists() || key_file.exists() {
        p.check(
            &format!("{}/{}", env::TLS_CERT_FILE, env::TLS_KEY_FILE),
            crate::tls::load_certified_key(&cert_file, &key_file).map_err(|e| e.to_string()),
        )?;
    }
    Some(TlsConfig {
        listen_addr: addr?,
        cert_file,
        key_file,
        hsts: (!hsts.is_empty()).then(|| hsts.to_owned()),
    })
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
            c.upstream.target,
            UpstreamTarget {
                host: "127.0.0.1".into(),
                port: 8001
            }
        );
        assert!(c.tls.is_none());
        assert_eq!(c.cache.ttl, Duration::from_secs(30));
        assert_eq!(c.cache.stale_while_revalidate, Duration::from_secs(10));
        assert_eq!(c.cache.stale_if_error, Duration::from_secs(300));
        assert_eq!(c.cache.negative_ttl, Duration::from_secs(5));
        assert_eq!(c.cache.max_entries, 10_000);
        assert!(c.upstream.timeout <= Duration::from_secs(5));
        assert_eq!(c.upstream.retries, 2);
        assert_eq!(c.upstream.max_in_flight, 256);
        assert_eq!(c.upstream.idle_timeout, Duration::from_secs(8));
        assert_eq!(c.client.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.client.max_connections, 10_000);
        assert_eq!(c.client.miss_rate_per_second, 20);
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
            "--max-connections",
            "0",
            "--client-miss-rate-per-second",
            "x",
            "--trace-sample-ratio",
            "2",
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
            "MAX_CONNECTIONS",
            "CLIENT_MISS_RATE_PER_SECOND",
            "TRACE_SAMPLE_RATIO",
        ] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
        assert_eq!(errors.0.len(), 11, "{text}");
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
    fn tls_files_that_do_not_exist_yet_are_waited_for_but_bad_ones_are_rejected() {
        let c = parse(&[
            "--tls-listen-addr",
            "127.0.0.1:8443",
            "--tls-cert-file",
            "/nonexistent/cert.pem",
            "--tls-key-file",
            "/nonexistent/key.pem",
        ])
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.hsts.as_deref(), Some("max-age=31536000"));
        let dir = std::env::temp_dir().join(format!("edge-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("tls.crt");
        std::fs::write(&cert, "not a certificate").unwrap();
        let Err(ConfigOutcome::Invalid(errors)) = parse(&[
            "--tls-listen-addr",
            "127.0.0.1:8443",
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-key-file",
            "/nonexistent/key.pem",
            "--strict-transport-security",
            "",
        ]) else {
            panic!("expected errors")
        };
        assert!(errors.to_string().contains("key.pem"), "{errors}");
    }

    #[test]
    fn help_is_info() {
        assert!(matches!(parse(&["--help"]), Err(ConfigOutcome::Info(_))));
    }
}
