//! The worker's errors and their one mapping to HTTP.

use std::borrow::Cow;

use service_common::{ErrorCode, ParameterNameError};

use crate::aws::{AwsError, AwsErrorKind};

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid parameter name: {0}")]
    InvalidName(#[from] ParameterNameError),
    #[error("parameter is a SecureString and they are not exposed")]
    SecureParameter,
    #[error("parameter not found")]
    ParameterNotFound,
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("too many requests in flight")]
    Overloaded,
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The code, and so the status, a client sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::InvalidName(_) => ErrorCode::InvalidParameterName,
            ApiError::SecureParameter => ErrorCode::SecureParameter,
            ApiError::ParameterNotFound => ErrorCode::ParameterNotFound,
            ApiError::NotFound => ErrorCode::NotFound,
            ApiError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            ApiError::Overloaded => ErrorCode::Overloaded,
            ApiError::Internal(_) => ErrorCode::Internal,
            ApiError::Aws(e) => match e.kind {
                AwsErrorKind::NotFound => ErrorCode::ParameterNotFound,
                AwsErrorKind::Throttled => ErrorCode::AwsThrottled,
                AwsErrorKind::Unavailable => ErrorCode::AwsUnavailable,
                AwsErrorKind::Timeout => ErrorCode::AwsTimeout,
                AwsErrorKind::Other => ErrorCode::AwsError,
            },
        }
    }

    /// The message a client sees: the name rule that failed, or the code's
    /// fixed text. Never the SDK's message.
    pub fn public_message(&self) -> Cow<'static, str> {
        match self {
            ApiError::InvalidName(e) => Cow::Owned(e.to_string()),
            other => Cow::Borrowed(other.code().default_message()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::Operation;

    fn aws(kind: AwsErrorKind) -> ApiError {
        ApiError::Aws(AwsError {
            operation: Operation::GetParameter,
            kind,
            detail: "AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/x is not authorized".into(),
        })
    }

    #[test]
    fn aws_errors_map_to_statuses_without_detail() {
        for (kind, status) in [
            (AwsErrorKind::NotFound, 404),
            (AwsErrorKind::Throttled, 503),
            (AwsErrorKind::Unavailable, 503),
            (AwsErrorKind::Timeout, 504),
            (AwsErrorKind::Other, 502),
        ] {
            let e = aws(kind);
            assert_eq!(e.code().status(), status);
            let msg = e.public_message();
            assert!(
                !msg.contains("arn:") && !msg.contains("123456789012"),
                "{msg}"
            );
        }
    }

    #[test]
    fn name_errors_explain_the_rule() {
        let e = ApiError::from(ParameterNameError::DotSegment);
        assert_eq!(e.code().status(), 400);
        assert!(e.public_message().contains("'..'"));
    }
}
