//! One SMTP relay: its connection settings, its pool, its rate limit, and one message's SMTP
//! dialogue driven command by command so that every failure is classified by its stage.

use std::future::Future;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::DefaultDirectRateLimiter;
use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use secrecy::{ExposeSecret, SecretString};

use super::classify::{Failure, Stage, StepError, classify, timed_out};
use super::pool::Pool;
use crate::config::{Config, RelayConfig, TlsMode, secret_from_env};

/// Per-command timeout when the relay does not set one. RFC 5321 allows minutes; a CLI that
/// waits half a minute for a reply has waited long enough to try the next relay.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on politely saying QUIT to a connection we are leaving.
const QUIT_TIMEOUT: Duration = Duration::from_secs(2);

struct Login {
    username: String,
    password: SecretString,
}

pub struct Relay {
    /// `name` from the config, else the host: what reports show as `route`.
    pub name: String,
    host: String,
    port: u16,
    mode: TlsMode,
    tls: Option<TlsParameters>,
    hello: ClientId,
    login: Option<Login>,
    /// Per SMTP command (connecting counts as one).
    pub timeout: Duration,
    limiter: Option<DefaultDirectRateLimiter>,
    /// Longest a delivery may wait for this relay's rate limiter (for the attempt timeout).
    pub max_rate_wait: Duration,
    pool: Pool,
}

