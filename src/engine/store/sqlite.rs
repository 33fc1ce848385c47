//! SQLite [`Store`]: the embedded default, one file in the state directory.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a commit is on disk (WAL fsynced) before
//! `append` returns. Each write is one `BEGIN IMMEDIATE` transaction that checks the fencing token
//! and the expected seq and inserts the event, which makes compare-and-swap and fencing hold across
//! processes sharing the file. rusqlite is blocking, so every call runs on tokio's blocking pool.
//!
//! The schema is versioned: `schema_migrations` records applied versions; opening applies missing
//! migrations in order and refuses a file written by a newer failoverd, or one that is not a
//! failoverd store at all, with an error naming the file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use time::OffsetDateTime;

use super::{FencingToken, IdempotencyKey, RunFilter, RunSummary, Store, StoreError, StoredRun};
use crate::engine::event::{Event, JournalEntry, Outcome, RunId, RunRecord};

/// `PRAGMA application_id` of failoverd stores ("FOVD"), so a foreign SQLite file is recognised.
const APPLICATION_ID: i64 = 0x464F_5644;

/// The WAL is truncated to this size after a checkpoint (`PRAGMA journal_size_limit`), and a
/// checkpoint runs every [`WAL_AUTOCHECKPOINT_PAGES`] pages, so the WAL of a small volume never
/// grows past a few MiB.
pub const WAL_SIZE_LIMIT: i64 = 4 * 1024 * 1024;
/// `PRAGMA wal_autocheckpoint` (SQLite's default, set explicitly).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 1000;

/// How long a writer waits for another process's write lock before failing. Writes are tiny (one
/// event), so a lock held for seconds means something is wrong.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migrations, in order. Never edit an applied migration; append a new one.
const MIGRATIONS: &[(u32, &str)] = &[(
    1,
    "CREATE TABLE runs (
        id          TEXT PRIMARY KEY,
        plan        TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        record      TEXT NOT NULL,
        last_seq    INTEGER NOT NULL DEFAULT 0,
        outcome     TEXT,
        finished_at TEXT
     );
     CREATE INDEX runs_unfinished ON runs (outcome) WHERE outcome IS NULL;
     CREATE TABLE events (
        run_id        TEXT NOT NULL REFERENCES runs (id),
        seq           INTEGER NOT NULL,
        fencing_token INTEGER NOT NULL,
        event         TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
     ) WITHOUT ROWID;
     CREATE TABLE fencing (
        id    INTEGER PRIMARY KEY CHECK (id = 1),
        token INTEGER NOT NULL
     );
     CREATE TABLE idempotency_keys (
        key         TEXT PRIMARY KEY,
        run_id      TEXT NOT NULL REFERENCES runs (id),
        fingerprint TEXT NOT NULL
     );",
)];

/// The newest schema version this build understands.
pub const SCHEMA_VERSION: u32 = 1;

/// A [`Store`] in a SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
}

