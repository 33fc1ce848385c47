//! The pure DNS stage planner: weighted and failover records, every stage's exact routing, the
//! change batches, and every unsafe shape it refuses.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{
    active_region, changes_to, check_not_all_zero, check_stages, current_routing, diff_lines,
    is_applied, max_ttl, plan_switchover, share_of, stage_routing, LiveRecords, ManagedRouting,
    PlanRefused, Role, SetRouting,
};
use crate::config::{
    DnsConfig, DnsRecordConfig, Duration as CfgDuration, HostedZoneConfig, RoutingPolicy,
};
use crate::dns::{ChangeAction, FailoverRole, RecordSet, RecordTarget, RecordType, Routing};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";

fn regions() -> crate::topology::RegionPair {
    crate::topology::RegionPair::new(EAST, WEST)
}

fn record(zone: &str, name: &str, kind: &str, routing: RoutingPolicy) -> DnsRecordConfig {
    DnsRecordConfig {
        zone: zone.into(),
        name: name.into(),
        record_type: kind.into(),
        routing,
        set_identifiers: BTreeMap::from([
            (EAST.into(), "east".into()),
            (WEST.into(), "west".into()),
        ]),
    }
}

fn config(records: Vec<DnsRecordConfig>) -> DnsConfig {
    DnsConfig {
        zones: vec![
            HostedZoneConfig {
                name: "main".into(),
                id: "Z1".into(),
            },
            HostedZoneConfig {
                name: "other".into(),
                id: "Z2".into(),
            },
        ],
        records,
        stages: vec![10, 50, 100],
        hold: CfgDuration::from_secs(0),
        wait_ttl_after_insync: false,
        verify_probes: vec![],
        mode: Default::default(),
        data_plane: None,
    }
}

fn set(name: &str, kind: &str, id: &str, routing: Routing, ip: &str) -> RecordSet {
    RecordSet {
        name: name.into(),
        record_type: RecordType::parse(kind),
        set_identifier: Some(id.into()),
        routing,
        target: RecordTarget::Values {
            ttl: Duration::from_secs(30),
            values: vec![ip.into()],
        },
        health_check_id: None,
    }
}

fn weighted(name: &str, id: &str, weight: u8) -> RecordSet {
    set(name, "A", id, Routing::Weighted { weight }, "192.0.2.1")
}

fn failover(name: &str, id: &str, role: FailoverRole) -> RecordSet {
    set(name, "A", id, Routing::Failover(role), "192.0.2.1")
}

fn live(zones: Vec<(&str, Vec<RecordSet>)>) -> LiveRecords {
    zones
        .into_iter()
        .map(|(z, sets)| (z.to_owned(), sets))
        .collect()
}

/// `(set_identifier, routing)` of every set, in plan order.
fn weights(sets: &[SetRouting]) -> Vec<(String, ManagedRouting)> {
    sets.iter()
        .map(|s| (s.set_identifier.clone(), s.routing))
        .collect()
}

fn w(id: &str, weight: u8) -> (String, ManagedRouting) {
    (id.to_owned(), ManagedRouting::Weighted { weight })
}

fn role(id: &str, role: Role) -> (String, ManagedRouting) {
    (id.to_owned(), ManagedRouting::Failover { role })
}

fn app() -> DnsConfig {
    config(vec![record(
        "main",
        "app.example.com.",
        "A",
        RoutingPolicy::Weighted,
    )])
}

fn app_live(east: u8, west: u8) -> LiveRecords {
    live(vec![(
        "Z1",
        vec![
            weighted("app.example.com.", "east", east),
            weighted("app.example.com.", "west", west),
        ],
    )])
}

#[test]
fn weighted_stages_send_exactly_the_stage_share_to_the_target() {
    let plan =
        plan_switchover(&app(), &regions(), &app_live(100, 0), WEST, &[10, 50, 100]).expect("plan");
    assert_eq!(plan.target_region, WEST);
    assert_eq!(weights(&plan.original), vec![w("east", 100), w("west", 0)]);
    let per_stage: Vec<_> = plan
        .stages
        .iter()
        .map(|s| (s.percent, weights(&s.sets)))
        .collect();
    assert_eq!(
        per_stage,
        vec![
            (10, vec![w("east", 90), w("west", 10)]),
            (50, vec![w("east", 50), w("west", 50)]),
            (100, vec![w("east", 0), w("west", 100)]),
        ]
    );
}

