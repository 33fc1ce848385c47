//! `state.store: kubernetes` against the Kubernetes API emulator (`support/kube_emulator.py`:
//! an emulated apiserver, serving failoverd's CRDs from `deploy/base/crds.yaml` and validating
//! every object against them; Leases against Kubernetes' own schema): the run journal as
//! custom resources (compare-and-swap, fencing, idempotency keys, listing) and leadership on a
//! Lease (acquire, renew, lose, release, a token that only grows).

use std::sync::Arc;
use std::time::Duration;

use failoverd::config::{
    ClusterConnect, Duration as CfgDuration, KubernetesState, SecretRef, TokenConnect,
};
use failoverd::engine::{
    Event, EventKind, FencingToken, IdempotencyKey, Leadership, Mode, Outcome, PlanLayout,
    RunFilter, RunId, RunRecord, Store, StoreError,
};
use failoverd::kube::journal::KubeStore;
use failoverd::kube::lease::LeaseLeadership;
use serde_json::json;

use crate::support::kube::{KubeEmulator, KubeOptions, DEFAULT_TOKEN};

const PAIR: &str = "us-east-1/us-west-2";
const NAMESPACE: &str = "failoverd";

struct Bed {
    emu: KubeEmulator,
    _token: tempfile::NamedTempFile,
    config: KubernetesState,
}

async fn bed(lease: (u64, u64, u64)) -> Bed {
    let emu = KubeEmulator::start(KubeOptions {
        seeds: vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        ],
        ..KubeOptions::default()
    })
    .await;
    let token = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token.path(), DEFAULT_TOKEN).unwrap();
    let (duration, renew, skew) = lease;
    let config = KubernetesState {
        connect: ClusterConnect {
            token: Some(TokenConnect {
                endpoint: emu.url(),
                ca_file: None,
                token: SecretRef::File(token.path().to_owned()),
            }),
            ..ClusterConnect::default()
        },
        namespace: NAMESPACE.into(),
        lease_name: "failoverd".into(),
        lease_duration: CfgDuration::from_millis(duration),
        renew_interval: CfgDuration::from_millis(renew),
        max_clock_skew: CfgDuration::from_millis(skew),
        connect_timeout: CfgDuration::from_secs(2),
        request_timeout: CfgDuration::from_secs(2),
        advertise_url: None,
    };
    Bed {
        emu,
        _token: token,
        config,
    }
}

fn backend(bed: &Bed) -> (KubeStore, LeaseLeadership) {
    failoverd::kube::state_backend(&bed.config, PAIR, "us-west-2", None)
}

fn record(plan: &str) -> RunRecord {
    RunRecord {
        id: RunId::new(),
        plan: plan.into(),
        mode: Mode::Graceful,
        dry_run: false,
        drill: false,
        reason: "test".into(),
        params: json!({"steps": 2}),
        requested_by: "alice".into(),
        region_pair: PAIR.into(),
        created_at: time::OffsetDateTime::now_utc(),
        detected_at: None,
        layout: PlanLayout { phases: vec![] },
    }
}

fn ev(kind: EventKind) -> Event {
    Event::now(kind)
}

