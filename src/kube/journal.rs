//! The run journal as custom resources (`state.store: kubernetes`), for failoverd replicas that
//! share no disk. The CRDs are `deploy/base/crds.yaml`.
//!
//! - One `FailoverdRun` per run: the record and the whole journal (`spec.events`, event N at
//!   index N-1), `spec.lastSeq`, the outcome once finished, and `spec.fence`, the newest fencing
//!   token that wrote it. Labels carry the region pair and whether the run finished, for listing.
//! - One `FailoverdState` per region pair: `spec.fence`, the newest token seen.
//! - One `FailoverdIdempotencyKey` per `Idempotency-Key`, named by a hash of the key.
//!
//! The API server has no transactions across objects, so the [`Store`] contract is kept like
//! this:
//!
//! - **Compare-and-swap appends**: the run object is replaced with the `resourceVersion` it was
//!   read at; a `409` means someone wrote meanwhile, and the append is decided again on the new
//!   version (`expected_seq`, fence).
//! - **Fencing**: `fence(t)` raises the state's fence to `t`, then raises `spec.fence` of every
//!   unfinished run to `t` (each a compare-and-swap). An append checks the run's own fence, so a
//!   deposed leader's append either lands before the new leader's raise of that run (and the new
//!   leader, which loads runs only after `fence` returns, sees it) or fails on the raised
//!   `resourceVersion` and is then refused as stale. A `create` checks the state's fence before
//!   and after writing, and takes its run back when a newer fence appeared meanwhile.
//! - **Idempotency keys**: the key object is created before the run (creation is atomic), so a
//!   second request with the key finds it; a key whose run does not exist (its creator stopped
//!   between the two writes, unacknowledged) is reclaimed.
//!
//! An object holds at most [`MAX_OBJECT_BYTES`] (etcd refuses requests above 1.5 MiB); an append
//! that would pass it is refused with a message saying so.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::objects::{resource_version, Objects, ALREADY_EXISTS};
use crate::engine::{
    Event, FencingToken, IdempotencyKey, JournalEntry, Outcome, RunFilter, RunId, RunRecord,
    RunSummary, Store, StoreError, StoredRun,
};
use crate::port::ErrorKind;

/// The API group and version of the journal's kinds.
pub const API_VERSION: &str = "failoverd.io/v1alpha1";
/// The largest run object written.
pub const MAX_OBJECT_BYTES: usize = 1024 * 1024;
const PAIR_LABEL: &str = "failoverd.io/region-pair";
const FINISHED_LABEL: &str = "failoverd.io/finished";
/// Compare-and-swap rounds before a write gives up (each lost to another writer).
const CAS_ROUNDS: usize = 16;

/// The three kinds' objects in the journal's namespace.
pub struct JournalObjects {
    pub runs: Arc<dyn Objects>,
    pub states: Arc<dyn Objects>,
    pub keys: Arc<dyn Objects>,
}

/// A [`Store`] kept in the Kubernetes API.
pub struct KubeStore {
    objects: JournalObjects,
    pair: String,
    /// `pair` as a label value and object name part.
    pair_slug: String,
    /// The run object as this store last wrote it: the next append starts from it instead of
    /// reading it again (a write by anyone else changed its resourceVersion, so the
    /// compare-and-swap refuses the stale copy and the append reads afresh).
    last_written: std::sync::Mutex<Option<RunObject>>,
}

fn unavailable(e: crate::port::Error) -> StoreError {
    StoreError::Unavailable(format!("Kubernetes: {e}"))
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, v: &str) -> Result<T, StoreError> {
    serde_json::from_str(v).map_err(|e| StoreError::Decode(format!("{what}: {e}")))
}

fn encode<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Decode(e.to_string()))
}

