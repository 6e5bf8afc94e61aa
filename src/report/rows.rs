//! A run's deliveries as the report formats read them: one scan of the journal in id order,
//! each row borrowed from SQLite's result row (no per-row allocation), and the people figures
//! and call list computed from that scan instead of SQL's `GROUP BY row`, which sorts the run.
//!
//! The SQL is the [`scan!`] macro's: a schema change adapts it there.

use crate::journal::{Journal, JournalError, Status, Which};
use crate::people::{NotReached, People, Person, PersonDelivery, State};

/// A query over the run's deliveries shown in reports, in id order: the run's ids as a rowid
/// range (`?2`..`?3`, from [`Layout`]: a run's deliveries are numbered in blocks), then the
/// run itself (the `+` keeps SQLite from reading the lane index and sorting what it finds by id).
macro_rules! scan {
    ($columns:literal) => {
        concat!(
            "SELECT ",
            $columns,
            " FROM delivery_view WHERE id BETWEEN ?2 AND ?3 AND +run_id = ?1 AND status != 'standby' ORDER BY id"
        )
    };
}

const SCAN: &str =
    scan!("channel, recipient, status, problem, attempts, provider_id, route, error, updated_at, row, fallback");

/// Only what the call list needs.
const PERSON_SCAN: &str = scan!("row, channel, recipient, name, status, error");

/// Only what a person's state needs, from the tables rather than the view (which joins lanes
/// for every row): most of a scan's time is reading and decoding columns.
const PEOPLE_SCAN: &str = "SELECT p.row, d.status FROM deliveries d JOIN people p ON p.id = d.person
     WHERE d.id BETWEEN ?2 AND ?3 AND +d.lane IN (SELECT id FROM lanes WHERE run_id = ?1) AND d.status != 'standby'
     ORDER BY d.id";

/// Where a run's deliveries lie in the journal, found while the summary is counted, so that
/// the passes over them need not find it again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layout {
    /// The smallest and the largest id of the run's deliveries; `None` when it has none.
    pub ids: Option<(i64, i64)>,
    /// Every person's deliveries follow each other in id order (one per-person channel, or a
    /// plan written person by person): the call list can then be streamed from one scan.
    pub grouped: bool,
}

/// A run's people and where its deliveries lie, given its channels' counts (which hold their
/// id ranges).
pub fn survey(
    journal: &Journal,
    run_id: &str,
    counts: &[crate::journal::ChannelCounts],
) -> Result<(People, Layout), JournalError> {
    let ids = counts
        .iter()
        .map(|c| (c.first_id, c.last_id))
        .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)));
    let (people, grouped) = scan_people(journal, run_id, ids)?;
    Ok((people, Layout { ids, grouped }))
}

/// A run's deliveries in one journal, as the passes over them read it.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub journal: &'a Journal,
    pub run_id: &'a str,
    pub layout: Layout,
}

/// One delivery, borrowed from the journal's result row.
pub struct Delivery<'a> {
    pub channel: &'a str,
    pub recipient: &'a str,
    /// As reported: a delivery left `sending` by a dead run is `unknown`.
    pub status: Status,
    /// Skipped because of bad input.
    pub problem: bool,
    pub attempts: u32,
    pub provider_id: Option<&'a str>,
    pub route: Option<&'a str>,
    pub error: Option<&'a str>,
    pub updated_at: &'a str,
    pub row: Option<u64>,
    pub fallback: bool,
}

impl Delivery<'_> {
    /// [`Which::Problems`]: failed, undelivered, unknown (or left `sending`), skipped for bad input.
    fn is_problem(&self) -> bool {
        matches!(self.status, Status::Failed | Status::Undelivered | Status::Unknown)
            || (self.status == Status::Skipped && self.problem)
    }
}

/// A status as reported: a delivery left `sending` by a dead run is `unknown`.
fn reported(status: &str) -> Status {
    match Status::parse(status) {
        Status::Sending => Status::Unknown,
        s => s,
    }
}

fn delivery<'a>(r: &'a rusqlite::Row<'_>) -> rusqlite::Result<Delivery<'a>> {
    let text = |i: usize| -> rusqlite::Result<&'a str> { Ok(r.get_ref(i)?.as_str()?) };
    let opt = |i: usize| -> rusqlite::Result<Option<&'a str>> { Ok(r.get_ref(i)?.as_str_or_null()?) };
    let status = reported(text(2)?);
    Ok(Delivery {
        channel: text(0)?,
        recipient: text(1)?,
        status,
        problem: r.get(3)?,
        attempts: r.get(4)?,
        provider_id: opt(5)?,
        route: opt(6)?,
        error: opt(7)?,
        updated_at: text(8)?,
        row: r.get::<_, Option<i64>>(9)?.and_then(|n| u64::try_from(n).ok()),
        fallback: r.get(10)?,
    })
}

