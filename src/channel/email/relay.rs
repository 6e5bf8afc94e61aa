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
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use secrecy::{ExposeSecret, SecretString};

use super::classify::{Failure, Stage, StepError, classify, timed_out};
use super::pool::{Pool, Session};
use super::{RelayConfig, TlsMode};
use crate::channel::BuildContext;
use crate::secrets::secret_from_env;

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
        ctx: &BuildContext,
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
                Some(tls_parameters(&host, cfg, ctx).map_err(|e| format!("{what}: {e}"))?)
            }
        };
        let login = match (&cfg.username, &cfg.password_env) {
            (Some(username), Some(var)) => Some(Login {
                username: username.clone(),
                password: secret_from_env(var, &what)?,
            }),
            _ => None,
        };
        login
            .as_ref()
            .inspect(|l| crate::secrets::register_credential(&l.username, l.password.expose_secret()));
        let limiter = cfg.rate.map(|r| r.limiter(NonZeroU32::MIN));
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
    async fn after_failure(&self, mut session: Session, stage: Stage, e: &StepError, failure: &Failure) {
        match (failure, stage) {
            (Failure::Refused { .. }, Stage::Rcpt) => {
                if matches!(
                    tokio::time::timeout(self.timeout, session.conn.command(Rset)).await,
                    Ok(Ok(_))
                ) {
                    self.pool.put(session);
                }
            }
            // The transaction is over (the reply to the final "." was a refusal).
            (Failure::Refused { .. }, Stage::EndOfData) => self.pool.put(session),
            _ if e.code().is_some() => quit(session.conn).await,
            _ => {}
        }
    }

    /// TCP (+ implicit TLS), greeting, EHLO, STARTTLS, EHLO, AUTH — all within `timeout`.
    async fn connect(&self) -> Result<Session, Failure> {
        match tokio::time::timeout(self.timeout, self.handshake()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err((stage, e))) => Err(classify(stage, &e)),
            Err(_) => Err(timed_out(Stage::Connect, self.timeout)),
        }
    }

    async fn handshake(&self) -> Result<Session, (Stage, StepError)> {
        let mut conn = match self.mode {
            // lettre wraps the socket in TLS before the greeting; it does not expose it.
            TlsMode::Tls => AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.timeout),
                &self.hello,
                self.tls.clone(),
                None,
            )
            .await
            .map_err(smtp(Stage::Connect))?,
            // Our own socket, so that it can have TCP_NODELAY (see `tcp_connect`).
            TlsMode::None | TlsMode::Starttls => {
                let tcp = self.tcp_connect().await?;
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
                    .await
                    .map_err(smtp(Stage::Connect))?
            }
        };
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
                    StepError::Unsupported("the server does not offer STARTTLS".into()),
                ));
            }
            conn.starttls(params, &self.hello).await.map_err(smtp(Stage::Connect))?;
        }
        // lettre keeps only the EHLO keywords it knows, and PIPELINING is not one of them: ask
        // again (allowed at any time outside a transaction, RFC 5321 §4.1.4), before AUTH.
        let ehlo = conn
            .command(Ehlo::new(self.hello.clone()))
            .await
            .map_err(smtp(Stage::Connect))?;
        let pipelining = ehlo.message().any(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING"))
        });
        if let Some(login) = &self.login {
            // lettre's Credentials hold a plain String; it lives only for this call.
            let credentials = Credentials::new(login.username.clone(), login.password.expose_secret().to_string());
            if let Err(e) = conn.auth(&[Mechanism::Plain, Mechanism::Login], &credentials).await {
                quit(conn).await;
                return Err((Stage::Auth, StepError::Smtp(e)));
            }
        }
        Ok(Session { conn, pipelining })
    }

    /// TCP to the first address of the relay that answers, with TCP_NODELAY: the SMTP dialogue
    /// is strictly request/reply, and with Nagle's algorithm a short write that follows another
    /// (lettre sends the message and the final "." separately) waits for the peer's delayed ACK
    /// — 40 ms per message on Linux, which capped a connection at 25 messages/s.
    async fn tcp_connect(&self) -> Result<tokio::net::TcpStream, (Stage, StepError)> {
        let failed = |e: std::io::Error| (Stage::Connect, StepError::Local(format!("Connection error: {e}")));
        let addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(failed)?;
        let mut last = None;
        for addr in addrs {
            match tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => {
                    tcp.set_nodelay(true).map_err(failed)?;
                    return Ok(tcp);
                }
                Ok(Err(e)) => last = Some(e),
                Err(_) => {
                    last = Some(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "connection timed out",
                    ))
                }
            }
        }
        Err(failed(last.unwrap_or_else(|| {
            std::io::Error::other("could not resolve to any supported address")
        })))
    }

    /// MAIL, RCPT, DATA, message. Each reply has its own timeout. With PIPELINING, MAIL, RCPT and
    /// DATA go out in one write and their replies are read in order: two round trips per
    /// message instead of four, and each failure still belongs to its command.
    async fn transaction(
        &self,
        session: &mut Session,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<Response, (Stage, StepError)> {
        let conn = &mut session.conn;
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
        let mail = Mail::new(envelope.from().cloned(), params);
        if session.pipelining {
            let group = Pipelined {
                mail: &mail,
                rcpts: envelope.to(),
            };
            // The write, then MAIL's reply.
            self.step(Stage::Mail, conn.command(group)).await?;
            let mut refused = None;
            for _ in envelope.to() {
                if let Err(e) = self.step(Stage::Rcpt, conn.read_response()).await {
                    if e.1.code().is_none() {
                        return Err(e);
                    }
                    refused.get_or_insert(e);
                }
            }
            let data = self.step(Stage::Data, conn.read_response()).await;
            if let Some(e) = refused {
                // The server should have refused DATA too (no valid recipient). If it took it,
                // it now waits for a message: this connection cannot be used any more.
                if data.is_ok() {
                    conn.abort().await;
                }
                return Err(e);
            }
            data?;
        } else {
            self.step(Stage::Mail, conn.command(mail)).await?;
            for to in envelope.to() {
                self.step(Stage::Rcpt, conn.command(Rcpt::new(to.clone(), Vec::new())))
                    .await?;
            }
            self.step(Stage::Data, conn.command(Data)).await?;
        }
        match std::str::from_utf8(message) {
            // The message and the final "." in one write: a separate short write of the "." is
            // what Nagle's algorithm holds back (implicit TLS keeps lettre's socket, without
            // TCP_NODELAY).
            Ok(text) => self.step(Stage::EndOfData, conn.command(DataPayload(text))).await,
            Err(_) => self.step(Stage::EndOfData, conn.message(message)).await,
        }
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
            Failure::Relay(m) | Failure::Unusable(m) | Failure::Ambiguous(m) | Failure::Refused { message: m, .. } => {
                format!("{}: {m}", self.endpoint())
            }
        })?;
        quit(conn.conn).await;
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

