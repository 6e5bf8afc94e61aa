#!/usr/bin/env python3
"""A small scripted SMTP server for fault injection (stdlib asyncio only).

    python3 smtp_fault.py --port 0 --script drop_after_data --out /tmp/f [--cert C --key K]

Prints exactly one line `READY <port>` on stdout once it listens, then serves
until SIGTERM/SIGINT.  Logs go to stderr; the dialogue goes to DIR/transcript.log.

Scripts (behaviour of every connection):
  ok                normal accepting ESMTP server (baseline)
  greet421          banner is `421 4.3.2 Service not available, closing transmission channel`, then close
  auth535           every AUTH (PLAIN or LOGIN, after the 334 challenges) ends in
                    `535 5.7.8 Authentication credentials invalid`
  auth535echo       like auth535, but the 535 quotes an AUTH PLAIN initial response back,
                    base64 and decoded (`535 5.7.8 Authentication failed for AUTH PLAIN <b64> (...)`)
  drop_after_data   after the final "." of DATA, close the socket without replying
  stall_after_data  after the final "." of DATA, never reply (socket stays open until the client leaves)
  mail421           MAIL FROM gets `421 4.7.0 Try again later, closing connection`, then close

Every script advertises AUTH PLAIN LOGIN; all but auth535 accept any
credentials (235), so a client configured with credentials reaches the fault.
With --cert/--key, STARTTLS is advertised (before TLS) and works in every script;
with --implicit-tls as well, the listener is TLS from the first byte instead.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import secrets
import signal
import ssl
import sys
from pathlib import Path

from smtp_files import atomic_write

log = logging.getLogger("smtp_fault")

SCRIPTS = ("ok", "greet421", "auth535", "auth535echo", "drop_after_data", "stall_after_data", "mail421")
LINE_LIMIT = 1 << 20  # generous; RFC line-length policing is smtp_server.py's job


class State:
    def __init__(self, out: Path):
        self.out = out
        # connections: TCP accepts. messages: DATA answered with 250.
        # data_complete: DATA bodies fully received (final "." seen), replied or not.
        self.stats = {
            "connections": 0,
            "messages": 0,
            "data_complete": 0,
            "ehlo": 0,
            "starttls": 0,
            "auth_attempts": 0,
            "mail_from": 0,
            "quit": 0,
        }
        self.n = 0
        self.conn_id = 0
        self.transcript = open(out / "transcript.log", "a", encoding="utf-8", buffering=1)
        self.flush()

    def bump(self, key: str) -> None:
        self.stats[key] += 1
        self.flush()

    def flush(self) -> None:
        atomic_write(self.out / "stats.json", (json.dumps(self.stats, indent=2) + "\n").encode())

    def note(self, cid: int, direction: str, text: str) -> None:
        self.transcript.write(f"{cid} {direction} {text}\n")


class Session:
    def __init__(self, srv: "FaultServer", reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.srv = srv
        self.st = srv.state
        self.script = srv.script
        self.reader = reader
        self.writer = writer
        self.st.conn_id += 1
        self.cid = self.st.conn_id
        self.tls = writer.get_extra_info("ssl_object") is not None
        self.reset_all()

    def reset_all(self) -> None:
        self.helo: str | None = None
        self.esmtp = False
        self.authed = False
        self.reset_envelope()

    def reset_envelope(self) -> None:
        self.mail_from: str | None = None
        self.rcpts: list[str] = []

    async def reply(self, *lines: str) -> None:
        """One reply; several lines become a multi-line reply (CODE-... / CODE ...)."""
        out = []
        for i, line in enumerate(lines):
            code, text = line[:3], line[4:]
            sep = " " if i == len(lines) - 1 else "-"
            out.append(f"{code}{sep}{text}\r\n")
            self.st.note(self.cid, "<", f"{code}{sep}{text}")
        self.writer.write("".join(out).encode("utf-8"))
        await self.writer.drain()

    async def readline(self) -> bytes | None:
        try:
            line = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError:
            return b"\x00TOO-LONG"
        except (ConnectionError, ssl.SSLError):
            return None
        return line

    async def close(self) -> None:
        try:
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        except Exception:
            pass

    async def run(self) -> None:
        st = self.st
        st.bump("connections")
        st.note(self.cid, "*", f"connect {self.writer.get_extra_info('peername')} tls={self.tls}")
        try:
            if self.script == "greet421":
                await self.reply("421 4.3.2 Service not available, closing transmission channel")
                return
            await self.reply("220 localhost ESMTP announce-fault " + self.script)
            while True:
                raw = await self.readline()
                if raw is None:
                    st.note(self.cid, "*", "client closed")
                    return
                if raw == b"\x00TOO-LONG":
                    await self.reply("500 5.5.2 Line too long")
                    continue
                line = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
                verb, _, arg = line.partition(" ")
                verb = verb.upper()
                arg = arg.strip()
                st.note(self.cid, ">", "AUTH " + arg.split(" ")[0] + " ***" if verb == "AUTH" else line)
                keep_going = await self.command(verb, arg)
                if not keep_going:
                    return
        except (ConnectionError, ssl.SSLError) as e:
            st.note(self.cid, "*", f"connection error: {type(e).__name__}: {e}")
        finally:
            st.note(self.cid, "*", "close")
            await self.close()

    def ehlo_lines(self) -> list[str]:
        lines = ["250 localhost", "250 PIPELINING", "250 8BITMIME", "250 SMTPUTF8", "250 SIZE 52428800"]
        if self.srv.tls_ctx is not None and not self.tls:
            lines.append("250 STARTTLS")
        lines.append("250 AUTH PLAIN LOGIN")
        lines.append("250 ENHANCEDSTATUSCODES")
        return lines

    async def command(self, verb: str, arg: str) -> bool:
        """Handle one command; False = end the session."""
        st = self.st
        if verb == "EHLO" or verb == "HELO":
            if not arg:
                await self.reply(f"501 5.5.4 Syntax: {verb} hostname")
                return True
            st.bump("ehlo")
            self.reset_all()
            self.helo, self.esmtp = arg, verb == "EHLO"
            if verb == "EHLO":
                await self.reply(*self.ehlo_lines())
            else:
                await self.reply("250 localhost")
            return True
        if verb == "QUIT":
            st.bump("quit")
            await self.reply("221 2.0.0 Bye")
            return False
        if verb == "NOOP":
            await self.reply("250 2.0.0 Ok")
            return True
        if verb == "RSET":
            self.reset_envelope()
            await self.reply("250 2.0.0 Ok")
            return True
        if verb == "VRFY":
            await self.reply("252 2.0.0 Cannot VRFY user, but will accept message")
            return True
        if verb == "HELP":
            await self.reply("214 2.0.0 See RFC 5321")
            return True
        if verb == "STARTTLS":
            return await self.starttls(arg)
        if verb == "AUTH":
            return await self.auth(arg)
        if verb == "MAIL":
            if not self.helo:
                await self.reply("503 5.5.1 Error: send HELO/EHLO first")
                return True
            if self.script == "mail421":
                st.bump("mail_from")
                await self.reply("421 4.7.0 Try again later, closing connection")
                return False
            if self.mail_from is not None:
                await self.reply("503 5.5.1 Error: nested MAIL command")
                return True
            addr = parse_path(arg, "FROM:")
            if addr is None:
                await self.reply("501 5.5.4 Syntax: MAIL FROM:<address>")
                return True
            st.bump("mail_from")
            self.mail_from = addr
            await self.reply("250 2.1.0 Ok")
            return True
        if verb == "RCPT":
            if self.mail_from is None:
                await self.reply("503 5.5.1 Error: need MAIL command")
                return True
            addr = parse_path(arg, "TO:")
            if not addr:
                await self.reply("501 5.5.4 Syntax: RCPT TO:<address>")
                return True
            self.rcpts.append(addr)
            await self.reply("250 2.1.5 Ok")
            return True
        if verb == "DATA":
            if arg:
                await self.reply("501 5.5.4 Syntax: DATA")
                return True
            if self.mail_from is None:
                await self.reply("503 5.5.1 Error: need MAIL command")
                return True
            if not self.rcpts:
                await self.reply("554 5.5.1 Error: no valid recipients")
                return True
            return await self.data()
        await self.reply("500 5.5.2 Error: command not recognized")
        return True

    async def starttls(self, arg: str) -> bool:
        if arg:
            await self.reply("501 5.5.4 Syntax: STARTTLS")
            return True
        if self.srv.tls_ctx is None or self.tls:
            await self.reply("454 4.7.0 TLS not available")
            return True
        await self.reply("220 2.0.0 Ready to start TLS")
        try:
            await self.writer.start_tls(self.srv.tls_ctx)
        except Exception as e:
            self.st.note(self.cid, "*", f"TLS handshake failed: {type(e).__name__}: {e}")
            return False
        self.tls = True
        self.st.bump("starttls")
        self.st.note(self.cid, "*", f"TLS established {self.writer.get_extra_info('ssl_object').version()}")
        self.reset_all()  # RFC 3207 4.2: forget everything, client must EHLO again
        return True

    async def auth(self, arg: str) -> bool:
        if not self.helo or not self.esmtp:
            await self.reply("503 5.5.1 Error: send EHLO first")
            return True
        if self.authed:
            await self.reply("503 5.5.1 Error: already authenticated")
            return True
        self.st.bump("auth_attempts")
        parts = arg.split()
        mech = parts[0].upper() if parts else ""
        if mech == "PLAIN":
            if len(parts) == 1:
                await self.reply("334 ")
                if not await self.auth_response():
                    return True
        elif mech == "LOGIN":
            if len(parts) == 1:
                await self.reply("334 " + base64.b64encode(b"Username:").decode())
                if not await self.auth_response():
                    return True
            await self.reply("334 " + base64.b64encode(b"Password:").decode())
            if not await self.auth_response():
                return True
        else:
            await self.reply("504 5.5.4 Unrecognized authentication type")
            return True
        if self.script == "auth535":
            await self.reply("535 5.7.8 Authentication credentials invalid")
        elif self.script == "auth535echo":
            # Like some relays: quote the AUTH PLAIN response back, raw and decoded.
            echoed = parts[1] if len(parts) > 1 else ""
            try:
                decoded = base64.b64decode(echoed).replace(b"\0", b" ").decode("utf-8", "replace")
            except ValueError:
                decoded = ""
            await self.reply(f"535 5.7.8 Authentication failed for AUTH PLAIN {echoed} ({decoded.strip()})")
        else:  # every other script accepts any credentials
            self.authed = True
            await self.reply("235 2.7.0 Authentication successful")
        return True

    async def auth_response(self) -> bool:
        raw = await self.readline()
        if raw is None:
            raise ConnectionResetError("client left during AUTH")
        self.st.note(self.cid, ">", "***")
        if raw.strip() == b"*":
            await self.reply("501 5.7.0 Authentication aborted")
            return False
        return True

    async def data(self) -> bool:
        st = self.st
        await self.reply("354 End data with <CR><LF>.<CR><LF>")
        body: list[bytes] = []
        while True:
            raw = await self.readline()
            if raw is None:
                st.note(self.cid, "*", "client closed during DATA")
                return False
            if raw == b"\x00TOO-LONG":
                continue
            if raw in (b".\r\n", b".\n"):
                break
            if raw.startswith(b"."):
                raw = raw[1:]  # dot-unstuffing (RFC 5321 4.5.2)
            body.append(raw)
        content = b"".join(body)
        st.n += 1
        atomic_write(st.out / f"{st.n}.eml", content)
        st.bump("data_complete")
        st.note(self.cid, "*", f"DATA complete: {len(content)} bytes -> {st.n}.eml")
        self.reset_envelope()

        if self.script == "drop_after_data":
            st.note(self.cid, "*", "dropping connection without reply")
            # abort(): close at once, nothing more is written (no 250, no 4xx/5xx)
            self.writer.transport.abort()
            return False
        if self.script == "stall_after_data":
            st.note(self.cid, "*", "stalling: no reply")
            limit = self.srv.stall_seconds or None
            try:
                # keep reading (and discarding) until the client gives up
                await asyncio.wait_for(self._drain_until_eof(), limit)
            except asyncio.TimeoutError:
                st.note(self.cid, "*", "stall limit reached")
            return False
        st.bump("messages")
        await self.reply(f"250 2.0.0 Ok: queued as {secrets.token_hex(5).upper()}")
        return True

    async def _drain_until_eof(self) -> None:
        while True:
            raw = await self.readline()
            if raw is None:
                st = self.st
                st.note(self.cid, "*", "client closed while stalled")
                return
            self.st.note(self.cid, ">", raw.rstrip(b"\r\n").decode("utf-8", "replace") + "  (ignored, stalled)")


def parse_path(arg: str, keyword: str) -> str | None:
    """`FROM:<a@b> SIZE=1` -> `a@b`; `FROM:<>` -> ``; bad syntax -> None."""
    if not arg.upper().startswith(keyword):
        return None
    rest = arg[len(keyword):].strip()
    if rest.startswith("<"):
        end = rest.find(">")
        if end < 0:
            return None
        return rest[1:end]
    return rest.split(" ")[0] or None


class FaultServer:
    def __init__(self, args: argparse.Namespace):
        self.script = args.script
        self.state = State(Path(args.out))
        self.stall_seconds = args.stall_seconds
        self.tls_ctx: ssl.SSLContext | None = None
        if args.cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(args.cert, args.key)
            self.tls_ctx = ctx
        self.implicit = args.implicit_tls
        self.tasks: set[asyncio.Task] = set()

    async def on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            await Session(self, reader, writer).run()
        finally:
            self.tasks.discard(task)

    async def serve(self, host: str, port: int) -> None:
        server = await asyncio.start_server(
            self.on_client,
            host,
            port,
            limit=LINE_LIMIT,
            ssl=self.tls_ctx if self.implicit else None,
        )
        real_port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        sys.stdout.write(f"READY {real_port}\n")
        sys.stdout.flush()
        log.info("listening on %s:%d script=%s", host, real_port, self.script)
        await stop.wait()
        server.close()
        for t in list(self.tasks):
            t.cancel()
        self.state.transcript.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    p.add_argument("--script", required=True, choices=SCRIPTS)
    p.add_argument("--out", required=True, help="directory for stats.json, N.eml, transcript.log")
    p.add_argument("--cert", help="PEM certificate: enables STARTTLS")
    p.add_argument("--key", help="PEM private key")
    p.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte (needs --cert/--key)")
    p.add_argument(
        "--stall-seconds", type=float, default=0,
        help="stall_after_data: give up after this long (0 = until the client leaves)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if bool(args.cert) != bool(args.key):
        p.error("--cert and --key go together")
    if args.implicit_tls and not args.cert:
        p.error("--implicit-tls needs --cert/--key")
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="smtp_fault %(levelname)s: %(message)s",
    )
    Path(args.out).mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(FaultServer(args).serve(args.host, args.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
