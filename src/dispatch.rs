//! plan -> journal -> limiter -> retry -> channel -> journal.
//!
//! Every channel runs as its own task, so a slow channel never holds up the others. Inside a
//! channel: a semaphore bounds deliveries in flight; each *attempt* (retries included) takes a
//! rate-limiter cell, is journaled as `sending` (durably) and only then goes to the provider.
//! Transient errors are retried with exponential backoff and jitter (backon), never sooner than
//! the provider's Retry-After; permanent ones are attempted once; ambiguous ones become
//! `unknown` and are never retried automatically.
//!
//! # Architecture
//!
//! No channel reaches around this path; what a channel's answer asks of the run, the
//! dispatcher does:
//!
//! * **Lane pause** ([`Pause`]): a Retry-After that a channel says holds for the whole channel
//!   ([`Channel::retry_after_pauses_channel`], e.g. an SMS gateway's 429) moves the lane's
//!   "paused until" forward. Every delivery of the lane waits for it before it takes a
//!   rate-limiter cell (and again after its concurrency slot, in case a pause began meanwhile);
//!   the wait is not an attempt and ends at Ctrl-C.
//! * **Outcome actions** ([`act_on`]): a recipient who unsubscribed
//!   ([`DeliveryError::Unsubscribed`], e.g. Twilio 21610) goes on the state folder's suppression
//!   list through [`crate::audience::suppression`]; the delivery fails, the error says so.
//! * **History** ([`JournalHistory`]): every delivery carries a read-only
//!   [`crate::channel::History`] of the journal, so a channel that lists what was published (the
//!   status page) never opens the journal itself.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use governor::DefaultDirectRateLimiter;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::channel::{Channel, Delivery, DeliveryError, History, Published, Receipt, Rendered};
use crate::journal::{DeliveryRow, Journal, JournalError, Status, Writer};
use crate::quiet::{Gate, Policy};
use crate::render::{BaseContext, Templates};
use crate::settings::{Common, QuietHours};

/// The most deliveries an unthrottled lane may have journaled as `sending` beyond its
/// `concurrency` while they wait for a slot (see [`Pace`]). Under load the journal's writer
/// gathers each commit for 2 ms (`journal::lingers`), and a lane journals two commits' worth
/// ahead: against a local relay that is dozens of messages.
pub const PIPELINE_DEPTH: usize = 96;

/// How many commits' worth of deliveries a lane journals ahead. One would do if commits took
/// the same time each; two absorb the slow ones (an fsync now and then takes several times
/// the average), and put more `sending` marks into each commit (measured: 10,000 messages over
/// 4 connections, send phase 1.12 s with one, 0.92 s with two).
const AHEAD_COMMITS: f64 = 2.0;

/// How one channel is driven.
pub struct Lane {
    pub channel: Arc<dyn Channel>,
    pub concurrency: usize,
    pub limiter: Option<Arc<DefaultDirectRateLimiter>>,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub timeout: Duration,
    /// The provider's channel-wide Retry-After (see the module doc).
    pause: Pause,
    /// The channel's quiet hours ([`Lane::with_quiet_hours`]).
    quiet: Option<Gate>,
}

impl Lane {
    /// The lane of `channel` with its table's settings; its quiet hours come with
    /// [`Lane::with_quiet_hours`] (they need the run's time zone and `--wait`).
    pub fn new(channel: Arc<dyn Channel>, common: &Common) -> Lane {
        let concurrency = common
            .concurrency
            .map_or(channel.default_concurrency(), NonZeroU32::get) as usize;
        let burst = common.burst.unwrap_or(NonZeroU32::MIN);
        let timeout = common
            .timeout
            .map(|d| d.0)
            .or(channel.attempt_timeout())
            .unwrap_or(Duration::from_secs(120));
        let rate = common.rate.or(channel.default_rate());
        Lane {
            channel,
            concurrency,
            limiter: rate.map(|r| Arc::new(r.limiter(burst))),
            max_attempts: common.max_attempts.map_or(5, NonZeroU32::get),
            retry_base: common.retry_base.map_or(crate::settings::DEFAULT_RETRY_BASE, |d| d.0),
            retry_max: common.retry_max.map_or(crate::settings::DEFAULT_RETRY_MAX, |d| d.0),
            timeout,
            pause: Pause::default(),
            quiet: None,
        }
    }

    /// No delivery starts inside `hours` (see [`crate::quiet`]).
    #[must_use]
    pub fn with_quiet_hours(self, hours: Option<QuietHours>, policy: &Policy) -> Lane {
        Lane {
            quiet: hours.map(|h| Gate::new(h, policy.clone())),
            ..self
        }
    }

    /// Whether the lane stopped for its quiet hours in this run.
    fn quiet_stopped(&self) -> Option<(QuietHours, jiff::ZonedDateTime)> {
        let gate = self.quiet.as_ref()?;
        gate.stopped().map(|end| (gate.hours(), end))
    }

    /// An attempt's error: a Retry-After that holds for the whole channel pauses the lane.
    fn note(&self, error: &DeliveryError) {
        if let Some(wait) = error.retry_after()
            && self.channel.retry_after_pauses_channel()
        {
            self.pause.extend(wait);
        }
    }

    /// Wait until the lane is not paused; `false` when the run was stopped meanwhile.
    async fn unpaused(&self, cancel: &CancellationToken) -> bool {
        while let Some(left) = self.pause.remaining() {
            tokio::select! {
                () = tokio::time::sleep(left) => {}
                () = cancel.cancelled() => return false,
            }
        }
        true
    }
}

