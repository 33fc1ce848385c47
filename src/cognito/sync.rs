//! One sync pass: make the cold pool's users, groups and memberships match the hot pool's.
//!
//! A pass (1) describes both pools, (2) creates the hot groups the cold pool lacks, (3) lists the
//! cold pool once into an index, (4) streams the hot pool page by page — the next page is fetched
//! while the current one's writes are applied with bounded concurrency — and checkpoints after
//! each page, (5) reconciles each hot group's members, and (6) decides about cold users the hot
//! pool no longer has (see `super::diff` for the rules).
//!
//! **What it holds.** The cold index (sign-in key → user name, copyable attributes, enabled) for
//! users not yet matched — entries are dropped as hot pages match them, so it shrinks as the pass
//! goes — plus sign-in key → cold user name for every cold user (memberships and deletions need
//! it), one hot page, and one group's member keys at a time. The hot pool is never held whole.
//! For 10,000 users that is a few MB.
//!
//! **Failures.** A user that cannot be copied, or whose write fails after the rate limiter's
//! retries, is reported in [`SyncReport`] and the pass goes on; a listing that fails ends the pass
//! with an error (its checkpoint lets the next pass resume). A pass resumed from a checkpoint did
//! not see the hot pages before it, so it defers deletions to the next full pass rather than
//! delete users it did not look for.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use super::diff::{
    diff_members, diff_user, missing_groups, plan_deletions, ColdSchema, ColdUser, DeletionPlan,
    DeletionPolicy, MembershipChange, Uncopyable, UserChange, UserKey,
};
use super::port::{Group, NewUser, Page, User, UserDirectory};

/// Upper bound on pages of one listing: 50 million users (above Cognito's largest pools) at 60
/// a page. Keeps every pagination loop finite even if a service kept returning tokens.
pub const MAX_PAGES: u64 = 50_000_000 / 60 + 1;

/// Reports keep at most this many individual users per list (counts are always complete).
pub const REPORT_SAMPLE: usize = 50;

/// A pass that could not finish.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A call to one of the pools ([`UserDirectory`]) failed.
    #[error("{pool} pool {pool_id}: {operation}: {source}")]
    Directory {
        pool: &'static str,
        pool_id: String,
        operation: &'static str,
        /// Boxed: port errors are large, and this error travels through every caller.
        source: Box<crate::port::Error>,
    },
    #[error("listing of the {pool} pool did not end after {MAX_PAGES} pages")]
    EndlessListing { pool: &'static str },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

impl SyncError {
    /// Whether a later pass may succeed (throttling, timeouts, outages).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Directory { source, .. } => source.is_retryable(),
            Self::EndlessListing { .. } => false,
            Self::Checkpoint(_) => false,
        }
    }
}

/// A user write that failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WriteFailure {
    pub user: String,
    pub operation: &'static str,
    pub error: String,
}

/// Counts of writes made, by kind (the label of `failoverd_cognito_sync_changes_total`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChangeCounts {
    pub groups_created: u64,
    pub users_created: u64,
    pub attributes_updated: u64,
    pub users_enabled: u64,
    pub users_disabled: u64,
    pub memberships_added: u64,
    pub memberships_removed: u64,
    pub users_deleted: u64,
}

impl ChangeCounts {
    /// `(kind label, count)` pairs.
    pub fn by_kind(&self) -> [(&'static str, u64); 8] {
        [
            ("create_group", self.groups_created),
            ("create_user", self.users_created),
            ("update_attributes", self.attributes_updated),
            ("enable_user", self.users_enabled),
            ("disable_user", self.users_disabled),
            ("add_membership", self.memberships_added),
            ("remove_membership", self.memberships_removed),
            ("delete_user", self.users_deleted),
        ]
    }

    /// Every write.
    pub fn total(&self) -> u64 {
        self.by_kind().iter().map(|(_, n)| n).sum()
    }
}

/// What a pass found and did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SyncReport {
    pub hot_pool: String,
    pub cold_pool: String,
    pub hot_users: u64,
    /// Cold users at the end of the pass.
    pub cold_users: u64,
    pub hot_groups: u64,
    pub cold_groups: u64,
    pub hot_pages: u64,
    /// The pass started from a checkpoint at this many hot pages.
    pub resumed_at_page: Option<u64>,
    pub changes: ChangeCounts,
    /// Users (and memberships' users) that differed when the pass looked.
    pub drift_found: u64,
    /// Users still differing after the pass (failed writes, uncopyable users, kept or guarded
    /// deletions, attributes that cannot be removed).
    pub drift_remaining: u64,
    pub uncopyable_count: u64,
    pub uncopyable: BTreeMap<String, Uncopyable>,
    pub failure_count: u64,
    pub failures: Vec<WriteFailure>,
    /// Users whose cold copy keeps attributes the hot user no longer has.
    pub stale_attribute_users: u64,
    pub deletions: Option<DeletionPlan>,
    /// Deletions were not considered: the pass resumed and did not see the whole hot pool.
    pub deletions_deferred: bool,
    pub duration_ms: u64,
}

