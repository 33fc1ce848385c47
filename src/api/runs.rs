//! `/v1/runs`: start, list, inspect, follow, approve and abort runs of the durable engine (and
//! their reports, served by [`super::report`]).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;

use super::{ApiError, AppState, JsonBody, Principal};
use crate::engine::{Mode, RunFilter, RunId, RunRequest};

/// Longest accepted `Idempotency-Key`.
const IDEMPOTENCY_KEY_MAX: usize = 200;
/// Longest accepted `reason`: it goes into the journal and the audit log.
const REASON_MAX: usize = 1000;
/// Most runs one `GET /v1/runs` returns.
const LIST_LIMIT_MAX: usize = 500;
/// Comment lines on idle event streams, so proxies and load balancers keep them open.
const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/runs", get(list_runs).post(create_run))
        .route("/runs/{id}", get(get_run))
        .route("/runs/{id}/events", get(run_events))
        .route("/runs/{id}/report", get(super::report::get_report))
        .route("/runs/{id}/approve", post(approve_run))
        .route("/runs/{id}/abort", post(abort_run))
}

/// The body of `POST /v1/runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    pub plan: String,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub drill: bool,
    /// Why the run is started: kept in the journal and the audit log. Required.
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub params: Value,
}

pub(super) fn parse_id(raw: &str) -> Result<RunId, ApiError> {
    raw.parse::<RunId>().map_err(|_| {
        ApiError::bad_request(
            "invalid_run_id",
            format!("{raw:?} is not a run id (a UUID)"),
        )
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| {
        ApiError::bad_request(
            "invalid_request",
            "Idempotency-Key: must be printable ASCII",
        )
    })?;
    let key = key.trim();
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("Idempotency-Key: must be 1 to {IDEMPOTENCY_KEY_MAX} characters"),
        ));
    }
    Ok(Some(key.to_owned()))
}

async fn create_run(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateRun>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let reason = body.reason.trim().to_owned();
    if reason.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "reason: required (why is this run started?)",
        ));
    }
    if body.reason.chars().count() > REASON_MAX {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("reason: at most {REASON_MAX} characters"),
        ));
    }
    if body.plan.trim().is_empty() {
        return Err(ApiError::bad_request("invalid_request", "plan: required"));
    }
    let dry_run = body.dry_run;
    let params = default_target(&state, &body.plan, body.params);
    let request = RunRequest {
        plan: body.plan,
        mode: body.mode,
        dry_run,
        drill: body.drill,
        reason,
        params,
        requested_by: principal.name.clone(),
        idempotency_key: key,
        // An operator's run: its RTO is measured from its start.
        detected_at: None,
    };
    let view = state.runner.start(request).await?;
    // A dry run is complete when it returns; a real run has been accepted and goes on.
    let status = if dry_run {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(view)).into_response())
}

/// For plans whose target defaults to the standby (`failover`, `failback`): a request without
/// `params.target_region` gets the standby region as it is *now*. The run stores it, so a run
/// resumed after the active region changed still targets the region it was started for.
fn default_target(state: &AppState, plan: &str, params: Value) -> Value {
    let defaults = state
        .plans
        .iter()
        .any(|p| p.name == plan && p.target_defaults_to_standby);
    let Some(active) = state.monitors.active_region.as_ref().filter(|_| defaults) else {
        return params;
    };
    let mut map = match params {
        Value::Null => serde_json::Map::new(),
        Value::Object(map) => map,
        other => return other, // the plan refuses it with the field named
    };
    if !map.contains_key(crate::plans::params::TARGET_REGION) {
        let (_, standby) = active.get();
        map.insert(
            crate::plans::params::TARGET_REGION.to_owned(),
            Value::String(standby),
        );
    }
    Value::Object(map)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    plan: Option<String>,
    #[serde(default)]
    unfinished: bool,
    limit: Option<usize>,
}

async fn list_runs(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::bad_request("invalid_request", e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > LIST_LIMIT_MAX {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("limit: must be 1 to {LIST_LIMIT_MAX}"),
        ));
    }
    let runs = state
        .runner
        .list(RunFilter {
            unfinished_only: query.unfinished,
            plan: query.plan,
            limit: Some(limit),
        })
        .await?;
    Ok(Json(serde_json::json!({ "runs": runs })).into_response())
}

async fn get_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(state.runner.get(id).await?).into_response())
}

async fn approve_run(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(state.runner.approve(id, principal.name).await?).into_response())
}

async fn abort_run(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(state.runner.abort(id, principal.name).await?).into_response())
}

/// Server-sent events: one event per journal entry (`id` = its sequence number, `event` = its
/// type, `data` = the entry as JSON). Resumable: a client that reconnects with `Last-Event-ID`
/// gets the entries after it. The stream ends after the run's last event, or when failoverd
/// shuts down (the client reconnects with `Last-Event-ID`).
async fn run_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let after = match headers.get("last-event-id") {
        None => 0,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_request",
                    "Last-Event-ID: must be the sequence number of an event",
                )
            })?,
    };
    let stream = state.runner.subscribe(id, after).await?;
    let mut stop = state.stop.clone();
    let events = stream
        .map(|item| {
            let event = match item {
                Ok(entry) => {
                    let kind = serde_json::to_value(&entry.event.kind)
                        .ok()
                        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
                        .unwrap_or_else(|| "event".to_owned());
                    SseEvent::default()
                        .id(entry.seq.to_string())
                        .event(kind)
                        .json_data(&entry)
                        .unwrap_or_else(|_| SseEvent::default().comment("unencodable event"))
                }
                Err(e) => SseEvent::default().event("error").data(
                    serde_json::json!({"error": {"code": e.code(), "message": e.to_string()}})
                        .to_string(),
                ),
            };
            Ok::<_, Infallible>(event)
        })
        .take_until(async move { stop.stopped().await });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(SSE_KEEP_ALIVE))
        .into_response())
}
