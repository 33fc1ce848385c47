//! The pure stage planner: from the live record sets, the configured records and the target region,
//! the exact routing (weight or failover role) of every managed record set at every stage.
//!
//! Why pure: the planner decides where production traffic goes. Keeping it free of I/O makes every
//! decision — including every refusal — testable exhaustively, and lets the steps re-run it after a
//! crash against whatever the world looks like then.
//!
//! Rules (DESIGN.md §5):
//! - **Weighted** records: at a stage of `p` %, the target region's set gets weight `p` and the
//!   other set `100 − p` (weights out of 100, so the weights read as percentages). Traffic is
//!   never moved *away* from the target: if a record already sends more than `p` % to the target,
//!   the stage leaves it there.
//! - **Failover** records (PRIMARY/SECONDARY): the roles swap at the 100 % stage; earlier stages
//!   leave them alone (failover routing cannot split traffic).
//! - Only the routing changes: values, TTL, alias target and health check of every set are kept
//!   exactly as they are live.
//!
//! Unsafe shapes are refused before anything is changed, with an error naming the record and the
//! region: a record or set identifier that is not in the zone (deleted behind failoverd's back), a
//! region with no set, a type or routing that does not match the configuration, a weighted set
//! failoverd does not manage that takes traffic, two primaries, and any stage that would leave
//! every weight of a record at 0 (Route 53 would then split the traffic evenly — not a plan).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::port::{ChangeAction, FailoverRole, RecordChange, RecordSet, Routing};
use crate::config::{DnsConfig, DnsRecordConfig, RoutingPolicy};
use crate::topology::RegionPair;

/// Weighted records are planned out of this total, so a weight reads as a percentage.
pub const WEIGHT_SCALE: u8 = 100;

/// The live record sets of every configured zone, by hosted zone id.
pub type LiveRecords = BTreeMap<String, Vec<RecordSet>>;

/// A failover role, in the journal's vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    Primary,
    Secondary,
}

impl From<FailoverRole> for Role {
    fn from(role: FailoverRole) -> Self {
        match role {
            FailoverRole::Primary => Role::Primary,
            FailoverRole::Secondary => Role::Secondary,
        }
    }
}

impl From<Role> for FailoverRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Primary => FailoverRole::Primary,
            Role::Secondary => FailoverRole::Secondary,
        }
    }
}

/// The part of a record set's routing a switchover changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum ManagedRouting {
    Weighted { weight: u8 },
    Failover { role: Role },
}

impl ManagedRouting {
    fn from_live(routing: &Routing) -> Option<Self> {
        match routing {
            Routing::Weighted { weight } => Some(Self::Weighted { weight: *weight }),
            Routing::Failover(role) => Some(Self::Failover {
                role: Role::from(*role),
            }),
            Routing::Simple | Routing::Unmanaged(_) => None,
        }
    }

    fn to_live(self) -> Routing {
        match self {
            Self::Weighted { weight } => Routing::Weighted { weight },
            Self::Failover { role } => Routing::Failover(role.into()),
        }
    }
}

impl fmt::Display for ManagedRouting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Weighted { weight } => write!(f, "weight {weight}"),
            Self::Failover {
                role: Role::Primary,
            } => f.write_str("PRIMARY"),
            Self::Failover {
                role: Role::Secondary,
            } => f.write_str("SECONDARY"),
        }
    }
}

/// The routing of one managed record set. Serializable: the switchover records the routing found
/// when the run started in its journal, and restores it when the run unwinds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetRouting {
    pub zone_id: String,
    /// Normalized record name (lower case, trailing dot).
    pub name: String,
    pub record_type: String,
    pub set_identifier: String,
    /// The region this set sends traffic to.
    pub region: String,
    pub routing: ManagedRouting,
}

impl SetRouting {
    /// `app.example.com. A [us-west-2]`.
    pub fn label(&self) -> String {
        format!(
            "{} {} [{}]",
            self.name, self.record_type, self.set_identifier
        )
    }
}

/// The routing of every managed set at one stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagePlan {
    /// Share of traffic sent to the target region (weighted records), in percent.
    pub percent: u8,
    pub sets: Vec<SetRouting>,
}

