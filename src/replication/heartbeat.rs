//! The SQL heartbeat: lag measured through the database itself, for Aurora PostgreSQL.
//!
//! CloudWatch's lag metrics arrive once a minute and a minute or more late; when the decision to
//! fail over hangs on "how much would we lose", that is coarse. The heartbeat writes one row in
//! the writer every `interval` — the writer's own `clock_timestamp()` — and reads it back from the
//! secondary's reader. The row seen on the reader is the newest write that has replicated, so
//!
//! ```text
//! lag = (writer time of the latest write + time elapsed since that write) - writer time seen on the reader
//! ```
//!
//! Both timestamps come from the writer's clock and the elapsed part from failoverd's monotonic
//! clock, so neither failoverd's wall clock nor the reader's clock skews the result.
//!
//! An observation needs both halves in the same round: a write that fails (the writer's region is
//! down) yields no observation, so the lag goes stale instead of growing without bound, and the
//! staleness — not an invented number — is what the policy and the alerts see.
//!
//! The table (`heartbeat.table`, one row, `id = 1`) is created in the writer with
//! `CREATE TABLE IF NOT EXISTS` on each new writer connection; it reaches the reader by
//! replication like any other table, and until it has, the read reports "not replicated yet".
//!
//! Connections are plain TCP (`NoTls`). TLS is the planned addition for endpoints that require it
//! (Aurora with `rds.force_ssl`): a `heartbeat.tls` key choosing `disable|require|verify_full`,
//! implemented with `tokio-postgres-rustls` on the ring provider the AWS clients already use.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::lag::{LagObservation, LagSourceKind};
use super::metrics::{poll_source, TrackerMetrics};
use super::state::{record_failure, SharedState};
use crate::config::{HeartbeatConfig, SecretError};

/// A connection attempt to a database in a failing region must end quickly: the next round
/// retries anyway.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one heartbeat statement, also set server-side as `statement_timeout`.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_PORT: u16 = 5432;

/// Why a heartbeat round produced no observation.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    #[error("heartbeat.endpoints has no endpoint for region {region}")]
    NoEndpoint { region: String },
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    #[error("invalid heartbeat table name {0:?}")]
    InvalidTable(String),
    #[error("heartbeat password: {0}")]
    Secret(#[from] SecretError),
    #[error("cannot connect to the {role} in {region}: {source}")]
    Connect {
        role: Role,
        region: String,
        source: tokio_postgres::Error,
    },
    #[error("heartbeat {role} in {region}: {source}")]
    Query {
        role: Role,
        region: String,
        source: tokio_postgres::Error,
    },
    #[error("heartbeat {role} in {region} did not answer within {limit:?}")]
    Timeout {
        role: Role,
        region: String,
        limit: Duration,
    },
    #[error("the heartbeat row has not replicated to the reader in {region} yet")]
    NotReplicated { region: String },
    #[error("heartbeat timestamps are not finite numbers")]
    BadTimestamp,
}

/// Which side of the heartbeat a connection serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Writer,
    Reader,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Writer => "writer",
            Role::Reader => "reader",
        })
    }
}

/// Splits `host:port`, `[v6]:port` or a bare host (port 5432).
pub fn parse_endpoint(endpoint: &str) -> Result<(String, u16), HeartbeatError> {
    let invalid = |reason: &str| HeartbeatError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason: reason.to_owned(),
    };
    let (host, port) = if let Some(rest) = endpoint.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| invalid("unclosed '['"))?;
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| invalid("expected ':' after ']'"))?,
                ),
            ),
        }
    } else {
        match endpoint.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            Some(_) => return Err(invalid("write IPv6 addresses as [addr]:port")),
            None => (endpoint, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("empty host"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| invalid("port must be a number from 1 to 65535"))?,
    };
    Ok((host.to_owned(), port))
}

/// Quotes `table` or `schema.table` as SQL identifiers.
pub fn quote_table(table: &str) -> Result<String, HeartbeatError> {
    let parts: Vec<&str> = table.split('.').collect();
    if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(HeartbeatError::InvalidTable(table.to_owned()));
    }
    Ok(parts
        .iter()
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join("."))
}

