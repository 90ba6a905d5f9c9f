#!/usr/bin/python3
"""Reference HTTPS server for the Custom authentication API 0.5.0 (Azure IoT Operations MQTT).

The broker POSTs the credentials of each CONNECT (and of each MQTT v5 re-authentication) to
<endpoint>/?api-version=0.5.0 and this server answers 200 (pass, with attributes and an optional
expiry), 403 (deny, with an MQTT reason code) or 422 (unsupported api-version). Python standard
library only.

Quick start:
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \\
      -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \\
      -keyout auth.key -out auth.crt
  echo 's3cret' | tools/custom-auth-server.py --hash-password alice --attr group=g1 > users.json
  tools/custom-auth-server.py --cert auth.crt --key auth.key --users users.json --port 8443

Users file (JSON):
  {"users": {"alice": {"password": "pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>",
                       "attributes": {"group": "g1"},
                       "lifetimeSeconds": 3600}},
   "authMethods": ["ringmq-userpass"]}
  - password: PBKDF2-HMAC-SHA256 hash (--hash-password prints an entry).
  - attributes: string map returned on success (optional).
  - lifetimeSeconds: the pass carries expiry = now + lifetime (optional; no expiry without it).
  - authMethods: the MQTT v5 Authentication Methods accepted (optional; default: any). With
    enhanced authentication (CONNECT or AUTH), the Authentication Data is "<user>:<password>".

Credentials: a CONNECT is checked with enhancedAuthentication when present, otherwise with
username + password. Unknown user or wrong password: 403 reason 134 (0x86, bad user name or
password); no credentials at all: 403 reason 135 (0x87, not authorized).

Test modes (--mode, or the environment variable CUSTOM_AUTH_MODE; --mode-file is read on every
request and, when it exists and is not empty, replaces them). Comma-separated, one outcome plus
modifiers:
  outcomes:  users (default: decide from the users file) | pass | deny[:REASON] | status:N
             (that status, text body, no Content-Type) | drop (close without answering) |
             422 | invalid-json | wrong-content-type (a pass body sent as text/plain)
  modifiers: slow:SECONDS (answer after a delay) | expire:SECONDS (every 200 carries
             expiry = now + SECONDS; may be negative) | cache:N (Cache-Control: max-age=N on 200
             and 403)
Example: --mode pass,expire:5,cache:60

Other options: --client-ca requires a client certificate signed by that CA (mTLS); --lifetime
makes the server exit by itself; --stats serves GET /_stats (JSON counters: connections, TLS
handshakes, requests, the last request's headers, connect requests that carried "certs" and
the last connect request's "certs" PEM; a test aid, off by default); --log appends
one JSON line per request (never passwords or authentication data).
"""

import argparse
import base64
import binascii
import datetime
import getpass
import hashlib
import hmac
import http.server
import json
import os
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse

API_VERSION = "0.5.0"
MAX_BODY = 1 << 20
HASH_SCHEME = "pbkdf2-sha256"
DEFAULT_ITERATIONS = 600000
VERIFY_CACHE_MAX = 10000
HANDSHAKE_TIMEOUT = 10.0


def log(msg):
    print(f"custom-auth-server: {msg}", file=sys.stderr, flush=True)


# ---- passwords ----------------------------------------------------------------------------

def hash_password(password, iterations=DEFAULT_ITERATIONS, salt=None):
    salt = salt if salt is not None else secrets.token_bytes(16)
    dk = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
    return "%s$%d$%s$%s" % (HASH_SCHEME, iterations, base64.b64encode(salt).decode(),
                            base64.b64encode(dk).decode())


class Verifier:
    """PBKDF2 checks, remembered per (stored hash, SHA-256 of the password) so that a connect
    storm with the same credentials does not cost one PBKDF2 each."""

    def __init__(self):
        self.lock = threading.Lock()
        self.memo = {}

    def check(self, stored, password):
        try:
            scheme, iters, salt, want = stored.split("$")
            iters = int(iters)
            salt = base64.b64decode(salt, validate=True)
            want = base64.b64decode(want, validate=True)
        except (ValueError, binascii.Error):
            return False
        if scheme != HASH_SCHEME or not 1 <= iters <= 10_000_000:
            return False
        key = (stored, hashlib.sha256(password).digest())
        with self.lock:
            if key in self.memo:
                return self.memo[key]
        ok = hmac.compare_digest(hashlib.pbkdf2_hmac("sha256", password, salt, iters), want)
        with self.lock:
            if len(self.memo) >= VERIFY_CACHE_MAX:
                self.memo.clear()
            self.memo[key] = ok
        return ok


# ---- users file ---------------------------------------------------------------------------