/// The whole switchover: what was found, and each stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchoverPlan {
    pub target_region: String,
    pub original: Vec<SetRouting>,
    pub stages: Vec<StagePlan>,
}

/// The UPSERTs one zone needs to reach a stage: one change batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneChanges {
    pub zone_id: String,
    pub changes: Vec<RecordChange>,
    /// One line per changed set: `app.example.com. A [us-west-2] weight 0 -> 10`.
    pub lines: Vec<String>,
}

/// Why the planner refused. Every variant names the record (and the region or set) concerned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanRefused {
    #[error("target region {target:?} is not one of the pair ({})", regions.join(", "))]
    UnknownTarget {
        target: String,
        regions: Vec<String>,
    },
    #[error("dns.stages {stages:?}: {reason}")]
    InvalidStages { stages: Vec<u8>, reason: String },
    #[error("record {record}: zone {zone:?} is not in dns.zones")]
    UnknownZone { record: String, zone: String },
    #[error("record {record} is configured more than once")]
    DuplicateRecord { record: String },
    #[error("record {record} has no set identifier for region {region}")]
    MissingRegion { record: String, region: String },
    #[error("record {record} uses set identifier {set_identifier:?} for both regions")]
    SharedSetIdentifier {
        record: String,
        set_identifier: String,
    },
    #[error("record {record} has no record sets in hosted zone {zone_id} (deleted behind failoverd's back?)")]
    RecordNotFound { record: String, zone_id: String },
    #[error("record {record}: the set {set_identifier:?} of region {region} is not in hosted zone {zone_id} (deleted behind failoverd's back?)")]
    SetNotFound {
        record: String,
        region: String,
        set_identifier: String,
        zone_id: String,
    },
    #[error("record {record}: the set {set_identifier:?} of region {region} exists with type {found}, not the configured type")]
    TypeMismatch {
        record: String,
        region: String,
        set_identifier: String,
        found: String,
    },
    #[error("record {record}: the set {set_identifier:?} of region {region} uses {found} routing, but the configuration says {expected}")]
    RoutingMismatch {
        record: String,
        region: String,
        set_identifier: String,
        expected: String,
        found: String,
    },
    #[error("record {record}: weighted set {set_identifier:?} is not managed by failoverd and has weight {weight}, so the planned shares would be wrong")]
    UnmanagedSet {
        record: String,
        set_identifier: String,
        weight: u8,
    },
    #[error("record {record}: failover roles are {first} for {first_region} and {second} for {second_region}; one PRIMARY and one SECONDARY are needed")]
    FailoverRoles {
        record: String,
        first_region: String,
        first: String,
        second_region: String,
        second: String,
    },
    #[error("record {record}: the stage at {percent} % would leave every weight at 0")]
    AllWeightsZero { record: String, percent: u8 },
}

/// Record names as Route 53 returns them: lower case, trailing dot, `*` escaped as `\052`.
pub fn normalize_name(name: &str) -> String {
    let mut n = name.trim().to_ascii_lowercase().replace("\\052", "*");
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

fn record_label(r: &DnsRecordConfig) -> String {
    format!("{} {}", normalize_name(&r.name), r.record_type)
}

fn live_routing_name(routing: &Routing) -> String {
    match routing {
        Routing::Simple => "simple".to_owned(),
        Routing::Weighted { .. } => "weighted".to_owned(),
        Routing::Failover(_) => "failover".to_owned(),
        Routing::Unmanaged(kind) => kind.clone(),
    }
}

fn policy_name(policy: RoutingPolicy) -> &'static str {
    match policy {
        RoutingPolicy::Weighted => "weighted",
        RoutingPolicy::Failover => "failover",
    }
}

/// The hosted zone ids the configuration refers to, in configuration order, without repeats.
pub fn zone_ids(dns: &DnsConfig) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for z in &dns.zones {
        if !ids.contains(&z.id) {
            ids.push(z.id.clone());
        }
    }
    ids
}

