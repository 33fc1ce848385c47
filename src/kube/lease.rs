//! Leadership on a `coordination.k8s.io/v1` Lease, for failoverd replicas in one cluster.
//!
//! Written here rather than taken from a crate (`kube-lease-manager`, kube-runtime's elector):
//! failoverd needs a fencing token that only ever grows, even when the Lease is deleted and
//! made again, a holder that stops acting at a deadline it computes from its own monotonic clock
//! (not from when a renewal task happens to run), and the same code driven by the deterministic
//! simulation over [`super::objects::MemoryCluster`] under paused time — none of which those
//! offer.
//!
//! # Protocol
//!
//! - **Holder.** `spec.holderIdentity` is this replica's identity (its pod name and a random
//!   suffix, so a restarted pod is a new holder). The fencing token is the annotation
//!   [`TOKEN_ANNOTATION`]; each takeover writes `token + 1` and `leaseTransitions + 1` with the
//!   `resourceVersion` it read, so two candidates cannot both win. A Lease created afresh starts
//!   at the current Unix time in milliseconds, so a deleted Lease never brings a token back below
//!   an earlier holder's.
//! - **Renewal.** Every `renew_interval` the holder writes `renewTime` (compare-and-swap). It may
//!   act until `sent + lease_duration - max_clock_skew`, where `sent` is when the last successful
//!   renewal was sent (by its monotonic clock): any other replica sees that renewal only after it
//!   was sent, so it cannot consider the Lease expired before then. A renewal that fails is
//!   retried until that deadline; a `409` whose re-read shows another holder ends the term at
//!   once. Past the deadline the lease is [`Validity::Lost`] and the runner writes nothing more.
//! - **Takeover.** A candidate takes the Lease when it has no holder (released on a clean stop),
//!   when it has seen the same `resourceVersion` for a whole `lease_duration` on its own
//!   monotonic clock (unaffected by clock offsets), or when `renewTime + lease_duration +
//!   max_clock_skew` is past by its wall clock (so a replica started long after the holder died
//!   need not wait a whole duration).
//! - **Address.** The holder writes the URL its API answers on (see [`LeaseLeadership::advertise`])
//!   as the annotation [`API_URL_ANNOTATION`], on every renewal; a follower forwards the requests
//!   only the leader can serve there.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::Instant;

use super::objects::{resource_version, Objects};
use crate::engine::{FencingToken, LeaderLease, Leadership, LeadershipError, Validity};
use crate::port::ErrorKind;

/// The Lease annotation holding the fencing token of the current term.
pub const TOKEN_ANNOTATION: &str = "failoverd.io/fencing-token";

/// The Lease annotation holding the URL of the holder's API.
pub const API_URL_ANNOTATION: &str = "failoverd.io/api-url";

/// A wall clock (tests skew it).
pub type WallClock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// How the Lease is held.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub name: String,
    pub identity: String,
    pub duration: Duration,
    pub renew_interval: Duration,
    pub max_clock_skew: Duration,
    /// Give the Lease up when the lease is dropped while still held (a clean stop), so the other
    /// replica takes over at once instead of after `duration`.
    pub release_on_drop: bool,
}

impl LeaseSettings {
    /// How long after sending a renewal the holder may still act.
    fn acting_window(&self) -> Duration {
        self.duration.saturating_sub(self.max_clock_skew)
    }
}

/// Who holds the Lease, as this replica last read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseHolder {
    pub identity: Option<String>,
    pub token: Option<u64>,
    pub renewed_at: Option<OffsetDateTime>,
    /// Where the holder's API answers, when it said.
    pub api_url: Option<String>,
}

/// [`Leadership`] on a Kubernetes Lease.
pub struct LeaseLeadership {
    objects: Arc<dyn Objects>,
    settings: LeaseSettings,
    wall: WallClock,
    /// The resourceVersion last read and when it was first seen.
    observed: Mutex<Option<(String, Instant)>>,
    holder: watch::Sender<Option<LeaseHolder>>,
    /// This replica's API URL, written on the Lease while it holds it.
    advertised: Arc<Mutex<Option<String>>>,
}

/// A random-suffixed identity for this process: `<base>_<8 hex>`.
pub fn identity(base: &str) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{base}_{}", &suffix[..8])
}

