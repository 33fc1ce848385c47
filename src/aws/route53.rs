//! Route 53 adapter: implements [`DnsApi`] and [`HealthCheckStatusApi`].
//!
//! Translates between the domain's record sets and the SDK's, so the stage planner never sees an
//! SDK type, and refuses to write record sets whose routing failoverd does not manage (rewriting a
//! latency or geo record from a partial model would silently drop its routing).

use async_trait::async_trait;
use aws_sdk_route53::types as sdk;
use std::time::Duration;

use super::error::{from_sdk, Error, ErrorKind, Result, Service};
use super::time_conv::to_offset;
use crate::dns::port::{
    ChangeAction, ChangeInfo, ChangeStatus, DnsApi, FailoverRole, RecordChange, RecordSet,
    RecordTarget, RecordType, Routing,
};
use crate::health::port::{CheckerObservation, HealthCheckStatus, HealthCheckStatusApi};

/// Route 53 (global) through the AWS SDK.
#[derive(Debug, Clone)]
pub struct Route53Dns {
    client: aws_sdk_route53::Client,
}

impl Route53Dns {
    pub(crate) fn new(client: aws_sdk_route53::Client) -> Self {
        Self { client }
    }
}

const SERVICE: Service = Service::Route53;

#[async_trait]
impl DnsApi for Route53Dns {
    async fn list_record_sets(&self, hosted_zone_id: &str) -> Result<Vec<RecordSet>> {
        const OP: &str = "ListResourceRecordSets";
        let mut records = Vec::new();
        let mut next: Option<(String, Option<sdk::RrType>, Option<String>)> = None;
        loop {
            let mut request = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(hosted_zone_id);
            if let Some((name, record_type, identifier)) = next.take() {
                request = request
                    .start_record_name(name)
                    .set_start_record_type(record_type)
                    .set_start_record_identifier(identifier);
            }
            let page = request
                .send()
                .await
                .map_err(|e| from_sdk(SERVICE, OP, &e))?;
            records.extend(page.resource_record_sets().iter().map(from_sdk_record));
            if !page.is_truncated() {
                return Ok(records);
            }
            let Some(name) = page.next_record_name() else {
                return Err(Error::missing_field(
                    SERVICE,
                    OP,
                    "NextRecordName on a truncated page",
                ));
            };
            next = Some((
                name.to_owned(),
                page.next_record_type().cloned(),
                page.next_record_identifier().map(str::to_owned),
            ));
        }
    }

    async fn change_record_sets(
        &self,
        hosted_zone_id: &str,
        comment: Option<&str>,
        changes: &[RecordChange],
    ) -> Result<ChangeInfo> {
        const OP: &str = "ChangeResourceRecordSets";
        if changes.is_empty() {
            return Err(Error::new(
                ErrorKind::Invalid,
                SERVICE,
                OP,
                "a change batch needs at least one change",
            ));
        }
        let sdk_changes = changes
            .iter()
            .map(to_sdk_change)
            .collect::<std::result::Result<Vec<_>, String>>()
            .map_err(|message| Error::new(ErrorKind::Invalid, SERVICE, OP, message))?;
        let batch = sdk::ChangeBatch::builder()
            .set_changes(Some(sdk_changes))
            .set_comment(comment.map(str::to_owned))
            .build()
            .map_err(|e| Error::new(ErrorKind::Invalid, SERVICE, OP, e.to_string()))?;
        let output = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(hosted_zone_id)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        output
            .change_info()
            .map(from_sdk_change_info)
            .ok_or_else(|| Error::missing_field(SERVICE, OP, "ChangeInfo"))
    }

    async fn change_status(&self, change_id: &str) -> Result<ChangeInfo> {
        const OP: &str = "GetChange";
        let output = self
            .client
            .get_change()
            .id(strip_prefix(change_id, "/change/"))
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        output
            .change_info()
            .map(from_sdk_change_info)
            .ok_or_else(|| Error::missing_field(SERVICE, OP, "ChangeInfo"))
    }
}

#[async_trait]
impl HealthCheckStatusApi for Route53Dns {
    async fn health_check_status(&self, health_check_id: &str) -> Result<HealthCheckStatus> {
        const OP: &str = "GetHealthCheckStatus";
        let output = self
            .client
            .get_health_check_status()
            .health_check_id(health_check_id)
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        let checkers = output
            .health_check_observations()
            .iter()
            .map(|observation| {
                let report = observation.status_report();
                let status = report
                    .and_then(|r| r.status())
                    .unwrap_or_default()
                    .to_owned();
                CheckerObservation {
                    region: observation.region().map(|r| r.as_str().to_owned()),
                    ip_address: observation.ip_address().map(str::to_owned),
                    // Route 53 reports "Success: ..." or "Failure: ..." per checker.
                    healthy: status.starts_with("Success"),
                    status,
                    checked_at: report.and_then(|r| r.checked_time()).and_then(to_offset),
                }
            })
            .collect();
        Ok(HealthCheckStatus { checkers })
    }
}