impl Scope<'_> {
    /// `f` on every row of `q` (a [`scan!`]) over the run's deliveries.
    fn rows<E>(
        &self,
        q: &str,
        f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<Result<(), E>>,
    ) -> Result<Result<(), E>, JournalError> {
        let Some((lo, hi)) = self.layout.ids else {
            return Ok(Ok(()));
        };
        self.journal.each_row(q, rusqlite::params![self.run_id, lo, hi], f)
    }

    /// Visit a run's deliveries of `which` in id order. Stops at the first error `f` returns
    /// (the inner result); the outer one is the journal's.
    pub fn each<E>(
        &self,
        which: Which,
        mut f: impl FnMut(&Delivery<'_>) -> Result<(), E>,
    ) -> Result<Result<(), E>, JournalError> {
        self.rows(SCAN, |r| {
            let d = delivery(r)?;
            let wanted = match which {
                Which::All => true,
                Which::Problems => d.is_problem(),
                Which::NoProblems => !d.is_problem(),
            };
            Ok(if wanted { f(&d) } else { Ok(()) })
        })
    }

    /// Visit the people nothing reached, by row (what `people::each_not_reached` visits), given
    /// how many there are. When a person's deliveries are not next to each other in id order,
    /// the journal groups them.
    pub fn each_not_reached<E>(
        &self,
        people: &People,
        mut f: impl FnMut(NotReached) -> Result<(), E>,
    ) -> Result<Result<(), E>, JournalError> {
        if people.not_reached == 0 {
            return Ok(Ok(()));
        }
        if !self.layout.grouped {
            return crate::people::each_not_reached(self.journal, self.run_id, f);
        }
        let mut current: Option<Person> = None;
        let mut done = |p: Person| p.finish().1.map_or(Ok(()), &mut f);
        let walked = self.rows(PERSON_SCAN, |r| {
            let Some(row) = r.get::<_, Option<i64>>(0)?.and_then(|n| u64::try_from(n).ok()) else {
                return Ok(Ok(()));
            };
            let text = |i: usize| -> rusqlite::Result<&str> { Ok(r.get_ref(i)?.as_str()?) };
            if let Some(p) = current.take_if(|p| p.row() != row)
                && let Err(e) = done(p)
            {
                return Ok(Err(e));
            }
            current.get_or_insert_with(|| Person::new(row)).add(&PersonDelivery {
                channel: text(1)?,
                recipient: text(2)?,
                name: text(3)?,
                status: reported(text(4)?),
                error: r.get_ref(5)?.as_str_or_null()?,
            });
            Ok(Ok(()))
        })?;
        if walked.is_err() {
            return Ok(walked);
        }
        Ok(current.map_or(Ok(()), done))
    }
}

fn rank(s: State) -> u8 {
    match s {
        State::NotReached => 0,
        State::Uncertain => 1,
        State::Reached => 2,
    }
}

/// A run's people counted (what `people::count` counts in SQL), and whether each person's
/// deliveries are next to each other in id order, from one scan of the run's ids.
fn scan_people(journal: &Journal, run_id: &str, ids: Option<(i64, i64)>) -> Result<(People, bool), JournalError> {
    // (row, rank of the delivery's state): a person's state is the best of their deliveries'.
    let mut seen: Vec<(u64, u8)> = Vec::new();
    let scope = Scope {
        journal,
        run_id,
        layout: Layout { ids, grouped: false },
    };
    let Ok(()) = scope.rows(PEOPLE_SCAN, |r| {
        if let Some(row) = r.get::<_, Option<i64>>(0)?.and_then(|n| u64::try_from(n).ok()) {
            let status = Status::parse(r.get_ref(1)?.as_str()?);
            seen.push((row, rank(State::of([status]))));
        }
        Ok(Ok::<(), std::convert::Infallible>(()))
    })?;
    let grouped = seen.windows(2).all(|w| w[0].0 <= w[1].0);
    if !grouped {
        seen.sort_unstable();
    }
    let mut people = People::default();
    for person in seen.chunk_by(|a, b| a.0 == b.0) {
        let best = person.iter().map(|p| p.1).max().unwrap_or(0);
        people.add(match best {
            2 => State::Reached,
            1 => State::Uncertain,
            _ => State::NotReached,
        });
    }
    Ok((people, grouped))
}