/// The live set `set_identifier` of the configured record `r`, or why it cannot be used.
fn find_set<'a>(
    r: &DnsRecordConfig,
    zone_id: &str,
    region: &str,
    set_identifier: &str,
    live: &'a [RecordSet],
) -> Result<&'a RecordSet, PlanRefused> {
    let name = normalize_name(&r.name);
    let record = record_label(r);
    let same_name: Vec<&RecordSet> = live
        .iter()
        .filter(|s| normalize_name(&s.name) == name)
        .collect();
    if same_name.is_empty() {
        return Err(PlanRefused::RecordNotFound {
            record,
            zone_id: zone_id.to_owned(),
        });
    }
    let with_id = || {
        same_name
            .iter()
            .copied()
            .filter(|s| s.set_identifier.as_deref() == Some(set_identifier))
    };
    if let Some(found) = with_id().find(|s| s.record_type.as_str() == r.record_type) {
        return Ok(found);
    }
    match with_id().next() {
        Some(other) => Err(PlanRefused::TypeMismatch {
            record,
            region: region.to_owned(),
            set_identifier: set_identifier.to_owned(),
            found: other.record_type.as_str().to_owned(),
        }),
        None => Err(PlanRefused::SetNotFound {
            record,
            region: region.to_owned(),
            set_identifier: set_identifier.to_owned(),
            zone_id: zone_id.to_owned(),
        }),
    }
}

/// Locate every configured record's set in each region and check the shape; returns the current
/// routing of every managed set (per record: the hot region of the pair, then the cold one).
pub fn current_routing(
    dns: &DnsConfig,
    pair: &RegionPair,
    live: &LiveRecords,
) -> Result<Vec<SetRouting>, PlanRefused> {
    let mut out = Vec::new();
    let mut seen: Vec<(String, String, String)> = Vec::new();
    let empty: Vec<RecordSet> = Vec::new();
    for r in &dns.records {
        let record = record_label(r);
        let zone = dns.zones.iter().find(|z| z.name == r.zone).ok_or_else(|| {
            PlanRefused::UnknownZone {
                record: record.clone(),
                zone: r.zone.clone(),
            }
        })?;
        let key = (
            zone.id.clone(),
            normalize_name(&r.name),
            r.record_type.clone(),
        );
        if seen.contains(&key) {
            return Err(PlanRefused::DuplicateRecord { record });
        }
        seen.push(key);
        let zone_live = live.get(&zone.id).unwrap_or(&empty);
        let mut ids = Vec::with_capacity(2);
        for region in pair.regions() {
            let id = r
                .set_identifiers
                .get(region)
                .ok_or_else(|| PlanRefused::MissingRegion {
                    record: record.clone(),
                    region: region.to_owned(),
                })?;
            ids.push(id.as_str());
        }
        if ids[0] == ids[1] {
            return Err(PlanRefused::SharedSetIdentifier {
                record,
                set_identifier: ids[0].to_owned(),
            });
        }
        let mut sets = Vec::with_capacity(2);
        for (region, id) in pair.regions().into_iter().zip(&ids) {
            let set = find_set(r, &zone.id, region, id, zone_live)?;
            let routing = ManagedRouting::from_live(&set.routing)
                .filter(|m| {
                    matches!(
                        (m, r.routing),
                        (ManagedRouting::Weighted { .. }, RoutingPolicy::Weighted)
                            | (ManagedRouting::Failover { .. }, RoutingPolicy::Failover)
                    )
                })
                .ok_or_else(|| PlanRefused::RoutingMismatch {
                    record: record.clone(),
                    region: region.to_owned(),
                    set_identifier: (*id).to_owned(),
                    expected: policy_name(r.routing).to_owned(),
                    found: live_routing_name(&set.routing),
                })?;
            sets.push(SetRouting {
                zone_id: zone.id.clone(),
                name: normalize_name(&r.name),
                record_type: r.record_type.clone(),
                set_identifier: (*id).to_owned(),
                region: region.to_owned(),
                routing,
            });
        }
        // Sets of the same name and type that failoverd does not manage.
        let name = normalize_name(&r.name);
        for s in zone_live.iter().filter(|s| {
            normalize_name(&s.name) == name
                && s.record_type.as_str() == r.record_type
                && !s
                    .set_identifier
                    .as_deref()
                    .is_some_and(|id| ids.contains(&id))
        }) {
            if let Routing::Weighted { weight } = s.routing {
                if weight > 0 {
                    return Err(PlanRefused::UnmanagedSet {
                        record: record.clone(),
                        set_identifier: s.set_identifier.clone().unwrap_or_default(),
                        weight,
                    });
                }
            }
        }
        if let [SetRouting {
            routing: ManagedRouting::Failover { role: first },
            region: first_region,
            ..
        }, SetRouting {
            routing: ManagedRouting::Failover { role: second },
            region: second_region,
            ..
        }] = sets.as_slice()
        {
            if first == second {
                return Err(PlanRefused::FailoverRoles {
                    record,
                    first_region: first_region.clone(),
                    first: format!("{first:?}").to_ascii_uppercase(),
                    second_region: second_region.clone(),
                    second: format!("{second:?}").to_ascii_uppercase(),
                });
            }
        }
        out.extend(sets);
    }
    Ok(out)
}

