//! Flux: when is a reconcile request handled, and did it succeed — pure functions of the object.
//!
//! `flux reconcile` sets the annotation `reconcile.fluxcd.io/requestedAt` to a token; the
//! controller copies the token to `status.lastHandledReconcileAt` when it has handled the request.
//! That alone is not "ready": the object must also have been observed at its current generation
//! (`status.observedGeneration == metadata.generation`), its `Ready` condition must be `True` *for
//! that generation* (a `Ready=True` left over from the previous generation is stale), and it must
//! not be `Reconciling` any more. `Ready=False` (or `Stalled=True`) after the request was handled
//! is a failure, with the controller's message.

use serde_json::{json, Value};

/// The annotation that requests a reconcile.
pub const REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";
/// Set by failoverd on an object it suspended (the run id), so that a later takeover towards
/// that region resumes exactly what failoverd suspended.
pub const SUSPENDED_BY: &str = "failoverd.io/suspended-by";
/// Set by failoverd on a suspended object it resumed (the run id), so that an unwind suspends it
/// again.
pub const RESUMED_BY: &str = "failoverd.io/resumed-by";

/// Where a Flux object stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FluxState {
    /// Reconciled at its current generation; the revision it applied, when the controller says.
    Ready { revision: Option<String> },
    /// Not there yet: what is awaited.
    Pending(String),
    /// The controller reports a failure: its reason and message.
    Failed(String),
    /// `spec.suspend: true`: the controller ignores the object, requests included.
    Suspended,
}

/// A condition of `status.conditions`.
pub fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

fn condition_is(obj: &Value, kind: &str, status: &str) -> bool {
    condition(obj, kind)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some(status)
}

fn generation(obj: &Value) -> Option<i64> {
    obj.pointer("/metadata/generation").and_then(Value::as_i64)
}

pub fn suspended(obj: &Value) -> bool {
    obj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true)
}

/// An annotation's value.
pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")?.get(key)?.as_str()
}

fn describe_condition(c: &Value) -> String {
    let reason = c.get("reason").and_then(Value::as_str).unwrap_or("");
    let message = c.get("message").and_then(Value::as_str).unwrap_or("");
    match (reason.is_empty(), message.is_empty()) {
        (false, false) => format!("{reason}: {message}"),
        (false, true) => reason.to_owned(),
        (true, false) => message.to_owned(),
        (true, true) => "no reason given".to_owned(),
    }
}

