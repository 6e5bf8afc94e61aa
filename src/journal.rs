//! The delivery journal: SQLite (WAL) at `<state_dir>/journal.sqlite3`.
//!
//! A run and every planned delivery are written in one transaction before the first message
//! goes out. While sending, one writer thread owns a connection and commits state changes in
//! batches (group commit): a delivery's `sending` mark is durable before its message leaves, but
//! 16 concurrent deliveries share one fsync. A delivery found `sending` by a later process was
//! in flight when the previous one died: it becomes `unknown`.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, mpsc};
use std::thread;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::fsutil;

mod checkpoint;
mod schema;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Sqlite { path: String, source: rusqlite::Error },
    #[error("state folder {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("state folder {0} is in use by another announce process (send or resume); wait for it to finish")]
    Locked(String),
    #[error("journal {path} was written by a newer announce (schema version {version}); use that version")]
    Newer { path: String, version: i64 },
    #[error("the journal writer stopped unexpectedly")]
    WriterGone,
}

// Here rather than in error.rs, which then depends on no module of ours but secrets.
impl From<JournalError> for crate::error::AppError {
    fn from(e: JournalError) -> Self {
        crate::error::AppError::Runtime(anyhow::Error::new(e))
    }
}

type Result<T> = std::result::Result<T, JournalError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Sending,
    Sent,
    Delivered,
    Undelivered,
    Failed,
    Skipped,
    Unknown,
    /// A later channel of a person's `[reach]` chain, waiting for the earlier one to fail.
    /// Internal: reports leave these out (the person did not need that channel).
    Standby,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::Pending,
        Status::Sending,
        Status::Sent,
        Status::Delivered,
        Status::Undelivered,
        Status::Failed,
        Status::Skipped,
        Status::Unknown,
        Status::Standby,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Undelivered => "undelivered",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Unknown => "unknown",
            Status::Standby => "standby",
        }
    }

    pub fn parse(s: &str) -> Status {
        Status::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .unwrap_or(Status::Unknown)
    }
}

/// A run as stored.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: String,
    pub digest: String,
    pub dry_run: bool,
    pub title: String,
    pub thread: Option<String>,
    pub severity: String,
    /// The announcement file as it was read.
    pub announcement: String,
    pub origin: String,
    pub base_dir: String,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// One planned delivery, as written at planning time.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub channel: String,
    pub channel_type: String,
    pub recipient: String,
    pub name: String,
    /// `recipient.*` template data (JSON), so `resume` renders the same message.
    pub data: Option<String>,
    pub status: Status,
    /// For skipped ones: the reason. `problem` marks skips caused by bad input (exit 3).
    pub error: Option<String>,
    pub problem: bool,
    /// The audience line where the person's record starts (header = line 1); `None` for
    /// broadcasts.
    pub row: Option<u64>,
    /// Made because an earlier channel of the person's `[reach]` chain failed.
    pub fallback: bool,
    /// Position in the `[reach]` order; `None` outside a chain.
    pub step: Option<u32>,
}

/// One channel's deliveries of a run, counted ([`Journal::status_counts`]).
#[derive(Debug, Clone)]
pub struct ChannelCounts {
    pub channel: String,
    pub channel_type: String,
    /// The channel's first delivery: channels are listed in this order.
    pub first_id: i64,
    /// The channel's last delivery: with `first_id`, where a report finds the run's rows.
    pub last_id: i64,
    pub counts: Vec<(Status, usize)>,
    /// Skipped because of bad input (`problem`).
    pub bad_skips: usize,
}

/// One delivery as read back: what was planned (its fields read through `Deref`, as
/// `row.recipient`) and what sending made of it since. `planned.error` is the latest error.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: i64,
    pub planned: NewDelivery,
    pub attempts: u32,
    pub provider_id: Option<String>,
    pub route: Option<String>,
    pub message_id: Option<String>,
    pub updated_at: String,
}

impl std::ops::Deref for DeliveryRow {
    type Target = NewDelivery;
    fn deref(&self) -> &NewDelivery {
        &self.planned
    }
}

/// Which deliveries [`Journal::each_delivery`] visits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    All,
    /// Failed, undelivered, unknown (or left `sending`), and skipped because of bad input.
    Problems,
    /// Everything else.
    NoProblems,
}

/// SQL for [`Which::Problems`].
const PROBLEM: &str =
    "(status IN ('failed', 'undelivered', 'unknown', 'sending') OR (status = 'skipped' AND problem = 1))";

/// Deliveries a report shows: a `standby` one was not (yet) needed for its person.
const SHOWN: &str = "status != 'standby'";

const DELIVERY_COLUMNS: &str = "id, channel, channel_type, recipient, name, data, status, problem, attempts, \
                                provider_id, route, error, message_id, updated_at, row, fallback, step";

fn delivery_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: r.get(0)?,
        planned: NewDelivery {
            channel: r.get(1)?,
            channel_type: r.get(2)?,
            recipient: r.get(3)?,
            name: r.get(4)?,
            data: r.get(5)?,
            status: Status::parse(&r.get::<_, String>(6)?),
            problem: r.get(7)?,
            error: r.get(11)?,
            row: r.get::<_, Option<i64>>(14)?.and_then(|n| u64::try_from(n).ok()),
            fallback: r.get(15)?,
            step: r.get(16)?,
        },
        attempts: r.get(8)?,
        provider_id: r.get(9)?,
        route: r.get(10)?,
        message_id: r.get(12)?,
        updated_at: r.get(13)?,
    })
}

/// The next channel of a person's `[reach]` chain after delivery ?1 (same person, the
/// smallest later step still on standby) becomes `pending`. Run in the transaction that writes
/// ?1's `failed` or `undelivered`, so a crash cannot separate the two.
const ACTIVATE_NEXT: &str = "UPDATE deliveries SET status = 'pending', updated_at = ?2 WHERE id = (
       SELECT n.id FROM deliveries d JOIN deliveries n
         ON n.person = d.person AND n.step > d.step
       WHERE d.id = ?1 AND n.status = 'standby'
       ORDER BY n.step LIMIT 1)";

/// A failed chain delivery whose next channel was already activated: retrying it could reach
/// the person twice.
const FALLBACK_TAKEN: &str = "EXISTS (SELECT 1 FROM deliveries n
       WHERE n.person = deliveries.person AND n.step > deliveries.step
         AND n.status != 'standby' AND n.fallback = 1)";

/// The deliveries of run ?1 (their lanes).
const OF_RUN: &str = "lane IN (SELECT id FROM lanes WHERE run_id = ?1)";

fn activate_next(conn: &Connection, id: i64, now: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached(ACTIVATE_NEXT)?.execute(params![id, now])
}

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Millisecond)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The state folder: journal plus an advisory lock held by `send` / `resume`.
pub struct Journal {
    conn: Connection,
    path: PathBuf,
    /// A second connection opened ahead of [`Journal::writer`] (see [`Spare`]).
    spare: Option<Connection>,
    /// Held for its drop, which ends the checkpointer thread.
    _checkpoints: checkpoint::Checkpoints,
}

/// Held while a process may send from this state folder.
pub struct StateLock {
    _file: File,
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> JournalError + '_ {
    move |source| JournalError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(sql(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(sql(path))?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(sql(path))?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(sql(path))?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(sql(path))?;
    Ok(conn)
}

/// An empty journal of the current [`schema::VERSION`], in WAL mode: what [`write_empty`]
/// makes (the test `the_embedded_empty_journal_is_what_the_schema_makes` keeps it so).
static EMPTY: &[u8] = include_bytes!("../assets/journal/empty.sqlite3");

/// Make a new journal at `path` (whose folder exists): the embedded empty journal is written
/// under a temporary name, synced once and linked into place. Creating the tables in place cost
/// seven fsyncs and SQLite's work of parsing the schema; this is two fsyncs and a file write,
/// and a crash leaves no journal or a whole empty one, never half of one. [`Journal::open`]
/// then checks its version like any other journal's (an older one would be migrated). Where
/// another process linked its own first, that one is used.
fn create(path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let io = |source| JournalError::Io {
        path: dir.display().to_string(),
        source,
    };
    // 0600: the -wal and -shm files SQLite makes copy the database file's mode.
    let tmp = fsutil::write_synced_temp(path, EMPTY, 0o600).map_err(io)?;
    let linked = match std::fs::hard_link(&tmp, path) {
        Ok(()) => fsutil::sync_dir(dir).map_err(io),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(e)),
    };
    let _ = std::fs::remove_file(&tmp);
    linked
}

/// Write an empty journal of the current schema at `path` (a new file) the way SQLite makes
/// one: the tables without a rollback journal or fsyncs, then switched to WAL. The source of
/// [`EMPTY`].
#[cfg(test)]
fn write_empty(path: &Path) -> rusqlite::Result<()> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "OFF")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    schema::prepare(&mut conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.close().map_err(|(_, e)| e)
}