/// Check a stage list: non-empty, each in `1..=100`, increasing, ending at 100.
pub fn check_stages(stages: &[u8]) -> Result<(), PlanRefused> {
    let refuse = |reason: &str| PlanRefused::InvalidStages {
        stages: stages.to_vec(),
        reason: reason.to_owned(),
    };
    if stages.is_empty() {
        return Err(refuse("no stage"));
    }
    if stages.iter().any(|p| *p == 0 || *p > 100) {
        return Err(refuse("every stage must be in 1..=100"));
    }
    if stages.windows(2).any(|w| w[0] >= w[1]) {
        return Err(refuse("stages must increase"));
    }
    if stages.last() != Some(&100) {
        return Err(refuse("the last stage must be 100"));
    }
    Ok(())
}

/// Records of a routing list: consecutive pairs of sets with the same zone, name and type.
fn records(routing: &[SetRouting]) -> Vec<&[SetRouting]> {
    let mut out: Vec<&[SetRouting]> = Vec::new();
    let mut start = 0;
    for i in 1..=routing.len() {
        let boundary = i == routing.len()
            || routing[i].zone_id != routing[start].zone_id
            || routing[i].name != routing[start].name
            || routing[i].record_type != routing[start].record_type;
        if boundary {
            out.push(&routing[start..i]);
            start = i;
        }
    }
    out
}

/// The share of a record's traffic the `region` receives, in percent (weighted sets; all weights 0
/// means Route 53 splits evenly). For failover sets: 100 when `region` is PRIMARY.
pub fn share_of(record: &[SetRouting], region: &str) -> u8 {
    let mut to_region = 0u32;
    let mut total = 0u32;
    let mut weighted_sets = 0u32;
    for s in record {
        match s.routing {
            ManagedRouting::Weighted { weight } => {
                weighted_sets += 1;
                total += u32::from(weight);
                if s.region == region {
                    to_region += u32::from(weight);
                }
            }
            ManagedRouting::Failover { role } => {
                if s.region == region {
                    return if role == Role::Primary { 100 } else { 0 };
                }
            }
        }
    }
    if weighted_sets == 0 {
        return 0;
    }
    let (to_region, total) = if total == 0 {
        (
            record.iter().filter(|s| s.region == region).count() as u32,
            weighted_sets,
        )
    } else {
        (to_region, total)
    };
    // Round to the nearest percent; at most 100 because to_region <= total.
    u8::try_from((to_region * 100 + total / 2) / total).unwrap_or(100)
}

/// The region most of the traffic goes to (by the records' average share), or `None` when the
/// traffic is split evenly (mid-switchover).
pub fn active_region(routing: &[SetRouting], pair: &RegionPair) -> Option<String> {
    let recs = records(routing);
    if recs.is_empty() {
        return None;
    }
    let share: u32 = recs
        .iter()
        .map(|r| u32::from(share_of(r, pair.hot())))
        .sum();
    let avg_times_n = share * 2;
    let n100 = recs.len() as u32 * 100;
    match avg_times_n.cmp(&n100) {
        std::cmp::Ordering::Greater => Some(pair.hot().to_owned()),
        std::cmp::Ordering::Less => Some(pair.cold().to_owned()),
        std::cmp::Ordering::Equal => None,
    }
}

