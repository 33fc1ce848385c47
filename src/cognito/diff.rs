//! The pure diff between the hot pool and the cold pool: what to write to the cold pool so that its
//! users, groups and memberships match the hot pool's.
//!
//! Everything here is a function of its arguments, so the rules — which attributes are copied,
//! how users are matched, when deletions are refused — are tested exhaustively without AWS. The
//! reconciler (`super::sync`) calls the per-user and per-group pieces page by page so that it never
//! holds the hot pool; [`diff_pools`] composes the same pieces over two whole pools for tests and
//! small tools.
//!
//! **Matching.** Users are matched by their *sign-in key*. In a pool that signs in by user name
//! (with or without email / phone *aliases*) that is the user name, which `AdminCreateUser` can
//! set, so the copy keeps it. In a pool whose *username attributes* are `email` and/or
//! `phone_number`, Cognito generates the user name (a UUID) and the user never sees it; the copy
//! cannot choose it either, so the key is the sign-in attribute's value (the first of the pool's
//! username attributes the user has), and the copy is created with that value as its user name,
//! which Cognito accepts and turns into a new UUID.
//!
//! **Attributes.** A copy carries every attribute of the hot user except read-only ones (`sub`,
//! `identities`, `cognito:*`), including `email_verified` and `phone_number_verified` so that a
//! verified address stays verified and users are not asked to verify again after a failover.
//! Custom attributes must exist in the cold pool's schema; a user with a value for one the cold
//! pool lacks is reported as uncopyable rather than copied with a hole. Federated users
//! (`EXTERNAL_PROVIDER`) are reported, not copied: they are recreated by their identity provider
//! on their next sign-in to the cold region.
//!
//! **Deletions** are off unless `delete_missing` is set, and a pass that would delete more than
//! `max_delete_fraction` of the cold pool deletes nothing and reports why: a hot pool that lists
//! empty (a wrong pool id, a half-restored region) must not empty the cold one.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::port::{Group, NewUser, User};

/// Attributes Cognito sets itself and refuses to have written.
pub const READ_ONLY_ATTRIBUTES: &[&str] = &["sub", "identities"];

/// Standard (OIDC) attributes: every Cognito pool has them in its schema, so they can always be
/// written to the cold pool (moto lists only the declared ones, AWS lists all).
pub const STANDARD_ATTRIBUTES: &[&str] = &[
    "address",
    "birthdate",
    "email",
    "email_verified",
    "family_name",
    "gender",
    "given_name",
    "locale",
    "middle_name",
    "name",
    "nickname",
    "phone_number",
    "phone_number_verified",
    "picture",
    "preferred_username",
    "profile",
    "updated_at",
    "website",
    "zoneinfo",
];

/// The status Cognito gives users that sign in through an external identity provider.
pub const FEDERATED_STATUS: &str = "EXTERNAL_PROVIDER";

/// Whether an attribute is set by Cognito and never copied.
pub fn is_read_only(name: &str) -> bool {
    READ_ONLY_ATTRIBUTES.contains(&name) || name.starts_with("cognito:")
}

/// How users of a pool are identified across pools (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum UserKey {
    /// The user name: pools that sign in by user name (aliases included).
    Username,
    /// The value of the first of these attributes the user has (`email`, `phone_number`): pools
    /// with username attributes, whose user names are generated.
    Attributes(Vec<String>),
}

impl UserKey {
    /// The key for a pool with these `UsernameAttributes` (empty: sign-in by user name).
    pub fn for_pool(username_attributes: &[String]) -> Self {
        if username_attributes.is_empty() {
            Self::Username
        } else {
            Self::Attributes(username_attributes.to_vec())
        }
    }

    /// `user`'s key, or `None` when it has none of the sign-in attributes.
    pub fn of(&self, user: &User) -> Option<String> {
        match self {
            Self::Username => Some(user.username.clone()),
            Self::Attributes(names) => names
                .iter()
                .find_map(|n| user.attributes.get(n).filter(|v| !v.is_empty()).cloned()),
        }
    }
}

/// What may be written to the cold pool: the standard attributes and the cold schema's writable
/// custom attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ColdSchema {
    custom: BTreeSet<String>,
}

