//! The one error type every AWS adapter returns, and the one function that decides whether an SDK
//! error is worth retrying.
//!
//! The SDK already retries transient failures inside an operation (bounded by
//! [`ClientSettings::max_attempts`](super::ClientSettings)); what reaches the domain has exhausted
//! that budget. The engine still needs to know *what kind* of failure it was — a throttled step is
//! retried later with backoff, a missing resource is a planning error, a denied call needs an
//! operator — so every SDK error is folded into an [`ErrorKind`] here, once, instead of each adapter
//! guessing from codes. The kind also gives metrics a fixed label vocabulary.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Result of a port call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Error codes AWS services use for throttling. This is the SDK's own list (`aws-runtime`
/// `THROTTLING_ERRORS`) so our classification agrees with the SDK's retry decisions; it includes
/// Route 53's `Throttling` and `PriorRequestNotComplete` and Cognito's `TooManyRequestsException`.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Codes that mean "the service is temporarily unable to answer", independent of HTTP status.
const TRANSIENT_CODES: &[&str] = &[
    "RequestTimeout",
    "RequestTimeoutException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalError",
    "InternalFailure",
    "InternalErrorException",
    "InternalServerError",
    "InternalServerException",
];

/// Codes that name a missing resource, across the services failoverd uses. Anything ending in
/// `NotFound`, `NotFoundFault` or `NotFoundException` also counts (RDS `GlobalClusterNotFoundFault`,
/// `DBClusterNotFoundFault`, CloudWatch `ResourceNotFound`, Cognito `UserNotFoundException`, ...).
const NOT_FOUND_CODES: &[&str] = &[
    "NoSuchHostedZone",
    "NoSuchHealthCheck",
    "NoSuchChange",
    "NoSuchEntity",
];

/// Codes that mean the caller's identity is not allowed to do this (or is not valid at all).
const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "NotAuthorizedException",
];

/// What went wrong, as far as a caller deciding what to do next is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The service rate-limited us. Retry later, slower.
    Throttled,
    /// The service or the network path to it failed (5xx, connection refused/reset). Retry.
    Unavailable,
    /// A connect, attempt or operation timeout fired. Retry, but the effect may have happened.
    Timeout,
    /// The named resource does not exist.
    NotFound,
    /// The request was rejected as invalid (bad parameter, wrong state for the operation).
    Invalid,
    /// Our credentials are missing, invalid or not allowed to do this.
    AccessDenied,
    /// Anything else; not retried.
    Other,
}

impl ErrorKind {
    /// Whether a later retry of the same call may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Throttled | Self::Unavailable | Self::Timeout)
    }

    /// Fixed, low-cardinality label for metrics (`failoverd_aws_errors_total{kind=...}`).
    pub fn metric_label(self) -> &'static str {
        match self {
            Self::Throttled => "throttled",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::NotFound => "not_found",
            Self::Invalid => "invalid",
            Self::AccessDenied => "access_denied",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.metric_label())
    }
}

/// The AWS service an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    Route53,
    Rds,
    CloudWatch,
    Cognito,
    Backup,
}

impl Service {
    /// Fixed label, also used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Route53 => "route53",
            Self::Rds => "rds",
            Self::CloudWatch => "cloudwatch",
            Self::Cognito => "cognito",
            Self::Backup => "backup",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An AWS call that failed, after the SDK's own retries. Serializable so it can be written to the
/// run journal as a step's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{service} {operation} failed ({kind}{}): {message}", code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
pub struct Error {
    pub kind: ErrorKind,
    pub service: Service,
    /// The API operation, e.g. `ChangeResourceRecordSets`.
    pub operation: String,
    /// The service's error code when it answered with one (e.g. `Throttling`).
    pub code: Option<String>,
    pub message: String,
}

impl Error {
    /// An error that did not come from the SDK (e.g. a response missing a field AWS documents as
    /// always present, or an argument the adapter refuses before calling).
    pub fn new(
        kind: ErrorKind,
        service: Service,
        operation: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            service,
            operation: operation.into(),
            code: None,
            message: message.into(),
        }
    }

    /// Folds an SDK error into an [`Error`], classifying it with [`classify`].
    pub fn from_sdk<E>(service: Service, operation: &str, err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (code, message) = match err {
            SdkError::ServiceError(service_err) => {
                let inner = service_err.err();
                (
                    inner.code().map(str::to_owned),
                    inner
                        .message()
                        .map(str::to_owned)
                        .unwrap_or_else(|| error_chain(inner)),
                )
            }
            other => (None, error_chain(other)),
        };
        Self {
            kind: classify(err),
            service,
            operation: operation.to_owned(),
            code,
            message,
        }
    }

    /// A response that AWS documents as always carrying `field` came without it.
    pub(crate) fn missing_field(service: Service, operation: &str, field: &str) -> Self {
        Self::new(
            ErrorKind::Other,
            service,
            operation,
            format!("response has no {field}"),
        )
    }

    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// Fixed label for metrics: the error kind.
    pub fn metric_label(&self) -> &'static str {
        self.kind.metric_label()
    }
}

