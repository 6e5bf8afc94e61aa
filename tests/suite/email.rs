//! The email channel end to end: the `announce` binary against real SMTP servers
//! (tests/support/smtp_server.py on aiosmtpd, tests/support/smtp_fault.py for scripted faults).
//! Needs Python with tests/support/requirements.txt; `scripts/test` installs it. Without it
//! these tests fail (they do not skip).

use crate::support;
use crate::support::smtp;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;
use smtp::{PASSWORD, PASSWORD_ENV, Server, TRUSTED, USER, email_channel, header, relay};
use support::scenario::{SEND, notice_text, send_with};
use support::{Scenario, assert_outcome};

const TITLE: &str = "Störung: Website vorübergehend offline";

/// The email tests' folder without its channels: `recipients` customers, notices/n.md and the
/// relays' password; each test adds `[channels.email]` once its servers run (`ws.channels`).
fn email_scenario(recipients: usize) -> Scenario {
    Scenario::new()
        .org("name = \"Studio Test\"")
        .audience(&support::customers(recipients))
        .title(TITLE)
        .notice(THREAD, "Unsere Website ist offline. Alle Termine finden statt.")
        .env(PASSWORD_ENV, PASSWORD)
}

/// The front matter of the notices: one thread, so that a follow-up replies to the first.
/// notices/n2.md: a follow-up in the same thread.
fn follow_up() -> String {
    notice_text("Update: Website wieder online", THREAD, "Alles läuft wieder.")
}

const THREAD: &str = "thread = \"outage-1\"\nseverity = \"major\"";

#[test]
fn delivers_to_200_recipients_over_starttls_with_auth() {
    let ws = email_scenario(200).build();
    let server = Server::trusted_primary(&ws, "", &["--queue-id"]);

    let run = ws.run(SEND);
    run.code(0);
    ws.assert_absent(PASSWORD, &[&run]);

    // Every message arrived exactly once, over TLS, authenticated.
    let messages = server.messages();
    assert_eq!(messages.len(), 200, "{}", server.log());
    let rcpts: Vec<String> = messages
        .iter()
        .flat_map(|m| m["rcpt_tos"].as_array().unwrap().clone())
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(rcpts.len(), 200, "one envelope per recipient");
    let expected: BTreeSet<String> = (1..=200).map(|i| format!("kunde{i}@example.de")).collect();
    assert_eq!(rcpts.iter().cloned().collect::<BTreeSet<_>>(), expected);
    // Pooled: a handful of connections (one per concurrent slot), not one per message.
    assert!(server.stat("connections") <= 20, "{}", server.stats());

    let mut message_ids = BTreeMap::new();
    for m in &messages {
        let rcpt = m["rcpt_tos"][0].as_str().unwrap();
        let i: usize = rcpt
            .trim_start_matches("kunde")
            .trim_end_matches("@example.de")
            .parse()
            .unwrap();
        assert_eq!(m["tls"], true);
        assert_eq!(m["auth_user"], USER);
        assert_eq!(m["mail_from"], "info@studio.example");
        let p = &m["parsed"];
        assert_eq!(p["ok"], true, "MIME defects: {}", p["defects"]);
        assert_eq!(p["content_type"], "multipart/alternative");
        assert_eq!(p["parts"], serde_json::json!(["text/plain", "text/html"]));
        assert!(p["text"].as_str().unwrap().contains("Alle Termine finden statt"));
        assert!(p["html"].as_str().unwrap().contains("Alle Termine finden statt"));
        assert_eq!(header(m, "to"), Some(format!("Kundin {i} Müller <{rcpt}>").as_str()));
        assert_eq!(header(m, "subject"), Some(TITLE));
        assert!(
            p["raw_headers"]["subject"][0].as_str().unwrap().contains("=?utf-8?"),
            "RFC 2047 subject"
        );
        assert_eq!(header(m, "reply-to"), Some("Termine <termine@studio.example>"));
        assert_eq!(header(m, "auto-submitted"), Some("auto-generated"));
        assert_eq!(
            header(m, "list-unsubscribe"),
            Some("<https://studio.example/u/abc>, <mailto:optout@studio.example>")
        );
        assert_eq!(header(m, "list-unsubscribe-post"), Some("List-Unsubscribe=One-Click"));
        assert!(header(m, "date").is_some());
        let mid = header(m, "message-id").unwrap();
        assert!(mid.starts_with('<') && mid.ends_with("@studio.example>"), "{mid}");
        assert_eq!(p["raw_checks"]["bare_lf"], false);
        assert!(p["raw_checks"]["max_line_length"].as_u64().unwrap() <= 998);
        message_ids.insert(rcpt.to_string(), mid.to_string());
    }
    assert_eq!(
        message_ids.values().collect::<BTreeSet<_>>().len(),
        200,
        "Message-IDs are unique"
    );

    let ds = run.deliveries();
    assert_eq!(ds.len(), 200);
    for d in &ds {
        assert_eq!(d["status"], "sent", "{d}");
        assert_eq!(d["attempts"], 1, "{d}");
        assert_eq!(d["route"], "primary", "{d}");
        let pid = d["provider_id"].as_str().unwrap();
        let mid = &message_ids[d["recipient"].as_str().unwrap()];
        assert!(
            pid.starts_with(mid.as_str()) && pid.contains("(queued as "),
            "{pid} vs {mid}"
        );
    }
}

