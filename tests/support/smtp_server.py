#!/usr/bin/env python3
"""A real SMTP server for announce's integration tests, built on aiosmtpd.

It is an independent implementation (not lettre, not our code), so a message
that it accepts and that Python's `email` package parses cleanly is a good
sign the client speaks SMTP and MIME correctly.

Usage (see tests/support/README.md):

    python3 smtp_server.py --port 0 --mode starttls --cert cert.pem --key key.pem \
        --auth-user alice --auth-pass secret --out /tmp/box

Prints exactly one line `READY <port>` on stdout once it listens, then serves
until SIGTERM/SIGINT.  Everything else (logs, warnings) goes to stderr.

    python3 smtp_server.py --make-cert DIR

writes DIR/ca.pem (a CA to trust), DIR/cert.pem + DIR/key.pem (a leaf for
localhost / 127.0.0.1 / ::1 signed by that CA), prints the three paths and
exits.  A leaf signed by a CA is used because rustls/webpki rejects a
self-signed certificate that carries CA:TRUE as the server certificate
(CaUsedAsEndEntity), which is what `openssl req -x509` makes by default.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import json
import logging
import secrets
import signal
import ssl
import sys
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword, TLSSetupException

from smtp_files import atomic_write

log = logging.getLogger("smtp_server")

ALL_STATS = (
    "connections",
    "ehlo",
    "starttls",
    "starttls_fail",
    "auth_ok",
    "auth_fail",
    "messages",
    "rcpt_rejected",
    "rcpt_tempfail",
)


def unescape(obj: Any) -> Any:
    """Turn surrogate-escaped bytes (how `email` keeps 8-bit header bytes) back
    into text: UTF-8 where valid, U+FFFD otherwise.  Applied to everything
    that goes into JSON, so the files are always valid UTF-8 JSON."""
    if isinstance(obj, str):
        return obj.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(obj, dict):
        return {unescape(k): unescape(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [unescape(v) for v in obj]
    return obj


def atomic_write_json(path: Path, obj: Any) -> None:
    text = json.dumps(unescape(obj), indent=2, ensure_ascii=False) + "\n"
    atomic_write(path, text.encode("utf-8"))


def _defect_str(where: str, d: Any) -> str:
    msg = str(d)
    name = type(d).__name__
    return f"{where}: {name}" + (f": {msg}" if msg and msg != name else "")


def parse_message(raw: bytes) -> dict[str, Any]:
    """Parse the message with the stdlib `email` package (policy=default)."""
    out: dict[str, Any] = {
        "ok": False,
        "defects": [],
        "content_type": None,
        "parts": [],
        "attachments": [],
        "headers": {},
        "raw_headers": {},
        "subject": None,
        "from": None,
        "to": None,
        "text": None,
        "html": None,
        "raw_checks": raw_checks(raw),
    }
    defects: list[str] = []
    try:
        # Parse with LF line ends so decoded bodies/headers read naturally;
        # the wire form (CRLF) is in N.eml and summarised in raw_checks.
        msg = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
        out["content_type"] = msg.get_content_type()
        for name, value in msg.raw_items():
            out["raw_headers"].setdefault(name.lower(), []).append(str(value))
        for name in dict.fromkeys(k.lower() for k in msg.keys()):
            vals = []
            for v in msg.get_all(name) or []:
                vals.append(str(v))
                for d in getattr(v, "defects", ()) or ():
                    defects.append(_defect_str(f"header {name}", d))
            out["headers"][name] = vals
        for key in ("subject", "from", "to"):
            v = msg.get(key)
            out[key] = None if v is None else str(v)
        for i, part in enumerate(msg.walk()):
            ct = part.get_content_type()
            for d in part.defects:
                defects.append(_defect_str(f"part {i} ({ct})", d))
            if part.is_multipart():
                continue
            out["parts"].append(ct)
            if part.get_content_disposition() == "attachment" or (
                part.get_filename() is not None and part is not msg
            ):
                payload = part.get_payload(decode=True) or b""
                out["attachments"].append(
                    {"content_type": ct, "filename": part.get_filename(), "size": len(payload)}
                )
        for key, pref in (("text", "plain"), ("html", "html")):
            body = msg.get_body(preferencelist=(pref,))
            if body is not None:
                try:
                    content = body.get_content()
                    if isinstance(content, str):
                        content = content.replace("\r\n", "\n")
                    out[key] = content
                except Exception as e:  # bad charset / transfer encoding
                    defects.append(f"{key} body: cannot decode: {type(e).__name__}: {e}")
        out["ok"] = not defects
    except Exception as e:  # the parser itself blew up
        defects.append(f"parse error: {type(e).__name__}: {e}")
        out["ok"] = False
    out["defects"] = defects
    return out


def raw_checks(raw: bytes) -> dict[str, Any]:
    """Wire-level facts the email package does not flag."""
    lines = raw.split(b"\r\n")
    return {
        "size": len(raw),
        # RFC 5322 2.1.1: at most 998 characters per line, excluding CRLF.
        "max_line_length": max((len(l) for l in lines), default=0),
        "bare_lf": any(b"\n" in l for l in lines),
        "bare_cr": any(b"\r" in l for l in lines),
        "eight_bit": any(b > 0x7F for b in raw),
        "ends_with_crlf": raw.endswith(b"\r\n"),
    }


def make_certs(dirpath: str) -> None:
    """CA + leaf for localhost/127.0.0.1/::1, using the `cryptography` package."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    d = Path(dirpath)
    d.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=3650)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "announce test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (d / "ca.pem").write_bytes(ca.public_bytes(pem))
    (d / "cert.pem").write_bytes(leaf.public_bytes(pem))
    (d / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    for n in ("ca.pem", "cert.pem", "key.pem"):
        print(d / n, flush=True)


class Recorder:
    """Counters + message files under --out."""

    def __init__(self, out: Path):
        self.out = out
        self.stats = {k: 0 for k in ALL_STATS}
        self.n = 0
        self.flush()

    def bump(self, key: str) -> None:
        self.stats[key] += 1
        self.flush()

    def flush(self) -> None:
        atomic_write_json(self.out / "stats.json", self.stats)


class Handler:
    """aiosmtpd handler hooks (handle_*)."""

    def __init__(self, args: argparse.Namespace, rec: Recorder):
        self.args = args
        self.rec = rec
        self.reject = {a.lower() for a in args.reject_rcpt}
        self.tempfail_pending = {a.lower() for a in args.tempfail_rcpt}
        self.auth_enabled = args.auth_user is not None

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # The 5-argument hook must set host_name itself.
        session.host_name = hostname
        self.rec.bump("ehlo")
        if not self.auth_enabled:
            responses = [r for r in responses if not r[4:].upper().startswith("AUTH")]
            # keep the last line a "250 " line
            if responses and not responses[-1].startswith("250 "):
                responses[-1] = "250 " + responses[-1][4:]
        return responses

    def handle_STARTTLS(self, server, session, envelope):  # sync hook, after handshake
        self.rec.bump("starttls")
        return True

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):
            # aiosmtpd closes the connection after this; the reply is not sent.
            self.rec.bump("starttls_fail")
            log.warning("STARTTLS handshake failed: %r", error.__cause__)
            return "454 4.7.0 TLS handshake failed"
        log.error("SMTP session exception", exc_info=error)
        return f"500 5.3.0 Error: ({type(error).__name__}) {error}"

    async def handle_AUTH(self, server, session, envelope, args):
        if not self.auth_enabled:
            return "502 5.5.1 AUTH not enabled on this server"
        return MISSING  # let aiosmtpd run PLAIN/LOGIN and call authenticator()

    def authenticator(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.args.auth_user.encode()
            and auth_data.password == self.args.auth_pass.encode()
        )
        self.rec.bump("auth_ok" if ok else "auth_fail")
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        # handled=False -> aiosmtpd replies "535 5.7.8 Authentication credentials invalid"
        return AuthResult(success=False, handled=False)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        a = address.lower()
        if a in self.reject:
            self.rec.bump("rcpt_rejected")
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if a in self.tempfail_pending:
            self.tempfail_pending.discard(a)
            self.rec.bump("rcpt_tempfail")
            return "451 4.3.0 Temporary local problem"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        rec = self.rec
        rec.n += 1
        n = rec.n
        raw: bytes = envelope.original_content or b""
        queue_id = secrets.token_hex(5).upper() if self.args.queue_id else None
        ssl_obj = server.transport.get_extra_info("ssl_object") if server.transport else None
        peer = session.peer
        if isinstance(peer, tuple):
            peer = f"{peer[0]}:{peer[1]}" if ":" not in str(peer[0]) else f"[{peer[0]}]:{peer[1]}"
        auth_user = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            auth_user = session.auth_data.login.decode("utf-8", "replace")
        meta = {
            "n": n,
            "mail_from": envelope.mail_from,
            "mail_options": list(envelope.mail_options),
            "rcpt_tos": list(envelope.rcpt_tos),
            "rcpt_options": list(envelope.rcpt_options),
            "smtputf8": bool(envelope.smtp_utf8),
            "auth_user": auth_user,
            "tls": ssl_obj is not None,
            "tls_version": ssl_obj.version() if ssl_obj is not None else None,
            "helo": session.host_name,
            "peer": str(peer),
            "queue_id": queue_id,
            "parsed": parse_message(raw),
        }
        # .eml first, then .json (so a visible N.json implies N.eml), then stats;
        # all before the 250 goes out, so a client that saw 250 finds the files.
        atomic_write(rec.out / f"{n}.eml", raw)
        atomic_write_json(rec.out / f"{n}.json", meta)
        rec.bump("messages")
        log.info("message %d from %s to %s", n, envelope.mail_from, envelope.rcpt_tos)
        if queue_id:
            return f"250 2.0.0 Ok: queued as {queue_id}"
        return "250 OK"


