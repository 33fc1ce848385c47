//! Cognito adapter (`UserDirectory`) against moto (replicas from failoverd's extension).

use crate::support;

use std::collections::{BTreeMap, BTreeSet};

use crate::support::moto::MotoServer;
use crate::support::{COLD, HOT};
use aws_sdk_cognitoidentityprovider::types as sdk;
use failoverd::aws::{CognitoDirectory, ErrorKind};
use failoverd::cognito::{
    Group, NewUser, ReplicaRole, ReplicaStatus, User, UserDirectory, MAX_PAGE_SIZE,
};

async fn raw_client(moto: &MotoServer) -> aws_sdk_cognitoidentityprovider::Client {
    aws_sdk_cognitoidentityprovider::Client::new(
        &support::raw_config(&moto.endpoint_url(), HOT).await,
    )
}

async fn create_pool(moto: &MotoServer, name: &str) -> String {
    let output = raw_client(moto)
        .await
        .create_user_pool()
        .pool_name(name)
        // AWS lists every standard attribute in the pool's schema; moto only the ones declared.
        .schema(
            sdk::SchemaAttributeType::builder()
                .name("email")
                .attribute_data_type(sdk::AttributeDataType::String)
                .mutable(true)
                .build(),
        )
        .schema(
            sdk::SchemaAttributeType::builder()
                .name("tenant")
                .attribute_data_type(sdk::AttributeDataType::String)
                .mutable(true)
                .build(),
        )
        .send()
        .await
        .expect("create user pool");
    output
        .user_pool()
        .and_then(|p| p.id())
        .expect("pool id")
        .to_owned()
}

async fn directory(moto: &MotoServer) -> CognitoDirectory {
    support::clients(&support::settings(&moto.endpoint_url()))
        .await
        .region(HOT)
        .expect("hot")
        .user_directory()
}

fn attributes(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn all_users(dir: &CognitoDirectory, pool: &str) -> (Vec<User>, usize) {
    let mut users = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = dir
            .list_users(pool, token.as_deref())
            .await
            .expect("list users");
        pages += 1;
        assert!(page.items.len() <= MAX_PAGE_SIZE as usize);
        users.extend(page.items);
        match page.next_token {
            Some(next) => token = Some(next),
            None => return (users, pages),
        }
    }
}

#[tokio::test]
async fn describe_pool_reports_writable_attributes() {
    let moto = MotoServer::start().await;
    let pool = create_pool(&moto, "hot-pool").await;
    let dir = directory(&moto).await;
    let described = dir.describe_pool(&pool).await.expect("describe pool");
    assert_eq!(described.id, pool);
    assert_eq!(described.name.as_deref(), Some("hot-pool"));
    assert!(described.arn.as_deref().is_some_and(|a| a.ends_with(&pool)));
    assert!(
        described
            .mutable_attributes
            .iter()
            .any(|a| a == "custom:tenant"),
        "{:?}",
        described.mutable_attributes
    );
    assert!(
        described.mutable_attributes.iter().any(|a| a == "email"),
        "{:?}",
        described.mutable_attributes
    );
    assert!(
        !described.mutable_attributes.iter().any(|a| a == "sub"),
        "sub is read-only"
    );
}

#[tokio::test]
async fn users_are_created_updated_disabled_enabled_and_deleted() {
    let moto = MotoServer::start().await;
    let pool = create_pool(&moto, "cold-pool").await;
    let dir = directory(&moto).await;

    let created = dir
        .create_user(
            &pool,
            &NewUser {
                username: "alice".into(),
                attributes: attributes(&[("email", "alice@example.com"), ("custom:tenant", "t1")]),
            },
        )
        .await
        .expect("create user");
    assert_eq!(created.username, "alice");
    assert!(created.enabled);
    assert_eq!(
        created.attributes.get("email").map(String::as_str),
        Some("alice@example.com")
    );
    assert_eq!(created.status.as_deref(), Some("FORCE_CHANGE_PASSWORD"));

    dir.update_user_attributes(&pool, "alice", &attributes(&[("custom:tenant", "t2")]))
        .await
        .expect("update attributes");
    dir.disable_user(&pool, "alice").await.expect("disable");
    let (users, _) = all_users(&dir, &pool).await;
    let alice = users
        .iter()
        .find(|u| u.username == "alice")
        .expect("alice listed");
    assert!(!alice.enabled);
    assert_eq!(
        alice.attributes.get("custom:tenant").map(String::as_str),
        Some("t2")
    );

    dir.enable_user(&pool, "alice").await.expect("enable");
    let (users, _) = all_users(&dir, &pool).await;
    assert!(users.iter().any(|u| u.username == "alice" && u.enabled));

    dir.delete_user(&pool, "alice").await.expect("delete");
    let (users, _) = all_users(&dir, &pool).await;
    assert!(users.is_empty(), "{users:?}");
}