impl ColdSchema {
    /// From the cold pool's `mutable_attributes` (`DescribeUserPool`).
    pub fn new(mutable_attributes: &[String]) -> Self {
        Self {
            custom: mutable_attributes
                .iter()
                .filter(|a| a.starts_with("custom:") || a.starts_with("dev:"))
                .cloned()
                .collect(),
        }
    }

    /// Whether the cold pool accepts a value for `name`.
    pub fn accepts(&self, name: &str) -> bool {
        STANDARD_ATTRIBUTES.contains(&name) || self.custom.contains(name)
    }
}

/// Why a hot user is not copied. Reported, never fatal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Uncopyable {
    /// Signs in through an external identity provider; recreated on its next sign-in.
    Federated,
    /// Has values for attributes the cold pool's schema lacks.
    MissingAttributes { attributes: Vec<String> },
    /// Has none of the pool's username attributes, so it has no sign-in key.
    NoSignInKey,
}

impl Uncopyable {
    /// Fixed label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Federated => "federated",
            Self::MissingAttributes { .. } => "missing_attributes",
            Self::NoSignInKey => "no_sign_in_key",
        }
    }
}

/// The attributes of `user` a copy carries (read-only ones dropped), or why it cannot be copied.
pub fn copyable_attributes(
    user: &User,
    cold: &ColdSchema,
) -> Result<BTreeMap<String, String>, Uncopyable> {
    if user.status.as_deref() == Some(FEDERATED_STATUS)
        || user.attributes.contains_key("identities")
    {
        return Err(Uncopyable::Federated);
    }
    let mut missing = Vec::new();
    let mut out = BTreeMap::new();
    for (name, value) in &user.attributes {
        if is_read_only(name) {
            continue;
        }
        if cold.accepts(name) {
            out.insert(name.clone(), value.clone());
        } else {
            missing.push(name.clone());
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(Uncopyable::MissingAttributes {
            attributes: missing,
        })
    }
}

/// What the reconciler keeps of a cold user: its real user name (what admin calls take), its
/// copyable attributes and whether it is enabled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColdUser {
    pub username: String,
    pub attributes: BTreeMap<String, String>,
    pub enabled: bool,
}

impl ColdUser {
    /// Drops what is never compared (read-only attributes, status, dates).
    pub fn from_user(user: &User) -> Self {
        Self {
            username: user.username.clone(),
            attributes: user
                .attributes
                .iter()
                .filter(|(k, _)| !is_read_only(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            enabled: user.enabled,
        }
    }
}

/// One write to the cold pool concerning one user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum UserChange {
    /// `AdminCreateUser` (then `AdminDisableUser` when `enabled` is false).
    Create {
        user: NewUserSpec,
        enabled: bool,
    },
    /// `AdminUpdateUserAttributes` with only the attributes that differ.
    UpdateAttributes {
        username: String,
        attributes: BTreeMap<String, String>,
    },
    Enable {
        username: String,
    },
    Disable {
        username: String,
    },
}

/// [`NewUser`], serialisable for reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewUserSpec {
    pub username: String,
    pub attributes: BTreeMap<String, String>,
}

impl From<&NewUserSpec> for NewUser {
    fn from(s: &NewUserSpec) -> Self {
        NewUser {
            username: s.username.clone(),
            attributes: s.attributes.clone(),
        }
    }
}

/// Result of comparing one hot user with its cold counterpart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserDiff {
    pub changes: Vec<UserChange>,
    /// Attributes the cold copy has and the hot user no longer has. Not removed: the port has no
    /// `AdminDeleteUserAttributes` (reported so the operator knows).
    pub stale_attributes: Vec<String>,
}

impl UserDiff {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.stale_attributes.is_empty()
    }
}

