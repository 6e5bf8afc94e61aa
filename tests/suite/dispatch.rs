//! The dispatcher's retry policy, through the library with a scripted channel.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use announce::announcement::Announcement;
use announce::channel::outbox::OutboxConfig;
use announce::channel::{AddressKind, Channel, Delivery, DeliveryError, Meta, Probe, Reach, Receipt, Rendered};
use announce::dispatch::{self, Dispatch, Lane};
use announce::journal::{Journal, NewDelivery, Status, fixtures};
use announce::render::{BaseContext, Context, Templates};
use announce::settings::{Common, Org};
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

/// A secret that a panicking channel puts into its panic message.
const PANIC_SECRET: &str = "tok-Pangolin-90417";

/// Behaves according to the recipient's local part (`panic` panics in `deliver`,
/// `panic-render` in `render`): `flaky-N` fails N times (transient, with a
/// Retry-After for `slowflaky-N`), `bad` fails permanently, `lost` is ambiguous, `broke` halts,
/// `stop` has unsubscribed.
#[derive(Default)]
struct Scripted {
    calls: Mutex<HashMap<String, u32>>,
    /// `together-*` deliveries wait here until three are inside `deliver`, then halt.
    together: Option<tokio::sync::Barrier>,
    /// Like an SMS gateway: a Retry-After holds for the whole account (the channel says so).
    /// Either way every request before a Retry-After is over is refused with a 429 of its own.
    account_wide: bool,
    paused_until: Mutex<Option<std::time::Instant>>,
    /// The least time between two calls for one address; calls sooner are counted in `early`
    /// (a backoff test asserts none, without measuring the run).
    min_gap: Option<Duration>,
    last_call: Mutex<HashMap<String, std::time::Instant>>,
    early: Mutex<u32>,
}

#[async_trait]
impl Channel for Scripted {
    fn meta(&self) -> &Meta {
        static META: LazyLock<Meta> =
            LazyLock::new(|| Meta::new::<OutboxConfig>("scripted", Reach::PerPerson(AddressKind::Email)));
        &META
    }
    fn render(&self, _t: &Templates, ctx: &Context) -> Result<Rendered, String> {
        if ctx.address.starts_with("panic-render@") {
            panic!("a template helper went wrong for {}", ctx.address);
        }
        Ok(Rendered {
            text: ctx.address.clone(),
            weight: 1,
            ..Default::default()
        })
    }
    async fn deliver(&self, d: &Delivery, _m: &Rendered) -> Result<Receipt, DeliveryError> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let c = calls.entry(d.address.clone()).or_default();
            *c += 1;
            *c
        };
        if let Some(gap) = self.min_gap {
            let now = std::time::Instant::now();
            let prev = self.last_call.lock().unwrap().insert(d.address.clone(), now);
            if prev.is_some_and(|p| now - p < gap) {
                *self.early.lock().unwrap() += 1;
            }
        }
        let local = d.address.split('@').next().unwrap();
        let fails = |prefix: &str| local.strip_prefix(prefix).and_then(|k| k.parse::<u32>().ok());
        if let Some(k) = fails("flaky-")
            && n <= k
        {
            return Err(DeliveryError::transient(format!("421 try later (call {n})")));
        }
        let refused = self
            .paused_until
            .lock()
            .unwrap()
            .is_some_and(|u| std::time::Instant::now() < u);
        if refused {
            return Err(DeliveryError::Transient {
                message: "429 still paused".into(),
                retry_after: Some(Duration::from_millis(400)),
                route: None,
            });
        }
        if let Some(k) = fails("slowflaky-")
            && n <= k
        {
            *self.paused_until.lock().unwrap() = Some(std::time::Instant::now() + Duration::from_millis(400));
            return Err(DeliveryError::Transient {
                message: "429 slow down".into(),
                retry_after: Some(Duration::from_millis(400)),
                route: None,
            });
        }
        if local.starts_with("together-")
            && let Some(b) = &self.together
        {
            b.wait().await;
            return Err(DeliveryError::Halt {
                message: "account suspended".into(),
            });
        }
        match local {
            "bad" => Err(DeliveryError::permanent("550 5.1.1 no such user")),
            "lost" => Err(DeliveryError::Ambiguous {
                message: "connection lost after DATA".into(),
                route: None,
            }),
            "broke" => Err(DeliveryError::Halt {
                message: "insufficient credit".into(),
            }),
            "always" => Err(DeliveryError::transient("451 busy")),
            "stop" => Err(DeliveryError::Unsubscribed {
                message: "21610 unsubscribed recipient".into(),
                route: Some("r1".into()),
            }),
            "panic" => panic!("provider answer could not be parsed: token={PANIC_SECRET}"),
            _ => Ok(Receipt {
                provider_id: Some(format!("id-{}", d.id)),
                route: Some("r1".into()),
            }),
        }
    }
    async fn check(&self) -> Vec<Probe> {
        Vec::new()
    }
    fn retry_after_pauses_channel(&self) -> bool {
        self.account_wide
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    journal: Journal,
    run_id: String,
    channel: Arc<Scripted>,
}

