//! The Cognito sync against the test bed: moto behind the fault proxy, failoverd's own Cognito
//! adapter under the rate limiter, two pools in the two regions of the pair.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::support::fault_proxy::Fault;
use crate::support::{TestBed, COLD, HOT};
use async_trait::async_trait;
use aws_sdk_cognitoidentityprovider::types as sdk;
use failoverd::aws::Result as AwsResult;
use failoverd::cognito::checkpoint::{CheckpointStore, FileCheckpoint, MemoryCheckpoint};
use failoverd::cognito::diff::{DeletionPlan, DeletionPolicy};
use failoverd::cognito::monitor::{CognitoError, CognitoMonitor};
use failoverd::cognito::quota::{CognitoLimits, QuotaCategory, RateLimitedDirectory};
use failoverd::cognito::replica::{HealthCheckSwitch, ReplicaFailover};
use failoverd::cognito::sync::{PoolSync, SyncReport};
use failoverd::cognito::CognitoPorts;
use failoverd::cognito::{Group, NewUser, Page, User, UserDirectory, UserPool, UserPoolReplica};
use failoverd::config::{CognitoConfig, CognitoMode, Duration as ConfigDuration};
use failoverd::engine::{Mode, PlanCatalog, RunId, Step, StepContext, VerifyOutcome};
use failoverd::plans::cognito::{sync_step, CognitoPlanDeps, REPLICA_FAILOVER_PLAN, SYNC_PLAN};
use failoverd::plans::PlanRegistry;
use failoverd::shutdown::stop_channel;
use failoverd::topology::RegionPair;
use futures::stream::{self, StreamExt};
use prometheus::Registry;
use tokio::sync::Notify;

const GROUPS: [&str; 3] = ["admins", "operators", "viewers"];
const TENANTS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];

/// Two pools (hot and cold region) with the lab's schema; the hot one seeded with `users` users.
struct World {
    bed: TestBed,
    hot_raw: aws_sdk_cognitoidentityprovider::Client,
    hot_pool: String,
    cold_pool: String,
}

fn schema_attr(name: &str) -> sdk::SchemaAttributeType {
    sdk::SchemaAttributeType::builder()
        .name(name)
        .attribute_data_type(sdk::AttributeDataType::String)
        .mutable(true)
        .build()
}

async fn create_pool(client: &aws_sdk_cognitoidentityprovider::Client, custom: &[&str]) -> String {
    let mut req = client
        .create_user_pool()
        .pool_name("users")
        .schema(schema_attr("email"));
    for c in custom {
        req = req.schema(schema_attr(c));
    }
    req.send()
        .await
        .expect("create pool")
        .user_pool()
        .and_then(|p| p.id())
        .expect("pool id")
        .to_owned()
}

fn username(n: usize) -> String {
    format!("user{n:05}")
}

/// Groups of user `n`: admins for the first 3, operators every 4th, viewers otherwise, and every
/// 16th also in viewers.
fn groups_of(n: usize) -> Vec<&'static str> {
    let mut g = if n <= 3 {
        vec!["admins"]
    } else if n.is_multiple_of(4) {
        vec!["operators"]
    } else {
        vec!["viewers"]
    };
    if n.is_multiple_of(16) && !g.contains(&"viewers") {
        g.push("viewers");
    }
    g
}

impl World {
    async fn start(users: usize) -> World {
        Self::start_with(users, &["tenant", "plan"], &["tenant", "plan"]).await
    }

    async fn start_with(users: usize, hot_custom: &[&str], cold_custom: &[&str]) -> World {
        let bed = TestBed::start().await;
        let hot_raw = aws_sdk_cognitoidentityprovider::Client::new(
            &support::raw_config(&bed.moto.endpoint_url(), HOT).await,
        );
        let cold_raw = aws_sdk_cognitoidentityprovider::Client::new(
            &support::raw_config(&bed.moto.endpoint_url(), COLD).await,
        );
        let hot_pool = create_pool(&hot_raw, hot_custom).await;
        let cold_pool = create_pool(&cold_raw, cold_custom).await;
        for (i, g) in GROUPS.iter().enumerate() {
            hot_raw
                .create_group()
                .user_pool_id(&hot_pool)
                .group_name(*g)
                .description(format!("the {g}"))
                .precedence(i32::try_from(i).unwrap() * 5 + 1)
                .send()
                .await
                .expect("create group");
        }
        let world = World {
            bed,
            hot_raw,
            hot_pool,
            cold_pool,
        };
        stream::iter(1..=users)
            .map(|n| world.seed_user(n))
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
        world
    }