/// A lane's "paused until", moved only forward.
#[derive(Default)]
struct Pause {
    until: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Pause {
    fn extend(&self, by: Duration) {
        let until = tokio::time::Instant::now() + by;
        let mut g = self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.is_none_or(|u| u < until) {
            *g = Some(until);
        }
    }

    fn remaining(&self) -> Option<Duration> {
        let g = self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        g.and_then(|u| u.checked_duration_since(tokio::time::Instant::now()))
            .filter(|d| !d.is_zero())
    }
}

impl Lane {
    /// The most deliveries that can be between "journaled as sending" and "done": the
    /// `concurrency` slots, plus the pipeline of unthrottled lanes.
    pub fn window(&self) -> usize {
        let slots = self.concurrency.max(1);
        if self.limiter.is_some() {
            slots
        } else {
            slots + PIPELINE_DEPTH
        }
    }
}

/// How far ahead of the provider a lane journals its deliveries.
///
/// A delivery's `sending` mark must be durable (a journal commit: an fsync, and under load the
/// writer's 2 ms of gathering) before its message leaves. With only `concurrency` deliveries
/// under way, each connection would wait for a commit before every message: against a local relay that answers in a
/// quarter of a millisecond, 4 connections would idle four fifths of the time. So an
/// unthrottled lane lets more deliveries be journaled ahead, as many as its connections can
/// send while two commits are being made: `2 x concurrency x commit time / send time`, measured as
/// it goes (at most [`PIPELINE_DEPTH`]). Against a slow provider (a send takes longer than a
/// commit) that is one or none; against a fast one, the commits of the next messages overlap
/// the sending of the current ones and the connections stay busy.
///
/// The price, on a process killed outright: besides the messages in flight, those journaled
/// ahead are `unknown` although they never left — as many as the channel sends in two commits.
/// A Ctrl-C or a halt puts them back to `pending`. Rate-limited lanes do not pipeline: the
/// limiter, not the disk, sets their pace.
#[derive(Default)]
struct Pace {
    /// Moving averages (µs) of a journal commit and of a send.
    times: std::sync::Mutex<(f64, f64)>,
    /// Deliveries taken and not done.
    under_way: std::sync::atomic::AtomicUsize,
    done: tokio::sync::Notify,
}

impl Pace {
    fn record(&self, commit: Duration, send: Duration) {
        let mut t = self.times.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (c, s) = (commit.as_secs_f64() * 1e6, send.as_secs_f64() * 1e6);
        *t = if t.1 == 0.0 {
            (c, s.max(1.0))
        } else {
            (t.0 * 0.9 + c * 0.1, (t.1 * 0.9 + s * 0.1).max(1.0))
        };
    }

