//! Cognito sync benchmark (plain `main`, run with `cargo bench --bench cognito`), against the
//! AWS test bed (moto started by `tests/support`, so `tests/support/setup.sh` must have run).
//!
//! (a) Throughput: a hot pool of `FAILOVERD_BENCH_USERS` users (default 10,000; custom attributes,
//!     three groups, memberships, every tenth user disabled) copied to an empty cold pool with the
//!     rate limits out of the way — users per second and API calls per user of the full copy, of
//!     an incremental pass with 1 % of the users edited, and of a pass with nothing to do. moto,
//!     a single Python process on the same machine, is the bottleneck here, not failoverd.
//! (b) Quota efficiency: `FAILOVERD_BENCH_QUOTA_USERS` users (default 1,000; no groups, all
//!     enabled, so that the copy is exactly one `AdminCreateUser` per user) copied with the rate
//!     limits at Cognito's default quotas (`quota_share` 1), against the bound those quotas allow:
//!     ⌈N/60⌉ list calls at 30/s plus N creates at 50/s. Reports the ratio.
//!
//! Measured on the 2-core development machine (2026-11-28, release build, moto 5.2.5):
//!
//! | pass | users | time | users/s | API calls per user |
//! |---|---|---|---|---|
//! | (a) full copy (creates, 1,000 disables, 10,000 memberships) | 10,000 | 75.3 s | 133 | 2.13 |
//! | (a) incremental, 1 % edited (100 attribute updates) | 10,000 | 18.2 s | 548 | 0.08 |
//! | (a) incremental, nothing changed (0 writes) | 10,000 | 19.2 s | 522 | 0.07 |
//! | (b) full copy at Cognito's default quotas | 1,000 | 19.1 s | 52.5 | 1.02 |
//!
//! (b): bound 20.57 s, ratio 0.93 — below 1 because each bucket starts full (one second's
//! worth, 50 creates), which Cognito's per-second quota allows. (c) `bench/cognito_backup_restore.sh
//! 100`: backup 0.20 s, restore 198.4 s (0.50 users/s: the tool paces creates 2 s apart), and
//! the restored pool has no groups, no memberships, and every disabled user enabled.
//! In (a) moto is the bottleneck (its `ListUsers` rescans the pool for each page, so listing 10,000
//! users takes most of an incremental pass); against Cognito the incremental pass is bounded by
//! 2 × ⌈N/60⌉ list calls at the UserList rate (about 11 s for 10,000 users at 30/s).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use aws_sdk_cognitoidentityprovider::types as sdk;
use aws_sdk_cognitoidentityprovider::Client;
use failoverd::cognito::checkpoint::MemoryCheckpoint;
use failoverd::cognito::diff::DeletionPolicy;
use failoverd::cognito::quota::{CognitoLimits, RateLimitedDirectory};
use failoverd::cognito::sync::{PoolSync, SyncReport, DEFAULT_CONCURRENCY};
use failoverd::cognito::UserDirectory;
use futures::stream::{self, StreamExt};
use support::{TestBed, COLD, HOT};