impl SqliteStore {
    /// Open the store at `path`, applying migrations; create it only when no file exists there.
    /// Blocking: call from a blocking context or use [`SqliteStore::open_async`].
    ///
    /// A new journal is built beside the path (`<name>.new`) and renamed into place once
    /// complete, so a file found at `path` is always one failoverd finished creating: an empty
    /// (0-byte) or unreadable one refuses the start with the path and the cause — starting on it
    /// would silently begin an empty history — and so does one that fails `PRAGMA quick_check`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                return Err(open_error(&path, "it is a directory".to_owned()))
            }
            Ok(meta) if meta.len() == 0 && !has_wal_content(&path) => {
                return Err(StoreError::Corrupt {
                    path: path.display().to_string(),
                    detail:
                        "the file is empty (0 bytes), and a journal failoverd created never is: \
                             restore it from a backup, or move it away to start with no run history"
                            .to_owned(),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_new(&path)?,
            Err(e) => return Err(open_error(&path, e.to_string())),
        }
        Self::open_existing(path)
    }

    fn open_existing(path: PathBuf) -> Result<Self, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            path: path.display().to_string(),
            detail,
        };
        let map_open = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
                corrupt(e.to_string())
            }
            Some(ErrorCode::CannotOpen)
            | Some(ErrorCode::ReadOnly)
            | Some(ErrorCode::PermissionDenied)
            | Some(ErrorCode::DiskFull)
            | Some(ErrorCode::SystemIoFailure) => {
                open_error(&path, describe_open_failure(&path, &e))
            }
            _ => StoreError::Sqlite(e),
        };
        let mut conn = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(map_open)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(map_open)?;
        // Recognise the file before changing anything in it (WAL mode is persistent).
        let app_id: i64 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(map_open)?;
        let table_count: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(map_open)?;
        if app_id != APPLICATION_ID && !(app_id == 0 && table_count == 0) {
            return Err(corrupt(format!(
                "application_id {app_id:#x} is not failoverd's and the file is not empty"
            )));
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(map_open)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(corrupt(format!(
                "could not enable WAL (journal_mode={mode})"
            )));
        }
        conn.execute_batch(&format!(
            "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; \
             PRAGMA journal_size_limit={WAL_SIZE_LIMIT}; \
             PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES};"
        ))
        .map_err(map_open)?;
        // Whatever survived a crash in the WAL goes into the file, and the WAL starts small.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(map_open)?;
        let problems: Vec<String> = {
            let mut stmt = conn.prepare("PRAGMA quick_check(5)").map_err(map_open)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(map_open)?;
            rows.collect::<Result<_, _>>().map_err(map_open)?
        };
        if problems.first().map(String::as_str) != Some("ok") {
            return Err(corrupt(format!(
                "PRAGMA quick_check found damage: {}; restore the file from a backup",
                problems.join("; ")
            )));
        }

        migrate(&mut conn).map_err(|e| match e {
            StoreError::Sqlite(e) => map_open(e),
            other => other,
        })?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(path),
        })
    }

    /// [`SqliteStore::open`] on the blocking pool.
    pub async fn open_async(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || Self::open(path))
            .await
            .map_err(|e| StoreError::Unavailable(format!("open task failed: {e}")))?
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version recorded in the file.
    pub async fn schema_version(&self) -> Result<u32, StoreError> {
        self.blocking(|conn| current_version(conn)).await
    }

    /// Run `f` with the connection on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Unavailable("sqlite connection lock poisoned".into()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }
}

/// A new, complete journal at `path`: created and migrated at `<name>.new`, closed (which
/// checkpoints its WAL into it), fsynced, and renamed into place.
fn create_new(path: &Path) -> Result<(), StoreError> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    let tmp = path.with_file_name(name);
    let remove_tmp = || {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = tmp.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
    };
    // A `.new` left by a crash during an earlier creation is incomplete by construction.
    remove_tmp();
    let build = || -> Result<(), String> {
        let mut conn = Connection::open(&tmp).map_err(|e| describe_open_failure(&tmp, &e))?;
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .map_err(|e| e.to_string())?;
        migrate(&mut conn).map_err(|e| e.to_string())?;
        conn.close().map_err(|(_, e)| e.to_string())?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, path).map_err(|e| e.to_string())?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(|e| e.to_string())
    };
    build().map_err(|detail| {
        remove_tmp();
        open_error(path, format!("cannot create a new journal: {detail}"))
    })
}

/// Whether `<path>-wal` holds data (a journal whose pages are all still in its WAL).
fn has_wal_content(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal)).is_ok_and(|m| m.len() > 0)
}

fn open_error(path: &Path, detail: String) -> StoreError {
    StoreError::Open {
        path: path.display().to_string(),
        detail,
    }
}

/// SQLite's reason, and what the operating system says when the file and its directory are
/// opened for writing (the WAL needs `<name>-wal` and `<name>-shm` beside the file).
fn describe_open_failure(path: &Path, e: &rusqlite::Error) -> String {
    let mut out = e.to_string();
    if path.exists() {
        if let Err(os) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            out.push_str(&format!("; opening the file for writing: {os}"));
            return out;
        }
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let probe = dir.join(".failoverd-write-check");
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(os) => out.push_str(&format!(
            "; creating a file in {} (the WAL needs its -wal and -shm files there): {os}",
            dir.display()
        )),
    }
    out
}