fn spec_u64(object: &Value, field: &str) -> u64 {
    object
        .pointer(&format!("/spec/{field}"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

fn is_already_exists(e: &crate::port::Error) -> bool {
    e.kind == ErrorKind::Conflict && e.code.as_deref() == Some(ALREADY_EXISTS)
}

/// A lowercase name part: letters and digits kept, every other run of characters one `-`.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-');
    out.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

/// A run object's parts.
struct RunObject {
    record: RunRecord,
    events: Vec<String>,
    fence: u64,
    outcome: Option<Outcome>,
    finished_at: Option<OffsetDateTime>,
    object: Value,
}

impl RunObject {
    fn parse(object: Value) -> Result<Self, StoreError> {
        let spec = object
            .get("spec")
            .ok_or_else(|| StoreError::Decode("FailoverdRun without spec".into()))?;
        let record: RunRecord = decode(
            "spec.record",
            spec.get("record").and_then(Value::as_str).unwrap_or(""),
        )?;
        let events = spec
            .get("events")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|e| e.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
            })
            .unwrap_or(Some(Vec::new()))
            .ok_or_else(|| StoreError::Decode("spec.events holds a non-string".into()))?;
        let outcome = match spec.get("outcome").and_then(Value::as_str) {
            Some(o) => Some(decode::<Outcome>("spec.outcome", &format!("\"{o}\""))?),
            None => None,
        };
        let finished_at = match spec.get("finishedAt").and_then(Value::as_str) {
            Some(t) => Some(
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| StoreError::Decode(format!("spec.finishedAt {t:?}: {e}")))?,
            ),
            None => None,
        };
        Ok(Self {
            fence: spec_u64(&object, "fence"),
            record,
            events,
            outcome,
            finished_at,
            object,
        })
    }

    fn journal(&self) -> Result<Vec<JournalEntry>, StoreError> {
        self.events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                Ok(JournalEntry {
                    seq: i as u64 + 1,
                    event: decode("spec.events", e)?,
                })
            })
            .collect()
    }

    fn summary(&self) -> RunSummary {
        RunSummary {
            record: self.record.clone(),
            last_seq: self.events.len() as u64,
            outcome: self.outcome,
            finished_at: self.finished_at,
        }
    }
}

impl KubeStore {
    pub fn new(objects: JournalObjects, region_pair: &str) -> Self {
        Self {
            objects,
            pair: region_pair.to_owned(),
            pair_slug: slug(region_pair),
            last_written: std::sync::Mutex::new(None),
        }
    }

    /// The run as last written here, if that is run `id` at `seq` events.
    fn cached_run(&self, id: RunId, seq: u64) -> Option<RunObject> {
        self.last_written
            .lock()
            .expect("lock")
            .take()
            .filter(|r| r.record.id == id && r.events.len() as u64 == seq)
    }

    fn state_name(&self) -> String {
        format!("failoverd-{}", self.pair_slug)
            .chars()
            .take(253)
            .collect()
    }

    fn key_name(&self, key: &str) -> String {
        let digest = Sha256::digest(format!("{}\n{key}", self.pair).as_bytes());
        format!("key-{}", &hex::encode(digest)[..40])
    }

    /// The state's fence (0 when there is no state yet).
    async fn current_fence(&self) -> Result<u64, StoreError> {
        let state = self
            .objects
            .states
            .get(&self.state_name())
            .await
            .map_err(unavailable)?;
        Ok(state.map_or(0, |s| spec_u64(&s, "fence")))
    }

    fn stale(presented: FencingToken, current: u64) -> StoreError {
        StoreError::StaleFencingToken {
            presented,
            current: FencingToken(current),
        }
    }

    async fn get_run(&self, id: RunId) -> Result<RunObject, StoreError> {
        match self
            .objects
            .runs
            .get(&id.to_string())
            .await
            .map_err(unavailable)?
        {
            Some(o) => RunObject::parse(o),
            None => Err(StoreError::NotFound(id)),
        }
    }

    /// Raises the state's fence to `token`.
    async fn raise_state(&self, token: FencingToken) -> Result<(), StoreError> {
        let name = self.state_name();
        for _ in 0..CAS_ROUNDS {
            match self.objects.states.get(&name).await.map_err(unavailable)? {
                None => {
                    let state = json!({
                        "apiVersion": API_VERSION,
                        "kind": "FailoverdState",
                        "metadata": {"name": name, "labels": {PAIR_LABEL: self.pair_slug}},
                        "spec": {"regionPair": self.pair, "fence": token.0},
                    });
                    match self.objects.states.create(&state).await {
                        Ok(_) => return Ok(()),
                        Err(e) if is_already_exists(&e) => continue,
                        Err(e) => return Err(unavailable(e)),
                    }
                }
                Some(mut state) => {
                    let current = spec_u64(&state, "fence");
                    if token.0 < current {
                        return Err(Self::stale(token, current));
                    }
                    if token.0 == current {
                        return Ok(());
                    }
                    state["spec"]["fence"] = Value::from(token.0);
                    match self.objects.states.replace(&name, &state).await {
                        Ok(_) => return Ok(()),
                        Err(e) if e.kind == ErrorKind::Conflict => continue,
                        Err(e) => return Err(unavailable(e)),
                    }
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "FailoverdState {name}: still changing after {CAS_ROUNDS} attempts"
        )))
    }

