//! The SQLite store: durability across reopen, migrations, schema checks, compare-and-swap,
//! fencing, idempotency keys; and two runners sharing one store file, where the deposed one is
//! refused and nothing is executed twice.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use failoverd::engine::testing::{wait_finished, FixedLeadership};
use failoverd::engine::{
    EngineMetrics, Event, EventKind, FencingToken, IdempotencyKey, Mode, Outcome, Phase, Plan,
    PlanCatalog, PlanError, PlanLayout, Reversibility, RunError, RunFilter, RunId, RunRecord,
    RunRequest, RunStatus, Runner, RunnerConfig, RunnerDeps, SqliteStore, StartError, Step,
    StepContext, StepDescription, StepError, StepId, Store, StoreError, VerifyOutcome,
};
use serde_json::{json, Value};
use time::OffsetDateTime;

fn record() -> RunRecord {
    RunRecord {
        id: RunId::new(),
        plan: "selftest".into(),
        mode: Mode::Graceful,
        dry_run: false,
        drill: true,
        reason: "test".into(),
        params: json!({"steps": 2}),
        requested_by: "alice".into(),
        region_pair: "a/b".into(),
        created_at: OffsetDateTime::now_utc(),
        detected_at: None,
        layout: PlanLayout { phases: vec![] },
    }
}

fn ev(kind: EventKind) -> Event {
    Event::now(kind)
}

#[tokio::test]
async fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let r = record();
    {
        let s = SqliteStore::open_async(&path).await.unwrap();
        let key = IdempotencyKey {
            key: "k".into(),
            fingerprint: "f".into(),
        };
        s.create(&r, FencingToken(3), Some(&key)).await.unwrap();
        assert_eq!(
            s.append(r.id, 0, FencingToken(3), &ev(EventKind::RunStarted))
                .await
                .unwrap(),
            1
        );
        let fin = ev(EventKind::RunFinished {
            outcome: Outcome::Succeeded,
        });
        assert_eq!(s.append(r.id, 1, FencingToken(3), &fin).await.unwrap(), 2);
    }
    let s = SqliteStore::open_async(&path).await.unwrap();
    let loaded = s.load(r.id).await.unwrap();
    assert_eq!(loaded.record, r);
    assert_eq!(loaded.events.len(), 2);
    assert_eq!(loaded.events[0].event.kind, EventKind::RunStarted);
    assert_eq!(s.events_after(r.id, 1).await.unwrap().len(), 1);
    let list = s.list(&RunFilter::default()).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].outcome, Some(Outcome::Succeeded));
    assert!(list[0].finished_at.is_some());
    assert!(s.list(&RunFilter::unfinished()).await.unwrap().is_empty());
    let (id, key) = s.find_idempotency_key("k").await.unwrap().unwrap();
    assert_eq!((id, key.fingerprint.as_str()), (r.id, "f"));
    // The fencing token survived too.
    let err = s
        .append(r.id, 2, FencingToken(2), &ev(EventKind::RunStarted))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::StaleFencingToken {
                current: FencingToken(3),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(s.schema_version().await.unwrap(), 1);
}

/// A journal written before `detected_at` existed (the record as that version serialised it)
/// still loads, replays and shows in lists; the field reads as absent. A new record with the
/// field round-trips it.
#[tokio::test]
async fn a_record_written_before_detected_at_existed_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let old_id = RunId::new();
    // Exactly the record JSON of the previous version: no `detected_at` key.
    let old_record = json!({
        "id": old_id,
        "plan": "selftest",
        "mode": "graceful",
        "dry_run": false,
        "drill": true,
        "reason": "an old drill",
        "params": {"steps": 1},
        "requested_by": "alice",
        "region_pair": "a/b",
        "created_at": "2024-05-01T10:00:00Z",
        "layout": {"phases": [{"name": "phase-1", "approval": null, "steps": [
            {"id": "selftest-1", "name": "selftest step 1", "reversibility": "compensable", "max_attempts": 3}
        ]}]}
    });
    SqliteStore::open(&path).unwrap();
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute(
            "INSERT INTO runs (id, plan, created_at, record) VALUES (?1, 'selftest', ?2, ?3)",
            rusqlite::params![
                old_id.to_string(),
                "2024-05-01T10:00:00Z",
                old_record.to_string()
            ],
        )
        .unwrap();
    }
    let s = SqliteStore::open_async(&path).await.unwrap();
    let loaded = s.load(old_id).await.unwrap();
    assert_eq!(loaded.record.detected_at, None);
    assert_eq!(loaded.record.reason, "an old drill");
    assert_eq!(
        loaded.record.layout.phases[0].steps[0].id.as_str(),
        "selftest-1"
    );
    let list = s.list(&RunFilter::default()).await.unwrap();
    assert_eq!(list.len(), 1);

    let mut r = record();
    r.detected_at = Some(OffsetDateTime::from_unix_timestamp(1_714_557_600).unwrap());
    s.create(&r, FencingToken(1), None).await.unwrap();
    assert_eq!(s.load(r.id).await.unwrap().record, r);
}