    /// How many deliveries may be under way now.
    fn limit(&self, lane: &Lane) -> usize {
        let slots = lane.concurrency.max(1);
        if lane.limiter.is_some() {
            return slots;
        }
        let (commit, send) = *self.times.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if send == 0.0 {
            return slots;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let ahead = (AHEAD_COMMITS * slots as f64 * commit / send)
            .ceil()
            .min(PIPELINE_DEPTH as f64) as usize;
        slots + ahead
    }
}

pub struct Dispatch<'a> {
    pub run_id: &'a str,
    pub base: &'a BaseContext,
    pub templates: Arc<Templates>,
    pub thread_roots: HashMap<String, String>,
    pub cancel: CancellationToken,
    pub progress: bool,
    /// Where the state folder's suppression list is (see [`act_on`]).
    pub state_dir: &'a std::path::Path,
}

/// Why an attempt ended without a receipt.
enum AttemptError {
    Delivery(DeliveryError),
    Journal(JournalError),
    /// The channel cannot go on (`DeliveryError::Halt`). `first`: this attempt stopped it; the
    /// others that met the same error while it stopped are only collateral.
    Halted {
        error: DeliveryError,
        first: bool,
    },
    /// The run was stopped (Ctrl-C) or the channel halted before the message reached the
    /// channel. `marked`: the attempt was already journaled as `sending` and must be released.
    Stopped {
        marked: bool,
    },
}

/// A channel that stopped for its quiet hours: its name, the window and when it ends.
pub type QuietStop = (String, QuietHours, jiff::ZonedDateTime);

/// Send every `pending` delivery of the run on the given lanes; the lanes that stopped for
/// their quiet hours, their deliveries left `pending`.
pub async fn run(d: Dispatch<'_>, journal: &mut Journal, lanes: Vec<Lane>) -> Result<Vec<QuietStop>, JournalError> {
    let writer = Arc::new(journal.writer()?);
    let multi = d.progress.then(MultiProgress::new);
    let shared = Arc::new(Shared {
        run_id: d.run_id.to_string(),
        base: d.base.clone(),
        templates: d.templates.clone(),
        thread_roots: d.thread_roots,
        cancel: d.cancel.clone(),
        state_dir: d.state_dir.to_path_buf(),
        history: Arc::new(JournalHistory(d.state_dir.to_path_buf())),
        writer: writer.clone(),
        journal_failed: AtomicBool::new(false),
        contexts: std::sync::Mutex::default(),
    });
    let lanes: Vec<Arc<Lane>> = lanes.into_iter().map(Arc::new).collect();
    rounds(&shared, journal, lanes.clone(), multi.as_ref()).await?;
    if shared.journal_failed.load(Ordering::SeqCst) {
        return Err(JournalError::WriterGone);
    }
    Ok(lanes
        .iter()
        .filter_map(|l| {
            let (hours, end) = l.quiet_stopped()?;
            Some((l.channel.name().to_string(), hours, end))
        })
        .collect())
}

/// Rounds over the lanes: each sends what is `pending` when it starts. A `failed` delivery of a
/// `[reach]` chain makes the person's next channel `pending` (in the journal, with the
/// outcome); if a round did that, another round sends them — on the lanes that did not halt,
/// and not after a Ctrl-C. So fallbacks go out once the earlier channel is done.
async fn rounds(
    shared: &Arc<Shared>,
    journal: &Journal,
    lanes: Vec<Arc<Lane>>,
    multi: Option<&MultiProgress>,
) -> Result<(), JournalError> {
    let mut lanes: Vec<Option<Arc<Lane>>> = lanes.into_iter().map(Some).collect();
    loop {
        let before = shared.writer.activated();
        let halted = one_round(shared, journal, &lanes, multi).await?;
        for (lane, halted) in lanes.iter_mut().zip(halted) {
            // A lane stopped for its quiet hours starts nothing more in this run either.
            if halted || lane.as_ref().is_some_and(|l| l.quiet_stopped().is_some()) {
                *lane = None;
            }
        }
        let stop = shared.cancel.is_cancelled() || shared.journal_failed.load(Ordering::SeqCst);
        if stop || shared.writer.activated() == before {
            return Ok(());
        }
    }
}

/// One round: every lane sends its `pending` deliveries; which lanes halted.
async fn one_round(
    shared: &Arc<Shared>,
    journal: &Journal,
    lanes: &[Option<Arc<Lane>>],
    multi: Option<&MultiProgress>,
) -> Result<Vec<bool>, JournalError> {
    let mut tasks = Vec::new();
    for (k, lane) in lanes.iter().enumerate() {
        let Some(lane) = lane else { continue };
        let rows = journal.deliveries_in(&shared.run_id, lane.channel.name(), &[Status::Pending])?;
        if rows.is_empty() {
            continue;
        }
        let bar = multi.map(|m| {
            let bar = m.add(ProgressBar::new(rows.len() as u64));
            bar.set_style(
                ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(lane.channel.name().to_string());
            bar
        });
        tasks.push((k, tokio::spawn(run_lane(shared.clone(), lane.clone(), rows, bar))));
    }
    let mut halted = vec![false; lanes.len()];
    for (k, t) in tasks {
        halted[k] = t.await.unwrap_or(false);
    }
    shared.writer.flush().await?;
    Ok(halted)
}

struct Shared {
    run_id: String,
    base: BaseContext,
    templates: Arc<Templates>,
    thread_roots: HashMap<String, String>,
    cancel: CancellationToken,
    state_dir: std::path::PathBuf,
    history: Arc<dyn History>,
    writer: Arc<Writer>,
    journal_failed: AtomicBool,
    /// Template contexts to reuse (see [`BaseContext::retarget`]): one per message in render.
    contexts: std::sync::Mutex<Vec<crate::render::Context>>,
}

/// A lane's stop: its first halting error sets it, and a Ctrl-C reaches it through the run's
/// token. Every wait of the lane's deliveries (window, pause, rate limit, quiet hours, retry
/// backoff) ends on it: a halted channel does not sit out the backoff of deliveries that will
/// stay `pending` anyway.
struct Halt {
    halted: AtomicBool,
    stop: CancellationToken,
}

impl Halt {
    fn new(run: &CancellationToken) -> Halt {
        Halt {
            halted: AtomicBool::new(false),
            stop: run.child_token(),
        }
    }

    /// Halt the lane; whether this call was the first to.
    fn set(&self) -> bool {
        let first = !self.halted.swap(true, Ordering::SeqCst);
        self.stop.cancel();
        first
    }

    fn is_set(&self) -> bool {
        self.halted.load(Ordering::SeqCst)
    }

    /// The lane halted or the run was stopped.
    fn stopped(&self) -> bool {
        self.stop.is_cancelled()
    }
}

/// Send `rows` on one lane; whether the channel halted.
async fn run_lane(shared: Arc<Shared>, lane: Arc<Lane>, rows: Vec<DeliveryRow>, bar: Option<ProgressBar>) -> bool {
    // Attempts talking to the provider: at most `concurrency`.
    let slots = Arc::new(Semaphore::new(lane.concurrency.max(1)));
    let pace = Arc::new(Pace::default());
    let halt = Arc::new(Halt::new(&shared.cancel));
    let mut inflight = tokio::task::JoinSet::new();
    'rows: for row in rows {
        // Room in the window (see `Pace`).
        loop {
            let done = pace.done.notified();
            if pace.under_way.load(Ordering::SeqCst) < pace.limit(&lane) {
                break;
            }
            tokio::select! {
                _ = done => {}
                () = halt.stop.cancelled() => break 'rows,
            }
        }
        if halt.stopped() || shared.journal_failed.load(Ordering::SeqCst) {
            break;
        }
        // Quiet hours: the rest wait (`--wait`) or stay pending for `resume`.
        if let Some(gate) = &lane.quiet
            && !gate.open(&halt.stop, bar.as_ref()).await
        {
            break;
        }
        pace.under_way.fetch_add(1, Ordering::SeqCst);
        let (shared, lane, halt, slots, pace, bar) = (
            shared.clone(),
            lane.clone(),
            halt.clone(),
            slots.clone(),
            pace.clone(),
            bar.clone(),
        );
        inflight.spawn(async move {
            let (id, attempt) = (row.id, row.attempts.max(1));
            let delivery = panics::Guarded(Box::pin(deliver_one(&shared, &lane, &halt, &slots, &pace, row)));
            // A panic in the dispatcher's own code: the delivery must not be left `sending`.
            if let Err(e) = delivery.await
                && shared
                    .writer
                    .outcome(id, attempt, Status::Failed, None, None, Some(e))
                    .is_err()
            {
                shared.journal_failed.store(true, Ordering::SeqCst);
            }
            if let Some(b) = bar {
                b.inc(1);
            }
            pace.under_way.fetch_sub(1, Ordering::SeqCst);
            pace.done.notify_one();
        });
        // Reap finished tasks as we go so a 100k run does not keep 100k handles.
        while inflight.try_join_next().is_some() {}
    }
    while inflight.join_next().await.is_some() {}
    let halted = halt.is_set();
    if let Some(b) = bar {
        b.finish_with_message(if halted { "stopped" } else { "done" });
    }
    halted
}

/// One delivery, from rendering to its final journal entry: render, then attempt (with
/// retries), then record what the last attempt came to.
async fn deliver_one(shared: &Shared, lane: &Lane, halt: &Halt, slots: &Semaphore, pace: &Pace, row: DeliveryRow) {
    let channel = lane.channel.as_ref();
    let message = match render(shared, channel, &row) {
        Ok(m) => m,
        Err(error) => {
            // Planning rendered the first target; a later one can still fail (e.g. odd data).
            let entry = Entry::Outcome(Outcome::failed(row.attempts.max(1), error));
            return record(shared, row.id, entry);
        }
    };
    let delivery = delivery_for(shared, channel, &row);
    let attempts = Attempts {
        shared,
        lane,
        halt,
        slots,
        pace,
    };
    let outcome = act_on(
        &shared.state_dir,
        &delivery,
        attempts.with_retries(&row, &delivery, &message).await,
    );
    let entry = journal_entry(outcome, halt.stopped());
    if let Entry::Halted(_) = &entry {
        halt.set();
        tracing::error!(
            channel = channel.name(),
            "{}: stopping this channel; the rest stay pending (`announce resume {}` sends them, with \
             `--retry-failed` this one too)",
            entry.error().unwrap_or_default(),
            shared.run_id
        );
    }
    record(shared, row.id, entry);
}

/// Contexts kept for reuse: about one per worker thread is what renders at once.
const MAX_SPARE_CONTEXTS: usize = 8;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The row's message, rendered for its target; a render error or panic as the journal's text.
fn render(shared: &Shared, channel: &dyn Channel, row: &DeliveryRow) -> Result<Rendered, String> {
    let data = row.data.as_deref().and_then(|d| serde_json::from_str(d).ok());
    let (name, type_name) = (channel.name(), channel.type_name());
    let reuse = lock(&shared.contexts).pop();
    let ctx = match reuse {
        Some(mut ctx) => {
            shared.base.retarget(&mut ctx, name, type_name, data, &row.recipient);
            ctx
        }
        None => shared.base.for_target(name, type_name, data.as_ref(), &row.recipient),
    };
    let rendered = panics::guard(|| channel.render(&shared.templates, &ctx));
    let mut contexts = lock(&shared.contexts);
    if contexts.len() < MAX_SPARE_CONTEXTS {
        contexts.push(ctx);
    }
    drop(contexts);
    rendered
        .unwrap_or_else(Err)
        .map_err(|e| crate::secrets::redact(&format!("cannot render the message: {e}")).into_owned())
}

/// The delivery as the channel sees it; ids are stable across attempts and resumes.
fn delivery_for(shared: &Shared, channel: &dyn Channel, row: &DeliveryRow) -> Delivery {
    let domain = channel.message_id_domain();
    Delivery {
        id: row.id,
        run_id: shared.run_id.clone(),
        address: row.recipient.clone(),
        name: row.name.clone(),
        attempt: 0,
        message_id: format!("{}.{}@{domain}", shared.run_id, row.id),
        idempotency_key: format!("announce-{}-{}", shared.run_id, row.id),
        thread_root: shared.thread_roots.get(&row.recipient).cloned(),
        history: shared.history.clone(),
    }
}

/// The journal in a state folder, read through its own connection at each call (the
/// dispatcher's connection belongs to the writer).
#[derive(Debug)]
struct JournalHistory(std::path::PathBuf);

impl History for JournalHistory {
    fn published(&self, channel: &str, current: &str) -> Result<Vec<Published>, String> {
        let journal = Journal::open_existing(&self.0)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no journal in {}", self.0.display()))?;
        let mut out = Vec::new();
        for run in journal.runs().map_err(|e| e.to_string())? {
            // The run being sent is in (its delivery is `sending` right now); earlier ones only
            // if this channel sent them.
            if run.id != current
                && (run.dry_run
                    || journal
                        .deliveries_in(&run.id, channel, &[Status::Sent, Status::Delivered])
                        .map_err(|e| e.to_string())?
                        .is_empty())
            {
                continue;
            }
            out.push(Published {
                run_id: run.id,
                announcement: run.announcement,
                origin: run.origin,
                base_dir: run.base_dir,
                started_at: run.started_at,
            });
        }
        Ok(out)
    }
}

/// Write an entry; a journal that cannot take it stops the run.
fn record(shared: &Shared, id: i64, entry: Entry) {
    let written = match entry {
        Entry::Outcome(o) | Entry::Halted(o) => {
            shared
                .writer
                .outcome(id, o.attempt, o.status, o.provider_id, o.route, o.error)
        }
        Entry::Released(attempt) => shared.writer.released(id, attempt),
        Entry::Untouched => Ok(()),
        Entry::JournalFailed(e) => {
            tracing::error!("{e}");
            shared.journal_failed.store(true, Ordering::SeqCst);
            shared.cancel.cancel();
            return;
        }
    };
    if written.is_err() {
        shared.journal_failed.store(true, Ordering::SeqCst);
    }
}

/// What one attempt ends with: the attempt's number and a receipt or why not.
type Attempted = Result<(u32, Receipt), (u32, AttemptError)>;

/// What the attempts of one delivery share.
struct Attempts<'a> {
    shared: &'a Shared,
    lane: &'a Lane,
    halt: &'a Halt,
    slots: &'a Semaphore,
    pace: &'a Pace,
}

