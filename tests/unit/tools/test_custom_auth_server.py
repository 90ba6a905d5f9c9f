#!/usr/bin/python3
"""Self-test of tools/custom-auth-server.py: starts the real script with certificates made
here (openssl), and checks every answer of API 0.5.0 and every test mode with urllib /
http.client over TLS: users-file decisions (pass with attributes and lifetime expiry, bad
password and unknown user 403 0x86, no credentials 0x87, enhanced authentication as
user:password, AUTH re-authentication), request checks (api-version missing or other, path,
method, Content-Type, body, type), test modes (pass, deny, expire, slow, status, drop, 422,
invalid JSON, wrong Content-Type, cache), keep-alive (several requests, one TLS handshake),
mTLS (no certificate and a foreign certificate refused, a CA-signed one accepted, its subject
seen), --hash-password, --lifetime, and that no password or authentication data reaches the
server's output. Exit 0 pass, 1 fail, 77 skip (no openssl)."""

import base64
import datetime
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("RINGMQ_SRC", os.path.join(HERE, "..", "..", ".."))
SERVER = os.path.join(SRC, "tools", "custom-auth-server.py")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
SECRET = "s3cret-Pa55"
FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print(f"FAIL: {what}", file=sys.stderr, flush=True)


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def make_certs(d):
    p = lambda n: os.path.join(d, n)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=test CA", "-keyout", p("ca.key"),
            "-out", p("ca.crt"))
    for name, cn, ext in (("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
                          ("client", "broker-client", "keyUsage=digitalSignature")):
        openssl("req", "-new", *ec, "-subj", f"/CN={cn}", "-keyout", p(name + ".key"),
                "-out", p(name + ".csr"))
        with open(p(name + ".ext"), "w") as f:
            f.write(ext + "\n")
        openssl("x509", "-req", "-in", p(name + ".csr"), "-CA", p("ca.crt"), "-CAkey",
                p("ca.key"), "-CAcreateserial", "-days", "2", "-extfile", p(name + ".ext"),
                "-out", p(name + ".crt"))
    openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=rogue", "-keyout", p("rogue.key"),
            "-out", p("rogue.crt"))