/// MAIL, every RCPT and DATA, to be written at once (RFC 2920).
struct Pipelined<'a> {
    mail: &'a Mail,
    rcpts: &'a [Address],
}

impl std::fmt::Display for Pipelined<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.mail)?;
        for to in self.rcpts {
            write!(f, "{}", Rcpt::new(to.clone(), Vec::new()))?;
        }
        write!(f, "{Data}")
    }
}

/// The body of DATA as the wire carries it: lines starting with "." get another "." (RFC 5321
/// §4.5.2, exactly as lettre's codec does it), then CRLF "." CRLF.
struct DataPayload<'a>(&'a str);

impl std::fmt::Display for DataPayload<'_> {
    /// Dot-stuffing (RFC 5321 4.5.2): a "." at the start of a line is doubled.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0;
        if text.starts_with('.') {
            f.write_str(".")?;
        }
        let mut from = 0;
        for i in memchr::memmem::find_iter(text.as_bytes(), b"\r\n.") {
            f.write_str(&text[from..i + 3])?;
            f.write_str(".")?;
            from = i + 3;
        }
        f.write_str(&text[from..])?;
        f.write_str("\r\n.\r\n")
    }
}

/// Certificates are always verified: against the platform's roots plus `ca_file`.
fn tls_parameters(host: &str, cfg: &RelayConfig, ctx: &BuildContext) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(host.to_string());
    if let Some(file) = &cfg.ca_file {
        let path = ctx.resolve(file);
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    use super::*;

    /// What the fake relay saw.
    #[derive(Default)]
    struct Seen {
        connections: usize,
        /// For each MAIL: were RCPT and DATA already there when MAIL was read (one write)?
        groups: Vec<bool>,
        messages: Vec<String>,
        commands: Vec<String>,
    }

    /// An SMTP server that offers PIPELINING, refuses `bad@...` at RCPT (and then DATA, with
    /// no valid recipient), and takes everything else.
    async fn fake_relay(seen: Arc<Mutex<Seen>>) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                seen.lock().unwrap().connections += 1;
                let seen = seen.clone();
                tokio::spawn(async move {
                    let (r, mut w) = stream.into_split();
                    let mut r = BufReader::new(r);
                    w.write_all(b"220 fake ESMTP\r\n").await.unwrap();
                    let mut valid = 0;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let cmd = line.trim_end().to_string();
                        seen.lock().unwrap().commands.push(cmd.clone());
                        let verb = cmd.split([' ', ':']).next().unwrap_or("").to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" => b"250-fake\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
                            "MAIL" => {
                                valid = 0;
                                // Pipelined: the rest of the group is already buffered.
                                let buffered = String::from_utf8_lossy(r.buffer()).to_string();
                                let group = buffered.contains("RCPT TO:") && buffered.contains("DATA\r\n");
                                seen.lock().unwrap().groups.push(group);
                                b"250 2.1.0 Ok\r\n"
                            }
                            "RCPT" if cmd.contains("bad@") => b"550 5.1.1 <bad@example.com>: user unknown\r\n",
                            "RCPT" => {
                                valid += 1;
                                b"250 2.1.5 Ok\r\n"
                            }
                            "DATA" if valid == 0 => b"554 5.5.1 Error: no valid recipients\r\n",
                            "DATA" => {
                                w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await.unwrap();
                                let mut data = Vec::new();
                                while !data.ends_with(b"\r\n.\r\n") {
                                    let mut b = [0u8; 1];
                                    if r.read_exact(&mut b).await.is_err() {
                                        return;
                                    }
                                    data.push(b[0]);
                                }
                                seen.lock()
                                    .unwrap()
                                    .messages
                                    .push(String::from_utf8_lossy(&data).into_owned());
                                b"250 2.0.0 Ok: queued as Q1\r\n"
                            }
                            "RSET" => b"250 2.0.0 Ok\r\n",
                            "QUIT" => {
                                let _ = w.write_all(b"221 2.0.0 Bye\r\n").await;
                                return;
                            }
                            _ => b"502 5.5.2 Error: command not recognized\r\n",
                        };
                        w.write_all(reply).await.unwrap();
                    }
                });
            }
        });
        port
    }

    fn relay(port: u16, dir: &std::path::Path) -> Relay {
        std::fs::write(dir.join("channels.toml"), "state_dir = \"s\"\n").unwrap();
        let config = crate::config::Config::load(&dir.join("channels.toml")).unwrap();
        let cfg: RelayConfig = toml::from_str(&format!(
            "name = \"fake\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\""
        ))
        .unwrap();
        let hello = ClientId::Domain("studio.example".into());
        Relay::new("email", 1, &cfg, &hello, 1, &config.build_context()).unwrap()
    }

    fn envelope(to: &str) -> Envelope {
        Envelope::new(Some("info@studio.example".parse().unwrap()), vec![to.parse().unwrap()]).unwrap()
    }

    #[tokio::test]
    async fn pipelining_keeps_each_reply_with_its_command() {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let port = fake_relay(seen.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let relay = relay(port, dir.path());
        let message = b"Subject: t\r\n\r\n.hello\r\n";

        // A refused recipient: permanent, and the connection stays usable (RSET, pooled).
        match relay.send(&envelope("bad@example.com"), message).await {
            Err(Failure::Refused { permanent, message }) => {
                assert!(permanent && message.contains("550 5.1.1"), "{message}");
            }
            other => panic!("expected a refused recipient, got {other:?}"),
        }
        // Then two messages on the same connection.
        for _ in 0..2 {
            let reply = relay.send(&envelope("good@example.com"), message).await.unwrap();
            assert_eq!(queue_id_of(&reply), "Q1");
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.connections, 1, "{:?}", seen.commands);
        assert_eq!(
            seen.groups,
            [true, true, true],
            "MAIL, RCPT and DATA in one write: {:?}",
            seen.commands
        );
        assert!(seen.commands.iter().any(|c| c == "RSET"), "{:?}", seen.commands);
        assert_eq!(seen.messages.len(), 2);
        assert!(
            seen.messages[0].ends_with("..hello\r\n\r\n.\r\n"),
            "{:?}",
            seen.messages[0]
        );
    }

    fn queue_id_of(reply: &Response) -> String {
        super::super::classify::queue_id(reply).unwrap_or_default()
    }

    #[test]
    fn data_payload_dot_stuffs_like_lettre_and_ends_the_data() {
        let cases = [
            ("a\r\nb", "a\r\nb\r\n.\r\n"),
            (".a\r\n.b\r\nc.d\r\n..e", "..a\r\n..b\r\nc.d\r\n...e\r\n.\r\n"),
            ("x\r\n.", "x\r\n..\r\n.\r\n"),
            // A bare LF does not start a line for the codec; CR CR LF does.
            ("x\n.y\r\r\n.z", "x\n.y\r\r\n..z\r\n.\r\n"),
            ("", "\r\n.\r\n"),
        ];
        for (input, wire) in cases {
            assert_eq!(DataPayload(input).to_string(), wire, "{input:?}");
        }
    }
}