/// The routing of every set at the stage sending `percent` % to `target`, starting from `original`
/// (never moving a record's traffic away from the target).
pub fn stage_routing(
    original: &[SetRouting],
    target: &str,
    percent: u8,
) -> Result<Vec<SetRouting>, PlanRefused> {
    if percent == 0 || percent > 100 {
        return Err(PlanRefused::InvalidStages {
            stages: vec![percent],
            reason: "every stage must be in 1..=100".to_owned(),
        });
    }
    let mut out = Vec::with_capacity(original.len());
    for record in records(original) {
        let current = share_of(record, target);
        let weighted = record
            .iter()
            .all(|s| matches!(s.routing, ManagedRouting::Weighted { .. }));
        let planned: Vec<SetRouting> = if weighted {
            let want = percent.max(current);
            // Keep the weights as they are when they already give the target this share — unless
            // they are all 0 (an implicit even split), which is made explicit.
            if want == current && check_not_all_zero(record, percent).is_ok() {
                record.to_vec()
            } else {
                record
                    .iter()
                    .map(|s| SetRouting {
                        routing: ManagedRouting::Weighted {
                            weight: if s.region == target {
                                want
                            } else {
                                WEIGHT_SCALE - want
                            },
                        },
                        ..s.clone()
                    })
                    .collect()
            }
        } else if percent == 100 {
            record
                .iter()
                .map(|s| SetRouting {
                    routing: ManagedRouting::Failover {
                        role: if s.region == target {
                            Role::Primary
                        } else {
                            Role::Secondary
                        },
                    },
                    ..s.clone()
                })
                .collect()
        } else {
            record.to_vec()
        };
        check_not_all_zero(&planned, percent)?;
        out.extend(planned);
    }
    Ok(out)
}

/// Refuse a record whose weighted sets would all be 0 (and that had some weight to lose).
pub fn check_not_all_zero(record: &[SetRouting], percent: u8) -> Result<(), PlanRefused> {
    let weights: Vec<u8> = record
        .iter()
        .filter_map(|s| match s.routing {
            ManagedRouting::Weighted { weight } => Some(weight),
            ManagedRouting::Failover { .. } => None,
        })
        .collect();
    if !weights.is_empty() && weights.iter().all(|w| *w == 0) {
        let first = &record[0];
        return Err(PlanRefused::AllWeightsZero {
            record: format!("{} {}", first.name, first.record_type),
            percent,
        });
    }
    Ok(())
}

/// Plan the whole switchover to `target` through `stages`.
pub fn plan_switchover(
    dns: &DnsConfig,
    pair: &RegionPair,
    live: &LiveRecords,
    target: &str,
    stages: &[u8],
) -> Result<SwitchoverPlan, PlanRefused> {
    plan_from(pair, current_routing(dns, pair, live)?, target, stages)
}

/// Plan the whole switchover to `target` through `stages`, from the routing `original` (the live
/// one, or what Route 53 effectively answers when a region is drained by the data-plane signal).
pub fn plan_from(
    pair: &RegionPair,
    original: Vec<SetRouting>,
    target: &str,
    stages: &[u8],
) -> Result<SwitchoverPlan, PlanRefused> {
    check_target(pair, target)?;
    check_stages(stages)?;
    let stages = stages
        .iter()
        .map(|p| {
            Ok(StagePlan {
                percent: *p,
                sets: stage_routing(&original, target, *p)?,
            })
        })
        .collect::<Result<Vec<_>, PlanRefused>>()?;
    Ok(SwitchoverPlan {
        target_region: target.to_owned(),
        original,
        stages,
    })
}

/// Refuse a target that is not one of the pair.
pub fn check_target(pair: &RegionPair, target: &str) -> Result<(), PlanRefused> {
    if pair.contains(target) {
        Ok(())
    } else {
        Err(PlanRefused::UnknownTarget {
            target: target.to_owned(),
            regions: pair.regions().map(str::to_owned).to_vec(),
        })
    }
}

