//! A run's deliveries as the report formats read them: one scan of the journal in id order,
//! each row borrowed from SQLite's result row (no per-row allocation), and the people figures
//! and call list computed from that scan instead of SQL's `GROUP BY row`, which sorts the run.
//!
//! The SQL is the [`scan!`] macro's: a schema change adapts it there.

use crate::journal::{Journal, JournalError, Status, Which};
use crate::people::{NotReached, People, Person, PersonDelivery, State};

/// A query over the run's deliveries shown in reports, in id order: the run's ids as a rowid
/// range (a run's deliveries are numbered in one block), then the run itself (the `+` keeps
/// SQLite from reading the lane index and sorting what it finds by id).
macro_rules! scan {
    ($columns:literal) => {
        concat!(
            "SELECT ",
            $columns,
            " FROM delivery_view
             WHERE id BETWEEN (SELECT MIN(d.id) FROM deliveries d JOIN lanes l ON l.id = d.lane WHERE l.run_id = ?1)
                          AND (SELECT MAX(d.id) FROM deliveries d JOIN lanes l ON l.id = d.lane WHERE l.run_id = ?1)
               AND +run_id = ?1 AND status != 'standby' ORDER BY id"
        )
    };
}

const SCAN: &str =
    scan!("channel, recipient, name, status, problem, attempts, provider_id, route, error, updated_at, row, fallback");

/// Only what a person's state needs: most of the scan's time is decoding columns.
const PEOPLE_SCAN: &str = scan!("row, status");

/// One delivery, borrowed from the journal's result row.
pub struct Delivery<'a> {
    pub channel: &'a str,
    pub recipient: &'a str,
    pub name: &'a str,
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

    fn person(&self) -> PersonDelivery<'_> {
        PersonDelivery {
            channel: self.channel,
            recipient: self.recipient,
            name: self.name,
            status: self.status,
            error: self.error,
        }
    }
}

fn delivery<'a>(r: &'a rusqlite::Row<'_>) -> rusqlite::Result<Delivery<'a>> {
    let text = |i: usize| -> rusqlite::Result<&'a str> { Ok(r.get_ref(i)?.as_str()?) };
    let opt = |i: usize| -> rusqlite::Result<Option<&'a str>> { Ok(r.get_ref(i)?.as_str_or_null()?) };
    let status = match Status::parse(text(3)?) {
        Status::Sending => Status::Unknown,
        s => s,
    };
    Ok(Delivery {
        channel: text(0)?,
        recipient: text(1)?,
        name: text(2)?,
        status,
        problem: r.get(4)?,
        attempts: r.get(5)?,
        provider_id: opt(6)?,
        route: opt(7)?,
        error: opt(8)?,
        updated_at: text(9)?,
        row: r.get::<_, Option<i64>>(10)?.and_then(|n| u64::try_from(n).ok()),
        fallback: r.get(11)?,
    })
}

/// Visit a run's deliveries of `which` in id order. Stops at the first error `f` returns (the
/// inner result); the outer one is the journal's.
pub fn each<E>(
    journal: &Journal,
    run_id: &str,
    which: Which,
    mut f: impl FnMut(&Delivery<'_>) -> Result<(), E>,
) -> Result<Result<(), E>, JournalError> {
    journal.each_row(SCAN, [run_id], |r| {
        let d = delivery(r)?;
        let wanted = match which {
            Which::All => true,
            Which::Problems => d.is_problem(),
            Which::NoProblems => !d.is_problem(),
        };
        Ok(if wanted { f(&d) } else { Ok(()) })
    })
}

/// What one scan tells about a run's people.
struct Scanned {
    people: People,
    /// Every person's deliveries follow each other in id order (one per-person channel, or a
    /// plan written person by person): the call list can then be streamed from one scan.
    grouped: bool,
}

fn rank(s: State) -> u8 {
    match s {
        State::NotReached => 0,
        State::Uncertain => 1,
        State::Reached => 2,
    }
}

fn scan_people(journal: &Journal, run_id: &str) -> Result<Scanned, JournalError> {
    // (row, rank of the delivery's state): a person's state is the best of their deliveries'.
    let mut seen: Vec<(u64, u8)> = Vec::new();
    let Ok(()) = journal.each_row(PEOPLE_SCAN, [run_id], |r| {
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
    Ok(Scanned { people, grouped })
}

/// A run's people counted (what `people::count` counts in SQL).
pub fn count_people(journal: &Journal, run_id: &str) -> Result<People, JournalError> {
    Ok(scan_people(journal, run_id)?.people)
}

/// Visit the people nothing reached, by row (what `people::each_not_reached` visits). When a
/// person's deliveries are not next to each other in id order, the journal groups them.
pub fn each_not_reached<E>(
    journal: &Journal,
    run_id: &str,
    mut f: impl FnMut(NotReached) -> Result<(), E>,
) -> Result<Result<(), E>, JournalError> {
    let scanned = scan_people(journal, run_id)?;
    if scanned.people.not_reached == 0 {
        return Ok(Ok(()));
    }
    if !scanned.grouped {
        return crate::people::each_not_reached(journal, run_id, f);
    }
    let mut current: Option<Person> = None;
    let mut done = |p: Person| p.finish().1.map_or(Ok(()), &mut f);
    let walked = each(journal, run_id, Which::All, |d| {
        let Some(row) = d.row else { return Ok(()) };
        if let Some(p) = current.take_if(|p| p.row() != row) {
            done(p)?;
        }
        current.get_or_insert_with(|| Person::new(row)).add(&d.person());
        Ok(())
    })?;
    if walked.is_err() {
        return Ok(walked);
    }
    Ok(current.map_or(Ok(()), done))
}