def server_ssl_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    p.add_argument("--mode", choices=("starttls", "tls", "plain"), default="starttls")
    p.add_argument("--cert", help="PEM certificate (chain); required for starttls/tls")
    p.add_argument("--key", help="PEM private key; required for starttls/tls")
    p.add_argument("--auth-user")
    p.add_argument("--auth-pass")
    p.add_argument(
        "--require-tls",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="starttls mode: STARTTLS required before AUTH/MAIL (default on). "
        "With --no-require-tls, STARTTLS is offered but optional and AUTH is accepted in clear.",
    )
    p.add_argument("--out", help="directory for N.eml / N.json / stats.json")
    p.add_argument("--reject-rcpt", action="append", default=[], metavar="ADDR")
    p.add_argument("--tempfail-rcpt", action="append", default=[], metavar="ADDR")
    p.add_argument("--queue-id", action="store_true", help="final reply: 250 2.0.0 Ok: queued as HEXID")
    p.add_argument("--hostname", default="localhost", help="name in the banner / EHLO reply")
    p.add_argument("--timeout", type=float, default=300.0, help="idle timeout per connection (s)")
    p.add_argument("-v", "--verbose", action="store_true", help="log the SMTP dialogue to stderr")
    p.add_argument("--make-cert", metavar="DIR", help="write DIR/{ca,cert,key}.pem and exit")
    a = p.parse_args(argv)
    if a.make_cert:
        return a
    if not a.out:
        p.error("--out is required")
    if a.mode in ("starttls", "tls") and not (a.cert and a.key):
        p.error(f"--cert and --key are required for --mode {a.mode}")
    if (a.auth_user is None) != (a.auth_pass is None):
        p.error("--auth-user and --auth-pass go together")
    return a