fn current_version(conn: &Connection) -> Result<u32, StoreError> {
    let v: Option<u32> = conn.query_row("SELECT max(version) FROM schema_migrations", [], |r| {
        r.get(0)
    })?;
    Ok(v.unwrap_or(0))
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    INTEGER PRIMARY KEY,
            applied_at TEXT NOT NULL
         );",
    )?;
    tx.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID};"))?;
    let found = current_version(&tx)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![version, now_rfc3339()],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn now_rfc3339() -> String {
    format_time(OffsetDateTime::now_utc())
}

fn format_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn parse_time(s: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| StoreError::Decode(format!("timestamp {s:?}: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Decode(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Decode(e.to_string()))
}

fn outcome_from_str(s: &str) -> Result<Outcome, StoreError> {
    from_json(&format!("\"{s}\""))
}

/// Check and advance the fencing token inside the caller's transaction.
fn check_fence(tx: &rusqlite::Transaction<'_>, token: FencingToken) -> Result<(), StoreError> {
    let current: Option<i64> = tx
        .query_row("SELECT token FROM fencing WHERE id = 1", [], |r| r.get(0))
        .optional()?;
    let current = current.unwrap_or(0) as u64;
    if token.0 < current {
        return Err(StoreError::StaleFencingToken {
            presented: token,
            current: FencingToken(current),
        });
    }
    if token.0 > current {
        tx.execute(
            "INSERT INTO fencing (id, token) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET token = excluded.token",
            params![token.0 as i64],
        )?;
    }
    Ok(())
}

fn load_entries(
    conn: &Connection,
    run_id: RunId,
    after_seq: u64,
) -> Result<Vec<JournalEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, event FROM events WHERE run_id = ?1 AND seq > ?2 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![run_id.to_string(), after_seq as i64], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, json) = row?;
        out.push(JournalEntry {
            seq: seq as u64,
            event: from_json(&json)?,
        });
    }
    Ok(out)
}