fn strip_prefix<'a>(value: &'a str, prefix: &str) -> &'a str {
    value.strip_prefix(prefix).unwrap_or(value)
}

fn from_sdk_change_info(info: &sdk::ChangeInfo) -> ChangeInfo {
    ChangeInfo {
        id: strip_prefix(info.id(), "/change/").to_owned(),
        status: match info.status() {
            sdk::ChangeStatus::Insync => ChangeStatus::InSync,
            // PENDING, and anything new: not in sync until Route 53 says so.
            _ => ChangeStatus::Pending,
        },
        submitted_at: to_offset(info.submitted_at()),
    }
}

fn from_sdk_record(record: &sdk::ResourceRecordSet) -> RecordSet {
    let routing = if let Some(weight) = record.weight() {
        match u8::try_from(weight) {
            Ok(weight) => Routing::Weighted { weight },
            Err(_) => Routing::Unmanaged(format!("weight {weight}")),
        }
    } else if let Some(failover) = record.failover() {
        match failover {
            sdk::ResourceRecordSetFailover::Primary => Routing::Failover(FailoverRole::Primary),
            sdk::ResourceRecordSetFailover::Secondary => Routing::Failover(FailoverRole::Secondary),
            other => Routing::Unmanaged(format!("failover {}", other.as_str())),
        }
    } else if let Some(region) = record.region() {
        Routing::Unmanaged(format!("latency {}", region.as_str()))
    } else if record.geo_location().is_some() {
        Routing::Unmanaged("geolocation".to_owned())
    } else if record.geo_proximity_location().is_some() {
        Routing::Unmanaged("geoproximity".to_owned())
    } else if record.multi_value_answer() == Some(true) {
        Routing::Unmanaged("multivalue".to_owned())
    } else if record.cidr_routing_config().is_some() {
        Routing::Unmanaged("cidr".to_owned())
    } else {
        Routing::Simple
    };
    let target = match record.alias_target() {
        Some(alias) => RecordTarget::Alias {
            hosted_zone_id: alias.hosted_zone_id().to_owned(),
            dns_name: alias.dns_name().to_owned(),
            evaluate_target_health: alias.evaluate_target_health(),
        },
        None => RecordTarget::Values {
            ttl: Duration::from_secs(
                record
                    .ttl()
                    .and_then(|t| u64::try_from(t).ok())
                    .unwrap_or(0),
            ),
            values: record
                .resource_records()
                .iter()
                .map(|r| r.value().to_owned())
                .collect(),
        },
    };
    RecordSet {
        name: record.name().to_owned(),
        record_type: RecordType::parse(record.r#type().as_str()),
        set_identifier: record.set_identifier().map(str::to_owned),
        routing,
        target,
        health_check_id: record.health_check_id().map(str::to_owned),
    }
}

fn to_sdk_change(change: &RecordChange) -> std::result::Result<sdk::Change, String> {
    let action = match change.action {
        ChangeAction::Create => sdk::ChangeAction::Create,
        ChangeAction::Upsert => sdk::ChangeAction::Upsert,
        ChangeAction::Delete => sdk::ChangeAction::Delete,
    };
    sdk::Change::builder()
        .action(action)
        .resource_record_set(to_sdk_record(&change.record_set)?)
        .build()
        .map_err(|e| e.to_string())
}

fn to_sdk_record(record: &RecordSet) -> std::result::Result<sdk::ResourceRecordSet, String> {
    let mut builder = sdk::ResourceRecordSet::builder()
        .name(&record.name)
        .r#type(sdk::RrType::from(record.record_type.as_str()))
        .set_set_identifier(record.set_identifier.clone())
        .set_health_check_id(record.health_check_id.clone());
    builder = match &record.routing {
        Routing::Simple => builder,
        Routing::Weighted { weight } => builder.weight(i64::from(*weight)),
        Routing::Failover(FailoverRole::Primary) => {
            builder.failover(sdk::ResourceRecordSetFailover::Primary)
        }
        Routing::Failover(FailoverRole::Secondary) => {
            builder.failover(sdk::ResourceRecordSetFailover::Secondary)
        }
        Routing::Unmanaged(kind) => {
            return Err(format!(
                "record set {} {} uses {kind} routing, which failoverd does not write",
                record.name, record.record_type
            ))
        }
    };
    if !matches!(record.routing, Routing::Simple) && record.set_identifier.is_none() {
        return Err(format!(
            "record set {} {} needs a set identifier for weighted/failover routing",
            record.name, record.record_type
        ));
    }
    builder = match &record.target {
        RecordTarget::Values { ttl, values } => {
            let ttl = i64::try_from(ttl.as_secs())
                .map_err(|_| format!("TTL of {} is out of range", record.name))?;
            let values = values
                .iter()
                .map(|value| {
                    sdk::ResourceRecord::builder()
                        .value(value)
                        .build()
                        .map_err(|e| e.to_string())
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            builder.ttl(ttl).set_resource_records(Some(values))
        }
        RecordTarget::Alias {
            hosted_zone_id,
            dns_name,
            evaluate_target_health,
        } => builder.alias_target(
            sdk::AliasTarget::builder()
                .hosted_zone_id(hosted_zone_id)
                .dns_name(dns_name)
                .evaluate_target_health(*evaluate_target_health)
                .build()
                .map_err(|e| e.to_string())?,
        ),
    };
    builder.build().map_err(|e| e.to_string())
}

/// Inverting a Route 53 health check is how a Cognito native-replica failover is steered: the
/// records that fail over on that check follow its (inverted) state.
#[async_trait]
impl crate::cognito::replica::HealthCheckSwitch for Route53Dns {
    async fn health_check_inverted(&self, health_check_id: &str) -> Result<bool> {
        Ok(self.get_health_check(health_check_id).await?.inverted)
    }

    async fn set_health_check_inverted(&self, health_check_id: &str, inverted: bool) -> Result<()> {
        const OP: &str = "UpdateHealthCheck";
        self.client
            .update_health_check()
            .health_check_id(health_check_id)
            .inverted(inverted)
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        Ok(())
    }
}

/// The wiring of the data-plane DNS signal: which alarm a health check follows.
#[async_trait]
impl crate::dns::signal::HealthCheckConfigApi for Route53Dns {
    async fn health_check_config(
        &self,
        health_check_id: &str,
    ) -> Result<crate::dns::signal::HealthCheckConfig> {
        self.get_health_check(health_check_id).await
    }
}

impl Route53Dns {
    /// `GetHealthCheck`: the parts of its configuration failoverd reads.
    async fn get_health_check(
        &self,
        health_check_id: &str,
    ) -> Result<crate::dns::signal::HealthCheckConfig> {
        const OP: &str = "GetHealthCheck";
        let output = self
            .client
            .get_health_check()
            .health_check_id(health_check_id)
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        let config = output.health_check().and_then(|h| h.health_check_config());
        let alarm = config.and_then(|c| c.alarm_identifier());
        Ok(crate::dns::signal::HealthCheckConfig {
            id: health_check_id.to_owned(),
            kind: config.map_or_else(String::new, |c| c.r#type().as_str().to_owned()),
            alarm_region: alarm.map(|a| a.region().as_str().to_owned()),
            alarm_name: alarm.map(|a| a.name().to_owned()),
            inverted: config.and_then(|c| c.inverted()).unwrap_or(false),
            disabled: config.and_then(|c| c.disabled()).unwrap_or(false),
            insufficient_data: config
                .and_then(|c| c.insufficient_data_health_status())
                .map(|s| s.as_str().to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weighted(weight: u8) -> RecordSet {
        RecordSet {
            name: "api.example.com.".into(),
            record_type: RecordType::A,
            set_identifier: Some("eu-west-1".into()),
            routing: Routing::Weighted { weight },
            target: RecordTarget::Values {
                ttl: Duration::from_secs(60),
                values: vec!["192.0.2.10".into()],
            },
            health_check_id: Some("hc-1".into()),
        }
    }

    #[test]
    fn weighted_record_round_trips_through_the_sdk_shape() {
        let record = weighted(50);
        let sdk_record = to_sdk_record(&record).expect("valid record");
        assert_eq!(sdk_record.weight(), Some(50));
        assert_eq!(sdk_record.ttl(), Some(60));
        assert_eq!(from_sdk_record(&sdk_record), record);
    }

    #[test]
    fn alias_and_failover_round_trip() {
        let record = RecordSet {
            name: "www.example.com.".into(),
            record_type: RecordType::A,
            set_identifier: Some("primary".into()),
            routing: Routing::Failover(FailoverRole::Primary),
            target: RecordTarget::Alias {
                hosted_zone_id: "Z32O12XQLNTSW2".into(),
                dns_name: "lb.eu-west-1.elb.amazonaws.com.".into(),
                evaluate_target_health: true,
            },
            health_check_id: None,
        };
        let sdk_record = to_sdk_record(&record).expect("valid record");
        assert_eq!(from_sdk_record(&sdk_record), record);
    }

    #[test]
    fn unmanaged_routing_and_missing_identifier_are_refused() {
        let mut latency = weighted(1);
        latency.routing = Routing::Unmanaged("latency eu-west-1".into());
        assert!(to_sdk_record(&latency).is_err());
        let mut anonymous = weighted(1);
        anonymous.set_identifier = None;
        assert!(to_sdk_record(&anonymous).is_err());
    }
}
