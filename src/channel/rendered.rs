//! Constructors of [`Rendered`] for the shapes several channels share.

use super::{Rendered, Stat};

impl Rendered {
    /// A text-only message (a post, a chat message, an SMS file) that costs one rate-limiter
    /// cell.
    pub fn plain(text: String, stats: Vec<Stat>) -> Rendered {
        Rendered {
            subject: None,
            text,
            html: None,
            weight: 1,
            media: Default::default(),
            language: None,
            stats,
        }
    }
}