fn env_or(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn attr(name: &str, value: String) -> anyhow::Result<sdk::AttributeType> {
    Ok(sdk::AttributeType::builder()
        .name(name)
        .value(value)
        .build()?)
}

async fn create_pool(client: &Client) -> anyhow::Result<String> {
    let mut req = client.create_user_pool().pool_name("bench");
    for name in ["email", "tenant", "plan"] {
        req = req.schema(
            sdk::SchemaAttributeType::builder()
                .name(name)
                .attribute_data_type(sdk::AttributeDataType::String)
                .mutable(true)
                .build(),
        );
    }
    req.send()
        .await?
        .user_pool()
        .and_then(|p| p.id())
        .map(str::to_owned)
        .context("pool id")
}

async fn seed_user(client: &Client, pool: &str, n: usize, rich: bool) -> anyhow::Result<()> {
    let name = format!("user{n:06}");
    client
        .admin_create_user()
        .user_pool_id(pool)
        .username(&name)
        .message_action(sdk::MessageActionType::Suppress)
        .user_attributes(attr("email", format!("{name}@bench.test"))?)
        .user_attributes(attr("email_verified", "true".into())?)
        .user_attributes(attr("given_name", format!("User{n}"))?)
        .user_attributes(attr("custom:tenant", format!("t{}", n % 7))?)
        .user_attributes(attr("custom:plan", "pro".into())?)
        .send()
        .await?;
    if !rich {
        return Ok(());
    }
    let group = ["admins", "operators", "viewers"][n % 3];
    client
        .admin_add_user_to_group()
        .user_pool_id(pool)
        .username(&name)
        .group_name(group)
        .send()
        .await?;
    if n.is_multiple_of(10) {
        client
            .admin_disable_user()
            .user_pool_id(pool)
            .username(&name)
            .send()
            .await?;
    }
    Ok(())
}

struct World {
    bed: TestBed,
    hot_raw: Client,
    hot_pool: String,
    cold_pool: String,
}

async fn world(users: usize, rich: bool) -> anyhow::Result<World> {
    let bed = TestBed::start().await;
    let hot_raw = Client::new(&support::raw_config(&bed.moto.endpoint_url(), HOT).await);
    let cold_raw = Client::new(&support::raw_config(&bed.moto.endpoint_url(), COLD).await);
    let hot_pool = create_pool(&hot_raw).await?;
    let cold_pool = create_pool(&cold_raw).await?;
    if rich {
        for g in ["admins", "operators", "viewers"] {
            hot_raw
                .create_group()
                .user_pool_id(&hot_pool)
                .group_name(g)
                .send()
                .await?;
        }
    }
    let results: Vec<anyhow::Result<()>> = stream::iter(1..=users)
        .map(|n| seed_user(&hot_raw, &hot_pool, n, rich))
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(World {
        bed,
        hot_raw,
        hot_pool,
        cold_pool,
    })
}

struct Pass {
    sync: PoolSync,
    hot: RateLimitedDirectory,
    cold: RateLimitedDirectory,
}

async fn pass(world: &World, limits: CognitoLimits) -> Pass {
    let clients = support::clients(&support::settings(&world.bed.endpoint_url())).await;
    let (Some(h), Some(c)) = (clients.region(HOT), clients.region(COLD)) else {
        unreachable!("the test bed's clients cover both regions");
    };
    let hot = RateLimitedDirectory::new(
        Arc::new(h.user_directory()) as Arc<dyn UserDirectory>,
        limits.clone(),
    );
    let cold = RateLimitedDirectory::new(Arc::new(c.user_directory()), limits);
    Pass {
        sync: PoolSync {
            hot: Arc::new(hot.clone()),
            cold: Arc::new(cold.clone()),
            hot_pool: world.hot_pool.clone(),
            cold_pool: world.cold_pool.clone(),
            deletion: DeletionPolicy::default(),
            concurrency: DEFAULT_CONCURRENCY,
            checkpoint: Arc::new(MemoryCheckpoint::default()),
        },
        hot,
        cold,
    }
}

fn calls(p: &Pass) -> u64 {
    p.hot.counters().calls_total() + p.cold.counters().calls_total()
}

async fn measure(label: &str, p: &Pass, users: usize) -> anyhow::Result<SyncReport> {
    let before = calls(p);
    let started = Instant::now();
    let report = p.sync.run().await?;
    let secs = started.elapsed().as_secs_f64();
    let made = calls(p) - before;
    println!(
        "{label:<34} {users:>6} users  {secs:>8.2} s  {:>8.1} users/s  {made:>6} calls  {:>5.2} calls/user  {:>6} writes",
        users as f64 / secs,
        made as f64 / users as f64,
        report.changes.total(),
    );
    anyhow::ensure!(report.failure_count == 0, "failures: {:?}", report.failures);
    Ok(report)
}

fn main() -> anyhow::Result<()> {
    let users = env_or("FAILOVERD_BENCH_USERS", 10_000)?;
    let quota_users = env_or("FAILOVERD_BENCH_QUOTA_USERS", 1_000)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        // (a)
        let seeding = Instant::now();
        let w = world(users, true).await?;
        println!(
            "(a) seeded {users} users in {:.1} s",
            seeding.elapsed().as_secs_f64()
        );
        let p = pass(&w, CognitoLimits::uniform(100_000.0)).await;
        measure("full sync", &p, users).await?;
        let edits = (users / 100).max(1);
        for n in 1..=edits {
            w.hot_raw
                .admin_update_user_attributes()
                .user_pool_id(&w.hot_pool)
                .username(format!("user{:06}", n * 100 % users.max(1) + 1))
                .user_attributes(attr("custom:plan", "enterprise".into())?)
                .send()
                .await?;
        }
        let r = measure("incremental (1 % edited)", &p, users).await?;
        anyhow::ensure!(
            r.changes.attributes_updated == edits as u64,
            "{:?}",
            r.changes
        );
        measure("incremental (no change)", &p, users).await?;
        drop(w);

        // (b)
        let w = world(quota_users, false).await?;
        let p = pass(&w, CognitoLimits::with_share(1.0)).await;
        let r = measure("full sync at default quotas", &p, quota_users).await?;
        let bound = quota_users.div_ceil(60) as f64 / 30.0 + quota_users as f64 / 50.0;
        let actual = r.duration_ms as f64 / 1000.0;
        println!(
            "(b) {quota_users} users at Cognito's default quotas: {actual:.2} s; bound \
             ⌈N/60⌉/30 + N/50 = {bound:.2} s; ratio {:.2}",
            actual / bound
        );
        Ok(())
    })
}