impl Attempts<'_> {
    fn stopped(&self) -> bool {
        self.halt.stopped()
    }

    /// Attempt until a receipt, an error that is not transient, the last attempt, or a stop;
    /// each retry after a backoff, never sooner than the provider's Retry-After.
    async fn with_retries(&self, row: &DeliveryRow, delivery: &Delivery, message: &Rendered) -> Attempted {
        let weight = NonZeroU32::new(message.weight.max(1)).unwrap_or(NonZeroU32::MIN);
        let mut attempt = row.attempts;
        let try_once = || {
            attempt += 1;
            let mut delivery = delivery.clone();
            delivery.attempt = attempt;
            self.once(delivery, message, weight)
        };
        let retries_left = self.lane.max_attempts.saturating_sub(row.attempts + 1) as usize;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.lane.retry_base)
            .with_max_delay(self.lane.retry_max)
            .with_max_times(retries_left)
            .with_jitter();
        // A Ctrl-C or the lane's halt ends the wait: the next attempt then stops before it is
        // journaled.
        let cancel = self.halt.stop.clone();
        try_once
            .retry(backoff)
            .sleep(move |wait| {
                let cancel = cancel.clone();
                async move {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = cancel.cancelled() => {}
                    }
                }
            })
            .when(|(_, e)| matches!(e, AttemptError::Delivery(d) if d.is_transient()) && !self.stopped())
            .adjust(|(_, e), backoff| match (e, backoff) {
                // Never sooner than the provider asked.
                (AttemptError::Delivery(d), Some(b)) => Some(d.retry_after().map_or(b, |ra| ra.max(b))),
                (_, b) => b,
            })
            .notify(|(n, e), wait| {
                if let AttemptError::Delivery(d) = e {
                    let channel = self.lane.channel.name();
                    tracing::info!(channel, delivery = row.id, attempt = n, "{d}; retrying in {wait:?}");
                    let _ = self.shared.writer.outcome(
                        row.id,
                        *n,
                        Status::Pending,
                        None,
                        d.route().map(str::to_string),
                        Some(format!("attempt {n}: {d}")),
                    );
                }
            })
            .await
    }

    /// One attempt: the lane's pause, a rate-limit cell, the durable `sending` mark, a
    /// concurrency slot, then the provider (within the lane's timeout).
    async fn once(&self, delivery: Delivery, message: &Rendered, weight: NonZeroU32) -> Attempted {
        let n = delivery.attempt;
        // How long the `sending` mark took; `Some` once it is made.
        let mut commit = None;
        let _slot = loop {
            if !self.lane.unpaused(&self.halt.stop).await {
                return Err((
                    n,
                    AttemptError::Stopped {
                        marked: commit.is_some(),
                    },
                ));
            }
            if let Some(l) = &self.lane.limiter {
                let ready = tokio::select! {
                    ready = l.until_n_ready(weight) => ready,
                    () = self.halt.stop.cancelled() => {
                        return Err((n, AttemptError::Stopped { marked: commit.is_some() }));
                    }
                };
                if ready.is_err() {
                    return Err((
                        n,
                        AttemptError::Delivery(DeliveryError::permanent(format!(
                            "the message needs {weight} rate-limit cells but the channel's burst is smaller; raise `burst`"
                        ))),
                    ));
                }
            }
            if self.stopped() {
                return Err((
                    n,
                    AttemptError::Stopped {
                        marked: commit.is_some(),
                    },
                ));
            }
            if commit.is_none() {
                let marking = std::time::Instant::now();
                self.shared
                    .writer
                    .sending(delivery.id, n, &delivery.message_id)
                    .await
                    .map_err(|e| (n, AttemptError::Journal(e)))?;
                commit = Some(marking.elapsed());
            }
            let slot = self.slots.acquire().await.expect("semaphore is never closed");
            if self.stopped() {
                return Err((n, AttemptError::Stopped { marked: true }));
            }
            // The last moment before the provider: a window that began while this attempt
            // waited holds for it. Not `sending` while it waits, so a process killed meanwhile
            // leaves it `pending`, not `unknown`.
            if let Some(gate) = &self.lane.quiet
                && gate.closed()
            {
                drop(slot);
                self.shared
                    .writer
                    .released(delivery.id, n)
                    .map_err(|e| (n, AttemptError::Journal(e)))?;
                commit = None;
                if !gate.open(&self.halt.stop, None).await {
                    return Err((n, AttemptError::Stopped { marked: false }));
                }
                continue;
            }
            // A pause that began while this attempt waited for its slot holds for it too: it
            // waits, then takes a fresh rate-limit cell.
            if self.lane.pause.remaining().is_none() {
                break slot;
            }
        };
        let channel = self.lane.channel.as_ref();
        let sending = std::time::Instant::now();
        let result =
            tokio::time::timeout(self.lane.timeout, panics::Guarded(channel.deliver(&delivery, message))).await;
        self.pace.record(commit.unwrap_or_default(), sending.elapsed());
        let result = attempt_result(result.ok(), || channel.timeout_error(self.lane.timeout));
        if let Err(error) = &result {
            // Before the slot is free, so the deliveries waiting for it see the pause.
            self.lane.note(error);
        }
        match result {
            Ok(receipt) => Ok((n, receipt)),
            Err(error @ DeliveryError::Halt { .. }) => {
                // Before the slot is free: no delivery waiting for it may start.
                let first = self.halt.set();
                Err((n, AttemptError::Halted { error, first }))
            }
            Err(error) => Err((n, AttemptError::Delivery(error))),
        }
    }
}

