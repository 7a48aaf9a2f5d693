//! The worker's configuration: every environment variable, its flag, its
//! default and its validation, in one place.
//!
//! Values are read as strings and validated together by
//! [`Config::try_from_args`], so one start reports every bad value at once.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use service_common::ParameterPrefix;
pub use service_common::config::ConfigErrors;
use service_common::config::{
    Problems, check_version, parse_addr, parse_bool, parse_count, parse_seconds,
};
use service_common::telemetry::{self, LogFormat};

/// Names of the environment variables, the one place they are spelled.
pub mod env {
    pub const LISTEN_ADDR: &str = "LISTEN_ADDR";
    pub const ADMIN_ADDR: &str = "ADMIN_ADDR";
    pub const SERVICE_VERSION: &str = "SERVICE_VERSION";
    pub const PARAMETER_PREFIX: &str = "PARAMETER_PREFIX";
    pub const EXPOSE_SECURE_PARAMETERS: &str = "EXPOSE_SECURE_PARAMETERS";
    pub const S3_BUCKET_PREFIX: &str = "S3_BUCKET_PREFIX";
    pub const CACHE_TTL_SECONDS: &str = "CACHE_TTL_SECONDS";
    pub const CACHE_MAX_ENTRIES: &str = "CACHE_MAX_ENTRIES";
    pub const AWS_REGION: &str = "AWS_REGION";
    pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
    pub const AWS_CALL_TIMEOUT_SECONDS: &str = "AWS_CALL_TIMEOUT_SECONDS";
    pub const AWS_MAX_ATTEMPTS: &str = "AWS_MAX_ATTEMPTS";
    pub const MAX_CONCURRENT_REQUESTS: &str = "MAX_CONCURRENT_REQUESTS";
    pub const HEADER_READ_TIMEOUT_SECONDS: &str = "HEADER_READ_TIMEOUT_SECONDS";
    pub const SHUTDOWN_DRAIN_SECONDS: &str = "SHUTDOWN_DRAIN_SECONDS";
    pub const SHUTDOWN_TIMEOUT_SECONDS: &str = "SHUTDOWN_TIMEOUT_SECONDS";
    pub const LOG_FORMAT: &str = "LOG_FORMAT";
    pub const RUST_LOG: &str = "RUST_LOG";
}

const AFTER_HELP: &str = "\
AWS credentials come from the SDK's standard chain: AWS_ACCESS_KEY_ID and \
AWS_SECRET_ACCESS_KEY, web identity (IRSA: AWS_ROLE_ARN with \
AWS_WEB_IDENTITY_TOKEN_FILE), EKS Pod Identity, or instance metadata. \
Exit codes: 0 after a clean shutdown, 64 on bad configuration, 1 on a runtime failure.";