/// Database file `db` and the files SQLite keeps beside it.
pub fn files_of(db: &Path) -> [PathBuf; 4] {
    ["", "-wal", "-shm", "-journal"].map(|suffix| {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    })
}

/// A connection to a journal opened on another thread while this one still writes (a plan's
/// commit waits on the disk), for [`Journal::writer`] to take instead of opening its own.
pub struct Spare(Connection);

impl Spare {
    pub fn open(journal: &Path) -> Result<Spare> {
        open_connection(journal).map(Spare)
    }
}

impl Journal {
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join("journal.sqlite3")
    }

    /// Open (creating with private permissions) the journal in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Journal> {
        let io = |source| JournalError::Io {
            path: state_dir.display().to_string(),
            source,
        };
        fsutil::create_private_dir(state_dir).map_err(io)?;
        let path = Self::path_in(state_dir);
        if !path.exists() {
            create(&path)?;
        }
        let mut conn = open_connection(&path)?;
        let checkpoints = checkpoint::Checkpoints::new(&path);
        checkpoints.attach(&mut conn).map_err(sql(&path))?;
        match schema::prepare(&mut conn).map_err(sql(&path))? {
            schema::Opened::Current => Ok(Journal {
                conn,
                path,
                spare: None,
                _checkpoints: checkpoints,
            }),
            schema::Opened::Newer(version) => Err(JournalError::Newer {
                path: path.display().to_string(),
                version,
            }),
        }
    }

    /// Open an existing journal for reading; `None` when there is none yet.
    pub fn open_existing(state_dir: &Path) -> Result<Option<Journal>> {
        if !Self::path_in(state_dir).exists() {
            return Ok(None);
        }
        Self::open(state_dir).map(Some)
    }

    /// Take the state folder's lock, or fail at once if another process has it.
    pub fn lock(state_dir: &Path) -> Result<StateLock> {
        let io = |source| JournalError::Io {
            path: state_dir.display().to_string(),
            source,
        };
        fsutil::create_private_dir(state_dir).map_err(io)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(state_dir.join("lock"))
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(StateLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(JournalError::Locked(state_dir.display().to_string())),
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keep `spare` for the [`Journal::writer`] to come.
    pub fn keep_spare(&mut self, spare: Spare) {
        self.spare = Some(spare.0);
    }

    /// Write a run and all its deliveries in one transaction, through the same path as the
    /// planner ([`Journal::begin_run`]); for tests that need a journaled run without planning one.
    #[doc(hidden)]
    pub fn create_run(&mut self, run: &RunRow, deliveries: &[NewDelivery]) -> Result<()> {
        let mut writer = self.begin_run(run)?;
        let mut id = writer.first_free_id();
        // The planner gives each address one delivery per channel; so does this.
        let mut seen = std::collections::HashSet::new();
        for d in deliveries {
            if seen.insert((d.channel.as_str(), d.recipient.as_str())) {
                writer.insert(id, &d.as_ref())?;
                id += 1;
            }
        }
        writer.commit()
    }

    pub fn run(&self, id: &str) -> Result<Option<RunRow>> {
        let id = if id == "latest" {
            self.latest_run_id()?.unwrap_or_default()
        } else {
            id.to_string()
        };
        self.conn
            .query_row(
                "SELECT id, digest, dry_run, title, thread, severity, announcement, origin, base_dir, started_at, finished_at
                 FROM runs WHERE id = ?1",
                [&id],
                |r| {
                    Ok(RunRow {
                        id: r.get(0)?,
                        digest: r.get(1)?,
                        dry_run: r.get(2)?,
                        title: r.get(3)?,
                        thread: r.get(4)?,
                        severity: r.get(5)?,
                        announcement: r.get(6)?,
                        origin: r.get(7)?,
                        base_dir: r.get(8)?,
                        started_at: r.get(9)?,
                        finished_at: r.get(10)?,
                    })
                },
            )
            .optional()
            .map_err(sql(&self.path))
    }

    pub fn latest_run_id(&self) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(&self.path))
    }

    pub fn runs(&self) -> Result<Vec<RunRow>> {
        let ids: Vec<String> = {
            let mut st = self
                .conn
                .prepare("SELECT id FROM runs ORDER BY started_at, rowid")
                .map_err(sql(&self.path))?;
            st.query_map([], |r| r.get(0))
                .map_err(sql(&self.path))?
                .collect::<std::result::Result<_, _>>()
                .map_err(sql(&self.path))?
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.run(&id)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    pub fn deliveries(&self, run_id: &str) -> Result<Vec<DeliveryRow>> {
        self.query_deliveries(&format!("WHERE run_id = ?1 AND {SHOWN} ORDER BY id"), params![run_id])
    }

    /// Deliveries of a run in the given statuses, for one channel.
    pub fn deliveries_in(&self, run_id: &str, channel: &str, statuses: &[Status]) -> Result<Vec<DeliveryRow>> {
        let list = statuses
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(",");
        self.query_deliveries(
            &format!("WHERE run_id = ?1 AND channel = ?2 AND status IN ({list}) ORDER BY id"),
            params![run_id, channel],
        )
    }

    fn query_deliveries(&self, filter: &str, p: impl rusqlite::Params) -> Result<Vec<DeliveryRow>> {
        let q = format!("SELECT {DELIVERY_COLUMNS} FROM delivery_view {filter}");
        let mut st = self.conn.prepare(&q).map_err(sql(&self.path))?;
        let rows = st.query_map(p, delivery_row).map_err(sql(&self.path))?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql(&self.path))
    }

    /// Visit a run's deliveries of `which` one at a time, in id order, without holding them
    /// all: a report of a million deliveries stays in constant memory. Stops at the first
    /// error `f` returns (the inner result); the outer one is the journal's.
    pub fn each_delivery<E>(
        &self,
        run_id: &str,
        which: Which,
        mut f: impl FnMut(DeliveryRow) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<(), E>> {
        let filter = match which {
            Which::All => String::new(),
            Which::Problems => format!("AND {PROBLEM}"),
            Which::NoProblems => format!("AND NOT {PROBLEM}"),
        };
        let q =
            format!("SELECT {DELIVERY_COLUMNS} FROM delivery_view WHERE run_id = ?1 AND {SHOWN} {filter} ORDER BY id");
        let mut st = self.conn.prepare(&q).map_err(sql(&self.path))?;
        let mut rows = st.query([run_id]).map_err(sql(&self.path))?;
        while let Some(r) = rows.next().map_err(sql(&self.path))? {
            if let Err(e) = f(delivery_row(r).map_err(sql(&self.path))?) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    /// How many deliveries of a run each channel has in each status, and the channels' types,
    /// in the order the channels first appear (by delivery id) — without reading the rows.
    pub fn status_counts(&self, run_id: &str) -> Result<Vec<ChannelCounts>> {
        let lanes: Vec<(i64, String, String)> = self
            .conn
            .prepare("SELECT id, channel, channel_type FROM lanes WHERE run_id = ?1")
            .and_then(|mut st| {
                st.query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(sql(&self.path))?;
        // Lane by lane, so that SQLite groups along the `(lane, status)` index instead of
        // sorting the run's deliveries into a temporary b-tree; each group's first and last id
        // are then one seek each in that index.
        let mut per_status = self
            .conn
            .prepare(
                "SELECT status, COUNT(*) FROM deliveries
                  WHERE lane = ?1 AND status != 'standby' GROUP BY status",
            )
            .map_err(sql(&self.path))?;
        let mut ends = self
            .conn
            .prepare(
                "SELECT (SELECT MIN(id) FROM deliveries WHERE lane = ?1 AND status = ?2),
                        (SELECT MAX(id) FROM deliveries WHERE lane = ?1 AND status = ?2)",
            )
            .map_err(sql(&self.path))?;
        let mut out: Vec<ChannelCounts> = Vec::new();
        for (lane, channel, channel_type) in lanes {
            let mut c = ChannelCounts {
                channel,
                channel_type,
                first_id: i64::MAX,
                last_id: i64::MIN,
                counts: Vec::new(),
                bad_skips: 0,
            };
            let rows = per_status
                .query_map([lane], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(sql(&self.path))?;
            for row in rows {
                let (status, n) = row.map_err(sql(&self.path))?;
                let (first_id, last_id): (i64, i64) = ends
                    .query_row(params![lane, status], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(sql(&self.path))?;
                c.first_id = c.first_id.min(first_id);
                c.last_id = c.last_id.max(last_id);
                c.counts.push((Status::parse(&status), usize::try_from(n).unwrap_or(0)));
            }
            if c.counts.is_empty() {
                continue;
            }
            c.bad_skips = self
                .conn
                .query_row(
                    "SELECT COUNT(*) FROM deliveries WHERE lane = ?1 AND status = 'skipped' AND problem = 1",
                    [lane],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(sql(&self.path))? as usize;
            out.push(c);
        }
        out.sort_by_key(|c| c.first_id);
        Ok(out)
    }

    /// A read query over the journal, one result row at a time, so that the people module can own
    /// what the rows mean while the journal keeps the connection and its error messages. Stops at
    /// the first error `f` returns (the inner result).
    pub fn each_row<E>(
        &self,
        q: &str,
        params: impl rusqlite::Params,
        mut f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<std::result::Result<(), E>>,
    ) -> Result<std::result::Result<(), E>> {
        let mut st = self.conn.prepare(q).map_err(sql(&self.path))?;
        let mut rows = st.query(params).map_err(sql(&self.path))?;
        while let Some(r) = rows.next().map_err(sql(&self.path))? {
            if let Err(e) = f(r).map_err(sql(&self.path))? {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    /// Deliveries left `sending` by a process that died: the provider may or may not have them.
    pub fn mark_in_flight_unknown(&self, run_id: &str) -> Result<usize> {
        self.conn
            .execute(
                &format!(
                    "UPDATE deliveries SET status = 'unknown', updated_at = ?2,
                       error = COALESCE(error || '; ', '') || 'was in flight when the previous process stopped'
                     WHERE {OF_RUN} AND status = 'sending'"
                ),
                params![run_id, now_rfc3339()],
            )
            .map_err(sql(&self.path))
    }

    /// Put deliveries in `from` back to `pending` (for `resume --retry-failed / --resend-unknown`),
    /// for one channel or (with `None`) all of them.
    pub fn requeue(&self, run_id: &str, from: Status, channel: Option<&str>) -> Result<usize> {
        self.conn
            .execute(
                &format!(
                    "UPDATE deliveries SET status = 'pending', updated_at = ?3
                     WHERE lane IN (SELECT id FROM lanes WHERE run_id = ?1 AND (?4 IS NULL OR channel = ?4))
                       AND status = ?2 AND problem = 0 AND NOT {FALLBACK_TAKEN}"
                ),
                params![run_id, from.as_str(), now_rfc3339(), channel],
            )
            .map_err(sql(&self.path))
    }

    /// Failed deliveries `--retry-failed` leaves alone because the person's next channel of the
    /// `[reach]` order already took over.
    pub fn failed_with_fallback(&self, run_id: &str) -> Result<usize> {
        self.conn
            .query_row(
                &format!("SELECT COUNT(*) FROM deliveries WHERE {OF_RUN} AND status = 'failed' AND {FALLBACK_TAKEN}"),
                [run_id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| usize::try_from(n).unwrap_or(0))
            .map_err(sql(&self.path))
    }

    pub fn finish_run(&self, run_id: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET finished_at = ?2 WHERE id = ?1",
                params![run_id, now_rfc3339()],
            )
            .map(|_| ())
            .map_err(sql(&self.path))
    }

    /// For email threading: Message-IDs of the first message of `thread` per recipient, from
    /// earlier runs, for channels of the given types.
    pub fn thread_roots(
        &self,
        thread: &str,
        exclude_run: &str,
        types: &[&str],
    ) -> Result<std::collections::HashMap<String, String>> {
        let list = types.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(",");
        let q = format!(
            "SELECT d.recipient, d.message_id FROM deliveries d JOIN lanes l ON l.id = d.lane JOIN runs r ON r.id = l.run_id
             WHERE r.thread = ?1 AND r.id != ?2 AND r.dry_run = 0 AND l.channel_type IN ({list})
               AND d.message_id IS NOT NULL AND d.status IN ('sent', 'delivered', 'unknown')
             ORDER BY r.started_at DESC, d.id DESC"
        );
        let mut st = self.conn.prepare(&q).map_err(sql(&self.path))?;
        let mut map = std::collections::HashMap::new();
        let rows = st
            .query_map(params![thread, exclude_run], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(sql(&self.path))?;
        // Ordered newest first, so the last insert per recipient is the oldest: the thread root.
        for row in rows {
            let (recipient, id) = row.map_err(sql(&self.path))?;
            map.insert(recipient, id);
        }
        Ok(map)
    }

    /// Attempt start times (ms) of a run's channel, for checking rate limits after the fact.
    pub fn attempt_times(&self, run_id: &str, channel: &str) -> Result<Vec<i64>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT a.started_ms FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
                 JOIN lanes l ON l.id = d.lane WHERE l.run_id = ?1 AND l.channel = ?2 ORDER BY a.started_ms",
            )
            .map_err(sql(&self.path))?;
        let rows = st
            .query_map(params![run_id, channel], |r| r.get(0))
            .map_err(sql(&self.path))?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql(&self.path))
    }

    /// Record a final status learnt later (`report --refresh`).
    /// `undelivered` hands the person to the next channel of their `[reach]` chain, in the same
    /// transaction; `true` when it did.
    pub fn set_status(&self, id: i64, status: Status, error: Option<&str>) -> Result<bool> {
        let write = || -> rusqlite::Result<bool> {
            let tx = self.conn.unchecked_transaction()?;
            let now = now_rfc3339();
            tx.execute(
                "UPDATE deliveries SET status = ?2, error = COALESCE(?3, error), updated_at = ?4 WHERE id = ?1",
                params![id, status.as_str(), error, now],
            )?;
            let activated = status == Status::Undelivered && activate_next(&tx, id, &now)? > 0;
            tx.commit()?;
            Ok(activated)
        };
        write().map_err(sql(&self.path))
    }

    /// A writer for the dispatcher, on its own thread. It takes this connection, and the
    /// journal reads on through a new one: SQLite syncs the folder on the first commit through
    /// each connection's handle on the WAL, and this one's has done so (for the plan), so the
    /// first `sending` mark costs one fsync instead of two.
    pub fn writer(&mut self) -> Result<Writer> {
        let fresh = match self.spare.take() {
            Some(conn) => conn,
            None => open_connection(&self.path)?,
        };
        let conn = std::mem::replace(&mut self.conn, fresh);
        // The writer's commits checkpoint inline, the way SQLite's do (see `checkpoint`);
        // while the thread still copies the plan, SQLite's checkpoint finds it busy and waits
        // for nothing.
        checkpoint::inline(&conn).map_err(sql(&self.path))?;
        let path = self.path.clone();
        let (tx, rx) = mpsc::channel::<Op>();
        let activated = Arc::new(AtomicUsize::new(0));
        let counter = activated.clone();
        let handle = thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer_loop(conn, path, rx, &counter))
            .map_err(|source| JournalError::Io {
                path: self.path.display().to_string(),
                source,
            })?;
        Ok(Writer {
            tx,
            handle: Some(handle),
            activated,
        })
    }
}

/// One planned delivery as the planner hands it over, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryRef<'a> {
    pub channel: &'a str,
    pub channel_type: &'a str,
    pub recipient: &'a str,
    pub name: &'a str,
    pub data: Option<&'a str>,
    pub status: Status,
    pub error: Option<&'a str>,
    pub problem: bool,
    pub row: Option<u64>,
    pub fallback: bool,
    pub step: Option<u32>,
}

impl NewDelivery {
    pub fn as_ref(&self) -> DeliveryRef<'_> {
        DeliveryRef {
            channel: &self.channel,
            channel_type: &self.channel_type,
            recipient: &self.recipient,
            name: &self.name,
            data: self.data.as_deref(),
            status: self.status,
            error: self.error.as_deref(),
            problem: self.problem,
            row: self.row,
            fallback: self.fallback,
            step: self.step,
        }
    }
}

impl DeliveryRef<'_> {
    pub fn to_owned(&self) -> NewDelivery {
        NewDelivery {
            channel: self.channel.to_string(),
            channel_type: self.channel_type.to_string(),
            recipient: self.recipient.to_string(),
            name: self.name.to_string(),
            data: self.data.map(str::to_string),
            status: self.status,
            error: self.error.map(str::to_string),
            problem: self.problem,
            row: self.row,
            fallback: self.fallback,
            step: self.step,
        }
    }
}

// `updated_at` is left NULL: until sending changes it, it is the lane's `planned_at`.
const PLANNED_COLUMNS: &str =
    "deliveries (id, lane, person, recipient, status, problem, error, nodata, fallback, step)";
const PERSON_COLUMNS: &str = "people (id, row, name, data)";

/// Rows a plan writes in one statement per table. Most of what inserting a small row costs is
/// the statement's own work (opening cursors on the table and its indexes, resetting), so a
/// statement of many rows costs little more than one of one row. The rows wait in memory
/// inside the plan's transaction, which only [`RunWriter::commit`] makes durable anyway.
const BATCH: usize = 32;

/// `INSERT INTO {columns} VALUES (?, ...), ...`: `rows` rows of `n` parameters.
fn insert_sql(columns: &str, n: usize, rows: usize) -> String {
    let one = format!("({})", vec!["?"; n].join(", "));
    format!("INSERT INTO {columns} VALUES {}", vec![one; rows].join(", "))
}

/// A person waiting to be written.
struct PersonRow {
    id: i64,
    row: Option<i64>,
    name: String,
    data: Option<String>,
}

impl PersonRow {
    fn values(&self) -> [&dyn rusqlite::ToSql; 4] {
        [&self.id, &self.row, &self.name, &self.data]
    }
}

/// A delivery waiting to be written.
struct PlannedRow {
    id: i64,
    lane: i64,
    person: i64,
    recipient: String,
    status: &'static str,
    problem: bool,
    error: Option<String>,
    nodata: bool,
    fallback: bool,
    step: Option<u32>,
}

impl PlannedRow {
    fn values(&self) -> [&dyn rusqlite::ToSql; 10] {
        [
            &self.id,
            &self.lane,
            &self.person,
            &self.recipient,
            &self.status,
            &self.problem,
            &self.error,
            &self.nodata,
            &self.fallback,
            &self.step,
        ]
    }
}

/// Write `rows` (and empty the vector): [`BATCH`] at a time, the rest one at a time.
fn write_rows<T, const N: usize>(
    tx: &Transaction<'_>,
    columns: &str,
    rows: &mut Vec<T>,
    values: impl for<'r> Fn(&'r T) -> [&'r dyn rusqlite::ToSql; N],
) -> rusqlite::Result<()> {
    let bind = |st: &mut rusqlite::Statement<'_>, chunk: &[T]| {
        for (i, r) in chunk.iter().enumerate() {
            for (j, v) in values(r).into_iter().enumerate() {
                st.raw_bind_parameter(1 + i * N + j, v)?;
            }
        }
        st.raw_execute()
    };
    let mut chunks = rows.chunks_exact(BATCH);
    if chunks.len() > 0 {
        let mut st = tx.prepare_cached(&insert_sql(columns, N, BATCH))?;
        for chunk in &mut chunks {
            bind(&mut st, chunk)?;
        }
    }
    if !chunks.remainder().is_empty() {
        let mut st = tx.prepare_cached(&insert_sql(columns, N, 1))?;
        for r in chunks.remainder().chunks(1) {
            bind(&mut st, r)?;
        }
    }
    rows.clear();
    Ok(())
}

/// A run being planned. The run and its deliveries go into one transaction, written as the
/// planner streams them, that only [`RunWriter::commit`] makes visible: dropping the writer
/// (an invalid plan, a "no" at the confirmation) leaves the journal as it was. It holds the
/// journal's write lock until then.
pub struct RunWriter<'j> {
    tx: Transaction<'j>,
    path: PathBuf,
    run_id: String,
    started_at: String,
    first_free_id: i64,
    next_person: i64,
    /// The run's channels written so far, with their lane ids.
    lanes: Vec<(String, i64)>,
    /// The audience row the last delivery was for, its person's id, and whether the person
    /// has `data` yet: the planner hands a row's deliveries over one after another.
    person: Option<(u64, i64, bool)>,
    /// Rows not yet written (see [`BATCH`]); people first, as deliveries refer to them.
    people: Vec<PersonRow>,
    deliveries: Vec<PlannedRow>,
}

impl Journal {
    /// Start writing `run`. Deliveries get explicit ids from [`RunWriter::first_free_id`] up.
    pub fn begin_run(&mut self, run: &RunRow) -> Result<RunWriter<'_>> {
        let path = self.path.clone();
        // A statement of many rows that may stop halfway (a constraint) keeps a copy of every
        // page it changes, to undo its first rows: SQLite's statement journal, a temporary
        // file once it outgrows 64 KiB, and then for the rest of the transaction (several
        // times the plan's own writes). Whether it stays in memory is fixed when the
        // transaction begins, so `temp_store` is MEMORY just for that moment: it is small (the
        // pages of one statement), and the connection's sorts keep their files.
        self.conn
            .pragma_update(None, "temp_store", "MEMORY")
            .map_err(sql(&path))?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql(&path))?;
        tx.pragma_update(None, "temp_store", "DEFAULT").map_err(sql(&path))?;
        insert_run(&tx, run).map_err(sql(&path))?;
        let (first_free_id, next_person) = tx
            .query_row(
                "SELECT (SELECT COALESCE(MAX(id), 0) + 1 FROM deliveries), (SELECT COALESCE(MAX(id), 0) + 1 FROM people)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(sql(&path))?;
        Ok(RunWriter {
            tx,
            path,
            run_id: run.id.clone(),
            started_at: run.started_at.clone(),
            first_free_id,
            next_person,
            lanes: Vec::new(),
            person: None,
            people: Vec::with_capacity(BATCH),
            deliveries: Vec::with_capacity(BATCH),
        })
    }
}

impl RunWriter<'_> {
    /// No delivery of any run has this id or a higher one.
    pub fn first_free_id(&self) -> i64 {
        self.first_free_id
    }

    /// Add a delivery with the given id. The caller gives each address one delivery per
    /// channel (nothing here checks), and a person's deliveries one after another.
    pub fn insert(&mut self, id: i64, d: &DeliveryRef<'_>) -> Result<()> {
        let lane = self.lane(d.channel, d.channel_type)?;
        let person = self.person(d)?;
        self.deliveries.push(PlannedRow {
            id,
            lane,
            person,
            recipient: d.recipient.to_string(),
            status: d.status.as_str(),
            problem: d.problem,
            error: d.error.map(str::to_string),
            nodata: d.data.is_none(),
            fallback: d.fallback,
            step: d.step,
        });
        if self.deliveries.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Write the rows waiting in memory.
    fn flush(&mut self) -> Result<()> {
        // Each lane's ids are a block of their own, and the planner hands a person's deliveries
        // over one lane after another: in id order, a batch's rows of the last lane are appends
        // to the table, which SQLite makes without searching the b-tree.
        self.deliveries.sort_unstable_by_key(|r| r.id);
        write_rows(&self.tx, PERSON_COLUMNS, &mut self.people, PersonRow::values)
            .and_then(|()| write_rows(&self.tx, PLANNED_COLUMNS, &mut self.deliveries, PlannedRow::values))
            .map_err(sql(&self.path))
    }

    /// The lane of `channel`, written with its first delivery.
    fn lane(&mut self, channel: &str, channel_type: &str) -> Result<i64> {
        if let Some((_, id)) = self.lanes.iter().find(|(c, _)| c == channel) {
            return Ok(*id);
        }
        self.tx
            .execute(
                "INSERT INTO lanes (run_id, channel, channel_type, planned_at) VALUES (?1, ?2, ?3, ?4)",
                params![self.run_id, channel, channel_type, self.started_at],
            )
            .map_err(sql(&self.path))?;
        let id = self.tx.last_insert_rowid();
        self.lanes.push((channel.to_string(), id));
        Ok(id)
    }

    /// The person of `d`: the previous delivery's when it is for the same audience row, else a
    /// new one (a broadcast target is a person of its own).
    fn person(&mut self, d: &DeliveryRef<'_>) -> Result<i64> {
        if let (Some(row), Some((last, id, has_data))) = (d.row, self.person)
            && row == last
        {
            // A skip for a missing address comes without data; the person's other channels have it.
            if let (Some(data), false) = (d.data, has_data) {
                match self.people.last_mut() {
                    Some(p) if p.id == id => p.data = Some(data.to_string()),
                    _ => self
                        .tx
                        .prepare_cached("UPDATE people SET data = ?2 WHERE id = ?1")
                        .and_then(|mut st| st.execute(params![id, data]))
                        .map(drop)
                        .map_err(sql(&self.path))?,
                }
                self.person = Some((row, id, true));
            }
            return Ok(id);
        }
        let id = self.next_person;
        self.next_person += 1;
        self.people.push(PersonRow {
            id,
            row: d.row.and_then(|n| i64::try_from(n).ok()),
            name: d.name.to_string(),
            data: d.data.map(str::to_string),
        });
        self.person = d.row.map(|row| (row, id, d.data.is_some()));
        Ok(id)
    }

    /// The recipient of a delivery written so far.
    pub fn recipient(&self, id: i64) -> Result<Option<String>> {
        if let Some(r) = self.deliveries.iter().find(|r| r.id == id) {
            return Ok(Some(r.recipient.clone()));
        }
        self.tx
            .prepare_cached("SELECT recipient FROM deliveries WHERE id = ?1")
            .and_then(|mut st| st.query_row([id], |r| r.get(0)).optional())
            .map_err(sql(&self.path))
    }

    /// An earlier non-dry run with this content digest.
    pub fn earlier_run_with_digest(&self, digest: &str) -> Result<Option<String>> {
        self.tx
            .query_row(
                "SELECT id FROM runs WHERE digest = ?1 AND dry_run = 0 AND id != ?2 ORDER BY started_at LIMIT 1",
                params![digest, self.run_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(&self.path))
    }

    /// Make the run and every delivery durable.
    pub fn commit(mut self) -> Result<()> {
        self.flush()?;
        self.tx.commit().map_err(sql(&self.path))
    }
}

fn insert_run(tx: &Transaction<'_>, run: &RunRow) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO runs (id, digest, dry_run, title, thread, severity, announcement, origin, base_dir, started_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            run.id,
            run.digest,
            run.dry_run,
            run.title,
            run.thread,
            run.severity,
            run.announcement,
            run.origin,
            run.base_dir,
            run.started_at
        ],
    )?;
    Ok(())
}

/// What the dispatcher records.
pub enum Op {
    /// Durable before the message leaves: on a crash the delivery is `unknown`, not `pending`.
    Sending {
        id: i64,
        attempt: u32,
        started_ms: i64,
        message_id: String,
        ack: tokio::sync::oneshot::Sender<bool>,
    },
    /// The attempt's outcome. `status` is `pending` when it will be retried.
    Outcome {
        id: i64,
        attempt: u32,
        status: Status,
        provider_id: Option<String>,
        route: Option<String>,
        error: Option<String>,
    },
    /// The attempt journaled by `Sending` never started (the run was stopped while it waited for
    /// a connection): back to `pending`, as if it had not been marked.
    Released { id: i64, attempt: u32 },
    /// Reply once everything before it is committed.
    Flush(tokio::sync::oneshot::Sender<bool>),
}

pub struct Writer {
    tx: mpsc::Sender<Op>,
    handle: Option<thread::JoinHandle<()>>,
    /// Fallbacks activated by committed outcomes (see [`Writer::activated`]).
    activated: Arc<AtomicUsize>,
}

impl Writer {
    /// Journal the start of an attempt and wait until it is durable.
    pub async fn sending(&self, id: i64, attempt: u32, message_id: &str) -> Result<i64> {
        let (ack, done) = tokio::sync::oneshot::channel();
        let started_ms = now_ms();
        self.tx
            .send(Op::Sending {
                id,
                attempt,
                started_ms,
                message_id: message_id.to_string(),
                ack,
            })
            .map_err(|_| JournalError::WriterGone)?;
        match done.await {
            Ok(true) => Ok(started_ms),
            _ => Err(JournalError::WriterGone),
        }
    }

    pub fn outcome(
        &self,
        id: i64,
        attempt: u32,
        status: Status,
        provider_id: Option<String>,
        route: Option<String>,
        error: Option<String>,
    ) -> Result<()> {
        self.tx
            .send(Op::Outcome {
                id,
                attempt,
                status,
                provider_id,
                route,
                error,
            })
            .map_err(|_| JournalError::WriterGone)
    }

    /// Undo a `sending` mark whose message was never handed to the channel.
    pub fn released(&self, id: i64, attempt: u32) -> Result<()> {
        self.tx
            .send(Op::Released { id, attempt })
            .map_err(|_| JournalError::WriterGone)
    }

    /// How many `[reach]` fallbacks committed outcomes have turned `pending` so far (after a
    /// [`Writer::flush`]: all of them).
    pub fn activated(&self) -> usize {
        self.activated.load(AtomicOrdering::SeqCst)
    }

    pub async fn flush(&self) -> Result<()> {
        let (ack, done) = tokio::sync::oneshot::channel();
        self.tx.send(Op::Flush(ack)).map_err(|_| JournalError::WriterGone)?;
        match done.await {
            Ok(true) => Ok(()),
            _ => Err(JournalError::WriterGone),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the loop after it commits what it has.
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

const MAX_BATCH: usize = 512;

/// How long the writer gathers operations before a commit once the lanes keep it busy (see
/// [`lingers`]).
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// A commit of at least this many operations means the lanes produce them faster than the
/// disk commits them.
const BUSY_BATCH: usize = 16;

/// Whether the writer waits [`LINGER`] for more operations before committing `batch`, after a
/// commit of `previous` operations.
///
/// An idle writer commits at once, so a lone `sending` mark (the run's first message, a slow
/// provider's next one) never waits for a timer. Under load every commit has a fixed cost (an
/// fsync, which on a VM is also an exit to the hypervisor, the WAL's frames for the index
/// pages, SQLite's locks), and committing as soon as the previous commit returns spends it on a
/// handful of deliveries against a fast relay (README, performance round eleven). Lingering
/// makes each commit carry more and costs the marks a couple of milliseconds, which the lanes'
/// look-ahead (`dispatch::Pace`, measured from the marks' latency) covers. A flush is waited for
/// by the end of a run, so it commits at once.
fn lingers(previous: usize, batch: &[Op]) -> bool {
    previous >= BUSY_BATCH && batch.len() < MAX_BATCH && !batch.iter().any(|op| matches!(op, Op::Flush(_)))
}

/// Group commit: the writer blocks until an operation comes, takes whatever else has queued
/// meanwhile (after a [`LINGER`] when the lanes keep it busy), and commits. While one commit
/// (its fsync) is under way the next operations queue up. A sender only wakes the writer when
/// it is idle in `recv`, never while it sleeps: once per commit, not once per operation.
fn writer_loop(mut conn: Connection, path: PathBuf, rx: mpsc::Receiver<Op>, activated: &AtomicUsize) {
    // Compiled while the first message is being prepared, not when its `sending` mark waits
    // for them. An error here comes back from `apply`.
    for sql in [MARK, OUTCOME, ATTEMPT, ATTEMPT_END, UNATTEMPT, UNMARK, ACTIVATE_NEXT] {
        let _ = conn.prepare_cached(sql);
    }
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut previous = 0;
    let take_queued = |batch: &mut Vec<Op>| {
        while batch.len() < MAX_BATCH
            && let Ok(op) = rx.try_recv()
        {
            batch.push(op);
        }
    };
    while let Ok(first) = rx.recv() {
        batch.push(first);
        take_queued(&mut batch);
        if lingers(previous, &batch) {
            thread::sleep(LINGER);
            take_queued(&mut batch);
        }
        previous = batch.len();
        let ok = match apply(&mut conn, &batch) {
            Ok(n) => {
                activated.fetch_add(n, AtomicOrdering::SeqCst);
                true
            }
            Err(e) => {
                tracing::error!("journal {}: {e}", path.display());
                false
            }
        };
        for op in batch.drain(..) {
            match op {
                Op::Sending { ack, .. } | Op::Flush(ack) => {
                    let _ = ack.send(ok);
                }
                Op::Outcome { .. } | Op::Released { .. } => {}
            }
        }
        if !ok {
            // Senders see WriterGone and stop: nothing may be sent without being journaled.
            return;
        }
    }
}

/// The writer's statements.
const MARK: &str =
    "UPDATE deliveries SET status = 'sending', attempts = ?2, message_id = ?3, updated_at = ?4 WHERE id = ?1";
const OUTCOME: &str = "UPDATE deliveries SET status = ?2, provider_id = COALESCE(?3, provider_id),
    route = COALESCE(?4, route), error = ?5, updated_at = ?6 WHERE id = ?1";
const ATTEMPT: &str = "INSERT OR REPLACE INTO attempts (delivery_id, attempt, started_ms) VALUES (?1, ?2, ?3)";
const ATTEMPT_END: &str = "UPDATE attempts SET finished_ms = ?3, outcome = ?4, error = ?5, route = ?6 WHERE delivery_id = ?1 AND attempt = ?2";
const UNATTEMPT: &str = "DELETE FROM attempts WHERE delivery_id = ?1 AND attempt = ?2";
const UNMARK: &str =
    "UPDATE deliveries SET status = 'pending', attempts = ?2 - 1, updated_at = ?3 WHERE id = ?1 AND status = 'sending'";

/// Commit a batch; the number of fallbacks its outcomes activated.
fn apply(conn: &mut Connection, batch: &[Op]) -> rusqlite::Result<usize> {
    let tx = conn.transaction()?;
    let mut activated = 0;
    {
        let now = now_rfc3339();
        let mut mark = tx.prepare_cached(MARK)?;
        let mut outcome = tx.prepare_cached(OUTCOME)?;
        let mut attempt = tx.prepare_cached(ATTEMPT)?;
        let mut attempt_end = tx.prepare_cached(ATTEMPT_END)?;
        let mut unattempt = tx.prepare_cached(UNATTEMPT)?;
        let mut unmark = tx.prepare_cached(UNMARK)?;
        for op in batch {
            match op {
                Op::Sending {
                    id,
                    attempt: n,
                    started_ms,
                    message_id,
                    ..
                } => {
                    mark.execute(params![id, n, message_id, now])?;
                    attempt.execute(params![id, n, started_ms])?;
                }
                Op::Outcome {
                    id,
                    attempt: n,
                    status,
                    provider_id,
                    route,
                    error,
                } => {
                    outcome.execute(params![id, status.as_str(), provider_id, route, error, now])?;
                    let what = if *status == Status::Pending {
                        "retry"
                    } else {
                        status.as_str()
                    };
                    attempt_end.execute(params![id, n, now_ms(), what, error, route])?;
                    if *status == Status::Failed {
                        activated += activate_next(&tx, *id, &now)?;
                    }
                }
                Op::Released { id, attempt: n } => {
                    unmark.execute(params![id, n, now])?;
                    unattempt.execute(params![id, n])?;
                }
                Op::Flush(_) => {}
            }
        }
    }
    tx.commit()?;
    Ok(activated)
}

/// A run and a pending outbox delivery with plain values, for tests: the unit tests here and
/// the dispatcher's tests in tests/suite/dispatch.rs, which drive the library directly.
#[doc(hidden)]
pub mod fixtures {
    use super::{NewDelivery, RunRow, Status, now_rfc3339};

    pub fn run(id: &str) -> RunRow {
        RunRow {
            id: id.into(),
            digest: format!("sha256:{id}"),
            dry_run: false,
            title: "t".into(),
            thread: Some("th".into()),
            severity: "info".into(),
            announcement: "+++\ntitle = \"t\"\n+++\n".into(),
            origin: "n.md".into(),
            base_dir: ".".into(),
            started_at: now_rfc3339(),
            finished_at: None,
        }
    }

    pub fn delivery(r: &str) -> NewDelivery {
        NewDelivery {
            channel: "out".into(),
            channel_type: "outbox".into(),
            recipient: r.into(),
            name: String::new(),
            data: None,
            status: Status::Pending,
            error: None,
            problem: false,
            row: None,
            fallback: false,
            step: None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    pub(crate) use super::fixtures::{delivery, run};

    #[test]
    fn private_files_and_duplicate_plans_collapse() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mut j = Journal::open(&state).unwrap();
        j.create_run(
            &run("r1"),
            &[delivery("a@x.de"), delivery("a@x.de"), delivery("b@x.de")],
        )
        .unwrap();
        assert_eq!(j.deliveries("r1").unwrap().len(), 2);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join("journal.sqlite3")), 0o600);
        let next = run("r2");
        let w = j
            .begin_run(&RunRow {
                digest: "sha256:r1".into(),
                ..next
            })
            .unwrap();
        assert_eq!(w.earlier_run_with_digest("sha256:r1").unwrap().as_deref(), Some("r1"));
    }

    /// A first or lone mark is committed at once; only a writer the lanes keep busy waits
    /// for more, and never for a flush or when the batch is full.
    #[test]
    fn the_writer_lingers_only_under_load_and_never_for_a_flush() {
        let outcome = |id| Op::Outcome {
            id,
            attempt: 1,
            status: Status::Sent,
            provider_id: None,
            route: None,
            error: None,
        };
        let mark = || {
            let (ack, _) = tokio::sync::oneshot::channel();
            Op::Sending {
                id: 1,
                attempt: 1,
                started_ms: 0,
                message_id: "m".into(),
                ack,
            }
        };
        let one = [mark()];
        assert!(!lingers(0, &one), "the run's first mark");
        assert!(!lingers(BUSY_BATCH - 1, &one), "after a small commit");
        assert!(lingers(BUSY_BATCH, &one));
        assert!(lingers(MAX_BATCH, &[outcome(1), outcome(2)]));
        let (ack, _) = tokio::sync::oneshot::channel();
        assert!(!lingers(MAX_BATCH, &[outcome(1), Op::Flush(ack)]), "a flush");
        let full: Vec<Op> = (0..MAX_BATCH as i64).map(outcome).collect();
        assert!(!lingers(MAX_BATCH, &full), "a full batch");
    }

    /// Rows wait in memory and are written [`BATCH`] at a time: every one must arrive, with its
    /// person, across batch boundaries and after an earlier run's people.
    #[test]
    fn a_plan_of_many_batches_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("state")).unwrap();
        j.create_run(&run("r0"), &[delivery("old@x.de")]).unwrap();
        let rows = 3 * BATCH as u64 + 5;
        let mut w = j.begin_run(&run("r1")).unwrap();
        let mut id = w.first_free_id();
        // One target of its own first, so that some batches end between a person's two
        // deliveries and the data goes to a person already written.
        w.insert(id, &delivery("https://hooks.example/x").as_ref()).unwrap();
        id += 1;
        for row in 1..=rows {
            let email = format!("p{row}@x.de");
            let data = format!("{{\"n\":{row}}}");
            // A skip without data first (a missing phone, say), then the person's data.
            let skip = NewDelivery {
                channel: "sms".into(),
                status: Status::Skipped,
                row: Some(row),
                name: format!("P{row}"),
                ..delivery(&format!("row {row}"))
            };
            let mail = NewDelivery {
                row: Some(row),
                name: format!("P{row}"),
                data: Some(data),
                ..delivery(&email)
            };
            w.insert(id, &skip.as_ref()).unwrap();
            w.insert(id + 1, &mail.as_ref()).unwrap();
            // Whether or not its batch was written yet.
            assert_eq!(w.recipient(id + 1).unwrap().as_deref(), Some(email.as_str()));
            id += 2;
        }
        // The statement journal's setting was for the transaction's start only: the
        // connection's own sorts keep their temporary files.
        let temp_store: i64 = w.tx.query_row("PRAGMA temp_store", [], |r| r.get(0)).unwrap();
        assert_eq!(temp_store, 0);
        w.commit().unwrap();
        let got = j.deliveries("r1").unwrap();
        assert_eq!(got.len() as u64, 2 * rows + 1);
        assert_eq!(got[0].recipient, "https://hooks.example/x");
        for pair in got[1..].chunks(2) {
            let row = pair[0].row.unwrap();
            assert_eq!(pair[0].recipient, format!("row {row}"));
            assert_eq!(pair[0].data, None);
            assert_eq!(pair[1].recipient, format!("p{row}@x.de"));
            assert_eq!(pair[1].data.as_deref(), Some(format!("{{\"n\":{row}}}").as_str()));
            assert!(pair.iter().all(|d| d.name == format!("P{row}") && d.row == Some(row)));
        }
        assert_eq!(j.deliveries("r0").unwrap()[0].recipient, "old@x.de");
    }

    #[test]
    fn a_new_journal_is_linked_into_place_whole_and_never_over_another() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mut j = Journal::open(&state).unwrap();
        let mode: String = j.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let version: i64 = j.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, schema::VERSION);
        let mut names: Vec<String> = std::fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["journal.sqlite3", "journal.sqlite3-shm", "journal.sqlite3-wal"]);
        for name in &names {
            let mode = std::fs::metadata(state.join(name)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
        // Another process that found no journal makes its own and links it: the one there
        // already, with its run, stays.
        j.create_run(&run("r1"), &[delivery("a@x.de")]).unwrap();
        create(&Journal::path_in(&state)).unwrap();
        assert_eq!(j.deliveries("r1").unwrap().len(), 1);
        drop(j);
        assert_eq!(
            std::fs::read_dir(&state).unwrap().count(),
            1,
            "only the journal, checkpointed"
        );
        let j = Journal::open(&state).unwrap();
        assert_eq!(j.deliveries("r1").unwrap().len(), 1);
    }

    /// What a journal's schema decides, a line each: version, mode, page size, and every
    /// table, index and view with its SQL.
    fn shape(path: &Path) -> Vec<String> {
        let conn = Connection::open(path).unwrap();
        let mut lines: Vec<String> = ["user_version", "journal_mode", "page_size"]
            .iter()
            .map(|p| {
                let v: rusqlite::types::Value = conn.query_row(&format!("PRAGMA {p}"), [], |r| r.get(0)).unwrap();
                format!("{p} {v:?}")
            })
            .collect();
        let mut st = conn
            .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
            .unwrap();
        let objects = st
            .query_map([], |r| {
                Ok(format!(
                    "{} {} {:?}",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?
                ))
            })
            .unwrap();
        lines.extend(objects.map(|o| o.unwrap()));
        lines
    }

    #[test]
    fn the_embedded_empty_journal_is_what_the_schema_makes() {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("made.sqlite3");
        write_empty(&made).unwrap();
        if std::env::var_os("ANNOUNCE_WRITE_EMPTY_JOURNAL").is_some() {
            let asset = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/journal/empty.sqlite3");
            std::fs::copy(&made, asset).unwrap();
            return;
        }
        // WAL in the header itself: SQLite opens it in WAL mode without switching.
        assert_eq!(EMPTY[18..20], [2, 2]);
        let embedded = dir.path().join("embedded.sqlite3");
        std::fs::write(&embedded, EMPTY).unwrap();
        let lines = shape(&embedded);
        assert_eq!(
            lines[..2],
            [
                format!("user_version Integer({})", schema::VERSION),
                "journal_mode Text(\"wal\")".into()
            ]
        );
        assert!(lines.len() >= 13, "{lines:?}");
        assert_eq!(
            shape(&embedded),
            shape(&made),
            "assets/journal/empty.sqlite3 is not what the schema makes: run \
             `ANNOUNCE_WRITE_EMPTY_JOURNAL=1 cargo test --lib empty_journal` to write it anew"
        );
    }

    #[tokio::test]
    async fn in_flight_becomes_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.create_run(&run("r1"), &[delivery("a@x.de"), delivery("b@x.de")])
            .unwrap();
        let ids: Vec<i64> = j.deliveries("r1").unwrap().iter().map(|d| d.id).collect();
        let w = j.writer().unwrap();
        w.sending(ids[0], 1, "m1@x").await.unwrap();
        w.sending(ids[1], 1, "m2@x").await.unwrap();
        w.outcome(ids[1], 1, Status::Sent, Some("p".into()), Some("relay".into()), None)
            .unwrap();
        w.flush().await.unwrap();
        drop(w); // the process "dies" with ids[0] in flight
        assert_eq!(j.mark_in_flight_unknown("r1").unwrap(), 1);
        let rows = j.deliveries("r1").unwrap();
        assert_eq!((rows[0].status, rows[1].status), (Status::Unknown, Status::Sent));
        assert_eq!(rows[1].route.as_deref(), Some("relay"));
        assert_eq!(j.attempt_times("r1", "out").unwrap().len(), 2);
    }

    /// A person's `[reach]` chain: email (step 0) first, SMS (step 1) on standby.
    fn chain(row: u64, email: bool, sms: bool) -> Vec<NewDelivery> {
        let mut out = Vec::new();
        if email {
            out.push(NewDelivery {
                channel: "email".into(),
                row: Some(row),
                step: Some(0),
                ..delivery(&format!("p{row}@x.de"))
            });
        }
        if sms {
            out.push(NewDelivery {
                channel: "sms".into(),
                row: Some(row),
                step: Some(1),
                status: if email { Status::Standby } else { Status::Pending },
                fallback: email,
                ..delivery(&format!("+49151{row:08}"))
            });
        }
        out
    }

    fn status_of(j: &Journal, channel: &str, row: u64) -> Option<Status> {
        j.query_deliveries("WHERE channel = ?1 AND row = ?2", params![channel, row as i64])
            .unwrap()
            .first()
            .map(|d| d.status)
    }

    /// `failed` (written by the dispatcher) and `undelivered` (by `report --refresh`) turn the
    /// person's next channel `pending` in the same transaction; `sent` and `unknown` do not; a
    /// failed delivery whose fallback took over is not retried; reports never see `standby`.
    #[tokio::test]
    async fn failures_activate_the_next_channel_of_the_chain_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        let mut ds = Vec::new();
        for row in 2..=5 {
            ds.extend(chain(row, true, true));
        }
        ds.extend(chain(6, false, true));
        j.create_run(&run("r1"), &ds).unwrap();
        assert_eq!(j.deliveries("r1").unwrap().len(), 5, "standby rows are not shown");
        assert!(
            j.status_counts("r1")
                .unwrap()
                .iter()
                .all(|c| c.channel == "email" || c.counts == [(Status::Pending, 1)])
        );
        let id = |j: &Journal, channel: &str, row: u64| {
            j.query_deliveries("WHERE channel = ?1 AND row = ?2", params![channel, row as i64])
                .unwrap()[0]
                .id
        };
        let (e2, e3, e4, e5) = (
            id(&j, "email", 2),
            id(&j, "email", 3),
            id(&j, "email", 4),
            id(&j, "email", 5),
        );
        let w = j.writer().unwrap();
        for (e, status) in [
            (e2, Status::Failed),
            (e3, Status::Sent),
            (e4, Status::Unknown),
            (e5, Status::Pending),
        ] {
            w.sending(e, 1, "m@x").await.unwrap();
            w.outcome(e, 1, status, None, None, Some("550".into())).unwrap();
        }
        w.flush().await.unwrap();
        assert_eq!(w.activated(), 1);
        drop(w);
        assert_eq!(status_of(&j, "sms", 2), Some(Status::Pending));
        assert_eq!(status_of(&j, "sms", 3), Some(Status::Standby));
        assert_eq!(status_of(&j, "sms", 4), Some(Status::Standby));
        assert_eq!(
            status_of(&j, "sms", 5),
            Some(Status::Standby),
            "a retry is not a failure"
        );
        j.set_status(e3, Status::Undelivered, Some("bounced")).unwrap();
        assert_eq!(status_of(&j, "sms", 3), Some(Status::Pending));
        // The SMS of row 2 failing too: the chain has no third step; nobody else's changes.
        j.set_status(id(&j, "sms", 2), Status::Undelivered, None).unwrap();
        assert_eq!(status_of(&j, "sms", 4), Some(Status::Standby));
        // `--retry-failed`: row 2's email is left alone, its SMS took over.
        assert_eq!(j.failed_with_fallback("r1").unwrap(), 1);
        assert_eq!(j.requeue("r1", Status::Failed, None).unwrap(), 0);
        assert_eq!(status_of(&j, "email", 2), Some(Status::Failed));
    }

    /// Version 0 of the schema (020d637 and before): every delivery row with its run id,
    /// channel, name and data, and (before `[reach]`) without `row`, `fallback`, `step`.
    const V0_SCHEMA: &str = "
        CREATE TABLE runs (id TEXT PRIMARY KEY, digest TEXT NOT NULL, dry_run INTEGER NOT NULL, title TEXT NOT NULL,
            thread TEXT, severity TEXT NOT NULL, announcement TEXT NOT NULL, origin TEXT NOT NULL,
            base_dir TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT);
        CREATE TABLE deliveries (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id),
            channel TEXT NOT NULL, channel_type TEXT NOT NULL, recipient TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',
            data TEXT, status TEXT NOT NULL, problem INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
            provider_id TEXT, route TEXT, error TEXT, message_id TEXT, updated_at TEXT NOT NULL,
            UNIQUE (run_id, channel, recipient));
        CREATE INDEX deliveries_run ON deliveries(run_id, channel, status);
        CREATE TABLE attempts (delivery_id INTEGER NOT NULL REFERENCES deliveries(id), attempt INTEGER NOT NULL,
            started_ms INTEGER NOT NULL, finished_ms INTEGER, outcome TEXT, error TEXT, route TEXT,
            PRIMARY KEY (delivery_id, attempt)) WITHOUT ROWID;";

    /// A version 0 journal from before `row`, `fallback` and `step` is migrated when opened
    /// and takes new `[reach]` runs.
    #[test]
    fn old_journals_get_the_reach_columns() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(Journal::path_in(dir.path())).unwrap();
            c.execute_batch(V0_SCHEMA).unwrap();
        }
        let mut j = Journal::open(dir.path()).unwrap();
        j.create_run(&run("r1"), &chain(2, true, true)).unwrap();
        let rows = j.query_deliveries("WHERE run_id = 'r1' ORDER BY id", []).unwrap();
        assert_eq!(
            rows.iter()
                .map(|d| (d.row, d.fallback, d.step, d.status))
                .collect::<Vec<_>>(),
            [
                (Some(2), false, Some(0), Status::Pending),
                (Some(2), true, Some(1), Status::Standby)
            ]
        );
    }

    /// Rows written in version 0 read back exactly as they were stored, a person's two
    /// channels become one person, and a migration that does not commit leaves the old
    /// journal as it was.
    #[test]
    fn a_version_0_journal_migrates_in_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = Journal::path_in(dir.path());
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(V0_SCHEMA).unwrap();
            c.execute_batch(
                "ALTER TABLE deliveries ADD COLUMN row INTEGER;
                 ALTER TABLE deliveries ADD COLUMN fallback INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE deliveries ADD COLUMN step INTEGER;
                 INSERT INTO runs VALUES ('r0', 'sha256:x', 0, 'Alt', 'th', 'info', 'a', 'n.md', '.',
                     '2026-01-01T00:00:00Z', NULL);
                 INSERT INTO deliveries (id, run_id, channel, channel_type, recipient, name, data, status, problem,
                     attempts, provider_id, route, error, message_id, updated_at, row, fallback, step) VALUES
                   (1, 'r0', 'news', 'webhook', 'https://x', 'Org', NULL, 'sent', 0, 1, 'p1', NULL, NULL, NULL,
                    '2026-01-01T00:00:00Z', NULL, 0, NULL),
                   (5, 'r0', 'email', 'email', 'a@x.de', 'Anna', '{\"name\":\"Anna\"}', 'failed', 0, 2, NULL,
                    'relay', '550 no', 'm5@x', '2026-01-01T00:00:05Z', 2, 0, 0),
                   (6, 'r0', 'email', 'email', 'row 3', 'Ben', NULL, 'skipped', 0, 0, NULL, NULL,
                    'row 3: no email address', NULL, '2026-01-01T00:00:00Z', 3, 0, NULL),
                   (9, 'r0', 'sms', 'sms', '+4915100000002', 'Anna', '{\"name\":\"Anna\"}', 'pending', 0, 0,
                    NULL, NULL, NULL, NULL, '2026-01-01T00:00:06Z', 2, 1, 1),
                   (10, 'r0', 'sms', 'sms', '+4915100000003', 'Ben', '{\"name\":\"Ben\"}', 'sent', 0, 1,
                    'sm1', NULL, NULL, NULL, '2026-01-01T00:00:07Z', 3, 0, NULL);
                 INSERT INTO attempts VALUES (5, 1, 1, 2, 'retry', 'x', 'relay'), (5, 2, 3, 4, 'failed', '550', NULL);",
            )
            .unwrap();
        }
        let before = |c: &Connection| -> Vec<String> {
            c.prepare(&format!("SELECT {DELIVERY_COLUMNS} FROM deliveries ORDER BY id"))
                .unwrap()
                .query_map([], |r| Ok(format!("{:?}", delivery_row(r)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        let mut c = Connection::open(&path).unwrap();
        let old = before(&c);
        c.pragma_update(None, "foreign_keys", "OFF").unwrap();
        {
            let tx = c.transaction().unwrap();
            schema::upgrade(&tx).unwrap();
            // dropped: rolled back, as a crash before the commit would leave it
        }
        assert_eq!(before(&c), old, "the journal is still version 0");
        drop(c);
        let j = Journal::open(dir.path()).unwrap();
        let version: i64 = j.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, schema::VERSION);
        let after: Vec<String> = j
            .query_deliveries("ORDER BY id", [])
            .unwrap()
            .iter()
            .map(|d| format!("{d:?}"))
            .collect();
        assert_eq!(after, old);
        let people: i64 = j
            .conn
            .query_row("SELECT COUNT(*) FROM people", [], |r| r.get(0))
            .unwrap();
        assert_eq!(people, 3, "the broadcast, Anna (two channels) and Ben (two channels)");
        assert_eq!(j.attempt_times("r0", "email").unwrap(), [1, 3]);
        // Anna's email failed and her SMS took over: not retried.
        assert_eq!(j.failed_with_fallback("r0").unwrap(), 1);
    }

    #[test]
    fn second_process_cannot_take_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _held = Journal::lock(dir.path()).unwrap();
        assert!(matches!(Journal::lock(dir.path()), Err(JournalError::Locked(_))));
    }
}