#[tokio::test]
async fn cas_conflict_and_stale_token_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open_async(dir.path().join("s.db"))
        .await
        .unwrap();
    let r = record();
    s.create(&r, FencingToken(1), None).await.unwrap();
    s.append(r.id, 0, FencingToken(1), &ev(EventKind::RunStarted))
        .await
        .unwrap();
    let err = s
        .append(r.id, 0, FencingToken(1), &ev(EventKind::RunStarted))
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
    let err = s
        .append(r.id, 5, FencingToken(1), &ev(EventKind::RunStarted))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    s.fence(FencingToken(2)).await.unwrap();
    let err = s
        .append(
            r.id,
            1,
            FencingToken(1),
            &ev(EventKind::AbortRequested { by: "x".into() }),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::StaleFencingToken {
                presented: FencingToken(1),
                current: FencingToken(2)
            }
        ),
        "{err}"
    );
    assert_eq!(err.code(), "stale_fencing_token");
    let err = s
        .create(&record(), FencingToken(1), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StaleFencingToken { .. }), "{err}");
    assert!(s.fence(FencingToken(1)).await.is_err());
    // Nothing refused was written.
    assert_eq!(s.load(r.id).await.unwrap().events.len(), 1);
    assert_eq!(s.list(&RunFilter::default()).await.unwrap().len(), 1);
    let err = s
        .append(RunId::new(), 0, FencingToken(2), &ev(EventKind::RunStarted))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    let err = s.create(&r, FencingToken(2), None).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
}

#[tokio::test]
async fn idempotency_key_is_atomic_with_create() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open_async(dir.path().join("s.db"))
        .await
        .unwrap();
    let key = IdempotencyKey {
        key: "k".into(),
        fingerprint: "f1".into(),
    };
    let first = record();
    s.create(&first, FencingToken(1), Some(&key)).await.unwrap();
    let err = s
        .create(&record(), FencingToken(1), Some(&key))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::IdempotencyKeyTaken { run_id, same_request: true, .. } if run_id == first.id),
        "{err}"
    );
    let other = IdempotencyKey {
        key: "k".into(),
        fingerprint: "f2".into(),
    };
    let err = s
        .create(&record(), FencingToken(1), Some(&other))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::IdempotencyKeyTaken {
                same_request: false,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        s.list(&RunFilter::default()).await.unwrap().len(),
        1,
        "refused creates left nothing"
    );
}

#[tokio::test]
async fn migrations_newer_schema_and_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    // A store from a future failoverd.
    let path = dir.path().join("future.db");
    SqliteStore::open(&path).unwrap();
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 'later')",
            [],
        )
        .unwrap();
    }
    let err = SqliteStore::open(&path).err().unwrap();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                supported: 1
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade failoverd"));

    // Not a database at all.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x42u8; 8192]).unwrap();
    let err = SqliteStore::open(&junk).err().unwrap();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains("junk.db"),
        "the error names the file: {err}"
    );

    // Somebody else's SQLite database.
    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER);")
        .unwrap();
    let err = SqliteStore::open(&foreign).err().unwrap();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");

    // Reopening an up-to-date store applies nothing twice.
    let ok = dir.path().join("ok.db");
    SqliteStore::open(&ok).unwrap();
    SqliteStore::open(&ok).unwrap();
    let c = rusqlite::Connection::open(&ok).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