/// What an outcome asks of the run besides its journal entry: an unsubscribed recipient goes
/// on the state folder's suppression list, and the delivery's error says whether that worked.
fn act_on(state_dir: &std::path::Path, delivery: &Delivery, outcome: Attempted) -> Attempted {
    let Err((n, AttemptError::Delivery(DeliveryError::Unsubscribed { message, route }))) = outcome else {
        return outcome;
    };
    let file = crate::audience::suppression::state_file(state_dir);
    let note = match crate::audience::suppression::add_to_state(state_dir, &delivery.address) {
        Ok(()) => format!(
            "the recipient replied STOP: added to the suppression list {}",
            file.display()
        ),
        Err(e) => format!(
            "the recipient replied STOP, but it could not be added to {}: {e}",
            file.display()
        ),
    };
    let message = format!("{message}; {note}");
    Err((n, AttemptError::Delivery(DeliveryError::Permanent { message, route })))
}

/// What the channel's `deliver` came to: `None` when it timed out, `Err(text)` when it
/// panicked (see [`panics`]).
fn attempt_result(
    result: Option<Result<Result<Receipt, DeliveryError>, String>>,
    timeout_error: impl FnOnce() -> DeliveryError,
) -> Result<Receipt, DeliveryError> {
    match result {
        Some(Ok(Ok(receipt))) => Ok(receipt),
        // Providers echo requests in their errors; no secret may reach the journal, the logs
        // or a report through them, whatever the channel.
        Some(Ok(Err(e))) => Err(e.redacted()),
        Some(Err(panic)) => Err(DeliveryError::permanent(panic).redacted()),
        None => Err(timeout_error()),
    }
}