#[tokio::test]
async fn the_journal_keeps_the_store_contract_in_the_cluster() {
    let bed = bed((15_000, 5_000, 2_000)).await;
    let (store, _) = backend(&bed);
    let t1 = FencingToken(10);
    store.fence(t1).await.unwrap();

    // Create, append with compare-and-swap, load.
    let a = record("selftest");
    store.create(&a, t1, None).await.unwrap();
    assert!(matches!(
        store.create(&a, t1, None).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(
        store
            .append(a.id, 0, t1, &ev(EventKind::RunStarted))
            .await
            .unwrap(),
        1
    );
    let err = store
        .append(a.id, 0, t1, &ev(EventKind::RunStarted))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 0,
                actual: 1,
                ..
            }
        ),
        "{err}"
    );
    let loaded = store.load(a.id).await.unwrap();
    assert_eq!(loaded.record, a);
    assert_eq!(loaded.events.len(), 1);
    assert_eq!(loaded.events[0].seq, 1);
    assert!(store.events_after(a.id, 1).await.unwrap().is_empty());
    assert!(matches!(
        store.load(RunId::new()).await,
        Err(StoreError::NotFound(_))
    ));

    // What the cluster holds is the CRD's shape (the emulator validated it on write).
    let stored = bed
        .emu
        .object(&format!(
            "/apis/failoverd.io/v1alpha1/namespaces/{NAMESPACE}/failoverdruns/{}",
            a.id
        ))
        .await;
    assert_eq!(stored["spec"]["lastSeq"], 1, "{stored:#}");
    assert_eq!(stored["spec"]["fence"], 10);
    assert_eq!(
        stored["metadata"]["labels"]["failoverd.io/finished"],
        "false"
    );

    // Idempotency keys: the same key is refused, naming the run and whether it is the same request.
    let key = IdempotencyKey {
        key: "deploy-42".into(),
        fingerprint: "f1".into(),
    };
    let b = record("failover");
    store.create(&b, t1, Some(&key)).await.unwrap();
    let err = store
        .create(&record("failover"), t1, Some(&key))
        .await
        .unwrap_err();
    match err {
        StoreError::IdempotencyKeyTaken {
            run_id,
            same_request,
            ..
        } => {
            assert_eq!(run_id, b.id);
            assert!(same_request);
        }
        other => panic!("{other}"),
    }
    let other_request = IdempotencyKey {
        fingerprint: "f2".into(),
        ..key.clone()
    };
    assert!(matches!(
        store
            .create(&record("failover"), t1, Some(&other_request))
            .await,
        Err(StoreError::IdempotencyKeyTaken {
            same_request: false,
            ..
        })
    ));
    assert_eq!(
        store
            .find_idempotency_key("deploy-42")
            .await
            .unwrap()
            .map(|(id, _)| id),
        Some(b.id)
    );
    assert!(store.find_idempotency_key("never").await.unwrap().is_none());

    // Finishing a run: listing knows the outcome; unfinished runs list alone; newest first.
    store
        .append(b.id, 0, t1, &ev(EventKind::RunStarted))
        .await
        .unwrap();
    store
        .append(
            b.id,
            1,
            t1,
            &ev(EventKind::RunFinished {
                outcome: Outcome::Succeeded,
            }),
        )
        .await
        .unwrap();
    let all = store.list(&RunFilter::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|s| s.record.id).collect::<Vec<_>>(),
        vec![b.id, a.id]
    );
    assert_eq!(all[0].outcome, Some(Outcome::Succeeded));
    assert!(all[0].finished_at.is_some());
    let unfinished = store.list(&RunFilter::unfinished()).await.unwrap();
    assert_eq!(
        unfinished.iter().map(|s| s.record.id).collect::<Vec<_>>(),
        vec![a.id]
    );
    let plan_only = store
        .list(&RunFilter {
            plan: Some("failover".into()),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(plan_only.len(), 1);

    // A new leader fences with a higher token: the old one's writes are refused everywhere.
    let t2 = FencingToken(11);
    store.fence(t2).await.unwrap();
    let err = store
        .append(
            a.id,
            1,
            t1,
            &ev(EventKind::RunFinished {
                outcome: Outcome::Succeeded,
            }),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StaleFencingToken { .. }), "{err}");
    let err = store
        .create(&record("selftest"), t1, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StaleFencingToken { .. }), "{err}");
    let err = store.fence(t1).await.unwrap_err();
    assert!(matches!(err, StoreError::StaleFencingToken { .. }), "{err}");
    assert_eq!(
        store
            .append(
                a.id,
                1,
                t2,
                &ev(EventKind::RunFinished {
                    outcome: Outcome::Succeeded
                })
            )
            .await
            .unwrap(),
        2
    );
    // The refused create left nothing behind.
    assert_eq!(store.list(&RunFilter::default()).await.unwrap().len(), 2);

    // A second store on the same cluster (the other replica) sees all of it.
    let (other, _) = backend(&bed);
    assert_eq!(other.list(&RunFilter::default()).await.unwrap().len(), 2);
    assert!(matches!(
        other.append(a.id, 2, t1, &ev(EventKind::RunStarted)).await,
        Err(StoreError::StaleFencingToken { .. })
    ));
}

#[tokio::test]
async fn a_deposed_leaders_late_append_loses_to_the_fence() {
    let bed = bed((15_000, 5_000, 2_000)).await;
    let (store, _) = backend(&bed);
    let store = Arc::new(store);
    let old = FencingToken(1);
    store.fence(old).await.unwrap();
    let run = record("selftest");
    store.create(&run, old, None).await.unwrap();
    store
        .append(run.id, 0, old, &ev(EventKind::RunStarted))
        .await
        .unwrap();

    // The old leader's appends race the new leader's fence, many times over: each append either
    // lands before the fence raised the run (and the new leader sees it) or is refused.
    let mut seq = 1;
    for round in 0..20u64 {
        let new = FencingToken(2 + round);
        let appender = {
            let store = Arc::clone(&store);
            let stale = FencingToken(1 + round);
            tokio::spawn(async move {
                store
                    .append(run.id, seq, stale, &ev(EventKind::RunStarted))
                    .await
            })
        };
        store.fence(new).await.unwrap();
        let late = appender.await.unwrap();
        let after = store.load(run.id).await.unwrap().events.len() as u64;
        match late {
            Ok(s) => assert_eq!(after, s, "an acknowledged append is in the journal"),
            Err(StoreError::StaleFencingToken { .. }) => assert_eq!(after, seq),
            Err(e) => panic!("round {round}: {e}"),
        }
        seq = after;
        // Once the fence is in place, the stale token is refused, always.
        let refused = store
            .append(
                run.id,
                seq,
                FencingToken(1 + round),
                &ev(EventKind::RunStarted),
            )
            .await;
        assert!(matches!(refused, Err(StoreError::StaleFencingToken { .. })));
    }
}