// ---------------------------------------------------------------------------------------------
// Two runners, one store file
// ---------------------------------------------------------------------------------------------

/// A step that counts its executions (per step id) in a shared ledger.
struct CountingStep {
    id: StepId,
    ledger: Arc<Mutex<Vec<StepId>>>,
    executions: Arc<AtomicU32>,
}

#[async_trait]
impl Step for CountingStep {
    fn id(&self) -> &StepId {
        &self.id
    }
    fn name(&self) -> &str {
        self.id.as_str()
    }
    async fn describe(&self, _: &StepContext) -> Result<StepDescription, StepError> {
        Ok(StepDescription {
            summary: "count".into(),
            changes: vec![],
        })
    }
    async fn execute(&self, _: &StepContext) -> Result<Value, StepError> {
        self.executions.fetch_add(1, Ordering::SeqCst);
        self.ledger.lock().unwrap().push(self.id.clone());
        Ok(json!({}))
    }
    async fn verify(&self, _: &StepContext) -> Result<VerifyOutcome, StepError> {
        Ok(if self.ledger.lock().unwrap().contains(&self.id) {
            VerifyOutcome::Done(json!({}))
        } else {
            VerifyOutcome::NotDone
        })
    }
    fn reversibility(&self) -> Reversibility {
        Reversibility::Irreversible
    }
}

struct GatedCatalog {
    ledger: Arc<Mutex<Vec<StepId>>>,
    executions: Arc<AtomicU32>,
}

impl PlanCatalog for GatedCatalog {
    fn build(&self, name: &str, _: Mode, _: &Value) -> Result<Plan, PlanError> {
        let step = |id: &str| -> Arc<dyn Step> {
            Arc::new(CountingStep {
                id: StepId::new(id),
                ledger: self.ledger.clone(),
                executions: self.executions.clone(),
            })
        };
        Plan::new(
            name,
            vec![
                Phase::steps("before", vec![step("a"), step("b")]),
                Phase::steps("after", vec![step("c"), step("d")]).with_approval("continue?"),
            ],
        )
    }
    fn names(&self) -> Vec<String> {
        vec!["gated".into()]
    }
}

async fn runner_on(
    path: &std::path::Path,
    token: u64,
    catalog: Arc<GatedCatalog>,
) -> (Runner, Arc<FixedLeadership>) {
    let store = SqliteStore::open_async(path).await.unwrap();
    let leadership = Arc::new(FixedLeadership::new(token));
    let runner = Runner::spawn(
        RunnerConfig {
            leadership_poll: Duration::from_millis(50),
            store_retry: Duration::from_millis(50),
            ..RunnerConfig::default()
        },
        RunnerDeps {
            store: Arc::new(store),
            plans: catalog,
            leadership: leadership.clone(),
            metrics: EngineMetrics::unregistered().unwrap(),
        },
    );
    (runner, leadership)
}

