//! A follower forwards what only the leader can serve.
//!
//! With `state.store: kubernetes` both replicas sit behind one Service, so an operator's request
//! lands on either. Reads are served by whichever replica gets them (both read the shared
//! journal); a request only the leader can serve — anything that is not a `GET`/`HEAD`, and a
//! run's event stream, which the leader drives — is forwarded by a follower to the leader's API,
//! at the URL the leader wrote on the Lease ([`crate::kube::lease::API_URL_ANNOTATION`]), with
//! the same method, path, headers (the token included: the leader authenticates and audits it
//! again) and body, and the leader's answer is passed back as it comes (streamed). The answer
//! carries `Failoverd-Forwarded-To` with the leader's URL. A request is forwarded once at most
//! ([`FORWARDED`] marks it): two replicas that each believe the other leads answer `503
//! not_leader` instead of passing a request back and forth. With no leader known, or one that
//! cannot be reached, the follower answers `503 not_leader` saying so.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;

use super::{ApiError, AppState};
use crate::engine::Leadership;

/// Set on a forwarded request (to the forwarding replica's URL, when known).
pub const FORWARDED: &str = "failoverd-forwarded-by";
/// Set on the answer to a forwarded request: the leader's URL.
pub const FORWARDED_TO: &str = "failoverd-forwarded-to";

/// The server's keep-alive on event streams is 15 s: a forwarded stream silent for this long is
/// dead.
const STREAM_READ_TIMEOUT: Duration = Duration::from_secs(45);

/// What a follower needs to forward: where the leader answers (whether this replica leads is
/// the runner's, [`crate::engine::RunnerHandle::leadership`]).
pub struct LeaderForward {
    leadership: Arc<dyn Leadership>,
    http: reqwest::Client,
}

impl LeaderForward {
    pub fn new(
        leadership: Arc<dyn Leadership>,
        connect_timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .read_timeout(STREAM_READ_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { leadership, http })
    }
}

/// Whether `req` needs the leader.
fn leader_only(method: &Method, path: &str) -> bool {
    !matches!(*method, Method::GET | Method::HEAD) || path.ends_with("/events")
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and those the client recomputes are not copied.
fn copied(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

/// The middleware: forwards a leader-only request when this replica does not lead.
pub async fn forward_to_leader(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let Some(forward) = state.forward.as_ref() else {
        return next.run(req).await;
    };
    if *state.runner.leadership().borrow() == Some(true)
        || !leader_only(req.method(), req.uri().path())
    {
        return next.run(req).await;
    }
    if req.headers().contains_key(FORWARDED) {
        return ApiError::unavailable(
            "not_leader",
            "this replica does not lead, and the request was already forwarded to it as the leader; retry shortly",
        )
        .into_response();
    }
    let Some(leader) = forward.leadership.leader_url() else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    // Under the nested `/v1` router the URI has lost its prefix; the original one has it.
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.clone(), |o| o.0.clone());
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    let url = format!("{}{path}", leader.trim_end_matches('/'));
    let body = match axum::body::to_bytes(body, state.body_limit).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::bad_request("invalid_request", format!("cannot read the body: {e}"))
                .into_response()
        }
    };
    let mut out = forward.http.request(parts.method.clone(), &url);
    for (name, value) in &parts.headers {
        if copied(name) {
            out = out.header(name, value);
        }
    }
    out = out.header(FORWARDED, "1");
    if !parts.uri.path().ends_with("/events") {
        // Not an event stream: the same deadline as a request served here.
        out = out.timeout(state.request_timeout);
    }
    let answer = match out.body(body).send().await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(leader = %leader, error = %e, "cannot forward a request to the leader");
            return ApiError::unavailable(
                "not_leader",
                format!(
                    "this replica does not lead; the leader at {leader} could not be reached: {e}"
                ),
            )
            .into_response();
        }
    };
    let mut response = Response::builder()
        .status(StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY));
    for (name, value) in answer.headers() {
        if copied(name) {
            response = response.header(name, value);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&leader) {
        response = response.header(FORWARDED_TO, v);
    }
    let stream = answer.bytes_stream().map_err(std::io::Error::other);
    response
        .body(Body::from_stream(stream))
        .unwrap_or_else(|e| {
            ApiError::internal(format!("cannot build the forwarded answer: {e}")).into_response()
        })
}

/// The URL to advertise for `listen` (the bound address): `configured` when set, else from the
/// `POD_IP` environment variable (the Kubernetes downward API), else none.
pub fn advertised_url(configured: Option<&str>, listen: std::net::SocketAddr) -> Option<String> {
    if let Some(c) = configured {
        return Some(c.trim_end_matches('/').to_owned());
    }
    let ip: std::net::IpAddr = std::env::var("POD_IP").ok()?.trim().parse().ok()?;
    Some(match ip {
        std::net::IpAddr::V4(v4) => format!("http://{v4}:{}", listen.port()),
        std::net::IpAddr::V6(v6) => format!("http://[{v6}]:{}", listen.port()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_leader_serves_is_forwarded() {
        assert!(leader_only(&Method::POST, "/v1/runs"));
        assert!(leader_only(&Method::POST, "/v1/policy/acknowledge"));
        assert!(leader_only(&Method::GET, "/v1/runs/x/events"));
        assert!(!leader_only(&Method::GET, "/v1/runs/x"));
        assert!(!leader_only(&Method::GET, "/v1/status"));
        assert!(!leader_only(&Method::HEAD, "/v1/runs"));
    }

    #[test]
    fn hop_by_hop_headers_stay_behind() {
        for h in ["connection", "transfer-encoding", "host", "content-length"] {
            assert!(!copied(&HeaderName::from_static(h)), "{h}");
        }
        for h in [
            "authorization",
            "idempotency-key",
            "content-type",
            "last-event-id",
        ] {
            assert!(copied(&HeaderName::from_static(h)), "{h}");
        }
    }

    #[test]
    fn the_advertised_url_is_configured_or_from_the_pod_ip() {
        let listen: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(
            advertised_url(Some("http://failoverd-0.example:8080/"), listen).as_deref(),
            Some("http://failoverd-0.example:8080")
        );
    }
}
