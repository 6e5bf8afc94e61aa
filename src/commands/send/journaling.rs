//! The journal a new run is planned into while another thread is still opening it: a new
//! journal costs a few fsyncs, in which a small plan is made whole.

use std::thread::ScopedJoinHandle;

use crate::error::AppError;
use crate::journal::{DeliveryRef, Journal, JournalError, NewDelivery, RunRow, RunWriter, StateLock};
use crate::plan::PlanSink;

/// What the opening thread hands back: the state folder's lock, then the journal.
pub type Opened = Result<(StateLock, Result<Journal, JournalError>), JournalError>;

/// The thread opening the journal, or why it could not be started.
pub type Opening<'scope> = Result<ScopedJoinHandle<'scope, Opened>, JournalError>;

/// Deliveries that may wait in memory for the journal; past them the plan waits for it.
const WAITING_MAX: usize = 1024;

/// A [`PlanSink`] over the journal being opened: deliveries planned before it is ready wait in
/// memory, in order, and go in as soon as it is. The planner numbers deliveries from 0; the
/// journal's first free id is added to each when it is written.
pub struct Journaling<'a, 'scope> {
    state: State<'a, 'scope>,
}

enum State<'a, 'scope> {
    Opening {
        opening: Opening<'scope>,
        slots: Slots<'a>,
        run: RunRow,
        waiting: Vec<(i64, NewDelivery)>,
    },
    Open {
        writer: RunWriter<'a>,
        base: i64,
    },
    /// The journal could not be opened (the error was returned), or the writer was taken.
    Closed,
}

/// Where the lock and the journal are kept once opened, for after the plan.
pub struct Slots<'a> {
    pub lock: &'a mut Option<StateLock>,
    pub journal: &'a mut Option<Journal>,
}

impl<'a> Slots<'a> {
    /// Wait for the opening thread and keep what it opened. The lock is kept even when the
    /// journal could not be opened: what this process created is its own to remove.
    pub fn fill(self, opening: Opening<'_>) -> Result<&'a mut Journal, JournalError> {
        let opened = match opening {
            Ok(handle) => super::joined(handle),
            Err(e) => Err(e),
        };
        let (lock, journal) = opened?;
        *self.lock = Some(lock);
        Ok(self.journal.insert(journal?))
    }
}

impl<'a, 'scope> Journaling<'a, 'scope> {
    pub fn new(opening: Opening<'scope>, run: RunRow, slots: Slots<'a>) -> Self {
        Journaling {
            state: State::Opening {
                opening,
                slots,
                run,
                waiting: Vec::new(),
            },
        }
    }

    /// The run's writer and what to add to the planner's ids, once the journal is open and the
    /// waiting deliveries are in it.
    fn open(&mut self) -> Result<(&mut RunWriter<'a>, i64), AppError> {
        if let State::Opening { .. } = self.state {
            let State::Opening {
                opening,
                slots,
                run,
                waiting,
            } = std::mem::replace(&mut self.state, State::Closed)
            else {
                unreachable!("matched above")
            };
            let mut writer = slots.fill(opening)?.begin_run(&run)?;
            let base = writer.first_free_id();
            for (id, d) in &waiting {
                writer.insert(id + base, &d.as_ref())?;
            }
            self.state = State::Open { writer, base };
        }
        match &mut self.state {
            State::Open { writer, base } => Ok((writer, *base)),
            _ => Err(AppError::runtime("the journal is not open")),
        }
    }

    /// Take the writer, to commit the run.
    pub fn into_writer(mut self) -> Result<RunWriter<'a>, AppError> {
        self.open()?;
        match self.state {
            State::Open { writer, .. } => Ok(writer),
            _ => unreachable!("opened above"),
        }
    }

    /// For a plan that was refused: wait for the journal, to know whether this process holds
    /// the lock, without writing anything.
    pub fn settle(self) {
        if let State::Opening { opening, slots, .. } = self.state {
            let _ = slots.fill(opening);
        }
    }
}

