//! The journal's tables, and the migration of journals written before `PRAGMA user_version`
//! numbered them (version 0: every delivery row carried its run id, channel, name and data).

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// `PRAGMA user_version` of the schema below.
pub const VERSION: i64 = 1;

/// A delivery refers to its lane (run and channel) and its person (audience row, name and
/// `recipient.*` data) by integer keys, so that the per-delivery row and its indexes hold no
/// repeated text: a person on two channels has their data stored once.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id           TEXT PRIMARY KEY,
    digest       TEXT NOT NULL,
    dry_run      INTEGER NOT NULL,
    title        TEXT NOT NULL,
    thread       TEXT,
    severity     TEXT NOT NULL,
    announcement TEXT NOT NULL,
    origin       TEXT NOT NULL,
    base_dir     TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT
);
CREATE INDEX IF NOT EXISTS runs_digest ON runs(digest);
CREATE INDEX IF NOT EXISTS runs_thread ON runs(thread);
-- One channel of one run.
CREATE TABLE IF NOT EXISTS lanes (
    id           INTEGER PRIMARY KEY,
    run_id       TEXT NOT NULL REFERENCES runs(id),
    channel      TEXT NOT NULL,
    channel_type TEXT NOT NULL,
    -- A delivery's `updated_at` until sending first changes it.
    planned_at   TEXT NOT NULL,
    UNIQUE (run_id, channel)
);
-- One audience row of one run (`row` NULL: a broadcast target).
CREATE TABLE IF NOT EXISTS people (
    id           INTEGER PRIMARY KEY,
    row          INTEGER,
    name         TEXT NOT NULL DEFAULT '',
    data         TEXT
);
-- No unique (lane, recipient) index: the planner already gives each address one delivery per
-- channel, and that index, in address order, was the costliest part of writing a plan.
CREATE TABLE IF NOT EXISTS deliveries (
    id           INTEGER PRIMARY KEY,
    lane         INTEGER NOT NULL REFERENCES lanes(id),
    person       INTEGER NOT NULL REFERENCES people(id),
    recipient    TEXT NOT NULL,
    status       TEXT NOT NULL,
    problem      INTEGER NOT NULL DEFAULT 0,
    attempts     INTEGER NOT NULL DEFAULT 0,
    provider_id  TEXT,
    route        TEXT,
    error        TEXT,
    message_id   TEXT,
    updated_at   TEXT,
    -- The person's `data` is not this delivery's (a skip for a missing address has none).
    nodata       INTEGER NOT NULL DEFAULT 0,
    fallback     INTEGER NOT NULL DEFAULT 0,
    step         INTEGER
);
-- Status counts and resumes read this index alone.
CREATE INDEX IF NOT EXISTS deliveries_lane ON deliveries(lane, status);
-- People counts, the call list and `[reach]` fallbacks walk a person's deliveries.
CREATE INDEX IF NOT EXISTS deliveries_person ON deliveries(person, status);
CREATE TABLE IF NOT EXISTS attempts (
    delivery_id  INTEGER NOT NULL REFERENCES deliveries(id),
    attempt      INTEGER NOT NULL,
    started_ms   INTEGER NOT NULL,
    finished_ms  INTEGER,
    outcome      TEXT,
    error        TEXT,
    route        TEXT,
    PRIMARY KEY (delivery_id, attempt)
) WITHOUT ROWID; -- one b-tree, not a table and its key index: fewer pages per commit
-- The deliveries as readers see them, with the columns of version 0.
CREATE VIEW IF NOT EXISTS delivery_view AS
SELECT d.id, l.run_id, l.channel, l.channel_type, d.recipient, p.name,
       CASE WHEN d.nodata THEN NULL ELSE p.data END AS data, d.status, d.problem, d.attempts,
       d.provider_id, d.route, d.error, d.message_id, COALESCE(d.updated_at, l.planned_at) AS updated_at,
       p.row, d.fallback, d.step, d.lane, d.person
  FROM deliveries d JOIN lanes l ON l.id = d.lane JOIN people p ON p.id = d.person;
";

/// Columns version 0 gained over time: a journal from before them gets them before it is
/// migrated (SQLite adds a column without rewriting the table).
const V0_ADDED_COLUMNS: [(&str, &str); 3] = [
    ("row", "row INTEGER"),
    ("fallback", "fallback INTEGER NOT NULL DEFAULT 0"),
    ("step", "step INTEGER"),
];

/// What opening found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    Current,
    /// Written by a later version of announce, which may store things this one cannot read.
    Newer(i64),
}

/// Create the tables, or bring a journal of an earlier version up to [`VERSION`]. The
/// migration is one transaction: a crash in the middle of it leaves the old journal as it was.
pub fn prepare(conn: &mut Connection) -> rusqlite::Result<Opened> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > VERSION {
        return Ok(Opened::Newer(version));
    }
    if version == VERSION {
        return Ok(Opened::Current);
    }
    // Foreign keys cannot be switched within a transaction; the old deliveries table is
    // dropped while `attempts` still refers to it by name.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let result = (|| {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        upgrade(&tx)?;
        tx.commit()
    })();
    conn.pragma_update(None, "foreign_keys", "ON")?;
    result.map(|()| Opened::Current)
}