impl SyncReport {
    /// Whether the deletion guard stopped deletions in this pass.
    pub fn deletion_guard_tripped(&self) -> bool {
        matches!(self.deletions, Some(DeletionPlan::Guarded { .. }))
    }
}

/// The two pools and how to write to the cold one.
#[derive(Clone)]
pub struct PoolSync {
    pub hot: Arc<dyn UserDirectory>,
    pub cold: Arc<dyn UserDirectory>,
    pub hot_pool: String,
    pub cold_pool: String,
    pub deletion: DeletionPolicy,
    /// Writes in flight at once. The token buckets set the rate; this only needs to cover their
    /// latency (rate × latency), see [`DEFAULT_CONCURRENCY`].
    pub concurrency: usize,
    pub checkpoint: Arc<dyn CheckpointStore>,
}

/// 50 creates/s at ~150 ms each needs about 8 in flight; 16 leaves headroom for slow answers.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// The cold pool as the pass knows it.
struct ColdIndex {
    key: UserKey,
    /// Unmatched cold users, by key.
    unmatched: BTreeMap<String, ColdUser>,
    /// Every cold user (including ones created by this pass): key → user name.
    names: BTreeMap<String, String>,
    /// Keys of hot users that were not copied (they get no membership).
    uncopyable: BTreeSet<String>,
    initial_users: usize,
}

/// Counters and samples gathered while writes run concurrently.
#[derive(Default)]
struct Tally {
    changes: ChangeCounts,
    failures: Vec<WriteFailure>,
    failure_count: u64,
}

impl Tally {
    fn fail(&mut self, user: &str, operation: &'static str, error: &crate::port::Error) {
        self.failure_count += 1;
        tracing::warn!(user, operation, error = %error, "cognito sync: a write failed");
        if self.failures.len() < REPORT_SAMPLE {
            self.failures.push(WriteFailure {
                user: user.to_owned(),
                operation,
                error: error.to_string(),
            });
        }
    }
}

