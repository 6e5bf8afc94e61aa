//! People rather than deliveries: a person is one audience row with at least one per-person
//! delivery in the run. Staff ask "has everyone been told, whom do I still have to phone?",
//! which the per-channel counts do not answer.
//!
//! [`count`] and [`each_not_reached`] group a run's deliveries by row in SQL through the
//! journal's [`Journal::each_row`]; this module holds what one person's deliveries mean, so the
//! SQL and the in-memory report agree.

use serde::{Deserialize, Serialize};

use crate::journal::{Journal, JournalError, Status};

/// How many people a run reached (the report's `people`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct People {
    pub total: usize,
    pub reached: usize,
    pub not_reached: usize,
    pub uncertain: usize,
}

impl People {
    pub fn add(&mut self, state: State) {
        self.add_n(state, 1);
    }

    pub fn add_n(&mut self, state: State, n: usize) {
        self.total += n;
        match state {
            State::Reached => self.reached += n,
            State::Uncertain => self.uncertain += n,
            State::NotReached => self.not_reached += n,
        }
    }

    /// "reached 3 of 5 people", with the uncertain ones when there are any; `None` for a run
    /// without per-person channels (nobody to count).
    pub fn line(&self) -> Option<String> {
        if self.total == 0 {
            return None;
        }
        let mut s = format!("reached {} of {} people", self.reached, self.total);
        if self.uncertain > 0 {
            s.push_str(&format!(", {} uncertain (outcome unknown)", self.uncertain));
        }
        Some(s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// At least one delivery sent or delivered.
    Reached,
    /// None sent or delivered, at least one whose outcome is unknown (the person may have it).
    Uncertain,
    NotReached,
}

impl State {
    /// One person's state from the statuses of their deliveries. The SQL twin is
    /// [`STATE_SQL`]; a test holds the two together.
    pub fn of(statuses: impl IntoIterator<Item = Status>) -> State {
        let mut state = State::NotReached;
        for s in statuses {
            match s {
                Status::Sent | Status::Delivered => return State::Reached,
                // `sending` in a report means the process died with it in flight.
                Status::Unknown | Status::Sending => state = State::Uncertain,
                // A `[reach]` fallback on standby is no delivery yet (the journal leaves it out).
                Status::Pending | Status::Failed | Status::Skipped | Status::Undelivered | Status::Standby => {}
            }
        }
        state
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Reached => "reached",
            State::Uncertain => "uncertain",
            State::NotReached => "not_reached",
        }
    }

    pub fn parse(s: &str) -> State {
        match s {
            "reached" => State::Reached,
            "uncertain" => State::Uncertain,
            _ => State::NotReached,
        }
    }
}

/// [`State::of`] as an aggregate over one person's deliveries (`GROUP BY row`).
pub const STATE_SQL: &str = "CASE WHEN SUM(status IN ('sent', 'delivered')) > 0 THEN 'reached' \
                             WHEN SUM(status IN ('unknown', 'sending')) > 0 THEN 'uncertain' \
                             ELSE 'not_reached' END";

/// A run's people counted: deliveries grouped by person in SQL (along the journal's index of
/// them, in person order), so a run of a million is counted without reading them into memory.
pub fn count(journal: &Journal, run_id: &str) -> Result<People, JournalError> {
    let q = format!(
        "SELECT state, COUNT(*) FROM
           (SELECT {STATE_SQL} AS state FROM deliveries d INDEXED BY deliveries_person JOIN people p ON p.id = d.person
            WHERE d.lane IN (SELECT id FROM lanes WHERE run_id = ?1) AND p.row IS NOT NULL AND d.status != 'standby'
            GROUP BY d.person)
         GROUP BY state"
    );
    let mut people = People::default();
    let Ok(()) = journal.each_row(&q, [run_id], |r| {
        let n = usize::try_from(r.get::<_, i64>(1)?).unwrap_or(0);
        people.add_n(State::parse(&r.get::<_, String>(0)?), n);
        Ok(Ok::<(), std::convert::Infallible>(()))
    })?;
    Ok(people)
}

/// Visit the people nothing reached, by row, one at a time (only one person's deliveries
/// are held). Stops at the first error `f` returns (the inner result).
pub fn each_not_reached<E>(
    journal: &Journal,
    run_id: &str,
    mut f: impl FnMut(NotReached) -> Result<(), E>,
) -> Result<Result<(), E>, JournalError> {
    // Every person's deliveries in one pass; the state is decided here ([`Person::finish`]).
    let q = "SELECT p.row, l.channel, d.recipient, p.name, d.status, d.error
               FROM deliveries d INDEXED BY deliveries_person JOIN people p ON p.id = d.person JOIN lanes l ON l.id = d.lane
              WHERE l.run_id = ?1 AND p.row IS NOT NULL AND d.status != 'standby'
              ORDER BY d.person, d.id";
    let mut current: Option<Person> = None;
    let mut done = |p: Person| p.finish().1.map_or(Ok(()), &mut f);
    let walked = journal.each_row(q, [run_id], |r| {
        let row = u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0);
        if let Some(p) = current.take_if(|p| p.row() != row)
            && let Err(e) = done(p)
        {
            return Ok(Err(e));
        }
        current.get_or_insert_with(|| Person::new(row)).add(&PersonDelivery {
            channel: &r.get::<_, String>(1)?,
            recipient: &r.get::<_, String>(2)?,
            name: &r.get::<_, String>(3)?,
            status: Status::parse(&r.get::<_, String>(4)?),
            error: r.get::<_, Option<String>>(5)?.as_deref(),
        });
        Ok(Ok(()))
    })?;
    if walked.is_err() {
        return Ok(walked);
    }
    Ok(current.map_or(Ok(()), done))
}

