//! Idle SMTP connections of one relay, reused across messages.
//!
//! lettre's `AsyncSmtpTransport` has a pool, but its `send` hides at which command an error
//! happened, and the stage is what separates "fail over" from "the relay may have the message"
//! (see `classify`). So the relay drives `AsyncSmtpConnection` itself and keeps its
//! connections here: at most `size` in use at once (a semaphore) and at most `size` parked.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lettre::transport::smtp::client::AsyncSmtpConnection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Parked connections older than this are dropped rather than reused: servers close idle
/// sessions (RFC 5321 asks for 5 min, many use less) and a stale one costs a round trip.
const MAX_IDLE: Duration = Duration::from_secs(30);

/// One SMTP connection and what the relay found out about it.
pub struct Session {
    pub conn: AsyncSmtpConnection,
    /// The server announced PIPELINING (RFC 2920): MAIL, RCPT and DATA may go in one write.
    pub pipelining: bool,
}

pub struct Pool {
    size: usize,
    slots: Arc<Semaphore>,
    idle: Mutex<Vec<(Session, Instant)>>,
}

impl Pool {
    pub fn new(size: usize) -> Pool {
        let size = size.max(1);
        Pool {
            size,
            slots: Arc::new(Semaphore::new(size)),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Wait for one of the `size` connection slots.
    pub async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        // The semaphore is never closed, so this only fails if that changes.
        self.slots.clone().acquire_owned().await.ok()
    }

    /// The most recently used idle connection that is still fresh.
    pub fn take(&self) -> Option<Session> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some((session, since)) = idle.pop() {
            if since.elapsed() < MAX_IDLE && !session.conn.has_broken() {
                return Some(session);
            }
        }
        None
    }

    /// Park a connection after a completed transaction.
    pub fn put(&self, session: Session) {
        if session.conn.has_broken() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.size {
            idle.push((session, Instant::now()));
        }
    }
}