    async fn seed_user(&self, n: usize) {
        let name = username(n);
        let attr = |k: &str, v: String| {
            sdk::AttributeType::builder()
                .name(k)
                .value(v)
                .build()
                .unwrap()
        };
        self.hot_raw
            .admin_create_user()
            .user_pool_id(&self.hot_pool)
            .username(&name)
            .message_action(sdk::MessageActionType::Suppress)
            .user_attributes(attr("email", format!("{name}@example.test")))
            .user_attributes(attr("email_verified", (!n.is_multiple_of(3)).to_string()))
            .user_attributes(attr("given_name", format!("User{n}")))
            .user_attributes(attr("custom:tenant", TENANTS[n % 4].to_owned()))
            .user_attributes(attr(
                "custom:plan",
                if n.is_multiple_of(2) { "pro" } else { "free" }.into(),
            ))
            .send()
            .await
            .expect("seed user");
        for g in groups_of(n) {
            self.hot_raw
                .admin_add_user_to_group()
                .user_pool_id(&self.hot_pool)
                .username(&name)
                .group_name(g)
                .send()
                .await
                .expect("seed membership");
        }
        if n.is_multiple_of(10) {
            self.hot_raw
                .admin_disable_user()
                .user_pool_id(&self.hot_pool)
                .username(&name)
                .send()
                .await
                .expect("seed disabled");
        }
    }

    /// failoverd's adapters for (hot, cold), through the fault proxy.
    async fn directories(&self) -> (Arc<dyn UserDirectory>, Arc<dyn UserDirectory>) {
        let clients = support::clients(&support::settings(&self.bed.endpoint_url())).await;
        (
            Arc::new(clients.region(HOT).expect("hot").user_directory()),
            Arc::new(clients.region(COLD).expect("cold").user_directory()),
        )
    }
}

/// A pass's parts, with the rate-limited directories kept for their counters.
struct Harness {
    sync: PoolSync,
    hot: RateLimitedDirectory,
    cold: RateLimitedDirectory,
}

fn harness(
    world: &World,
    dirs: (Arc<dyn UserDirectory>, Arc<dyn UserDirectory>),
    deletion: DeletionPolicy,
    checkpoint: Arc<dyn CheckpointStore>,
) -> Harness {
    // Far above moto's speed: the emulator, not the limiter, sets the pace in these tests.
    let hot = RateLimitedDirectory::new(dirs.0, CognitoLimits::uniform(2_000.0));
    let cold = RateLimitedDirectory::new(dirs.1, CognitoLimits::uniform(2_000.0));
    Harness {
        sync: PoolSync {
            hot: Arc::new(hot.clone()),
            cold: Arc::new(cold.clone()),
            hot_pool: world.hot_pool.clone(),
            cold_pool: world.cold_pool.clone(),
            deletion,
            concurrency: 16,
            checkpoint,
        },
        hot,
        cold,
    }
}

fn writes(dir: &RateLimitedDirectory) -> u64 {
    let c = dir.counters();
    c.calls(QuotaCategory::UserCreation)
        + c.calls(QuotaCategory::UserUpdate)
        + c.calls(QuotaCategory::UserResourceUpdate)
}

/// Everything compared, read back through the port: username → (attributes without `sub`,
/// enabled), groups, group → members.
#[derive(Debug, PartialEq)]
struct Contents {
    users: BTreeMap<String, (BTreeMap<String, String>, bool)>,
    groups: Vec<(String, Option<String>, Option<i32>)>,
    members: BTreeMap<String, BTreeSet<String>>,
}

