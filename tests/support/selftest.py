#!/usr/bin/env python3
"""Self-test of smtp_server.py and smtp_fault.py, driven by Python's smtplib.

    python3 tests/support/selftest.py        # exits 0 and prints "N passed, 0 failed"

Needs only requirements.txt (no swaks, no openssl CLI).
"""

from __future__ import annotations

import json
import shutil
import signal
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
import email.policy
from email.message import EmailMessage
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
TMP = Path(tempfile.mkdtemp(prefix="smtp-selftest-"))
CERTS = TMP / "certs"


class Server:
    count = 0

    def __init__(self, script: str, name: str, *args: str):
        Server.count += 1
        self.out = TMP / f"{Server.count:02d}-{name}"
        cmd = [PY, str(HERE / script), "--port", "0", "--out", str(self.out), *args]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        assert line.startswith("READY "), f"{cmd}: got {line!r}"
        self.port = int(line.split()[1])

    def stats(self) -> dict:
        return json.loads((self.out / "stats.json").read_text())

    def meta(self, n: int) -> dict:
        return json.loads((self.out / f"{n}.json").read_text())

    def stop(self) -> None:
        self.p.send_signal(signal.SIGTERM)
        assert self.p.wait(5) == 0, "server did not exit 0 on SIGTERM"
        assert self.p.stdout.read() == "", "more than one line on stdout"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.p.poll() is None:
            self.stop()


def client_ctx() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(CERTS / "ca.pem"))


def multipart(to: str = "bob@example.org") -> EmailMessage:
    m = EmailMessage()
    m["From"] = "Announce <news@example.com>"
    m["To"] = f"Bøb <{to}>"
    m["Subject"] = "Release 1.0 — ünïcode"
    m.set_content("Hello plain\n.leading dot line\n")
    m.add_alternative("<p>Hello <b>html</b></p>\n", subtype="html")
    return m


def expect(exc_type, fn, *a, **kw):
    try:
        fn(*a, **kw)
    except exc_type as e:
        return e
    raise AssertionError(f"expected {exc_type.__name__}")


def t_starttls_auth():
    args = ["--mode", "starttls", "--cert", str(CERTS / "cert.pem"), "--key", str(CERTS / "key.pem"),
            "--auth-user", "alice", "--auth-pass", "s3cret", "--queue-id"]
    with Server("smtp_server.py", "starttls", *args) as s:
        with smtplib.SMTP("127.0.0.1", s.port, timeout=10) as c:
            c.ehlo("client.test")
            assert c.has_extn("starttls") and not c.has_extn("auth"), c.esmtp_features
            code, msg = c.mail("x@example.com")
            assert code == 530, (code, msg)  # STARTTLS first
            c.starttls(context=client_ctx())
            c.ehlo("client.test")
            assert "PLAIN" in c.esmtp_features["auth"] and "LOGIN" in c.esmtp_features["auth"]
            assert c.mail("x@example.com")[0] == 530  # AUTH first
            e = expect(smtplib.SMTPAuthenticationError, c.login, "alice", "wrong")
            assert e.smtp_code == 535 and b"5.7.8 Authentication credentials invalid" in e.smtp_error, e
            c.user, c.password = "alice", "s3cret"
            assert c.auth("LOGIN", c.auth_login)[0] == 235
            c.mail("news@example.com")
            c.rcpt("bob@example.org")
            code, resp = c.data(multipart().as_bytes(policy=email.policy.SMTP))
            assert code == 250 and resp.startswith(b"2.0.0 Ok: queued as "), resp
        m = s.meta(1)
        assert m["tls"] is True and m["auth_user"] == "alice" and m["rcpt_tos"] == ["bob@example.org"], m
        p = m["parsed"]
        assert p["ok"] and p["content_type"] == "multipart/alternative", p
        assert p["parts"] == ["text/plain", "text/html"], p
        assert p["subject"] == "Release 1.0 — ünïcode" and p["to"] == "Bøb <bob@example.org>", p
        assert p["text"] == "Hello plain\n.leading dot line\n" and "<b>html</b>" in p["html"], p
        assert (s.out / "1.eml").read_bytes().startswith(b"Content-Type") or b"Subject:" in (s.out / "1.eml").read_bytes()
        st = s.stats()
        assert st["connections"] == 1 and st["ehlo"] == 2 and st["starttls"] == 1, st
        assert st["auth_ok"] == 1 and st["auth_fail"] == 2 and st["messages"] == 1, st