/// The first token of a Lease made afresh (or one without a token): Unix milliseconds, above any
/// token an earlier Lease of the same name can have reached.
fn fresh_token(now: OffsetDateTime) -> u64 {
    (now.unix_timestamp_nanos() / 1_000_000).max(1) as u64
}

fn micro_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

fn parse_time(v: Option<&Value>) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(v?.as_str()?, &time::format_description::well_known::Rfc3339).ok()
}

fn holder_of(lease: &Value) -> LeaseHolder {
    LeaseHolder {
        identity: lease
            .pointer("/spec/holderIdentity")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        token: lease
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(TOKEN_ANNOTATION))
            .and_then(Value::as_str)
            .and_then(|t| t.parse().ok()),
        renewed_at: parse_time(lease.pointer("/spec/renewTime")),
        api_url: lease
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(API_URL_ANNOTATION))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    }
}

/// Sets (or removes) the API URL annotation of `lease`.
fn set_api_url(lease: &mut Value, url: Option<&str>) {
    if !lease["metadata"]["annotations"].is_object() {
        lease["metadata"]["annotations"] = json!({});
    }
    let annotations = &mut lease["metadata"]["annotations"];
    match url {
        Some(u) => annotations[API_URL_ANNOTATION] = Value::from(u),
        None => {
            if let Some(a) = annotations.as_object_mut() {
                a.remove(API_URL_ANNOTATION);
            }
        }
    }
}

fn task_error(e: crate::port::Error) -> LeadershipError {
    LeadershipError::Task(format!("Lease: {e}"))
}

impl LeaseLeadership {
    pub fn new(objects: Arc<dyn Objects>, settings: LeaseSettings, wall: WallClock) -> Self {
        Self {
            objects,
            settings,
            wall,
            observed: Mutex::new(None),
            holder: watch::channel(None).0,
            advertised: Arc::default(),
        }
    }

    /// The URL this replica's API answers on (`http://10.0.3.7:8080`), written on the Lease
    /// while this replica holds it — at once when taking it, else from the next renewal.
    pub fn advertise(&self, url: &str) {
        *self.advertised.lock().expect("lock") = Some(url.to_owned());
    }

    /// With the system clock.
    pub fn with_system_clock(objects: Arc<dyn Objects>, settings: LeaseSettings) -> Self {
        Self::new(objects, settings, Arc::new(OffsetDateTime::now_utc))
    }

    /// The holder as last read (for `/v1/status`).
    pub fn holder(&self) -> watch::Receiver<Option<LeaseHolder>> {
        self.holder.subscribe()
    }