impl PlanSink for Journaling<'_, '_> {
    fn add(&mut self, id: i64, d: &DeliveryRef<'_>) -> Result<(), AppError> {
        if let State::Opening {
            opening: Ok(handle),
            waiting,
            ..
        } = &mut self.state
            && waiting.len() < WAITING_MAX
            && !handle.is_finished()
        {
            waiting.push((id, d.to_owned()));
            return Ok(());
        }
        let (writer, base) = self.open()?;
        writer.insert(id + base, d)?;
        Ok(())
    }

    fn recipient(&self, id: i64) -> Result<Option<String>, AppError> {
        match &self.state {
            State::Opening { waiting, .. } => Ok(waiting
                .iter()
                .rev()
                .find(|(i, _)| *i == id)
                .map(|(_, d)| d.recipient.clone())),
            State::Open { writer, base } => Ok(writer.recipient(id + base)?),
            State::Closed => Err(AppError::runtime("the journal is not open")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::fixtures;

    /// A journal holding one run of two deliveries already, so that new ids start at 3.
    fn journal_with_a_run(dir: &std::path::Path) {
        let mut j = Journal::open(dir).unwrap();
        let mut w = j.begin_run(&fixtures::run("r0")).unwrap();
        for (id, r) in [(1, "old-a"), (2, "old-b")] {
            w.insert(id, &fixtures::delivery(r).as_ref()).unwrap();
        }
        w.commit().unwrap();
    }

    fn add(sink: &mut Journaling<'_, '_>, id: i64, recipient: &str) {
        sink.add(id, &fixtures::delivery(recipient).as_ref()).unwrap();
    }

    #[test]
    fn deliveries_planned_before_the_journal_opens_go_in_first_in_order_with_its_ids() {
        let dir = tempfile::tempdir().unwrap();
        journal_with_a_run(dir.path());
        let (mut lock, mut journal) = (None, None);
        std::thread::scope(|s| {
            let (go, wait) = std::sync::mpsc::channel::<()>();
            let opening = s.spawn(move || {
                wait.recv().unwrap();
                Ok((Journal::lock(dir.path())?, Journal::open(dir.path())))
            });
            let slots = Slots {
                lock: &mut lock,
                journal: &mut journal,
            };
            let mut sink = Journaling::new(Ok(opening), fixtures::run("r1"), slots);
            add(&mut sink, 0, "a");
            add(&mut sink, 1, "b");
            // Still opening: the planner's own ids answer.
            assert_eq!(sink.recipient(1).unwrap().as_deref(), Some("b"));
            go.send(()).unwrap();
            sink.open().unwrap();
            add(&mut sink, 2, "c");
            assert_eq!(sink.recipient(0).unwrap().as_deref(), Some("a"));
            assert_eq!(sink.recipient(2).unwrap().as_deref(), Some("c"));
            sink.into_writer().unwrap().commit().unwrap();
        });
        assert!(lock.is_some(), "the lock is kept for the rest of the run");
        let rows = journal.unwrap().deliveries("r1").unwrap();
        let got: Vec<(i64, &str)> = rows.iter().map(|d| (d.id, d.recipient.as_str())).collect();
        assert_eq!(got, [(3, "a"), (4, "b"), (5, "c")]);
    }

    #[test]
    fn a_journal_that_cannot_be_opened_fails_the_plan_and_keeps_the_lock_it_took() {
        let dir = tempfile::tempdir().unwrap();
        let (mut lock, mut journal) = (None, None);
        std::thread::scope(|s| {
            let opening = s.spawn(|| {
                let lock = Journal::lock(dir.path())?;
                let broken = JournalError::Newer {
                    path: "journal.sqlite3".into(),
                    version: 99,
                };
                Ok((lock, Err(broken)))
            });
            let slots = Slots {
                lock: &mut lock,
                journal: &mut journal,
            };
            let mut sink = Journaling::new(Ok(opening), fixtures::run("r1"), slots);
            let err = sink.open().err().expect("no journal");
            assert!(format!("{err:#}").contains("journal.sqlite3"), "{err:#}");
            assert!(sink.add(0, &fixtures::delivery("a").as_ref()).is_err());
        });
        assert!(lock.is_some());
        assert!(journal.is_none());
    }
}
