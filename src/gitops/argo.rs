//! Argo CD: starting a sync of an `Application` and judging its outcome — pure functions.
//!
//! A sync is requested by setting the top-level `operation` field (what `argocd app sync` does
//! through Argo's API server, which also clears a stale `status.operationState` so the new
//! operation cannot be confused with the last one). The application controller runs it and
//! reports in `status.operationState` (a copy of the operation, `phase`, `finishedAt`). failoverd
//! marks its operation with `info: [{name: failoverd-run, value: <run id>}]`, which Argo copies
//! into `status.operationState.operation`, so it knows the state it reads is its own.
//!
//! The pitfall: `status.health` is computed by another loop of the controller and lags behind the
//! sync. It describes the synced resources only once `status.reconciledAt >=
//! operationState.finishedAt`; before that a `Healthy` is the health of the previous state.

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `info` entry name marking failoverd's sync operations.
pub const RUN_INFO: &str = "failoverd-run";
/// The annotation that asks the controller to refresh (re-read the cluster and recompute health).
pub const REFRESH: &str = "argocd.argoproj.io/refresh";

/// Where an application stands with respect to failoverd's sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgoState {
    /// No operation of this run has been requested.
    NotRequested {
        /// Another operation is requested or running: wait for it before requesting ours.
        busy: Option<String>,
    },
    /// Requested or running, or finished with health not yet known.
    Pending {
        reason: String,
        /// Health was last computed before the sync finished (ask for a refresh if it stays so).
        stale_health: bool,
    },
    Ready {
        revision: Option<String>,
    },
    /// The sync failed; Argo's message.
    Failed(String),
}

fn has_run(operation: Option<&Value>, run: &str) -> bool {
    operation
        .and_then(|o| o.get("info"))
        .and_then(Value::as_array)
        .is_some_and(|info| {
            info.iter().any(|i| {
                i.get("name").and_then(Value::as_str) == Some(RUN_INFO)
                    && i.get("value").and_then(Value::as_str) == Some(run)
            })
        })
}

fn timestamp(v: Option<&Value>) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(v?.as_str()?, &Rfc3339).ok()
}

fn text<'a>(app: &'a Value, pointer: &str) -> &'a str {
    app.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The application's state for the sync of `run`.
pub fn state(app: &Value, run: &str) -> ArgoState {
    let op_state = app.pointer("/status/operationState");
    let ours = has_run(op_state.and_then(|s| s.get("operation")), run);
    if !ours {
        if has_run(app.get("operation"), run) {
            return ArgoState::Pending {
                reason: "sync requested; the application controller has not started it".into(),
                stale_health: false,
            };
        }
        let running = op_state
            .and_then(|s| s.get("phase"))
            .and_then(Value::as_str)
            .is_some_and(|p| p == "Running" || p == "Terminating");
        let busy = if app.get("operation").is_some_and(|o| !o.is_null()) {
            Some("another operation is requested".to_owned())
        } else if running {
            Some(format!(
                "another operation is running: {}",
                text(app, "/status/operationState/message")
            ))
        } else {
            None
        };
        return ArgoState::NotRequested { busy };
    }
    let phase = text(app, "/status/operationState/phase");
    let message = text(app, "/status/operationState/message");
    match phase {
        "Succeeded" => {}
        "Failed" | "Error" => return ArgoState::Failed(format!("sync {phase}: {message}")),
        other => {
            return ArgoState::Pending {
                reason: format!(
                    "sync {}{}",
                    if other.is_empty() { "pending" } else { other },
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    }
                ),
                stale_health: false,
            }
        }
    }
    let sync_status = text(app, "/status/sync/status");
    if sync_status != "Synced" {
        return ArgoState::Pending {
            reason: format!("sync succeeded but the application is {sync_status:?}"),
            stale_health: false,
        };
    }
    let finished = timestamp(app.pointer("/status/operationState/finishedAt"));
    let reconciled = timestamp(app.pointer("/status/reconciledAt"));
    let fresh = matches!((reconciled, finished), (Some(r), Some(f)) if r >= f);
    if !fresh {
        return ArgoState::Pending {
            reason: format!(
                "health was computed at {} before the sync finished at {}",
                text(app, "/status/reconciledAt"),
                text(app, "/status/operationState/finishedAt")
            ),
            stale_health: true,
        };
    }
    match text(app, "/status/health/status") {
        "Healthy" => ArgoState::Ready {
            revision: app
                .pointer("/status/sync/revision")
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
        health => ArgoState::Pending {
            reason: format!(
                "health is {health:?}{}",
                match text(app, "/status/health/message") {
                    "" => String::new(),
                    m => format!(": {m}"),
                }
            ),
            stale_health: false,
        },
    }
}

/// Steady state (the standby monitor): synced and healthy.
pub fn steady(app: &Value) -> Result<(), String> {
    let sync = text(app, "/status/sync/status");
    let health = text(app, "/status/health/status");
    if sync == "Synced" && health == "Healthy" {
        Ok(())
    } else {
        Err(format!("sync {sync:?}, health {health:?}"))
    }
}