/// Command-line flags, each backed by an environment variable.
#[derive(Debug, Parser)]
#[command(name = "aux-worker", version, args_override_self = true, about = "The auxiliary service: S3 buckets and SSM parameters over HTTP", after_help = AFTER_HELP)]
pub struct Args {
    /// Address of the API listener.
    #[arg(long, env = env::LISTEN_ADDR, default_value = "0.0.0.0:8001")]
    pub listen_addr: String,
    /// Address of the admin listener (/metrics, /healthz, /readyz).
    #[arg(long, env = env::ADMIN_ADDR, default_value = "0.0.0.0:9001")]
    pub admin_addr: String,
    /// Echoed as `auxiliary_service_version` in every body.
    #[arg(long, env = env::SERVICE_VERSION, default_value = "0.0.0-dev")]
    pub service_version: String,
    /// The only SSM path the API may read, e.g. /kantox-challenge/dev (required).
    #[arg(long, env = env::PARAMETER_PREFIX)]
    pub parameter_prefix: Option<String>,
    /// Whether SecureString values may be returned (decrypted): true or false.
    #[arg(long, env = env::EXPOSE_SECURE_PARAMETERS, default_value = "false")]
    pub expose_secure_parameters: String,
    /// Only buckets whose names start with this are listed by /s3-buckets; empty lists
    /// every bucket the credentials can see.
    #[arg(long, env = env::S3_BUCKET_PREFIX, default_value = "")]
    pub s3_bucket_prefix: String,
    /// How long an SSM answer (a parameter, a missing parameter, the list) is reused before
    /// SSM is asked again; concurrent requests for one key share one call. Answers carry
    /// Cache-Control: max-age and Age so the edge never serves a value older than this end
    /// to end. 0 turns the cache off (0 to 86400).
    #[arg(long, env = env::CACHE_TTL_SECONDS, default_value = "30")]
    pub cache_ttl_seconds: String,
    /// Upper bound on cached SSM answers (1 to 10000000).
    #[arg(long, env = env::CACHE_MAX_ENTRIES, default_value = "10000")]
    pub cache_max_entries: String,
    /// AWS region; unset means the SDK's chain (profile, instance metadata).
    #[arg(long, env = env::AWS_REGION)]
    pub aws_region: Option<String>,
    /// Endpoint override for every AWS service (emulators only), e.g. http://127.0.0.1:5000.
    #[arg(long, env = env::AWS_ENDPOINT_URL)]
    pub aws_endpoint_url: Option<String>,
    /// Time limit of one AWS operation, retries included (0.1 to 60).
    #[arg(long, env = env::AWS_CALL_TIMEOUT_SECONDS, default_value = "3")]
    pub aws_call_timeout_seconds: String,
    /// Attempts per AWS operation, the first included (1 to 10); the SDK is the only layer that retries.
    #[arg(long, env = env::AWS_MAX_ATTEMPTS, default_value = "3")]
    pub aws_max_attempts: String,
    /// Requests served at once; more get 503 overloaded (1 to 100000).
    #[arg(long, env = env::MAX_CONCURRENT_REQUESTS, default_value = "512")]
    pub max_concurrent_requests: String,
    /// Time a client has to send a request head (0.1 to 300).
    #[arg(long, env = env::HEADER_READ_TIMEOUT_SECONDS, default_value = "10")]
    pub header_read_timeout_seconds: String,
    /// After SIGTERM, how long /readyz fails while traffic is still served (0 to 300).
    #[arg(long, env = env::SHUTDOWN_DRAIN_SECONDS, default_value = "5")]
    pub shutdown_drain_seconds: String,
    /// After the drain, how long in-flight requests may take before they are cut (0 to 300).
    #[arg(long, env = env::SHUTDOWN_TIMEOUT_SECONDS, default_value = "15")]
    pub shutdown_timeout_seconds: String,
    /// Log format: json or text.
    #[arg(long, env = env::LOG_FORMAT, default_value = "json")]
    pub log_format: String,
    /// Log filter, in tracing's EnvFilter syntax.
    #[arg(long, env = env::RUST_LOG, default_value = "info")]
    pub rust_log: String,
    /// Validate the configuration, print it, and exit.
    #[arg(long)]
    pub check_config: bool,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub service_version: String,
    pub parameter_prefix: ParameterPrefix,
    pub expose_secure_parameters: bool,
    /// Empty: no filter.
    pub s3_bucket_prefix: String,
    /// Zero: no cache.
    pub cache_ttl: Duration,
    pub cache_max_entries: u64,
    pub aws: AwsSettings,
    pub max_concurrent_requests: usize,
    pub header_read_timeout: Duration,
    pub shutdown_drain: Duration,
    pub shutdown_timeout: Duration,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub check_config: bool,
}

/// What the AWS client constructor needs.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsSettings {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub call_timeout: Duration,
    pub max_attempts: u32,
}

/// Why the arguments were not turned into a configuration.
#[derive(Debug)]
pub enum ArgsError {
    /// `--help` or `--version`: print and exit 0.
    Display(clap::Error),
    /// Unknown flag or malformed command line: exit 64.
    Usage(clap::Error),
    /// Values present but invalid: exit 64.
    Invalid(ConfigErrors),
}