#[tokio::test]
async fn creating_a_user_twice_is_a_non_retryable_error() {
    let moto = MotoServer::start().await;
    let pool = create_pool(&moto, "pool").await;
    let dir = directory(&moto).await;
    let bob = NewUser {
        username: "bob".into(),
        attributes: BTreeMap::new(),
    };
    dir.create_user(&pool, &bob).await.expect("first create");
    let err = dir.create_user(&pool, &bob).await.expect_err("duplicate");
    assert_eq!(
        err.code.as_deref(),
        Some("UsernameExistsException"),
        "{err}"
    );
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn list_users_pages_60_at_a_time() {
    let moto = MotoServer::start().await;
    let pool = create_pool(&moto, "big-pool").await;
    let raw = raw_client(&moto).await;
    for i in 0..130 {
        raw.admin_create_user()
            .user_pool_id(&pool)
            .username(format!("user-{i:03}"))
            .message_action(sdk::MessageActionType::Suppress)
            .send()
            .await
            .expect("seed user");
    }
    let dir = directory(&moto).await;
    let first = dir.list_users(&pool, None).await.expect("first page");
    assert_eq!(first.items.len(), 60);
    assert!(first.next_token.is_some());

    let (users, pages) = all_users(&dir, &pool).await;
    assert_eq!(pages, 3, "60 + 60 + 10");
    let names: BTreeSet<_> = users.iter().map(|u| u.username.clone()).collect();
    assert_eq!(names.len(), 130, "every user exactly once");
    assert!(names.contains("user-000") && names.contains("user-129"));
}

#[tokio::test]
async fn groups_and_memberships() {
    let moto = MotoServer::start().await;
    let pool = create_pool(&moto, "pool").await;
    let dir = directory(&moto).await;
    let admins = Group {
        name: "admins".into(),
        description: Some("operators".into()),
        precedence: Some(1),
        role_arn: None,
    };
    dir.create_group(&pool, &admins)
        .await
        .expect("create group");
    dir.create_group(
        &pool,
        &Group {
            name: "readers".into(),
            description: None,
            precedence: None,
            role_arn: None,
        },
    )
    .await
    .expect("create group");
    for name in ["carol", "dave"] {
        dir.create_user(
            &pool,
            &NewUser {
                username: name.into(),
                attributes: BTreeMap::new(),
            },
        )
        .await
        .expect("create user");
        dir.add_user_to_group(&pool, name, "admins")
            .await
            .expect("add to group");
    }

    let groups = dir.list_groups(&pool, None).await.expect("list groups");
    assert_eq!(groups.next_token, None);
    let listed = groups
        .items
        .iter()
        .find(|g| g.name == "admins")
        .expect("admins listed");
    assert_eq!(listed, &admins);
    assert_eq!(groups.items.len(), 2);

    let members = dir
        .list_users_in_group(&pool, "admins", None)
        .await
        .expect("members");
    let names: BTreeSet<_> = members.items.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["carol", "dave"]));

    dir.remove_user_from_group(&pool, "dave", "admins")
        .await
        .expect("remove from group");
    let members = dir
        .list_users_in_group(&pool, "admins", None)
        .await
        .expect("members");
    assert_eq!(
        members
            .items
            .iter()
            .map(|u| u.username.as_str())
            .collect::<Vec<_>>(),
        ["carol"]
    );
}

#[tokio::test]
async fn user_pool_replicas_are_listed() {
    let moto = MotoServer::start().await;
    let pool = create_pool(&moto, "replicated").await;
    raw_client(&moto)
        .await
        .create_user_pool_replica()
        .user_pool_id(&pool)
        .region_name(COLD)
        .send()
        .await
        .expect("create replica");
    let dir = directory(&moto).await;
    let page = dir
        .list_user_pool_replicas(&pool, None)
        .await
        .expect("list replicas");
    assert_eq!(page.next_token, None);
    let primary = page
        .items
        .iter()
        .find(|r| r.role == Some(ReplicaRole::Primary))
        .expect("primary");
    assert_eq!(primary.region.as_deref(), Some(HOT));
    let secondary = page
        .items
        .iter()
        .find(|r| r.role == Some(ReplicaRole::Secondary))
        .expect("secondary");
    assert_eq!(secondary.region.as_deref(), Some(COLD));
    assert_eq!(secondary.status, Some(ReplicaStatus::Active));
}

#[tokio::test]
async fn missing_pools_users_and_groups_are_not_found() {
    let moto = MotoServer::start().await;
    let pool = create_pool(&moto, "pool").await;
    let dir = directory(&moto).await;
    let missing_pool = format!("{HOT}_NoSuchPool");

    let err = dir.describe_pool(&missing_pool).await.expect_err("no pool");
    assert_eq!(
        (err.kind, err.code.as_deref()),
        (ErrorKind::NotFound, Some("ResourceNotFoundException")),
        "{err}"
    );
    let err = dir
        .list_users(&missing_pool, None)
        .await
        .expect_err("no pool");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    let err = dir
        .list_groups(&missing_pool, None)
        .await
        .expect_err("no pool");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    let err = dir
        .list_user_pool_replicas(&missing_pool, None)
        .await
        .expect_err("no pool");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    let err = dir
        .create_user(
            &missing_pool,
            &NewUser {
                username: "x".into(),
                attributes: BTreeMap::new(),
            },
        )
        .await
        .expect_err("no pool");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    let err = dir
        .create_group(
            &missing_pool,
            &Group {
                name: "g".into(),
                description: None,
                precedence: None,
                role_arn: None,
            },
        )
        .await
        .expect_err("no pool");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");

    let err = dir
        .list_users_in_group(&pool, "no-such-group", None)
        .await
        .expect_err("no group");
    assert_eq!(
        (err.kind, err.code.as_deref()),
        (ErrorKind::NotFound, Some("ResourceNotFoundException")),
        "{err}"
    );

    for result in [
        dir.update_user_attributes(&pool, "ghost", &attributes(&[("email", "g@example.com")]))
            .await,
        dir.enable_user(&pool, "ghost").await,
        dir.disable_user(&pool, "ghost").await,
        dir.delete_user(&pool, "ghost").await,
        dir.add_user_to_group(&pool, "ghost", "admins").await,
        dir.remove_user_from_group(&pool, "ghost", "admins").await,
    ] {
        let err = result.expect_err("no such user");
        assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
        assert!(
            matches!(
                err.code.as_deref(),
                Some("UserNotFoundException" | "ResourceNotFoundException")
            ),
            "{err}"
        );
    }
}