#[test]
fn the_reverse_switchover_mirrors_it() {
    let plan =
        plan_switchover(&app(), &regions(), &app_live(0, 100), EAST, &[10, 50, 100]).expect("plan");
    let last: Vec<_> = plan.stages.iter().map(|s| weights(&s.sets)).collect();
    assert_eq!(
        last,
        vec![
            vec![w("east", 10), w("west", 90)],
            vec![w("east", 50), w("west", 50)],
            vec![w("east", 100), w("west", 0)],
        ]
    );
}

#[test]
fn every_stage_list_shape_gives_monotonic_shares_summing_to_100() {
    for stages in [
        vec![100],
        vec![1, 100],
        vec![25, 50, 75, 100],
        vec![10, 50, 100],
    ] {
        let plan =
            plan_switchover(&app(), &regions(), &app_live(100, 0), WEST, &stages).expect("plan");
        let mut previous = 0;
        for (stage, percent) in plan.stages.iter().zip(&stages) {
            let share = share_of(&stage.sets, WEST);
            assert_eq!(share, *percent, "{stages:?}");
            assert!(share >= previous);
            previous = share;
            let total: u32 = stage
                .sets
                .iter()
                .map(|s| match s.routing {
                    ManagedRouting::Weighted { weight } => u32::from(weight),
                    ManagedRouting::Failover { .. } => 0,
                })
                .sum();
            assert_eq!(total, 100, "{stages:?}");
        }
    }
}

#[test]
fn traffic_already_at_the_target_is_never_moved_back() {
    // 70 % already goes to the target: the 10 and 50 stages leave the record alone.
    let plan =
        plan_switchover(&app(), &regions(), &app_live(30, 70), WEST, &[10, 50, 100]).expect("plan");
    assert_eq!(
        weights(&plan.stages[0].sets),
        vec![w("east", 30), w("west", 70)]
    );
    assert_eq!(
        weights(&plan.stages[1].sets),
        vec![w("east", 30), w("west", 70)]
    );
    assert_eq!(
        weights(&plan.stages[2].sets),
        vec![w("east", 0), w("west", 100)]
    );
    // Fully switched already: nothing to write at any stage.
    let done = app_live(0, 100);
    let plan = plan_switchover(&app(), &regions(), &done, WEST, &[10, 50, 100]).expect("plan");
    for stage in &plan.stages {
        assert!(is_applied(&done, &stage.sets).unwrap(), "{stage:?}");
    }
}

#[test]
fn weights_on_another_scale_are_rescaled_to_percent() {
    let plan =
        plan_switchover(&app(), &regions(), &app_live(255, 0), WEST, &[10, 100]).expect("plan");
    assert_eq!(
        weights(&plan.stages[0].sets),
        vec![w("east", 90), w("west", 10)]
    );
    // 200/50 is 20 % to the target: the 10 % stage keeps the original weights untouched.
    let plan =
        plan_switchover(&app(), &regions(), &app_live(200, 50), WEST, &[10, 100]).expect("plan");
    assert_eq!(
        weights(&plan.stages[0].sets),
        vec![w("east", 200), w("west", 50)]
    );
}

#[test]
fn all_zero_weights_count_as_an_even_split() {
    // Route 53 splits evenly when every weight is 0, so the target already has 50 %.
    let original = current_routing(&app(), &regions(), &app_live(0, 0)).unwrap();
    assert_eq!(share_of(&original, WEST), 50);
    let stage = stage_routing(&original, WEST, 10).unwrap();
    assert_eq!(weights(&stage), vec![w("east", 50), w("west", 50)]);
    let stage = stage_routing(&original, WEST, 100).unwrap();
    assert_eq!(weights(&stage), vec![w("east", 0), w("west", 100)]);
}