/// One person of the call list (the report's `not_reached`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NotReached {
    pub row: u64,
    pub name: String,
    /// The addresses the run had for them; empty when there was none or it was invalid (the
    /// reason then quotes the invalid value).
    pub email: String,
    pub phone: String,
    /// One per channel that did not reach them, each starting with the channel's name.
    pub reasons: Vec<String>,
}

/// One delivery of a person, as far as the call list needs it.
pub struct PersonDelivery<'a> {
    pub channel: &'a str,
    pub recipient: &'a str,
    pub name: &'a str,
    pub status: Status,
    pub error: Option<&'a str>,
}

/// Collects one person's deliveries (in id order) into their call-list entry.
pub struct Person {
    entry: NotReached,
    statuses: Vec<Status>,
}

impl Person {
    pub fn new(row: u64) -> Person {
        Person {
            entry: NotReached {
                row,
                ..NotReached::default()
            },
            statuses: Vec::new(),
        }
    }

    pub fn row(&self) -> u64 {
        self.entry.row
    }

    pub fn add(&mut self, d: &PersonDelivery<'_>) {
        self.statuses.push(d.status);
        let e = &mut self.entry;
        if e.name.is_empty() {
            e.name = d.name.to_string();
        }
        // A row without a usable address has the placeholder "row N" as recipient.
        if d.recipient.strip_prefix("row ") != Some(itoa::Buffer::new().format(e.row)) {
            let slot = if d.recipient.contains('@') {
                &mut e.email
            } else {
                &mut e.phone
            };
            if slot.is_empty() {
                *slot = d.recipient.to_string();
            }
        }
        if !matches!(d.status, Status::Sent | Status::Delivered) {
            e.reasons.push(reason(d.channel, d.status, d.error, e.row));
        }
    }

    /// The person's state, and their call-list entry when nothing reached them.
    pub fn finish(self) -> (State, Option<NotReached>) {
        let state = State::of(self.statuses);
        (state, (state == State::NotReached).then_some(self.entry))
    }
}

/// "CHANNEL: why", without the "row N: " the planner puts before row problems (the call list
/// has the row in a column of its own).
pub fn reason(channel: &str, status: Status, error: Option<&str>, row: u64) -> String {
    let why = match (status, error) {
        (Status::Pending, _) => "not sent yet (pending)",
        (_, Some(e)) => e
            .strip_prefix("row ")
            .and_then(|rest| rest.strip_prefix(itoa::Buffer::new().format(row)))
            .and_then(|rest| rest.strip_prefix(": "))
            .unwrap_or(e),
        (s, None) => s.as_str(),
    };
    // Not `format!`: the call list of a large run makes one per person.
    let mut out = String::with_capacity(channel.len() + 2 + why.len());
    out.push_str(channel);
    out.push_str(": ");
    out.push_str(why);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_is_reached_by_any_sent_delivery_and_uncertain_only_without_one() {
        use Status::*;
        assert_eq!(State::of([Failed, Sent]), State::Reached);
        assert_eq!(State::of([Skipped, Delivered, Unknown]), State::Reached);
        assert_eq!(State::of([Failed, Unknown]), State::Uncertain);
        assert_eq!(State::of([Sending]), State::Uncertain);
        assert_eq!(State::of([Failed, Skipped, Undelivered, Pending]), State::NotReached);
        assert_eq!(State::of([]), State::NotReached);
    }

    #[test]
    fn the_call_list_entry_has_the_real_addresses_and_one_reason_per_channel() {
        let mut p = Person::new(7);
        p.add(&PersonDelivery {
            channel: "email",
            recipient: "anna@example.de",
            name: "Anna",
            status: Status::Failed,
            error: Some("550 5.1.1 <anna@example.de>: User unknown"),
        });
        p.add(&PersonDelivery {
            channel: "sms",
            recipient: "row 7",
            name: "Anna",
            status: Status::Skipped,
            error: Some("row 7: no phone number"),
        });
        p.add(&PersonDelivery {
            channel: "sms2",
            recipient: "+4915112345678",
            name: "Anna",
            status: Status::Pending,
            error: None,
        });
        let (state, entry) = p.finish();
        assert_eq!(state, State::NotReached);
        assert_eq!(
            entry.unwrap(),
            NotReached {
                row: 7,
                name: "Anna".into(),
                email: "anna@example.de".into(),
                phone: "+4915112345678".into(),
                reasons: vec![
                    "email: 550 5.1.1 <anna@example.de>: User unknown".into(),
                    "sms: no phone number".into(),
                    "sms2: not sent yet (pending)".into(),
                ],
            }
        );
        // Only the person's own row number is cut from a reason.
        assert_eq!(reason("sms", Status::Skipped, Some("row 12: x"), 7), "sms: row 12: x");
        assert_eq!(reason("sms", Status::Failed, None, 7), "sms: failed");
    }

    #[test]
    fn the_people_line_names_the_uncertain_only_when_there_are_some() {
        let mut p = People::default();
        assert_eq!(p.line(), None);
        for s in [State::Reached, State::NotReached, State::Reached] {
            p.add(s);
        }
        assert_eq!(p.line().as_deref(), Some("reached 2 of 3 people"));
        p.add(State::Uncertain);
        assert_eq!(
            p.line().as_deref(),
            Some("reached 2 of 4 people, 1 uncertain (outcome unknown)")
        );
    }
}