fn harness(recipients: &[impl AsRef<str>]) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path()).unwrap();
    let run_id = "run-1".to_string();
    let deliveries: Vec<NewDelivery> = recipients
        .iter()
        .map(|r| NewDelivery {
            channel: "scripted".into(),
            ..fixtures::delivery(r.as_ref())
        })
        .collect();
    journal.create_run(&fixtures::run(&run_id), &deliveries).unwrap();
    Harness {
        _dir: dir,
        journal,
        run_id,
        channel: Arc::new(Scripted::default()),
    }
}

/// `first`, then `n` plain recipients p0@x.de, p1@x.de, ...
fn and_others(first: &[&str], n: usize) -> Vec<String> {
    let others = (0..n).map(|i| format!("p{i}@x.de"));
    first.iter().map(|f| f.to_string()).chain(others).collect()
}

fn common(toml_text: &str) -> Common {
    toml::from_str(toml_text).unwrap()
}

async fn dispatch(h: &mut Harness, settings: &str) {
    let ann = Announcement::parse("n.md", Path::new("."), "+++\ntitle = \"t\"\n+++\n".into()).unwrap();
    let base = BaseContext::new(&ann, &Org::default(), &h.run_id, &jiff::tz::TimeZone::UTC);
    let d = Dispatch {
        run_id: &h.run_id,
        base: &base,
        templates: Arc::new(Templates::load(announce::channel::builtin_templates(), None).unwrap()),
        thread_roots: HashMap::new(),
        cancel: CancellationToken::new(),
        progress: false,
        state_dir: h._dir.path(),
    };
    let lane = Lane::new(h.channel.clone(), &common(settings));
    dispatch::run(d, &mut h.journal, vec![lane]).await.unwrap();
}

fn by_recipient(h: &Harness) -> HashMap<String, announce::journal::DeliveryRow> {
    h.journal
        .deliveries(&h.run_id)
        .unwrap()
        .into_iter()
        .map(|d| (d.recipient.clone(), d))
        .collect()
}

#[tokio::test]
async fn transient_errors_are_retried_with_backoff_permanent_ones_once() {
    let mut h = harness(&["ok@x.de", "flaky-2@x.de", "bad@x.de", "always@x.de", "lost@x.de"]);
    // Below retry_base by a margin for scheduling; a retry without backoff comes at once.
    h.channel = Arc::new(Scripted {
        min_gap: Some(Duration::from_millis(30)),
        ..Default::default()
    });
    dispatch(&mut h, "retry_base = \"40ms\"\nretry_max = \"200ms\"\nmax_attempts = 4").await;
    let rows = by_recipient(&h);
    let calls = h.channel.calls.lock().unwrap().clone();

    assert_eq!((rows["ok@x.de"].status, rows["ok@x.de"].attempts), (Status::Sent, 1));
    assert_eq!(
        rows["ok@x.de"].provider_id.as_deref(),
        Some(&*format!("id-{}", rows["ok@x.de"].id))
    );
    assert_eq!(rows["ok@x.de"].route.as_deref(), Some("r1"));

    assert_eq!(
        (rows["flaky-2@x.de"].status, rows["flaky-2@x.de"].attempts),
        (Status::Sent, 3)
    );
    assert_eq!(calls["flaky-2@x.de"], 3);

    assert_eq!((rows["bad@x.de"].status, calls["bad@x.de"]), (Status::Failed, 1));
    assert!(rows["bad@x.de"].error.as_deref().unwrap().contains("550 5.1.1"));

    assert_eq!((rows["always@x.de"].status, calls["always@x.de"]), (Status::Failed, 4));
    assert!(
        rows["always@x.de"]
            .error
            .as_deref()
            .unwrap()
            .contains("gave up after 4 attempts")
    );

    assert_eq!(
        (rows["lost@x.de"].status, calls["lost@x.de"]),
        (Status::Unknown, 1),
        "ambiguous is never retried"
    );

    // Backoff: no retry came sooner than retry_base after the previous call.
    assert_eq!(*h.channel.early.lock().unwrap(), 0, "retried without backoff");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let mut h = harness(&["slowflaky-1@x.de"]);
    dispatch(&mut h, "retry_base = \"10ms\"\nmax_attempts = 3").await;
    let rows = by_recipient(&h);
    let d = &rows["slowflaky-1@x.de"];
    // A retry before the Retry-After was over would have been refused: a third attempt.
    assert_eq!((d.status, d.attempts), (Status::Sent, 2), "retried before Retry-After");
}

