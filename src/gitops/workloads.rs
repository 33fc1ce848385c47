//! Workloads: how many replicas the region taking over needs, and whether they are there — pure.
//!
//! The target is `target_percent` of what the region being left runs now (read from its cluster
//! when it answers), never below the configured floor and never below what already runs. While
//! failoverd holds a workload scaled up, the workload carries annotations that record the run,
//! the replicas before and the target, so a resumed run reuses its target instead of
//! recomputing it and an unwind restores exactly what was there. An HPA targeting the workload
//! gets its `minReplicas` raised (else it scales the idle standby back down); its previous
//! bounds are recorded on it the same way.

use serde_json::{json, Value};

use super::flux::annotation;

/// The run that scaled the workload (or raised the HPA).
pub const SCALED_BY: &str = "failoverd.io/scaled-by";
/// `spec.replicas` before failoverd scaled the workload.
pub const REPLICAS_BEFORE: &str = "failoverd.io/replicas-before";
/// The replicas failoverd scaled the workload to.
pub const REPLICAS_TARGET: &str = "failoverd.io/replicas-target";
/// The HPA's `minReplicas` and `maxReplicas` before failoverd raised them (`"1,10"`).
pub const HPA_BEFORE: &str = "failoverd.io/hpa-before";

/// Replicas for the region taking over.
pub fn takeover_target(source: Option<i32>, percent: u32, floor: i32, current: i32) -> i32 {
    let from_source = source.map(|r| {
        let r = i64::from(r.max(0));
        let p = i64::from(percent);
        // Ceiling: 50 % of 3 replicas is 2, not 1.
        i32::try_from((r * p + 99) / 100).unwrap_or(i32::MAX)
    });
    from_source.unwrap_or(floor).max(floor).max(current)
}

/// How many of `target` must be ready for the step to succeed.
pub fn required_ready(target: i32, minimum_success_percent: Option<u32>) -> i32 {
    match minimum_success_percent {
        None => target,
        Some(p) => {
            let t = i64::from(target.max(0));
            i32::try_from((t * i64::from(p) + 99) / 100)
                .unwrap_or(i32::MAX)
                .max(1)
                .min(target)
        }
    }
}

/// What a workload's status says about its rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollout {
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
    /// The controller has observed the current generation.
    pub observed: bool,
}

fn int(obj: &Value, pointer: &str) -> i32 {
    obj.pointer(pointer)
        .and_then(Value::as_i64)
        .and_then(|v| i32::try_from(v).ok())
        .unwrap_or(0)
}

pub fn spec_replicas(obj: &Value) -> i32 {
    // The API server defaults an absent `spec.replicas` to 1.
    obj.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .and_then(|v| i32::try_from(v).ok())
        .unwrap_or(1)
}

pub fn rollout(obj: &Value) -> Rollout {
    let generation = obj.pointer("/metadata/generation").and_then(Value::as_i64);
    let observed = obj
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    Rollout {
        desired: spec_replicas(obj),
        ready: int(obj, "/status/readyReplicas"),
        updated: int(obj, "/status/updatedReplicas"),
        observed: generation.is_none() || observed >= generation,
    }
}

impl Rollout {
    /// At least `required` replicas ready and updated at the current generation, with the
    /// workload still asking for at least `target` (an HPA did not scale it back down).
    pub fn reached(&self, target: i32, required: i32) -> bool {
        self.observed
            && self.desired >= target
            && self.ready >= required
            && self.updated >= required
    }

    pub fn describe(&self) -> String {
        format!(
            "{} ready, {} updated of {}{}",
            self.ready,
            self.updated,
            self.desired,
            if self.observed {
                ""
            } else {
                " (generation not observed yet)"
            }
        )
    }
}

