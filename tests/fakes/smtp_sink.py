#!/usr/bin/env python3
"""A loopback SMTP sink for tests (Debian's python3-aiosmtpd): records every mail to a dir.

Usage: smtp_sink.py --dir DIR [--port 0] [--tls-cert PEM --tls-key PEM [--implicit-tls]]
With a certificate the sink offers STARTTLS (or, with --implicit-tls, speaks TLS from the
first byte, as smtps:// does); each record's "tls" says whether that mail came over TLS.
Prints "PORT <n>" on stdout once listening. Each accepted mail is written as DIR/<n>.eml
(the DATA bytes as received, after dot-unstuffing) and DIR/<n>.json, the .eml first, so a
reader that sees the .json sees both. The .json is what Python's own email package (an
independent MIME reader) makes of the mail:
  {"mail_from", "rcpt_tos", "tls", "peer" (the client's host:port: one per connection), "headers": {name: decoded value}, "content_type", "charset",
   "body": the decoded text, "defects": [...]}

DIR/sessions.stats (JSON, rewritten atomically at each connect and disconnect) counts the
SMTP connections: {"connections": opened so far, "open": open now, "max_open": the most open
at once}.

Recipients whose local part starts with "reject" get 550 (permanent), "later" get 451
(transient): how a test makes the server say no.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP


class Recorder:
    def __init__(self, directory):
        self.dir = directory
        self.n = 0
        self.connections = 0
        self.open = 0
        self.max_open = 0

    def count_session(self, delta):
        if delta > 0:
            self.connections += 1
        self.open += delta
        self.max_open = max(self.max_open, self.open)
        path = os.path.join(self.dir, "sessions.stats")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump({"connections": self.connections, "open": self.open,
                       "max_open": self.max_open}, f)
        os.rename(path + ".tmp", path)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if local.startswith("reject"):
            return "550 5.1.1 no such mailbox"
        if local.startswith("later"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        base = os.path.join(self.dir, "%06d" % self.n)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(base + ".eml.tmp", base + ".eml")
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "peer": "%s:%s" % tuple(session.peer[:2]),  # the client's address: one per session
            "headers": {k: str(v) for k, v in msg.items()},
            "content_type": msg.get_content_type(),
            "charset": msg.get_content_charset(),
            "body": msg.get_content() if not msg.is_multipart() else None,
            "defects": [repr(d) for d in msg.defects]
            + [repr(d) for v in msg.values() for d in getattr(v, "defects", ())],
        }
        with open(base + ".json.tmp", "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 Message accepted for delivery"


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--implicit-tls", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    handler = Recorder(args.dir)
    ctx = None
    if args.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    loop = asyncio.get_running_loop()

    class CountingSMTP(SMTP):
        # Once per connection: STARTTLS calls connection_made again, a TLS failure may call
        # connection_lost twice.
        counted = False

        def connection_made(self, transport):
            if not self.counted:
                self.counted = True
                handler.count_session(+1)
            super().connection_made(transport)

        def connection_lost(self, exc):
            if self.counted:
                self.counted = False
                handler.count_session(-1)
            super().connection_lost(exc)

    def factory():
        starttls = ctx if (ctx is not None and not args.implicit_tls) else None
        return CountingSMTP(handler, hostname="sink.test", data_size_limit=10 * 1024 * 1024,
                    tls_context=starttls)

    server = await loop.create_server(
        factory, host="127.0.0.1", port=args.port,
        ssl=ctx if args.implicit_tls else None)
    port = server.sockets[0].getsockname()[1]
    print("PORT %d" % port, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