def load_users(path):
    if not path:
        return {"users": {}, "authMethods": None}
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or not isinstance(doc.get("users", {}), dict):
        raise ValueError(f"{path}: expected an object with a \"users\" object")
    for name, u in doc.get("users", {}).items():
        if not isinstance(u, dict) or not isinstance(u.get("password"), str):
            raise ValueError(f"{path}: user {name!r} needs a \"password\" hash")
        attrs = u.get("attributes", {})
        if not isinstance(attrs, dict) or not all(isinstance(v, str) for v in attrs.values()):
            raise ValueError(f"{path}: user {name!r}: attributes must map strings to strings")
        life = u.get("lifetimeSeconds")
        if life is not None and (not isinstance(life, int) or isinstance(life, bool)):
            raise ValueError(f"{path}: user {name!r}: lifetimeSeconds must be an integer")
    methods = doc.get("authMethods")
    if methods is not None and not (isinstance(methods, list) and
                                    all(isinstance(m, str) for m in methods)):
        raise ValueError(f"{path}: authMethods must be a list of strings")
    return {"users": doc.get("users", {}), "authMethods": methods}


# ---- modes --------------------------------------------------------------------------------

OUTCOMES = ("users", "pass", "deny", "status", "drop", "422", "invalid-json",
            "wrong-content-type")
MODIFIERS = ("slow", "expire", "cache")


def parse_mode(text):
    """'pass,slow:2' -> {'outcome': 'pass', 'arg': None, 'slow': 2.0, ...}"""
    mode = {"outcome": "users", "arg": None, "slow": 0.0, "expire": None, "cache": None}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, arg = part.partition(":")
        name = name.lower()
        if name in OUTCOMES:
            mode["outcome"] = name
            if name in ("deny", "status") and arg:
                mode["arg"] = int(arg)
            elif name == "status":
                raise ValueError("status needs a code: status:500")
        elif name in MODIFIERS and arg:
            mode[name] = float(arg) if name == "slow" else int(arg)
        else:
            raise ValueError(f"unknown mode {part!r}")
    return mode


