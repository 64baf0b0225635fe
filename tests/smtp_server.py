"""A real SMTP server for the tests (aiosmtpd): saves every accepted message as NNNN.eml.

Usage: python smtp_server.py FOLDER PORT   (prints "ready" once listening; runs until killed)
"""
import pathlib
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


folder, port = sys.argv[1], int(sys.argv[2])
controller = Controller(Save(folder), hostname="127.0.0.1", port=port)
controller.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
