#!/usr/bin/env python3
"""Python's smtplib as a submission client, for tests/submission.rs.

usage: submit.py starttls|tls HOST PORT LOGIN PASSWORD FROM TO

Runs one session: over STARTTLS (after checking that AUTH before TLS is refused) or over
implicit TLS (RFC 8314), sends malformed AUTH payloads, a wrong password, then
authenticates with PLAIN (or LOGIN on the implicit-TLS port) and submits one message.
Prints one JSON object with every reply it got, as [code, text]. The test server's
certificate is self-signed, so it is not verified.
"""
import base64
import json
import smtplib
import ssl
import sys

mode, host, port, login, password, sender, rcpt = sys.argv[1:8]
ctx = ssl._create_unverified_context()
out = {}


def reply(r):
    code, text = r
    return [code, text.decode("utf-8", "replace")]


def b64(data):
    return base64.b64encode(data).decode()


if mode == "tls":
    s = smtplib.SMTP_SSL(host, int(port), context=ctx, timeout=20)
else:
    s = smtplib.SMTP(host, int(port), timeout=20)
    s.ehlo("client.test")
    out["ehlo_auth_before_tls"] = (s.esmtp_features.get("auth") or "").strip() or None
    out["auth_before_tls"] = reply(s.docmd("AUTH", "PLAIN " + b64(b"\0" + login.encode() + b"\0" + password.encode())))
    s.starttls(context=ctx)
s.ehlo("client.test")
out["ehlo_auth"] = (s.esmtp_features.get("auth") or "").strip() or None
out["mail_before_auth"] = reply(s.docmd("MAIL", "FROM:<%s>" % sender))
out["bad_base64"] = reply(s.docmd("AUTH", "PLAIN not*base64"))
out["bad_structure"] = reply(s.docmd("AUTH", "PLAIN " + b64(login.encode() + b"\0" + password.encode())))
out["oversized"] = reply(s.docmd("AUTH", "PLAIN " + b64(b"\0" + login.encode() + b"\0" + b"p" * 600)))
out["unknown_mechanism"] = reply(s.docmd("AUTH", "CRAM-MD5"))
out["challenge"] = reply(s.docmd("AUTH", "LOGIN"))
out["cancel"] = reply(s.docmd("*"))
s.user, s.password = login, password + "-wrong"
try:
    s.auth("PLAIN", s.auth_plain)
    out["wrong_password"] = [235, "accepted"]
except smtplib.SMTPAuthenticationError as e:
    out["wrong_password"] = [e.smtp_code, e.smtp_error.decode("utf-8", "replace")]
s.user, s.password = login, password
mechanism = "LOGIN" if mode == "tls" else "PLAIN"
out["auth"] = list(s.auth(mechanism, s.auth_login if mechanism == "LOGIN" else s.auth_plain))
out["auth"][1] = out["auth"][1].decode("utf-8", "replace")
out["auth_again"] = reply(s.docmd("AUTH", "PLAIN " + b64(b"\0" + login.encode() + b"\0" + password.encode())))
message = "From: <%s>\r\nTo: <%s>\r\nSubject: smtplib %s\r\n\r\nHello from Python.\r\n" % (sender, rcpt, mode)
out["refused"] = s.sendmail(sender, [rcpt], message)
out["quit"] = reply(s.quit())
print(json.dumps(out))