impl Config {
    /// Parses flags and environment, then validates every value.
    pub fn try_from_args<I, T>(args: I) -> Result<Self, ArgsError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args = Args::try_parse_from(args).map_err(|e| match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                ArgsError::Display(e)
            }
            _ => ArgsError::Usage(e),
        })?;
        Self::validate(args).map_err(ArgsError::Invalid)
    }

    pub fn validate(args: Args) -> Result<Self, ConfigErrors> {
        let mut p = Problems::default();
        let listen_addr = p.check(env::LISTEN_ADDR, parse_addr(&args.listen_addr));
        let admin_addr = p.check(env::ADMIN_ADDR, parse_addr(&args.admin_addr));
        if let (Some(l), Some(a)) = (listen_addr, admin_addr)
            && l == a
            && l.port() != 0
        {
            p.push(format!("{}: {a} is also LISTEN_ADDR", env::ADMIN_ADDR));
        }
        let service_version = p.check(env::SERVICE_VERSION, check_version(&args.service_version));
        let prefix = match args.parameter_prefix.as_deref() {
            None | Some("") => p.check(
                env::PARAMETER_PREFIX,
                Err("is required (e.g. /kantox-challenge/dev)".into()),
            ),
            Some(raw) => p.check(
                env::PARAMETER_PREFIX,
                ParameterPrefix::parse(raw).map_err(|e| format!("{raw:?}: {e}")),
            ),
        };
        let expose = p.check(
            env::EXPOSE_SECURE_PARAMETERS,
            parse_bool(&args.expose_secure_parameters),
        );
        let bucket_prefix_ok = args.s3_bucket_prefix.len() <= 63
            && args
                .s3_bucket_prefix
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'.'));
        if !bucket_prefix_ok {
            p.push(format!(
                "{}: {:?} is not the start of an S3 bucket name (a-z 0-9 - ., at most 63)",
                env::S3_BUCKET_PREFIX,
                args.s3_bucket_prefix
            ));
        }
        let cache_ttl = p.check(
            env::CACHE_TTL_SECONDS,
            parse_seconds(&args.cache_ttl_seconds, 0.0, 86_400.0),
        );
        let cache_max_entries = p.check(
            env::CACHE_MAX_ENTRIES,
            parse_count(&args.cache_max_entries, 1, 10_000_000),
        );
        if let Some(region) = &args.aws_region {
            let ok = !region.is_empty()
                && region.len() <= 32
                && region
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
            if !ok {
                p.push(format!(
                    "{}: {region:?} is not a region name",
                    env::AWS_REGION
                ));
            }
        }
        if let Some(url) = &args.aws_endpoint_url {
            p.check(env::AWS_ENDPOINT_URL, check_endpoint(url));
        }
        let call_timeout = p.check(
            env::AWS_CALL_TIMEOUT_SECONDS,
            parse_seconds(&args.aws_call_timeout_seconds, 0.1, 60.0),
        );
        let max_attempts = p.check(
            env::AWS_MAX_ATTEMPTS,
            parse_count(&args.aws_max_attempts, 1, 10),
        );
        let max_concurrent = p.check(
            env::MAX_CONCURRENT_REQUESTS,
            parse_count(&args.max_concurrent_requests, 1, 100_000),
        );
        let header_timeout = p.check(
            env::HEADER_READ_TIMEOUT_SECONDS,
            parse_seconds(&args.header_read_timeout_seconds, 0.1, 300.0),
        );
        let drain = p.check(
            env::SHUTDOWN_DRAIN_SECONDS,
            parse_seconds(&args.shutdown_drain_seconds, 0.0, 300.0),
        );
        let shutdown_timeout = p.check(
            env::SHUTDOWN_TIMEOUT_SECONDS,
            parse_seconds(&args.shutdown_timeout_seconds, 0.0, 300.0),
        );
        let log_format = p.check(env::LOG_FORMAT, args.log_format.parse::<LogFormat>());
        p.check(env::RUST_LOG, telemetry::validate_filter(&args.rust_log));

        match (
            listen_addr,
            admin_addr,
            service_version,
            prefix,
            expose,
            (cache_ttl, cache_max_entries),
            (call_timeout, max_attempts),
            (max_concurrent, header_timeout, drain, shutdown_timeout),
            log_format,
        ) {
            (
                Some(listen_addr),
                Some(admin_addr),
                Some(service_version),
                Some(parameter_prefix),
                Some(expose_secure_parameters),
                (Some(cache_ttl), Some(cache_max_entries)),
                (Some(call_timeout), Some(max_attempts)),
                (
                    Some(max_concurrent),
                    Some(header_read_timeout),
                    Some(shutdown_drain),
                    Some(shutdown_timeout),
                ),
                Some(log_format),
            ) if p.is_empty() => Ok(Config {
                listen_addr,
                admin_addr,
                service_version,
                parameter_prefix,
                expose_secure_parameters,
                s3_bucket_prefix: args.s3_bucket_prefix,
                cache_ttl,
                cache_max_entries,
                aws: AwsSettings {
                    region: args.aws_region,
                    endpoint_url: args.aws_endpoint_url,
                    call_timeout,
                    max_attempts: max_attempts as u32,
                },
                max_concurrent_requests: max_concurrent as usize,
                header_read_timeout,
                shutdown_drain,
                shutdown_timeout,
                log_format,
                log_filter: args.rust_log,
                check_config: args.check_config,
            }),
            _ => Err(ConfigErrors(p.0)),
        }
    }
}