/// The lag given the writer's time of the latest write, the (monotonic) time elapsed since that
/// write returned, and the writer's time found in the reader's copy of the row. Never negative.
pub fn heartbeat_lag(
    written_epoch: f64,
    since_write: Duration,
    seen_on_reader_epoch: f64,
) -> Result<Duration, HeartbeatError> {
    let lag = written_epoch + since_write.as_secs_f64() - seen_on_reader_epoch;
    if !lag.is_finite() {
        return Err(HeartbeatError::BadTimestamp);
    }
    Ok(Duration::try_from_secs_f64(lag.max(0.0)).unwrap_or(Duration::MAX))
}

struct Session {
    region: String,
    client: Client,
    /// The writer's table was created on this connection (`CREATE TABLE IF NOT EXISTS`); a
    /// follower's read-only connection never creates it.
    table_ready: bool,
}

/// The `float8` epoch in the first column of `row`.
fn epoch(row: &tokio_postgres::Row, role: Role, region: &str) -> Result<f64, HeartbeatError> {
    row.try_get(0).map_err(|source| HeartbeatError::Query {
        role,
        region: region.to_owned(),
        source,
    })
}

#[derive(Clone, Copy)]
struct LastWrite {
    epoch: f64,
    at: Instant,
}

/// One heartbeat pair of connections (writer and reader), kept open between rounds and reopened
/// after an error or when the writer region changes.
pub struct HeartbeatProbe {
    config: HeartbeatConfig,
    table: String,
    writer: Option<Session>,
    reader: Option<Session>,
}

impl HeartbeatProbe {
    pub fn new(config: &HeartbeatConfig) -> Result<Self, HeartbeatError> {
        Ok(Self {
            table: quote_table(&config.table)?,
            config: config.clone(),
            writer: None,
            reader: None,
        })
    }

    /// A follower's round, read-only: the writer's clock now and the row seen on the reader.
    /// The leader writes the row every interval, so the result is an upper bound of the lag (by
    /// up to one interval); nothing is written, not even the table.
    pub async fn observe(
        &mut self,
        writer_region: &str,
        reader_region: &str,
    ) -> Result<LagObservation, HeartbeatError> {
        let now = self.writer_clock(writer_region).await;
        self.against_reader(now, reader_region).await
    }

    /// The second half of a round: `writer` (the writer's time, or why it is unknown) against
    /// the row seen on the reader.
    async fn against_reader(
        &mut self,
        writer: Result<LastWrite, HeartbeatError>,
        reader_region: &str,
    ) -> Result<LagObservation, HeartbeatError> {
        let writer = match writer {
            Ok(w) => w,
            Err(e) => {
                self.writer = None;
                return Err(e);
            }
        };
        let seen = match self.read(reader_region).await {
            Ok(seen) => seen,
            Err(e) => {
                if !matches!(e, HeartbeatError::NotReplicated { .. }) {
                    self.reader = None;
                }
                return Err(e);
            }
        };
        let lag = heartbeat_lag(writer.epoch, writer.at.elapsed(), seen)?;
        Ok(LagObservation {
            lag,
            rpo_lag: None,
            region: reader_region.to_owned(),
            source: LagSourceKind::Heartbeat,
            observed_at: OffsetDateTime::now_utc(),
        })
    }

    /// The writer's `clock_timestamp()`, on a connection that writes nothing.
    async fn writer_clock(&mut self, region: &str) -> Result<LastWrite, HeartbeatError> {
        let session = self.session(Role::Writer, region, false).await?;
        let row = bounded(
            Role::Writer,
            region,
            session
                .client
                .query_one("SELECT extract(epoch FROM clock_timestamp())::float8", &[]),
        )
        .await?;
        Ok(LastWrite {
            epoch: epoch(&row, Role::Writer, region)?,
            at: Instant::now(),
        })
    }

    /// One round: write the heartbeat in `writer_region`, read it in `reader_region`.
    pub async fn beat(
        &mut self,
        writer_region: &str,
        reader_region: &str,
    ) -> Result<LagObservation, HeartbeatError> {
        let written = self.write(writer_region).await;
        self.against_reader(written, reader_region).await
    }