fn failover_config() -> DnsConfig {
    config(vec![record(
        "main",
        "app.example.com.",
        "A",
        RoutingPolicy::Failover,
    )])
}

#[test]
fn failover_roles_swap_at_the_last_stage_only() {
    let world = live(vec![(
        "Z1",
        vec![
            failover("app.example.com.", "east", FailoverRole::Primary),
            failover("app.example.com.", "west", FailoverRole::Secondary),
        ],
    )]);
    let plan = plan_switchover(&failover_config(), &regions(), &world, WEST, &[10, 50, 100])
        .expect("plan");
    let original = vec![role("east", Role::Primary), role("west", Role::Secondary)];
    assert_eq!(weights(&plan.stages[0].sets), original);
    assert_eq!(weights(&plan.stages[1].sets), original);
    assert_eq!(
        weights(&plan.stages[2].sets),
        vec![role("east", Role::Secondary), role("west", Role::Primary)]
    );
    // Only the last stage writes, and both sets in one batch.
    assert!(is_applied(&world, &plan.stages[1].sets).unwrap());
    let batches = changes_to(&world, &plan.stages[2].sets).unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].changes.len(), 2);
    // Switching to the region that is already PRIMARY changes nothing.
    let plan = plan_switchover(&failover_config(), &regions(), &world, EAST, &[10, 50, 100])
        .expect("plan");
    assert!(plan
        .stages
        .iter()
        .all(|s| is_applied(&world, &s.sets).unwrap()));
    assert_eq!(active_region(&plan.original, &regions()), Some(EAST.into()));
}

#[test]
fn mixed_records_in_two_zones_give_one_batch_per_zone() {
    let dns = config(vec![
        record("main", "app.example.com.", "A", RoutingPolicy::Weighted),
        record(
            "other",
            "api.example.org.",
            "CNAME",
            RoutingPolicy::Weighted,
        ),
        record("main", "www.example.com.", "A", RoutingPolicy::Failover),
    ]);
    let world = live(vec![
        (
            "Z1",
            vec![
                weighted("app.example.com.", "east", 100),
                weighted("app.example.com.", "west", 0),
                failover("www.example.com.", "east", FailoverRole::Primary),
                failover("www.example.com.", "west", FailoverRole::Secondary),
            ],
        ),
        (
            "Z2",
            vec![
                set(
                    "api.example.org.",
                    "CNAME",
                    "east",
                    Routing::Weighted { weight: 1 },
                    "api.east.example.org.",
                ),
                set(
                    "api.example.org.",
                    "CNAME",
                    "west",
                    Routing::Weighted { weight: 0 },
                    "api.west.example.org.",
                ),
            ],
        ),
    ]);
    let plan = plan_switchover(&dns, &regions(), &world, WEST, &[10, 100]).expect("plan");
    let first = changes_to(&world, &plan.stages[0].sets).unwrap();
    assert_eq!(
        first
            .iter()
            .map(|z| (z.zone_id.as_str(), z.changes.len()))
            .collect::<Vec<_>>(),
        vec![("Z1", 2), ("Z2", 2)],
        "the failover record does not change at 10 %"
    );
    let last = changes_to(&world, &plan.stages[1].sets).unwrap();
    assert_eq!(
        last.iter()
            .map(|z| (z.zone_id.as_str(), z.changes.len()))
            .collect::<Vec<_>>(),
        vec![("Z1", 4), ("Z2", 2)]
    );
    assert!(last
        .iter()
        .flat_map(|z| &z.changes)
        .all(|c| c.action == ChangeAction::Upsert));
    assert_eq!(
        first[0].lines[0],
        "route53 Z1: app.example.com. A [east] weight 100 -> weight 90"
    );
    assert_eq!(
        diff_lines(&plan.original, &plan.stages[1].sets).len(),
        6,
        "every set changes by the last stage"
    );
}

