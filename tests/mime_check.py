"""Parses one received email with Python's own email package (not lettre) and prints JSON:
headers, the MIME tree, the text and HTML bodies, the CSV attachment, and every inline part by
Content-ID with whether it is a PNG that decodes (signature, IHDR, inflated IDAT size).

Usage: python mime_check.py FILE.eml
"""
import base64
import email
import email.policy
import json
import struct
import sys
import zlib


def png_ok(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return False, "no PNG signature"
    pos, idat, width, height, colour = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    channels = {2: 3, 6: 4, 0: 1}.get(colour, 3)
    raw = zlib.decompress(idat)
    expected = height * (1 + width * channels)
    return len(raw) == expected, f"{width}x{height}"


def tree(part):
    if part.is_multipart():
        return {"type": part.get_content_type(), "parts": [tree(p) for p in part.iter_parts()]}
    return {"type": part.get_content_type(), "cid": part.get("Content-ID"),
            "disposition": part.get_content_disposition(), "filename": part.get_filename()}


message = email.message_from_bytes(open(sys.argv[1], "rb").read(), policy=email.policy.default)
out = {"subject": message["Subject"], "message_id": message["Message-ID"], "to": message["To"],
       "from": message["From"], "tree": tree(message), "text": None, "html": None, "csv": None,
       "inline": {}}
for part in message.walk():
    if part.is_multipart():
        continue
    kind = part.get_content_type()
    if kind == "text/plain" and part.get_content_disposition() != "attachment":
        out["text"] = part.get_content()
    elif kind == "text/html":
        out["html"] = part.get_content()
    elif kind == "text/csv":
        out["csv"] = part.get_content() if isinstance(part.get_content(), str) else part.get_content().decode()
    elif kind == "image/png":
        data = part.get_content()
        ok, size = png_ok(data)
        cid = (part.get("Content-ID") or "").strip("<>")
        out["inline"][cid] = {"png": ok, "size": size, "base64": base64.b64encode(data).decode()}
print(json.dumps(out))