    async fn write(&mut self, region: &str) -> Result<LastWrite, HeartbeatError> {
        let upsert = format!(
            "INSERT INTO {t} (id, written_at, writer_region) VALUES (1, clock_timestamp(), $1) \
             ON CONFLICT (id) DO UPDATE SET written_at = EXCLUDED.written_at, \
             writer_region = EXCLUDED.writer_region \
             RETURNING extract(epoch FROM written_at)::float8",
            t = self.table
        );
        let session = self.session(Role::Writer, region, true).await?;
        let row = bounded(
            Role::Writer,
            region,
            session.client.query_one(&upsert, &[&region]),
        )
        .await?;
        Ok(LastWrite {
            epoch: epoch(&row, Role::Writer, region)?,
            at: Instant::now(),
        })
    }

    async fn read(&mut self, region: &str) -> Result<f64, HeartbeatError> {
        let select = format!(
            "SELECT extract(epoch FROM written_at)::float8 FROM {} WHERE id = 1",
            self.table
        );
        let session = self.session(Role::Reader, region, false).await?;
        let row = match bounded(Role::Reader, region, session.client.query_opt(&select, &[])).await
        {
            Ok(row) => row,
            Err(HeartbeatError::Query { source, .. })
                if source.code() == Some(&SqlState::UNDEFINED_TABLE) =>
            {
                return Err(HeartbeatError::NotReplicated {
                    region: region.to_owned(),
                })
            }
            Err(e) => return Err(e),
        };
        let row = row.ok_or_else(|| HeartbeatError::NotReplicated {
            region: region.to_owned(),
        })?;
        epoch(&row, Role::Reader, region)
    }

    /// The open connection of `role` to `region`, (re)connected when there is none, it goes to
    /// another region or it is closed. With `table` (the leader's writes), the writer's table is
    /// created on it first (`CREATE TABLE IF NOT EXISTS`, once per connection); a follower's
    /// connection never creates it.
    async fn session(
        &mut self,
        role: Role,
        region: &str,
        table: bool,
    ) -> Result<&Session, HeartbeatError> {
        let slot = match role {
            Role::Writer => &self.writer,
            Role::Reader => &self.reader,
        };
        if slot
            .as_ref()
            .is_none_or(|s| s.region != region || s.client.is_closed())
        {
            let client = self.connect(region, role).await?;
            let session = Some(Session {
                region: region.to_owned(),
                client,
                table_ready: false,
            });
            match role {
                Role::Writer => self.writer = session,
                Role::Reader => self.reader = session,
            }
        }
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} (\
             id smallint PRIMARY KEY CHECK (id = 1), \
             written_at timestamptz NOT NULL, \
             writer_region text NOT NULL)",
            self.table
        );
        let slot = match role {
            Role::Writer => &mut self.writer,
            Role::Reader => &mut self.reader,
        };
        let Some(session) = slot.as_mut() else {
            return Err(HeartbeatError::NoEndpoint {
                region: region.to_owned(),
            });
        };
        if table && !session.table_ready {
            bounded(role, region, session.client.batch_execute(&create)).await?;
            session.table_ready = true;
        }
        Ok(session)
    }

    async fn connect(&self, region: &str, role: Role) -> Result<Client, HeartbeatError> {
        let endpoint =
            self.config
                .endpoints
                .get(region)
                .ok_or_else(|| HeartbeatError::NoEndpoint {
                    region: region.to_owned(),
                })?;
        let (host, port) = parse_endpoint(endpoint)?;
        // Resolved per connection, so a rotated secret (a remounted Kubernetes Secret) is used
        // on the next reconnect without restarting failoverd.
        let password = self.config.password.resolve()?;
        let mut pg = tokio_postgres::Config::new();
        pg.host(&host)
            .port(port)
            .dbname(&self.config.database)
            .user(&self.config.user)
            .password(password)
            .application_name("failoverd-heartbeat")
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .options(format!(
                "-c statement_timeout={}",
                STATEMENT_TIMEOUT.as_millis()
            ));
        let connecting = tokio::time::timeout(CONNECT_TIMEOUT, pg.connect(NoTls)).await;
        let (client, connection) = match connecting {
            Ok(Ok(pair)) => pair,
            Ok(Err(source)) => {
                return Err(HeartbeatError::Connect {
                    role,
                    region: region.to_owned(),
                    source,
                })
            }
            Err(_) => {
                return Err(HeartbeatError::Timeout {
                    role,
                    region: region.to_owned(),
                    limit: CONNECT_TIMEOUT,
                })
            }
        };
        // The connection task ends when the client is dropped or the server goes away.
        let region_label = region.to_owned();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(region = %region_label, %role, error = %e, "heartbeat connection ended");
            }
        });
        Ok(client)
    }
}