/// The outcome of one hot user's writes.
struct UserOutcome {
    key: String,
    created_as: Option<String>,
    changes: ChangeCounts,
    failure: Option<(&'static str, crate::port::Error)>,
}

impl PoolSync {
    /// Run one pass. See the module docs.
    pub async fn run(&self) -> Result<SyncReport, SyncError> {
        let started = Instant::now();
        let mut report = SyncReport {
            hot_pool: self.hot_pool.clone(),
            cold_pool: self.cold_pool.clone(),
            ..SyncReport::default()
        };
        let hot_desc = self
            .hot
            .describe_pool(&self.hot_pool)
            .await
            .map_err(|e| self.hot_err("DescribeUserPool", e))?;
        let cold_desc = self
            .cold
            .describe_pool(&self.cold_pool)
            .await
            .map_err(|e| self.cold_err("DescribeUserPool", e))?;
        let hot_key = UserKey::for_pool(&hot_desc.username_attributes);
        let schema = ColdSchema::new(&cold_desc.mutable_attributes);

        let resume = self.checkpoint.load().await?.filter(|c| {
            c.hot_pool == self.hot_pool
                && c.cold_pool == self.cold_pool
                && c.next_hot_token.is_some()
        });
        report.resumed_at_page = resume.as_ref().map(|c| c.hot_pages_done);

        // Groups first: memberships need them.
        let hot_groups = self.list_groups(true).await?;
        let cold_groups = self.list_groups(false).await?;
        let cold_names: BTreeSet<String> = cold_groups.iter().map(|g| g.name.clone()).collect();
        let mut tally = Tally::default();
        for g in missing_groups(&hot_groups, &cold_names) {
            match self.cold.create_group(&self.cold_pool, g).await {
                Ok(()) => tally.changes.groups_created += 1,
                Err(e) => tally.fail(&format!("group:{}", g.name), "CreateGroup", &e),
            }
        }
        report.hot_groups = hot_groups.len() as u64;

        let mut cold = self
            .index_cold(UserKey::for_pool(&cold_desc.username_attributes))
            .await?;
        let mut drift_found = 0u64;
        let mut stale_users = 0u64;
        let mut uncopyable = BTreeMap::new();
        let mut uncopyable_count = 0u64;

        // Stream the hot pool.
        let mut pages_done = resume.as_ref().map_or(0, |c| c.hot_pages_done);
        let mut page = self
            .hot
            .list_users(
                &self.hot_pool,
                resume.as_ref().and_then(|c| c.next_hot_token.as_deref()),
            )
            .await
            .map_err(|e| self.hot_err("ListUsers", e))?;
        let mut listed = 0u64;
        loop {
            listed += 1;
            if listed > MAX_PAGES {
                return Err(SyncError::EndlessListing { pool: "hot" });
            }
            let next_token = page.next_token.clone();
            let mut work = Vec::new();
            for user in &page.items {
                report.hot_users += 1;
                let Some(key) = hot_key.of(user) else {
                    uncopyable_count += 1;
                    sample(&mut uncopyable, &user.username, Uncopyable::NoSignInKey);
                    continue;
                };
                let cold_user = cold.unmatched.remove(&key);
                match diff_user(user, &key, cold_user.as_ref(), &schema) {
                    Ok(d) => {
                        if !d.stale_attributes.is_empty() {
                            stale_users += 1;
                        }
                        if !d.changes.is_empty() {
                            drift_found += 1;
                            work.push((key, d.changes));
                        }
                    }
                    Err(why) => {
                        uncopyable_count += 1;
                        cold.uncopyable.insert(key.clone());
                        sample(&mut uncopyable, &key, why);
                    }
                }
            }
            // Apply this page while the next one is fetched.
            let fetch_next = async {
                match &next_token {
                    Some(t) => self
                        .hot
                        .list_users(&self.hot_pool, Some(t))
                        .await
                        .map(Some)
                        .map_err(|e| self.hot_err("ListUsers", e)),
                    None => Ok(None),
                }
            };
            let (outcomes, next) = tokio::join!(self.apply_users(work), fetch_next);
            for o in outcomes {
                add_counts(&mut tally.changes, &o.changes);
                if let Some(name) = o.created_as {
                    cold.names.insert(o.key.clone(), name);
                }
                if let Some((op, e)) = o.failure {
                    tally.fail(&o.key, op, &e);
                }
            }
            pages_done += 1;
            self.checkpoint
                .save(&Checkpoint {
                    hot_pool: self.hot_pool.clone(),
                    cold_pool: self.cold_pool.clone(),
                    next_hot_token: next_token.clone(),
                    hot_pages_done: pages_done,
                })
                .await?;
            match next? {
                Some(p) => page = p,
                None => break,
            }
        }
        report.hot_pages = pages_done;

        // Memberships, one group at a time.
        for g in &hot_groups {
            let hot_members = self
                .member_keys(true, &g.name, &hot_key)
                .await?
                .into_keys()
                .collect::<BTreeSet<_>>();
            // Cold users without a hot counterpart keep their memberships: what happens to them
            // is the deletion decision's (a deleted user leaves its groups anyway). In a resumed
            // pass that also defers removals for users matched before the crash.
            let mut cold_members = self.member_keys(false, &g.name, &cold.key).await?;
            cold_members.retain(|k, _| !cold.unmatched.contains_key(k));
            let changes = diff_members(&g.name, &hot_members, &cold_members, |k| {
                if cold.uncopyable.contains(k) {
                    None
                } else {
                    cold.names.get(k).cloned()
                }
            });
            drift_found += changes.len() as u64;
            let results = stream::iter(changes)
                .map(|c| self.apply_membership(c))
                .buffer_unordered(self.concurrency.max(1))
                .collect::<Vec<_>>()
                .await;
            for (change, result) in results {
                match (change, result) {
                    (MembershipChange::Add { .. }, Ok(())) => tally.changes.memberships_added += 1,
                    (MembershipChange::Remove { .. }, Ok(())) => {
                        tally.changes.memberships_removed += 1
                    }
                    (MembershipChange::Add { username, .. }, Err(e)) => {
                        tally.fail(&username, "AdminAddUserToGroup", &e)
                    }
                    (MembershipChange::Remove { username, .. }, Err(e)) => {
                        tally.fail(&username, "AdminRemoveUserFromGroup", &e)
                    }
                }
            }
        }

        // Deletions.
        let mut remaining_orphans = 0u64;
        if resume.is_some() {
            report.deletions_deferred = true;
            remaining_orphans = cold.unmatched.len() as u64;
        } else {
            let orphans: Vec<String> = cold
                .unmatched
                .values()
                .map(|u| u.username.clone())
                .collect();
            drift_found += orphans.len() as u64;
            let plan = plan_deletions(orphans, cold.initial_users, self.deletion);
            if let DeletionPlan::Delete { usernames } = &plan {
                let results = stream::iter(usernames.clone())
                    .map(|u| self.delete_one(u))
                    .buffer_unordered(self.concurrency.max(1))
                    .collect::<Vec<_>>()
                    .await;
                for (u, r) in results {
                    match r {
                        Ok(()) => tally.changes.users_deleted += 1,
                        Err(e) if e.is_not_found() => tally.changes.users_deleted += 1,
                        Err(e) => {
                            remaining_orphans += 1;
                            tally.fail(&u, "AdminDeleteUser", &e)
                        }
                    }
                }
            } else if let DeletionPlan::Kept { count } = &plan {
                remaining_orphans = *count as u64;
            } else if let DeletionPlan::Guarded { would_delete, .. } = &plan {
                remaining_orphans = *would_delete as u64;
                tracing::warn!(
                    ?plan,
                    "cognito sync: deletion guard tripped, nothing deleted"
                );
            }
            report.deletions = Some(match plan {
                // Keep the report small: the names of a large deletion are in the logs.
                DeletionPlan::Delete { mut usernames } => {
                    usernames.truncate(REPORT_SAMPLE);
                    DeletionPlan::Delete { usernames }
                }
                other => other,
            });
        }
        self.checkpoint.clear().await?;

        report.cold_users = (cold.names.len() as u64).saturating_sub(tally.changes.users_deleted);
        report.cold_groups = cold_groups.len() as u64 + tally.changes.groups_created;
        report.changes = tally.changes;
        report.failure_count = tally.failure_count;
        report.failures = tally.failures;
        report.uncopyable_count = uncopyable_count;
        report.uncopyable = uncopyable;
        report.stale_attribute_users = stale_users;
        report.drift_found = drift_found;
        report.drift_remaining =
            tally.failure_count + uncopyable_count + remaining_orphans + stale_users;
        report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(report)
    }

