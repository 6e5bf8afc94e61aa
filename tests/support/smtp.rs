//! The Python SMTP test servers (tests/support/smtp_server.py and smtp_fault.py, see
//! tests/support/README.md) as Rust values: start one, read what it received, stop it on drop.
//! Certificates are made with the `openssl` CLI.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

fn support(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support").join(file)
}

/// The interpreter for the servers: `ANNOUNCE_TEST_PYTHON` (set by scripts/test) or `python3`.
/// Panics — the test fails, it is not skipped — when it cannot import the servers' packages.
pub fn python() -> &'static str {
    static PYTHON: OnceLock<Result<String, String>> = OnceLock::new();
    let found = PYTHON.get_or_init(|| {
        let exe = std::env::var("ANNOUNCE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let out = Command::new(&exe)
            .args(["-c", "import aiosmtpd, aiosmtpd.smtp, dkim, cryptography"])
            .output();
        match out {
            Ok(o) if o.status.success() => Ok(exe),
            Ok(o) => Err(format!(
                "{exe} cannot import aiosmtpd/dkim/cryptography: {}",
                String::from_utf8_lossy(&o.stderr)
            )),
            Err(e) => Err(format!("cannot run {exe}: {e}")),
        }
    });
    match found {
        Ok(exe) => exe,
        Err(e) => panic!(
            "the email tests need Python 3 with the packages of tests/support/requirements.txt \
             (aiosmtpd, dkimpy): run `scripts/test`, which installs them ({e})"
        ),
    }
}

/// Run a command and panic with its output when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A CA and a server certificate it signed, for localhost / 127.0.0.1.
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Make `dir/ca.pem`, `dir/cert.pem`, `dir/key.pem` with openssl. The leaf has CA:FALSE and a
/// subjectAltName for 127.0.0.1 (rustls rejects a self-signed CA used as the server cert).
pub fn certs(dir: &Path) -> Certs {
    std::fs::create_dir_all(dir).unwrap();
    let p = |f: &str| dir.join(f);
    std::fs::write(
        p("ca.cnf"),
        "[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = ext\n[dn]\nCN = announce test CA\n\
         [ext]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\n",
    )
    .unwrap();
    std::fs::write(
        p("leaf.ext"),
        "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost,IP:127.0.0.1\n\
         authorityKeyIdentifier = keyid\n",
    )
    .unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    run(Command::new("openssl")
        .args(["req", "-x509", "-config"])
        .arg(p("ca.cnf"))
        .args(ec)
        .args(["-days", "30", "-keyout"])
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.pem")));
    run(Command::new("openssl")
        .args(["req", "-new", "-subj", "/CN=localhost"])
        .args(ec)
        .arg("-keyout")
        .arg(p("key.pem"))
        .arg("-out")
        .arg(p("leaf.csr")));
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "30", "-in"])
        .arg(p("leaf.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-CAcreateserial")
        .arg("-CAserial")
        .arg(p("ca.srl"))
        .arg("-extfile")
        .arg(p("leaf.ext"))
        .arg("-out")
        .arg(p("cert.pem")));
    Certs {
        ca: p("ca.pem"),
        cert: p("cert.pem"),
        key: p("key.pem"),
    }
}

/// A port nobody listens on (bound, then released): connections to it are refused.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A running test server (killed on drop).
pub struct Server {
    child: Child,
    pub port: u16,
    pub out: PathBuf,
}

impl Server {
    /// `smtp_server.py --port 0 --out OUT ARGS...`
    pub fn smtp(out: &Path, args: &[&str]) -> Server {
        Server::start("smtp_server.py", out, args)
    }

    /// `smtp_fault.py --script SCRIPT --port 0 --out OUT ARGS...`
    pub fn fault(out: &Path, script: &str, args: &[&str]) -> Server {
        let mut all = vec!["--script", script];
        all.extend_from_slice(args);
        Server::start("smtp_fault.py", out, &all)
    }