#[test]
fn changes_keep_values_ttl_alias_and_health_check() {
    let mut east = weighted("app.example.com.", "east", 100);
    east.health_check_id = Some("hc-east".into());
    east.target = RecordTarget::Values {
        ttl: Duration::from_secs(120),
        values: vec!["192.0.2.10".into(), "192.0.2.11".into()],
    };
    let mut west = weighted("app.example.com.", "west", 0);
    west.health_check_id = Some("hc-west".into());
    west.target = RecordTarget::Alias {
        hosted_zone_id: "ZELB".into(),
        dns_name: "lb.us-west-2.elb.amazonaws.com.".into(),
        evaluate_target_health: true,
    };
    let world = live(vec![("Z1", vec![east.clone(), west.clone()])]);
    let plan = plan_switchover(&app(), &regions(), &world, WEST, &[50, 100]).unwrap();
    let batch = changes_to(&world, &plan.stages[0].sets).unwrap();
    let written: Vec<&RecordSet> = batch[0].changes.iter().map(|c| &c.record_set).collect();
    assert_eq!(
        written,
        vec![
            &RecordSet {
                routing: Routing::Weighted { weight: 50 },
                ..east
            },
            &RecordSet {
                routing: Routing::Weighted { weight: 50 },
                ..west
            },
        ]
    );
    // The alias counts with Route 53's 60 s.
    assert_eq!(
        max_ttl(&world, &plan.stages[0].sets),
        Duration::from_secs(120)
    );
}

#[test]
fn applied_stages_need_no_write() {
    let world = app_live(90, 10);
    let original = current_routing(&app(), &regions(), &app_live(100, 0)).unwrap();
    let ten = stage_routing(&original, WEST, 10).unwrap();
    assert!(is_applied(&world, &ten).unwrap());
    assert!(changes_to(&world, &ten).unwrap().is_empty());
    let fifty = stage_routing(&original, WEST, 50).unwrap();
    assert!(!is_applied(&world, &fifty).unwrap());
    // Restoring the original from 90/10 is one batch of two UPSERTs.
    let restore = changes_to(&world, &original).unwrap();
    assert_eq!(restore.len(), 1);
    assert_eq!(restore[0].changes.len(), 2);
}

#[test]
fn names_are_matched_the_way_route53_writes_them() {
    let dns = config(vec![record(
        "main",
        "App.Example.com",
        "A",
        RoutingPolicy::Weighted,
    )]);
    let world = live(vec![(
        "Z1",
        vec![
            weighted("app.example.com.", "east", 100),
            weighted("app.example.com.", "west", 0),
        ],
    )]);
    assert!(plan_switchover(&dns, &regions(), &world, WEST, &[100]).is_ok());
    let wildcard = config(vec![record(
        "main",
        "*.example.com.",
        "A",
        RoutingPolicy::Weighted,
    )]);
    let world = live(vec![(
        "Z1",
        vec![
            weighted("\\052.example.com.", "east", 100),
            weighted("\\052.example.com.", "west", 0),
        ],
    )]);
    assert!(plan_switchover(&wildcard, &regions(), &world, WEST, &[100]).is_ok());
}

#[test]
fn the_active_region_is_where_most_traffic_goes() {
    let r = regions();
    let at = |e, w| current_routing(&app(), &r, &app_live(e, w)).unwrap();
    assert_eq!(active_region(&at(100, 0), &r), Some(EAST.into()));
    assert_eq!(active_region(&at(10, 90), &r), Some(WEST.into()));
    assert_eq!(active_region(&at(50, 50), &r), None);
    assert_eq!(active_region(&[], &r), None);
}

// ---------------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------------

fn refusal(dns: &DnsConfig, world: &LiveRecords) -> PlanRefused {
    plan_switchover(dns, &regions(), world, WEST, &[10, 50, 100]).expect_err("must be refused")
}

