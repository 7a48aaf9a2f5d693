//! Every AWS call the worker makes, and the one constructor of its clients.
//!
//! Retries and timeouts are owned by the SDK alone (standard retry mode,
//! `AWS_MAX_ATTEMPTS` attempts, `AWS_CALL_TIMEOUT_SECONDS` per operation);
//! nothing above this module retries. Errors are classified here into
//! [`AwsErrorKind`]; the SDK's message stays in [`AwsError::detail`] for the
//! log and never reaches a response body.

use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_sdk_ssm::types::{ParameterStringFilter, ParameterType};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use service_common::ParameterPrefix;

use crate::config::AwsSettings;
use crate::metrics::Metrics;

/// The AWS operations the worker performs; also the `operation` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    ListBuckets,
    DescribeParameters,
    GetParameter,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::ListBuckets => "ListBuckets",
            Operation::DescribeParameters => "DescribeParameters",
            Operation::GetParameter => "GetParameter",
        }
    }
}

/// How an AWS call failed, as far as a client needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    NotFound,
    Throttled,
    Unavailable,
    Timeout,
    Other,
}

impl AwsErrorKind {
    /// The `outcome` label.
    pub fn outcome(self) -> &'static str {
        match self {
            AwsErrorKind::NotFound => "not_found",
            AwsErrorKind::Throttled => "throttled",
            AwsErrorKind::Unavailable => "unavailable",
            AwsErrorKind::Timeout => "timeout",
            AwsErrorKind::Other => "error",
        }
    }
}

/// A failed AWS call. `detail` is for logs only.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} failed ({kind:?}): {detail}", operation = .operation.as_str())]
pub struct AwsError {
    pub operation: Operation,
    pub kind: AwsErrorKind,
    pub detail: String,
}

/// A parameter as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    pub name: String,
    pub value: String,
    pub kind: ParameterKind,
    pub version: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterKind {
    String,
    StringList,
    SecureString,
}

impl ParameterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterKind::String => "String",
            ParameterKind::StringList => "StringList",
            ParameterKind::SecureString => "SecureString",
        }
    }
}

/// The shared SDK configuration: region, endpoint override, the rustls
/// (ring) HTTPS client, timeouts and the retry policy; credentials come from
/// the SDK's default chain unless the caller sets a provider on the loader.
pub fn config_loader(settings: &AwsSettings) -> ConfigLoader {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let attempts = settings.max_attempts.max(1);
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        // Short backoff: a request is waiting, and the whole operation must fit
        // in its timeout (the SDK's default starts at one second).
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(Duration::from_millis(50))
                .with_max_backoff(Duration::from_millis(500)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                // No separate per-attempt limit: the SDK does not retry an
                // attempt that timed out, so one would only shorten the
                // budget. A stalled call ends at the operation timeout.
                .connect_timeout(settings.call_timeout.min(Duration::from_secs(1)))
                .operation_timeout(settings.call_timeout)
                .build(),
        );
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url.clone());
    }
    loader
}

/// The worker's AWS clients.
#[derive(Debug, Clone)]
pub struct Aws {
    s3: aws_sdk_s3::Client,
    ssm: aws_sdk_ssm::Client,
    metrics: Metrics,
}

impl Aws {
    /// The one constructor used in production.
    pub async fn from_settings(settings: &AwsSettings, metrics: Metrics) -> Self {
        let shared = config_loader(settings).load().await;
        Self::from_sdk_config(&shared, settings, metrics)
    }