/// The patch that requests a sync on behalf of `run`: `operation` with `initiatedBy` and the run
/// marker, and the stale `status.operationState` cleared (as Argo's API server does). The
/// revision is the application's target revision.
pub fn sync_patch(app: &Value, run: &str) -> Value {
    let mut sync = json!({});
    if let Some(rev) = app
        .pointer("/spec/source/targetRevision")
        .and_then(Value::as_str)
    {
        sync["revision"] = json!(rev);
    }
    json!({
        "operation": {
            "sync": sync,
            "initiatedBy": {"username": "failoverd"},
            "info": [{"name": RUN_INFO, "value": run}],
        },
        "status": {"operationState": null},
    })
}

/// The patch that asks for a hard refresh.
pub fn refresh_patch() -> Value {
    json!({"metadata": {"annotations": {REFRESH: "hard"}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(op_state: Value, sync: &str, health: &str, reconciled: &str) -> Value {
        json!({
            "metadata": {"name": "web"},
            "spec": {"source": {"targetRevision": "main"}},
            "status": {
                "operationState": op_state,
                "sync": {"status": sync, "revision": "abc"},
                "health": {"status": health},
                "reconciledAt": reconciled,
            }
        })
    }

    fn ours(phase: &str, finished: &str) -> Value {
        json!({"phase": phase, "message": "m", "finishedAt": finished,
               "operation": {"sync": {}, "info": [{"name": RUN_INFO, "value": "r1"}]}})
    }

    #[test]
    fn healthy_counts_only_once_reconciled_after_the_sync_finished() {
        let stale = app(
            ours("Succeeded", "2026-12-02T10:00:05Z"),
            "Synced",
            "Healthy",
            "2026-12-02T10:00:00Z",
        );
        assert!(matches!(
            state(&stale, "r1"),
            ArgoState::Pending {
                stale_health: true,
                ..
            }
        ));
        let fresh = app(
            ours("Succeeded", "2026-12-02T10:00:05Z"),
            "Synced",
            "Healthy",
            "2026-12-02T10:00:05Z",
        );
        assert_eq!(
            state(&fresh, "r1"),
            ArgoState::Ready {
                revision: Some("abc".into())
            }
        );
        let degraded = app(
            ours("Succeeded", "2026-12-02T10:00:05Z"),
            "Synced",
            "Degraded",
            "2026-12-02T10:00:09Z",
        );
        assert!(matches!(
            state(&degraded, "r1"),
            ArgoState::Pending { stale_health: false, reason } if reason.contains("Degraded")
        ));
    }

    #[test]
    fn an_operation_state_of_another_run_is_not_ours() {
        let mut other = ours("Succeeded", "2026-12-02T10:00:05Z");
        other["operation"]["info"][0]["value"] = json!("r0");
        let a = app(other, "Synced", "Healthy", "2026-12-02T10:00:09Z");
        assert_eq!(state(&a, "r1"), ArgoState::NotRequested { busy: None });
        let mut running = ours("Running", "");
        running["operation"]["info"] = json!([]);
        let a = app(running, "OutOfSync", "Healthy", "");
        assert!(matches!(
            state(&a, "r1"),
            ArgoState::NotRequested { busy: Some(m) } if m.contains("running")
        ));
    }

    #[test]
    fn requested_running_failed() {
        let mut a = app(Value::Null, "OutOfSync", "Healthy", "");
        a["operation"] = sync_patch(&a, "r1")["operation"].clone();
        assert!(matches!(state(&a, "r1"), ArgoState::Pending { .. }));
        let running = app(ours("Running", ""), "OutOfSync", "Healthy", "");
        assert!(
            matches!(state(&running, "r1"), ArgoState::Pending { reason, .. } if reason.contains("Running"))
        );
        let failed = app(
            ours("Failed", "2026-12-02T10:00:05Z"),
            "OutOfSync",
            "Healthy",
            "",
        );
        assert_eq!(
            state(&failed, "r1"),
            ArgoState::Failed("sync Failed: m".into())
        );
    }

    #[test]
    fn succeeded_but_out_of_sync_is_pending() {
        let a = app(
            ours("Succeeded", "2026-12-02T10:00:05Z"),
            "OutOfSync",
            "Healthy",
            "2026-12-02T10:00:09Z",
        );
        assert!(matches!(state(&a, "r1"), ArgoState::Pending { .. }));
    }

    #[test]
    fn the_sync_patch_clears_the_stale_operation_state_and_marks_the_run() {
        let a = app(Value::Null, "OutOfSync", "Healthy", "");
        let p = sync_patch(&a, "r1");
        assert!(p["status"]["operationState"].is_null());
        assert_eq!(p["operation"]["sync"]["revision"], "main");
        assert_eq!(p["operation"]["initiatedBy"]["username"], "failoverd");
        assert_eq!(p["operation"]["info"][0]["value"], "r1");
    }

    #[test]
    fn steady_needs_synced_and_healthy() {
        assert!(steady(&app(Value::Null, "Synced", "Healthy", "")).is_ok());
        assert!(steady(&app(Value::Null, "OutOfSync", "Healthy", "")).is_err());
        assert!(steady(&app(Value::Null, "Synced", "Progressing", "")).is_err());
    }
}