/// The writes that make `cold` (the counterpart found by key, if any) match `hot`. `key` is the
/// hot user's sign-in key (the user name of a new copy).
pub fn diff_user(
    hot: &User,
    key: &str,
    cold: Option<&ColdUser>,
    schema: &ColdSchema,
) -> Result<UserDiff, Uncopyable> {
    let attributes = copyable_attributes(hot, schema)?;
    let Some(cold) = cold else {
        return Ok(UserDiff {
            changes: vec![UserChange::Create {
                user: NewUserSpec {
                    username: key.to_owned(),
                    attributes,
                },
                enabled: hot.enabled,
            }],
            stale_attributes: Vec::new(),
        });
    };
    let mut changes = Vec::new();
    let differing: BTreeMap<String, String> = attributes
        .iter()
        .filter(|(k, v)| cold.attributes.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !differing.is_empty() {
        changes.push(UserChange::UpdateAttributes {
            username: cold.username.clone(),
            attributes: differing,
        });
    }
    match (hot.enabled, cold.enabled) {
        (true, false) => changes.push(UserChange::Enable {
            username: cold.username.clone(),
        }),
        (false, true) => changes.push(UserChange::Disable {
            username: cold.username.clone(),
        }),
        _ => {}
    }
    let stale_attributes = cold
        .attributes
        .keys()
        .filter(|k| !attributes.contains_key(*k))
        .cloned()
        .collect();
    Ok(UserDiff {
        changes,
        stale_attributes,
    })
}

/// The hot groups the cold pool lacks (`CreateGroup`). Groups are never deleted or updated: a
/// group's IAM role is regional, and removing one would drop its members' claims.
pub fn missing_groups<'a>(hot: &'a [Group], cold_names: &BTreeSet<String>) -> Vec<&'a Group> {
    hot.iter()
        .filter(|g| !cold_names.contains(&g.name))
        .collect()
}

/// A membership write.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum MembershipChange {
    Add { group: String, username: String },
    Remove { group: String, username: String },
}

/// The membership writes for one group. `hot` and `cold` are the members' sign-in keys;
/// `cold_username` maps a key to the cold user's real user name (a key without a cold user — an
/// uncopyable one — gets no membership). Removals apply to cold members whose hot counterpart is
/// not in the group.
pub fn diff_members(
    group: &str,
    hot: &BTreeSet<String>,
    cold: &BTreeMap<String, String>,
    cold_username: impl Fn(&str) -> Option<String>,
) -> Vec<MembershipChange> {
    let mut out = Vec::new();
    for key in hot {
        if cold.contains_key(key) {
            continue;
        }
        if let Some(username) = cold_username(key) {
            out.push(MembershipChange::Add {
                group: group.to_owned(),
                username,
            });
        }
    }
    for (key, username) in cold {
        if !hot.contains(key) {
            out.push(MembershipChange::Remove {
                group: group.to_owned(),
                username: username.clone(),
            });
        }
    }
    out
}

/// Deletion settings (`cognito.delete_missing`, `cognito.max_delete_fraction`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct DeletionPolicy {
    pub delete_missing: bool,
    pub max_delete_fraction: f64,
}

impl Default for DeletionPolicy {
    fn default() -> Self {
        Self {
            delete_missing: false,
            max_delete_fraction: 0.05,
        }
    }
}

/// What to do with cold users that have no hot counterpart.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum DeletionPlan {
    /// Nothing to delete.
    None,
    /// Delete these cold user names (`AdminDeleteUser`).
    Delete { usernames: Vec<String> },
    /// `delete_missing` is off: these users are left in place.
    Kept { count: usize },
    /// More than the allowed share of the cold pool would go: nothing is deleted.
    Guarded {
        would_delete: usize,
        cold_users: usize,
        max_delete_fraction: f64,
    },
}

/// Decide about `orphans` (cold user names without hot counterpart) in a cold pool of
/// `cold_users`.
pub fn plan_deletions(
    orphans: Vec<String>,
    cold_users: usize,
    policy: DeletionPolicy,
) -> DeletionPlan {
    if orphans.is_empty() {
        return DeletionPlan::None;
    }
    if !policy.delete_missing {
        return DeletionPlan::Kept {
            count: orphans.len(),
        };
    }
    // Counts are far below 2^52, so the conversion is exact.
    let share = orphans.len() as f64 / cold_users.max(1) as f64;
    if share > policy.max_delete_fraction {
        return DeletionPlan::Guarded {
            would_delete: orphans.len(),
            cold_users,
            max_delete_fraction: policy.max_delete_fraction,
        };
    }
    DeletionPlan::Delete { usernames: orphans }
}

