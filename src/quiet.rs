//! Quiet hours (`quiet_hours = "20:00-08:00"` on a phone channel): the dispatcher starts no
//! delivery of the channel while `[org] timezone`'s wall clock is inside the window. Without
//! `--wait` the lane stops for the run and its deliveries stay `pending`; with it the lane waits
//! for the window to end. This module is the one place that reads the clock for it: no channel
//! looks at the time itself.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::ProgressBar;
use jiff::ZonedDateTime;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::channel::{AddressKind, Channel, Reach};
use crate::settings::QuietHours;

/// What the run does about quiet hours: the zone their times are in, and `--wait`.
#[derive(Debug, Clone)]
pub struct Policy {
    pub tz: TimeZone,
    /// Wait for the window to end instead of leaving the deliveries for `resume`.
    pub wait: bool,
    /// Show the time left on the lane's progress bar (a terminal, not `--json` or `-q`).
    pub countdown: bool,
}

/// The wall-clock time in `tz` now.
pub fn now(tz: &TimeZone) -> ZonedDateTime {
    jiff::Timestamp::now().to_zoned_datetime(tz.clone())
}

/// One lane's quiet hours while it is driven.
#[derive(Debug)]
pub struct Gate {
    hours: QuietHours,
    policy: Policy,
    /// Set when the lane stopped for the window (without `--wait`): when it ends.
    stopped: Mutex<Option<ZonedDateTime>>,
}

impl Gate {
    pub fn new(hours: QuietHours, policy: Policy) -> Gate {
        Gate {
            hours,
            policy,
            stopped: Mutex::new(None),
        }
    }

    /// Whether a delivery may start now; with `--wait` after the window ended. `false`: not in
    /// this run (no `--wait`, or Ctrl-C while waiting).
    pub async fn open(&self, cancel: &CancellationToken, bar: Option<&ProgressBar>) -> bool {
        let bar = bar.filter(|_| self.policy.countdown);
        loop {
            if self.stopped().is_some() {
                return false;
            }
            let now = now(&self.policy.tz);
            let Some(end) = self.hours.ends_after(&now) else {
                if let Some(b) = bar {
                    b.set_message("");
                }
                return true;
            };
            if !self.policy.wait {
                let mut g = self.stopped.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                g.get_or_insert(end);
                return false;
            }
            let left = time_left(&now, &end);
            if let Some(b) = bar {
                b.set_message(countdown(left, &end));
            }
            // Wake now and then: the countdown ticks, and a suspended machine's monotonic
            // clock lags the wall clock the window is in.
            let step = left.min(if bar.is_some() {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(60)
            });
            tokio::select! {
                () = tokio::time::sleep(step) => {}
                () = cancel.cancelled() => return false,
            }
        }
    }

    /// Whether a delivery must not start now.
    pub fn closed(&self) -> bool {
        self.stopped().is_some() || self.hours.ends_after(&now(&self.policy.tz)).is_some()
    }