    fn hot_err(&self, operation: &'static str, source: crate::port::Error) -> SyncError {
        SyncError::Directory {
            pool: "hot",
            pool_id: self.hot_pool.clone(),
            operation,
            source: Box::new(source),
        }
    }

    fn cold_err(&self, operation: &'static str, source: crate::port::Error) -> SyncError {
        SyncError::Directory {
            pool: "cold",
            pool_id: self.cold_pool.clone(),
            operation,
            source: Box::new(source),
        }
    }

    fn side(&self, hot: bool) -> (&dyn UserDirectory, &str) {
        if hot {
            (self.hot.as_ref(), &self.hot_pool)
        } else {
            (self.cold.as_ref(), &self.cold_pool)
        }
    }

    async fn list_groups(&self, hot: bool) -> Result<Vec<Group>, SyncError> {
        let (dir, pool) = self.side(hot);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page: Page<Group> = dir.list_groups(pool, token.as_deref()).await.map_err(|e| {
                if hot {
                    self.hot_err("ListGroups", e)
                } else {
                    self.cold_err("ListGroups", e)
                }
            })?;
            out.extend(page.items);
            match page.next_token {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
        Err(SyncError::EndlessListing {
            pool: if hot { "hot" } else { "cold" },
        })
    }

    async fn index_cold(&self, key: UserKey) -> Result<ColdIndex, SyncError> {
        let mut index = ColdIndex {
            key,
            unmatched: BTreeMap::new(),
            names: BTreeMap::new(),
            uncopyable: BTreeSet::new(),
            initial_users: 0,
        };
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .cold
                .list_users(&self.cold_pool, token.as_deref())
                .await
                .map_err(|e| self.cold_err("ListUsers", e))?;
            for u in &page.items {
                index.initial_users += 1;
                if let Some(k) = index.key.of(u) {
                    index.names.insert(k.clone(), u.username.clone());
                    index.unmatched.insert(k, ColdUser::from_user(u));
                }
            }
            match page.next_token {
                Some(t) => token = Some(t),
                None => return Ok(index),
            }
        }
        Err(SyncError::EndlessListing { pool: "cold" })
    }

