//! The keys of a `type = "statuspage"` table.

use std::sync::Arc;

use serde::Deserialize;

use crate::channel::{BuildContext, Builtin, BuiltinTemplates, Channel, ChannelConfig};
use crate::settings::Common;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatuspageConfig {
    pub dir: String,
    pub publish_command: Option<String>,
    /// Page title (default: "Current status" in the `[org] locale`).
    pub title: Option<String>,
    /// Public URL the site is served from: absolute links and ids in feed.atom and the JSON.
    pub base_url: Option<String>,
    /// Folder of Markdown pages (FAQ, prices, ...) linked from every page; relative to the
    /// config's folder.
    pub pages_dir: Option<String>,
    /// Resolved incidents stay under "Recently resolved" for this many days (default 30).
    pub recent_days: Option<u32>,
}

impl BuiltinTemplates for StatuspageConfig {
    const TEMPLATES: &'static [Builtin] = &[
        ("statuspage.index.html.hbs", include_str!("statuspage.index.html.hbs")),
        (
            "statuspage.incident.html.hbs",
            include_str!("statuspage.incident.html.hbs"),
        ),
        ("statuspage.page.html.hbs", include_str!("statuspage.page.html.hbs")),
        ("statuspage.layout.html.hbs", include_str!("statuspage.layout.html.hbs")),
        ("statuspage.css.hbs", include_str!("statuspage.css.hbs")),
    ];
}

impl ChannelConfig for StatuspageConfig {
    fn urls(&self) -> Vec<(&'static str, &str)> {
        self.base_url.iter().map(|u| ("base_url", u.as_str())).collect()
    }

    fn build(&self, name: &str, _common: &Common, ctx: &BuildContext) -> Result<Arc<dyn Channel>, String> {
        Ok(Arc::new(super::Statuspage::new(name, self, ctx)?))
    }
}
