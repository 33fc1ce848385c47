//! RDS adapter (`GlobalDatabaseApi`) against moto and failoverd's extension (switchover and
//! failover come from the extension; moto 5.2.5 lacks them).

use crate::support;

use crate::support::moto::MotoServer;
use crate::support::{COLD, HOT};
use failoverd::aws::ErrorKind;
use failoverd::replication::GlobalDatabaseApi;

const ENGINE: &str = "aurora-postgresql";
const ENGINE_VERSION: &str = "16.4";
const GLOBAL: &str = "app-global";

/// An Aurora global database: writer `app-hot` in HOT, secondary `app-cold` in COLD.
struct World {
    hot_arn: String,
    cold_arn: String,
}

async fn seed_global_database(moto: &MotoServer) -> World {
    let hot = aws_sdk_rds::Client::new(&support::raw_config(&moto.endpoint_url(), HOT).await);
    let cold = aws_sdk_rds::Client::new(&support::raw_config(&moto.endpoint_url(), COLD).await);
    let writer = hot
        .create_db_cluster()
        .db_cluster_identifier("app-hot")
        .engine(ENGINE)
        .engine_version(ENGINE_VERSION)
        .master_username("failoverd")
        .master_user_password("not-a-secret-password")
        .storage_encrypted(true)
        .send()
        .await
        .expect("create writer cluster");
    let hot_arn = writer
        .db_cluster()
        .and_then(|c| c.db_cluster_arn())
        .expect("writer ARN")
        .to_owned();
    hot.create_db_instance()
        .db_instance_identifier("app-hot-1")
        .db_cluster_identifier("app-hot")
        .engine(ENGINE)
        .db_instance_class("db.r6g.large")
        .send()
        .await
        .expect("create writer instance");
    hot.create_global_cluster()
        .global_cluster_identifier(GLOBAL)
        .source_db_cluster_identifier(&hot_arn)
        .send()
        .await
        .expect("create global cluster");
    let secondary = cold
        .create_db_cluster()
        .db_cluster_identifier("app-cold")
        .engine(ENGINE)
        .engine_version(ENGINE_VERSION)
        .global_cluster_identifier(GLOBAL)
        .storage_encrypted(true)
        .send()
        .await
        .expect("create secondary cluster");
    let cold_arn = secondary
        .db_cluster()
        .and_then(|c| c.db_cluster_arn())
        .expect("secondary ARN")
        .to_owned();
    cold.create_db_instance()
        .db_instance_identifier("app-cold-1")
        .db_cluster_identifier("app-cold")
        .engine(ENGINE)
        .db_instance_class("db.r6g.large")
        .send()
        .await
        .expect("create secondary instance");
    World { hot_arn, cold_arn }
}

#[tokio::test]
async fn global_cluster_shows_members_and_writer_region() {
    let moto = MotoServer::start().await;
    let world = seed_global_database(&moto).await;
    let clients = support::clients(&support::settings(&moto.endpoint_url())).await;

    // Both regions see the same topology.
    for region in [HOT, COLD] {
        let rds = clients
            .region(region)
            .expect("region clients")
            .global_database();
        let global = rds
            .describe_global_cluster(GLOBAL)
            .await
            .expect("describe global cluster");
        assert_eq!(global.id, GLOBAL);
        assert_eq!(global.status.as_deref(), Some("available"));
        assert_eq!(global.engine.as_deref(), Some(ENGINE));
        assert_eq!(global.members.len(), 2, "{global:#?}");
        assert_eq!(global.writer_region(), Some(HOT), "{global:#?}");
        let writer = global.writer().expect("writer");
        assert_eq!(writer.db_cluster_arn, world.hot_arn);
        let secondary = global.member_in(COLD).expect("cold member");
        assert!(!secondary.is_writer);
        assert_eq!(secondary.db_cluster_arn, world.cold_arn);
    }
}

#[tokio::test]
async fn db_clusters_are_described_per_region() {
    let moto = MotoServer::start().await;
    let world = seed_global_database(&moto).await;
    let clients = support::clients(&support::settings(&moto.endpoint_url())).await;
    let cold = clients.region(COLD).expect("cold").global_database();

    let cluster = cold
        .describe_db_cluster("app-cold")
        .await
        .expect("describe app-cold");
    assert_eq!(cluster.id, "app-cold");
    assert_eq!(cluster.arn.as_deref(), Some(world.cold_arn.as_str()));
    assert_eq!(cluster.engine.as_deref(), Some(ENGINE));
    assert_eq!(cluster.global_cluster_id.as_deref(), Some(GLOBAL));
    assert_eq!(cluster.instances.len(), 1, "{cluster:#?}");
    assert!(
        cluster.instances.iter().all(|i| !i.is_writer),
        "a secondary has no writer instance: {cluster:#?}"
    );

    let all = cold.describe_db_clusters().await.expect("describe all");
    assert_eq!(
        all.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["app-cold"]
    );
    let hot_all = clients
        .region(HOT)
        .expect("hot")
        .global_database()
        .describe_db_clusters()
        .await
        .expect("describe all");
    assert_eq!(hot_all.len(), 1);
    assert!(hot_all[0].instances.iter().any(|i| i.is_writer));
}