#[async_trait]
impl Store for SqliteStore {
    async fn fence(&self, token: FencingToken) -> Result<(), StoreError> {
        self.blocking(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            check_fence(&tx, token)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn create(
        &self,
        record: &RunRecord,
        token: FencingToken,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<(), StoreError> {
        let json = to_json(record)?;
        let id = record.id;
        let plan = record.plan.clone();
        let created_at = format_time(record.created_at);
        let idempotency = idempotency.cloned();
        self.blocking(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            check_fence(&tx, token)?;
            let exists: Option<i64> = tx
                .query_row("SELECT 1 FROM runs WHERE id = ?1", [id.to_string()], |r| {
                    r.get(0)
                })
                .optional()?;
            if exists.is_some() {
                return Err(StoreError::AlreadyExists(id));
            }
            tx.execute(
                "INSERT INTO runs (id, plan, created_at, record) VALUES (?1, ?2, ?3, ?4)",
                params![id.to_string(), plan, created_at, json],
            )?;
            if let Some(k) = idempotency {
                let existing: Option<(String, String)> = tx
                    .query_row(
                        "SELECT run_id, fingerprint FROM idempotency_keys WHERE key = ?1",
                        [&k.key],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                if let Some((run_id, fingerprint)) = existing {
                    return Err(StoreError::IdempotencyKeyTaken {
                        run_id: run_id
                            .parse()
                            .map_err(|e| StoreError::Decode(format!("run id {run_id:?}: {e}")))?,
                        same_request: fingerprint == k.fingerprint,
                        key: k.key,
                    });
                }
                tx.execute(
                    "INSERT INTO idempotency_keys (key, run_id, fingerprint) VALUES (?1, ?2, ?3)",
                    params![k.key, id.to_string(), k.fingerprint],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn append(
        &self,
        run_id: RunId,
        expected_seq: u64,
        token: FencingToken,
        event: &Event,
    ) -> Result<u64, StoreError> {
        let json = to_json(event)?;
        let outcome = event.kind.terminal_outcome().map(|o| o.as_str());
        let at = format_time(event.at);
        self.blocking(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            check_fence(&tx, token)?;
            let actual: Option<i64> = tx
                .query_row(
                    "SELECT last_seq FROM runs WHERE id = ?1",
                    [run_id.to_string()],
                    |r| r.get(0),
                )
                .optional()?;
            let actual = actual.ok_or(StoreError::NotFound(run_id))? as u64;
            if actual != expected_seq {
                return Err(StoreError::Conflict {
                    run_id,
                    expected: expected_seq,
                    actual,
                });
            }
            let seq = actual + 1;
            tx.execute(
                "INSERT INTO events (run_id, seq, fencing_token, event) VALUES (?1, ?2, ?3, ?4)",
                params![run_id.to_string(), seq as i64, token.0 as i64, json],
            )?;
            tx.execute(
                "UPDATE runs SET last_seq = ?2,
                    outcome = coalesce(?3, outcome),
                    finished_at = CASE WHEN ?3 IS NULL THEN finished_at ELSE ?4 END
                 WHERE id = ?1",
                params![run_id.to_string(), seq as i64, outcome, at],
            )?;
            tx.commit()?;
            Ok(seq)
        })
        .await
    }

    async fn load(&self, run_id: RunId) -> Result<StoredRun, StoreError> {
        self.blocking(move |conn| {
            let record: Option<String> = conn
                .query_row(
                    "SELECT record FROM runs WHERE id = ?1",
                    [run_id.to_string()],
                    |r| r.get(0),
                )
                .optional()?;
            let record: RunRecord = from_json(&record.ok_or(StoreError::NotFound(run_id))?)?;
            let events = load_entries(conn, run_id, 0)?;
            Ok(StoredRun { record, events })
        })
        .await
    }

    async fn events_after(
        &self,
        run_id: RunId,
        after_seq: u64,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        self.blocking(move |conn| {
            let exists: Option<i64> = conn
                .query_row(
                    "SELECT 1 FROM runs WHERE id = ?1",
                    [run_id.to_string()],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_none() {
                return Err(StoreError::NotFound(run_id));
            }
            load_entries(conn, run_id, after_seq)
        })
        .await
    }

    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        let filter = filter.clone();
        self.blocking(move |conn| {
            let limit = filter
                .limit
                .map(|l| i64::try_from(l).unwrap_or(i64::MAX))
                .unwrap_or(-1);
            let mut stmt = conn.prepare_cached(
                "SELECT record, last_seq, outcome, finished_at FROM runs
                 WHERE (?1 = 0 OR outcome IS NULL) AND (?2 IS NULL OR plan = ?2)
                 ORDER BY id DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![filter.unfinished_only as i64, filter.plan, limit],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                    ))
                },
            )?;
            let mut out = Vec::new();
            for row in rows {
                let (record, last_seq, outcome, finished_at) = row?;
                out.push(RunSummary {
                    record: from_json(&record)?,
                    last_seq: last_seq as u64,
                    outcome: outcome.as_deref().map(outcome_from_str).transpose()?,
                    finished_at: finished_at.as_deref().map(parse_time).transpose()?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn find_idempotency_key(
        &self,
        key: &str,
    ) -> Result<Option<(RunId, IdempotencyKey)>, StoreError> {
        let key = key.to_owned();
        self.blocking(move |conn| {
            let row: Option<(String, String)> = conn
                .query_row(
                    "SELECT run_id, fingerprint FROM idempotency_keys WHERE key = ?1",
                    [&key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            row.map(|(run_id, fingerprint)| {
                let id = run_id
                    .parse()
                    .map_err(|e| StoreError::Decode(format!("run id {run_id:?}: {e}")))?;
                Ok((id, IdempotencyKey { key, fingerprint }))
            })
            .transpose()
        })
        .await
    }
}