/// Everything a pool holds that the sync compares (whole, for [`diff_pools`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolContents {
    pub username_attributes: Vec<String>,
    pub mutable_attributes: Vec<String>,
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    /// Group name → member user names.
    pub members: BTreeMap<String, BTreeSet<String>>,
}

/// Every write [`diff_pools`] found, in the order they must be applied.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PoolDiff {
    pub create_groups: Vec<String>,
    pub users: Vec<UserChange>,
    pub memberships: Vec<MembershipChange>,
    pub deletions: DeletionPlan,
    pub uncopyable: BTreeMap<String, Uncopyable>,
    /// Hot keys whose cold copy has attributes the hot user lacks.
    pub stale_attributes: BTreeMap<String, Vec<String>>,
}

impl PoolDiff {
    /// Users that differ (to create or change).
    pub fn drift(&self) -> usize {
        let mut users: BTreeSet<&str> = BTreeSet::new();
        for c in &self.users {
            users.insert(match c {
                UserChange::Create { user, .. } => &user.username,
                UserChange::UpdateAttributes { username, .. }
                | UserChange::Enable { username }
                | UserChange::Disable { username } => username,
            });
        }
        users.len()
    }
}

/// The whole diff of two pools, composed from the per-user and per-group pieces the reconciler
/// uses page by page. Memberships of a user created by this diff use its key as user name.
pub fn diff_pools(hot: &PoolContents, cold: &PoolContents, policy: DeletionPolicy) -> PoolDiff {
    let hot_key = UserKey::for_pool(&hot.username_attributes);
    let cold_key = UserKey::for_pool(&cold.username_attributes);
    let schema = ColdSchema::new(&cold.mutable_attributes);

    let mut cold_index: BTreeMap<String, ColdUser> = BTreeMap::new();
    for u in &cold.users {
        if let Some(k) = cold_key.of(u) {
            cold_index.insert(k, ColdUser::from_user(u));
        }
    }
    let cold_by_name: BTreeMap<&str, String> = cold_index
        .iter()
        .map(|(k, u)| (u.username.as_str(), k.clone()))
        .collect();

    let mut users = Vec::new();
    let mut uncopyable = BTreeMap::new();
    let mut stale_attributes = BTreeMap::new();
    let mut hot_keys: BTreeMap<&str, String> = BTreeMap::new();
    let mut copied: BTreeMap<String, String> = BTreeMap::new();
    for u in &hot.users {
        let Some(key) = hot_key.of(u) else {
            uncopyable.insert(u.username.clone(), Uncopyable::NoSignInKey);
            continue;
        };
        hot_keys.insert(&u.username, key.clone());
        let cold_user = cold_index.get(&key);
        match diff_user(u, &key, cold_user, &schema) {
            Ok(d) => {
                copied.insert(
                    key.clone(),
                    cold_user.map_or_else(|| key.clone(), |c| c.username.clone()),
                );
                if !d.stale_attributes.is_empty() {
                    stale_attributes.insert(key.clone(), d.stale_attributes);
                }
                users.extend(d.changes);
            }
            Err(why) => {
                uncopyable.insert(key, why);
            }
        }
    }

    let cold_group_names: BTreeSet<String> = cold.groups.iter().map(|g| g.name.clone()).collect();
    let create_groups = missing_groups(&hot.groups, &cold_group_names)
        .into_iter()
        .map(|g| g.name.clone())
        .collect();

    let mut memberships = Vec::new();
    let empty = BTreeSet::new();
    for g in &hot.groups {
        let hot_members: BTreeSet<String> = hot
            .members
            .get(&g.name)
            .unwrap_or(&empty)
            .iter()
            .filter_map(|n| hot_keys.get(n.as_str()).cloned())
            .collect();
        let cold_members: BTreeMap<String, String> = cold
            .members
            .get(&g.name)
            .unwrap_or(&empty)
            .iter()
            .filter_map(|n| cold_by_name.get(n.as_str()).map(|k| (k.clone(), n.clone())))
            .collect();
        memberships.extend(diff_members(&g.name, &hot_members, &cold_members, |k| {
            copied.get(k).cloned()
        }));
    }

    let live: BTreeSet<&String> = hot_keys.values().collect();
    let orphans = cold_index
        .iter()
        .filter(|(k, _)| !live.contains(k))
        .map(|(_, u)| u.username.clone())
        .collect();
    let deletions = plan_deletions(orphans, cold.users.len(), policy);

    PoolDiff {
        create_groups,
        users,
        memberships,
        deletions,
        uncopyable,
        stale_attributes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, attrs: &[(&str, &str)], enabled: bool) -> User {
        User {
            username: name.to_owned(),
            attributes: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            enabled,
            status: Some("CONFIRMED".into()),
            created_at: None,
            last_modified_at: None,
        }
    }

    fn group(name: &str) -> Group {
        Group {
            name: name.to_owned(),
            description: None,
            precedence: None,
            role_arn: None,
        }
    }

    fn schema() -> ColdSchema {
        ColdSchema::new(&["custom:tenant".to_owned(), "email".to_owned()])
    }

    fn pool(users: Vec<User>) -> PoolContents {
        PoolContents {
            mutable_attributes: vec!["custom:tenant".into()],
            users,
            ..PoolContents::default()
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn copy_drops_read_only_attributes_and_keeps_verification_flags() {
        let u = user(
            "alice",
            &[
                ("sub", "1111"),
                ("identities", "[]"),
                ("cognito:mfa_enabled", "false"),
                ("email", "a@x"),
                ("email_verified", "true"),
                ("phone_number", "+15550100"),
                ("phone_number_verified", "false"),
                ("custom:tenant", "acme"),
            ],
            true,
        );
        // `identities` marks a federated user; without it the rest is copied.
        assert_eq!(
            copyable_attributes(&u, &schema()),
            Err(Uncopyable::Federated)
        );
        let mut u = u;
        u.attributes.remove("identities");
        let got = copyable_attributes(&u, &schema()).unwrap();
        assert_eq!(
            got,
            map(&[
                ("custom:tenant", "acme"),
                ("email", "a@x"),
                ("email_verified", "true"),
                ("phone_number", "+15550100"),
                ("phone_number_verified", "false"),
            ])
        );
    }

    #[test]
    fn federated_users_and_unknown_custom_attributes_are_uncopyable() {
        let mut fed = user("Google_123", &[("email", "g@x")], true);
        fed.status = Some(FEDERATED_STATUS.into());
        assert_eq!(
            diff_user(&fed, "Google_123", None, &schema()),
            Err(Uncopyable::Federated)
        );
        let odd = user("bob", &[("custom:plan", "gold"), ("custom:x", "1")], true);
        assert_eq!(
            diff_user(&odd, "bob", None, &schema()),
            Err(Uncopyable::MissingAttributes {
                attributes: vec!["custom:plan".into(), "custom:x".into()]
            })
        );
        assert_eq!(Uncopyable::Federated.label(), "federated");
    }

    #[test]
    fn standard_attributes_are_always_accepted_custom_ones_only_if_in_the_cold_schema() {
        let s = ColdSchema::new(&["custom:tenant".into(), "sub".into()]);
        assert!(s.accepts("given_name"));
        assert!(s.accepts("email_verified"));
        assert!(s.accepts("custom:tenant"));
        assert!(!s.accepts("custom:plan"));
        assert!(!s.accepts("sub"));
    }

    #[test]
    fn a_missing_user_is_created_with_its_enabled_state() {
        let hot = user("carol", &[("email", "c@x"), ("sub", "s")], false);
        let d = diff_user(&hot, "carol", None, &schema()).unwrap();
        assert_eq!(
            d.changes,
            vec![UserChange::Create {
                user: NewUserSpec {
                    username: "carol".into(),
                    attributes: map(&[("email", "c@x")]),
                },
                enabled: false,
            }]
        );
    }

    #[test]
    fn identical_users_need_nothing_even_when_sub_and_status_differ() {
        let hot = user("dave", &[("email", "d@x"), ("sub", "hot-sub")], true);
        let mut cold_u = user("dave", &[("email", "d@x"), ("sub", "cold-sub")], true);
        cold_u.status = Some("FORCE_CHANGE_PASSWORD".into());
        let cold = ColdUser::from_user(&cold_u);
        let d = diff_user(&hot, "dave", Some(&cold), &schema()).unwrap();
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn only_differing_attributes_are_updated_and_state_flips_both_ways() {
        let hot = user(
            "erin",
            &[("email", "e@x"), ("custom:tenant", "globex")],
            false,
        );
        let cold = ColdUser::from_user(&user(
            "erin",
            &[
                ("email", "e@x"),
                ("custom:tenant", "acme"),
                ("nickname", "e"),
            ],
            true,
        ));
        let d = diff_user(&hot, "erin", Some(&cold), &schema()).unwrap();
        assert_eq!(
            d.changes,
            vec![
                UserChange::UpdateAttributes {
                    username: "erin".into(),
                    attributes: map(&[("custom:tenant", "globex")]),
                },
                UserChange::Disable {
                    username: "erin".into()
                },
            ]
        );
        assert_eq!(d.stale_attributes, vec!["nickname".to_owned()]);

        let hot = user("erin", &[("email", "e@x")], true);
        let cold = ColdUser::from_user(&user("erin", &[("email", "e@x")], false));
        let d = diff_user(&hot, "erin", Some(&cold), &schema()).unwrap();
        assert_eq!(
            d.changes,
            vec![UserChange::Enable {
                username: "erin".into()
            }]
        );
    }

    #[test]
    fn user_key_is_the_username_or_the_first_sign_in_attribute() {
        let u = user(
            "9f1c-uuid",
            &[("phone_number", "+1555"), ("email", "f@x")],
            true,
        );
        assert_eq!(UserKey::for_pool(&[]).of(&u), Some("9f1c-uuid".into()));
        let by_email = UserKey::for_pool(&["email".into(), "phone_number".into()]);
        assert_eq!(by_email.of(&u), Some("f@x".into()));
        let by_phone = UserKey::for_pool(&["phone_number".into(), "email".into()]);
        assert_eq!(by_phone.of(&u), Some("+1555".into()));
        let bare = user("x", &[("email", "")], true);
        assert_eq!(by_email.of(&bare), None);
    }

    #[test]
    fn email_sign_in_pools_match_by_email_and_address_the_cold_user_by_its_own_name() {
        let mut hot = pool(vec![
            user(
                "uuid-hot-1",
                &[("email", "a@x"), ("custom:tenant", "t2")],
                true,
            ),
            user("uuid-hot-2", &[("email", "b@x")], true),
        ]);
        hot.username_attributes = vec!["email".into()];
        hot.groups = vec![group("g")];
        hot.members.insert(
            "g".into(),
            ["uuid-hot-1".to_owned(), "uuid-hot-2".to_owned()].into(),
        );
        let mut cold = pool(vec![user(
            "uuid-cold-1",
            &[("email", "a@x"), ("custom:tenant", "t1")],
            true,
        )]);
        cold.username_attributes = vec!["email".into()];
        cold.groups = vec![group("g")];
        let d = diff_pools(&hot, &cold, DeletionPolicy::default());
        assert_eq!(
            d.users,
            vec![
                UserChange::UpdateAttributes {
                    username: "uuid-cold-1".into(),
                    attributes: map(&[("custom:tenant", "t2")]),
                },
                UserChange::Create {
                    user: NewUserSpec {
                        username: "b@x".into(),
                        attributes: map(&[("email", "b@x")]),
                    },
                    enabled: true,
                },
            ]
        );
        assert_eq!(
            d.memberships,
            vec![
                MembershipChange::Add {
                    group: "g".into(),
                    username: "uuid-cold-1".into()
                },
                MembershipChange::Add {
                    group: "g".into(),
                    username: "b@x".into()
                },
            ]
        );
        assert_eq!(d.deletions, DeletionPlan::None);
        assert_eq!(d.drift(), 2);
    }

    #[test]
    fn a_user_without_its_sign_in_attribute_is_reported() {
        let mut hot = pool(vec![user("uuid", &[("given_name", "x")], true)]);
        hot.username_attributes = vec!["email".into()];
        let d = diff_pools(&hot, &pool(vec![]), DeletionPolicy::default());
        assert!(d.users.is_empty());
        assert_eq!(d.uncopyable.get("uuid"), Some(&Uncopyable::NoSignInKey));
    }

    #[test]
    fn groups_are_created_and_memberships_added_and_removed() {
        let mut hot = pool(vec![user("a", &[], true), user("b", &[], true)]);
        hot.groups = vec![group("admins"), group("viewers")];
        hot.members.insert("admins".into(), ["a".to_owned()].into());
        hot.members
            .insert("viewers".into(), ["a".to_owned(), "b".to_owned()].into());
        let mut cold = pool(vec![user("a", &[], true), user("b", &[], true)]);
        cold.groups = vec![group("viewers"), group("cold-only")];
        cold.members
            .insert("viewers".into(), ["b".to_owned()].into());
        cold.members
            .insert("admins".into(), ["b".to_owned()].into());
        let d = diff_pools(&hot, &cold, DeletionPolicy::default());
        assert_eq!(d.create_groups, vec!["admins".to_owned()]);
        assert!(d.users.is_empty());
        assert_eq!(
            d.memberships,
            vec![
                MembershipChange::Add {
                    group: "admins".into(),
                    username: "a".into()
                },
                MembershipChange::Remove {
                    group: "admins".into(),
                    username: "b".into()
                },
                MembershipChange::Add {
                    group: "viewers".into(),
                    username: "a".into()
                },
            ]
        );
    }

    #[test]
    fn uncopyable_users_get_no_membership() {
        let mut hot = pool(vec![user("a", &[("custom:nope", "1")], true)]);
        hot.groups = vec![group("g")];
        hot.members.insert("g".into(), ["a".to_owned()].into());
        let d = diff_pools(&hot, &pool(vec![]), DeletionPolicy::default());
        assert!(d.memberships.is_empty());
        assert!(d.uncopyable.contains_key("a"));
        assert_eq!(d.create_groups, vec!["g".to_owned()]);
    }

    #[test]
    fn deletions_are_off_by_default() {
        let d = diff_pools(
            &pool(vec![user("a", &[], true)]),
            &pool(vec![user("a", &[], true), user("gone", &[], true)]),
            DeletionPolicy::default(),
        );
        assert_eq!(d.deletions, DeletionPlan::Kept { count: 1 });
    }

    #[test]
    fn deletions_within_the_fraction_are_planned_beyond_it_nothing_is_deleted() {
        let on = |f| DeletionPolicy {
            delete_missing: true,
            max_delete_fraction: f,
        };
        assert_eq!(plan_deletions(vec![], 10, on(0.1)), DeletionPlan::None);
        assert_eq!(
            plan_deletions(vec!["x".into()], 10, on(0.1)),
            DeletionPlan::Delete {
                usernames: vec!["x".into()]
            }
        );
        assert_eq!(
            plan_deletions(vec!["x".into(), "y".into()], 10, on(0.1)),
            DeletionPlan::Guarded {
                would_delete: 2,
                cold_users: 10,
                max_delete_fraction: 0.1
            }
        );
        // An empty hot listing would delete the whole cold pool: refused.
        let d = diff_pools(
            &pool(vec![]),
            &pool(vec![user("a", &[], true), user("b", &[], true)]),
            on(0.5),
        );
        assert!(matches!(
            d.deletions,
            DeletionPlan::Guarded {
                would_delete: 2,
                ..
            }
        ));
        // A fraction of 1 allows emptying the pool (explicit operator choice).
        assert!(matches!(
            plan_deletions(vec!["a".into()], 1, on(1.0)),
            DeletionPlan::Delete { .. }
        ));
        assert!(matches!(
            plan_deletions(vec!["a".into()], 0, on(0.0)),
            DeletionPlan::Guarded { .. }
        ));
    }

    #[test]
    fn identical_pools_have_an_empty_diff() {
        let users = vec![
            user("a", &[("email", "a@x"), ("custom:tenant", "t")], true),
            user("b", &[("email", "b@x")], false),
        ];
        let mut hot = pool(users.clone());
        hot.groups = vec![group("g")];
        hot.members.insert("g".into(), ["a".to_owned()].into());
        let cold = hot.clone();
        let d = diff_pools(&hot, &cold, DeletionPolicy::default());
        assert!(d.create_groups.is_empty());
        assert!(d.users.is_empty());
        assert!(d.memberships.is_empty());
        assert_eq!(d.deletions, DeletionPlan::None);
        assert_eq!(d.drift(), 0);
    }
}