    /// When the window ends that made the lane stop, if it did.
    pub fn stopped(&self) -> Option<ZonedDateTime> {
        self.stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn hours(&self) -> QuietHours {
        self.hours
    }
}

/// How long from `now` until `end` (zero once it is past).
pub fn time_left(now: &ZonedDateTime, end: &ZonedDateTime) -> Duration {
    Duration::try_from(now.timestamp().duration_until(end.timestamp())).unwrap_or(Duration::ZERO)
}

/// "quiet hours until 08:00 (Europe/Berlin): 2h 05min 09s".
fn countdown(left: Duration, end: &ZonedDateTime) -> String {
    let s = left.as_secs();
    format!(
        "quiet hours until {}: {}h {:02}min {:02}s",
        at(end),
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// "08:00 (Europe/Berlin)".
pub fn at(end: &ZonedDateTime) -> String {
    let zone = end
        .time_zone()
        .iana_name()
        .map_or_else(|| end.offset().to_string(), str::to_string);
    format!("{:02}:{:02} ({zone})", end.hour(), end.minute())
}

/// A channel that stopped for its quiet hours, as the run's summary (and `--json`) tell it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Waiting {
    pub channel: String,
    /// `"20:00-08:00"`.
    pub quiet_hours: String,
    /// When the window ends (RFC 3339 with the zone's name).
    pub until: String,
    /// Its deliveries left `pending` by the run.
    pub pending: usize,
}

impl Waiting {
    pub fn new(channel: &str, hours: QuietHours, end: &ZonedDateTime, pending: usize) -> Waiting {
        Waiting {
            channel: channel.to_string(),
            quiet_hours: hours.to_string(),
            until: end.to_string(),
            pending,
        }
    }

    /// "sms: 12 deliveries wait for quiet hours to end at 08:00 (Europe/Berlin) — run
    /// `announce resume RUN` then".
    pub fn line(&self, run_id: &str) -> String {
        let end = self
            .until
            .parse::<ZonedDateTime>()
            .map_or_else(|_| self.until.clone(), |z| at(&z));
        format!(
            "{}: {} deliveries wait for quiet hours to end at {end} — run `announce resume {run_id}` then",
            self.channel, self.pending
        )
    }
}

/// `quiet_hours` only on a channel that calls or texts people: decided by whom it reaches, so
/// a new phone channel needs nothing here.
pub fn allowed_on(channel: &dyn Channel, hours: Option<QuietHours>) -> Result<(), String> {
    match (hours, channel.reach()) {
        (None, _) | (Some(_), Reach::PerPerson(AddressKind::Phone)) => Ok(()),
        (Some(_), _) => Err(format!(
            "[channels.{}] quiet_hours is for channels that reach people by phone: sms, voice, whatsapp",
            channel.name()
        )),
    }
}

/// For the plan and `preview`: "sms: quiet hours 20:00-08:00, now inside: deliveries will wait
/// until 08:00 (Europe/Berlin)", when the channel is inside its window now.
pub fn plan_note(channel: &str, hours: Option<QuietHours>, tz: &TimeZone) -> Option<String> {
    let hours = hours?;
    let end = hours.ends_after(&now(tz))?;
    Some(format!(
        "{channel}: quiet hours {hours}, now inside: deliveries will wait until {}",
        at(&end)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin(s: &str) -> ZonedDateTime {
        format!("{s}[Europe/Berlin]").parse().unwrap()
    }

    fn q(s: &str) -> QuietHours {
        s.parse().unwrap()
    }

    /// The start is inside, the end is not; a window may cross midnight.
    #[test]
    fn the_window_includes_its_start_and_excludes_its_end() {
        let t = |s: &str| s.parse::<jiff::civil::Time>().unwrap();
        let night = q("20:00-08:00");
        for (time, inside) in [
            ("19:59:59", false),
            ("20:00", true),
            ("23:59:59", true),
            ("00:00", true),
            ("07:59:59", true),
            ("08:00", false),
            ("12:00", false),
        ] {
            assert_eq!(night.contains(t(time)), inside, "20:00-08:00 at {time}");
        }
        let lunch = q("12:00-13:30");
        for (time, inside) in [("11:59", false), ("12:00", true), ("13:29:59", true), ("13:30", false)] {
            assert_eq!(lunch.contains(t(time)), inside, "12:00-13:30 at {time}");
        }
    }

    #[test]
    fn the_end_is_the_next_end_of_the_window_or_none_outside() {
        let night = q("20:00-08:00");
        let end = |now: &str| night.ends_after(&berlin(now)).map(|z| z.to_string());
        assert_eq!(
            end("2026-04-03T21:00:00").as_deref(),
            Some("2026-04-04T08:00:00+02:00[Europe/Berlin]")
        );
        assert_eq!(
            end("2026-04-04T03:00:00").as_deref(),
            Some("2026-04-04T08:00:00+02:00[Europe/Berlin]")
        );
        assert_eq!(end("2026-04-04T08:00:00"), None);
        assert_eq!(end("2026-04-03T19:59:00"), None);
        assert_eq!(
            end("2026-04-03T20:00:00").as_deref(),
            Some("2026-04-04T08:00:00+02:00[Europe/Berlin]")
        );
    }

    /// On the nights the clocks change the wait is an hour shorter or longer, and a window that
    /// ends in the skipped hour ends when the clock jumps.
    #[test]
    fn dst_nights_in_berlin() {
        let night = q("20:00-08:00");
        let wait = |now: &str| {
            let now = berlin(now);
            time_left(&now, &night.ends_after(&now).unwrap())
        };
        assert_eq!(wait("2026-03-28T21:00:00"), Duration::from_secs(10 * 3600));
        assert_eq!(wait("2026-10-24T21:00:00"), Duration::from_secs(12 * 3600));
        assert_eq!(wait("2026-04-03T21:00:00"), Duration::from_secs(11 * 3600));
        let into_gap = q("01:00-02:30");
        let end = into_gap.ends_after(&berlin("2026-03-29T01:30:00")).unwrap();
        assert_eq!(end.to_string(), "2026-03-29T03:00:00+02:00[Europe/Berlin]");
        assert_eq!(into_gap.ends_after(&berlin("2026-03-29T03:00:00")), None);
    }

    /// A window an hour either side of now (wide: a minute boundary cannot leave it), or none.
    fn gate(inside: bool, wait: bool) -> Gate {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let hm = |hours: i64| {
            let t = now(&tz)
                .datetime()
                .checked_add(jiff::SignedDuration::from_hours(hours))
                .unwrap();
            format!("{:02}:{:02}", t.hour(), t.minute())
        };
        let window = if inside {
            format!("{}-{}", hm(-1), hm(1))
        } else {
            format!("{}-{}", hm(2), hm(3))
        };
        let policy = Policy {
            tz,
            wait,
            countdown: false,
        };
        Gate::new(q(&window), policy)
    }

    #[tokio::test]
    async fn the_gate_opens_outside_stops_the_lane_inside_and_waits_with_wait_until_ctrl_c() {
        let cancel = CancellationToken::new();
        for wait in [false, true] {
            let g = gate(false, wait);
            assert!(!g.closed());
            assert!(g.open(&cancel, None).await);
            assert!(g.stopped().is_none());
        }
        let g = gate(true, false);
        assert!(g.closed());
        assert!(!g.open(&cancel, None).await, "without --wait nothing starts inside");
        let end = g.stopped().expect("the lane stopped for the window");
        assert!(end.timestamp() > jiff::Timestamp::now());
        assert!(!g.open(&cancel, None).await, "and starts nothing more in this run");
        // --wait: still waiting when the run is stopped; the lane did not stop for the window.
        let g = gate(true, true);
        // Polled once: inside the window it is waiting, not done.
        let polled = tokio::select! {
            biased;
            open = g.open(&cancel, None) => Some(open),
            () = std::future::ready(()) => None,
        };
        assert_eq!(polled, None, "--wait waits inside the window");
        cancel.cancel();
        assert!(!g.open(&cancel, None).await);
        assert!(g.stopped().is_none());
    }

    #[test]
    fn values_parse_strictly_and_name_the_key() {
        assert_eq!(q("20:00-08:00").to_string(), "20:00-08:00");
        assert_eq!(q("7:05-9:00").to_string(), "07:05-09:00");
        for bad in [
            "20:00",
            "20-08",
            "24:00-08:00",
            "20:60-08:00",
            "20:00-20:00",
            "x",
            "20:00-08:00-09:00",
        ] {
            let e = bad.parse::<QuietHours>().unwrap_err();
            assert!(e.starts_with(&format!("quiet_hours {bad:?}: ")), "{e}");
        }
    }

    #[test]
    fn the_summary_line_names_the_end_and_the_resume_command() {
        let end = berlin("2026-04-04T08:00:00");
        let w = Waiting::new("sms", q("20:00-08:00"), &end, 12);
        assert_eq!(
            w.line("R1"),
            "sms: 12 deliveries wait for quiet hours to end at 08:00 (Europe/Berlin) — run `announce resume R1` then"
        );
        assert_eq!(
            countdown(Duration::from_secs(2 * 3600 + 5 * 60 + 9), &end),
            "quiet hours until 08:00 (Europe/Berlin): 2h 05min 09s"
        );
    }
}