async fn bounded<T>(
    role: Role,
    region: &str,
    query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, HeartbeatError> {
    match tokio::time::timeout(STATEMENT_TIMEOUT, query).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(HeartbeatError::Query {
            role,
            region: region.to_owned(),
            source,
        }),
        Err(_) => Err(HeartbeatError::Timeout {
            role,
            region: region.to_owned(),
            limit: STATEMENT_TIMEOUT,
        }),
    }
}

/// The heartbeat task of one global database.
pub(crate) struct HeartbeatTracker {
    pub global_cluster: String,
    pub probe: HeartbeatProbe,
    pub pair: crate::topology::RegionPair,
    pub state: SharedState,
    pub metrics: TrackerMetrics,
    /// The writer region, as published by the topology poller.
    pub writer: watch::Receiver<String>,
    /// Whether this failoverd leads (`None`: no leadership to follow, always write). A follower
    /// only observes ([`HeartbeatProbe::observe`]): it writes nothing in the database.
    pub leader: Option<watch::Receiver<Option<bool>>>,
}

impl HeartbeatTracker {
    pub(crate) async fn run(mut self, interval: Duration, mut stop: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                _ = ticks.tick() => {}
            }
            let writer = self.writer.borrow().clone();
            // The reader is the other region of the pair (the cold one while the writer is
            // unknown or outside the pair).
            let reader = self
                .pair
                .other(&writer)
                .unwrap_or(self.pair.cold())
                .to_owned();
            let leads = self
                .leader
                .as_ref()
                .is_none_or(|l| *l.borrow() == Some(true));
            let result = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                r = async {
                    if leads {
                        self.probe.beat(&writer, &reader).await
                    } else {
                        self.probe.observe(&writer, &reader).await
                    }
                } => r,
            };
            let id = self.global_cluster.as_str();
            match result {
                Ok(observation) => self.state.update_aurora(id, |a| {
                    a.lag = Some(observation);
                    a.lag_error = None;
                }),
                Err(e) => {
                    // "Not replicated yet" is expected for the first rounds after the table is
                    // created; it is recorded, but not counted as a failed poll.
                    if !matches!(e, HeartbeatError::NotReplicated { .. }) {
                        self.metrics.failed(poll_source::HEARTBEAT);
                        tracing::warn!(global_cluster = id, %writer, %reader, error = %e, "heartbeat failed");
                    }
                    let now = OffsetDateTime::now_utc();
                    let message = e.to_string();
                    self.state
                        .update_aurora(id, |a| record_failure(&mut a.lag_error, message, now));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            parse_endpoint("db.example:6432").unwrap(),
            ("db.example".into(), 6432)
        );
        assert_eq!(
            parse_endpoint("db.example").unwrap(),
            ("db.example".into(), 5432)
        );
        assert_eq!(parse_endpoint("[::1]:5433").unwrap(), ("::1".into(), 5433));
        assert_eq!(parse_endpoint("[::1]").unwrap(), ("::1".into(), 5432));
        for bad in [
            ":5432",
            "db:0",
            "db:x",
            "db:70000",
            "::1:5432",
            "[::1",
            "[::1]5432",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tables_are_quoted() {
        assert_eq!(
            quote_table("failoverd_heartbeat").unwrap(),
            "\"failoverd_heartbeat\""
        );
        assert_eq!(quote_table("ops.hb").unwrap(), "\"ops\".\"hb\"");
        for bad in ["", "a..b", ".a", "a.b.c"] {
            assert!(quote_table(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lag_uses_the_writer_clock_and_monotonic_elapsed_time() {
        // Written at writer time 1000.0, 0.25 s ago; the reader has the write of 997.5.
        let lag = heartbeat_lag(1000.0, Duration::from_millis(250), 997.5).unwrap();
        assert_eq!(lag, Duration::from_millis(2750));
        // Reader already has the latest write: only the elapsed time.
        let lag = heartbeat_lag(1000.0, Duration::from_millis(10), 1000.0).unwrap();
        assert_eq!(lag, Duration::from_millis(10));
        // Never negative.
        assert_eq!(
            heartbeat_lag(1000.0, Duration::ZERO, 1001.0).unwrap(),
            Duration::ZERO
        );
        assert!(heartbeat_lag(f64::NAN, Duration::ZERO, 1.0).is_err());
    }
}