impl Relay {
    /// `index` counts from 1; `concurrency` sizes the pool. Errors are config errors.
    pub fn new(
        channel: &str,
        index: usize,
        cfg: &RelayConfig,
        hello: &ClientId,
        concurrency: usize,
        config: &Config,
    ) -> Result<Relay, String> {
        let name = cfg.name.clone().unwrap_or_else(|| cfg.host.clone());
        let what = format!("[channels.{channel}] relay {name} (#{index})");
        // "[::1]" in the config; lettre and the resolver want the bare address.
        let host = cfg.host.trim_start_matches('[').trim_end_matches(']').to_string();
        if host.is_empty() {
            return Err(format!("{what}: host is empty"));
        }
        let port = cfg.port.unwrap_or(match cfg.tls {
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
            TlsMode::None => 25,
        });
        let tls = match cfg.tls {
            TlsMode::None => None,
            TlsMode::Starttls | TlsMode::Tls => {
                Some(tls_parameters(&host, cfg, config).map_err(|e| format!("{what}: {e}"))?)
            }
        };
        let login = match (&cfg.username, &cfg.password_env) {
            (Some(username), Some(var)) => Some(Login {
                username: username.clone(),
                password: secret_from_env(var, &what)?,
            }),
            _ => None,
        };
        let limiter = cfg.rate.map(|r| crate::dispatch::limiter(r, NonZeroU32::MIN));
        // GCRA with burst 1 and `concurrency` deliveries queueing: the last waits about
        // `concurrency` periods.
        let max_rate_wait = cfg
            .rate
            .map_or(Duration::ZERO, |r| (r.per / r.count.get()) * (concurrency as u32 + 1));
        Ok(Relay {
            name,
            host,
            port,
            mode: cfg.tls,
            tls,
            hello: hello.clone(),
            login,
            timeout: cfg.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0),
            limiter,
            max_rate_wait,
            pool: Pool::new(concurrency),
        })
    }

    pub fn endpoint(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The worst case of one [`Relay::send`]: the rate limiter, connecting twice (a stale pooled
    /// connection is replaced once), MAIL twice, RCPT, DATA, end of data, RSET — each bounded
    /// by `timeout` — and two QUITs.
    pub fn worst_case(&self) -> Duration {
        self.max_rate_wait + self.timeout * 8 + QUIT_TIMEOUT * 2
    }

    /// Hand one message to this relay.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<Response, Failure> {
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
        let _slot = self.pool.slot().await;
        let mut pooled = self.pool.take();
        loop {
            let reused = pooled.is_some();
            let mut conn = match pooled.take() {
                Some(c) => c,
                None => self.connect().await?,
            };
            match self.transaction(&mut conn, envelope, message).await {
                Ok(reply) => {
                    self.pool.put(conn);
                    return Ok(reply);
                }
                // A parked connection the server has closed meanwhile (or that it closes with
                // 421 after N messages): nothing was handed over, so try once more on a fresh one.
                Err((Stage::Mail, e)) if reused && (e.is_stale_connection() || e.code() == Some(421)) => {
                    tracing::debug!(relay = %self.name, "pooled connection unusable ({e}); reconnecting");
                    continue;
                }
                Err((stage, e)) => {
                    let failure = classify(stage, &e);
                    self.after_failure(conn, stage, &e, &failure).await;
                    return Err(failure);
                }
            }
        }
    }

    /// Keep the connection when the relay only refused this recipient or message; otherwise
    /// leave it (politely when it still speaks SMTP).
    async fn after_failure(&self, mut conn: AsyncSmtpConnection, stage: Stage, e: &StepError, failure: &Failure) {
        match (failure, stage) {
            (Failure::Refused { .. }, Stage::Rcpt) => {
                if matches!(tokio::time::timeout(self.timeout, conn.command(Rset)).await, Ok(Ok(_))) {
                    self.pool.put(conn);
                }
            }
            // The transaction is over (the reply to the final "." was a refusal).
            (Failure::Refused { .. }, Stage::EndOfData) => self.pool.put(conn),
            _ if e.code().is_some() => quit(conn).await,
            _ => {}
        }
    }

    /// TCP (+ implicit TLS), greeting, EHLO, STARTTLS, EHLO, AUTH — all within `timeout`.
    async fn connect(&self) -> Result<AsyncSmtpConnection, Failure> {
        match tokio::time::timeout(self.timeout, self.handshake()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err((stage, e))) => Err(classify(stage, &e)),
            Err(_) => Err(timed_out(Stage::Connect, self.timeout)),
        }
    }

    async fn handshake(&self) -> Result<AsyncSmtpConnection, (Stage, StepError)> {
        let implicit = match self.mode {
            TlsMode::Tls => self.tls.clone(),
            _ => None,
        };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello,
            implicit,
            None,
        )
        .await
        .map_err(smtp(Stage::Connect))?;
        if self.mode == TlsMode::Starttls {
            // Required, never opportunistic: a server that does not offer STARTTLS is a
            // failure of this relay, not a reason to continue in plaintext.
            let params = self
                .tls
                .clone()
                .ok_or((Stage::Connect, StepError::Local("no TLS parameters".into())))?;
            if !conn.server_info().supports_feature(Extension::StartTls) {
                quit(conn).await;
                return Err((
                    Stage::Connect,
                    StepError::Local("the server does not offer STARTTLS".into()),
                ));
            }
            conn.starttls(params, &self.hello).await.map_err(smtp(Stage::Connect))?;
        }
        if let Some(login) = &self.login {
            // lettre's Credentials hold a plain String; it lives only for this call.
            let credentials = Credentials::new(login.username.clone(), login.password.expose_secret().to_string());
            if let Err(e) = conn.auth(&[Mechanism::Plain, Mechanism::Login], &credentials).await {
                quit(conn).await;
                return Err((Stage::Auth, StepError::Smtp(e)));
            }
        }
        Ok(conn)
    }

    /// MAIL, RCPT, DATA, message. Each command has its own timeout.
    async fn transaction(
        &self,
        conn: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<Response, (Stage, StepError)> {
        let mut params = Vec::new();
        if envelope
            .to()
            .iter()
            .chain(envelope.from())
            .any(|a: &Address| !AsRef::<str>::as_ref(a).is_ascii())
        {
            if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
                return Err((
                    Stage::Mail,
                    StepError::Local("non-ASCII address but the relay lacks SMTPUTF8".into()),
                ));
            }
            params.push(MailParameter::SmtpUtfEight);
        }
        if !message.is_ascii() {
            if !conn.server_info().supports_feature(Extension::EightBitMime) {
                return Err((
                    Stage::Mail,
                    StepError::Local("8-bit message but the relay lacks 8BITMIME".into()),
                ));
            }
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        self.step(Stage::Mail, conn.command(Mail::new(envelope.from().cloned(), params)))
            .await?;
        for to in envelope.to() {
            self.step(Stage::Rcpt, conn.command(Rcpt::new(to.clone(), Vec::new())))
                .await?;
        }
        self.step(Stage::Data, conn.command(Data)).await?;
        self.step(Stage::EndOfData, conn.message(message)).await
    }

    async fn step<T>(
        &self,
        stage: Stage,
        fut: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
    ) -> Result<T, (Stage, StepError)> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err((stage, StepError::Smtp(e))),
            Err(_) => Err((stage, StepError::Timeout(self.timeout))),
        }
    }

    /// `check`: connect, TLS, EHLO, AUTH, QUIT. Nothing is sent. Ok: what was verified.
    pub async fn probe(&self) -> Result<String, String> {
        let conn = self.connect().await.map_err(|f| match f {
            Failure::Relay(m) | Failure::Ambiguous(m) | Failure::Refused { message: m, .. } => {
                format!("{}: {m}", self.endpoint())
            }
        })?;
        quit(conn).await;
        let tls = match self.mode {
            TlsMode::Starttls => "STARTTLS",
            TlsMode::Tls => "implicit TLS",
            TlsMode::None => "plaintext (loopback)",
        };
        let auth = match &self.login {
            Some(l) => format!("authenticated as {}", l.username),
            None => "no AUTH configured".into(),
        };
        Ok(format!("{}: {tls}, EHLO, {auth}", self.endpoint()))
    }
}

/// Certificates are always verified: against the platform's roots plus `ca_file`.
fn tls_parameters(host: &str, cfg: &RelayConfig, config: &Config) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(host.to_string());
    if let Some(file) = &cfg.ca_file {
        let path = config.resolve(file);
        let pem = std::fs::read(&path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(format!(
                "ca_file {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
                path.display()
            ));
        }
        let cert = Certificate::from_pem(&pem).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| format!("cannot set up TLS: {e}"))
}

/// Say QUIT and close, without waiting long for a server that no longer answers.
async fn quit(mut conn: AsyncSmtpConnection) {
    // `abort` sends QUIT (unless the connection is already broken) and closes the stream.
    let _ = tokio::time::timeout(QUIT_TIMEOUT, conn.abort()).await;
}

fn smtp(stage: Stage) -> impl Fn(lettre::transport::smtp::Error) -> (Stage, StepError) {
    move |e| (stage, StepError::Smtp(e))
}