    fn lease_object(&self, token: u64, transitions: i64, now: OffsetDateTime) -> Value {
        let s = &self.settings;
        let time = micro_time(now);
        let mut lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": s.name,
                "labels": {"app.kubernetes.io/name": "failoverd"},
                "annotations": {TOKEN_ANNOTATION: token.to_string()},
            },
            "spec": {
                "holderIdentity": s.identity,
                "leaseDurationSeconds": s.duration.as_secs_f64().ceil().max(1.0) as i64,
                "acquireTime": time,
                "renewTime": time,
                "leaseTransitions": transitions,
            }
        });
        set_api_url(&mut lease, self.advertised.lock().expect("lock").as_deref());
        lease
    }

    /// Whether the Lease read as `lease` may be taken now.
    fn expired(&self, lease: &Value, holder: &LeaseHolder) -> bool {
        let Some(rv) = resource_version(lease) else {
            return false;
        };
        let now = Instant::now();
        let first_seen = {
            let mut observed = self.observed.lock().expect("lock");
            match observed.as_ref() {
                Some((seen, at)) if seen == rv => *at,
                _ => {
                    *observed = Some((rv.to_owned(), now));
                    now
                }
            }
        };
        if holder.identity.is_none() {
            return true;
        }
        if now.duration_since(first_seen) >= self.settings.duration {
            return true;
        }
        let declared = lease
            .pointer("/spec/leaseDurationSeconds")
            .and_then(Value::as_i64)
            .map_or(self.settings.duration, |s| {
                Duration::from_secs(s.max(0) as u64)
            })
            .max(self.settings.duration);
        holder.renewed_at.is_some_and(|renewed| {
            (self.wall)() > renewed + declared + self.settings.max_clock_skew
        })
    }

    async fn acquire(&self) -> Result<Option<LeaderLease>, LeadershipError> {
        let s = &self.settings;
        let sent = Instant::now();
        let now = (self.wall)();
        let current = self.objects.get(&s.name).await.map_err(task_error)?;
        let written = match current {
            None => {
                let token = fresh_token(now);
                let lease = self.lease_object(token, 0, now);
                match self.objects.create(&lease).await {
                    Ok(stored) => (stored, token),
                    Err(e) if e.kind == ErrorKind::Conflict => return Ok(None),
                    Err(e) => return Err(task_error(e)),
                }
            }
            Some(current) => {
                let holder = holder_of(&current);
                self.holder.send_replace(Some(holder.clone()));
                if !self.expired(&current, &holder) {
                    return Ok(None);
                }
                let token = match holder.token {
                    Some(t) => t.saturating_add(1),
                    None => fresh_token(now),
                };
                let transitions = current
                    .pointer("/spec/leaseTransitions")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    .saturating_add(1)
                    .min(i64::from(i32::MAX));
                let mut lease = self.lease_object(token, transitions, now);
                lease["metadata"]["resourceVersion"] = Value::from(resource_version(&current));
                if let Some(annotations) = current
                    .pointer("/metadata/annotations")
                    .and_then(Value::as_object)
                {
                    for (k, v) in annotations {
                        if k != TOKEN_ANNOTATION && k != API_URL_ANNOTATION {
                            lease["metadata"]["annotations"][k] = v.clone();
                        }
                    }
                }
                match self.objects.replace(&s.name, &lease).await {
                    Ok(stored) => (stored, token),
                    Err(e) if e.kind == ErrorKind::Conflict => return Ok(None),
                    Err(e) => return Err(task_error(e)),
                }
            }
        };
        let (stored, token) = written;
        // Acting past the window is unsafe, and so is a term that began too long ago already.
        let until = sent + s.acting_window();
        if Instant::now() >= until {
            return Ok(None);
        }
        self.holder.send_replace(Some(holder_of(&stored)));
        tracing::info!(lease = %s.name, identity = %s.identity, token, "took the leader Lease");
        let (tx, rx) = watch::channel(Validity::Until(until));
        let renewal = Renewal {
            objects: Arc::clone(&self.objects),
            settings: s.clone(),
            wall: Arc::clone(&self.wall),
            holder: self.holder.clone(),
            token,
            lease: stored.clone(),
            validity: tx,
            advertised: Arc::clone(&self.advertised),
        };
        let state = Arc::new(Mutex::new(Some(stored.clone())));
        let task = tokio::spawn(renewal.run(sent, Arc::clone(&state)));
        let hold = Held {
            task,
            objects: Arc::clone(&self.objects),
            name: s.name.clone(),
            release: s.release_on_drop,
            state,
            validity: rx.clone(),
        };
        Ok(Some(LeaderLease::renewed(
            FencingToken(token),
            Box::new(hold),
            rx,
        )))
    }
}

#[async_trait]
impl Leadership for LeaseLeadership {
    async fn try_acquire(&self) -> Result<Option<LeaderLease>, LeadershipError> {
        self.acquire().await
    }

    fn leader_url(&self) -> Option<String> {
        let holder = self.holder.borrow().clone()?;
        if holder.identity.as_deref() == Some(self.settings.identity.as_str()) {
            return None;
        }
        holder.identity.as_ref()?;
        holder.api_url
    }

    fn advertise(&self, url: &str) {
        LeaseLeadership::advertise(self, url);
    }

    fn describe_holder(&self) -> Option<String> {
        let holder = self.holder.borrow().clone()?;
        Some(match (holder.identity, holder.token) {
            (Some(id), Some(token)) => format!(
                "{id} holds the Lease {} (fencing token {token})",
                self.settings.name
            ),
            (Some(id), None) => format!("{id} holds the Lease {}", self.settings.name),
            (None, _) => format!("the Lease {} has no holder", self.settings.name),
        })
    }
}