def rfc3339(t):
    return datetime.datetime.fromtimestamp(int(t), datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


# ---- the server ---------------------------------------------------------------------------

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {"connections": 0, "handshakes": 0, "handshake_failures": 0, "resumed": 0,
                  "requests": 0, "connect": 0, "auth": 0, "last_headers": {},
                  "last_client_cert": None, "with_certs": 0, "last_certs": None}

    def add(self, key, n=1):
        with self.lock:
            self.c[key] += n

    def set(self, key, value):
        with self.lock:
            self.c[key] = value

    def snapshot(self):
        with self.lock:
            return json.loads(json.dumps(self.c))


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Python's default backlog is 5: a broker's pool opening its connections at once (64 in a
    # storm) lost SYNs and waited for their retransmission (1-3 s, past a request timeout)
    request_queue_size = 256

    def __init__(self, addr, ctx, cfg):
        super().__init__(addr, Handler)
        self.ctx, self.cfg = ctx, cfg
        self.stats = Stats()
        self.verifier = Verifier()
        self.log_lock = threading.Lock()

    def get_request(self):
        # The TLS handshake runs in the connection's thread (Handler.setup), so a client that
        # stalls its handshake does not hold up accept().
        sock, addr = self.socket.accept()
        self.stats.add("connections")
        return self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        log(f"connection from {client_address[0]}: {sys.exc_info()[1]!r}")

    def mode(self):
        path = self.cfg.mode_file
        if path:
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read().strip()
                if text:
                    return parse_mode(text)
            except FileNotFoundError:
                pass
            except ValueError as e:
                log(f"{path}: {e}; using --mode")
        return self.cfg.mode

    def write_log(self, entry):
        if not self.cfg.log:
            return
        with self.log_lock, open(self.cfg.log, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the broker reuses its connections
    # buffered: headers and body leave in one write (one TLS record), as HTTP servers usually
    # send a small response, so the broker reads each answer with fewer system calls
    wbufsize = 1 << 16
    server_version = "ringmq-custom-auth/" + API_VERSION

    def setup(self):
        self.request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError) as e:
            self.server.stats.add("handshake_failures")
            log(f"TLS handshake with {self.client_address[0]} failed: {e}")
            raise
        self.request.settimeout(None)
        st = self.server.stats
        st.add("handshakes")
        if self.request.session_reused:
            st.add("resumed")
        cert = self.request.getpeercert()
        st.set("last_client_cert", dict(x[0] for x in cert.get("subject", ())) if cert else None)
        super().setup()

    def log_message(self, fmt, *args):  # the request line is logged by respond()
        pass

    # -- helpers

    def send(self, status, body=None, ctype="application/json", headers=()):
        data = b"" if body is None else (body if isinstance(body, bytes) else
                                         json.dumps(body).encode())
        self.send_response(status)
        if ctype and body is not None:
            self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def error(self, status, text):
        # like the sample server: error strings come without a Content-Type
        self.send(status, text.encode(), ctype=None)

    def do_GET(self):
        if self.path == "/_stats" and self.server.cfg.stats:
            return self.send(200, self.server.stats.snapshot())
        self.error(405 if urllib.parse.urlsplit(self.path).path == "/" else 404,
                   "method not allowed")

    do_PUT = do_DELETE = do_PATCH = do_GET

    def read_body(self):
        n = self.headers.get("Content-Length")
        if n is None or not n.isdigit():
            return None
        n = int(n)
        if n > MAX_BODY:
            return None
        return self.rfile.read(n)

    # -- POST /

    def do_POST(self):
        st = self.server.stats
        st.add("requests")
        st.set("last_headers", {k: v for k, v in self.headers.items()})
        url = urllib.parse.urlsplit(self.path)
        body = self.read_body()
        ctype = self.headers.get("Content-Type")
        # the sample server's order of checks (AIO-INTERFACES.md 1.5)
        if ctype is not None and ctype.strip().lower() != "application/json":
            return self.error(400, "invalid content-type")
        if not body:
            self.close_connection = body is None
            return self.error(400, "missing body")
        if url.path != "/":
            return self.error(404, "not found")
        versions = urllib.parse.parse_qs(url.query).get("api-version")
        if not versions:
            return self.error(400, "missing api-version")
        if versions[0] != API_VERSION:
            return self.send(422, {"supportedVersions": [API_VERSION]})
        try:
            req = json.loads(body)
        except ValueError:
            return self.error(400, "invalid JSON body")
        if not isinstance(req, dict) or req.get("type") not in ("connect", "auth"):
            return self.error(400, "type must be \"connect\" or \"auth\"")
        st.add(req["type"])
        if req["type"] == "connect":
            certs = req.get("certs") if isinstance(req.get("certs"), str) else None
            st.add("with_certs", certs is not None)
            st.set("last_certs", certs)
        self.answer(req, self.server.mode())

    def answer(self, req, mode):
        if mode["slow"] > 0:
            time.sleep(mode["slow"])
        outcome = mode["outcome"]
        user = req.get("username") if isinstance(req.get("username"), str) else None
        if outcome == "drop":
            self.close_connection = True
            self.request.shutdown(socket.SHUT_RDWR)
            return self.respond(req, user, "dropped")
        if outcome == "status":
            self.send(mode["arg"], b"test mode status", ctype=None)
            return self.respond(req, user, mode["arg"])
        if outcome == "422":
            self.send(422, {"supportedVersions": ["9.9.9"]})
            return self.respond(req, user, 422)
        if outcome == "invalid-json":
            self.send(200, b"{\"attributes\": {", headers=self.cache_headers(mode))
            return self.respond(req, user, 200)
        if outcome == "deny":
            return self.deny(req, user, mode["arg"] or 135, "denied by test mode", mode)
        if outcome in ("pass", "wrong-content-type"):
            entry = self.server.cfg.users["users"].get(user or "", {})
            return self.allow(req, user, entry, mode,
                              "text/plain" if outcome != "pass" else "application/json")
        self.decide(req, user, mode)

    def decide(self, req, user, mode):
        """Checks the credentials against the users file."""
        users = self.server.cfg.users
        ea = req.get("enhancedAuthentication")
        if ea is not None:
            if not isinstance(ea, dict) or not isinstance(ea.get("method"), str):
                return self.error(400, "invalid enhancedAuthentication")
            allowed = users["authMethods"]
            if allowed is not None and ea["method"] not in allowed:
                return self.deny(req, user, 135, "authentication method not accepted", mode)
            try:
                raw = base64.b64decode(ea.get("data", ""), validate=True)
            except (binascii.Error, TypeError):
                return self.deny(req, user, 135, "authentication data is not base64", mode)
            name, sep, password = raw.partition(b":")
            if not sep:
                return self.deny(req, user, 135, "authentication data is not user:password",
                                 mode)
            try:
                user = name.decode("utf-8")
            except UnicodeDecodeError:
                return self.deny(req, None, 134, "bad user name or password", mode)
        elif req["type"] == "auth":
            return self.error(400, "auth request without enhancedAuthentication")
        elif user is not None and isinstance(req.get("password"), str):
            try:
                password = base64.b64decode(req["password"], validate=True)
            except binascii.Error:
                return self.error(400, "password is not base64")
        else:
            return self.deny(req, user, 135, "no credentials", mode)
        entry = users["users"].get(user)
        if entry is None or not self.server.verifier.check(entry["password"], password):
            return self.deny(req, user, 134, "bad user name or password", mode)
        self.allow(req, user, entry, mode, "application/json")

    def cache_headers(self, mode):
        return [("Cache-Control", "max-age=%d" % mode["cache"])] if mode["cache"] else []

    def allow(self, req, user, entry, mode, ctype):
        body = {"attributes": dict(entry.get("attributes", {}))}
        life = mode["expire"] if mode["expire"] is not None else entry.get("lifetimeSeconds")
        if life is not None:
            body["expiry"] = rfc3339(time.time() + life)
        self.send(200, json.dumps(body).encode(), ctype=ctype, headers=self.cache_headers(mode))
        self.respond(req, user, 200, expiry=body.get("expiry"))

    def deny(self, req, user, reason, message, mode):
        self.send(403, {"reason": reason, "message": message}, headers=self.cache_headers(mode))
        self.respond(req, user, 403, reason=reason)

    def respond(self, req, user, status, **extra):
        """One log line per request: never the password or the authentication data."""
        ea = req.get("enhancedAuthentication")
        entry = {"time": rfc3339(time.time()), "type": req.get("type"), "user": user,
                 "method": ea.get("method") if isinstance(ea, dict) else None,
                 "certs": isinstance(req.get("certs"), str), "status": status}
        entry.update(extra)
        log(" ".join(f"{k}={json.dumps(v)}" for k, v in entry.items()
                 if k != "time" and v is not None))
        self.server.write_log(entry)


# ---- command line -------------------------------------------------------------------------

def make_context(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        ctx.load_verify_locations(args.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def hash_mode(args):
    if args.password_env:
        password = os.environ.get(args.password_env)
        if password is None:
            sys.exit(f"custom-auth-server: environment variable {args.password_env} is not set")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.hash_password}: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    entry = {"password": hash_password(password.encode(), args.iterations)}
    attrs = {}
    for a in args.attr:
        k, sep, v = a.partition("=")
        if not sep or not k:
            sys.exit(f"custom-auth-server: --attr wants KEY=VALUE, got {a!r}")
        attrs[k] = v
    if attrs:
        entry["attributes"] = attrs
    if args.user_lifetime is not None:
        entry["lifetimeSeconds"] = args.user_lifetime
    print(json.dumps({"users": {args.hash_password: entry}}, indent=2))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8443, help="listen port (0: any free port)")
    p.add_argument("--cert", help="server certificate chain (PEM)")
    p.add_argument("--key", help="server private key (PEM)")
    p.add_argument("--client-ca", help="require client certificates signed by this CA (mTLS)")
    p.add_argument("--users", help="users file (JSON)")
    p.add_argument("--mode", default=os.environ.get("CUSTOM_AUTH_MODE", "users"),
                   help="test mode (default: $CUSTOM_AUTH_MODE or users)")
    p.add_argument("--mode-file", help="file read on every request; its mode replaces --mode")
    p.add_argument("--lifetime", type=float, help="exit after this many seconds")
    p.add_argument("--stats", action="store_true", help="serve GET /_stats (test aid)")
    p.add_argument("--log", help="append one JSON line per request to this file")
    p.add_argument("--port-file", help="write the bound port here once listening")
    p.add_argument("--hash-password", metavar="USER",
                   help="print a users file entry for USER (password from stdin) and exit")
    p.add_argument("--password-env", metavar="VAR", help="with --hash-password: read the "
                   "password from this environment variable instead of stdin")
    p.add_argument("--attr", action="append", default=[], metavar="KEY=VALUE",
                   help="with --hash-password: an attribute (repeatable)")
    p.add_argument("--user-lifetime", type=int, metavar="SECONDS",
                   help="with --hash-password: lifetimeSeconds of the entry")
    p.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                   help=f"with --hash-password: PBKDF2 iterations (default {DEFAULT_ITERATIONS})")
    args = p.parse_args(argv)
    if not args.hash_password and not (args.cert and args.key):
        p.error("--cert and --key are required (or --hash-password)")
    return args


def main(argv):
    args = parse_args(argv)
    if args.hash_password:
        return hash_mode(args)
    try:
        args.mode = parse_mode(args.mode)
        args.users = load_users(args.users)
        ctx = make_context(args)
    except (OSError, ValueError, ssl.SSLError) as e:
        sys.exit(f"custom-auth-server: {e}")
    server = Server((args.host, args.port), ctx, args)
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.replace(args.port_file + ".tmp", args.port_file)
    log(f"listening on {args.host}:{port} (api-version {API_VERSION}, "
        f"{'mTLS' if args.client_ca else 'TLS'}, {len(args.users['users'])} users)")
    stop = lambda *_: threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.lifetime:
        timer = threading.Timer(args.lifetime, stop)
        timer.daemon = True
        timer.start()
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    log("stopped")


if __name__ == "__main__":
    main(sys.argv[1:])