    fn start(script: &str, out: &Path, args: &[&str]) -> Server {
        std::fs::create_dir_all(out).unwrap();
        let log = out.join("server.stderr");
        let mut child = Command::new(python())
            .arg(support(script))
            .args(["--port", "0", "--out"])
            .arg(out)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {script}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line.strip_prefix("READY ").and_then(|p| p.trim().parse().ok()),
            Err(_) => None,
        };
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{script} {args:?} did not print READY <port>:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Server {
            child,
            port,
            out: out.to_path_buf(),
        }
    }

    /// stats.json (counters; see tests/support/README.md).
    pub fn stats(&self) -> Value {
        let text = std::fs::read_to_string(self.out.join("stats.json")).unwrap_or_else(|_| "{}".into());
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub fn stat(&self, key: &str) -> u64 {
        self.stats()[key].as_u64().unwrap_or(0)
    }

    /// Every received message's N.json (smtp_server.py), in arrival order.
    pub fn messages(&self) -> Vec<Value> {
        let mut numbered: Vec<(u64, Value)> = std::fs::read_dir(&self.out)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let n: u64 = name.strip_suffix(".json")?.parse().ok()?;
                Some((n, serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok()?))
            })
            .collect();
        numbered.sort_by_key(|(n, _)| *n);
        numbered.into_iter().map(|(_, v)| v).collect()
    }

    /// The first recipient of every received message, sorted.
    pub fn recipients(&self) -> Vec<String> {
        let mut to: Vec<String> = self
            .messages()
            .iter()
            .map(|m| m["rcpt_tos"][0].as_str().unwrap_or_default().to_string())
            .collect();
        to.sort();
        to
    }

    /// Raw N.eml files, in arrival order.
    pub fn emls(&self) -> Vec<PathBuf> {
        let mut numbered: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.out)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let n: u64 = e.file_name().to_string_lossy().strip_suffix(".eml")?.parse().ok()?;
                Some((n, e.path()))
            })
            .collect();
        numbered.sort_by_key(|(n, _)| *n);
        numbered.into_iter().map(|(_, p)| p).collect()
    }

    /// smtp_fault.py's dialogue so far (transcript.log), with its `*` notes on what it did.
    pub fn transcript(&self) -> String {
        std::fs::read_to_string(self.out.join("transcript.log")).unwrap_or_default()
    }

    /// The server's stderr so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.out.join("server.stderr")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first value of a header in an N.json's `parsed.headers`.
pub fn header<'a>(msg: &'a Value, name: &str) -> Option<&'a str> {
    msg["parsed"]["headers"][name].get(0).and_then(Value::as_str)
}

/// The login of the email tests' relays and where its password comes from. The password is
/// distinctive: it must never show up in output, reports or the journal.
pub const USER: &str = "alice";
pub const PASSWORD: &str = "pw-Zebra-Quokka-7781";
pub const PASSWORD_ENV: &str = "ANNOUNCE_TEST_SMTP_PASSWORD";
/// The `ca_file` line of a relay that trusts `certs(ws/tls)`.
pub const TRUSTED: &str = r#"ca_file = "tls/ca.pem""#;

/// One `[[channels.email.relays]]` on 127.0.0.1 that logs in as `USER`; `extra` are more keys.
pub fn relay(name: &str, port: u16, tls: &str, extra: &str) -> String {
    format!(
        "  [[channels.email.relays]]\n  name = \"{name}\"\n  host = \"127.0.0.1\"\n  port = {port}\n  \
         tls = \"{tls}\"\n  username = \"{USER}\"\n  password_env = \"{PASSWORD_ENV}\"\n  {extra}\n"
    )
}

/// `[channels.email]` (reply-to, List-Unsubscribe, four connections, short retries) with
/// `extra` keys and the relays (from `relay`).
pub fn email_channel(extra: &str, relays: &[String]) -> String {
    format!(
        "[channels.email]\ntype = \"email\"\nfrom = \"Studio Test <info@studio.example>\"\n\
         reply_to = \"Termine <termine@studio.example>\"\n\
         list_unsubscribe = \"https://studio.example/u/abc, mailto:optout@studio.example\"\n\
         concurrency = 4\nretry_base = \"50ms\"\nretry_max = \"200ms\"\n{extra}\n{}",
        relays.join("\n")
    )
}

impl Server {
    /// aiosmtpd with STARTTLS (required) on `certs`, writing into `ws/box-NAME`; AUTH only as
    /// `args` say.
    pub fn starttls(ws: &super::Workspace, name: &str, certs: &Certs, args: &[&str]) -> Server {
        let (cert, key) = (certs.cert.to_str().unwrap(), certs.key.to_str().unwrap());
        let mut all = vec!["--mode", "starttls", "--cert", cert, "--key", key];
        all.extend_from_slice(args);
        Server::smtp(&ws.path(&format!("box-{name}")), &all)
    }

    /// `starttls` with AUTH required as `USER`.
    pub fn starttls_auth(ws: &super::Workspace, name: &str, certs: &Certs, extra: &[&str]) -> Server {
        let mut args = vec!["--auth-user", USER, "--auth-pass", PASSWORD];
        args.extend_from_slice(extra);
        Server::starttls(ws, name, certs, &args)
    }

    /// One trusted STARTTLS relay "primary" (`starttls_auth`, certificates in ws/tls) and its
    /// `[channels.email]` (with `channel_extra`) appended to the folder's channels.toml.
    pub fn trusted_primary(ws: &super::Workspace, channel_extra: &str, server_args: &[&str]) -> Server {
        let certs = certs(&ws.path("tls"));
        let server = Server::starttls_auth(ws, "primary", &certs, server_args);
        ws.config_append(&email_channel(
            channel_extra,
            &[relay("primary", server.port, "starttls", TRUSTED)],
        ));
        server
    }
}
