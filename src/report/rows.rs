//! A run's deliveries as the report formats read them: scans of the journal in id order, each
//! row borrowed from SQLite's result row (no per-row allocation), and the people figures and
//! call list computed from such scans instead of SQL's `GROUP BY row`, which sorts the run.
//!
//! The SQL is the [`scan!`] macro's: a schema change adapts it there. Where the run's rows are
//! (their id range and lanes) and whether each person's rows are together is found once, by
//! [`survey`], while the summary is counted, and kept in a [`Layout`] for the later passes.

use crate::journal::{Journal, JournalError, Status, Which};
use crate::people::{NotReached, People, Person, PersonDelivery, State};

/// A query over the deliveries with ids in `?1`..`?2` (from [`Layout`]: a run's deliveries
/// are numbered in blocks), in id order, each row's lane first. It reads the tables, not
/// `delivery_view`, whose join of every row with its lane was much of a scan's time: the run's
/// few lanes are looked up in [`Layout::lanes`] instead, which also leaves out other runs' rows.
macro_rules! scan {
    ($columns:literal) => {
        concat!(
            "SELECT d.lane, ",
            $columns,
            " FROM deliveries d JOIN people p ON p.id = d.person
             WHERE d.id BETWEEN ?1 AND ?2 AND d.status != 'standby' ORDER BY d.id"
        )
    };
}

const SCAN: &str = scan!(
    "d.recipient, d.status, d.problem, d.attempts, d.provider_id, d.route, d.error, d.updated_at, p.row, d.fallback"
);

/// Only what the call list needs.
const PERSON_SCAN: &str = scan!("p.row, d.recipient, p.name, d.status, d.error");

/// Only what a person's state needs.
const PEOPLE_SCAN: &str = scan!("p.row, d.status");

/// Where a run's deliveries lie in the journal, found while the summary is counted, so that
/// the passes over them need not find it again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// The smallest and the largest id of the run's deliveries; `None` when it has none.
    pub ids: Option<(i64, i64)>,
    /// Every person's deliveries follow each other in id order (one per-person channel, or a
    /// plan written person by person): the call list can then be streamed from one scan.
    pub grouped: bool,
    pub lanes: Vec<Lane>,
}

/// One channel of the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lane {
    id: i64,
    channel: String,
    /// A delivery's `updated_at` until sending first changes it.
    planned_at: String,
}

/// A run's people and where its deliveries lie, given its channels' counts (which hold their
/// id ranges).
pub fn survey(
    journal: &Journal,
    run_id: &str,
    counts: &[crate::journal::ChannelCounts],
) -> Result<(People, Layout), JournalError> {
    let mut layout = Layout {
        ids: counts
            .iter()
            .map(|c| (c.first_id, c.last_id))
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1))),
        ..Layout::default()
    };
    let Ok(()) = journal.each_row(
        "SELECT id, channel, planned_at FROM lanes WHERE run_id = ?1",
        [run_id],
        |r| {
            layout.lanes.push(Lane {
                id: r.get(0)?,
                channel: r.get(1)?,
                planned_at: r.get(2)?,
            });
            Ok(Ok::<(), std::convert::Infallible>(()))
        },
    )?;
    let (people, grouped) = scan_people(journal, run_id, &layout)?;
    layout.grouped = grouped;
    Ok((people, layout))
}

/// A run's deliveries in one journal, as the passes over them read it.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub journal: &'a Journal,
    pub run_id: &'a str,
    pub layout: &'a Layout,
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

fn delivery<'a>(lane: &'a Lane, r: &'a rusqlite::Row<'_>) -> rusqlite::Result<Delivery<'a>> {
    let text = |i: usize| -> rusqlite::Result<&'a str> { Ok(r.get_ref(i)?.as_str()?) };
    let opt = |i: usize| -> rusqlite::Result<Option<&'a str>> { Ok(r.get_ref(i)?.as_str_or_null()?) };
    Ok(Delivery {
        channel: &lane.channel,
        recipient: text(1)?,
        status: reported(text(2)?),
        problem: r.get(3)?,
        attempts: r.get(4)?,
        provider_id: opt(5)?,
        route: opt(6)?,
        error: opt(7)?,
        updated_at: opt(8)?.unwrap_or(&lane.planned_at),
        row: row(r, 9)?,
        fallback: r.get(10)?,
    })
}