/// A Retry-After the channel says holds for the whole channel pauses every delivery of the
/// lane: none of them is refused for calling too early, and the wait is no attempt.
#[tokio::test]
async fn a_channel_wide_retry_after_pauses_the_whole_lane() {
    let mut h = harness(&and_others(&["slowflaky-1@x.de"], 8));
    h.channel = Arc::new(Scripted {
        account_wide: true,
        ..Default::default()
    });
    dispatch(&mut h, "concurrency = 1\nretry_base = \"10ms\"\nmax_attempts = 3").await;
    let rows = by_recipient(&h);
    assert!(rows.values().all(|r| r.status == Status::Sent), "{rows:?}");
    assert_eq!(rows["slowflaky-1@x.de"].attempts, 2);
    for r in rows.values().filter(|r| r.recipient.starts_with('p')) {
        assert_eq!(r.attempts, 1, "sent during the pause: {r:?}");
    }
    let calls = h.channel.calls.lock().unwrap().values().sum::<u32>();
    assert_eq!(calls, 10, "9 messages + the one 429");
}

/// An unsubscribed recipient (an SMS STOP reply) fails once, and the dispatcher puts the
/// address on the state folder's suppression list, which the error names.
#[tokio::test]
async fn an_unsubscribed_recipient_fails_and_is_suppressed() {
    let mut h = harness(&["ok@x.de", "stop@x.de"]);
    dispatch(&mut h, "max_attempts = 3").await;
    let rows = by_recipient(&h);
    assert_eq!(rows["ok@x.de"].status, Status::Sent);
    let stop = &rows["stop@x.de"];
    assert_eq!((stop.status, stop.attempts), (Status::Failed, 1));
    let error = stop.error.as_deref().unwrap();
    assert!(
        error.starts_with("21610 unsubscribed recipient; the recipient replied STOP: added to the suppression list"),
        "{error}"
    );
    assert_eq!(stop.route.as_deref(), Some("r1"));
    let list = std::fs::read_to_string(h._dir.path().join("suppressed.txt")).unwrap();
    assert_eq!(list, "stop@x.de\n");
}

#[tokio::test]
async fn a_halting_error_stops_the_channel_and_leaves_the_rest_pending() {
    let mut h = harness(&and_others(&["broke@x.de"], 20));
    dispatch(&mut h, "concurrency = 1").await;
    let rows = by_recipient(&h);
    assert_eq!(rows["broke@x.de"].status, Status::Failed);
    let pending = rows.values().filter(|r| r.status == Status::Pending).count();
    assert!(
        pending >= 19,
        "the channel kept sending after a halt: {pending} pending"
    );
}

