#!/usr/bin/python3
"""A loopback SMTP server that keeps every message it is given, to capture
what a list manager really sends. Each transaction becomes NNN.eml (the
message exactly as received) and a line in envelopes: file, MAIL FROM and
the RCPT TO addresses. Needs aiosmtpd (Debian's python3-aiosmtpd, which
mailman3 pulls in).

    capture.py PORT DIR
"""
import os
import sys
import time

from aiosmtpd.controller import Controller


class Keep:
    def __init__(self, dir):
        self.dir = dir
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        name = "%03d.eml" % self.n
        data = envelope.original_content  # bytes as sent, CRLF line ends
        with open(os.path.join(self.dir, name), "wb") as f:
            f.write(data)
        with open(os.path.join(self.dir, "envelopes"), "a") as f:
            f.write("%s %s %s\n" % (name, envelope.mail_from or "<>", " ".join(envelope.rcpt_tos)))
        return "250 kept"


port, dir = int(sys.argv[1]), sys.argv[2]
os.makedirs(dir, exist_ok=True)
c = Controller(Keep(dir), hostname="127.0.0.1", port=port, decode_data=False)
c.start()
try:
    while True:
        time.sleep(3600)
finally:
    c.stop()