#[tokio::test]
async fn deposed_runner_is_refused_and_nothing_runs_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let catalog = Arc::new(GatedCatalog {
        ledger: Arc::default(),
        executions: Arc::default(),
    });

    // Runner A (token 1) runs the first phase and waits at the gate.
    let (a, a_leadership) = runner_on(&path, 1, catalog.clone()).await;
    let ha = a.handle();
    let req = RunRequest {
        plan: "gated".into(),
        requested_by: "alice".into(),
        ..RunRequest::default()
    };
    let id = ha.start(req.clone()).await.unwrap().id;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while ha.get(id).await.unwrap().status != RunStatus::WaitingApproval {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A never reached the gate"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(catalog.executions.load(Ordering::SeqCst), 2);

    // A loses leadership without noticing (a paused process); B takes over with token 2.
    a_leadership.revoke();
    let (b, _) = runner_on(&path, 2, catalog.clone()).await;
    let hb = b.handle();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !hb.status().await.unwrap().leader {
        assert!(tokio::time::Instant::now() < deadline, "B never led");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // B resumed the run at the gate; approving through B completes it.
    assert_eq!(hb.get(id).await.unwrap().status, RunStatus::WaitingApproval);
    hb.approve(id, "bob").await.unwrap();
    let done = wait_finished(&hb, id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(catalog.executions.load(Ordering::SeqCst), 4);

    // A wakes up and acts on its stale view: every write is refused, nothing executes.
    let err = ha.approve(id, "alice").await.unwrap_err();
    assert!(matches!(err, RunError::NotLeader), "{err}");
    let err = ha.start(req).await.unwrap_err();
    assert!(matches!(err, StartError::NotLeader), "{err}");
    assert!(!ha.status().await.unwrap().leader);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        catalog.executions.load(Ordering::SeqCst),
        4,
        "nothing executed twice"
    );
    let ledger = catalog.ledger.lock().unwrap().clone();
    let mut sorted: Vec<_> = ledger.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    assert_eq!(sorted, ["a", "b", "c", "d"]);

    // The journal shows one clean history: both tokens, no refused event.
    let store = SqliteStore::open_async(&path).await.unwrap();
    let journal = store.load(id).await.unwrap().events;
    let approvals = journal
        .iter()
        .filter(|e| matches!(e.event.kind, EventKind::Approved { .. }))
        .count();
    assert_eq!(approvals, 1);
    a.shutdown().await;
    b.shutdown().await;
}

/// The daemon's wiring: SQLite store + local lock leadership. A second failoverd on the same state
/// directory is a follower (reads work, writes are refused) until the first one stops; it then
/// takes over with a higher epoch and resumes the unfinished run.
#[tokio::test]
async fn local_leadership_follower_takes_over_and_resumes() {
    use failoverd::engine::LocalLeadership;
    use failoverd::plans::PlanRegistry;

    let dir = tempfile::tempdir().unwrap();
    let spawn = |store: SqliteStore| {
        Runner::spawn(
            RunnerConfig {
                leadership_poll: Duration::from_millis(50),
                store_retry: Duration::from_millis(50),
                shutdown_grace: Duration::from_millis(10),
                ..RunnerConfig::default()
            },
            RunnerDeps {
                store: Arc::new(store),
                plans: Arc::new(PlanRegistry::builtin(dir.path())),
                leadership: Arc::new(LocalLeadership::new(dir.path())),
                metrics: EngineMetrics::unregistered().unwrap(),
            },
        )
    };
    let db = dir.path().join("runs.sqlite3");
    let first = spawn(SqliteStore::open_async(&db).await.unwrap());
    let h1 = first.handle();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !h1.status().await.unwrap().leader {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        h1.status().await.unwrap().fencing_token,
        Some(FencingToken(1))
    );
    let run = h1
        .start(RunRequest {
            plan: "selftest".into(),
            params: json!({"steps": 3, "step_seconds": 0.3}),
            ..RunRequest::default()
        })
        .await
        .unwrap();

    let second = spawn(SqliteStore::open_async(&db).await.unwrap());
    let h2 = second.handle();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s2 = h2.status().await.unwrap();
    assert!(!s2.leader, "the lock is held by the first failoverd");
    assert!(matches!(
        h2.start(RunRequest {
            plan: "selftest".into(),
            ..RunRequest::default()
        })
        .await,
        Err(StartError::NotLeader)
    ));
    assert!(matches!(
        h2.approve(run.id, "x").await,
        Err(RunError::NotLeader)
    ));
    assert_eq!(
        h2.get(run.id).await.unwrap().id,
        run.id,
        "followers serve reads"
    );

    first.shutdown().await; // releases the lock; the run is unfinished
    let done = wait_finished(&h2, run.id, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(
        h2.status().await.unwrap().fencing_token,
        Some(FencingToken(2))
    );
    let effects = std::fs::read_to_string(dir.path().join("selftest-effects.log")).unwrap();
    for i in 1..=3 {
        let line = format!("{} selftest-{i}", run.id);
        assert_eq!(
            effects.lines().filter(|l| *l == line).count(),
            1,
            "{effects}"
        );
    }
    second.shutdown().await;
}

/// A store with `runs` runs of a few events each, closed.
async fn filled_store(path: &std::path::Path, runs: usize) -> Vec<RunId> {
    let s = SqliteStore::open_async(path).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..runs {
        let r = record();
        s.create(&r, FencingToken(1), None).await.unwrap();
        for seq in 0..3 {
            s.append(r.id, seq, FencingToken(1), &ev(EventKind::RunStarted))
                .await
                .unwrap();
        }
        ids.push(r.id);
    }
    ids
}

/// A 0-byte journal is not a new one: the start is refused with the path and the cause, and the
/// file is left as it was.
#[test]
fn an_empty_journal_file_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.sqlite3");
    std::fs::write(&path, b"").unwrap();
    let err = SqliteStore::open(&path).err().expect("refused");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("empty (0 bytes)"), "{text}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "untouched");
}

/// Without a file a new journal is created, complete, and no temporary file is left behind.
#[test]
fn a_new_journal_is_created_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.sqlite3");
    // What a crash in the middle of an earlier creation would have left.
    std::fs::write(dir.path().join("runs.sqlite3.new"), b"half").unwrap();
    SqliteStore::open(&path).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > 0);
    assert!(!dir.path().join("runs.sqlite3.new").exists());
}

