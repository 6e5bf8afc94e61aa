//! The secrets audit: a config with every channel type enabled, every `*_env` set to a
//! distinctive value, every provider a local fake, and most of them failing with error
//! messages that echo the request back (the Authorization header, the form body with the API
//! secret, the URL path with Telegram's bot token). Then send / resume / preview / check /
//! report (every format, --refresh) / runs with `-vv`, and search everything the tool wrote or
//! printed for every secret — as written, URL-encoded, JSON-escaped and base64-encoded (as in
//! `Authorization: Basic`). Also: no secret is ever put into a URL (query string), except the
//! Telegram bot token in the path, as that API requires.
//!
//! A type without a table of its own here (a new channel; Mastodon) is audited from its section
//! in channels.example.toml: its https URLs pointed at an echoing fake, its `*_env` variables
//! set to distinctive values.

use crate::support;
use crate::support::graph_fake;
use crate::support::smtp;

use std::net::TcpListener;

use base64::Engine;
use graph_fake::{Endpoint, FakeError, GraphFake};
use serde_json::json;
use support::scenario::{NOTICE, SEND};
use support::{Recorder, Run, Scenario, Workspace};
use wiremock::matchers::{any, method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const PRIMARY_PW: &str = "Sec-Email-Primary-q7Zr2";
const BACKUP_PW: &str = "Sec-Email-Backup-w9Kd4";
const TWILIO_TOKEN: &str = "Sec-Twilio-Token-m3Xp8";
const VONAGE_SECRET: &str = "Sec-Vonage-Secret-b5Ty1";
const SEVEN_KEY: &str = "Sec-Seven-Key-h2Lq6";
const GENERIC_TOKEN: &str = "Sec-Generic/Token+n8Vc3";
const WEBHOOK_PATH_TOKEN: &str = "Sec-Webhook-Path-k4Rj7";
const TELEGRAM_TOKEN: &str = "778899:Sec-Telegram-Token-z6Fg0";
const MASTODON_TOKEN: &str = "Sec-Mastodon-Token-p1Wn5";
const TWILIO_SID: &str = "AC00000000000000000000000000000042";
/// What a redacted secret looks like (`announce::secrets::REDACTED`).
const REDACTED_MARK: &str = announce::secrets::REDACTED;

fn webhook_signing_secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(b"Sec-Webhook-Signing-Key-0042")
    )
}

/// Everything a request carried (URL, headers, body), as a provider that quotes it back would.
fn request_text(r: &Request) -> String {
    let mut s = format!("{} {}", r.method, r.url);
    for (k, v) in r.headers.iter() {
        s.push_str(&format!(" | {k}: {}", v.to_str().unwrap_or("?")));
    }
    s.push_str(" | body: ");
    s.push_str(&String::from_utf8_lossy(&r.body));
    s
}

/// Counts echoes, so that successive answers vary their padding and encoding.
static ECHOES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The request quoted back the ways providers do — raw, URL-encoded, JSON-escaped PHP-style
/// (`\/`, `\u00xx`) and base64 — after 150 to 250 characters of padding, so that the secrets
/// straddle every point where a message could be cut.
fn echo(r: &Request) -> String {
    use std::fmt::Write;
    let n = ECHOES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pad = 150 + (n * 37) % 101;
    let raw = request_text(r);
    let url_encoded: String = raw.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    });
    let php = serde_json::to_string(&raw).unwrap().replace('/', "\\/");
    let hex: String = raw.chars().fold(String::new(), |mut out, c| {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            let _ = write!(out, "\\u{:04x}", c as u32 & 0xffff);
        }
        out
    });
    let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
    let quoted = match n % 5 {
        0 => format!("{raw} || {url_encoded}"),
        1 => format!("{php} || {raw}"),
        2 => format!("{b64} || {php}"),
        3 => format!("{hex} || {b64}"),
        _ => format!("{url_encoded} || {hex}"),
    };
    format!("{} {quoted}", "p".repeat(pad))
}

/// Every form a secret could take in text: as is, URL/form-encoded, JSON-escaped, and the
/// base64 characters that depend on it alone at each of the three byte alignments.
fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_string()];
    let pct: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    out.push(pct.clone());
    out.push(pct.to_lowercase());
    let json = serde_json::to_string(secret).unwrap().trim_matches('"').to_string();
    out.push(json.replace('/', "\\/"));
    out.push(json);
    out.push(
        secret
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_string()
                } else {
                    format!("\\u{:04x}", c as u32)
                }
            })
            .collect(),
    );
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ] {
        for shift in 0..3 {
            let mut b = vec![b'x'; shift];
            b.extend_from_slice(secret.as_bytes());
            let enc = engine.encode(&b);
            let (from, to) = (if shift == 0 { 0 } else { 4 }, (b.len() / 3) * 4);
            out.push(enc[from..to].to_string());
        }
    }
    out
}

/// Each leak: which secret, in which form, and the text around its first occurrence.
fn find_leaks(hay: &[u8], secrets: &[(&str, String)]) -> Vec<String> {
    let mut leaks = Vec::new();
    for (name, value) in secrets {
        for f in forms(value) {
            let mut from = 0;
            while let Some(i) = hay[from..].windows(f.len()).position(|w| w == f.as_bytes()) {
                let i = from + i;
                let around = String::from_utf8_lossy(&hay[i.saturating_sub(150)..(i + f.len() + 60).min(hay.len())]);
                leaks.push(format!("{name} as {f:?} in …{around}…"));
                from = i + f.len();
            }
        }
    }
    leaks
}