    /// A group's members: key → user name.
    async fn member_keys(
        &self,
        hot: bool,
        group: &str,
        key: &UserKey,
    ) -> Result<BTreeMap<String, String>, SyncError> {
        let (dir, pool) = self.side(hot);
        let mut out = BTreeMap::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page: Page<User> = dir
                .list_users_in_group(pool, group, token.as_deref())
                .await
                .map_err(|e| {
                    if hot {
                        self.hot_err("ListUsersInGroup", e)
                    } else {
                        self.cold_err("ListUsersInGroup", e)
                    }
                })?;
            for u in &page.items {
                if let Some(k) = key.of(u) {
                    out.insert(k, u.username.clone());
                }
            }
            match page.next_token {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
        Err(SyncError::EndlessListing {
            pool: if hot { "hot" } else { "cold" },
        })
    }

    async fn apply_users(&self, work: Vec<(String, Vec<UserChange>)>) -> Vec<UserOutcome> {
        stream::iter(work)
            .map(|(key, changes)| self.apply_user(key, changes))
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await
    }

    /// One user's writes, in order; stops at the first failure (the next pass retries).
    async fn apply_user(&self, key: String, changes: Vec<UserChange>) -> UserOutcome {
        let mut out = UserOutcome {
            key,
            created_as: None,
            changes: ChangeCounts::default(),
            failure: None,
        };
        let pool = &self.cold_pool;
        for change in changes {
            let result = match &change {
                UserChange::Create { user, enabled } => {
                    match self.cold.create_user(pool, &NewUser::from(user)).await {
                        Ok(created) => {
                            out.changes.users_created += 1;
                            out.created_as = Some(created.username.clone());
                            if *enabled {
                                Ok(())
                            } else {
                                match self.cold.disable_user(pool, &created.username).await {
                                    Ok(()) => {
                                        out.changes.users_disabled += 1;
                                        Ok(())
                                    }
                                    Err(e) => Err(("AdminDisableUser", e)),
                                }
                            }
                        }
                        Err(e) => Err(("AdminCreateUser", e)),
                    }
                }
                UserChange::UpdateAttributes {
                    username,
                    attributes,
                } => match self
                    .cold
                    .update_user_attributes(pool, username, attributes)
                    .await
                {
                    Ok(()) => {
                        out.changes.attributes_updated += 1;
                        Ok(())
                    }
                    Err(e) => Err(("AdminUpdateUserAttributes", e)),
                },
                UserChange::Enable { username } => {
                    match self.cold.enable_user(pool, username).await {
                        Ok(()) => {
                            out.changes.users_enabled += 1;
                            Ok(())
                        }
                        Err(e) => Err(("AdminEnableUser", e)),
                    }
                }
                UserChange::Disable { username } => {
                    match self.cold.disable_user(pool, username).await {
                        Ok(()) => {
                            out.changes.users_disabled += 1;
                            Ok(())
                        }
                        Err(e) => Err(("AdminDisableUser", e)),
                    }
                }
            };
            if let Err(f) = result {
                out.failure = Some(f);
                break;
            }
        }
        out
    }

    async fn delete_one(&self, username: String) -> (String, crate::port::Result<()>) {
        let r = self.cold.delete_user(&self.cold_pool, &username).await;
        (username, r)
    }

    async fn apply_membership(
        &self,
        change: MembershipChange,
    ) -> (MembershipChange, crate::port::Result<()>) {
        let r = match &change {
            MembershipChange::Add { group, username } => {
                self.cold
                    .add_user_to_group(&self.cold_pool, username, group)
                    .await
            }
            MembershipChange::Remove { group, username } => {
                self.cold
                    .remove_user_from_group(&self.cold_pool, username, group)
                    .await
            }
        };
        (change, r)
    }
}

fn sample(map: &mut BTreeMap<String, Uncopyable>, key: &str, why: Uncopyable) {
    tracing::info!(
        user = key,
        reason = why.label(),
        "cognito sync: user not copied"
    );
    if map.len() < REPORT_SAMPLE {
        map.insert(key.to_owned(), why);
    }
}

fn add_counts(total: &mut ChangeCounts, add: &ChangeCounts) {
    total.groups_created += add.groups_created;
    total.users_created += add.users_created;
    total.attributes_updated += add.attributes_updated;
    total.users_enabled += add.users_enabled;
    total.users_disabled += add.users_disabled;
    total.memberships_added += add.memberships_added;
    total.memberships_removed += add.memberships_removed;
    total.users_deleted += add.users_deleted;
}