/// An audience row; `None` for a broadcast.
fn row(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<u64>> {
    Ok(r.get::<_, Option<i64>>(i)?.and_then(|n| u64::try_from(n).ok()))
}

impl Scope<'_> {
    /// `f` on every row of `q` (a [`scan!`]) of the run's deliveries, with the row's lane.
    fn rows<E>(
        &self,
        q: &str,
        mut f: impl FnMut(&Lane, &rusqlite::Row<'_>) -> rusqlite::Result<Result<(), E>>,
    ) -> Result<Result<(), E>, JournalError> {
        let Some((lo, hi)) = self.layout.ids else {
            return Ok(Ok(()));
        };
        let lanes = &self.layout.lanes;
        let mut last = 0;
        self.journal.each_row(q, [lo, hi], |r| {
            let id: i64 = r.get(0)?;
            if lanes.get(last).is_none_or(|l| l.id != id) {
                // Another run's delivery within the range.
                let Some(i) = lanes.iter().position(|l| l.id == id) else {
                    return Ok(Ok(()));
                };
                last = i;
            }
            f(&lanes[last], r)
        })
    }

    /// The longest channel, recipient, route and provider id of the run (in characters), so
    /// a streamed table can align its columns without reading the rows first.
    pub fn column_widths(&self) -> Result<[usize; 4], JournalError> {
        const Q: &str = "SELECT MAX(LENGTH(channel)), MAX(LENGTH(recipient)), MAX(LENGTH(COALESCE(route, ''))),
                                MAX(LENGTH(COALESCE(provider_id, '')))
                           FROM delivery_view WHERE id BETWEEN ?2 AND ?3 AND +run_id = ?1 AND status != 'standby'";
        let mut widths = [0; 4];
        let Some((lo, hi)) = self.layout.ids else {
            return Ok(widths);
        };
        let Ok(()) = self.journal.each_row(Q, rusqlite::params![self.run_id, lo, hi], |r| {
            for (i, w) in widths.iter_mut().enumerate() {
                *w = r
                    .get::<_, Option<i64>>(i)?
                    .map_or(0, |n| usize::try_from(n).unwrap_or(0));
            }
            Ok(Ok::<(), std::convert::Infallible>(()))
        })?;
        Ok(widths)
    }

    /// Visit a run's deliveries of `which` in id order. Stops at the first error `f` returns
    /// (the inner result); the outer one is the journal's.
    pub fn each<E>(
        &self,
        which: Which,
        mut f: impl FnMut(&Delivery<'_>) -> Result<(), E>,
    ) -> Result<Result<(), E>, JournalError> {
        self.rows(SCAN, |lane, r| {
            let d = delivery(lane, r)?;
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
        let walked = self.rows(PERSON_SCAN, |lane, r| {
            let Some(row) = row(r, 1)? else {
                return Ok(Ok(()));
            };
            let text = |i: usize| -> rusqlite::Result<&str> { Ok(r.get_ref(i)?.as_str()?) };
            if let Some(p) = current.take_if(|p| p.row() != row)
                && let Err(e) = done(p)
            {
                return Ok(Err(e));
            }
            current.get_or_insert_with(|| Person::new(row)).add(&PersonDelivery {
                channel: &lane.channel,
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
fn scan_people(journal: &Journal, run_id: &str, layout: &Layout) -> Result<(People, bool), JournalError> {
    // (row, rank of the delivery's state): a person's state is the best of their deliveries'.
    let mut seen: Vec<(u64, u8)> = Vec::new();
    let scope = Scope {
        journal,
        run_id,
        layout,
    };
    let Ok(()) = scope.rows(PEOPLE_SCAN, |_, r| {
        if let Some(row) = row(r, 1)? {
            let status = Status::parse(r.get_ref(2)?.as_str()?);
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
