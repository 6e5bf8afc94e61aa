//! `[reach] order` (or front matter `reach`): each person gets one message, from the first
//! channel of the order that has a usable address for them and does not skip them. The later
//! channels of their chain are journaled `standby`; a `failed` or `undelivered` outcome turns
//! the next one `pending` in the same transaction (see the journal), so nothing here sends.

use std::sync::Arc;

use crate::announcement::Announcement;
use crate::channel::ChannelEntry;
use crate::channel::{Channel, Reach};
use crate::config::{Config, check_reach_names};
use crate::error::{AppError, SourceLocation};
use crate::journal::Status;

/// The selected channels of the order, as indices into the planner's channels, in order.
pub fn resolve(
    config: &Config,
    ann: &Announcement,
    channels: &[(ChannelEntry, Arc<dyn Channel>)],
) -> Result<Option<Vec<usize>>, AppError> {
    let order: Vec<(String, SourceLocation)> = match ann.reach_order() {
        Some(order) => {
            check_reach_names(&order, &config.channels)?;
            order
        }
        None => match &config.reach {
            Some(order) => order.clone(),
            None => return Ok(None),
        },
    };
    let mut out: Vec<usize> = Vec::new();
    for (name, at) in &order {
        // A name is a channel; a type, its enabled channels in config order.
        let named: Vec<&ChannelEntry> = match config.channel(name) {
            Some(c) => vec![c],
            None => config
                .channels
                .iter()
                .filter(|c| c.type_name() == name && c.settings.common.enabled)
                .collect(),
        };
        for entry in named {
            // Channels not selected for this run are left out of the chain.
            let Some(i) = channels.iter().position(|(e, _)| e.name == entry.name) else {
                continue;
            };
            if !matches!(channels[i].1.reach(), Reach::PerPerson(_)) {
                return Err(AppError::invalid_at(
                    Some(at.clone()),
                    format!(
                        "reach: channel {} posts once per run, not to each person; only per-person channels \
                         (email, sms, ...) can be in the order",
                        entry.name
                    ),
                ));
            }
            if !out.contains(&i) {
                out.push(i);
            }
        }
    }
    Ok((!out.is_empty()).then_some(out))
}

/// One person's way through their chain while their row is planned.
#[derive(Debug, Clone, Copy, Default)]
pub struct Link {
    /// The channel being planned: its position in the order.
    pub step: u32,
    /// The step that got the person's first (`pending`) delivery.
    pub first: Option<u32>,
}

impl Link {
    /// A deliverable target on the current step: the first is sent, the later ones wait on
    /// standby as fallbacks. Status, `fallback`, `step`.
    pub fn take(&mut self) -> (Status, bool, Option<u32>) {
        match self.first {
            None => {
                self.first = Some(self.step);
                (Status::Pending, false, Some(self.step))
            }
            Some(_) => (Status::Standby, true, Some(self.step)),
        }
    }
}

/// The planned chains: who each channel takes first.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    /// Indices into the per-person channels being planned, in the order's order, with their names.
    pub lanes: Vec<(usize, String)>,
    /// People each channel of the order takes first (same order).
    pub first: Vec<usize>,
    /// People no channel of the order can reach.
    pub none: usize,
}

impl Chain {
    pub fn new(lanes: Vec<(usize, String)>) -> Chain {
        let first = vec![0; lanes.len()];
        Chain { lanes, first, none: 0 }
    }

    /// Count a person whose chain was planned.
    pub fn count(&mut self, link: &Link) {
        match link.first {
            Some(step) => self.first[step as usize] += 1,
            None => self.none += 1,
        }
    }

    /// "reach: email first for 40 people, sms first for 2, no channel for 1".
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .lanes
            .iter()
            .zip(&self.first)
            .enumerate()
            .map(|(i, ((_, name), n))| {
                if i == 0 {
                    format!("{name} first for {n} people")
                } else {
                    format!("{name} first for {n}")
                }
            })
            .collect();
        format!("reach: {}, no channel for {}", parts.join(", "), self.none)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_deliverable_step_is_sent_and_the_later_ones_wait() {
        let mut chain = Chain::new(vec![(0, "email".into()), (1, "sms".into())]);
        let mut both = Link::default();
        assert_eq!(both.take(), (Status::Pending, false, Some(0)));
        both.step = 1;
        assert_eq!(both.take(), (Status::Standby, true, Some(1)));
        chain.count(&both);
        // No email address: the step is passed without a delivery, SMS is first, no fallback.
        let mut phone_only = Link { step: 1, first: None };
        assert_eq!(phone_only.take(), (Status::Pending, false, Some(1)));
        chain.count(&phone_only);
        chain.count(&Link::default());
        assert_eq!(chain.first, vec![1, 1]);
        assert_eq!(
            chain.describe(),
            "reach: email first for 1 people, sms first for 1, no channel for 1"
        );
    }
}