async fn read_back(dir: &dyn UserDirectory, pool: &str) -> Contents {
    let mut users = BTreeMap::new();
    let mut token: Option<String> = None;
    loop {
        let page: Page<User> = dir.list_users(pool, token.as_deref()).await.expect("list");
        for u in page.items {
            let mut attrs = u.attributes.clone();
            attrs.remove("sub");
            users.insert(u.username.clone(), (attrs, u.enabled));
        }
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let groups_page = dir.list_groups(pool, None).await.expect("groups");
    assert!(groups_page.next_token.is_none());
    let mut groups: Vec<_> = groups_page
        .items
        .iter()
        .map(|g| (g.name.clone(), g.description.clone(), g.precedence))
        .collect();
    groups.sort();
    let mut members = BTreeMap::new();
    for (g, _, _) in &groups {
        let mut set = BTreeSet::new();
        let mut token: Option<String> = None;
        loop {
            let page = dir
                .list_users_in_group(pool, g, token.as_deref())
                .await
                .expect("members");
            set.extend(page.items.into_iter().map(|u| u.username));
            match page.next_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        members.insert(g.clone(), set);
    }
    Contents {
        users,
        groups,
        members,
    }
}

async fn assert_identical(world: &World, dirs: &(Arc<dyn UserDirectory>, Arc<dyn UserDirectory>)) {
    let hot = read_back(dirs.0.as_ref(), &world.hot_pool).await;
    let cold = read_back(dirs.1.as_ref(), &world.cold_pool).await;
    assert_eq!(hot.users.len(), cold.users.len(), "user counts");
    for (name, h) in &hot.users {
        assert_eq!(cold.users.get(name), Some(h), "user {name}");
    }
    assert_eq!(hot.groups, cold.groups);
    assert_eq!(hot.members, cold.members);
}

fn memory() -> Arc<dyn CheckpointStore> {
    Arc::new(MemoryCheckpoint::default())
}

fn users_from_env(default: usize) -> usize {
    std::env::var("FAILOVERD_COGNITO_TEST_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_cold_pool_becomes_identical_and_a_second_pass_writes_nothing() {
    let n = users_from_env(2_000);
    let seeding = Instant::now();
    let world = World::start(n).await;
    let seeded_in = seeding.elapsed();
    let dirs = world.directories().await;
    let h = harness(&world, dirs.clone(), DeletionPolicy::default(), memory());

    let started = Instant::now();
    let report = h.sync.run().await.expect("first pass");
    let full = started.elapsed();
    let cold_stats = h.cold.counters();
    let hot_stats = h.hot.counters();
    eprintln!(
        "full sync of {n} users: {full:?} ({:.0} users/s), {} calls ({:.2}/user); seeding took {seeded_in:?}",
        n as f64 / full.as_secs_f64(),
        cold_stats.calls_total() + hot_stats.calls_total(),
        (cold_stats.calls_total() + hot_stats.calls_total()) as f64 / n as f64,
    );
    assert_eq!(report.hot_users, n as u64);
    assert_eq!(report.changes.users_created, n as u64);
    assert_eq!(report.changes.users_disabled, (n / 10) as u64);
    assert_eq!(report.changes.groups_created, 3);
    assert_eq!(report.failure_count, 0, "{:?}", report.failures);
    assert_eq!(report.uncopyable_count, 0);
    assert_eq!(report.hot_pages, n.div_ceil(60) as u64);
    assert_eq!(report.drift_remaining, 0);
    assert_identical(&world, &dirs).await;

    let before = writes(&h.cold);
    let proxy_before = world.bed.proxy.stats().requests;
    let started = Instant::now();
    let second = h.sync.run().await.expect("second pass");
    eprintln!(
        "incremental sync (no change) of {n} users: {:?}, {} requests",
        started.elapsed(),
        world.bed.proxy.stats().requests - proxy_before
    );
    assert_eq!(writes(&h.cold), before, "a second pass must not write");
    assert_eq!(second.changes.total(), 0, "{:?}", second.changes);
    assert_eq!(second.drift_found, 0);
    assert_eq!(second.deletions, Some(DeletionPlan::None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_in_the_hot_pool_are_carried_over() {
    let world = World::start(120).await;
    let dirs = world.directories().await;
    let policy = DeletionPolicy {
        delete_missing: true,
        max_delete_fraction: 0.05,
    };
    let h = harness(&world, dirs.clone(), policy, memory());
    h.sync.run().await.expect("first pass");

    let hot = &dirs.0;
    let pool = &world.hot_pool;
    let attrs = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    hot.update_user_attributes(pool, &username(5), &attrs(&[("custom:tenant", "moved")]))
        .await
        .unwrap();
    hot.disable_user(pool, &username(7)).await.unwrap();
    hot.enable_user(pool, &username(10)).await.unwrap();
    hot.remove_user_from_group(pool, &username(1), "admins")
        .await
        .unwrap();
    hot.add_user_to_group(pool, &username(9), "admins")
        .await
        .unwrap();
    hot.delete_user(pool, &username(11)).await.unwrap();
    hot.delete_user(pool, &username(12)).await.unwrap();

    let before = writes(&h.cold);
    let report = h.sync.run().await.expect("second pass");
    assert_eq!(report.changes.attributes_updated, 1, "{report:?}");
    assert_eq!(report.changes.users_disabled, 1);
    assert_eq!(report.changes.users_enabled, 1);
    assert_eq!(report.changes.memberships_added, 1);
    assert_eq!(report.changes.memberships_removed, 1);
    assert_eq!(report.changes.users_deleted, 2);
    assert_eq!(report.changes.users_created, 0);
    // Deleting a user removes its memberships with it: exactly the seven writes above.
    assert_eq!(writes(&h.cold) - before, 7);
    assert_identical(&world, &dirs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deletion_guard_stops_a_mass_deletion() {
    let world = World::start(40).await;
    let dirs = world.directories().await;
    let policy = DeletionPolicy {
        delete_missing: true,
        max_delete_fraction: 0.05,
    };
    let h = harness(&world, dirs.clone(), policy, memory());
    h.sync.run().await.expect("first pass");
    for n in 1..=10 {
        dirs.0
            .delete_user(&world.hot_pool, &username(n))
            .await
            .unwrap();
    }
    let before = writes(&h.cold);
    let report = h.sync.run().await.expect("guarded pass");
    assert!(report.deletion_guard_tripped(), "{report:?}");
    assert_eq!(
        report.deletions,
        Some(DeletionPlan::Guarded {
            would_delete: 10,
            cold_users: 40,
            max_delete_fraction: 0.05
        })
    );
    assert_eq!(report.changes.users_deleted, 0);
    assert_eq!(report.drift_remaining, 10);
    // The vanished users' cold copies keep their memberships too: nothing is written.
    assert_eq!(report.changes.total(), 0, "{:?}", report.changes);
    let cold = read_back(dirs.1.as_ref(), &world.cold_pool).await;
    assert_eq!(cold.users.len(), 40);
    assert_eq!(writes(&h.cold) - before, report.changes.total());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_slows_the_sync_but_never_fails_it() {
    let world = World::start(200).await;
    let dirs = world.directories().await;
    let h = harness(&world, dirs.clone(), DeletionPolicy::default(), memory());
    world.bed.proxy.fail_share(0.3, Fault::Throttle, 8);
    let report = h.sync.run().await.expect("throttled pass succeeds");
    world.bed.proxy.clear();
    let throttled = h.cold.counters().throttled_total() + h.hot.counters().throttled_total();
    eprintln!(
        "throttled pass: proxy throttled {} requests, {throttled} reached the rate limiter, {} ms",
        world.bed.proxy.stats().throttled,
        report.duration_ms
    );
    assert!(world.bed.proxy.stats().throttled > 0);
    assert_eq!(report.failure_count, 0, "{:?}", report.failures);
    assert_eq!(report.changes.users_created, 200);
    assert_identical(&world, &dirs).await;
}

/// A cold directory that counts creates and announces when `crash_after` have succeeded, so the
/// test can drop the pass there (as a crash would stop it); with `hold`, that create then waits
/// for `release`, so the test can act while the pass is known to be in flight.
struct CrashingDirectory {
    inner: Arc<dyn UserDirectory>,
    creates: AtomicU64,
    crash_after: u64,
    crashed: Notify,
    hold: bool,
    release: Notify,
}

impl CrashingDirectory {
    fn new(inner: Arc<dyn UserDirectory>, crash_after: u64, hold: bool) -> Self {
        Self {
            inner,
            creates: AtomicU64::new(0),
            crash_after,
            crashed: Notify::new(),
            hold,
            release: Notify::new(),
        }
    }
}

#[async_trait]
impl UserDirectory for CrashingDirectory {
    async fn describe_pool(&self, pool_id: &str) -> AwsResult<UserPool> {
        self.inner.describe_pool(pool_id).await
    }
    async fn list_users(&self, pool_id: &str, t: Option<&str>) -> AwsResult<Page<User>> {
        self.inner.list_users(pool_id, t).await
    }
    async fn list_groups(&self, pool_id: &str, t: Option<&str>) -> AwsResult<Page<Group>> {
        self.inner.list_groups(pool_id, t).await
    }
    async fn list_users_in_group(
        &self,
        pool_id: &str,
        group: &str,
        t: Option<&str>,
    ) -> AwsResult<Page<User>> {
        self.inner.list_users_in_group(pool_id, group, t).await
    }
    async fn create_user(&self, pool_id: &str, user: &NewUser) -> AwsResult<User> {
        // Counted before the call: a create cancelled by the crash may still have reached moto.
        let attempt = self.creates.fetch_add(1, Ordering::SeqCst) + 1;
        let created = self.inner.create_user(pool_id, user).await?;
        if attempt == self.crash_after {
            self.crashed.notify_one();
            if self.hold {
                self.release.notified().await;
            }
        }
        Ok(created)
    }
    async fn update_user_attributes(
        &self,
        pool_id: &str,
        username: &str,
        attributes: &BTreeMap<String, String>,
    ) -> AwsResult<()> {
        self.inner
            .update_user_attributes(pool_id, username, attributes)
            .await
    }
    async fn enable_user(&self, pool_id: &str, username: &str) -> AwsResult<()> {
        self.inner.enable_user(pool_id, username).await
    }
    async fn disable_user(&self, pool_id: &str, username: &str) -> AwsResult<()> {
        self.inner.disable_user(pool_id, username).await
    }
    async fn delete_user(&self, pool_id: &str, username: &str) -> AwsResult<()> {
        self.inner.delete_user(pool_id, username).await
    }
    async fn create_group(&self, pool_id: &str, group: &Group) -> AwsResult<()> {
        self.inner.create_group(pool_id, group).await
    }
    async fn add_user_to_group(&self, pool_id: &str, username: &str, group: &str) -> AwsResult<()> {
        self.inner.add_user_to_group(pool_id, username, group).await
    }
    async fn remove_user_from_group(
        &self,
        pool_id: &str,
        username: &str,
        group: &str,
    ) -> AwsResult<()> {
        self.inner
            .remove_user_from_group(pool_id, username, group)
            .await
    }
    async fn list_user_pool_replicas(
        &self,
        pool_id: &str,
        t: Option<&str>,
    ) -> AwsResult<Page<UserPoolReplica>> {
        self.inner.list_user_pool_replicas(pool_id, t).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_the_middle_resumes_without_redoing_finished_work() {
    let n = 300;
    let world = World::start(n).await;
    let dirs = world.directories().await;
    let state = tempfile::tempdir().unwrap();
    let checkpoint_path = state.path().join("cognito-sync.json");
    let crashing = Arc::new(CrashingDirectory::new(dirs.1.clone(), 150, false));
    let h = harness(
        &world,
        (dirs.0.clone(), crashing.clone()),
        DeletionPolicy::default(),
        Arc::new(FileCheckpoint::new(&checkpoint_path)),
    );
    tokio::select! {
        r = h.sync.run() => panic!("the pass finished before the crash point: {r:?}"),
        () = crashing.crashed.notified() => {}
    }
    let created_before_crash = crashing.creates.load(Ordering::SeqCst);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&checkpoint_path).expect("a checkpoint was written"))
            .unwrap();
    let pages_done = saved["hot_pages_done"].as_u64().unwrap();
    assert!(pages_done >= 1, "{saved}");

    // A new process: new limiter, same checkpoint file.
    let resumed = harness(
        &world,
        (dirs.0.clone(), crashing.clone()),
        DeletionPolicy::default(),
        Arc::new(FileCheckpoint::new(&checkpoint_path)),
    );
    let report: SyncReport = resumed.sync.run().await.expect("resumed pass");
    assert_eq!(report.resumed_at_page, Some(pages_done));
    assert!(report.deletions_deferred);
    // Only the pages after the checkpoint were read from the hot pool.
    assert_eq!(report.hot_users, (n - 60 * pages_done as usize) as u64);
    // Users created before the crash were found in the cold pool, not created again: a second
    // create of the same user would have failed with UsernameExistsException and been reported.
    assert_eq!(report.failure_count, 0, "{:?}", report.failures);
    let attempts = crashing.creates.load(Ordering::SeqCst);
    eprintln!(
        "crash after {created_before_crash} create attempts at page {pages_done}; {attempts} attempts in all for {n} users"
    );
    // At most the writes in flight at the crash (the pass's concurrency) are attempted again.
    assert!(attempts <= n as u64 + 16, "{attempts}");
    assert_eq!(
        report.changes.users_created,
        attempts - created_before_crash,
        "the resumed pass created only what the crashed one had not"
    );
    assert!(
        !checkpoint_path.exists(),
        "a finished pass clears its checkpoint"
    );
    assert_identical(&world, &dirs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_the_cold_schema_cannot_hold_is_reported_not_fatal() {
    let world = World::start_with(0, &["tenant", "plan", "legacy"], &["tenant", "plan"]).await;
    for n in 1..=5 {
        world.seed_user(n).await;
    }
    world
        .hot_raw
        .admin_update_user_attributes()
        .user_pool_id(&world.hot_pool)
        .username(username(2))
        .user_attributes(
            sdk::AttributeType::builder()
                .name("custom:legacy")
                .value("x")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let dirs = world.directories().await;
    let h = harness(&world, dirs.clone(), DeletionPolicy::default(), memory());
    let report = h.sync.run().await.expect("pass");
    assert_eq!(report.uncopyable_count, 1, "{report:?}");
    assert!(report.uncopyable.contains_key(&username(2)));
    assert_eq!(report.changes.users_created, 4);
    assert_eq!(report.drift_remaining, 1);
    let cold = read_back(dirs.1.as_ref(), &world.cold_pool).await;
    assert_eq!(cold.users.len(), 4);
    assert!(!cold.members.values().any(|m| m.contains(&username(2))));
}

fn cognito_config(world: &World, mode: CognitoMode, interval_secs: u64) -> CognitoConfig {
    CognitoConfig {
        mode,
        pools: [
            (HOT.to_owned(), world.hot_pool.clone()),
            (COLD.to_owned(), world.cold_pool.clone()),
        ]
        .into(),
        interval: ConfigDuration::from_secs(interval_secs),
        delete_missing: false,
        max_delete_fraction: 0.05,
        quota_share: 0.5,
        replica_health_check_id: Some("hc-cognito".into()),
    }
}

fn ports(dirs: &(Arc<dyn UserDirectory>, Arc<dyn UserDirectory>)) -> CognitoPorts {
    CognitoPorts::new(
        vec![
            (HOT.to_owned(), dirs.0.clone()),
            (COLD.to_owned(), dirs.1.clone()),
        ],
        memory(),
    )
    .with_limits(CognitoLimits::uniform(2_000.0))
}

fn metric(registry: &Registry, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    registry
        .gather()
        .iter()
        .find(|f| f.name() == name)?
        .get_metric()
        .iter()
        .find(|m| {
            label.is_none_or(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == k && l.value() == v)
            })
        })
        .map(|m| {
            // Exactly one of the two is set; the other reads 0.
            m.get_gauge().value() + m.get_counter().value()
        })
}

fn step_context(mode: Mode) -> StepContext {
    StepContext {
        run_id: RunId::new(),
        plan: Arc::from("test"),
        mode,
        drill: false,
        params: Arc::new(serde_json::Value::Null),
        attempt: 1,
        run_started_at: None,
        outputs: Arc::new(BTreeMap::new()),
        abort: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_syncs_on_its_interval_and_exposes_status_metrics_and_the_plan() {
    let world = World::start(30).await;
    let dirs = world.directories().await;
    let registry = Registry::new();
    let (trigger, stop) = stop_channel();
    let handle = CognitoMonitor::spawn(
        &cognito_config(&world, CognitoMode::Sync, 1),
        &RegionPair::new(HOT, COLD),
        ports(&dirs),
        &registry,
        tokio::sync::watch::channel(Some(true)).1,
        stop,
    )
    .expect("spawn");
    let mut synced = false;
    for _ in 0..600 {
        if handle.snapshot().last_success_at.is_some() {
            synced = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(synced, "{:?}", handle.snapshot());
    let snap = handle.snapshot();
    assert_eq!(snap.mode, "sync");
    assert_eq!(
        snap.last_report.as_ref().map(|r| r.changes.users_created),
        Some(30)
    );
    assert_eq!(
        metric(&registry, "failoverd_cognito_users", Some(("region", COLD))),
        Some(30.0)
    );
    assert_eq!(
        metric(
            &registry,
            "failoverd_cognito_groups",
            Some(("region", COLD))
        ),
        Some(3.0)
    );
    assert_eq!(
        metric(
            &registry,
            "failoverd_cognito_sync_changes_total",
            Some(("kind", "create_user"))
        ),
        Some(30.0)
    );
    assert_eq!(
        metric(&registry, "failoverd_cognito_drift_users", None),
        Some(0.0)
    );
    assert!(metric(
        &registry,
        "failoverd_cognito_last_sync_success_timestamp_seconds",
        None
    )
    .is_some_and(|t| t > 1.0e9));
    assert!(metric(
        &registry,
        "failoverd_cognito_throttled_total",
        Some(("category", "user_list"))
    )
    .is_some());

    // The plan runs a pass through the same handle (waiting for a background one).
    let mut plans = PlanRegistry::new();
    failoverd::plans::cognito::register(
        &mut plans,
        CognitoPlanDeps {
            handle: handle.clone(),
            replica_health_check_id: None,
            switch: None,
        },
    );
    assert_eq!(plans.names(), vec![SYNC_PLAN.to_owned()]);
    plans
        .build(SYNC_PLAN, Mode::Graceful, &serde_json::Value::Null)
        .expect("plan builds");
    assert!(plans
        .build(SYNC_PLAN, Mode::Graceful, &serde_json::json!({"x": 1}))
        .is_err());
    let out = sync_step(handle.clone())
        .execute(&step_context(Mode::Graceful))
        .await
        .expect("step");
    assert_eq!(out["changes"]["users_created"], 0);
    assert!(out["measurements"]["cognito_sync_seconds"].is_number());

    handle.set_paused(true);
    assert!(sync_step(handle.clone())
        .execute(&step_context(Mode::Graceful))
        .await
        .is_err());
    trigger.stop();
    tokio::time::timeout(std::time::Duration::from_secs(30), handle.finished())
        .await
        .expect("the monitor stops");
}

/// Waits (at most 60 s) until a pass has succeeded and none is running; its snapshot.
async fn wait_pass_done(
    handle: &failoverd::cognito::monitor::CognitoHandle,
    what: &str,
) -> failoverd::cognito::monitor::CognitoSnapshot {
    for _ in 0..600 {
        let snap = handle.snapshot();
        if snap.last_success_at.is_some() && !snap.running {
            return snap;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what}: {:?}", handle.snapshot())
}

/// The direction shown follows the active region at once, and a pass that was already running
/// (it finishes in its own direction) does not turn it back when it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_in_flight_when_the_direction_changes_does_not_undo_the_change() {
    let world = World::start(5).await;
    let dirs = world.directories().await;
    let cold = Arc::new(CrashingDirectory::new(dirs.1.clone(), 1, true));
    let (trigger, stop) = stop_channel();
    // The first pass starts at once; the next would be an hour later.
    let handle = CognitoMonitor::spawn(
        &cognito_config(&world, CognitoMode::Sync, 3600),
        &RegionPair::new(HOT, COLD),
        ports(&(dirs.0.clone(), cold.clone() as Arc<dyn UserDirectory>)),
        &Registry::new(),
        tokio::sync::watch::channel(Some(true)).1,
        stop,
    )
    .expect("spawn");
    tokio::time::timeout(std::time::Duration::from_secs(60), cold.crashed.notified())
        .await
        .expect("the first pass creates a user");
    assert!(handle.snapshot().running);
    handle.set_source(COLD).expect("a region of the pair");
    assert_eq!(handle.snapshot().regions, [COLD, HOT]);
    assert_eq!(handle.source_region().as_deref(), Some(COLD));

    cold.release.notify_one();
    let snap = wait_pass_done(&handle, "the pass ends").await;
    assert_eq!(
        snap.last_report.as_ref().map(|r| r.changes.users_created),
        Some(5)
    );
    assert_eq!(
        snap.last_pass_regions,
        [HOT, COLD],
        "the pass ran hot to cold"
    );
    assert_eq!(snap.regions, [COLD, HOT], "the direction stays the new one");
    assert_eq!(
        snap.pools,
        [world.cold_pool.clone(), world.hot_pool.clone()]
    );
    trigger.stop();
    tokio::time::timeout(std::time::Duration::from_secs(30), handle.finished())
        .await
        .expect("the monitor stops");
}

/// Only the leader copies users: a follower's background task makes no write, a pass in flight
/// stops as soon as leadership is lost, and a follower that becomes leader syncs at once (not an
/// interval later).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_syncs_and_a_pass_stops_when_leadership_is_lost() {
    // More users than one page of ListUsers: a pass held on a create of the first page has not
    // begun the next pages.
    const USERS: u64 = 150;
    let world = World::start(USERS as usize).await;
    let dirs = world.directories().await;
    let cold = Arc::new(CrashingDirectory::new(dirs.1.clone(), 2, true));
    let (leader, leader_rx) = tokio::sync::watch::channel(None::<bool>);
    let (trigger, stop) = stop_channel();
    let handle = CognitoMonitor::spawn(
        &cognito_config(&world, CognitoMode::Sync, 3600),
        &RegionPair::new(HOT, COLD),
        ports(&(dirs.0.clone(), cold.clone() as Arc<dyn UserDirectory>)),
        &Registry::new(),
        leader_rx,
        stop,
    )
    .expect("spawn");

    // Not known to lead, then a follower: nothing is written.
    leader.send_replace(Some(false));
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let snap = handle.snapshot();
    assert_eq!(snap.leader, Some(false), "{snap:?}");
    assert!(snap.last_attempt_at.is_none() && !snap.running, "{snap:?}");
    assert_eq!(cold.creates.load(Ordering::SeqCst), 0);

    // Leading: the pass starts at once, though the interval is an hour.
    leader.send_replace(Some(true));
    tokio::time::timeout(std::time::Duration::from_secs(60), cold.crashed.notified())
        .await
        .expect("the new leader's pass creates users");
    assert!(handle.snapshot().running);

    // Deposed while the second create is in flight: the pass is dropped there.
    leader.send_replace(Some(false));
    let mut stopped = false;
    for _ in 0..50 {
        if !handle.snapshot().running {
            stopped = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        stopped,
        "the pass stops within 5 s: {:?}",
        handle.snapshot()
    );
    let at_loss = cold.creates.load(Ordering::SeqCst);
    assert!(
        at_loss < USERS,
        "the pass was stopped part-way ({at_loss} creates)"
    );
    cold.release.notify_one();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        cold.creates.load(Ordering::SeqCst),
        at_loss,
        "no create after leadership was lost"
    );
    assert_eq!(handle.snapshot().leader, Some(false));

    // Leading again: the pass resumes and copies the rest.
    leader.send_replace(Some(true));
    let snap = wait_pass_done(&handle, "the pass completes").await;
    assert_eq!(snap.leader, Some(true));
    // Creates in flight when the pass was dropped are counted (before the call) and may be
    // made again by the resumed pass; what matters is the pool.
    let (mut in_cold, mut token) = (0u64, None::<String>);
    loop {
        let page = dirs
            .1
            .list_users(&world.cold_pool, token.as_deref())
            .await
            .unwrap();
        in_cold += page.items.len() as u64;
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(in_cold, USERS, "every user copied once");
    trigger.stop();
    tokio::time::timeout(std::time::Duration::from_secs(30), handle.finished())
        .await
        .expect("the monitor stops");
}

/// An in-memory health check `Inverted` flag.
#[derive(Default)]
struct FakeSwitch {
    inverted: std::sync::Mutex<bool>,
    writes: AtomicU64,
}

#[async_trait]
impl HealthCheckSwitch for FakeSwitch {
    async fn health_check_inverted(&self, _id: &str) -> AwsResult<bool> {
        Ok(*self.inverted.lock().unwrap())
    }
    async fn set_health_check_inverted(&self, _id: &str, inverted: bool) -> AwsResult<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        *self.inverted.lock().unwrap() = inverted;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_replica_mode_reports_the_replica_and_flips_the_health_check() {
    let world = World::start(0).await;
    world
        .hot_raw
        .create_user_pool_replica()
        .user_pool_id(&world.hot_pool)
        .region_name(COLD)
        .send()
        .await
        .expect("create replica");
    let dirs = world.directories().await;
    let registry = Registry::new();
    let handle = CognitoMonitor::build(
        &cognito_config(&world, CognitoMode::NativeReplica, 60),
        &RegionPair::new(HOT, COLD),
        ports(&dirs),
        &registry,
    )
    .expect("build");
    handle.observe_replicas().await;
    let snap = handle.snapshot();
    assert_eq!(snap.replica_error, None);
    assert!(
        snap.replicas
            .iter()
            .any(|r| r.region.as_deref() == Some(COLD) && r.status == "active"),
        "{:?}",
        snap.replicas
    );
    assert_eq!(
        metric(
            &registry,
            "failoverd_cognito_replica_active",
            Some(("region", COLD))
        ),
        Some(1.0)
    );
    assert!(matches!(
        handle.sync_now().await,
        Err(CognitoError::NotSyncMode)
    ));

    let switch = Arc::new(FakeSwitch::default());
    let mut plans = PlanRegistry::new();
    failoverd::plans::cognito::register(
        &mut plans,
        CognitoPlanDeps {
            handle: handle.clone(),
            replica_health_check_id: Some("hc-cognito".into()),
            switch: Some(switch.clone()),
        },
    );
    assert_eq!(plans.names(), vec![REPLICA_FAILOVER_PLAN.to_owned()]);
    plans
        .build(
            REPLICA_FAILOVER_PLAN,
            Mode::Graceful,
            &serde_json::Value::Null,
        )
        .expect("plan builds");

    let step = ReplicaFailover::new(
        handle.hot_directory(),
        world.hot_pool.clone(),
        COLD.into(),
        "hc-cognito".into(),
        switch.clone(),
        true,
    );
    let ctx = step_context(Mode::Graceful);
    assert_eq!(step.verify(&ctx).await.unwrap(), VerifyOutcome::NotDone);
    step.execute(&ctx).await.expect("flip");
    assert!(*switch.inverted.lock().unwrap());
    assert!(matches!(
        step.verify(&ctx).await.unwrap(),
        VerifyOutcome::Done(_)
    ));
    step.compensate(&ctx).await.expect("unflip");
    assert!(!*switch.inverted.lock().unwrap());

    // A graceful failover refuses an inactive replica; nothing is flipped.
    world
        .hot_raw
        .update_user_pool_replica()
        .user_pool_id(&world.hot_pool)
        .region_name(COLD)
        .status(sdk::UpdateReplicaStatusType::Inactive)
        .send()
        .await
        .expect("deactivate");
    let writes = switch.writes.load(Ordering::SeqCst);
    let err = step.execute(&ctx).await.expect_err("inactive replica");
    assert!(!err.retryable, "{err:?}");
    assert_eq!(switch.writes.load(Ordering::SeqCst), writes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_sign_in_pools_are_matched_by_email() {
    let bed = TestBed::start().await;
    let mut pools = Vec::new();
    let mut raws = Vec::new();
    for region in [HOT, COLD] {
        let raw = aws_sdk_cognitoidentityprovider::Client::new(
            &support::raw_config(&bed.moto.endpoint_url(), region).await,
        );
        let id = raw
            .create_user_pool()
            .pool_name("by-email")
            .username_attributes(sdk::UsernameAttributeType::Email)
            .schema(schema_attr("email"))
            .schema(schema_attr("tenant"))
            .send()
            .await
            .expect("pool")
            .user_pool()
            .and_then(|p| p.id())
            .expect("id")
            .to_owned();
        pools.push(id);
        raws.push(raw);
    }
    for n in 1..=5 {
        raws[0]
            .admin_create_user()
            .user_pool_id(&pools[0])
            .username(format!("person{n}@example.test"))
            .message_action(sdk::MessageActionType::Suppress)
            .user_attributes(
                sdk::AttributeType::builder()
                    .name("custom:tenant")
                    .value(format!("t{n}"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("seed");
    }
    let world = World {
        bed,
        hot_raw: raws[0].clone(),
        hot_pool: pools[0].clone(),
        cold_pool: pools[1].clone(),
    };
    let dirs = world.directories().await;
    let h = harness(&world, dirs.clone(), DeletionPolicy::default(), memory());
    let first = h.sync.run().await.expect("first pass");
    assert_eq!(first.changes.users_created, 5, "{first:?}");
    let by_email = |c: &Contents| -> BTreeMap<String, (Option<String>, bool)> {
        c.users
            .values()
            .map(|(a, enabled)| {
                (
                    a.get("email").cloned().unwrap_or_default(),
                    (a.get("custom:tenant").cloned(), *enabled),
                )
            })
            .collect()
    };
    let hot = read_back(dirs.0.as_ref(), &world.hot_pool).await;
    let cold = read_back(dirs.1.as_ref(), &world.cold_pool).await;
    assert_eq!(by_email(&hot).len(), 5);
    assert_eq!(by_email(&hot), by_email(&cold));
    // Matched by e-mail, whatever user names the pools gave: nothing left to do.
    let second = h.sync.run().await.expect("second pass");
    assert_eq!(second.changes.total(), 0, "{second:?}");
    assert_eq!(second.deletions, Some(DeletionPlan::None));
}
