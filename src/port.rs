//! The error vocabulary every port call speaks, whichever adapter is behind the port.
//!
//! Domain modules define small traits for what they need from the world (`dns::DnsApi`,
//! `replication::GlobalDatabaseApi`, `cognito::UserDirectory`, ...); their methods return this
//! module's [`Result`]. A caller deciding what to do next needs to know *what kind* of failure it
//! was — a throttled step is retried later with backoff, a missing resource is a planning error, a
//! denied call needs an operator — and, for messages and metrics, which service and operation
//! failed and what the provider said. It never needs the SDK's own error types, so the domain does
//! not depend on them: the AWS adapter (`aws::error`) classifies each SDK error once and
//! folds it into an [`Error`] here.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Result of a port call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    /// A write lost an optimistic-concurrency race (Kubernetes `409 Conflict` on a stale
    /// `resourceVersion`). Read again and retry.
    Conflict,
    /// Anything else; not retried.
    Other,
}

impl ErrorKind {
    /// Whether a later retry of the same call may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::Throttled | Self::Unavailable | Self::Timeout | Self::Conflict
        )
    }

    /// Whether the service refused the request without acting on it (rate-limited, invalid,
    /// denied, no such resource): a write that failed this way changed nothing. A 5xx, a timeout
    /// or a dropped connection may have been acted on.
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            Self::Throttled | Self::Invalid | Self::AccessDenied | Self::NotFound
        )
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
            Self::Conflict => "conflict",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.metric_label())
    }
}

/// The service a failed call went to: a fixed label for messages and metrics, nothing the domain
/// branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    Route53,
    Rds,
    CloudWatch,
    Cognito,
    Backup,
    /// A Kubernetes API server (the GitOps steps).
    Kubernetes,
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
            Self::Kubernetes => "kubernetes",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A port call that failed, after the adapter's own retries. Serializable so it can be written to
/// the run journal as a step's error.
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
    /// An error without a provider code (e.g. a response missing a field the provider documents
    /// as always present, an argument the adapter refuses before calling, or a test fake).
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

    /// A response that the provider documents as always carrying `field` came without it.
    pub fn missing_field(service: Service, operation: &str, field: &str) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_kinds_are_retryable() {
        let retryable: Vec<_> = [
            ErrorKind::Throttled,
            ErrorKind::Unavailable,
            ErrorKind::Timeout,
            ErrorKind::NotFound,
            ErrorKind::Invalid,
            ErrorKind::AccessDenied,
            ErrorKind::Conflict,
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
                ErrorKind::Timeout,
                ErrorKind::Conflict
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

    /// The journal form is serde's snake_case of the variants — `cloud_watch`, unlike the metric
    /// label `cloudwatch` — and stays so: journals already written must still read.
    #[test]
    fn journal_form_is_snake_case() {
        let err = Error::missing_field(Service::CloudWatch, "DescribeAlarms", "StateValue");
        assert_eq!(
            serde_json::to_value(&err).ok(),
            Some(serde_json::json!({
                "kind": "other",
                "service": "cloud_watch",
                "operation": "DescribeAlarms",
                "code": null,
                "message": "response has no StateValue",
            }))
        );
    }
}