    /// Builds the service clients from a loaded configuration.
    pub fn from_sdk_config(shared: &SdkConfig, settings: &AwsSettings, metrics: Metrics) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(shared)
            // Emulators serve buckets by path, not by virtual host.
            .force_path_style(settings.endpoint_url.is_some())
            .build();
        Self {
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            ssm: aws_sdk_ssm::Client::new(shared),
            metrics,
        }
    }

    /// Every bucket's name, all pages.
    pub async fn list_buckets(&self) -> Result<Vec<String>, AwsError> {
        let op = Operation::ListBuckets;
        let started = Instant::now();
        let mut names = Vec::new();
        let mut pages = self.s3.list_buckets().into_paginator().send();
        let result = loop {
            match pages.next().await {
                None => break Ok(()),
                Some(Ok(page)) => names.extend(
                    page.buckets()
                        .iter()
                        .filter_map(|b| b.name().map(str::to_owned)),
                ),
                Some(Err(e)) => break Err(classify(op, e)),
            }
        };
        self.metrics.observe_aws(op, &result, started.elapsed());
        result.map(|()| names)
    }

    /// Every parameter's full name under `prefix` (recursive), all pages,
    /// sorted.
    pub async fn list_parameters(&self, prefix: &ParameterPrefix) -> Result<Vec<String>, AwsError> {
        let op = Operation::DescribeParameters;
        let started = Instant::now();
        let filter = ParameterStringFilter::builder()
            .key("Path")
            .option("Recursive")
            .values(prefix.as_str())
            .build()
            .map_err(|e| AwsError {
                operation: op,
                kind: AwsErrorKind::Other,
                detail: e.to_string(),
            })?;
        let mut names = Vec::new();
        let mut pages = self
            .ssm
            .describe_parameters()
            .parameter_filters(filter)
            .max_results(50)
            .into_paginator()
            .send();
        let result = loop {
            match pages.next().await {
                None => break Ok(()),
                Some(Ok(page)) => names.extend(
                    page.parameters()
                        .iter()
                        .filter_map(|p| p.name())
                        // Defence in depth: never list outside the prefix.
                        .filter(|name| prefix.strip(name).is_some())
                        .map(str::to_owned),
                ),
                Some(Err(e)) => break Err(classify(op, e)),
            }
        };
        self.metrics.observe_aws(op, &result, started.elapsed());
        result.map(|()| {
            names.sort_unstable();
            names.dedup();
            names
        })
    }

    /// One parameter by full name. SecureString values are decrypted only
    /// when `decrypt` is set; otherwise the caller must refuse them.
    pub async fn get_parameter(
        &self,
        full_name: &str,
        decrypt: bool,
    ) -> Result<Parameter, AwsError> {
        let op = Operation::GetParameter;
        let started = Instant::now();
        let result = self
            .ssm
            .get_parameter()
            .name(full_name)
            .with_decryption(decrypt)
            .send()
            .await
            .map_err(|e| classify(op, e))
            .and_then(|out| {
                let p = out.parameter.ok_or_else(|| AwsError {
                    operation: op,
                    kind: AwsErrorKind::Other,
                    detail: "response without a parameter".into(),
                })?;
                let kind = match p.r#type() {
                    Some(ParameterType::SecureString) => ParameterKind::SecureString,
                    Some(ParameterType::StringList) => ParameterKind::StringList,
                    _ => ParameterKind::String,
                };
                Ok(Parameter {
                    name: p.name.unwrap_or_else(|| full_name.to_owned()),
                    value: p.value.unwrap_or_default(),
                    kind,
                    version: p.version,
                })
            });
        self.metrics.observe_aws(op, &result, started.elapsed());
        result
    }
}

const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "ProvisionedThroughputExceededException",
];

const UNAVAILABLE_CODES: &[&str] = &[
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

/// Sorts an SDK error into what the API tells the client.
fn classify<E>(operation: Operation, err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let kind = match &err {
        SdkError::TimeoutError(_) => AwsErrorKind::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => AwsErrorKind::Timeout,
        SdkError::DispatchFailure(_) => AwsErrorKind::Unavailable,
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            if code == "ParameterNotFound" {
                AwsErrorKind::NotFound
            } else if THROTTLING_CODES.contains(&code) {
                AwsErrorKind::Throttled
            } else if UNAVAILABLE_CODES.contains(&code) || se.raw().status().is_server_error() {
                AwsErrorKind::Unavailable
            } else {
                AwsErrorKind::Other
            }
        }
        _ => AwsErrorKind::Other,
    };
    let detail = match &err {
        SdkError::ServiceError(se) => format!(
            "{}: {}",
            se.err().code().unwrap_or("unknown"),
            se.err().message().unwrap_or("")
        ),
        other => format!(
            "{}",
            aws_smithy_types::error::display::DisplayErrorContext(other)
        ),
    };
    AwsError {
        operation,
        kind,
        detail,
    }
}
