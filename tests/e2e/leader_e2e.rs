//! Only the leader acts: two real daemons on one state directory, each talking to moto through
//! its own request-logging proxy, so every AWS call is attributed to the daemon that made it.
//! The first to start leads and copies the Cognito users; the second is a follower: it reads
//! (health, lag, topology) but its request log holds no write, and its policy holds with
//! `not_leader`. Killed with SIGKILL, the leader's
//! lock is released by the kernel; the follower takes over and its own writes begin.

use std::time::Duration;

use crate::lab_support::{
    lab_config, pool_users, with_health_and_policy, Api, Clusters, Endpoint, COLD_POOL, LAB_USERS,
};
use crate::support::fault_proxy::FaultProxy;
use crate::support::harness::Daemon;
use crate::support::{COLD, HOT};
use failoverd::cognito::port::{NewUser, UserDirectory};

const HOT_POOL: &str = "us-east-1_d57537c26359491382932a8d2535e97c";

const POLICY_OFF: &str =
    "  mode: 'off'\n  plan: failover\n  min_unhealthy_for: 1s\n  cooldown: 1h\n  max_data_loss: 1m\n";

/// The AWS operations in a request log that change something: everything but the reads
/// (`Get…`, `List…`, `Describe…`, `AdminGet…`, `AdminList…`) and requests whose operation the
/// proxy cannot name (Backup's REST reads).
fn writes(log: &[String]) -> Vec<String> {
    log.iter()
        .filter(|entry| {
            let action = entry.split_once(':').map_or("?", |(_, a)| a);
            let read = ["Get", "List", "Describe", "AdminGet", "AdminList"]
                .iter()
                .any(|p| action.starts_with(p));
            action != "?" && !read
        })
        .cloned()
        .collect()
}

fn count(log: &[String], action: &str) -> usize {
    log.iter()
        .filter(|e| e.ends_with(&format!(":{action}")))
        .count()
}

#[test]
fn two_daemons_on_one_state_dir_only_the_leader_writes() {
    let rt = crate::lab_support::runtime();
    let bed = rt.block_on(crate::support::TestBed::start());
    rt.block_on(crate::lab_support::seed(&bed));
    let (proxy_a, proxy_b) = rt.block_on(async {
        (
            FaultProxy::start(bed.moto.addr()).await,
            FaultProxy::start(bed.moto.addr()).await,
        )
    });
    let hot = Endpoint::start(&rt);
    let cold = Endpoint::start(&rt);
    let clusters = rt.block_on(Clusters::start());
    let shared = tempfile::tempdir().unwrap();
    let config = |endpoint: &str| {
        let base = with_health_and_policy(
            &lab_config(endpoint, &clusters),
            hot.addr,
            cold.addr,
            POLICY_OFF,
        );
        let text = base
            .replace("dir: state", &format!("dir: {}", shared.path().display()))
            .replace(
                "  interval: 1m\n  delete_missing",
                "  interval: 1s\n  delete_missing",
            );
        assert!(
            text.contains("interval: 1s\n  delete_missing"),
            "cognito interval set"
        );
        text
    };
    assert_eq!(
        pool_users(&rt, &bed.moto.endpoint_url(), COLD, COLD_POOL),
        0
    );

    let a = Daemon::start(&config(&proxy_a.endpoint_url()));
    let api_a = Api { d: &a, rt: &rt };
    api_a.wait_status("the first daemon to lead", 60, |s| {
        s["engine"]["leader"] == true
    });
    let b = Daemon::start(&config(&proxy_b.endpoint_url()));
    let api_b = Api { d: &b, rt: &rt };
    api_b.wait_status("the second daemon to know it follows", 60, |s| {
        s["engine"]["leader"] == false
            && s["cognito"]["leader"] == false
            && s["policy"]["last_decision"]["reason"] == "not_leader"
    });
    api_a.wait_status("the leader's policy to decide on its own facts", 30, |s| {
        s["policy"]["last_decision"]["reason"].is_string()
            && s["policy"]["last_decision"]["reason"] != "not_leader"
    });
    // The leader copies every user; the follower meanwhile makes its own reads.
    api_a.wait_status("the leader's first Cognito pass", 120, |s| {
        s["cognito"]["last_success_at"].is_string()
    });
    assert_eq!(
        pool_users(&rt, &bed.moto.endpoint_url(), COLD, COLD_POOL),
        LAB_USERS
    );
    std::thread::sleep(Duration::from_secs(3));
    let log_a = proxy_a.forwarded_actions();
    let log_b = proxy_b.forwarded_actions();
    let status_b = api_b.get("/v1/status");
    println!(
        "leader: {} requests ({} writes); follower: {} requests ({} writes)",
        log_a.len(),
        writes(&log_a).len(),
        log_b.len(),
        writes(&log_b).len()
    );
    assert_eq!(
        count(&log_a, "AdminCreateUser"),
        LAB_USERS,
        "the leader created each user once"
    );
    assert!(
        log_b.len() > 10,
        "the follower runs its read-only components: {log_b:?}"
    );
    assert_eq!(
        writes(&log_b),
        Vec::<String>::new(),
        "the follower wrote nothing"
    );
    assert!(
        status_b["cognito"]["last_attempt_at"].is_null(),
        "{:#}",
        status_b["cognito"]
    );

    // The leader dies; the follower takes over and its Cognito sync starts writing.
    let _a_dir = a.kill9();
    api_b.wait_status("the follower to lead", 60, |s| {
        s["engine"]["leader"] == true && s["cognito"]["leader"] == true
    });
    rt.block_on(async {
        let clients =
            crate::support::clients(&crate::support::settings(&bed.moto.endpoint_url())).await;
        clients
            .region(HOT)
            .unwrap()
            .user_directory()
            .create_user(
                HOT_POOL,
                &NewUser {
                    username: "created-after-the-handover".to_owned(),
                    attributes: [("email".to_owned(), "late@example.com".to_owned())].into(),
                },
            )
            .await
            .unwrap();
    });
    api_b.wait("the new leader to copy the new user", 120, || {
        (pool_users(&rt, &bed.moto.endpoint_url(), COLD, COLD_POOL) == LAB_USERS + 1).then_some(())
    });
    let log_b = proxy_b.forwarded_actions();
    assert_eq!(
        count(&log_b, "AdminCreateUser"),
        1,
        "the new leader created only the new user: {:?}",
        writes(&log_b)
    );
    assert_eq!(
        count(&proxy_a.forwarded_actions(), "AdminCreateUser"),
        LAB_USERS,
        "nothing more from the dead leader"
    );
    drop(b);
}