async def serve(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rec = Recorder(out)
    handler = Handler(args, rec)
    loop = asyncio.get_running_loop()

    ctx = server_ssl_context(args.cert, args.key) if args.mode in ("starttls", "tls") else None
    auth = handler.auth_enabled
    if args.mode == "starttls":
        tls_context, require_starttls = ctx, args.require_tls
        # aiosmtpd only counts STARTTLS as TLS for auth_require_tls.
        auth_require_tls = args.require_tls
        listen_ssl = None
    elif args.mode == "tls":
        # Implicit TLS: the whole connection is TLS; aiosmtpd does not know
        # that, so auth_require_tls must be False (else AUTH -> 538).
        tls_context, require_starttls, auth_require_tls, listen_ssl = None, False, False, ctx
    else:
        tls_context, require_starttls, auth_require_tls, listen_ssl = None, False, False, None

    def factory() -> SMTP:
        # Called once per accepted TCP connection (before any TLS handshake).
        rec.bump("connections")
        return SMTP(
            handler,
            hostname=args.hostname,
            ident="ESMTP announce-test (aiosmtpd)",
            enable_SMTPUTF8=True,
            decode_data=False,
            tls_context=tls_context,
            require_starttls=bool(require_starttls),
            auth_required=auth,
            auth_require_tls=auth_require_tls,
            authenticator=handler.authenticator if auth else None,
            timeout=args.timeout,
            loop=loop,
        )

    server = await loop.create_server(factory, host=args.host, port=args.port, ssl=listen_ssl)
    port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()
    log.info("listening on %s:%d mode=%s auth=%s out=%s", args.host, port, args.mode, auth, out)
    await stop.wait()
    server.close()
    try:
        await asyncio.wait_for(server.wait_closed(), 2)
    except (asyncio.TimeoutError, Exception):
        pass


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.make_cert:
        make_certs(args.make_cert)
        return 0
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="smtp_server %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # aiosmtpd logs every session at INFO on "mail.log"; keep stderr quiet.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
