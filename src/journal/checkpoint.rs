//! Checkpoints off the committing thread.
//!
//! SQLite's automatic checkpoint runs inside the commit that takes the WAL past a thousand
//! pages, on the committing thread: the commit of a large plan then also copied the whole WAL
//! into the database and synced it before `send` could go on (to its first message, or to a
//! dry run's summary). Instead the journal's connection has a WAL hook (which replaces the
//! automatic checkpoint) that, past the same size, wakes one checkpointer thread with a
//! connection of its own. Its checkpoints are PASSIVE: they copy what no reader still needs
//! and never block a writer. Nothing depends on them for durability (a commit is durable in
//! the WAL); what one leaves undone, the next does, or SQLite does when the last connection
//! closes.
//!
//! The dispatcher's writer goes back to the automatic checkpoint ([`inline`]): its commits are
//! small and many, and the thread's passes between them cost fsyncs that slowed those commits.
//!
//! The thread starts on the first wake-up (most runs never need one) and ends when the journal
//! is dropped, after the checkpoint under way.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

/// SQLite's own threshold for its automatic checkpoint.
const PAGES: i32 = 1000;

/// The journal's side: wakes the thread, ends it on drop.
pub(super) struct Checkpoints {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    due: bool,
    closing: bool,
    thread: Option<thread::JoinHandle<()>>,
}

impl Checkpoints {
    pub(super) fn new(path: &Path) -> Checkpoints {
        Checkpoints {
            shared: Arc::new(Shared {
                path: path.to_path_buf(),
                state: Mutex::default(),
                wake: Condvar::new(),
            }),
        }
    }

    /// Have `conn`'s commits wake the checkpointer instead of checkpointing themselves.
    pub(super) fn attach(&self, conn: &mut Connection) -> rusqlite::Result<()> {
        let shared = self.shared.clone();
        conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages| {
            if pages >= PAGES {
                shared.due();
            }
            Ok(())
        }))
    }
}

/// Back to SQLite's automatic checkpoint on the committing thread (which replaces the hook).
/// While a checkpoint of the thread is under way, SQLite's finds it busy and gives way.
pub(super) fn inline(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "wal_autocheckpoint", PAGES)
}

impl Shared {
    fn due(self: &Arc<Self>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.closing {
            return;
        }
        state.due = true;
        if state.thread.is_none() {
            let shared = self.clone();
            // Without the thread the WAL only grows until the journal closes: no harm done.
            state.thread = thread::Builder::new()
                .name("journal-checkpoint".into())
                .spawn(move || shared.run())
                .ok();
        }
        self.wake.notify_one();
    }

    fn run(&self) {
        let mut conn = None;
        loop {
            {
                let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                while !state.due && !state.closing {
                    state = self.wake.wait(state).unwrap_or_else(|p| p.into_inner());
                }
                if !state.due {
                    return;
                }
                state.due = false;
            }
            let done = match &conn {
                Some(c) => checkpoint(c),
                None => super::open_connection(&self.path)
                    .map_err(|e| e.to_string())
                    .and_then(|c| checkpoint(conn.insert(c))),
            };
            if let Err(e) = done {
                tracing::warn!("journal {}: checkpoint: {e}", self.path.display());
            }
        }
    }
}

fn checkpoint(conn: &Connection) -> Result<(), String> {
    conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE)
        .map(drop)
        .map_err(|e| e.to_string())
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        let thread = {
            let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
            state.closing = true;
            state.due = false;
            state.thread.take()
        };
        self.shared.wake.notify_one();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection in WAL mode with the checkpointer's hook and a table.
    fn journal(dir: &Path) -> (PathBuf, Checkpoints, Connection) {
        let path = dir.join("j.sqlite3");
        let mut conn = super::super::open_connection(&path).unwrap();
        let checkpoints = Checkpoints::new(&path);
        checkpoints.attach(&mut conn).unwrap();
        conn.execute("CREATE TABLE t (x BLOB)", []).unwrap();
        (path, checkpoints, conn)
    }

    /// Far more than `PAGES` pages of 4 KiB, in one commit.
    fn write_big(conn: &mut Connection) {
        let tx = conn.transaction().unwrap();
        for _ in 0..3000 {
            tx.execute("INSERT INTO t VALUES (zeroblob(4000))", []).unwrap();
        }
        tx.commit().unwrap();
    }

    fn db_len(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn a_large_commit_does_not_checkpoint_on_the_committing_thread() {
        let dir = tempfile::tempdir().unwrap();
        let (path, checkpoints, mut conn) = journal(dir.path());
        // Closed: the hook wakes nothing, so only the commit itself could have checkpointed.
        drop(checkpoints);
        let before = db_len(&path);
        write_big(&mut conn);
        assert_eq!(db_len(&path), before, "the commit copied the WAL into the database");
        let rows: i64 = conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 3000);
    }

    #[test]
    fn the_writer_s_connection_checkpoints_inline_again() {
        let dir = tempfile::tempdir().unwrap();
        let (path, checkpoints, mut conn) = journal(dir.path());
        drop(checkpoints);
        inline(&conn).unwrap();
        let before = db_len(&path);
        write_big(&mut conn);
        assert!(db_len(&path) > before, "the commit left its pages in the WAL");
    }

    #[test]
    fn the_checkpointer_copies_a_large_commit_into_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let (path, checkpoints, mut conn) = journal(dir.path());
        write_big(&mut conn);
        // A bound on a hang, not a timing assertion.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while db_len(&path) < 3000 * 4000 {
            assert!(std::time::Instant::now() < deadline, "no checkpoint came");
            thread::sleep(std::time::Duration::from_millis(10));
        }
        drop(checkpoints);
        drop(conn);
        let conn = Connection::open(&path).unwrap();
        let rows: i64 = conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 3000);
    }
}