/// A port that accepts connections and drops them.
fn resetting_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            drop(s);
        }
    });
    port
}

/// The email relays, the four SMS gateways, Twilio calls, Facebook, Instagram and WhatsApp (plus
/// outbox and status page).
const SMS_GRAPH: &[&str] = &[
    "sms-twilio",
    "voice-twilio",
    "sms-vonage",
    "sms-seven",
    "sms-generic",
    "facebook",
    "instagram",
    "whatsapp",
];
/// Webhook, Telegram (one reachable, one resetting connections), and Mastodon with every other
/// type whose table comes from channels.example.toml (`derived_sections`).
const WEBHOOK_TELEGRAM_MASTODON: &[&str] = &["team-chat", "telegram", "telegram-down", "mastodon"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_leaks_from_email_sms_or_graph_even_when_providers_echo_requests() {
    audit(SMS_GRAPH).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_leaks_from_webhook_telegram_or_mastodon_even_when_providers_echo_requests() {
    audit(WEBHOOK_TELEGRAM_MASTODON).await;
}

/// Run everything against a config where `email`, `outbox`, `statuspage` and the `channels`
/// given are enabled (the others are configured but disabled; their secrets are set too).
async fn audit(named: &[&str]) {
    let derived = derived_sections();
    let mut channels = named.to_vec();
    if named == WEBHOOK_TELEGRAM_MASTODON {
        for (name, _) in &derived {
            if !channels.contains(&name.as_str()) {
                channels.push(name.as_str());
            }
        }
    }
    let channels = &channels[..];
    let on = |c: &str| channels.contains(&c);
    let servers = tempfile::tempdir().unwrap();
    // Email: the primary rejects AUTH with a 535 that quotes AUTH PLAIN back (base64 and
    // decoded), the alternate takes it.
    let primary = smtp::Server::fault(&servers.path().join("primary"), "auth535echo", &[]);
    let backup = smtp::Server::smtp(
        &servers.path().join("backup"),
        &["--mode", "plain", "--auth-user", "studio", "--auth-pass", BACKUP_PW],
    );

    let http = MockServer::start().await;
    // Twilio: the first message is accepted, the second refused with the request quoted back;
    // status lookups (report --refresh) and the account check answer with the header quoted.
    let twilio = Recorder::answering(|n, r| {
        if r.method.as_str() == "POST" && n == 1 {
            return ResponseTemplate::new(201)
                .set_body_json(json!({"sid": "SM0000000000000000000000000000beef", "status": "queued"}));
        }
        ResponseTemplate::new(400)
            .set_body_json(json!({"code": 21211, "message": format!("Invalid request: {}", echo(r)), "status": 400}))
    });
    Mock::given(path_regex(format!("^/2010-04-01/Accounts/{TWILIO_SID}")))
        .respond_with(twilio.clone())
        .mount(&http)
        .await;
    // Vonage: HTTP 200 with a per-part error whose text quotes the form (api_secret included).
    let vonage = Recorder::answering(|_, r| {
        if r.url.path() == "/sms/json" {
            ResponseTemplate::new(200).set_body_json(json!({"message-count": "1", "messages": [
                {"status": "29", "error-text": format!("Non-whitelisted destination for {}", echo(r))}]}))
        } else {
            ResponseTemplate::new(401).set_body_string(format!("unauthorized: {}", echo(r)))
        }
    });
    vonage
        .mount_on(&http, path_regex("^/(sms/json|account/get-balance)"))
        .await;
    // seven.io: a 500 that quotes the X-Api-Key header.
    let seven =
        Recorder::answering(|_, r| ResponseTemplate::new(500).set_body_string(format!("internal error: {}", echo(r))));
    seven.mount_on(&http, path_regex("^/api/(sms|balance)")).await;
    // A generic gateway that answers 400 with every header.
    let generic = Recorder::answering(|_, r| ResponseTemplate::new(400).set_body_json(json!({"error": echo(r)})));
    generic.mount_on(&http, path("/generic/send")).await;
    // The webhook URL holds a token (like Slack's); the receiver answers 500 with the URL.
    let hook =
        Recorder::answering(|_, r| ResponseTemplate::new(500).set_body_string(format!("cannot handle {}", echo(r))));
    hook.mount_on(&http, path_regex("^/hooks/")).await;
    // Telegram: the token is in the URL path by API design; the error quotes the path.
    let telegram = Recorder::answering(|_, r| {
        ResponseTemplate::new(400).set_body_json(json!({"ok": false, "error_code": 400,
            "description": format!("Bad Request: chat not found ({})", echo(r))}))
    });
    telegram.mount_on(&http, path_regex("^/bot[^/]+/")).await;
    // Mastodon: 422 quoting the Authorization header; the credentials check too.
    let mastodon = Recorder::answering(|_, r| {
        ResponseTemplate::new(422).set_body_json(json!({"error": format!("Validation failed: {}", echo(r))}))
    });
    mastodon.mount_on(&http, path_regex("^/api/v1/")).await;
    // Anything else (a type whose table comes from channels.example.toml): a 500 that quotes
    // the request.
    let other =
        Recorder::answering(|_, r| ResponseTemplate::new(500).set_body_string(format!("no such fake: {}", echo(r))));
    other.mount_on(&http, any()).await;

    // Facebook and Instagram: the Graph fake, with errors that quote the token and app secret.
    let graph = GraphFake::start().await;
    let quoted = format!(
        "Invalid parameter (access_token={} appsecret={} ig={} wa={})",
        graph_fake::FB_TOKEN,
        graph_fake::FB_SECRET,
        graph_fake::IG_TOKEN,
        graph_fake::WA_TOKEN
    );
    // A 200 that echoes the request instead of the post id (and Instagram's publishing-limit
    // answer doing the same), then errors that quote the secrets.
    let graph_echo = |r: &Request| {
        ResponseTemplate::new(200).set_body_json(json!({"echo": echo(r), "authorization": request_text(r)}))
    };
    graph.reply(Endpoint::Photos, 1, graph_echo);
    graph.reply(Endpoint::PublishingLimit, 1, graph_echo);
    graph.fail(Endpoint::Photos, 10, FakeError::new(100, None, &quoted));
    graph.fail(Endpoint::Media, 10, FakeError::new(100, None, &quoted));
    graph.fail(Endpoint::GetPage, 10, FakeError::new(100, None, &quoted));
    graph.reply(Endpoint::Messages, 1, graph_echo);
    graph.fail(Endpoint::Messages, 10, FakeError::new(100, None, &quoted));
    graph.fail(Endpoint::GetPhoneNumber, 10, FakeError::new(100, None, &quoted));

    let ports = Ports {
        primary: primary.port,
        backup: backup.port,
        http: http.uri(),
        graph: graph.uri(),
        tg_reset: resetting_port(),
    };
    let uri = ports.http.clone();
    let w = Scenario::new()
        .top("default_region = \"DE\"")
        .org("name = \"Studio\"")
        .audience(
            "name,email,phone\nAnna Müller,anna@example.de,0151 23456781\nBen Schröder,ben@example.de,0151 23456782\n",
        )
        .channel(&audit_channels(channels, &ports))
        .notice(
            "summary = \"Website offline, Termine finden statt.\"\nimage = \"https://cdn.example.de/notice.jpg\"\n\
             thread = \"outage\"\nseverity = \"major\"",
            "Alle Termine finden statt.",
        )
        .build();
    // The audit's config covers every registered type (checked alone, without the fakes, by
    // every_channel_type_has_a_secrets_case).
    assert_covers_every_channel_type(&w.read("channels.toml"));

    let secrets: Vec<(&str, String)> = vec![
        ("PRIMARY_SMTP_PASSWORD", PRIMARY_PW.into()),
        ("BACKUP_SMTP_PASSWORD", BACKUP_PW.into()),
        ("TWILIO_AUTH_TOKEN", TWILIO_TOKEN.into()),
        ("VONAGE_API_SECRET", VONAGE_SECRET.into()),
        ("SEVEN_API_KEY", SEVEN_KEY.into()),
        ("GENERIC_SMS_TOKEN", GENERIC_TOKEN.into()),
        ("FB_PAGE_TOKEN", graph_fake::FB_TOKEN.into()),
        ("FB_APP_SECRET", graph_fake::FB_SECRET.into()),
        ("IG_ACCESS_TOKEN", graph_fake::IG_TOKEN.into()),
        ("WHATSAPP_TOKEN", graph_fake::WA_TOKEN.into()),
        ("TEAM_CHAT_URL", format!("{uri}/hooks/{WEBHOOK_PATH_TOKEN}")),
        ("WEBHOOK_SECRET", webhook_signing_secret()),
        ("TELEGRAM_BOT_TOKEN", TELEGRAM_TOKEN.into()),
        ("MASTODON_TOKEN", MASTODON_TOKEN.into()),
    ];
    // A derived table's `*_env` variables: a distinctive value each, unless set above.
    let derived_vars: Vec<String> = derived.iter().flat_map(|(_, t)| env_keys(t)).collect();
    let mut secrets = secrets;
    for var in &derived_vars {
        if !secrets.iter().any(|(k, _)| k == var) {
            secrets.push((var.as_str(), format!("Sec-{var}-Derived-4Qx9")));
        }
    }
    let env: Vec<(String, String)> = secrets.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    // What must not leak: the values, and the secret part of the webhook URL.
    let mut watched = secrets.clone();
    watched.push(("TEAM_CHAT_URL (path token)", WEBHOOK_PATH_TOKEN.into()));

    let mut transcript = Vec::new();
    let mut record = |r: &Run| {
        transcript.extend_from_slice(&r.output.stdout);
        transcript.extend_from_slice(&r.output.stderr);
    };

    let r = w.run_async(&["-vv", "preview", NOTICE], &env).await;
    r.code(0);
    record(&r);
    let r = w.run_async(&["-vv", "check"], &env).await;
    record(&r);
    let send = w.run_async(&["-vv", "send", NOTICE, "--yes", "--json"], &env).await;
    record(&send);
    let report = send.json();
    let run_id = report["run_id"].as_str().unwrap().to_string();
    // The fakes really were asked, and really failed with their echo.
    let failed: Vec<String> = report["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "failed" || d["status"] == "unknown")
        .map(|d| d["channel"].as_str().unwrap().to_string())
        .collect();
    for ch in channels.iter().filter(|c| **c != "telegram-down") {
        assert!(
            failed.iter().any(|c| c == ch),
            "{ch} did not fail as scripted:\n{}",
            send.describe()
        );
    }
    assert!(
        report["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["channel"] == "email" && d["status"] == "sent" && d["route"] == "alternate"),
        "{}",
        send.describe()
    );
    let r = w
        .run_async(
            &["-vv", "resume", &run_id, "--yes", "--retry-failed", "--resend-unknown"],
            &env,
        )
        .await;
    record(&r);
    // Every log level, and RUST_LOG=trace (which lets the dependencies log too).
    for level in [&["-q"][..], &[][..], &["-v"][..]] {
        let mut args = level.to_vec();
        args.extend(["send", NOTICE, "--yes", "--again", "--json"]);
        let r = w.run_async(&args, &env).await;
        record(&r);
        let mut args = level.to_vec();
        args.push("check");
        record(&w.run_async(&args, &env).await);
    }
    let mut trace_env = env.clone();
    trace_env.push(("RUST_LOG".into(), "trace".into()));
    let r = w
        .run_async(&["send", NOTICE, "--yes", "--again", "--json"], &trace_env)
        .await;
    assert!(
        r.stderr().contains("TRACE"),
        "RUST_LOG=trace logged nothing:\n{}",
        r.describe()
    );
    record(&r);
    record(&w.run_async(&["check"], &trace_env).await);
    for args in [
        vec!["-vv", "report", "--format", "table"],
        vec!["-vv", "report", "--format", "json"],
        vec!["-vv", "report", "--format", "csv"],
        vec!["-vv", "report", "--format", "html", "--output", "report.html"],
        vec!["-vv", "report", "--format", "csv", "--output", "report.csv"],
        vec!["-vv", "report", "--refresh"],
        vec!["-vv", "runs"],
    ] {
        let r = w.run_async(&args, &env).await;
        r.code(0);
        record(&r);
    }

    assert_eq!(on("sms-twilio"), twilio.count() > 0);
    assert_eq!(on("telegram"), telegram.count() > 0);
    assert_eq!(on("facebook"), !graph.requests().is_empty());

    // Everything printed, and every file under the folder: journal (+ WAL), outbox, reports,
    // status page.
    let mut hay = transcript.clone();
    let files = w.files("");
    for f in &files {
        hay.extend(format!("\n=== {} ===\n", f.display()).as_bytes());
        hay.extend(std::fs::read(f).unwrap());
    }
    assert!(files.iter().any(|f| f.ends_with("journal.sqlite3")), "{files:?}");
    assert!(
        files.iter().any(|f| f.starts_with(w.path("public/status"))),
        "{files:?}"
    );
    assert!(files.iter().any(|f| f.starts_with(w.path("outbox"))), "{files:?}");
    let text = String::from_utf8_lossy(&hay);
    // The haystack is real: the providers' (echoing) error texts made it into the output.
    let markers: &[&str] = if on("mastodon") {
        &["Validation failed", "cannot handle", "chat not found"]
    } else {
        &[
            "Invalid request",
            "Non-whitelisted",
            "internal error",
            REDACTED_MARK,
            "Authentication failed for AUTH PLAIN",
            "unexpected answer from Graph",
            "TRACE",
        ]
    };
    for m in ["anna@example.de"].iter().chain(markers) {
        assert!(text.contains(m), "no {m:?} in the output: the test proves nothing");
    }
    let mut leaks = find_leaks(&hay, &watched);
    // Not even the start of one: a secret cut off at a truncation point leaves its prefix.
    for (name, value) in &watched {
        let distinctive = match *name {
            // The scheme, host and port of the URL are public; its path token is watched.
            "TEAM_CHAT_URL" => continue,
            // "whsec_" is the public format marker of the signing secret.
            "WEBHOOK_SECRET" => value.trim_start_matches("whsec_"),
            // A bot token is "<bot id>:<secret>"; the id is the bot's public user id, and six
            // digits turn up by chance in trace timestamps (".778899Z").
            "TELEGRAM_BOT_TOKEN" => value.split_once(':').map_or(value.as_str(), |(_, s)| s),
            _ => value.as_str(),
        };
        let prefix: String = distinctive.chars().take(6).collect();
        if let Some(i) = hay.windows(prefix.len()).position(|w| w == prefix.as_bytes()) {
            let around = String::from_utf8_lossy(&hay[i.saturating_sub(150)..(i + 60).min(hay.len())]);
            leaks.push(format!("{name}: its prefix {prefix:?} in …{around}…"));
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n\n"));

    // Tokens travel in headers, never in URLs (query strings end up in logs and errors); the
    // Telegram bot token is in the path because that API has no other way.
    let mut urls: Vec<String> = Vec::new();
    for f in [&twilio, &vonage, &seven, &generic, &hook, &mastodon, &other] {
        urls.extend(f.received().iter().map(|r| r.url.to_string()));
    }
    urls.extend(graph.requests().iter().map(|r| r.url.clone()));
    let mut in_urls = find_leaks(urls.join("\n").as_bytes(), &secrets);
    in_urls.retain(|l| !l.starts_with("TEAM_CHAT_URL"));
    assert!(in_urls.is_empty(), "secrets in request URLs: {in_urls:?}");
    for r in telegram.received().iter() {
        assert!(r.url.query().is_none_or(|q| !q.contains("Sec-")), "{}", r.url);
    }
}

/// Journal (with its WAL and lock files), the state folder's suppression list, the outbox and
/// reports written with --output (also into folders that do not exist yet) are 0600 in 0700
/// folders, even when the process runs with umask 000.
#[tokio::test(flavor = "multi_thread")]
async fn files_are_private_even_with_a_permissive_umask() {
    use std::os::unix::fs::PermissionsExt;
    // A Twilio fake that answers 21610 (the number replied STOP) for one recipient: the number
    // goes into <state>/suppressed.txt.
    let http = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages.json")))
        .respond_with(|r: &Request| {
            if String::from_utf8_lossy(&r.body).contains("4915123456781") {
                ResponseTemplate::new(400).set_body_json(
                    json!({"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}),
                )
            } else {
                ResponseTemplate::new(201)
                    .set_body_json(json!({"sid": "SM0000000000000000000000000000cafe", "status": "queued"}))
            }
        })
        .mount(&http)
        .await;
    let w = Scenario::new()
        .top("default_region = \"DE\"")
        .org("name = \"Studio\"")
        .audience("name,email,phone\nAnna,anna@example.de,0151 23456781\nBen,ben@example.de,0151 23456782\n")
        .channel(&format!(
            "[channels.outbox]\ntype = \"outbox\"\ndir = \"outbox\"\n\
             [channels.sms]\ntype = \"sms\"\nprovider = \"twilio\"\nfrom = \"+4930123456\"\naccount_sid = \"{TWILIO_SID}\"\n\
             auth_token_env = \"TWILIO_AUTH_TOKEN\"\nbase_url = \"{}\"\n",
            http.uri()
        ))
        .notice("summary = \"Website offline.\"", "Text.")
        .build();
    let env = [("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)];
    let w2 = w.clone();
    tokio::task::spawn_blocking(move || {
        let w = w2;
        w.run_umask_000(&["send", NOTICE, "--yes"], &env).code(3);
        for (fmt, file) in [
            ("html", "reports/2026/april/r.html"),
            ("csv", "r.csv"),
            ("json", "reports/r.json"),
        ] {
            w.run_umask_000(&["report", "--format", fmt, "--output", file], &env)
                .code(0);
        }
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let mut checked = Vec::new();
        for dir in [".announce", "outbox", "reports"] {
            assert_eq!(mode(&w.path(dir)), 0o700, "{dir}");
            for f in w.files(dir) {
                assert_eq!(mode(&f), 0o600, "{}", f.display());
                let mut d = f.parent().unwrap().to_path_buf();
                while d != w.root() {
                    assert_eq!(mode(&d), 0o700, "{}", d.display());
                    d = d.parent().unwrap().to_path_buf();
                }
                checked.push(f.strip_prefix(w.root()).unwrap().display().to_string());
            }
        }
        assert_eq!(mode(&w.path("r.csv")), 0o600);
        for expected in [
            ".announce/journal.sqlite3",
            ".announce/lock",
            ".announce/suppressed.txt",
        ] {
            assert!(
                checked.iter().any(|c| c == expected),
                "{expected} not among {checked:?}"
            );
        }
        assert!(w.read(".announce/suppressed.txt").contains("+4915123456781"));
        assert!(
            checked.iter().filter(|c| c.starts_with("outbox/")).count() == 2,
            "{checked:?}"
        );
    })
    .await
    .unwrap();
}

/// Telegram's bot token is in the URL path (`/bot<token>/sendMessage`) by API design. When the
/// request fails below HTTP — refused, reset, timed out — the HTTP client's error names the URL;
/// none of that may reach the output, the journal or the report.
#[tokio::test(flavor = "multi_thread")]
async fn telegram_token_in_the_url_path_never_reaches_an_error() {
    let slow = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(5)))
        .mount(&slow)
        .await;
    let refused = smtp::closed_port();
    let reset = resetting_port();
    let mut cfg = String::new();
    for (name, base) in [
        ("refused", format!("http://127.0.0.1:{refused}")),
        ("reset", format!("http://127.0.0.1:{reset}")),
        ("slow", slow.uri()),
    ] {
        cfg.push_str(&format!(
            "[channels.tg-{name}]\ntype = \"telegram\"\nbot_token_env = \"TELEGRAM_BOT_TOKEN\"\n\
             chat_ids = [\"@studio_news\"]\nbase_url = \"{base}\"\ntimeout = \"1s\"\nmax_attempts = 2\n\
             retry_base = \"20ms\"\nretry_max = \"50ms\"\n"
        ));
    }
    let w = Scenario::new()
        .org("name = \"Studio\"")
        .channel(&cfg)
        .notice("", "Text.")
        .build();
    let env = vec![("TELEGRAM_BOT_TOKEN".to_string(), TELEGRAM_TOKEN.to_string())];
    let mut hay = Vec::new();
    let send = w.run_async(&["-vv", "send", NOTICE, "--yes", "--json"], &env).await;
    let report = send.json();
    let statuses: Vec<(String, String)> = report["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["channel"].as_str().unwrap().into(),
                d["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(statuses.len(), 3);
    assert!(statuses.iter().all(|(_, s)| s != "sent"), "{statuses:?}");
    for d in report["deliveries"].as_array().unwrap() {
        println!("{} {}: {}", d["channel"], d["status"], d["error"]);
        assert!(d["error"].as_str().is_some_and(|e| !e.is_empty()), "{d}");
    }
    let runs = [
        send,
        w.run_async(&["-vv", "check"], &env).await,
        w.run_async(&["-vv", "report", "--format", "csv"], &env).await,
    ];
    hay.extend(haystack(&runs, &w, ".announce"));
    let text = String::from_utf8_lossy(&hay);
    assert!(
        text.contains("tg-reset") && text.contains("tg-slow"),
        "the haystack is real"
    );
    let leaks = find_leaks(&hay, &[("TELEGRAM_BOT_TOKEN", TELEGRAM_TOKEN.to_string())]);
    assert!(leaks.is_empty(), "{}", leaks.join("\n\n"));
}

/// The leaks found before, each reproduced: a webhook receiver echoing its URL PHP-style
/// (`\/hooks\/<token>`), and Mastodon / Graph error bodies with a token straddling the point
/// where the quoted answer is cut (formerly cut first, then redacted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoes_straddling_the_cut_or_escaped_php_style_never_leak() {
    let server = MockServer::start().await;
    // The padding comes from the path ("/p195/..."), so each channel gets its own offset.
    let pad_of = |r: &Request| -> usize {
        r.url
            .path()
            .trim_start_matches("/p")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let answer = move |_: usize, r: &Request| {
        let pad = "x".repeat(pad_of(r));
        let auth = r.headers.get("authorization").map(|v| v.to_str().unwrap().to_string());
        if r.url.path().contains("/hooks/") {
            // PHP's json_encode: "/" becomes "\/".
            let url = serde_json::to_string(&format!("{pad}{}", r.url))
                .unwrap()
                .replace('/', "\\/");
            ResponseTemplate::new(500).set_body_raw(format!("{{\"url\":{url}}}"), "application/json")
        } else if r.url.path().contains("/api/v1/") {
            let token = auth.unwrap_or_default().trim_start_matches("Bearer ").to_string();
            ResponseTemplate::new(422).set_body_json(json!({"error": format!("{pad}{token}")}))
        } else {
            // Graph: a proxy's answer without the error envelope.
            let token = auth.unwrap_or_default().trim_start_matches("Bearer ").to_string();
            ResponseTemplate::new(400).set_body_string(format!("{pad}{token} rest of the page"))
        }
    };
    Mock::given(any())
        .respond_with(Recorder::answering(answer))
        .mount(&server)
        .await;
    let uri = server.uri();
    let mut cfg = String::new();
    let mut env: Vec<(String, String)> = vec![
        ("MASTODON_TOKEN".into(), MASTODON_TOKEN.into()),
        ("FB_PAGE_TOKEN".into(), graph_fake::FB_TOKEN.into()),
    ];
    let mut watched: Vec<(&str, String)> = vec![
        ("MASTODON_TOKEN", MASTODON_TOKEN.into()),
        ("FB_PAGE_TOKEN", graph_fake::FB_TOKEN.into()),
        ("webhook path token", WEBHOOK_PATH_TOKEN.into()),
    ];
    for pad in [150, 175, 190, 195, 199, 200, 201, 205, 250, 290, 299, 305] {
        let var = format!("HOOK_URL_{pad}");
        env.push((var.clone(), format!("{uri}/p{pad}/hooks/{WEBHOOK_PATH_TOKEN}")));
        cfg.push_str(&format!(
            "[channels.hook-{pad}]\ntype = \"webhook\"\nurl_env = \"{var}\"\nmax_attempts = 1\n\
             [channels.masto-{pad}]\ntype = \"mastodon\"\ninstance = \"{uri}/p{pad}\"\n\
             access_token_env = \"MASTODON_TOKEN\"\nmax_attempts = 1\n\
             [channels.fb-{pad}]\ntype = \"facebook\"\npage_id = \"1\"\naccess_token_env = \"FB_PAGE_TOKEN\"\n\
             graph_url = \"{uri}/p{pad}\"\nmax_attempts = 1\n"
        ));
    }
    let w = Scenario::new()
        .org("name = \"Studio\"")
        .channel(&cfg)
        .notice("", "Text.")
        .build();
    let mut runs = Vec::new();
    for args in [
        SEND,
        &["-vv", "send", NOTICE, "--yes", "--again", "--json"][..],
        &["report", "--format", "csv"][..],
        &["report", "--format", "json"][..],
        &["check"][..],
    ] {
        runs.push(w.run_async(args, &env).await);
    }
    let hay = haystack(&runs, &w, "");
    let text = String::from_utf8_lossy(&hay);
    assert!(
        text.contains("xxxxx") && text.contains("HTTP 422"),
        "the haystack is real"
    );
    watched.push(("token prefix", MASTODON_TOKEN[..6].to_string()));
    watched.push(("token prefix", graph_fake::FB_TOKEN[..6].to_string()));
    watched.push(("token prefix", WEBHOOK_PATH_TOKEN[..6].to_string()));
    let leaks = find_leaks(&hay, &watched);
    assert!(leaks.is_empty(), "{}", leaks.join("\n\n"));
}

/// What the runs printed and the raw bytes of every file under `dir` of the folder.
fn haystack(runs: &[Run], w: &Workspace, dir: &str) -> Vec<u8> {
    let mut hay = Vec::new();
    for r in runs {
        hay.extend_from_slice(&r.output.stdout);
        hay.extend_from_slice(&r.output.stderr);
    }
    for f in w.files(dir) {
        hay.extend(std::fs::read(f).unwrap());
    }
    hay
}

/// Where the audit's fakes listen.
struct Ports {
    primary: u16,
    backup: u16,
    http: String,
    graph: String,
    tg_reset: u16,
}

impl Ports {
    /// For a config that is only parsed.
    fn unused() -> Ports {
        Ports {
            primary: 1,
            backup: 2,
            http: "http://127.0.0.1:3".into(),
            graph: "http://127.0.0.1:4".into(),
            tg_reset: 5,
        }
    }
}

const QUICK_RETRIES: &str = "max_attempts = 2\nretry_base = \"20ms\"\nretry_max = \"50ms\"\n";

/// The audit's channel tables: one (at least) of every type, all with their secrets set;
/// `outbox`, `email` and `statuspage` always on, the others on when named in `enabled`.
fn audit_channels(enabled: &[&str], p: &Ports) -> String {
    let mut out = written_channels(enabled, p);
    // Every other registered type: its section of channels.example.toml, every https URL
    // pointed at the echoing fake, with quick retries (`audit` sets its `*_env` secrets).
    let quick: toml::Table = toml::from_str(QUICK_RETRIES).unwrap();
    for (name, mut table) in derived_sections() {
        table.insert("enabled".into(), enabled.contains(&name.as_str()).into());
        table.extend(quick.clone());
        point_urls_at(&mut table, &p.http);
        let one = toml::Table::from_iter([(name, toml::Value::Table(table))]);
        let doc = toml::Table::from_iter([("channels".to_string(), toml::Value::Table(one))]);
        out.push_str(&toml::to_string(&doc).unwrap());
    }
    out
}

/// The tables written for the types whose fakes need a script of their own.
fn written_channels(enabled: &[&str], p: &Ports) -> String {
    let (uri, graph) = (&p.http, &p.graph);
    let relay = |name: &str, port: u16, user: &str, env: &str| {
        format!(
            "  [[channels.email.relays]]\n  name = \"{name}\"\n  host = \"127.0.0.1\"\n  port = {port}\n  \
             tls = \"none\"\n  username = \"{user}\"\n  password_env = \"{env}\"\n"
        )
    };
    let email = format!(
        "type = \"email\"\nfrom = \"Studio <info@studio.example>\"\n{QUICK_RETRIES}{}{}",
        relay("primary", p.primary, "info@studio.example", "PRIMARY_SMTP_PASSWORD"),
        relay("alternate", p.backup, "studio", "BACKUP_SMTP_PASSWORD"),
    );
    let sms =
        |provider: &str, keys: &str| format!("type = \"sms\"\nprovider = \"{provider}\"\n{keys}base_url = \"{uri}\"\n");
    let telegram = |chats: &str, base: &str| {
        format!(
            "type = \"telegram\"\nbot_token_env = \"TELEGRAM_BOT_TOKEN\"\nchat_ids = {chats}\nbase_url = \"{base}\"\n"
        )
    };
    let graph_keys = |id: &str| format!("{id}\ngraph_url = \"{graph}\"\napi_version = \"v21.0\"\n");
    // (name, switchable, keys): the switchable ones (and email) retry quickly.
    let tables = [
        ("outbox", false, "type = \"outbox\"\ndir = \"outbox\"\n".to_string()),
        ("email", false, email),
        (
            "sms-twilio",
            true,
            sms(
                "twilio",
                &format!(
                    "from = \"+4930123456\"\naccount_sid = \"{TWILIO_SID}\"\nauth_token_env = \"TWILIO_AUTH_TOKEN\"\n"
                ),
            ),
        ),
        (
            "sms-vonage",
            true,
            sms(
                "vonage",
                "from = \"Studio\"\napi_key = \"abcd1234\"\napi_secret_env = \"VONAGE_API_SECRET\"\n",
            ),
        ),
        (
            "sms-seven",
            true,
            sms("seven", "from = \"Studio\"\napi_key_env = \"SEVEN_API_KEY\"\n"),
        ),
        (
            "sms-generic",
            true,
            sms(
                "generic",
                "url = \"/generic/send\"\nauth_token_env = \"GENERIC_SMS_TOKEN\"\nheaders = { \"X-Api-Key\" = \"{token}\" }\n",
            ),
        ),
        (
            "facebook",
            true,
            format!(
                "type = \"facebook\"\n{}",
                graph_keys(&format!(
                    "page_id = \"{}\"\naccess_token_env = \"FB_PAGE_TOKEN\"\napp_secret_env = \"FB_APP_SECRET\"",
                    graph_fake::PAGE_ID
                ))
            ),
        ),
        (
            "instagram",
            true,
            format!(
                "type = \"instagram\"\n{}poll_interval = \"10ms\"\n",
                graph_keys(&format!(
                    "ig_user_id = \"{}\"\naccess_token_env = \"IG_ACCESS_TOKEN\"",
                    graph_fake::IG_ID
                ))
            ),
        ),
        (
            "whatsapp",
            true,
            format!(
                "type = \"whatsapp\"\n{}message_template = \"stoerung_info\"\nlanguage = \"de\"\n\
                 parameters = [\"{{{{recipient.name}}}}\", \"{{{{summary}}}}\"]\n",
                graph_keys(&format!(
                    "phone_number_id = \"{}\"\naccess_token_env = \"WHATSAPP_TOKEN\"",
                    graph_fake::WA_PHONE_ID
                ))
            ),
        ),
        (
            "team-chat",
            true,
            "type = \"webhook\"\nurl_env = \"TEAM_CHAT_URL\"\nsecret_env = \"WEBHOOK_SECRET\"\n".to_string(),
        ),
        (
            "telegram",
            true,
            telegram("[\"@studio_news\", \"-1001234567890\"]", uri),
        ),
        (
            "telegram-down",
            true,
            telegram("[\"@studio_news\"]", &format!("http://127.0.0.1:{}", p.tg_reset)),
        ),
        (
            "statuspage",
            false,
            "type = \"statuspage\"\ndir = \"public/status\"\n".to_string(),
        ),
        (
            "voice-twilio",
            true,
            format!(
                "type = \"voice\"\nprovider = \"twilio\"\nfrom = \"+4930123456\"\naccount_sid = \"{TWILIO_SID}\"\n\
                 auth_token_env = \"TWILIO_AUTH_TOKEN\"\nbase_url = \"{uri}\"\n"
            ),
        ),
        (
            "voice-vonage",
            true,
            "type = \"voice\"\nprovider = \"vonage\"\nfrom = \"+4930123456\"\n\
             application_id = \"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee\"\nprivate_key_file = \"vonage.key\"\n"
                .to_string(),
        ),
    ];
    let mut out = String::new();
    for (name, switchable, keys) in tables {
        out.push_str(&format!("[channels.{name}]\n"));
        if switchable {
            out.push_str(&format!("enabled = {}\n", enabled.contains(&name)));
        }
        out.push_str(&keys);
        if switchable {
            out.push_str(QUICK_RETRIES);
        }
    }
    out
}

/// The types `written_channels` has no case for (so a new channel type is audited without
/// code here), each with the first section of its type in channels.example.toml, by the
/// section's name. Their URLs are all the provider's that the example names, so a type whose
/// provider URL is not in its example section cannot be audited.
fn derived_sections() -> Vec<(String, toml::Table)> {
    let written: toml::Table = toml::from_str(&written_channels(&[], &Ports::unused())).unwrap();
    let has_case = |t: &str| {
        written["channels"]
            .as_table()
            .unwrap()
            .values()
            .any(|c| c["type"].as_str() == Some(t))
    };
    let example: toml::Table =
        toml::from_str(&std::fs::read_to_string(support::repo("channels.example.toml")).unwrap()).unwrap();
    let sections = example["channels"].as_table().unwrap();
    let mut out = Vec::new();
    for t in announce::channel::CHANNEL_TYPES.iter().filter(|t| !has_case(t)) {
        let (name, table) = sections
            .iter()
            .find(|(_, c)| c["type"].as_str() == Some(t))
            .unwrap_or_else(|| {
                panic!("channels.example.toml has no section of type {t:?}: the secrets audit derives its case from it")
            });
        assert!(
            !written["channels"].as_table().unwrap().contains_key(name),
            "{name}: named twice"
        );
        let mut table = table.as_table().unwrap().clone();
        table.remove("enabled");
        out.push((name.clone(), table));
    }
    out
}

/// Every https URL in the table (and its sub-tables) pointed at `to`.
fn point_urls_at(table: &mut toml::Table, to: &str) {
    fn visit(v: &mut toml::Value, to: &str) {
        match v {
            toml::Value::String(s) if s.starts_with("https://") => *s = to.to_string(),
            toml::Value::Table(t) => t.iter_mut().for_each(|(_, v)| visit(v, to)),
            toml::Value::Array(a) => a.iter_mut().for_each(|v| visit(v, to)),
            _ => {}
        }
    }
    table.iter_mut().for_each(|(_, v)| visit(v, to));
}

/// The environment variables the `*_env` keys of the table (and its sub-tables) name.
fn env_keys(table: &toml::Table) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in table {
        match v {
            toml::Value::String(var) if k.ends_with("_env") => out.push(var.clone()),
            toml::Value::Table(t) => out.extend(env_keys(t)),
            toml::Value::Array(a) => out.extend(a.iter().filter_map(|v| v.as_table()).flat_map(env_keys)),
            _ => {}
        }
    }
    out
}

/// A new channel type cannot be left out of the audit: the config must hold a table of every
/// type the library registers.
fn assert_covers_every_channel_type(config: &str) {
    let v: toml::Value = toml::from_str(config).unwrap();
    let covered: std::collections::BTreeSet<&str> = v["channels"]
        .as_table()
        .unwrap()
        .values()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    for t in announce::channel::CHANNEL_TYPES {
        assert!(
            covered.contains(t),
            "the secrets audit has no case for channel type {t:?}: give it a section in \
             channels.example.toml (derived_sections in tests/suite/secrets.rs reads it)"
        );
    }
}

#[test]
fn every_channel_type_has_a_secrets_case() {
    let config = Scenario::new()
        .channel(&audit_channels(SMS_GRAPH, &Ports::unused()))
        .config_text();
    assert_covers_every_channel_type(&config);
    // The audit's config is one the tool accepts.
    announce::config::Config::parse(None, std::path::Path::new("."), config.clone())
        .unwrap_or_else(|e| panic!("{e}\n{config}"));
}