/// The renewal task of one term.
struct Renewal {
    objects: Arc<dyn Objects>,
    settings: LeaseSettings,
    wall: WallClock,
    holder: watch::Sender<Option<LeaseHolder>>,
    token: u64,
    lease: Value,
    validity: watch::Sender<Validity>,
    advertised: Arc<Mutex<Option<String>>>,
}

impl Renewal {
    fn lost(&self, why: &str) {
        tracing::error!(lease = %self.settings.name, token = self.token, "leader Lease lost: {why}");
        self.validity.send_replace(Validity::Lost);
    }

    /// Renews until the term ends; `latest` keeps the Lease as last written (for the release).
    async fn run(mut self, mut last_sent: Instant, latest: Arc<Mutex<Option<Value>>>) {
        let s = self.settings.clone();
        let retry = (s.renew_interval / 4).max(Duration::from_millis(50));
        let mut next = last_sent + s.renew_interval;
        loop {
            tokio::time::sleep_until(next).await;
            let sent = Instant::now();
            let until = last_sent + s.acting_window();
            if sent >= until {
                self.lost("not renewed within the lease duration");
                return;
            }
            let mut body = self.lease.clone();
            body["spec"]["renewTime"] = Value::from(micro_time((self.wall)()));
            set_api_url(&mut body, self.advertised.lock().expect("lock").as_deref());
            let attempt = tokio::time::timeout(until - sent, self.objects.replace(&s.name, &body));
            match attempt.await {
                Err(_) => {
                    self.lost("the renewal did not answer within the lease duration");
                    return;
                }
                Ok(Ok(stored)) => {
                    self.holder.send_replace(Some(holder_of(&stored)));
                    self.lease = stored.clone();
                    *latest.lock().expect("lock") = Some(stored);
                    last_sent = sent;
                    self.validity
                        .send_replace(Validity::Until(sent + s.acting_window()));
                    next = sent + s.renew_interval;
                }
                Ok(Err(e)) if e.kind == ErrorKind::Conflict => {
                    // Someone wrote the Lease: still ours only if holder and token are unchanged
                    // (our own renewal whose answer was lost, say).
                    match tokio::time::timeout(until - sent, self.objects.get(&s.name)).await {
                        Ok(Ok(Some(current))) => {
                            let h = holder_of(&current);
                            self.holder.send_replace(Some(h.clone()));
                            if h.identity.as_deref() == Some(s.identity.as_str())
                                && h.token == Some(self.token)
                            {
                                self.lease = current;
                                next = Instant::now();
                            } else {
                                self.lost(&format!(
                                    "taken over by {}",
                                    h.identity.as_deref().unwrap_or("nobody")
                                ));
                                return;
                            }
                        }
                        Ok(Ok(None)) => {
                            self.lost("the Lease was deleted");
                            return;
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(lease = %s.name, error = %e, "could not read the leader Lease; retrying");
                            next = Instant::now() + retry;
                        }
                        Err(_) => {
                            self.lost("the Lease could not be read within the lease duration");
                            return;
                        }
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(lease = %s.name, error = %e, "could not renew the leader Lease; retrying");
                    next = Instant::now() + retry;
                }
            }
        }
    }
}

/// Keeps the renewal running while the lease is held; on drop stops it and, if the term is
/// still valid and `release` is set, gives the Lease up.
struct Held {
    task: tokio::task::JoinHandle<()>,
    objects: Arc<dyn Objects>,
    name: String,
    release: bool,
    state: Arc<Mutex<Option<Value>>>,
    validity: watch::Receiver<Validity>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.task.abort();
        let valid = matches!(*self.validity.borrow(), Validity::Until(at) if Instant::now() < at);
        if !self.release || !valid {
            return;
        }
        let Some(mut lease) = self.state.lock().expect("lock").take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let objects = Arc::clone(&self.objects);
        let name = self.name.clone();
        runtime.spawn(async move {
            // Compare-and-swap on the version last written: a Lease taken meanwhile is left alone.
            if let Some(spec) = lease.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("holderIdentity");
                spec.remove("acquireTime");
                spec.remove("renewTime");
            }
            set_api_url(&mut lease, None);
            match objects.replace(&name, &lease).await {
                Ok(_) => tracing::info!(lease = %name, "released the leader Lease"),
                Err(e) => {
                    tracing::warn!(lease = %name, error = %e, "could not release the leader Lease")
                }
            }
        });
    }
}