/// The object's state after a reconcile request with `token` (`None`: no request, the steady
/// state the standby monitor checks).
pub fn state(obj: &Value, token: Option<&str>) -> FluxState {
    if suspended(obj) {
        return FluxState::Suspended;
    }
    if let Some(token) = token {
        let handled = obj
            .pointer("/status/lastHandledReconcileAt")
            .and_then(Value::as_str);
        if handled != Some(token) {
            return FluxState::Pending(format!(
                "reconcile request {token} not handled yet (last handled: {})",
                handled.unwrap_or("none")
            ));
        }
    }
    let generation = generation(obj);
    if condition_is(obj, "Stalled", "True") {
        let c = condition(obj, "Stalled").expect("checked above");
        return FluxState::Failed(format!("stalled: {}", describe_condition(c)));
    }
    let ready = condition(obj, "Ready");
    // A condition observed at an older generation describes that generation, not this one.
    let for_this_generation = |c: &Value| match (
        generation,
        c.get("observedGeneration").and_then(Value::as_i64),
    ) {
        (Some(g), Some(cg)) => g == cg,
        _ => true,
    };
    // A failed reconcile: Flux sets Ready=False for the generation it tried, leaves
    // status.observedGeneration where it was, and keeps Reconciling=True with reason
    // ProgressingWithRetry while it waits to retry. That is the answer to the request, not a
    // reconcile still under way.
    if let Some(r) = ready.filter(|r| for_this_generation(r)) {
        let retrying = condition(obj, "Reconciling").is_none_or(|c| {
            c.get("status").and_then(Value::as_str) != Some("True")
                || c.get("reason").and_then(Value::as_str) == Some("ProgressingWithRetry")
        });
        if r.get("status").and_then(Value::as_str) == Some("False") && retrying {
            return FluxState::Failed(describe_condition(r));
        }
    }
    let observed = obj
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    if generation.is_some() && observed != generation {
        return FluxState::Pending(format!(
            "generation {} not observed yet (observed: {})",
            generation.unwrap_or_default(),
            observed.map_or("none".to_owned(), |o| o.to_string())
        ));
    }
    if condition_is(obj, "Reconciling", "True") {
        let detail = condition(obj, "Reconciling")
            .map(describe_condition)
            .unwrap_or_default();
        return FluxState::Pending(format!("reconciling ({detail})"));
    }
    let Some(ready) = ready else {
        return FluxState::Pending("no Ready condition yet".to_owned());
    };
    if !for_this_generation(ready) {
        return FluxState::Pending(format!(
            "Ready condition is for generation {}, the object is at {}",
            ready
                .get("observedGeneration")
                .and_then(Value::as_i64)
                .unwrap_or_default(),
            generation.unwrap_or_default()
        ));
    }
    match ready.get("status").and_then(Value::as_str) {
        Some("True") => FluxState::Ready {
            revision: obj
                .pointer("/status/lastAppliedRevision")
                .or_else(|| obj.pointer("/status/artifact/revision"))
                .or_else(|| obj.pointer("/status/lastAttemptedRevision"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
        Some("False") => FluxState::Failed(describe_condition(ready)),
        _ => FluxState::Pending(format!("Ready is Unknown ({})", describe_condition(ready))),
    }
}

/// The patch that requests a reconcile.
pub fn request_patch(token: &str) -> Value {
    json!({"metadata": {"annotations": {REQUESTED_AT: token}}})
}

/// The patch that resumes a suspended object and requests a reconcile; `run` is recorded so an
/// unwind can suspend it again.
pub fn resume_patch(token: &str, run: &str) -> Value {
    json!({
        "metadata": {"annotations": {REQUESTED_AT: token, SUSPENDED_BY: null, RESUMED_BY: run}},
        "spec": {"suspend": false},
    })
}

/// The patch that suspends an object on behalf of `run`.
pub fn suspend_patch(run: &str) -> Value {
    json!({
        "metadata": {"annotations": {SUSPENDED_BY: run, RESUMED_BY: null}},
        "spec": {"suspend": true},
    })
}

/// The patch that undoes [`suspend_patch`].
pub fn unsuspend_patch() -> Value {
    json!({
        "metadata": {"annotations": {SUSPENDED_BY: null}},
        "spec": {"suspend": false},
    })
}

/// The patch that undoes a resume of [`resume_patch`].
pub fn resuspend_patch() -> Value {
    json!({
        "metadata": {"annotations": {RESUMED_BY: null}},
        "spec": {"suspend": true},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(generation: i64, status: Value) -> Value {
        json!({"metadata": {"generation": generation}, "spec": {}, "status": status})
    }

    fn ready(status: &str, generation: i64) -> Value {
        json!({"type": "Ready", "status": status, "observedGeneration": generation,
               "reason": "ReconciliationSucceeded", "message": "Applied revision: main@sha1:abc"})
    }

    #[test]
    fn ready_only_when_handled_observed_ready_and_not_reconciling() {
        let done = obj(
            3,
            json!({"lastHandledReconcileAt": "t1", "observedGeneration": 3,
                   "lastAppliedRevision": "main@sha1:abc", "conditions": [ready("True", 3)]}),
        );
        assert_eq!(
            state(&done, Some("t1")),
            FluxState::Ready {
                revision: Some("main@sha1:abc".into())
            }
        );
        // Another token: not handled yet, even though everything else looks ready.
        assert!(matches!(state(&done, Some("t2")), FluxState::Pending(m) if m.contains("t2")));
        // No request: the steady state is ready.
        assert!(matches!(state(&done, None), FluxState::Ready { .. }));
    }

    #[test]
    fn a_stale_ready_from_the_previous_generation_is_not_ready() {
        let stale = obj(
            4,
            json!({"lastHandledReconcileAt": "t1", "observedGeneration": 4,
                   "conditions": [ready("True", 3)]}),
        );
        assert!(
            matches!(state(&stale, Some("t1")), FluxState::Pending(m) if m.contains("generation 3"))
        );
        let unobserved = obj(
            4,
            json!({"lastHandledReconcileAt": "t1", "observedGeneration": 3,
                   "conditions": [ready("True", 3)]}),
        );
        assert!(matches!(
            state(&unobserved, Some("t1")),
            FluxState::Pending(_)
        ));
    }

    #[test]
    fn handled_while_still_reconciling_is_not_ready() {
        let early = obj(
            2,
            json!({"lastHandledReconcileAt": "t1", "observedGeneration": 2,
                   "conditions": [ready("True", 2),
                     {"type": "Reconciling", "status": "True", "reason": "Progressing",
                      "message": "building manifests"}]}),
        );
        assert!(
            matches!(state(&early, Some("t1")), FluxState::Pending(m) if m.contains("building"))
        );
    }

    #[test]
    fn ready_false_and_stalled_fail_with_the_controllers_message() {
        let failed = obj(
            2,
            json!({"lastHandledReconcileAt": "t1", "observedGeneration": 2,
                   "conditions": [{"type": "Ready", "status": "False", "observedGeneration": 2,
                     "reason": "BuildFailed", "message": "kustomize build failed: x"}]}),
        );
        assert_eq!(
            state(&failed, Some("t1")),
            FluxState::Failed("BuildFailed: kustomize build failed: x".into())
        );
        let stalled = obj(
            2,
            json!({"observedGeneration": 2, "conditions": [
                {"type": "Stalled", "status": "True", "reason": "InvalidPath", "message": "p"},
                ready("False", 2)]}),
        );
        assert!(matches!(state(&stalled, None), FluxState::Failed(m) if m.contains("InvalidPath")));
    }

    #[test]
    fn a_failed_reconcile_waiting_to_retry_is_a_failure_not_progress() {
        // Flux does not advance observedGeneration on failure and keeps Reconciling=True
        // (ProgressingWithRetry) while it waits to retry.
        let failed = obj(
            3,
            json!({"lastHandledReconcileAt": "t1", "observedGeneration": 2,
                   "conditions": [
                     {"type": "Reconciling", "status": "True", "reason": "ProgressingWithRetry",
                      "message": "retrying"},
                     {"type": "Ready", "status": "False", "observedGeneration": 3,
                      "reason": "HealthCheckFailed", "message": "timeout waiting for: api"}]}),
        );
        assert_eq!(
            state(&failed, Some("t1")),
            FluxState::Failed("HealthCheckFailed: timeout waiting for: api".into())
        );
        // A Ready=False of the previous generation while a new reconcile is in progress is
        // not this reconcile's answer.
        let in_progress = obj(
            3,
            json!({"lastHandledReconcileAt": "t1", "observedGeneration": 2,
                   "conditions": [
                     {"type": "Reconciling", "status": "True", "reason": "Progressing"},
                     {"type": "Ready", "status": "False", "observedGeneration": 2,
                      "reason": "BuildFailed", "message": "old"}]}),
        );
        assert!(matches!(
            state(&in_progress, Some("t1")),
            FluxState::Pending(_)
        ));
    }

    #[test]
    fn unknown_ready_and_missing_condition_are_pending() {
        let unknown = obj(
            1,
            json!({"observedGeneration": 1, "conditions": [ready("Unknown", 1)]}),
        );
        assert!(matches!(state(&unknown, None), FluxState::Pending(_)));
        assert!(matches!(
            state(&obj(1, json!({"observedGeneration": 1})), None),
            FluxState::Pending(_)
        ));
    }

    #[test]
    fn suspended_objects_are_reported_as_such() {
        let mut o = obj(1, json!({}));
        o["spec"]["suspend"] = json!(true);
        assert_eq!(state(&o, Some("t")), FluxState::Suspended);
        assert_eq!(state(&o, None), FluxState::Suspended);
    }

    #[test]
    fn patches_carry_the_token_and_the_run() {
        assert_eq!(
            request_patch("t")["metadata"]["annotations"][REQUESTED_AT],
            "t"
        );
        let resume = resume_patch("t", "r1");
        assert_eq!(resume["spec"]["suspend"], false);
        assert_eq!(resume["metadata"]["annotations"][RESUMED_BY], "r1");
        assert!(resume["metadata"]["annotations"][SUSPENDED_BY].is_null());
        assert_eq!(
            suspend_patch("r1")["metadata"]["annotations"][SUSPENDED_BY],
            "r1"
        );
    }
}