/// A delivery's journal entry once its attempts are over.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    attempt: u32,
    status: Status,
    provider_id: Option<String>,
    route: Option<String>,
    error: Option<String>,
}

impl Outcome {
    fn failed(attempt: u32, error: String) -> Outcome {
        Outcome {
            attempt,
            status: Status::Failed,
            provider_id: None,
            route: None,
            error: Some(error),
        }
    }
}

/// What the journal is told when a delivery's attempts are over.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Outcome(Outcome),
    /// This delivery stopped the channel (a halt): its outcome; the rest stay pending.
    Halted(Outcome),
    /// Marked `sending` but never handed to the channel: `pending` again.
    Released(u32),
    /// Never reached the channel: it stays `pending`; an earlier attempt's outcome is already
    /// journaled.
    Untouched,
    /// The journal failed (its error): the run stops.
    JournalFailed(String),
}

impl Entry {
    fn error(&self) -> Option<&str> {
        match self {
            Entry::Outcome(o) | Entry::Halted(o) => o.error.as_deref(),
            _ => None,
        }
    }
}

/// The journal entry for how a delivery's attempts ended. `stopping`: the run was stopped or
/// the channel halted meanwhile, so a transient error is not "gave up" but "left for later".
fn journal_entry(outcome: Attempted, stopping: bool) -> Entry {
    let (n, error) = match outcome {
        Ok((n, r)) => {
            return Entry::Outcome(Outcome {
                attempt: n,
                status: Status::Sent,
                provider_id: r.provider_id,
                route: r.route,
                error: None,
            });
        }
        Err((_, AttemptError::Journal(e))) => return Entry::JournalFailed(e.to_string()),
        Err((_, AttemptError::Stopped { marked: false })) => return Entry::Untouched,
        Err((n, AttemptError::Stopped { marked: true })) => return Entry::Released(n),
        Err((n, AttemptError::Halted { error, first })) => return halt_entry(error, first, n),
        Err((n, AttemptError::Delivery(e))) => (n, e),
    };
    let route = error.route().map(str::to_string);
    let (status, text) = match &error {
        DeliveryError::Transient { .. } if stopping => (
            Status::Pending,
            format!("attempt {n}: {error}; stopped before retrying"),
        ),
        DeliveryError::Transient { .. } => (Status::Failed, format!("gave up after {n} attempts: {error}")),
        DeliveryError::Permanent { .. } | DeliveryError::Unsubscribed { .. } => (Status::Failed, error.to_string()),
        DeliveryError::Ambiguous { .. } => (Status::Unknown, error.to_string()),
        DeliveryError::Halt { .. } => return halt_entry(error, true, n),
    };
    Entry::Outcome(Outcome {
        attempt: n,
        status,
        provider_id: None,
        route,
        error: Some(text),
    })
}