/// What failoverd recorded on a workload it scaled: `(run, before, target)`.
pub fn recorded(obj: &Value) -> Option<(String, i32, i32)> {
    let run = annotation(obj, SCALED_BY)?;
    let before = annotation(obj, REPLICAS_BEFORE)?.parse().ok()?;
    let target = annotation(obj, REPLICAS_TARGET)?.parse().ok()?;
    Some((run.to_owned(), before, target))
}

/// Records `run`, `before` and `target` on the workload; carries the resourceVersion it was
/// computed from, so a concurrent change makes it fail with a conflict instead of recording a
/// stale "before".
pub fn record_patch(obj: &Value, run: &str, before: i32, target: i32) -> Value {
    json!({"metadata": {
        "resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null),
        "annotations": {
            SCALED_BY: run,
            REPLICAS_BEFORE: before.to_string(),
            REPLICAS_TARGET: target.to_string(),
        }
    }})
}

/// Removes what [`record_patch`] recorded.
pub fn forget_patch() -> Value {
    json!({"metadata": {"annotations": {SCALED_BY: null, REPLICAS_BEFORE: null, REPLICAS_TARGET: null}}})
}

/// Whether `hpa` scales the workload `kind`/`name`.
pub fn hpa_targets(hpa: &Value, kind: &str, name: &str) -> bool {
    hpa.pointer("/spec/scaleTargetRef/kind")
        .and_then(Value::as_str)
        == Some(kind)
        && hpa
            .pointer("/spec/scaleTargetRef/name")
            .and_then(Value::as_str)
            == Some(name)
}

/// `(minReplicas, maxReplicas)` of an HPA (`minReplicas` defaults to 1).
pub fn hpa_bounds(hpa: &Value) -> (i32, i32) {
    let min = hpa
        .pointer("/spec/minReplicas")
        .and_then(Value::as_i64)
        .and_then(|v| i32::try_from(v).ok())
        .unwrap_or(1);
    (min, int(hpa, "/spec/maxReplicas"))
}

/// The patch raising an HPA so it keeps at least `target` replicas, recording its bounds before;
/// `None` when it already does. Guarded by the HPA's resourceVersion.
pub fn hpa_raise_patch(hpa: &Value, run: &str, target: i32) -> Option<Value> {
    let (min, max) = hpa_bounds(hpa);
    if min >= target && max >= target {
        return None;
    }
    // A bound recorded by an earlier attempt of the same run is the real "before".
    let before = match (annotation(hpa, SCALED_BY), annotation(hpa, HPA_BEFORE)) {
        (Some(r), Some(b)) if r == run => b.to_owned(),
        _ => format!("{min},{max}"),
    };
    Some(json!({
        "metadata": {
            "resourceVersion": hpa.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null),
            "annotations": {SCALED_BY: run, HPA_BEFORE: before},
        },
        "spec": {"minReplicas": min.max(target), "maxReplicas": max.max(target)},
    }))
}

/// The patch restoring an HPA raised by `run`; `None` when `run` did not raise it.
pub fn hpa_restore_patch(hpa: &Value, run: &str) -> Option<Value> {
    if annotation(hpa, SCALED_BY) != Some(run) {
        return None;
    }
    let (min, max) = annotation(hpa, HPA_BEFORE)?.split_once(',')?;
    let (min, max): (i32, i32) = (min.parse().ok()?, max.parse().ok()?);
    Some(json!({
        "metadata": {"annotations": {SCALED_BY: null, HPA_BEFORE: null}},
        "spec": {"minReplicas": min, "maxReplicas": max},
    }))
}