/// How the primary fails in [`primary_failure_moves_everything_to_the_alternate`].
enum Primary {
    ClosedPort,
    /// A smtp_fault.py script, with STARTTLS (so AUTH and MAIL are reachable).
    Fault(&'static str),
}

/// 50 messages, a broken primary, an alternate on implicit TLS: all arrive through the
/// alternate and the primary sees only a few connection attempts (circuit breaker).
fn primary_failure_moves_everything_to_the_alternate(primary: Primary) {
    let ws = email_scenario(50).build();
    let certs = smtp::certs(&ws.path("tls"));
    let (cert, key) = (certs.cert.to_str().unwrap(), certs.key.to_str().unwrap());
    let alternate = Server::smtp(
        &ws.path("box-alternate"),
        &[
            "--mode",
            "tls",
            "--cert",
            cert,
            "--key",
            key,
            "--auth-user",
            USER,
            "--auth-pass",
            PASSWORD,
        ],
    );
    let fault = match primary {
        Primary::ClosedPort => None,
        Primary::Fault(script) => Some((
            script,
            Server::fault(&ws.path("box-primary"), script, &["--cert", cert, "--key", key]),
        )),
    };
    let primary_port = fault.as_ref().map_or_else(smtp::closed_port, |(_, f)| f.port);
    ws.channels(&email_channel(
        "",
        &[
            relay("primary", primary_port, "starttls", TRUSTED),
            relay("alternate", alternate.port, "tls", TRUSTED),
        ],
    ));

    let run = ws.run(SEND);
    run.code(0);
    ws.assert_absent(PASSWORD, &[&run]);
    let ds = run.deliveries();
    assert_eq!(ds.len(), 50);
    for d in &ds {
        assert_eq!(
            (d["status"].as_str(), d["route"].as_str()),
            (Some("sent"), Some("alternate")),
            "{d}"
        );
    }
    let got = alternate.messages();
    assert_eq!(got.len(), 50, "every message exactly once through the alternate");
    assert_eq!(
        got.iter()
            .map(|m| m["rcpt_tos"][0].as_str().unwrap())
            .collect::<BTreeSet<_>>()
            .len(),
        50
    );
    if let Some((script, f)) = fault {
        // The scripted fault itself was reached (not an earlier failure such as TLS).
        let reached = match script {
            "auth535" => f.stat("starttls") >= 1 && f.stat("auth_attempts") >= 1,
            "mail421" => f.stat("starttls") >= 1 && f.stat("mail_from") >= 1,
            _ => true,
        };
        assert!(reached, "{script}: {}", f.stats());
        let connections = f.stat("connections");
        assert!(
            (1..=5).contains(&connections),
            "primary saw {connections} connections for 50 messages: {}",
            f.stats()
        );
        assert_eq!(
            f.stat("data_complete"),
            0,
            "the primary must not have received a message"
        );
    }
}

#[test]
fn failover_when_the_primary_refuses_connections() {
    primary_failure_moves_everything_to_the_alternate(Primary::ClosedPort);
}

#[test]
fn failover_when_the_primary_greets_with_421() {
    primary_failure_moves_everything_to_the_alternate(Primary::Fault("greet421"));
}

#[test]
fn failover_when_the_primary_rejects_auth() {
    primary_failure_moves_everything_to_the_alternate(Primary::Fault("auth535"));
}

#[test]
fn failover_when_the_primary_answers_mail_with_421() {
    primary_failure_moves_everything_to_the_alternate(Primary::Fault("mail421"));
}

#[test]
fn recipient_550_fails_once_and_451_is_retried() {
    let ws = email_scenario(8).build();
    ws.write(
        "customers.csv",
        &(ws.read("customers.csv") + "Falsch,bad@example.de\nLangsam,slow@example.de\n"),
    );
    let certs = smtp::certs(&ws.path("tls"));
    let server = Server::starttls_auth(
        &ws,
        "primary",
        &certs,
        &["--reject-rcpt", "bad@example.de", "--tempfail-rcpt", "slow@example.de"],
    );
    let alternate = Server::starttls_auth(&ws, "alternate", &certs, &[]);
    ws.channels(&email_channel(
        "",
        &[
            relay("primary", server.port, "starttls", TRUSTED),
            relay("alternate", alternate.port, "starttls", TRUSTED),
        ],
    ));

    let run = ws.run(SEND);
    run.code(3);
    ws.assert_absent(PASSWORD, &[&run]);
    let by: BTreeMap<String, Value> = run
        .deliveries()
        .into_iter()
        .map(|d| (d["recipient"].as_str().unwrap().to_string(), d))
        .collect();
    let bad = &by["bad@example.de"];
    assert_eq!(bad["status"], "failed", "{bad}");
    assert_eq!(bad["attempts"], 1, "permanent: attempted once: {bad}");
    assert_eq!(bad["route"], "primary", "no failover on a per-recipient 5xx: {bad}");
    let err = bad["error"].as_str().unwrap();
    assert!(
        err.contains("550") && err.contains("5.1.1") && err.contains("User unknown"),
        "{err}"
    );
    let slow = &by["slow@example.de"];
    assert_eq!(slow["status"], "sent", "{slow}");
    assert_eq!(slow["attempts"], 2, "451 is retried: {slow}");
    for i in 1..=8 {
        let d = &by[&format!("kunde{i}@example.de")];
        assert_outcome(d, "sent", 1);
    }
    assert_eq!(server.stat("rcpt_rejected"), 1);
    assert_eq!(server.stat("rcpt_tempfail"), 1);
    assert_eq!(server.messages().len() + alternate.messages().len(), 9);
    assert!(
        alternate
            .messages()
            .iter()
            .all(|m| m["rcpt_tos"][0] != "bad@example.de"),
        "a refused recipient is not failed over"
    );
}

/// Quoted CSV cells may hold line breaks; a display name with one used to panic the worker
/// inside lettre (the delivery was left `unknown`). Each break becomes one space.
#[test]
fn names_with_line_breaks_are_sent_with_one_space() {
    let names = [
        ("anna", "\"Anna\nMüller\"", "Anna Müller"),
        ("ben", "\"Ben\r\nKoch\"", "Ben Koch"),
        ("cem", "Cem\u{b}Yılmaz", "Cem Yılmaz"),
        ("dora", "Dora\u{2028}Weiß", "Dora Weiß"),
        ("emil", "\"Emil\r\n\r\n\u{c}Berg \"", "Emil Berg"),
    ];
    let mut csv = String::from("name,email\n");
    for (local, cell, _) in &names {
        csv.push_str(&format!("{cell},{local}@example.de\n"));
    }
    let ws = email_scenario(0).audience(&csv).build();
    let server = Server::trusted_primary(&ws, "", &[]);
    let run = ws.run(SEND);
    run.code(0);
    assert!(!run.stderr().contains("panicked"), "{}", run.describe());
    let sent: BTreeMap<String, String> = server
        .messages()
        .iter()
        .map(|m| {
            let p = &m["parsed"];
            assert_eq!(p["ok"], true, "MIME defects: {}", p["defects"]);
            assert_eq!(p["raw_checks"]["bare_lf"], false);
            assert_eq!(p["raw_checks"]["bare_cr"], false);
            (
                m["rcpt_tos"][0].as_str().unwrap().to_string(),
                header(m, "to").unwrap().to_string(),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = names
        .iter()
        .map(|(local, _, shown)| (format!("{local}@example.de"), format!("{shown} <{local}@example.de>")))
        .collect();
    assert_eq!(sent, expected);
    for d in run.deliveries() {
        assert_outcome(&d, "sent", 1);
    }
}

/// A relay that can never take a message as configured — untrusted certificate, AUTH not
/// offered although `username` is set, 535 for our credentials, 530 "STARTTLS first" — is the
/// only relay: the channel halts at the first such failure instead of backing off for minutes.
/// One delivery `failed` with the reason, the others `pending`, exit 1, nothing sent.
#[test]
fn a_relay_that_can_never_work_halts_the_channel_with_the_reason() {
    struct Case {
        what: &'static str,
        /// smtp_server.py arguments beyond --mode starttls --cert --key.
        server: &'static [&'static str],
        relay: &'static str,
        reason: &'static [&'static str],
    }
    let login = format!("username = \"{USER}\"\n  password_env = \"{PASSWORD_ENV}\"");
    let cases = [
        Case {
            what: "untrusted certificate",
            server: &["--auth-user", USER, "--auth-pass", PASSWORD],
            relay: "tls = \"starttls\"\n  LOGIN",
            reason: &["certificate"],
        },
        Case {
            what: "AUTH not offered",
            server: &[],
            relay: "tls = \"starttls\"\n  ca_file = \"tls/ca.pem\"\n  LOGIN",
            reason: &["No compatible authentication mechanism"],
        },
        Case {
            what: "535",
            server: &["--auth-user", USER, "--auth-pass", "another-password"],
            relay: "tls = \"starttls\"\n  ca_file = \"tls/ca.pem\"\n  LOGIN",
            reason: &["535", "5.7.8"],
        },
        Case {
            what: "530 STARTTLS first",
            server: &[],
            relay: "tls = \"none\"",
            reason: &["530", "STARTTLS"],
        },
    ];
    for case in cases {
        let ws = email_scenario(6).build();
        let server = Server::starttls(&ws, "primary", &smtp::certs(&ws.path("tls")), case.server);
        let relay = format!(
            "  [[channels.email.relays]]\n  name = \"primary\"\n  host = \"127.0.0.1\"\n  port = {}\n  {}\n",
            server.port,
            case.relay.replace("LOGIN", &login)
        );
        ws.channels(&email_channel("", &[relay]));
        let started = std::time::Instant::now();
        let run = ws.run(SEND);
        println!("{}: exit after {:?}", case.what, started.elapsed());
        run.code(1);
        let what = format!("{}:\n{}", case.what, run.describe());
        let ds = run.deliveries();
        let failed: Vec<&Value> = ds.iter().filter(|d| d["status"] == "failed").collect();
        assert_eq!(failed.len(), 1, "{what}");
        assert_eq!(failed[0]["attempts"], 1, "{what}");
        let error = failed[0]["error"].as_str().unwrap();
        for needle in case.reason {
            assert!(error.contains(needle), "{needle:?} not in {error:?}: {what}");
            assert!(run.stderr().contains(needle), "{needle:?} not on stderr: {what}");
        }
        assert!(error.contains("primary"), "names the relay: {error}");
        assert_eq!(ds.iter().filter(|d| d["status"] == "pending").count(), 5, "{what}");
        assert_eq!(server.messages().len(), 0, "{what}");
        ws.assert_absent(PASSWORD, &[&run]);
    }
}

/// Two relays: the channel halts only when both refuse the configuration (the reason names
/// each); while one of them fails only transiently (connection refused), it is retried as
/// before (here with `max_attempts = 1`: failed, not halted, exit 3).
#[test]
fn halts_only_when_every_relay_refuses_the_configuration() {
    let ws = email_scenario(3).build();
    let certs = smtp::certs(&ws.path("tls"));
    let untrusted = Server::starttls_auth(&ws, "untrusted", &certs, &[]);
    let wrong = Server::starttls(
        &ws,
        "wrong",
        &certs,
        &["--auth-user", USER, "--auth-pass", "another-password"],
    );
    ws.channels(&email_channel(
        "",
        &[
            relay("primary", untrusted.port, "starttls", ""),
            relay("alternate", wrong.port, "starttls", TRUSTED),
        ],
    ));
    let run = ws.run(SEND);
    run.code(1);
    let ds = run.deliveries();
    let failed: Vec<&Value> = ds.iter().filter(|d| d["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{}", run.describe());
    let error = failed[0]["error"].as_str().unwrap();
    assert!(
        error.contains("primary: connecting") && error.contains("certificate"),
        "{error}"
    );
    assert!(error.contains("alternate: AUTH: 535"), "{error}");
    assert_eq!(run.json()["totals"]["pending"], 2);

    ws.channels(&email_channel(
        "max_attempts = 1",
        &[
            relay("primary", untrusted.port, "starttls", ""),
            relay("alternate", smtp::closed_port(), "starttls", TRUSTED),
        ],
    ));
    let run = ws.run(&send_with(&["--again"]));
    run.code(3);
    for d in run.deliveries() {
        assert_eq!(d["status"], "failed", "{d}");
        assert!(d["error"].as_str().unwrap().contains("gave up after 1 attempts"), "{d}");
    }
    assert_eq!(untrusted.messages().len() + wrong.messages().len(), 0);
}

#[test]
fn plaintext_to_a_remote_host_is_refused_at_config_time() {
    let ws = email_scenario(1).build();
    ws.channels(
        &email_channel("", &[relay("remote", 25, "none", "")])
            .replace("host = \"127.0.0.1\"", "host = \"smtp.example.org\""),
    );
    let cfg = ws.read("channels.toml");
    let run = ws.run(SEND);
    run.code(2);
    let err = run.stderr();
    let line = cfg.lines().position(|l| l.starts_with("[channels.email]")).unwrap() + 1;
    assert!(
        err.contains(&format!("channels.toml:{line}:")) && err.contains("loopback"),
        "{}",
        run.describe()
    );
}

#[test]
fn untrusted_certificate_fails_without_downgrade_until_ca_file_is_set() {
    let ws = email_scenario(3).build();
    let certs = smtp::certs(&ws.path("tls"));
    let server = Server::starttls_auth(&ws, "primary", &certs, &[]);
    // No ca_file: the test CA is not a trusted root. The channel halts at the first failure.
    let relays = |extra: &str| [relay("primary", server.port, "starttls", extra)];
    ws.channels(&email_channel("", &relays("")));
    let run = ws.run(SEND);
    run.code(1);
    let statuses: BTreeSet<(String, String)> = run
        .deliveries()
        .iter()
        .map(|d| {
            (
                d["status"].as_str().unwrap().into(),
                d["error"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    let failed: Vec<_> = statuses.iter().filter(|(s, _)| s == "failed").collect();
    assert_eq!(failed.len(), 1, "{statuses:?}");
    assert!(failed[0].1.contains("certificate"), "{statuses:?}");
    assert_eq!(run.json()["totals"]["pending"], 2, "{statuses:?}");
    assert_eq!(
        server.messages().len(),
        0,
        "nothing may be sent over an unverified connection"
    );
    assert_eq!(
        server.stat("auth_ok") + server.stat("auth_fail"),
        0,
        "no AUTH in the clear"
    );

    // Trusted now: resume sends the two pending ones, `--retry-failed` the one that halted.
    ws.channels(&email_channel("", &relays(TRUSTED)));
    let run_id = run.json()["run_id"].as_str().unwrap().to_string();
    let run2 = ws.run(&["resume", &run_id, "--yes", "--json", "--retry-failed"]);
    run2.code(0);
    assert_eq!(server.messages().len(), 3);
    ws.assert_absent(PASSWORD, &[&run, &run2]);
}

#[test]
fn dkim_signatures_verify_with_dkimpy() {
    let ws = email_scenario(3).build();
    smtp::run(
        Command::new("openssl")
            .args(["genrsa", "-traditional", "-out"])
            .arg(ws.path("dkim.pem"))
            .arg("2048"),
    );
    assert!(ws.read("dkim.pem").contains("BEGIN RSA PRIVATE KEY"));
    let dkim = r#"dkim = { selector = "s1", domain = "studio.example", private_key_file = "dkim.pem" }"#;
    let server = Server::trusted_primary(&ws, dkim, &[]);
    ws.run(SEND).code(0);
    // A follow-up in the same thread: In-Reply-To and References are signed too.
    ws.write("notices/n2.md", &follow_up());
    ws.run(&["send", "notices/n2.md", "--yes"]).code(0);
    let emls = server.emls();
    assert_eq!(emls.len(), 6);
    assert!(std::fs::read_to_string(&emls[5]).unwrap().contains("In-Reply-To: <"));

    // dkimpy with a resolver that serves the public key of dkim.pem as s1._domainkey TXT.
    let script = r#"
import base64, sys, dkim
from cryptography.hazmat.primitives import serialization
key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), None)
pub = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
txt = b"v=DKIM1; k=rsa; p=" + base64.b64encode(pub)
def dns(name, timeout=5):
    return txt if name.rstrip(b".") == b"s1._domainkey.studio.example" else None
for path in sys.argv[2:]:
    data = open(path, "rb").read()
    if not dkim.verify(data, dnsfunc=dns):
        sys.exit(f"FAIL {path}")
    tampered = data.replace(b"Subject: ", b"Subject: X", 1)
    if dkim.verify(tampered, dnsfunc=dns):
        sys.exit(f"tampered message still verifies: {path}")
    print("OK", path)
"#;
    let mut cmd = Command::new(smtp::python());
    cmd.args(["-c", script]).arg(ws.path("dkim.pem")).args(&emls);
    let out = smtp::run(&mut cmd);
    assert_eq!(out.lines().filter(|l| l.starts_with("OK ")).count(), 6, "{out}");

    // The signature covers the headers that matter, the unsubscribe pair included.
    let raw = std::fs::read_to_string(&emls[0])
        .unwrap()
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ");
    let sig = raw.lines().find(|l| l.starts_with("DKIM-Signature:")).expect("signed");
    let h = sig
        .split(';')
        .map(str::trim)
        .find_map(|t| t.strip_prefix("h="))
        .unwrap()
        .replace(' ', "");
    let h: BTreeSet<&str> = h.split(':').collect();
    for name in [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ] {
        assert!(h.contains(name), "h= lacks {name}: {sig}");
    }
    assert!(
        sig.contains("c=relaxed/relaxed") && sig.contains("d=studio.example") && sig.contains("s=s1"),
        "{sig}"
    );
}

#[test]
fn dkim_key_forms_and_errors() {
    use announce::channel::email::DkimAlgorithm;
    use announce::channel::email::dkim::signing_key;
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f);
    // PKCS#8, what `openssl genpkey` (and OpenSSL 3's genrsa) write: converted for lettre.
    smtp::run(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(p("rsa8.pem")),
    );
    assert!(
        std::fs::read_to_string(p("rsa8.pem"))
            .unwrap()
            .contains("BEGIN PRIVATE KEY")
    );
    signing_key(&p("rsa8.pem"), DkimAlgorithm::Rsa).expect("PKCS#8 RSA key");
    smtp::run(
        Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(p("ed.pem")),
    );
    signing_key(&p("ed.pem"), DkimAlgorithm::Ed25519).expect("PKCS#8 Ed25519 key");
    // An RSA key where Ed25519 is configured and vice versa, and a missing file.
    assert!(signing_key(&p("rsa8.pem"), DkimAlgorithm::Ed25519).is_err());
    assert!(signing_key(&p("ed.pem"), DkimAlgorithm::Rsa).is_err());
    let e = signing_key(&p("missing.pem"), DkimAlgorithm::Rsa).err().unwrap();
    assert!(e.contains("missing.pem"), "{e}");

    // Through the binary: a key that cannot be read is a config error (exit 2) with the
    // channel's location, before anything is sent.
    let ws = email_scenario(1).build();
    ws.write(
        "dkim.pem",
        "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
    );
    let dkim = r#"dkim = { selector = "s1", domain = "studio.example", private_key_file = "dkim.pem" }"#;
    ws.channels(&email_channel(
        dkim,
        &[relay("primary", smtp::closed_port(), "starttls", "")],
    ));
    let run = ws.run(SEND);
    run.code(2);
    assert!(
        run.stderr().contains("channels.toml:") && run.stderr().contains("BEGIN RSA PRIVATE KEY"),
        "{}",
        run.describe()
    );
}

#[test]
fn follow_up_in_the_same_thread_replies_to_the_first_message() {
    let ws = email_scenario(3).build();
    let server = Server::trusted_primary(&ws, "", &[]);
    ws.run(SEND).code(0);
    ws.write("notices/n2.md", &follow_up());
    let run2 = ws.run(&["send", "notices/n2.md", "--yes", "--json"]);
    run2.code(0);

    let messages = server.messages();
    assert_eq!(messages.len(), 6);
    let mut by_rcpt: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for m in &messages {
        by_rcpt
            .entry(m["rcpt_tos"][0].as_str().unwrap().to_string())
            .or_default()
            .push(m);
    }
    assert_eq!(by_rcpt.len(), 3);
    for (rcpt, msgs) in by_rcpt {
        let (first, second) = if header(msgs[0], "subject") == Some(TITLE) {
            (msgs[0], msgs[1])
        } else {
            (msgs[1], msgs[0])
        };
        let root = header(first, "message-id").unwrap();
        assert_eq!(header(first, "in-reply-to"), None, "{rcpt}");
        assert_eq!(header(second, "in-reply-to"), Some(root), "{rcpt}");
        assert_eq!(header(second, "references"), Some(root), "{rcpt}");
        assert_ne!(header(second, "message-id"), Some(root));
    }
}

#[test]
fn check_reports_each_relay() {
    let ws = email_scenario(1).build();
    let certs = smtp::certs(&ws.path("tls"));
    let server = Server::starttls_auth(&ws, "alternate", &certs, &[]);
    let alternate = relay("alternate", server.port, "starttls", TRUSTED);
    ws.channels(&email_channel(
        "",
        &[
            relay("primary", smtp::closed_port(), "starttls", TRUSTED),
            alternate.clone(),
        ],
    ));
    let run = ws.run(&["check"]);
    run.code(1);
    let out = run.stdout();
    let row = |name: &str| {
        out.lines()
            .find(|l| l.contains(&format!("relay {name}")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{out}"))
            .to_string()
    };
    assert!(
        row("primary").contains("FAILED") && row("primary").contains("refused"),
        "{out}"
    );
    assert!(
        row("alternate").contains("ok") && row("alternate").contains("authenticated as alice"),
        "{out}"
    );

    // Both working (the primary is the same server): exit 0, and nothing was sent.
    let primary = relay("primary", server.port, "starttls", TRUSTED);
    ws.channels(&email_channel("", &[primary, alternate]));
    let run2 = ws.run(&["check"]);
    run2.code(0);
    assert_eq!(server.messages().len(), 0);
    assert_eq!(
        server.stat("auth_ok"),
        3,
        "one AUTH per working probe: {}",
        server.stats()
    );
    assert!(!run.stdout().contains(PASSWORD) && !run2.stdout().contains(PASSWORD) && !run2.stderr().contains(PASSWORD));
}

#[test]
fn missing_password_variable_is_a_config_error() {
    let ws = email_scenario(1).no_env().build();
    ws.channels(&email_channel(
        "",
        &[relay("primary", smtp::closed_port(), "starttls", "")],
    ));
    let run = ws.run(SEND);
    run.code(2);
    assert!(
        run.stderr().contains(PASSWORD_ENV) && run.stderr().contains("channels.toml:"),
        "{}",
        run.describe()
    );
}

/// The connection drops after the final "." (no reply): the relay may have the message, so
/// the delivery is `unknown`, attempted once, and NOT offered to the alternate.
#[test]
fn connection_lost_after_data_is_unknown_and_not_failed_over() {
    let ws = email_scenario(3).build();
    let certs = smtp::certs(&ws.path("tls"));
    let fault = Server::fault(&ws.path("box-primary"), "drop_after_data", &[]);
    let alternate = Server::starttls_auth(&ws, "alternate", &certs, &[]);
    ws.channels(
        &email_channel(
            "concurrency = 1",
            &[
                relay("primary", fault.port, "none", ""),
                relay("alternate", alternate.port, "starttls", TRUSTED),
            ],
        )
        .replace("concurrency = 4\n", ""),
    );
    let run = ws.run(SEND);
    assert_ne!(run.output.status.code(), Some(0), "{}", run.describe());
    let ds = run.deliveries();
    let unknown: Vec<&Value> = ds.iter().filter(|d| d["status"] == "unknown").collect();
    // The breaker opens after two relay failures; the third message goes to the alternate.
    assert_eq!(unknown.len(), 2, "{ds:?}");
    for d in &unknown {
        assert_eq!(
            (d["attempts"].as_u64(), d["route"].as_str()),
            (Some(1), Some("primary")),
            "{d}"
        );
        assert!(d["error"].as_str().unwrap().contains("resend-unknown"), "{d}");
    }
    assert_eq!(fault.stat("data_complete"), 2);
    let via_alternate: BTreeSet<String> = alternate.recipients().into_iter().collect();
    assert_eq!(via_alternate.len(), 1);
    for d in &unknown {
        assert!(
            !via_alternate.contains(d["recipient"].as_str().unwrap()),
            "an ambiguous delivery was sent twice"
        );
    }
}

/// No reply after the final "." within the relay's timeout: also `unknown`.
#[test]
fn no_reply_after_data_is_unknown() {
    let ws = email_scenario(1).build();
    let fault = Server::fault(&ws.path("box-primary"), "stall_after_data", &[]);
    ws.channels(&email_channel(
        "",
        &[relay("primary", fault.port, "none", r#"timeout = "1s""#)],
    ));
    let run = ws.run(SEND);
    let ds = run.deliveries();
    assert_eq!(ds.len(), 1);
    assert_eq!(
        (ds[0]["status"].as_str(), ds[0]["attempts"].as_u64()),
        (Some("unknown"), Some(1)),
        "{}",
        run.describe()
    );
    assert_eq!(fault.stat("data_complete"), 1);
}
