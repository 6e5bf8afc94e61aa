//! The embedded default channel: every message becomes a file in `dir` — `.eml` for recipients
//! with an email address (rendered with the email templates, exactly as the email channel would
//! send it), `.json` with the SMS text for the others. Useful as a dry run you can open, as a
//! last-resort spool, and in tests. Files are written atomically (temp file, then rename) with
//! mode 0600 in 0700 folders, because they hold customer data.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use lettre::message::Mailbox;
use serde::Deserialize;
use serde_json::json;

use crate::channel::email::{self, message};
use crate::channel::{
    AddressKind, BuildContext, Builtin, BuiltinTemplates, Channel, ChannelConfig, ChannelEntry, ChannelKind, Delivery,
    DeliveryError, Meta, Probe, Reach, Receipt, Rendered, Stat,
};
use crate::fsutil;
use crate::render::{Context, Templates, sms};
use crate::settings::{Common, HumanDuration};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    #[serde(default = "default_outbox_dir")]
    pub dir: String,
    /// Sender used in the `.eml` files (defaults to the org name at `outbox.invalid`).
    pub from: Option<String>,
    /// Per-message delay, to make a run observable in demos and tests ("200ms").
    pub delay: Option<HumanDuration>,
}

fn default_outbox_dir() -> String {
    "outbox".into()
}

// The `.eml` files are the email channel's messages, the `.json` ones the SMS text.
impl BuiltinTemplates for OutboxConfig {
    const TEMPLATES: &'static [Builtin] = &[
        email::SUBJECT_TEMPLATE,
        email::TEXT_TEMPLATE,
        email::TEXT_TEMPLATE_DE,
        email::HTML_TEMPLATE,
        email::HTML_TEMPLATE_DE,
        crate::channel::sms::TEXT_TEMPLATE,
    ];
}

impl ChannelConfig for OutboxConfig {
    fn build(&self, name: &str, _common: &Common, ctx: &BuildContext) -> Result<Arc<dyn Channel>, String> {
        Ok(Arc::new(Outbox::new(name, self, ctx)?))
    }
}

pub struct Outbox {
    meta: Meta,
    dir: PathBuf,
    from: Mailbox,
    delay: Option<Duration>,
    css: crate::render::inline::CssCache,
    text: crate::render::skeleton::Skeletons,
}

impl Outbox {
    pub fn new(name: &str, cfg: &OutboxConfig, ctx: &BuildContext) -> Result<Outbox, String> {
        let from = match &cfg.from {
            Some(f) => f.parse().map_err(|e| format!("[channels.{name}] from {f:?}: {e}"))?,
            None => Mailbox::new(
                (!ctx.org.name.is_empty()).then(|| ctx.org.name.clone()),
                "announce@localhost".parse().map_err(|e| format!("{e}"))?,
            ),
        };
        Ok(Outbox {
            meta: Meta::new::<OutboxConfig>(name, Reach::PerPerson(AddressKind::EmailOrPhone)).concurrency(8),
            dir: ctx.resolve(&cfg.dir),
            from,
            delay: cfg.delay.map(|d| d.0),
            css: Default::default(),
            text: Default::default(),
        })
    }

    fn file_for(&self, d: &Delivery, ext: &str) -> PathBuf {
        let safe: String = d
            .address
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "@.+-_".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(&d.run_id).join(format!("{:06}-{safe}.{ext}", d.id))
    }
}

#[async_trait]
impl Channel for Outbox {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The file name is fixed per delivery and written atomically: writing it twice is harmless.
    fn resend_is_safe(&self) -> bool {
        true
    }

    fn render(&self, templates: &Templates, ctx: &Context) -> Result<Rendered, String> {
        if ctx.address.contains('@') {
            return message::render(templates, ctx, "email.html.hbs", &self.css, &self.text);
        }
        let text = self.text.render(templates, "sms.txt.hbs", ctx)?.trim().to_string();
        let text = sms::normalize(&text).into_owned();
        let info = sms::analyze(&text);
        let stats = vec![
            Stat::new("SMS encoding", info.encoding),
            Stat::new("SMS characters", info.chars),
            Stat::new("SMS segments", info.segments),
        ];
        Ok(Rendered::plain(text, stats))
    }

    async fn deliver(&self, d: &Delivery, msg: &Rendered) -> Result<Receipt, DeliveryError> {
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        let (path, bytes) = if d.address.contains('@') {
            let env = message::Envelope {
                from: &self.from,
                reply_to: None,
                to_address: &d.address,
                to_name: &d.name,
                message_id: &d.message_id,
                thread_root: d.thread_root.as_deref(),
                list_unsubscribe: None,
                date: SystemTime::now(),
            };
            let m = message::build(&env, msg).map_err(DeliveryError::permanent)?;
            (self.file_for(d, "eml"), m.formatted())
        } else {
            let info = sms::analyze(&msg.text);
            let doc = json!({
                "to": d.address, "name": d.name, "text": msg.text,
                "encoding": info.encoding, "segments": info.segments, "message_id": d.message_id,
            });
            (
                self.file_for(d, "json"),
                serde_json::to_vec_pretty(&doc).unwrap_or_default(),
            )
        };
        let write = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || fsutil::write_private_atomic(&path, &bytes))
        };
        match write.await {
            Ok(Ok(())) => Ok(Receipt {
                provider_id: Some(path.display().to_string()),
                route: Some(self.name().to_string()),
            }),
            Ok(Err(e)) if fsutil::is_out_of_space(&e) => Err(DeliveryError::Halt {
                message: format!(
                    "cannot write {}: {e}; no further message would fit, so make room before resuming the run",
                    path.display()
                ),
            }),
            Ok(Err(e)) => Err(DeliveryError::transient(format!(
                "cannot write {}: {e}",
                path.display()
            ))),
            Err(e) => Err(DeliveryError::transient(format!("outbox writer failed: {e}"))),
        }
    }

    async fn check(&self) -> Vec<Probe> {
        let probe = fsutil::create_private_dir(&self.dir);
        vec![Probe::folder(self.name(), &self.dir, probe, "create", "")]
    }
}

/// For `resume`, before it sends anything: remove the temp files a killed process left (whole
/// messages, half-written) in the run's outbox folder, if `entry` is an outbox. Only `resume`
/// of that run writes there again, and it holds the state lock.
pub fn sweep_run_folder(entry: &ChannelEntry, ctx: &BuildContext, run_id: &str) {
    let ChannelKind::Outbox(cfg) = &entry.settings.kind else {
        return;
    };
    let dir = ctx.resolve(&cfg.dir).join(run_id);
    match fsutil::remove_stale_temp_files(&dir) {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} unfinished temp files from {}", dir.display()),
        Err(e) => tracing::warn!("cannot clear unfinished temp files from {}: {e}", dir.display()),
    }
}