/// The patch lowering an HPA's `minReplicas` to `min` (the region left after a graceful
/// takeover goes back to its standby size).
pub fn hpa_lower_patch(hpa: &Value, min: i32) -> Option<Value> {
    let (current, _) = hpa_bounds(hpa);
    (current > min).then(|| json!({"spec": {"minReplicas": min}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_is_a_ceiling_share_of_the_source_never_below_floor_or_current() {
        assert_eq!(takeover_target(Some(4), 100, 1, 1), 4);
        assert_eq!(takeover_target(Some(3), 50, 1, 1), 2);
        assert_eq!(takeover_target(Some(3), 150, 1, 1), 5);
        assert_eq!(takeover_target(Some(0), 100, 2, 1), 2);
        assert_eq!(takeover_target(None, 100, 3, 1), 3);
        assert_eq!(takeover_target(Some(2), 100, 1, 5), 5);
        assert_eq!(takeover_target(Some(i32::MAX), 200, 1, 1), i32::MAX);
    }

    #[test]
    fn required_ready_is_a_ceiling_share_of_at_least_one() {
        assert_eq!(required_ready(4, None), 4);
        assert_eq!(required_ready(4, Some(50)), 2);
        assert_eq!(required_ready(5, Some(50)), 3);
        assert_eq!(required_ready(1, Some(10)), 1);
        assert_eq!(required_ready(4, Some(100)), 4);
    }

    #[test]
    fn rollout_needs_the_current_generation_and_the_replicas() {
        let obj = json!({"metadata": {"generation": 3}, "spec": {"replicas": 4},
                         "status": {"observedGeneration": 2, "readyReplicas": 4, "updatedReplicas": 4}});
        assert!(!rollout(&obj).reached(4, 4));
        let obj = json!({"metadata": {"generation": 3}, "spec": {"replicas": 4},
                         "status": {"observedGeneration": 3, "readyReplicas": 3, "updatedReplicas": 4}});
        assert!(!rollout(&obj).reached(4, 4));
        assert!(rollout(&obj).reached(4, 3));
        // Scaled back down by an HPA: not reached even if all of its replicas are ready.
        let obj = json!({"metadata": {"generation": 4}, "spec": {"replicas": 1},
                         "status": {"observedGeneration": 4, "readyReplicas": 1, "updatedReplicas": 1}});
        assert!(!rollout(&obj).reached(4, 1));
    }

    #[test]
    fn records_round_trip() {
        let obj = json!({"metadata": {"resourceVersion": "7", "annotations": {}}});
        let patch = record_patch(&obj, "r1", 1, 4);
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
        let mut after = obj.clone();
        after["metadata"]["annotations"] = patch["metadata"]["annotations"].clone();
        assert_eq!(recorded(&after), Some(("r1".into(), 1, 4)));
    }

    #[test]
    fn hpa_raise_and_restore() {
        let hpa = json!({"metadata": {"resourceVersion": "9"},
                         "spec": {"minReplicas": 1, "maxReplicas": 3,
                                  "scaleTargetRef": {"kind": "Deployment", "name": "api"}}});
        assert!(hpa_targets(&hpa, "Deployment", "api"));
        assert!(!hpa_targets(&hpa, "StatefulSet", "api"));
        let raise = hpa_raise_patch(&hpa, "r1", 4).expect("raise");
        assert_eq!(raise["spec"]["minReplicas"], 4);
        assert_eq!(raise["spec"]["maxReplicas"], 4);
        assert_eq!(raise["metadata"]["annotations"][HPA_BEFORE], "1,3");
        let mut raised = hpa.clone();
        raised["spec"] = json!({"minReplicas": 4, "maxReplicas": 4});
        raised["metadata"]["annotations"] = raise["metadata"]["annotations"].clone();
        assert_eq!(hpa_raise_patch(&raised, "r1", 4), None);
        let restore = hpa_restore_patch(&raised, "r1").expect("restore");
        assert_eq!(restore["spec"], json!({"minReplicas": 1, "maxReplicas": 3}));
        assert_eq!(hpa_restore_patch(&raised, "r2"), None);
        assert_eq!(
            hpa_lower_patch(&raised, 1),
            Some(json!({"spec": {"minReplicas": 1}}))
        );
        assert_eq!(hpa_lower_patch(&hpa, 1), None);
    }
}