    /// Raises `spec.fence` of one unfinished run to `token`.
    async fn raise_run(&self, mut run: RunObject, token: FencingToken) -> Result<(), StoreError> {
        let id = run.record.id;
        for _ in 0..CAS_ROUNDS {
            if run.fence > token.0 {
                return Err(Self::stale(token, run.fence));
            }
            if run.fence == token.0 || run.outcome.is_some() {
                return Ok(());
            }
            let mut object = run.object.clone();
            object["spec"]["fence"] = Value::from(token.0);
            match self.objects.runs.replace(&id.to_string(), &object).await {
                Ok(_) => return Ok(()),
                Err(e) if e.kind == ErrorKind::Conflict => run = self.get_run(id).await?,
                Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(StoreError::Unavailable(format!(
            "FailoverdRun {id}: still changing after {CAS_ROUNDS} attempts"
        )))
    }

    fn selector(&self, unfinished_only: bool) -> String {
        let mut s = format!("{PAIR_LABEL}={}", self.pair_slug);
        if unfinished_only {
            s.push_str(&format!(",{FINISHED_LABEL}=false"));
        }
        s
    }

    async fn runs(&self, unfinished_only: bool) -> Result<Vec<RunObject>, StoreError> {
        let objects = self
            .objects
            .runs
            .list(&self.selector(unfinished_only))
            .await
            .map_err(unavailable)?;
        let mut runs = objects
            .into_iter()
            .map(RunObject::parse)
            .collect::<Result<Vec<_>, _>>()?;
        runs.retain(|r| r.record.region_pair == self.pair);
        // Newest first: run ids are time-ordered (UUIDv7), creation time decides first.
        runs.sort_by(|a, b| {
            (b.record.created_at, b.record.id.0).cmp(&(a.record.created_at, a.record.id.0))
        });
        Ok(runs)
    }

    /// The key object's run, if that run exists.
    async fn key_target(
        &self,
        key: &str,
    ) -> Result<Option<(Value, RunId, IdempotencyKey)>, StoreError> {
        let Some(object) = self
            .objects
            .keys
            .get(&self.key_name(key))
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let text = |f: &str| {
            object
                .pointer(&format!("/spec/{f}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let run_id: RunId = decode("spec.runId", &format!("\"{}\"", text("runId")))?;
        let ik = IdempotencyKey {
            key: text("key"),
            fingerprint: text("fingerprint"),
        };
        Ok(Some((object, run_id, ik)))
    }

    /// Claims `key` for `run`: `Err(IdempotencyKeyTaken)` when a run already has it.
    async fn claim_key(&self, key: &IdempotencyKey, run: RunId) -> Result<(), StoreError> {
        let object = json!({
            "apiVersion": API_VERSION,
            "kind": "FailoverdIdempotencyKey",
            "metadata": {"name": self.key_name(&key.key), "labels": {PAIR_LABEL: self.pair_slug}},
            "spec": {
                "regionPair": self.pair,
                "key": key.key,
                "fingerprint": key.fingerprint,
                "runId": run.to_string(),
            },
        });
        for _ in 0..CAS_ROUNDS {
            match self.objects.keys.create(&object).await {
                Ok(_) => return Ok(()),
                Err(e) if is_already_exists(&e) => {}
                Err(e) => return Err(unavailable(e)),
            }
            let Some((existing, owner, ik)) = self.key_target(&key.key).await? else {
                continue;
            };
            match self.get_run(owner).await {
                Ok(_) => {
                    return Err(StoreError::IdempotencyKeyTaken {
                        key: key.key.clone(),
                        run_id: owner,
                        same_request: ik.fingerprint == key.fingerprint,
                    })
                }
                Err(StoreError::NotFound(_)) => {
                    // Its creator stopped before the run was written: nothing was acknowledged.
                    let rv = resource_version(&existing).map(str::to_owned);
                    match self
                        .objects
                        .keys
                        .delete(&self.key_name(&key.key), rv.as_deref())
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if e.kind == ErrorKind::Conflict => {}
                        Err(e) => return Err(unavailable(e)),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(format!(
            "idempotency key {:?}: still changing after {CAS_ROUNDS} attempts",
            key.key
        )))
    }
}

#[async_trait]
impl Store for KubeStore {
    async fn fence(&self, token: FencingToken) -> Result<(), StoreError> {
        self.raise_state(token).await?;
        for run in self.runs(true).await? {
            self.raise_run(run, token).await?;
        }
        Ok(())
    }

    async fn create(
        &self,
        record: &RunRecord,
        token: FencingToken,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<(), StoreError> {
        let fence = self.current_fence().await?;
        if token.0 < fence {
            return Err(Self::stale(token, fence));
        }
        if let Some(key) = idempotency {
            self.claim_key(key, record.id).await?;
        }
        let name = record.id.to_string();
        let object = json!({
            "apiVersion": API_VERSION,
            "kind": "FailoverdRun",
            "metadata": {
                "name": name,
                "labels": {PAIR_LABEL: self.pair_slug, FINISHED_LABEL: "false"},
            },
            "spec": {
                "regionPair": self.pair,
                "plan": record.plan,
                "record": encode(record)?,
                "fence": token.0,
                "lastSeq": 0,
                "events": [],
            },
        });
        let mut object = object;
        if let Some(key) = idempotency {
            object["spec"]["idempotencyKey"] = Value::from(key.key.as_str());
        }
        let created = match self.objects.runs.create(&object).await {
            Ok(created) => created,
            Err(e) if is_already_exists(&e) => return Err(StoreError::AlreadyExists(record.id)),
            Err(e) => return Err(unavailable(e)),
        };
        // A leader that took over meanwhile may have listed the runs before this one existed:
        // take it back (best effort: the error says the write may or may not have happened).
        let fence = self.current_fence().await?;
        if token.0 < fence {
            let _ = self
                .objects
                .runs
                .delete(&name, resource_version(&created))
                .await;
            return Err(Self::stale(token, fence));
        }
        Ok(())
    }

    async fn append(
        &self,
        run_id: RunId,
        expected_seq: u64,
        token: FencingToken,
        event: &Event,
    ) -> Result<u64, StoreError> {
        let encoded = encode(event)?;
        let mut run = match self.cached_run(run_id, expected_seq) {
            Some(run) => run,
            None => self.get_run(run_id).await?,
        };
        for _ in 0..CAS_ROUNDS {
            if token.0 < run.fence {
                return Err(Self::stale(token, run.fence));
            }
            let actual = run.events.len() as u64;
            if actual != expected_seq {
                return Err(StoreError::Conflict {
                    run_id,
                    expected: expected_seq,
                    actual,
                });
            }
            let mut object = run.object.clone();
            let spec = &mut object["spec"];
            let seq = actual + 1;
            if let Some(events) = spec.get_mut("events").and_then(Value::as_array_mut) {
                events.push(Value::from(encoded.clone()));
            } else {
                spec["events"] = json!([encoded.clone()]);
            }
            spec["lastSeq"] = Value::from(seq);
            spec["fence"] = Value::from(token.0);
            if let Some(outcome) = event.kind.terminal_outcome() {
                spec["outcome"] = Value::from(outcome.as_str());
                spec["finishedAt"] = Value::from(
                    event
                        .at
                        .format(&time::format_description::well_known::Rfc3339)
                        .map_err(|e| StoreError::Decode(e.to_string()))?,
                );
                object["metadata"]["labels"][FINISHED_LABEL] = Value::from("true");
            }
            let size = serde_json::to_vec(&object).map_or(usize::MAX, |b| b.len());
            if size > MAX_OBJECT_BYTES {
                return Err(StoreError::Unavailable(format!(
                    "the journal of run {run_id} would be {size} bytes, more than the {MAX_OBJECT_BYTES} a FailoverdRun may hold"
                )));
            }
            match self
                .objects
                .runs
                .replace(&run_id.to_string(), &object)
                .await
            {
                Ok(stored) => {
                    if event.kind.terminal_outcome().is_none() {
                        // What was read, with the event added: the object as stored now.
                        run.events.push(encoded);
                        run.fence = token.0;
                        run.object = stored;
                        *self.last_written.lock().expect("lock") = Some(run);
                    }
                    return Ok(seq);
                }
                Err(e) if e.kind == ErrorKind::Conflict => run = self.get_run(run_id).await?,
                Err(e) if e.kind == ErrorKind::NotFound => {
                    return Err(StoreError::NotFound(run_id))
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(StoreError::Unavailable(format!(
            "FailoverdRun {run_id}: still changing after {CAS_ROUNDS} attempts"
        )))
    }

    async fn load(&self, run_id: RunId) -> Result<StoredRun, StoreError> {
        let run = self.get_run(run_id).await?;
        Ok(StoredRun {
            events: run.journal()?,
            record: run.record,
        })
    }

    async fn events_after(
        &self,
        run_id: RunId,
        after_seq: u64,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let mut events = self.get_run(run_id).await?.journal()?;
        events.retain(|e| e.seq > after_seq);
        Ok(events)
    }

    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        let mut out: Vec<RunSummary> = self
            .runs(filter.unfinished_only)
            .await?
            .iter()
            .map(RunObject::summary)
            .filter(|s| filter.matches(s))
            .collect();
        if let Some(limit) = filter.limit {
            out.truncate(limit);
        }
        Ok(out)
    }

    async fn find_idempotency_key(
        &self,
        key: &str,
    ) -> Result<Option<(RunId, IdempotencyKey)>, StoreError> {
        let Some((_, run, ik)) = self.key_target(key).await? else {
            return Ok(None);
        };
        match self.get_run(run).await {
            Ok(_) => Ok(Some((run, ik))),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EventKind, Mode, PlanLayout};
    use crate::kube::objects::MemoryCluster;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Objects that count the reads of one kind.
    struct Counting {
        inner: super::super::objects::MemoryObjects,
        gets: Arc<AtomicU32>,
    }

    #[async_trait::async_trait]
    impl Objects for Counting {
        async fn get(&self, name: &str) -> crate::port::Result<Option<Value>> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            self.inner.get(name).await
        }
        async fn create(&self, object: &Value) -> crate::port::Result<Value> {
            self.inner.create(object).await
        }
        async fn replace(&self, name: &str, object: &Value) -> crate::port::Result<Value> {
            self.inner.replace(name, object).await
        }
        async fn delete(&self, name: &str, rv: Option<&str>) -> crate::port::Result<bool> {
            self.inner.delete(name, rv).await
        }
        async fn list(&self, selector: &str) -> crate::port::Result<Vec<Value>> {
            self.inner.list(selector).await
        }
    }

    fn store(cluster: &Arc<MemoryCluster>, gets: &Arc<AtomicU32>) -> KubeStore {
        KubeStore::new(
            JournalObjects {
                runs: Arc::new(Counting {
                    inner: cluster.objects("FailoverdRun", "failoverd"),
                    gets: Arc::clone(gets),
                }),
                states: Arc::new(cluster.objects("FailoverdState", "failoverd")),
                keys: Arc::new(cluster.objects("FailoverdIdempotencyKey", "failoverd")),
            },
            "us-east-1/us-west-2",
        )
    }

    fn record() -> RunRecord {
        RunRecord {
            id: RunId::new(),
            plan: "selftest".into(),
            mode: Mode::Graceful,
            dry_run: false,
            drill: false,
            reason: "test".into(),
            params: json!({}),
            requested_by: "alice".into(),
            region_pair: "us-east-1/us-west-2".into(),
            created_at: OffsetDateTime::now_utc(),
            detected_at: None,
            layout: PlanLayout { phases: vec![] },
        }
    }

    /// The leader's appends follow one another without reading the run again; a write by
    /// another replica (its fence) is noticed by the compare-and-swap, not missed by the cache.
    #[tokio::test]
    async fn appends_reuse_the_object_last_written_and_still_meet_the_fence() {
        let cluster = MemoryCluster::new();
        let gets = Arc::new(AtomicU32::new(0));
        let leader = store(&cluster, &gets);
        leader.fence(FencingToken(5)).await.unwrap();
        let rec = record();
        leader.create(&rec, FencingToken(5), None).await.unwrap();
        let before = gets.load(Ordering::SeqCst);
        for seq in 0..10 {
            let n = leader
                .append(
                    rec.id,
                    seq,
                    FencingToken(5),
                    &Event::now(EventKind::RunStarted),
                )
                .await
                .unwrap();
            assert_eq!(n, seq + 1);
        }
        // One read for the first append (nothing written yet by this store), none after.
        assert_eq!(gets.load(Ordering::SeqCst) - before, 1);

        // Another replica takes over and fences: the cached copy is stale, the append refused.
        let other = store(&cluster, &Arc::default());
        other.fence(FencingToken(6)).await.unwrap();
        let e = leader
            .append(
                rec.id,
                10,
                FencingToken(5),
                &Event::now(EventKind::RunStarted),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::StaleFencingToken { .. }), "{e:?}");
        // And the new leader's appends go on from the journal as stored.
        assert_eq!(
            other
                .append(
                    rec.id,
                    10,
                    FencingToken(6),
                    &Event::now(EventKind::RunStarted)
                )
                .await
                .unwrap(),
            11
        );
        assert_eq!(other.load(rec.id).await.unwrap().events.len(), 11);
    }

    #[test]
    fn slugs_are_label_values() {
        assert_eq!(slug("us-east-1/us-west-2"), "us-east-1-us-west-2");
        assert_eq!(slug("--A__b--"), "a-b");
        assert!(slug(&"x/".repeat(100)).len() <= 63);
        assert!(!slug(&"x/".repeat(100)).ends_with('-'));
    }
}