/// The live set a planned routing applies to.
pub fn live_set<'a>(live: &'a LiveRecords, set: &SetRouting) -> Option<&'a RecordSet> {
    live.get(&set.zone_id)?.iter().find(|s| {
        normalize_name(&s.name) == set.name
            && s.record_type.as_str() == set.record_type
            && s.set_identifier.as_deref() == Some(set.set_identifier.as_str())
    })
}

/// The sets whose live routing differs from `desired`, as one change batch of UPSERTs per zone
/// (zones in the order of `desired`). Each change is the live record set with only its routing
/// replaced. Empty when the world already matches, so re-applying a stage costs no write.
pub fn changes_to(
    live: &LiveRecords,
    desired: &[SetRouting],
) -> Result<Vec<ZoneChanges>, PlanRefused> {
    let mut out: Vec<ZoneChanges> = Vec::new();
    for want in desired {
        let set = live_set(live, want).ok_or_else(|| PlanRefused::SetNotFound {
            record: format!("{} {}", want.name, want.record_type),
            region: want.region.clone(),
            set_identifier: want.set_identifier.clone(),
            zone_id: want.zone_id.clone(),
        })?;
        let routing = want.routing.to_live();
        if set.routing == routing {
            continue;
        }
        let line = format!(
            "route53 {}: {} {} -> {}",
            want.zone_id,
            want.label(),
            ManagedRouting::from_live(&set.routing)
                .map(|r| r.to_string())
                .unwrap_or_else(|| live_routing_name(&set.routing)),
            want.routing
        );
        let change = RecordChange {
            action: ChangeAction::Upsert,
            record_set: RecordSet {
                routing,
                ..set.clone()
            },
        };
        match out.iter_mut().find(|z| z.zone_id == want.zone_id) {
            Some(zone) => {
                zone.changes.push(change);
                zone.lines.push(line);
            }
            None => out.push(ZoneChanges {
                zone_id: want.zone_id.clone(),
                changes: vec![change],
                lines: vec![line],
            }),
        }
    }
    Ok(out)
}

/// Split `sets` into those present in `live` and those that are gone.
pub fn split_present(
    live: &LiveRecords,
    sets: &[SetRouting],
) -> (Vec<SetRouting>, Vec<SetRouting>) {
    sets.iter()
        .cloned()
        .partition(|s| live_set(live, s).is_some())
}

/// Whether every set of `desired` has that routing live.
pub fn is_applied(live: &LiveRecords, desired: &[SetRouting]) -> Result<bool, PlanRefused> {
    Ok(changes_to(live, desired)?.is_empty())
}

/// The highest TTL among the live sets of `desired` (what resolvers may still cache after a
/// change is `INSYNC`).
pub fn max_ttl(live: &LiveRecords, desired: &[SetRouting]) -> std::time::Duration {
    desired
        .iter()
        .filter_map(|s| live_set(live, s))
        .map(RecordSet::ttl)
        .max()
        .unwrap_or_default()
}

/// One line per set whose routing differs between `from` and `to` (matched by zone, name, type
/// and set identifier): `route53 Z1: app.example.com. A [us-west-2] weight 10 -> 50`.
pub fn diff_lines(from: &[SetRouting], to: &[SetRouting]) -> Vec<String> {
    to.iter()
        .filter_map(|t| {
            let f = from.iter().find(|f| {
                f.zone_id == t.zone_id
                    && f.name == t.name
                    && f.record_type == t.record_type
                    && f.set_identifier == t.set_identifier
            })?;
            (f.routing != t.routing).then(|| {
                format!(
                    "route53 {}: {} {} -> {}",
                    t.zone_id,
                    t.label(),
                    f.routing,
                    t.routing
                )
            })
        })
        .collect()
}

/// One line per set: `app.example.com. A [us-west-2] (us-west-2): weight 10`.
pub fn routing_lines(sets: &[SetRouting]) -> Vec<String> {
    sets.iter()
        .map(|s| format!("{} ({}): {}", s.label(), s.region, s.routing))
        .collect()
}

#[cfg(test)]
mod tests;