/// A halt: the delivery that stopped the channel is `failed` with the reason; those in flight
/// at the same moment that met it too go back to `pending`, like the ones never started.
fn halt_entry(e: DeliveryError, first: bool, n: u32) -> Entry {
    if first {
        return Entry::Halted(Outcome::failed(n, e.to_string()));
    }
    Entry::Outcome(Outcome {
        attempt: n,
        status: Status::Pending,
        provider_id: None,
        route: None,
        error: Some(format!("attempt {n}: {e}; the channel stopped")),
    })
}

/// Panics in a channel's code (a bug, or a library that panics on odd input) become a
/// `failed` delivery with "internal error: ..." instead of a dead worker and a delivery left
/// `sending` (later `unknown`) without an error.
mod panics {
    use std::cell::{Cell, RefCell};
    use std::future::Future;
    use std::panic::AssertUnwindSafe;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    thread_local! {
        /// Set while guarded code runs on this thread: the panic hook then leaves the message
        /// here instead of printing it (it may hold a secret a provider echoed).
        static GUARDED: Cell<u32> = const { Cell::new(0) };
        static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
    }

    /// Install (once) a panic hook that keeps guarded panics off stderr and hands every other
    /// panic to the hook that was there before.
    fn install_hook() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if GUARDED.with(Cell::get) == 0 {
                    return previous(info);
                }
                let at = info
                    .location()
                    .map(|l| format!(" (at {}:{})", l.file(), l.line()))
                    .unwrap_or_default();
                let text = format!("{}{at}", payload_text(info.payload()));
                CAUGHT.with(|c| *c.borrow_mut() = Some(text));
            }));
        });
    }

    fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into())
    }

    /// Run `f`; a panic becomes `Err("internal error: ...")`, with every secret removed.
    pub fn guard<T>(f: impl FnOnce() -> T) -> Result<T, String> {
        install_hook();
        GUARDED.with(|g| g.set(g.get() + 1));
        let result = std::panic::catch_unwind(AssertUnwindSafe(f));
        GUARDED.with(|g| g.set(g.get() - 1));
        result.map_err(|payload| {
            let text = CAUGHT
                .with(|c| c.borrow_mut().take())
                .unwrap_or_else(|| payload_text(&*payload));
            let message = crate::secrets::redact(&format!("internal error: {text}")).into_owned();
            tracing::error!("{message}; this is a bug in announce, please report it");
            message
        })
    }

    /// A future whose panics come out as `Err` (see [`guard`]). It is not polled again after one.
    pub struct Guarded<F>(pub F);

    impl<F: Future + Unpin> Future for Guarded<F> {
        type Output = Result<F::Output, String>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let inner = &mut self.0;
            match guard(|| Pin::new(inner).poll(cx)) {
                Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
                Ok(Poll::Pending) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt() -> Receipt {
        Receipt {
            provider_id: Some("id-1".into()),
            route: Some("relay-a".into()),
        }
    }

    fn transient() -> DeliveryError {
        DeliveryError::Transient {
            message: "421 busy".into(),
            retry_after: None,
            route: Some("relay-a".into()),
        }
    }

    fn halt() -> DeliveryError {
        DeliveryError::Halt {
            message: "535 bad credentials".into(),
        }
    }

    fn outcome(attempt: u32, status: Status, route: Option<&str>, error: &str) -> Entry {
        Entry::Outcome(Outcome {
            attempt,
            status,
            provider_id: None,
            route: route.map(str::to_string),
            error: Some(error.into()),
        })
    }

    #[test]
    fn a_receipt_is_sent_with_the_providers_id_and_route() {
        let entry = journal_entry(Ok((2, receipt())), true);
        let sent = Outcome {
            attempt: 2,
            status: Status::Sent,
            provider_id: Some("id-1".into()),
            route: Some("relay-a".into()),
            error: None,
        };
        assert_eq!(entry, Entry::Outcome(sent));
    }

    #[test]
    fn transient_errors_give_up_unless_the_run_is_stopping() {
        let gave_up = journal_entry(Err((5, AttemptError::Delivery(transient()))), false);
        let want = outcome(5, Status::Failed, Some("relay-a"), "gave up after 5 attempts: 421 busy");
        assert_eq!(gave_up, want);
        let left = journal_entry(Err((2, AttemptError::Delivery(transient()))), true);
        let want = outcome(
            2,
            Status::Pending,
            Some("relay-a"),
            "attempt 2: 421 busy; stopped before retrying",
        );
        assert_eq!(left, want);
    }

    #[test]
    fn permanent_fails_and_ambiguous_is_unknown_with_their_route() {
        let permanent = DeliveryError::Permanent {
            message: "550 no such user".into(),
            route: Some("relay-b".into()),
        };
        let want = outcome(1, Status::Failed, Some("relay-b"), "550 no such user");
        assert_eq!(journal_entry(Err((1, AttemptError::Delivery(permanent))), true), want);
        let ambiguous = DeliveryError::Ambiguous {
            message: "no answer after DATA".into(),
            route: None,
        };
        let want = outcome(3, Status::Unknown, None, "no answer after DATA");
        assert_eq!(journal_entry(Err((3, AttemptError::Delivery(ambiguous))), false), want);
    }

    #[test]
    fn the_first_halt_fails_and_stops_the_channel_the_others_go_back_to_pending() {
        let first = journal_entry(
            Err((
                1,
                AttemptError::Halted {
                    error: halt(),
                    first: true,
                },
            )),
            true,
        );
        assert_eq!(first, Entry::Halted(Outcome::failed(1, "535 bad credentials".into())));
        assert_eq!(first.error(), Some("535 bad credentials"));
        let collateral = journal_entry(
            Err((
                4,
                AttemptError::Halted {
                    error: halt(),
                    first: false,
                },
            )),
            true,
        );
        let want = outcome(
            4,
            Status::Pending,
            None,
            "attempt 4: 535 bad credentials; the channel stopped",
        );
        assert_eq!(collateral, want);
        // A halt that was not caught as one on the way still stops the channel.
        let unseen = journal_entry(Err((2, AttemptError::Delivery(halt()))), false);
        assert_eq!(unseen, Entry::Halted(Outcome::failed(2, "535 bad credentials".into())));
    }

    #[test]
    fn stopped_attempts_are_released_or_left_alone_and_journal_errors_stop_the_run() {
        assert_eq!(
            journal_entry(Err((3, AttemptError::Stopped { marked: true })), true),
            Entry::Released(3)
        );
        assert_eq!(
            journal_entry(Err((3, AttemptError::Stopped { marked: false })), true),
            Entry::Untouched
        );
        let failed = journal_entry(Err((1, AttemptError::Journal(JournalError::WriterGone))), false);
        assert_eq!(failed, Entry::JournalFailed(JournalError::WriterGone.to_string()));
        assert_eq!(failed.error(), None);
    }

    #[test]
    fn deliver_results_become_receipts_or_classified_errors() {
        let timeout = || DeliveryError::Ambiguous {
            message: "timed out".into(),
            route: None,
        };
        let r = attempt_result(Some(Ok(Ok(receipt()))), timeout).unwrap();
        assert_eq!(r.provider_id.as_deref(), Some("id-1"));
        let timed_out = attempt_result(None, timeout).unwrap_err();
        assert!(matches!(&timed_out, DeliveryError::Ambiguous { message, .. } if message == "timed out"));
        let panicked = attempt_result(Some(Err("internal error: boom".into())), timeout).unwrap_err();
        assert!(matches!(&panicked, DeliveryError::Permanent { message, .. } if message == "internal error: boom"));
        // Providers echo credentials in their errors: they leave redacted.
        let secret = "dispatch-test-secret-4f1c9a";
        crate::secrets::register_secret(secret);
        let echoed = DeliveryError::Transient {
            message: format!("401 for token {secret}"),
            retry_after: Some(Duration::from_secs(7)),
            route: Some("api".into()),
        };
        let e = attempt_result(Some(Ok(Err(echoed))), timeout).unwrap_err();
        assert!(!e.to_string().contains(secret), "{e}");
        assert!(e.to_string().contains(crate::secrets::REDACTED), "{e}");
        assert_eq!(
            (e.retry_after(), e.route()),
            (Some(Duration::from_secs(7)), Some("api"))
        );
    }

    /// A channel whose Retry-After holds for the whole channel, or not.
    struct Throttled(bool);

    #[async_trait::async_trait]
    impl Channel for Throttled {
        fn meta(&self) -> &crate::channel::Meta {
            use crate::channel::{AddressKind, Meta, Reach, sms::SmsConfig};
            static META: std::sync::LazyLock<Meta> =
                std::sync::LazyLock::new(|| Meta::new::<SmsConfig>("sms", Reach::PerPerson(AddressKind::Phone)));
            &META
        }
        fn render(&self, _t: &Templates, _c: &crate::render::Context) -> Result<Rendered, String> {
            Ok(Rendered::default())
        }
        async fn deliver(&self, _d: &Delivery, _m: &Rendered) -> Result<Receipt, DeliveryError> {
            Ok(Receipt::default())
        }
        async fn check(&self) -> Vec<crate::channel::Probe> {
            Vec::new()
        }
        fn retry_after_pauses_channel(&self) -> bool {
            self.0
        }
    }

    fn lane(channel_wide: bool) -> Lane {
        Lane {
            channel: Arc::new(Throttled(channel_wide)),
            concurrency: 1,
            limiter: None,
            max_attempts: 5,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            timeout: Duration::from_secs(120),
            pause: Pause::default(),
            quiet: None,
        }
    }

    fn throttled(secs: u64) -> DeliveryError {
        DeliveryError::Transient {
            message: "429 Too Many Requests".into(),
            retry_after: Some(Duration::from_secs(secs)),
            route: Some("twilio".into()),
        }
    }

    #[tokio::test]
    async fn retry_after_pauses_every_delivery_of_the_channel() {
        let paused = lane(true);
        paused.note(&throttled(30));
        // Another delivery waits for the pause; a Ctrl-C ends the wait without an attempt.
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert!(!paused.unpaused(&cancel).await, "a paused lane lets nothing through");
        assert!(paused.pause.remaining().unwrap() > Duration::from_secs(29));
        // The pause only moves forward; errors without Retry-After leave it alone.
        paused.note(&throttled(1));
        paused.note(&DeliveryError::transient("500"));
        assert!(paused.pause.remaining().unwrap() > Duration::from_secs(29));
    }

    #[tokio::test]
    async fn a_pause_ends_and_a_per_delivery_retry_after_pauses_nothing() {
        let cancel = CancellationToken::new();
        let paused = lane(true);
        paused.note(&DeliveryError::Transient {
            message: "429".into(),
            retry_after: Some(Duration::from_millis(20)),
            route: None,
        });
        assert!(paused.unpaused(&cancel).await);
        assert_eq!(paused.pause.remaining(), None);
        // Telegram, webhooks...: the Retry-After is for that delivery's own retry only.
        let own = lane(false);
        own.note(&throttled(30));
        assert_eq!(own.pause.remaining(), None);
        cancel.cancel();
        assert!(own.unpaused(&cancel).await, "an unpaused lane does not wait");
    }
}
