"""A real SMTP server for the tests (aiosmtpd): saves every accepted message as NNNN.eml.

Usage: python smtp_server.py FOLDER PORT [none|starttls|tls]
  none      plain SMTP (the default)
  starttls  STARTTLS required before MAIL
  tls       TLS from the first byte (SMTPS)
With TLS, a CA and a certificate for localhost and 127.0.0.1 are made now (trustme) and the
CA is written to FOLDER/ca.pem. Prints "ready" once listening; runs until killed.
"""
import pathlib
import ssl
import sys
import time

from aiosmtpd.controller import Controller


class Save:
    def __init__(self, folder):
        self.folder = pathlib.Path(folder)
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        stem = self.folder / f"{self.count:04d}"
        stem.with_suffix(".rcpt").write_text("\n".join(envelope.rcpt_tos))
        stem.with_suffix(".eml").write_bytes(envelope.original_content or envelope.content)
        return "250 2.0.0 Message accepted for delivery"


def server_context(folder):
    import trustme

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(pathlib.Path(folder) / "ca.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


folder, port = sys.argv[1], int(sys.argv[2])
mode = sys.argv[3] if len(sys.argv) > 3 else "none"
handler = Save(folder)
if mode == "starttls":
    controller = Controller(handler, hostname="127.0.0.1", port=port,
                            tls_context=server_context(folder), require_starttls=True)
elif mode == "tls":
    controller = Controller(handler, hostname="127.0.0.1", port=port,
                            ssl_context=server_context(folder))
else:
    controller = Controller(handler, hostname="127.0.0.1", port=port)
controller.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