def t_implicit_tls():
    args = ["--mode", "tls", "--cert", str(CERTS / "cert.pem"), "--key", str(CERTS / "key.pem"),
            "--auth-user", "alice", "--auth-pass", "s3cret"]
    with Server("smtp_server.py", "tls", *args) as s:
        with smtplib.SMTP_SSL("localhost", s.port, context=client_ctx(), timeout=10) as c:
            c.login("alice", "s3cret")  # AUTH PLAIN
            c.send_message(multipart())
        m = s.meta(1)
        assert m["tls"] is True and m["tls_version"] and m["auth_user"] == "alice", m
        # plaintext client against implicit TLS: connection counted, no message
        e = expect(Exception, smtplib.SMTP, "127.0.0.1", s.port, timeout=3)
        assert isinstance(e, (smtplib.SMTPServerDisconnected, TimeoutError, ConnectionError)), repr(e)
        assert s.stats()["connections"] == 2 and s.stats()["messages"] == 1


def t_plain_reject_tempfail():
    args = ["--mode", "plain", "--reject-rcpt", "nobody@example.org", "--tempfail-rcpt", "later@example.org"]
    with Server("smtp_server.py", "plain", *args) as s:
        with smtplib.SMTP("127.0.0.1", s.port, timeout=10) as c:
            assert not c.ehlo()[1].count(b"AUTH")  # no auth configured -> not advertised
            refused = c.sendmail("a@example.com", ["ok@example.org", "nobody@example.org", "later@example.org"],
                                 multipart().as_bytes(policy=email.policy.SMTP))
            assert refused["nobody@example.org"] == (
                550, b"5.1.1 <nobody@example.org>: Recipient address rejected: User unknown"), refused
            assert refused["later@example.org"] == (451, b"4.3.0 Temporary local problem"), refused
            assert c.sendmail("a@example.com", ["later@example.org"], b"Subject: x\r\n\r\nretry\r\n") == {}
            e = expect(smtplib.SMTPRecipientsRefused, c.sendmail, "a@example.com", ["nobody@example.org"], b"x")
            c.rset()
            c.mail("a@example.com")
            c.rcpt("ok@example.org")
            code, resp = c.data(b"Subject: long\r\n\r\n" + b"x" * 1200 + b"\r\n")
            assert code == 500, (code, resp)  # line > 998+CRLF refused by aiosmtpd
        assert s.meta(1)["tls"] is False and s.meta(1)["rcpt_tos"] == ["ok@example.org"]
        assert s.meta(2)["rcpt_tos"] == ["later@example.org"], s.meta(2)
        assert s.meta(2)["parsed"]["text"] == "retry\n", s.meta(2)
        assert not (s.out / "3.json").exists()
        st = s.stats()
        assert st["rcpt_rejected"] == 2 and st["rcpt_tempfail"] == 1 and st["messages"] == 2, st


def t_optional_starttls_smtputf8():
    args = ["--mode", "starttls", "--no-require-tls", "--cert", str(CERTS / "cert.pem"),
            "--key", str(CERTS / "key.pem"), "--auth-user", "alice", "--auth-pass", "s3cret"]
    with Server("smtp_server.py", "optional-tls", *args) as s:
        with smtplib.SMTP("127.0.0.1", s.port, timeout=10) as c:
            c.ehlo()
            assert c.has_extn("starttls") and c.has_extn("auth") and c.has_extn("smtputf8")
            c.login("alice", "s3cret")  # accepted in clear: the JSON says tls=false
            m = multipart(to="bøb@exämple.org")
            del m["To"]
            m["To"] = "bøb@exämple.org"
            c.send_message(m, mail_options=["SMTPUTF8"])
        meta = s.meta(1)
        assert meta["tls"] is False and meta["auth_user"] == "alice" and meta["smtputf8"] is True, meta
        assert meta["rcpt_tos"] == ["bøb@exämple.org"] and meta["parsed"]["to"] == "bøb@exämple.org", meta
        assert meta["parsed"]["raw_checks"]["eight_bit"] is True, meta


def fault(script, *extra):
    return Server("smtp_fault.py", "fault-" + script + ("-tls" if extra else ""), "--script", script, *extra)


