//! How an AWS SDK error becomes a port error: the one function that decides what kind of failure
//! it was, and so whether it is worth retrying.
//!
//! The SDK already retries transient failures inside an operation (bounded by
//! [`ClientSettings::max_attempts`](super::ClientSettings)); what reaches the domain has exhausted
//! that budget. The engine still needs to know *what kind* of failure it was — a throttled step is
//! retried later with backoff, a missing resource is a planning error, a denied call needs an
//! operator — so every SDK error is folded into the neutral [`crate::port::Error`] here, once,
//! instead of each adapter guessing from codes. The kind also gives metrics a fixed label
//! vocabulary.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error_chain::error_chain;
pub use crate::port::{Error, ErrorKind, Result, Service};

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

/// Folds an SDK error into a port [`Error`], classifying it with [`classify`]. The message is the
/// service's own when it answered with one, else the error and its causes on one line.
pub fn from_sdk<E>(service: Service, operation: &str, err: &SdkError<E, HttpResponse>) -> Error
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
    Error {
        kind: classify(err),
        service,
        operation: operation.to_owned(),
        code,
        message,
    }
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
}