fn check_endpoint(raw: &str) -> Result<(), String> {
    let uri: http::Uri = raw.parse().map_err(|_| format!("{raw:?} is not a URL"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(h)) if !h.is_empty() => Ok(()),
        _ => Err(format!(
            "{raw:?} must be an http:// or https:// URL with a host"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Config, ArgsError> {
        let mut args = vec!["aux-worker", "--parameter-prefix", "/kantox-challenge/dev"];
        args.extend_from_slice(extra);
        Config::try_from_args(args)
    }

    #[test]
    fn defaults_are_valid() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.listen_addr.port(), 8001);
        assert_eq!(c.admin_addr.port(), 9001);
        assert_eq!(c.service_version, "0.0.0-dev");
        assert!(!c.expose_secure_parameters);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.aws.max_attempts, 3);
        assert_eq!(c.shutdown_drain, Duration::from_secs(5));
    }

    #[test]
    fn every_bad_value_is_reported_at_once() {
        let err = Config::try_from_args([
            "aux-worker",
            "--listen-addr",
            "nope",
            "--admin-addr",
            "1.2.3.4",
            "--expose-secure-parameters",
            "yes",
            "--aws-call-timeout-seconds",
            "0",
            "--aws-max-attempts",
            "11",
            "--log-format",
            "xml",
            "--aws-endpoint-url",
            "ftp://x",
            "--service-version",
            "has space",
        ])
        .unwrap_err();
        let ArgsError::Invalid(ConfigErrors(errors)) = err else {
            panic!("expected invalid values");
        };
        let text = errors.join("\n");
        for name in [
            env::LISTEN_ADDR,
            env::ADMIN_ADDR,
            env::PARAMETER_PREFIX,
            env::EXPOSE_SECURE_PARAMETERS,
            env::AWS_CALL_TIMEOUT_SECONDS,
            env::AWS_MAX_ATTEMPTS,
            env::LOG_FORMAT,
            env::AWS_ENDPOINT_URL,
            env::SERVICE_VERSION,
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        assert_eq!(errors.len(), 9, "{text}");
    }

    #[test]
    fn prefix_is_validated() {
        assert!(matches!(
            parse(&["--parameter-prefix", "/a/../b"]),
            Err(ArgsError::Invalid(_))
        ));
        assert!(matches!(
            parse(&["--parameter-prefix", "no-slash"]),
            Err(ArgsError::Invalid(_))
        ));
    }

    #[test]
    fn help_and_unknown_flags_are_told_apart() {
        assert!(matches!(
            Config::try_from_args(["aux-worker", "--help"]),
            Err(ArgsError::Display(_))
        ));
        assert!(matches!(
            Config::try_from_args(["aux-worker", "--bogus"]),
            Err(ArgsError::Usage(_))
        ));
    }
}
