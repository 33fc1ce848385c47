//! The one error shape of the API: `{"error": {"code": "...", "message": "..."}}`.
//!
//! `code` is a stable machine-readable token (clients switch on it); `message` is for people and
//! names what is wrong (the request field, the run, the state it is in). The HTTP status of each
//! engine error is chosen here ([`HttpStatus`]): the engine knows nothing about HTTP.

use axum::extract::rejection::JsonRejection;
use axum::extract::FromRequest;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::engine::{RunError, StartError};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(Body {
                error: Inner {
                    code: self.code,
                    message: &self.message,
                },
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"failoverd\""),
            );
        }
        response
    }
}

/// The HTTP status an error maps to in the API.
pub trait HttpStatus {
    fn http_status(&self) -> StatusCode;
}

impl HttpStatus for StartError {
    fn http_status(&self) -> StatusCode {
        match self {
            StartError::UnknownPlan { .. } | StartError::BadParams { .. } => {
                StatusCode::BAD_REQUEST
            }
            StartError::RunActive { .. } => StatusCode::CONFLICT,
            StartError::IdempotencyKeyReused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            StartError::NotLeader | StartError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            StartError::InvalidPlan { .. } | StartError::Store(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl HttpStatus for RunError {
    fn http_status(&self) -> StatusCode {
        match self {
            RunError::NotFound { .. } => StatusCode::NOT_FOUND,
            RunError::NotWaitingApproval { .. } | RunError::AlreadyFinished { .. } => {
                StatusCode::CONFLICT
            }
            RunError::NotLeader | RunError::NotDriven { .. } | RunError::Stopped => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            RunError::CorruptJournal { .. } | RunError::Store(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl From<StartError> for ApiError {
    fn from(e: StartError) -> Self {
        ApiError::new(e.http_status(), e.code(), e.to_string())
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        ApiError::new(e.http_status(), e.code(), e.to_string())
    }
}

/// A JSON request body whose errors name the offending field, in the API's error shape.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    e.body_text(),
                ))
            }
        };
        if bytes.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_json",
                "the request body must be a JSON object",
            ));
        }
        if !content_type.as_deref().is_some_and(is_json) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                match content_type {
                    Some(t) => format!("the body is sent as {t:?}; send it as application/json"),
                    None => "the body has no Content-Type; send it as application/json".into(),
                },
            ));
        }
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize(de) {
            Ok(v) => Ok(JsonBody(v)),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let message = if path == "." || path == "?" || path.is_empty() {
                    inner.to_string()
                } else {
                    format!("{path}: {inner}")
                };
                let code = if inner.is_syntax() || inner.is_eof() {
                    "invalid_json"
                } else {
                    "invalid_request"
                };
                Err(ApiError::bad_request(code, message))
            }
        }
    }
}

/// `application/json` or a `+json` type, whatever its parameters (`; charset=utf-8`).
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

/// Kept for handlers that use axum's own `Json` extractor.
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::new(rejection.status(), "invalid_json", rejection.body_text())
    }
}