/// Garbage over the file's last page: `PRAGMA quick_check` at start finds it and the start is
/// refused, instead of a daemon that starts and answers every listing with 500.
#[tokio::test]
async fn a_damaged_page_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.sqlite3");
    filled_store(&path, 40).await;
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(
        len > 8192,
        "the runs were checkpointed into the file ({len} bytes)"
    );
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(len - 4096)).unwrap();
        f.write_all(&[0x5a; 4096]).unwrap();
    }
    let err = SqliteStore::open_async(&path).await.err().expect("refused");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(
        text.contains("quick_check") || text.contains("malformed"),
        "{text}"
    );
}

/// The WAL is truncated after checkpoints: many small transactions (each fsynced) never grow it
/// past the limit, so a small volume does not fill up.
#[tokio::test]
async fn the_wal_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.sqlite3");
    let s = SqliteStore::open_async(&path).await.unwrap();
    let r = record();
    s.create(&r, FencingToken(1), None).await.unwrap();
    let wal = dir.path().join("runs.sqlite3-wal");
    let mut largest = 0;
    // About 3 WAL pages per append: several automatic checkpoints' worth.
    for seq in 0..1500u64 {
        s.append(r.id, seq, FencingToken(1), &ev(EventKind::RunStarted))
            .await
            .unwrap();
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    let limit = failoverd::engine::store::WAL_SIZE_LIMIT as u64;
    println!("largest WAL seen: {largest} bytes (limit {limit})");
    assert!(largest > 0, "the WAL was used");
    assert!(
        largest <= limit + 64 * 1024,
        "the WAL grew to {largest} bytes"
    );
}

/// The journal on a read-only mount (root: a read-only bind mount of a directory): the error names
/// the file and says what the operating system refused.
#[tokio::test]
async fn an_unwritable_journal_names_the_path_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let path = state.join("runs.sqlite3");
    filled_store(&path, 2).await;
    let _ro = ReadOnlyBind::new(&state);
    let err = SqliteStore::open_async(&path).await.err().expect("refused");
    let text = err.to_string();
    println!("{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("Read-only file system"), "{text}");
}

/// `mount --bind DIR DIR` then remount it read-only; unmounted on drop. Needs root (CI runs as
/// root); failing to mount fails the test.
struct ReadOnlyBind(std::path::PathBuf);

impl ReadOnlyBind {
    fn new(dir: &std::path::Path) -> Self {
        let run = |args: &[&str]| {
            let out = std::process::Command::new("mount")
                .args(args)
                .output()
                .expect("run mount");
            assert!(
                out.status.success(),
                "mount {args:?} (needs root): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let d = dir.to_str().unwrap();
        run(&["--bind", d, d]);
        let guard = ReadOnlyBind(dir.to_owned());
        run(&["-o", "remount,ro,bind", d]);
        guard
    }
}

impl Drop for ReadOnlyBind {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}
