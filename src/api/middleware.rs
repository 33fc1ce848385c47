//! Authentication, authorisation, auditing and the request deadline.
//!
//! Authorisation follows the HTTP method, so a new route cannot forget it: reading (`GET`,
//! `HEAD`) needs a `viewer` token, anything else — every mutating request — needs an `operator`
//! token and is written to the audit log with the token's name, the route, its parameters and the
//! outcome.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::{Principal, Role};
use super::{ApiError, AppState};

/// Most audit parameters are small JSON bodies; a larger one is cut so one request cannot flood
/// the log.
const AUDIT_PARAMS_MAX: usize = 4096;

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(token.trim())
    } else {
        None
    }
}

/// Checks the bearer token and role for every `/v1` route.
pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(token) = bearer(&req) else {
        return ApiError::unauthorized("missing bearer token (Authorization: Bearer <token>)")
            .into_response();
    };
    let Some(principal) = state.tokens.authenticate(token) else {
        return ApiError::unauthorized("invalid token").into_response();
    };
    let mutating = !matches!(*req.method(), Method::GET | Method::HEAD);
    let needed = if mutating {
        Role::Operator
    } else {
        Role::Viewer
    };
    if principal.role < needed {
        let route = route_of(&req);
        if mutating {
            tracing::warn!(
                target: "failoverd::audit",
                audit = true,
                token = %principal.name,
                method = %req.method(),
                route = %route,
                outcome = 403,
                "refused: {} role cannot change anything",
                principal.role.as_str()
            );
        }
        return ApiError::forbidden(format!(
            "token {:?} has role {}; this request needs {}",
            principal.name,
            principal.role.as_str(),
            needed.as_str()
        ))
        .into_response();
    }
    if !mutating {
        req.extensions_mut().insert(principal);
        return next.run(req).await;
    }

    // Mutating: read the body (at most `server.body_limit_bytes`) so the audit line can carry the
    // parameters, then hand it on unchanged.
    let route = route_of(&req);
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or("").to_owned();
    let path = req.uri().path().to_owned();
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, state.body_limit).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request body refused: {e}"),
            )
            .into_response()
        }
    };
    let params = audit_params(&bytes);
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(principal.clone());
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    tracing::info!(
        target: "failoverd::audit",
        audit = true,
        token = %principal.name,
        role = principal.role.as_str(),
        method = %method,
        route = %route,
        path = %path,
        query = %query,
        params = %params,
        outcome = status,
        duration_ms = started.elapsed().as_millis() as u64,
        "mutating request"
    );
    response
}

fn route_of(req: &Request) -> String {
    req.extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| req.uri().path().to_owned())
}

fn audit_params(bytes: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v) => v.to_string(),
        Err(_) if bytes.is_empty() => String::new(),
        Err(_) => format!("<{} bytes, not JSON>", bytes.len()),
    };
    if text.len() > AUDIT_PARAMS_MAX {
        let mut end = AUDIT_PARAMS_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &text[..end])
    } else {
        text
    }
}

/// Bounds the time to produce a response head. Streams (server-sent events) are not cut: their
/// head is sent at once.
pub async fn deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request did not complete within {}",
                humantime::format_duration(state.request_timeout)
            ),
        )
        .into_response(),
    }
}

/// The principal a request was made with (set by [`authorize`]).
pub fn principal(req_extensions: &http::Extensions) -> Option<&Principal> {
    req_extensions.get::<Principal>()
}