/// Renders an error and its sources on one line: the SDK's top-level messages ("dispatch failure")
/// are useless without the cause underneath.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// Classifies an SDK error. Retryable kinds are [`ErrorKind::Throttled`] (throttling codes),
/// [`ErrorKind::Unavailable`] (5xx, transient codes, connection/IO failures) and
/// [`ErrorKind::Timeout`] (any timeout: connect, attempt, operation).
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> ErrorKind
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ConstructionFailure(_) => ErrorKind::Invalid,
        SdkError::TimeoutError(_) => ErrorKind::Timeout,
        SdkError::DispatchFailure(failure) => {
            if failure.is_timeout() {
                ErrorKind::Timeout
            } else if failure.is_user() {
                // The request could not be sent because of something we configured (a bad
                // endpoint URL, a TLS setup error); retrying will not fix it.
                ErrorKind::Invalid
            } else {
                ErrorKind::Unavailable
            }
        }
        SdkError::ResponseError(response) => classify_status(response.raw().status().as_u16()),
        SdkError::ServiceError(service_err) => classify_code(
            service_err.err().code(),
            service_err.raw().status().as_u16(),
        ),
        // `SdkError` is non-exhaustive; a future variant is not something we know how to retry.
        _ => ErrorKind::Other,
    }
}

/// Whether a retry of the call that produced `err` may succeed.
pub fn is_retryable<E>(err: &SdkError<E, HttpResponse>) -> bool
where
    E: ProvideErrorMetadata,
{
    classify(err).is_retryable()
}

fn classify_status(status: u16) -> ErrorKind {
    match status {
        429 => ErrorKind::Throttled,
        408 => ErrorKind::Timeout,
        500..=599 => ErrorKind::Unavailable,
        401 | 403 => ErrorKind::AccessDenied,
        404 => ErrorKind::NotFound,
        _ => ErrorKind::Other,
    }
}

fn classify_code(code: Option<&str>, status: u16) -> ErrorKind {
    let Some(code) = code else {
        return classify_status(status);
    };
    if THROTTLING_CODES.contains(&code) {
        ErrorKind::Throttled
    } else if TRANSIENT_CODES.contains(&code) {
        if code.starts_with("RequestTimeout") {
            ErrorKind::Timeout
        } else {
            ErrorKind::Unavailable
        }
    } else if NOT_FOUND_CODES.contains(&code)
        || code.ends_with("NotFound")
        || code.ends_with("NotFoundFault")
        || code.ends_with("NotFoundException")
    {
        ErrorKind::NotFound
    } else if ACCESS_DENIED_CODES.contains(&code) {
        ErrorKind::AccessDenied
    } else if (500..=599).contains(&status) {
        ErrorKind::Unavailable
    } else if status == 429 {
        ErrorKind::Throttled
    } else if (400..=499).contains(&status) {
        ErrorKind::Invalid
    } else {
        ErrorKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_of_every_service_are_throttled() {
        for code in [
            "Throttling",
            "PriorRequestNotComplete",
            "TooManyRequestsException",
            "ThrottlingException",
        ] {
            assert_eq!(
                classify_code(Some(code), 400),
                ErrorKind::Throttled,
                "{code}"
            );
        }
    }

    #[test]
    fn missing_resources_are_not_found() {
        for code in [
            "NoSuchHostedZone",
            "NoSuchHealthCheck",
            "NoSuchChange",
            "GlobalClusterNotFoundFault",
            "DBClusterNotFoundFault",
            "ResourceNotFoundException",
            "UserNotFoundException",
            "ResourceNotFound",
        ] {
            assert_eq!(
                classify_code(Some(code), 400),
                ErrorKind::NotFound,
                "{code}"
            );
            assert!(!ErrorKind::NotFound.is_retryable());
        }
    }

    #[test]
    fn status_decides_when_the_code_is_unknown() {
        assert_eq!(classify_code(Some("Weird"), 503), ErrorKind::Unavailable);
        assert_eq!(classify_code(Some("Weird"), 400), ErrorKind::Invalid);
        assert_eq!(classify_code(None, 500), ErrorKind::Unavailable);
        assert_eq!(classify_code(None, 429), ErrorKind::Throttled);
        assert_eq!(
            classify_code(Some("AccessDenied"), 403),
            ErrorKind::AccessDenied
        );
        assert_eq!(
            classify_code(Some("InvalidGlobalClusterStateFault"), 400),
            ErrorKind::Invalid
        );
    }

    #[test]
    fn only_transient_kinds_are_retryable() {
        let retryable: Vec<_> = [
            ErrorKind::Throttled,
            ErrorKind::Unavailable,
            ErrorKind::Timeout,
            ErrorKind::NotFound,
            ErrorKind::Invalid,
            ErrorKind::AccessDenied,
            ErrorKind::Other,
        ]
        .into_iter()
        .filter(|k| k.is_retryable())
        .collect();
        assert_eq!(
            retryable,
            vec![
                ErrorKind::Throttled,
                ErrorKind::Unavailable,
                ErrorKind::Timeout
            ]
        );
    }

    #[test]
    fn display_names_service_operation_and_code() {
        let err = Error {
            kind: ErrorKind::Throttled,
            service: Service::Route53,
            operation: "ChangeResourceRecordSets".into(),
            code: Some("Throttling".into()),
            message: "Rate exceeded".into(),
        };
        assert_eq!(
            err.to_string(),
            "route53 ChangeResourceRecordSets failed (throttled, Throttling): Rate exceeded"
        );
        assert_eq!(err.metric_label(), "throttled");
    }
}