async fn acquire_within(l: &LeaseLeadership, within: Duration) -> failoverd::engine::LeaderLease {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        // While the API server fails, an attempt fails too (and the runner tries again).
        if let Ok(Some(lease)) = l.try_acquire().await {
            return lease;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not acquired within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_lease_is_acquired_renewed_lost_and_released() {
    // lease 2s, renew every 400ms, 300ms of clock skew tolerated.
    let bed = bed((2_000, 400, 300)).await;
    let (_, a) = backend(&bed);
    let (_, b) = backend(&bed);
    let lease_path =
        format!("/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/failoverd");

    let la = a
        .try_acquire()
        .await
        .unwrap()
        .expect("the first replica leads");
    let t1 = la.token().0;
    assert!(la.is_held());
    let held = bed.emu.object(&lease_path).await;
    assert_eq!(held["spec"]["leaseDurationSeconds"], 2, "{held:#}");
    assert_eq!(
        held["metadata"]["annotations"]["failoverd.io/fencing-token"],
        t1.to_string()
    );
    let renewed_at = held["spec"]["renewTime"].as_str().unwrap().to_owned();
    // Where the holder's API answers, said after it took the Lease: on the next renewal.
    assert!(held["metadata"]["annotations"]["failoverd.io/api-url"].is_null());
    a.advertise("http://10.0.3.7:8080");

    // Renewed: the follower cannot take it for several lease durations.
    let start = tokio::time::Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        assert!(
            b.try_acquire().await.unwrap().is_none(),
            "taken while renewed"
        );
        assert!(la.is_held());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let later = bed.emu.object(&lease_path).await;
    assert_ne!(later["spec"]["renewTime"].as_str().unwrap(), renewed_at);
    assert_eq!(
        later["metadata"]["annotations"]["failoverd.io/api-url"], "http://10.0.3.7:8080",
        "{later:#}"
    );
    assert_eq!(b.leader_url().as_deref(), Some("http://10.0.3.7:8080"));
    assert_eq!(
        a.leader_url(),
        None,
        "the holder does not forward to itself"
    );
    assert!(
        b.describe_holder()
            .is_some_and(|d| d.contains(&format!("fencing token {t1}"))),
        "{:?}",
        b.describe_holder()
    );

    // The API server fails: the holder stops within the lease duration minus the skew, before
    // anyone may take over; the follower takes it once the server is back, with a newer token.
    bed.emu.fault(json!({"unavailable_seconds": 3})).await;
    let failed_at = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(3), la.expired())
        .await
        .expect("the lease expires while it cannot be renewed");
    let stopped_after = failed_at.elapsed();
    assert!(!la.is_held());
    assert!(
        stopped_after <= Duration::from_millis(2_000),
        "stopped acting {stopped_after:?} after the last renewal could not be made"
    );
    let lb = acquire_within(&b, Duration::from_secs(8)).await;
    assert!(lb.token().0 > t1, "{} > {t1}", lb.token());
    drop(la);

    // A clean stop releases the Lease: the other replica takes it at once.
    drop(lb);
    let t2 = {
        let lease = acquire_within(&a, Duration::from_secs(1)).await;
        let t = lease.token().0;
        assert!(t > t1, "token grows");
        drop(lease);
        t
    };
    // Deleting the Lease does not bring the token back down.
    let released = acquire_within(&b, Duration::from_secs(1)).await;
    assert!(released.token().0 > t2);
    drop(released);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let http = reqwest::Client::new();
    let deleted = http
        .delete(format!("{}{lease_path}", bed.emu.url()))
        .bearer_auth(DEFAULT_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let fresh = acquire_within(&a, Duration::from_secs(1)).await;
    assert!(
        fresh.token().0 > t2 + 1,
        "{} after {}",
        fresh.token(),
        t2 + 1
    );
}