/// A delivery waiting out a long retry backoff when the channel halts stays `pending` and
/// waits no longer: the run ends with the halt, not an hour later. (`flaky-1` fails its first
/// try and goes into backoff before `broke`, five rows on, is even started.)
#[tokio::test]
async fn a_halt_ends_the_retry_backoff_of_the_channel_s_other_deliveries() {
    let mut recipients = vec!["flaky-1@x.de".to_string()];
    recipients.extend(and_others(&[], 5));
    recipients.push("broke@x.de".into());
    recipients.extend((0..5).map(|i| format!("q{i}@x.de")));
    let mut h = harness(&recipients);
    let settings = "concurrency = 2\nmax_attempts = 3\nretry_base = \"1h\"\nretry_max = \"1h\"";
    // A bound on a hang, not a timing assertion: without the halt reaching the backoff, the
    // run would take the hour.
    tokio::time::timeout(Duration::from_secs(120), dispatch(&mut h, settings))
        .await
        .expect("the run waited out a retry backoff after the channel halted");
    let rows = by_recipient(&h);
    assert_eq!(rows["broke@x.de"].status, Status::Failed);
    let flaky = &rows["flaky-1@x.de"];
    assert_eq!((flaky.status, flaky.attempts), (Status::Pending, 1), "{flaky:?}");
    assert!(flaky.error.as_deref().unwrap().contains("421 try later"), "{flaky:?}");
    assert_eq!(h.channel.calls.lock().unwrap()["flaky-1@x.de"], 1, "no second try");
    let failed: Vec<_> = rows.values().filter(|r| r.status == Status::Failed).collect();
    assert_eq!(failed.len(), 1, "only the halt fails: {failed:?}");
}

/// A channel that panics (in `deliver` or in `render`) fails that delivery with "internal
/// error: ..." (secrets removed) after one attempt; the others are sent, before and after it.
#[tokio::test]
async fn a_panic_in_a_channel_fails_that_delivery_and_the_run_goes_on() {
    announce::secrets::register_secret(PANIC_SECRET);
    let mut h = harness(&and_others(
        &["a@x.de", "panic@x.de", "b@x.de", "panic-render@x.de"],
        10,
    ));
    dispatch(&mut h, "concurrency = 2\nmax_attempts = 3\nretry_base = \"10ms\"").await;
    let rows = by_recipient(&h);
    for (who, row) in &rows {
        if who.starts_with("panic") {
            continue;
        }
        assert_eq!((row.status, row.attempts), (Status::Sent, 1), "{who}: {:?}", row.error);
    }
    let p = &rows["panic@x.de"];
    assert_eq!(p.status, Status::Failed, "{p:?}");
    assert_eq!(
        h.channel.calls.lock().unwrap()["panic@x.de"],
        1,
        "a panic is not retried"
    );
    let err = p.error.as_deref().unwrap();
    assert!(
        err.starts_with("internal error: provider answer could not be parsed"),
        "{err}"
    );
    assert!(err.contains("dispatch.rs:"), "where it panicked: {err}");
    assert!(!err.contains(PANIC_SECRET) && err.contains("[redacted]"), "{err}");

    let r = &rows["panic-render@x.de"];
    assert_eq!(r.status, Status::Failed, "{r:?}");
    let err = r.error.as_deref().unwrap();
    assert!(err.contains("internal error: a template helper went wrong"), "{err}");
}

/// Three deliveries in flight meet the same halting error: the first to report it fails with
/// the reason, the other two go back to `pending` with it, like every delivery not started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_in_flight_when_the_channel_halts_stay_pending() {
    let mut h = harness(&and_others(
        &["together-1@x.de", "together-2@x.de", "together-3@x.de"],
        10,
    ));
    h.channel = Arc::new(Scripted {
        together: Some(tokio::sync::Barrier::new(3)),
        ..Default::default()
    });
    dispatch(&mut h, "concurrency = 3").await;
    let rows = by_recipient(&h);
    let together: Vec<_> = rows.values().filter(|r| r.recipient.starts_with("together-")).collect();
    let failed: Vec<_> = together.iter().filter(|r| r.status == Status::Failed).collect();
    assert_eq!(failed.len(), 1, "{together:?}");
    assert_eq!(failed[0].error.as_deref(), Some("account suspended"));
    for r in together.iter().filter(|r| r.status != Status::Failed) {
        assert_eq!(r.status, Status::Pending, "{r:?}");
        assert!(
            r.error
                .as_deref()
                .unwrap()
                .contains("account suspended; the channel stopped"),
            "{r:?}"
        );
    }
    let pending = rows.values().filter(|r| r.status == Status::Pending).count();
    assert_eq!(pending, 12, "nothing sent after the halt");
}
