//! `GET /v1/runs/{id}/report`: a run's report ([`crate::engine::report`]) as JSON, or as
//! Markdown for a change ticket when the client asks for `text/markdown`.
//!
//! A run that has not finished gets the report so far with `"final": false` (200, not 409): a
//! drill's operator watching a long run wants the figures measured so far, and the flag says they
//! may still change. The format follows the `Accept` header (quality values honoured, JSON when
//! absent or on a tie); an `Accept` that allows neither format is a 406.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use time::OffsetDateTime;

use super::runs::parse_id;
use super::{ApiError, AppState};
use crate::engine::report::{markdown, Report};

const JSON: &str = "application/json";
const MARKDOWN: &str = "text/markdown";

/// The two representations of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
    Markdown,
}

pub async fn get_report(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let format = negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()))?;
    let view = state.runner.get(id).await?;
    let report = Report::new(&view, OffsetDateTime::now_utc());
    Ok(match format {
        ReportFormat::Json => Json(report).into_response(),
        ReportFormat::Markdown => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            markdown::render(&report),
        )
            .into_response(),
    })
}

/// The format an `Accept` header asks for. For each format the most specific matching media
/// range gives its quality (RFC 9110 §12.5.1); the higher quality wins, JSON on a tie.
pub fn negotiate(accept: Option<&str>) -> Result<ReportFormat, ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(ReportFormat::Json);
    };
    let ranges: Vec<(String, f32)> = accept.split(',').filter_map(media_range).collect();
    let quality = |media: &str| -> f32 {
        let (kind, _) = media.split_once('/').unwrap_or((media, ""));
        let type_wildcard = format!("{kind}/*");
        let best = |range: &str| ranges.iter().find(|(r, _)| r == range).map(|(_, q)| *q);
        best(media)
            .or_else(|| best(&type_wildcard))
            .or_else(|| best("*/*"))
            .unwrap_or(0.0)
    };
    let (json, md) = (quality(JSON), quality(MARKDOWN));
    if json <= 0.0 && md <= 0.0 {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            format!("Accept: {accept:?} allows neither {JSON} nor {MARKDOWN}"),
        ));
    }
    Ok(if md > json {
        ReportFormat::Markdown
    } else {
        ReportFormat::Json
    })
}

/// `type/subtype;q=0.5;charset=x` → (`type/subtype`, 0.5). Unparseable quality counts as 1
/// (lenient: a sloppy client still gets a report).
fn media_range(raw: &str) -> Option<(String, f32)> {
    let mut parts = raw.split(';');
    let media = parts.next()?.trim().to_ascii_lowercase();
    if media.is_empty() {
        return None;
    }
    let q = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
        .and_then(|(_, v)| v.trim().parse::<f32>().ok())
        .map_or(1.0, |q| q.clamp(0.0, 1.0));
    Some((media, q))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(accept: &str) -> Option<ReportFormat> {
        negotiate(Some(accept)).ok()
    }

    #[test]
    fn json_is_the_default() {
        assert_eq!(negotiate(None).unwrap(), ReportFormat::Json);
        assert_eq!(format(""), Some(ReportFormat::Json));
        assert_eq!(format("*/*"), Some(ReportFormat::Json));
        assert_eq!(format("application/json"), Some(ReportFormat::Json));
        assert_eq!(format("application/*"), Some(ReportFormat::Json));
    }

    #[test]
    fn markdown_when_asked_for() {
        assert_eq!(format("text/markdown"), Some(ReportFormat::Markdown));
        assert_eq!(
            format("TEXT/Markdown; charset=utf-8"),
            Some(ReportFormat::Markdown)
        );
        assert_eq!(format("text/*"), Some(ReportFormat::Markdown));
        assert_eq!(
            format("application/json;q=0.5, text/markdown"),
            Some(ReportFormat::Markdown)
        );
        assert_eq!(
            format("text/markdown;q=0.9, */*;q=0.1"),
            Some(ReportFormat::Markdown)
        );
    }

    #[test]
    fn quality_and_specificity_decide() {
        // A tie goes to JSON.
        assert_eq!(
            format("text/markdown, application/json"),
            Some(ReportFormat::Json)
        );
        // The specific range beats the wildcard for the same type.
        assert_eq!(
            format("text/*;q=1, text/markdown;q=0, application/json;q=0.2"),
            Some(ReportFormat::Json)
        );
        assert_eq!(
            format("*/*;q=0.1, text/markdown;q=0.8"),
            Some(ReportFormat::Markdown)
        );
    }

    #[test]
    fn neither_format_is_406() {
        for accept in ["text/html", "image/png, text/plain", "application/json;q=0"] {
            let e = negotiate(Some(accept)).unwrap_err();
            assert_eq!(e.status, StatusCode::NOT_ACCEPTABLE, "{accept}");
            assert!(e.message.contains(accept), "{}", e.message);
        }
    }
}
