//! Authentication, authorisation, auditing and the request deadline.
//!
//! Authorisation follows the HTTP method, so a new route cannot forget it: reading (`GET`,
//! `HEAD`) needs a `viewer` token, anything else — every mutating request — needs an `operator`
//! token and is written to the audit log with the token's name, the route, its parameters and the
//! outcome. Authentication comes before routing: under `/v1` an unknown path or a wrong method
//! answers 404 or 405 only to a valid token, so the routes cannot be mapped without one. Every
//! mutating request gets an audit line, refused ones too (401, 403, 404, 405, 413), with the token
//! name when one was recognised.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, OriginalUri, Request, State};
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

fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD)
}

/// The audit line of a mutating request refused before it reached a handler.
fn audit_refusal(req: &Request, token: Option<&str>, error: ApiError) -> Response {
    let response = error.into_response();
    if is_mutating(req.method()) {
        tracing::warn!(
            target: "failoverd::audit",
            audit = true,
            token = token.unwrap_or("-"),
            method = %req.method(),
            route = %full_path(req),
            outcome = response.status().as_u16(),
            "refused mutating request"
        );
    }
    response
}

/// Copies the matched route template into the response, so [`authorize`] (which runs before
/// routing) can name it in the audit line. Layered on the routes only.
pub async fn expose_route(req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(req).await;
    if let Some(matched) = matched {
        response.extensions_mut().insert(matched);
    }
    response
}

/// Checks the bearer token and role for everything under `/v1`, before routing.
pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(token) = bearer(&req) else {
        return audit_refusal(
            &req,
            None,
            ApiError::unauthorized("missing bearer token (Authorization: Bearer <token>)"),
        );
    };
    let Some(principal) = state.tokens.authenticate(token) else {
        return audit_refusal(&req, None, ApiError::unauthorized("invalid token"));
    };
    let mutating = is_mutating(req.method());
    let needed = if mutating {
        Role::Operator
    } else {
        Role::Viewer
    };
    if principal.role < needed {
        let refusal = ApiError::forbidden(format!(
            "token {:?} has role {}; this request needs {}",
            principal.name,
            principal.role.as_str(),
            needed.as_str()
        ));
        return audit_refusal(&req, Some(&principal.name), refusal);
    }
    if !mutating {
        req.extensions_mut().insert(principal);
        return next.run(req).await;
    }

    // Mutating: read the body (at most `server.body_limit_bytes`) so the audit line can carry the
    // parameters, then hand it on unchanged. A declared length over the limit is refused at once,
    // without waiting for a body that will not be read.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.body_limit as u64) {
        let refusal = too_large(format!(
            "the body of {} bytes exceeds server.body_limit_bytes ({})",
            declared.unwrap_or_default(),
            state.body_limit
        ));
        return audit_refusal(&req, Some(&principal.name), refusal);
    }
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or("").to_owned();
    let path = full_path(&req);
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, state.body_limit).await {
        Ok(b) => b,
        Err(e) => {
            let req = Request::from_parts(parts, Body::empty());
            let refusal = too_large(format!("request body refused: {e}"));
            return audit_refusal(&req, Some(&principal.name), refusal);
        }
    };
    let params = audit_params(&bytes);
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(principal.clone());
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    // The route template when a route matched; the path itself for a 404 or 405.
    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| path.clone(), |m| m.as_str().to_owned());
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

/// The path as the client sent it (a nested router sees it without its prefix).
fn full_path(req: &Request) -> String {
    req.extensions()
        .get::<OriginalUri>()
        .map_or(req.uri(), |o| &o.0)
        .path()
        .to_owned()
}

fn too_large(message: String) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", message)
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