#[tokio::test]
async fn switchover_moves_the_writer_to_the_target() {
    let moto = MotoServer::start().await;
    let world = seed_global_database(&moto).await;
    let clients = support::clients(&support::settings(&moto.endpoint_url())).await;
    let rds = clients.region(COLD).expect("cold").global_database();

    rds.switchover_global_cluster(GLOBAL, &world.cold_arn)
        .await
        .expect("switchover");
    let global = rds.describe_global_cluster(GLOBAL).await.expect("describe");
    assert_eq!(global.writer_region(), Some(COLD), "{global:#?}");
    assert_eq!(global.status.as_deref(), Some("available"));

    // Switching over to the member that already is the writer is refused by RDS.
    let err = rds
        .switchover_global_cluster(GLOBAL, &world.cold_arn)
        .await
        .expect_err("already the writer");
    assert_eq!(err.kind, ErrorKind::Invalid, "{err}");
    assert_eq!(err.code.as_deref(), Some("InvalidGlobalClusterStateFault"));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn failover_with_data_loss_promotes_the_target() {
    let moto = MotoServer::start().await;
    let world = seed_global_database(&moto).await;
    let clients = support::clients(&support::settings(&moto.endpoint_url())).await;
    let rds = clients.region(COLD).expect("cold").global_database();

    let result = rds
        .failover_global_cluster_allow_data_loss(GLOBAL, &world.cold_arn)
        .await
        .expect("failover");
    assert_eq!(result.id, GLOBAL);
    let global = rds.describe_global_cluster(GLOBAL).await.expect("describe");
    assert_eq!(global.writer_region(), Some(COLD), "{global:#?}");
    assert_eq!(
        global.writer().map(|w| w.db_cluster_arn.as_str()),
        Some(world.cold_arn.as_str())
    );
}

// The daemon detaches the secondary from the secondary's region (the hot one may be gone), as in
// AWS's own example. moto 5.2.5 keeps a global cluster only in the region that created it and its
// RemoveFromGlobalCluster silently does nothing for a member in another region, so this needs the
// test bed's extension to make RemoveFromGlobalCluster cross-region like DescribeGlobalClusters.
#[tokio::test]
async fn remove_from_global_cluster_detaches_the_member() {
    let moto = MotoServer::start().await;
    let world = seed_global_database(&moto).await;
    let clients = support::clients(&support::settings(&moto.endpoint_url())).await;
    let rds = clients.region(COLD).expect("cold").global_database();

    rds.remove_from_global_cluster(GLOBAL, &world.cold_arn)
        .await
        .expect("remove from global cluster");
    let global = rds.describe_global_cluster(GLOBAL).await.expect("describe");
    assert!(global.member_in(COLD).is_none(), "{global:#?}");
    assert_eq!(global.writer_region(), Some(HOT));
}

#[tokio::test]
async fn missing_resources_are_not_found() {
    let moto = MotoServer::start().await;
    let world = seed_global_database(&moto).await;
    let clients = support::clients(&support::settings(&moto.endpoint_url())).await;
    let rds = clients.region(COLD).expect("cold").global_database();

    let err = rds
        .describe_global_cluster("no-such-global")
        .await
        .expect_err("unknown global cluster");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert_eq!(err.code.as_deref(), Some("GlobalClusterNotFoundFault"));

    let err = rds
        .describe_db_cluster("no-such-cluster")
        .await
        .expect_err("unknown cluster");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert_eq!(err.code.as_deref(), Some("DBClusterNotFoundFault"));

    let err = rds
        .switchover_global_cluster("no-such-global", &world.cold_arn)
        .await
        .expect_err("unknown global cluster");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert_eq!(err.code.as_deref(), Some("GlobalClusterNotFoundFault"));

    let missing_arn = format!(
        "arn:aws:rds:{COLD}:{}:cluster:no-such-cluster",
        support::ACCOUNT
    );
    let err = rds
        .failover_global_cluster_allow_data_loss(GLOBAL, &missing_arn)
        .await
        .expect_err("unknown target");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert_eq!(err.code.as_deref(), Some("DBClusterNotFoundFault"));

    let err = rds
        .remove_from_global_cluster("no-such-global", &world.cold_arn)
        .await
        .expect_err("unknown global cluster");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert_eq!(err.code.as_deref(), Some("GlobalClusterNotFoundFault"));
}