/// Everything [`prepare`] does to an older journal, inside `tx` (committed by the caller, on a
/// connection with foreign keys off).
pub fn upgrade(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    // Another process may have migrated it while this one waited for the write lock.
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= VERSION {
        return Ok(());
    }
    let old: bool = tx
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'deliveries'",
            [],
            |_| Ok(true),
        )
        .optional()?
        .unwrap_or(false);
    if old {
        let have: Vec<String> = tx
            .prepare("SELECT name FROM pragma_table_info('deliveries')")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for (name, decl) in V0_ADDED_COLUMNS {
            if !have.iter().any(|h| h == name) {
                tx.execute_batch(&format!("ALTER TABLE deliveries ADD COLUMN {decl}"))?;
            }
        }
        // Legacy renaming leaves `attempts` referring to `deliveries` by name, which is then
        // the new table (modern renaming would point it at the old one, dropped below).
        tx.execute_batch(
            "PRAGMA legacy_alter_table = ON;
             ALTER TABLE deliveries RENAME TO deliveries_v0;
             PRAGMA legacy_alter_table = OFF;
             DROP INDEX IF EXISTS deliveries_run;
             DROP INDEX IF EXISTS deliveries_recipient;",
        )?;
    }
    tx.execute_batch(SCHEMA)?;
    if old {
        copy_v0(tx)?;
        tx.execute_batch("DROP TABLE deliveries_v0")?;
    }
    tx.pragma_update(None, "user_version", VERSION)?;
    // The attempts' references now point at the new table of the same name.
    let broken: Option<String> = tx
        .query_row("SELECT \"table\" FROM pragma_foreign_key_check LIMIT 1", [], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(table) = broken {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
            Some(format!(
                "migrating the journal left {table} referring to rows that are gone"
            )),
        ));
    }
    Ok(())
}

/// Version 0's deliveries into lanes, people and deliveries, keeping ids and every value.
/// A person is an audience row of a run (what version 0 grouped by); rows without one
/// (broadcasts) get a person each.
fn copy_v0(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "INSERT INTO lanes (run_id, channel, channel_type, planned_at)
           SELECT d.run_id, d.channel, MIN(d.channel_type), COALESCE(r.started_at, MIN(d.updated_at))
             FROM deliveries_v0 d LEFT JOIN runs r ON r.id = d.run_id
            GROUP BY d.run_id, d.channel ORDER BY MIN(d.id);",
    )?;
    let lanes: HashMap<(String, String), i64> = tx
        .prepare("SELECT run_id, channel, id FROM lanes")?
        .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut read = tx.prepare(
        "SELECT id, run_id, channel, recipient, name, data, status, problem, attempts, provider_id, route,
                error, message_id, updated_at, row, fallback, step
           FROM deliveries_v0 ORDER BY run_id, row IS NULL, row, id",
    )?;
    let mut person = tx.prepare("INSERT INTO people (row, name, data) VALUES (?1, ?2, ?3)")?;
    let mut person_data = tx.prepare("UPDATE people SET data = ?2 WHERE id = ?1 AND data IS NULL")?;
    let mut insert = tx.prepare(
        "INSERT INTO deliveries (id, lane, person, recipient, status, problem, attempts, provider_id, route, error,
                                 message_id, updated_at, nodata, fallback, step)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?;
    let mut rows = read.query([])?;
    let mut current: Option<(String, i64, i64)> = None;
    while let Some(r) = rows.next()? {
        let run: String = r.get(1)?;
        let row: Option<i64> = r.get(14)?;
        let name: String = r.get(4)?;
        let data: Option<String> = r.get(5)?;
        let same = match (&current, row) {
            (Some((run_, row_, _)), Some(row)) => *run_ == run && *row_ == row,
            _ => false,
        };
        let id = if same {
            let id = current.as_ref().map_or(0, |c| c.2);
            if data.is_some() {
                person_data.execute(params![id, data])?;
            }
            id
        } else {
            person.execute(params![row, name, data])?;
            let id = tx.last_insert_rowid();
            current = row.map(|row| (run.clone(), row, id));
            id
        };
        let lane = lanes.get(&(run, r.get::<_, String>(2)?)).copied().unwrap_or_default();
        insert.execute(params![
            r.get::<_, i64>(0)?,
            lane,
            id,
            r.get::<_, String>(3)?,
            r.get::<_, String>(6)?,
            r.get::<_, bool>(7)?,
            r.get::<_, i64>(8)?,
            r.get::<_, Option<String>>(9)?,
            r.get::<_, Option<String>>(10)?,
            r.get::<_, Option<String>>(11)?,
            r.get::<_, Option<String>>(12)?,
            r.get::<_, String>(13)?,
            data.is_none(),
            r.get::<_, bool>(15)?,
            r.get::<_, Option<i64>>(16)?,
        ])?;
    }
    Ok(())
}