#[test]
fn a_deleted_set_is_refused_naming_record_and_region() {
    let world = live(vec![(
        "Z1",
        vec![weighted("app.example.com.", "east", 100)],
    )]);
    let err = refusal(&app(), &world);
    assert_eq!(
        err,
        PlanRefused::SetNotFound {
            record: "app.example.com. A".into(),
            region: WEST.into(),
            set_identifier: "west".into(),
            zone_id: "Z1".into(),
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("app.example.com. A") && text.contains(WEST),
        "{text}"
    );
    assert!(text.contains("deleted behind failoverd's back"), "{text}");
}

#[test]
fn a_deleted_record_is_refused() {
    let world = live(vec![(
        "Z1",
        vec![weighted("other.example.com.", "east", 1)],
    )]);
    assert!(matches!(
        refusal(&app(), &world),
        PlanRefused::RecordNotFound { record, zone_id } if record == "app.example.com. A" && zone_id == "Z1"
    ));
    // A zone that lists nothing at all.
    assert!(matches!(
        refusal(&app(), &LiveRecords::new()),
        PlanRefused::RecordNotFound { .. }
    ));
}

#[test]
fn a_region_without_a_set_is_refused() {
    let mut r = record("main", "app.example.com.", "A", RoutingPolicy::Weighted);
    r.set_identifiers.remove(WEST);
    let err = refusal(&config(vec![r]), &app_live(100, 0));
    assert_eq!(
        err,
        PlanRefused::MissingRegion {
            record: "app.example.com. A".into(),
            region: WEST.into()
        }
    );
}

#[test]
fn a_type_mismatch_is_refused() {
    let world = live(vec![(
        "Z1",
        vec![
            weighted("app.example.com.", "east", 100),
            set(
                "app.example.com.",
                "CNAME",
                "west",
                Routing::Weighted { weight: 0 },
                "x.example.com.",
            ),
        ],
    )]);
    assert_eq!(
        refusal(&app(), &world),
        PlanRefused::TypeMismatch {
            record: "app.example.com. A".into(),
            region: WEST.into(),
            set_identifier: "west".into(),
            found: "CNAME".into(),
        }
    );
}

#[test]
fn a_routing_mismatch_is_refused() {
    let world = live(vec![(
        "Z1",
        vec![
            weighted("app.example.com.", "east", 100),
            failover("app.example.com.", "west", FailoverRole::Secondary),
        ],
    )]);
    assert!(matches!(
        refusal(&app(), &world),
        PlanRefused::RoutingMismatch { region, expected, found, .. }
            if region == WEST && expected == "weighted" && found == "failover"
    ));
    let simple = live(vec![(
        "Z1",
        vec![
            set(
                "app.example.com.",
                "A",
                "east",
                Routing::Simple,
                "192.0.2.1",
            ),
            weighted("app.example.com.", "west", 0),
        ],
    )]);
    assert!(matches!(
        refusal(&app(), &simple),
        PlanRefused::RoutingMismatch { region, found, .. } if region == EAST && found == "simple"
    ));
    let latency = live(vec![(
        "Z1",
        vec![
            weighted("app.example.com.", "east", 100),
            set(
                "app.example.com.",
                "A",
                "west",
                Routing::Unmanaged("latency us-west-2".into()),
                "192.0.2.1",
            ),
        ],
    )]);
    assert!(matches!(
        refusal(&app(), &latency),
        PlanRefused::RoutingMismatch { found, .. } if found == "latency us-west-2"
    ));
}

#[test]
fn an_unmanaged_weighted_set_taking_traffic_is_refused() {
    let mut world = app_live(100, 0);
    world
        .get_mut("Z1")
        .unwrap()
        .push(weighted("app.example.com.", "canary", 5));
    assert_eq!(
        refusal(&app(), &world),
        PlanRefused::UnmanagedSet {
            record: "app.example.com. A".into(),
            set_identifier: "canary".into(),
            weight: 5
        }
    );
    // At weight 0 it takes no traffic and is left alone.
    let mut world = app_live(100, 0);
    world
        .get_mut("Z1")
        .unwrap()
        .push(weighted("app.example.com.", "canary", 0));
    assert!(plan_switchover(&app(), &regions(), &world, WEST, &[100]).is_ok());
}

#[test]
fn two_primaries_are_refused() {
    let world = live(vec![(
        "Z1",
        vec![
            failover("app.example.com.", "east", FailoverRole::Primary),
            failover("app.example.com.", "west", FailoverRole::Primary),
        ],
    )]);
    let err = refusal(&failover_config(), &world);
    assert!(matches!(err, PlanRefused::FailoverRoles { .. }), "{err:?}");
    assert!(err.to_string().contains("PRIMARY for us-east-1"), "{err}");
}

#[test]
fn configuration_shapes_the_validator_also_refuses_are_refused_here_too() {
    let mut shared = record("main", "app.example.com.", "A", RoutingPolicy::Weighted);
    shared.set_identifiers.insert(WEST.into(), "east".into());
    assert!(matches!(
        refusal(&config(vec![shared]), &app_live(100, 0)),
        PlanRefused::SharedSetIdentifier { .. }
    ));
    let twice = config(vec![
        record("main", "app.example.com.", "A", RoutingPolicy::Weighted),
        record("main", "APP.example.com", "A", RoutingPolicy::Weighted),
    ]);
    assert!(matches!(
        refusal(&twice, &app_live(100, 0)),
        PlanRefused::DuplicateRecord { .. }
    ));
    let unknown = config(vec![record(
        "nope",
        "app.example.com.",
        "A",
        RoutingPolicy::Weighted,
    )]);
    assert!(matches!(
        refusal(&unknown, &app_live(100, 0)),
        PlanRefused::UnknownZone { zone, .. } if zone == "nope"
    ));
}

#[test]
fn unknown_targets_and_bad_stage_lists_are_refused() {
    let err = plan_switchover(&app(), &regions(), &app_live(100, 0), "eu-west-1", &[100])
        .expect_err("unknown target");
    assert!(matches!(err, PlanRefused::UnknownTarget { .. }));
    for stages in [
        vec![],
        vec![0, 100],
        vec![50, 101],
        vec![50, 50, 100],
        vec![50, 10, 100],
        vec![10, 50],
    ] {
        assert!(
            matches!(
                check_stages(&stages),
                Err(PlanRefused::InvalidStages { .. })
            ),
            "{stages:?}"
        );
        assert!(
            plan_switchover(&app(), &regions(), &app_live(100, 0), WEST, &stages).is_err(),
            "{stages:?}"
        );
    }
    let original = current_routing(&app(), &regions(), &app_live(100, 0)).unwrap();
    assert!(stage_routing(&original, WEST, 0).is_err());
    assert!(stage_routing(&original, WEST, 101).is_err());
}

#[test]
fn a_record_left_with_every_weight_at_zero_is_refused() {
    let zero = |id: &str, region: &str| SetRouting {
        zone_id: "Z1".into(),
        name: "app.example.com.".into(),
        record_type: "A".into(),
        set_identifier: id.into(),
        region: region.into(),
        routing: ManagedRouting::Weighted { weight: 0 },
    };
    let record = [zero("east", EAST), zero("west", WEST)];
    assert_eq!(
        check_not_all_zero(&record, 100),
        Err(PlanRefused::AllWeightsZero {
            record: "app.example.com. A".into(),
            percent: 100
        })
    );
    let mut ok = record.clone();
    ok[1].routing = ManagedRouting::Weighted { weight: 1 };
    assert!(check_not_all_zero(&ok, 100).is_ok());
    // No stage the planner produces can be all-zero, whatever the starting weights.
    for (e, wgt) in [(0, 0), (0, 1), (1, 0), (255, 255), (100, 0), (0, 100)] {
        let original = current_routing(&app(), &regions(), &app_live(e, wgt)).unwrap();
        for p in 1..=100u8 {
            for target in [EAST, WEST] {
                let stage = stage_routing(&original, target, p).unwrap();
                assert!(
                    check_not_all_zero(&stage, p).is_ok(),
                    "{e}/{wgt} {p} {target}"
                );
                assert!(
                    share_of(&stage, target) >= p.min(100),
                    "{e}/{wgt} {p} {target}"
                );
            }
        }
    }
}