class Srv:
    """One running server; its stderr goes to a file read at the end."""

    def __init__(self, d, *extra, env=None):
        self.d = d
        self.portfile = os.path.join(d, "port")
        if os.path.exists(self.portfile):
            os.unlink(self.portfile)
        self.errpath = os.path.join(d, "server-%d.err" % time.monotonic_ns())
        self.err = open(self.errpath, "w")
        self.proc = subprocess.Popen(
            [PY, SERVER, "--port", "0", "--port-file", self.portfile, "--cert",
             os.path.join(d, "server.crt"), "--key", os.path.join(d, "server.key"), *extra],
            stdout=subprocess.DEVNULL, stderr=self.err, env=env)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.portfile):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start: " + open(self.errpath).read())
            time.sleep(0.05)
        self.port = int(open(self.portfile).read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        return open(self.errpath).read()


def ctx(d, client=None):
    c = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
    if client:
        c.load_cert_chain(os.path.join(d, client + ".crt"), os.path.join(d, client + ".key"))
    return c


def post(srv, body, c, query="?api-version=0.5.0", path="/", ctype="application/json",
         method="POST", timeout=30):
    """One request on a new connection. Returns (status, headers, body bytes); raises on
    transport errors. http.client sends no Content-Type unless one is given."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=c, timeout=timeout)
    try:
        conn.request(method, path + query, body=data if method == "POST" else None,
                     headers={"Content-Type": ctype} if ctype else {})
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        conn.close()


def b64(s):
    return base64.b64encode(s.encode()).decode()


def connect_body(user, password):
    return {"type": "connect", "username": user, "password": b64(password)}


def set_mode(d, text):
    with open(os.path.join(d, "mode"), "w") as f:
        f.write(text)


def expiry_in(body, lo, hi):
    e = json.loads(body).get("expiry")
    if not e:
        return False
    t = datetime.datetime.strptime(e, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    return lo <= t - time.time() <= hi


# ---- cases ---------------------------------------------------------------------------------

def test_users(d, srv, c):
    st, h, b = post(srv, connect_body("alice", SECRET), c)
    check(st == 200 and h.get("Content-Type") == "application/json", "alice passes")
    check(json.loads(b) == {"attributes": {"group": "g1", "city": "seattle"}}, "alice attributes")
    check(h.get("Cache-Control") is None, "no Cache-Control without cache mode")
    st, _, b = post(srv, connect_body("bob", "bobpw"), c)
    check(st == 200 and expiry_in(b, 3500, 3601), "bob's lifetime becomes expiry")
    st, h, b = post(srv, connect_body("alice", "wrong"), c)
    check(st == 403 and json.loads(b)["reason"] == 134, "bad password: 403 134")
    check(h.get("Content-Type") == "application/json", "403 is JSON")
    st, _, b = post(srv, connect_body("mallory", SECRET), c)
    check(st == 403 and json.loads(b)["reason"] == 134, "unknown user: 403 134")
    st, _, b = post(srv, {"type": "connect", "username": "alice"}, c)
    check(st == 403 and json.loads(b)["reason"] == 135, "no password: 403 135")
    st, _, b = post(srv, {"type": "connect"}, c)
    check(st == 403 and json.loads(b)["reason"] == 135, "no credentials: 403 135")
    ea = {"method": "ringmq-userpass", "data": b64("alice:" + SECRET)}
    st, _, b = post(srv, {"type": "connect", "enhancedAuthentication": ea}, c)
    check(st == 200 and json.loads(b)["attributes"]["group"] == "g1", "enhanced auth passes")
    st, _, b = post(srv, {"type": "auth", "enhancedAuthentication": ea}, c)
    check(st == 200, "re-authentication passes")
    st, _, b = post(srv, {"type": "auth", "enhancedAuthentication":
                          {"method": "ringmq-userpass", "data": b64("alice:nope")}}, c)
    check(st == 403 and json.loads(b)["reason"] == 134, "re-authentication denied")
    st, _, b = post(srv, {"type": "auth", "enhancedAuthentication":
                          {"method": "OTHER", "data": b64("alice:" + SECRET)}}, c)
    check(st == 403 and json.loads(b)["reason"] == 135, "method not in authMethods")
    st, h, _ = post(srv, {"type": "auth"}, c)
    check(st == 400 and h.get("Content-Type") is None, "auth without enhancedAuthentication")


def test_request_checks(d, srv, c):
    body = connect_body("alice", SECRET)
    st, h, b = post(srv, body, c, query="")
    check(st == 400 and b == b"missing api-version" and h.get("Content-Type") is None,
          "missing api-version: 400 without Content-Type")
    st, h, b = post(srv, body, c, query="?api-version=0.4.0")
    check(st == 422 and json.loads(b) == {"supportedVersions": ["0.5.0"]}, "other version: 422")
    st, _, _ = post(srv, body, c, path="/other")
    check(st == 404, "other path: 404")
    st, _, _ = post(srv, body, c, method="GET")
    check(st == 405, "GET: 405")
    st, _, b = post(srv, body, c, ctype="text/plain")
    check(st == 400 and b == b"invalid content-type", "text/plain request: 400")
    st, _, _ = post(srv, body, c, ctype="application/json; charset=utf-8")
    check(st == 400, "Content-Type with parameters: 400 (as the sample)")
    st, _, _ = post(srv, body, c, ctype=None)
    check(st == 200, "no Content-Type: accepted")
    st, _, _ = post(srv, b"{not json", c)
    check(st == 400, "invalid JSON request: 400")
    st, _, _ = post(srv, {"type": "CONNECT"}, c)
    check(st == 400, "type is case-sensitive: 400")
    st, _, _ = post(srv, b"", c)
    check(st == 400, "empty body: 400")


def test_modes(d, srv, c):
    body = connect_body("alice", SECRET)
    set_mode(d, "pass")
    st, _, b = post(srv, connect_body("nobody", "x"), c)
    check(st == 200 and json.loads(b) == {"attributes": {}}, "mode pass: anyone passes")
    set_mode(d, "deny")
    st, _, b = post(srv, body, c)
    check(st == 403 and json.loads(b)["reason"] == 135, "mode deny: 403 135")
    set_mode(d, "deny:134")
    st, _, b = post(srv, body, c)
    check(st == 403 and json.loads(b)["reason"] == 134, "mode deny:134")
    set_mode(d, "expire:5")
    st, _, b = post(srv, body, c)
    check(st == 200 and expiry_in(b, 3, 6), "mode expire:5 on a valid user")
    set_mode(d, "pass,expire:-10")
    st, _, b = post(srv, body, c)
    check(st == 200 and expiry_in(b, -12, -8), "mode expire:-10 gives a past expiry")
    set_mode(d, "slow:1.5,pass")
    t0 = time.monotonic()
    st, _, _ = post(srv, body, c)
    check(st == 200 and time.monotonic() - t0 >= 1.5, "mode slow:1.5")
    set_mode(d, "status:500")
    st, h, b = post(srv, body, c)
    check(st == 500 and h.get("Content-Type") is None and b, "mode status:500, no Content-Type")
    set_mode(d, "status:503")
    st, _, _ = post(srv, body, c)
    check(st == 503, "mode status:503")
    set_mode(d, "drop")
    try:
        post(srv, body, c)
        check(False, "mode drop: the request must fail")
    except (http.client.HTTPException, OSError):
        pass
    set_mode(d, "422")
    st, _, b = post(srv, body, c)
    check(st == 422 and json.loads(b) == {"supportedVersions": ["9.9.9"]}, "mode 422")
    set_mode(d, "invalid-json")
    st, h, b = post(srv, body, c)
    check(st == 200 and h.get("Content-Type") == "application/json", "mode invalid-json: 200")
    try:
        json.loads(b)
        check(False, "mode invalid-json: body must not parse")
    except ValueError:
        pass
    set_mode(d, "wrong-content-type")
    st, h, b = post(srv, body, c)
    check(st == 200 and h.get("Content-Type") == "text/plain" and json.loads(b)["attributes"],
          "mode wrong-content-type")
    set_mode(d, "cache:60")
    st, h, _ = post(srv, body, c)
    check(st == 200 and h.get("Cache-Control") == "max-age=60", "mode cache:60 on 200")
    st, h, _ = post(srv, connect_body("alice", "wrong"), c)
    check(st == 403 and h.get("Cache-Control") == "max-age=60", "mode cache:60 on 403")
    set_mode(d, "no-such-mode")
    st, _, _ = post(srv, body, c)
    check(st == 200, "an invalid mode file falls back to --mode")
    set_mode(d, "")


def test_keepalive(d, srv, c):
    before = stats(srv, c)
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=c, timeout=30)
    for i in range(5):
        conn.request("POST", "/?api-version=0.5.0", json.dumps(connect_body("alice", SECRET)),
                     {"Content-Type": "application/json", "X-Test": "v%d" % i})
        r = conn.getresponse()
        r.read()
        check(r.status == 200, "keep-alive request %d" % i)
    conn.close()
    after = stats(srv, c)
    check(after["handshakes"] - before["handshakes"] == 2,  # the 5 requests + this GET
          "5 requests on one connection make one handshake: %r" % (after, ))
    check(after["last_headers"].get("X-Test") == "v4", "custom headers reach the server")


def stats(srv, c):
    with urllib.request.urlopen(f"https://127.0.0.1:{srv.port}/_stats", context=c,
                                timeout=30) as r:
        return json.loads(r.read())


def test_mtls(d, users):
    srv = Srv(d, "--users", users, "--client-ca", os.path.join(d, "ca.crt"), "--stats")
    try:
        for who in (None, "rogue"):
            try:
                post(srv, connect_body("alice", SECRET), ctx(d, who))
                check(False, f"mTLS: client {who} must be refused")
            except (OSError, http.client.HTTPException):
                pass
        st, _, _ = post(srv, connect_body("alice", SECRET), ctx(d, "client"))
        check(st == 200, "mTLS: CA-signed client accepted")
        s = stats(srv, ctx(d, "client"))
        check(s["last_client_cert"] == {"commonName": "broker-client"}, "mTLS: subject seen")
        check(s["handshake_failures"] >= 2, "mTLS: refused handshakes counted")
    finally:
        srv.stop()


def test_lifetime(d, users):
    srv = Srv(d, "--users", users, "--lifetime", "1")
    try:
        srv.proc.wait(30)
        check(srv.proc.returncode == 0, "--lifetime: exits by itself with 0")
    except subprocess.TimeoutExpired:
        check(False, "--lifetime: still running after 30 s")
    srv.stop()


def make_users(d):
    def entry(user, pw, *extra):
        out = subprocess.run([PY, SERVER, "--hash-password", user, "--iterations", "1000",
                              *extra], input=pw + "\n", capture_output=True, text=True,
                             check=True)
        return json.loads(out.stdout)["users"][user]
    alice = entry("alice", SECRET, "--attr", "group=g1", "--attr", "city=seattle")
    check(alice["password"].startswith("pbkdf2-sha256$1000$") and SECRET not in json.dumps(alice),
          "--hash-password prints a PBKDF2 entry")
    env = dict(os.environ, BOBPW="bobpw")
    out = subprocess.run([PY, SERVER, "--hash-password", "bob", "--password-env", "BOBPW",
                          "--iterations", "1000", "--user-lifetime", "3600"],
                         capture_output=True, text=True, check=True, env=env)
    bob = json.loads(out.stdout)["users"]["bob"]
    check(bob["lifetimeSeconds"] == 3600, "--user-lifetime")
    path = os.path.join(d, "users.json")
    with open(path, "w") as f:
        json.dump({"users": {"alice": alice, "bob": bob}, "authMethods": ["ringmq-userpass"]}, f)
    return path


def main():
    if not shutil.which("openssl"):
        print("SKIP: openssl not found", file=sys.stderr)
        return 77
    d = tempfile.mkdtemp(prefix="custom-auth-test-")
    try:
        make_certs(d)
        users = make_users(d)
        logf = os.path.join(d, "requests.jsonl")
        srv = Srv(d, "--users", users, "--mode-file", os.path.join(d, "mode"), "--stats",
                  "--log", logf)
        c = ctx(d)
        try:
            test_users(d, srv, c)
            test_request_checks(d, srv, c)
            test_modes(d, srv, c)
            test_keepalive(d, srv, c)
        finally:
            err = srv.stop()
        check(srv.proc.returncode == 0, "SIGTERM: clean exit")
        log = open(logf).read() if os.path.exists(logf) else ""
        check(log.count("\n") >= 20, "--log has a line per request")
        for secret in (SECRET, b64(SECRET), b64("alice:" + SECRET), "bobpw", b64("bobpw")):
            check(secret not in err and secret not in log, "no secret in the output")
        test_mtls(d, users)
        test_lifetime(d, users)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("custom-auth-server self-test: %s" % ("%d failed" % len(FAILS) if FAILS else "ok"),
          file=sys.stderr)
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
