//! The email channel: lettre over an ordered list of SMTP relays with failover.

pub mod message;

use async_trait::async_trait;

use crate::channel::{AddressKind, Channel, Delivery, DeliveryError, Probe, Reach, Receipt, Rendered};
use crate::config::{Common, Config, EmailConfig};
use crate::render::{Context, Templates};

pub struct Email {
    name: String,
}

impl Email {
    pub fn new(name: &str, _common: &Common, _cfg: &EmailConfig, _config: &Config) -> Result<Email, String> {
        let _ = name;
        Err("the email channel is not implemented yet".into())
    }
}

#[async_trait]
impl Channel for Email {
    fn name(&self) -> &str {
        &self.name
    }
    fn type_name(&self) -> &'static str {
        "email"
    }
    fn reach(&self) -> Reach {
        Reach::PerPerson(AddressKind::Email)
    }
    fn render(&self, templates: &Templates, ctx: &Context) -> Result<Rendered, String> {
        message::render(templates, ctx, "email.html.hbs")
    }
    async fn deliver(&self, _d: &Delivery, _m: &Rendered) -> Result<Receipt, DeliveryError> {
        Err(DeliveryError::permanent("not implemented"))
    }
    async fn check(&self) -> Vec<Probe> {
        Vec::new()
    }
}