def t_fault_ok():
    tls = ["--cert", str(CERTS / "cert.pem"), "--key", str(CERTS / "key.pem")]
    with fault("ok", *tls) as s:
        with smtplib.SMTP("127.0.0.1", s.port, timeout=10) as c:
            c.ehlo("me")
            for f in ("pipelining", "8bitmime", "smtputf8", "starttls"):
                assert c.has_extn(f), (f, c.esmtp_features)
            c.starttls(context=client_ctx())
            c.ehlo("me")
            assert not c.has_extn("starttls")
            assert c.noop()[0] == 250 and c.rset()[0] == 250
            assert c.sendmail("a@x", ["b@y"], multipart().as_bytes(policy=email.policy.SMTP)) == {}
        raw = (s.out / "1.eml").read_bytes()
        assert b"\r\n.leading dot line" in raw and b"\r\n..leading" not in raw, raw  # unstuffed
        st = s.stats()
        assert st == {**st, "connections": 1, "messages": 1, "starttls": 1, "quit": 1}, st


def t_fault_errors():
    with fault("greet421") as s:
        e = expect(smtplib.SMTPConnectError, smtplib.SMTP, "127.0.0.1", s.port, timeout=5)
        assert e.smtp_code == 421 and b"4.3.2 Service not available" in e.smtp_error, e
        assert s.stats()["connections"] == 1

    with fault("auth535", "--cert", str(CERTS / "cert.pem"), "--key", str(CERTS / "key.pem")) as s:
        with smtplib.SMTP("127.0.0.1", s.port, timeout=5) as c:
            c.starttls(context=client_ctx())
            c.ehlo()
            e = expect(smtplib.SMTPAuthenticationError, c.login, "u", "p")
            assert e.smtp_code == 535 and e.smtp_error == b"5.7.8 Authentication credentials invalid", e
            c.user, c.password = "u", "p"
            e = expect(smtplib.SMTPAuthenticationError, c.auth, "LOGIN", c.auth_login)
            assert e.smtp_code == 535, e
        assert s.stats()["auth_attempts"] == 3  # login() tries PLAIN then LOGIN

    with fault("drop_after_data") as s:
        with smtplib.SMTP("127.0.0.1", s.port, timeout=5) as c:
            expect(smtplib.SMTPServerDisconnected, c.sendmail, "a@x", ["b@y"], multipart().as_bytes(policy=email.policy.SMTP))
        st = s.stats()
        assert st["data_complete"] == 1 and st["messages"] == 0 and (s.out / "1.eml").exists(), st

    with fault("stall_after_data") as s:
        t0 = time.monotonic()
        c = smtplib.SMTP("127.0.0.1", s.port, timeout=1.5)
        # smtplib turns the read timeout into SMTPServerDisconnected("... timed out")
        e = expect(smtplib.SMTPServerDisconnected, c.sendmail, "a@x", ["b@y"], b"Subject: s\r\n\r\nbody\r\n")
        assert "timed out" in str(e), e
        assert 1.4 < time.monotonic() - t0 < 5
        c.close()
        st = s.stats()
        assert st["data_complete"] == 1 and st["messages"] == 0, st

    with fault("mail421") as s:
        with smtplib.SMTP("127.0.0.1", s.port, timeout=5) as c:
            e = expect(smtplib.SMTPSenderRefused, c.sendmail, "a@x", ["b@y"], b"x")
            assert e.smtp_code == 421 and b"4.7.0 Try again later" in e.smtp_error, e

    with fault("ok", "--implicit-tls", "--cert", str(CERTS / "cert.pem"), "--key", str(CERTS / "key.pem")) as s:
        with smtplib.SMTP_SSL("localhost", s.port, context=client_ctx(), timeout=5) as c:
            c.sendmail("a@x", ["b@y"], b"Subject: s\r\n\r\nbody\r\n")
        assert s.stats()["messages"] == 1


def main() -> int:
    subprocess.run([PY, str(HERE / "smtp_server.py"), "--make-cert", str(CERTS)], check=True,
                   stdout=subprocess.DEVNULL)
    passed = failed = 0
    for name, fn in list(globals().items()):
        if name.startswith("t_"):
            try:
                fn()
                passed += 1
                print(f"ok   {name}")
            except Exception:
                failed += 1
                print(f"FAIL {name}")
                traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    if failed:
        print(f"server output left in {TMP}")
    else:
        shutil.rmtree(TMP, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
