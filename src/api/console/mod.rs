//! The failover console: a static page (HTML, CSS, plain JavaScript) compiled into the binary and
//! served at `GET /`, with its assets under `/console/`.
//!
//! The page carries no data. It asks for a token, keeps it in the tab (`sessionStorage`), and
//! reads everything it shows from the authenticated `/v1` routes with
//! `Authorization: Bearer <token>` — status and runs by `fetch`, a run's timeline from
//! `/v1/runs/{id}/events` read as a stream (an `EventSource` cannot send that header), resumed
//! with `Last-Event-ID`. Approve and abort are the API's `POST`s; the API decides, the page shows
//! its answer. So the console adds no unauthenticated data and no second authorisation path:
//! what these routes serve is the same bytes for everyone, public in the binary anyway.
//!
//! Every answer carries a strict Content-Security-Policy (scripts, styles and connections from
//! this origin only, no inline script or style, no framing) and `Cache-Control: no-cache` with a
//! strong `ETag`: a browser revalidates on each load (a 304 without a body), so a page never runs
//! an old script against an upgraded daemon.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use super::ApiError;

/// Where the assets live; the page refers to them by these paths.
pub const ASSET_PREFIX: &str = "/console/";

/// The policy for every console answer. `connect-src 'self'` is what lets the page call `/v1`;
/// nothing may be loaded from elsewhere, run inline, framed, or submitted by a form.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// One embedded file.
pub struct Asset {
    /// The last segment of its path (`/` for the page itself).
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// The page and its assets.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("index.html"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("console.js"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("console.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("favicon.svg"),
    },
];

/// Each asset's strong entity tag: a hash of its bytes, computed once.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            let tag = format!("\"{}\"", hex::encode(&digest[..16]));
            HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
        })
        .collect()
});

/// The console's routes (they need no state and no token).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route("/console/{asset}", get(asset))
}

async fn page(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == name) {
        // The page is served at `/` only, so it has one address.
        Some(i) if i != 0 => serve(i, &headers),
        _ => ApiError::not_found(format!("no console asset {name:?}")).into_response(),
    }
}

/// Whether an `If-None-Match` header names `etag` (or is `*`). Weak comparison, as RFC 9110
/// prescribes for `If-None-Match`: a `W/` prefix does not matter.
fn matches(if_none_match: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(list) = if_none_match.to_str() else {
        return false;
    };
    let etag = etag.to_str().unwrap_or_default();
    list.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

fn serve(index: usize, request: &HeaderMap) -> Response {
    let (Some(asset), Some(etag)) = (ASSETS.get(index), ETAGS.get(index)) else {
        return ApiError::internal("console asset table").into_response();
    };
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| matches(v, etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut req = Request::get(path);
        if let Some(tag) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        routes::<()>()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn text(name: &str) -> &'static str {
        let asset = ASSETS.iter().find(|a| a.name == name).unwrap();
        std::str::from_utf8(asset.body).unwrap()
    }

    #[tokio::test]
    async fn serves_each_asset_with_its_type_and_the_policy() {
        for (path, content_type) in [
            ("/", "text/html; charset=utf-8"),
            ("/console/console.js", "text/javascript; charset=utf-8"),
            ("/console/console.css", "text/css; charset=utf-8"),
            ("/console/favicon.svg", "image/svg+xml"),
        ] {
            let r = get(path, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            let h = r.headers();
            assert_eq!(h[header::CONTENT_TYPE], content_type, "{path}");
            assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(h[header::CACHE_CONTROL], "no-cache");
            assert!(h[header::ETAG].to_str().unwrap().starts_with('"'), "{path}");
        }
    }

    #[tokio::test]
    async fn the_page_has_one_address_and_unknown_assets_are_404() {
        for path in [
            "/console/index.html",
            "/console/nope.js",
            "/console/..%2fmod.rs",
        ] {
            let r = get(path, None).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        }
    }

    #[tokio::test]
    async fn a_matching_etag_gets_304_without_a_body() {
        let first = get("/console/console.js", None).await;
        let tag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
        let again = get("/console/console.js", Some(&tag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[header::ETAG], tag.as_str());
        let body = axum::body::to_bytes(again.into_body(), 1024).await.unwrap();
        assert!(body.is_empty());
        let listed = get("/console/console.js", Some(&format!("\"x\", W/{tag}"))).await;
        assert_eq!(listed.status(), StatusCode::NOT_MODIFIED);
        // Another asset's tag, or a stale one, gets the body.
        let other = get("/console/console.css", Some(&tag)).await;
        assert_eq!(other.status(), StatusCode::OK);
        let stale = get("/", Some("\"0123\"")).await;
        assert_eq!(stale.status(), StatusCode::OK);
    }

    /// The policy forbids inline code, so the page must have none: every script and stylesheet
    /// is a served asset, no element has an event-handler attribute or a `style`.
    #[test]
    fn the_page_has_no_inline_script_or_style_and_its_references_resolve() {
        let html = text("index.html");
        let lower = html.to_ascii_lowercase();
        assert!(!lower.contains("<style"), "inline <style>");
        assert!(!lower.contains(" style="), "inline style attribute");
        assert!(!lower.contains("javascript:"), "javascript: URL");
        for attr in [
            " onclick=",
            " onload=",
            " onsubmit=",
            " onerror=",
            " oninput=",
        ] {
            assert!(!lower.contains(attr), "inline handler {attr}");
        }
        let mut scripts = 0;
        for tag in lower.split("<script").skip(1) {
            let open = &tag[..tag.find('>').unwrap()];
            assert!(open.contains(" src="), "inline script: <script{open}>");
            assert!(
                tag[open.len() + 1..].starts_with("</script>"),
                "script body"
            );
            scripts += 1;
        }
        assert_eq!(scripts, 1);
        // Every `/console/...` reference is an asset that is served.
        let mut refs = 0;
        for part in html.split(ASSET_PREFIX).skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                .collect();
            assert!(
                ASSETS.iter().skip(1).any(|a| a.name == name),
                "{name} is not served"
            );
            refs += 1;
        }
        assert_eq!(refs, 3, "console.js, console.css, favicon.svg");
    }

    /// Whatever the API returns (a run's reason, an error message) is shown as text: the script
    /// never parses strings as HTML.
    #[test]
    fn the_script_never_writes_html() {
        let js = text("console.js");
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!js.contains(sink), "console.js uses {sink}");
        }
        assert!(js.contains("\"use strict\";"));
    }
}
