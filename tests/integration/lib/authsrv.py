"""authsrv: the reference Custom authentication server (tools/custom-auth-server.py) for the
integration tests, and the BrokerAuthentication YAML that points the broker at it.

    f = certs.CertFactory()
    srv = authsrv.AuthServer(f, {"alice": authsrv.user(PASSWORD, {"group": "g1"})},
                             mode="users", stats=True)
    y += authsrv.authn("custom", authsrv.custom_method(srv.url))
    y += srv.ca_configmap()              # ConfigMap "auth-ca": the CA that signed the server
    srv.set_mode("deny:135")             # the modes of tools/custom-auth-server.py
    srv.stats()["requests"]              # GET /_stats (with stats=True)

The server is a real HTTPS server (Python stdlib) on a free 127.0.0.1 port, with a certificate
made at test time (CertFactory names "auth-ca" and "auth-srv"); every process started is killed
at cleanup (rqtest.on_cleanup)."""

import json
import os
import ssl
import subprocess
import time
import urllib.request

import certs
import rqtest as rq

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tools",
                    "custom-auth-server.py")
HDR = "---\napiVersion: mqttbroker.iotoperations.azure.com/v1\n"
START_TIMEOUT = 20.0
_hashes = {}  # password -> its PBKDF2 entry (hashing is slow; the salt need not differ)


def user(password, attributes=None):
    """A users file entry: the password hashed by the tool (1000 iterations: tests need no
    strength), and the attributes a pass answers with (order kept)."""
    if password not in _hashes:
        out = subprocess.run(
            ["/usr/bin/python3", TOOL, "--hash-password", "x", "--password-env", "PW",
             "--iterations", "1000"],
            env=dict(os.environ, PW=password), capture_output=True, text=True, check=True).stdout
        _hashes[password] = json.loads(out)["users"]["x"]["password"]
    entry = {"password": _hashes[password]}
    if attributes:
        entry["attributes"] = dict(attributes)
    return entry


def authn(name, methods):
    """A BrokerAuthentication document named name with the given method list items."""
    return (HDR + "kind: BrokerAuthentication\nmetadata: {name: %s}\nspec:\n"
            "  authenticationMethods:\n%s" % (name, methods))


def custom_method(endpoint, headers=None, ca_configmap="auth-ca"):
    """A Custom method list item for authn(): endpoint, the ConfigMap holding the CA the broker
    verifies the server with, and optional headers (a dict)."""
    h = ""
    if headers:
        h = "\n      headers: {%s}" % ", ".join("%s: %s" % kv for kv in headers.items())
    return ("  - method: Custom\n    customSettings:\n      endpoint: \"%s\"\n"
            "      caCertConfigMap: %s%s\n" % (endpoint, ca_configmap, h))


class AuthServer:
    """tools/custom-auth-server.py with a test-time certificate and users file.

    users: {name: user(...)}; mode: the initial mode, written to a mode file the server reads on
    every request (None: the server's default mode, no mode file); stats: serve GET /_stats;
    lifetime: the server exits by itself after that many seconds."""

    def __init__(self, f, users, ca_subject="/CN=Auth Server Test CA", mode=None, stats=False,
                 lifetime=None):
        self.ca = f.ca(ca_subject, name="auth-ca")
        self.cert = f.server(self.ca, name="auth-srv")
        self.dir = f.dir
        self.users_file = os.path.join(self.dir, "users.json")
        with open(self.users_file, "w") as fh:
            json.dump({"users": users}, fh)
        self.mode_file = None
        if mode is not None:
            self.mode_file = os.path.join(self.dir, "mode")
            self.set_mode(mode)
        self.stats_on, self.lifetime = stats, lifetime
        self.port = self.start()
        self.url = "https://127.0.0.1:%d" % self.port

    def start(self, client_ca=None, name="auth-port"):
        """Starts a server process (another one after the first: same certificate, users and
        mode file; client_ca: it requires client certificates from that CA); returns its port
        once the server has written it to the port file."""
        port_file = os.path.join(self.dir, name)
        if os.path.exists(port_file):
            os.unlink(port_file)
        argv = ["/usr/bin/python3", TOOL, "--cert", self.cert.cert, "--key", self.cert.key,
                "--users", self.users_file, "--port", "0", "--port-file", port_file]
        if self.stats_on:
            argv.append("--stats")
        if self.mode_file:
            argv += ["--mode-file", self.mode_file]
        if self.lifetime is not None:
            argv += ["--lifetime", str(self.lifetime)]
        if client_ca:
            argv += ["--client-ca", client_ca]
        proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        rq.on_cleanup(proc.kill)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if os.path.exists(port_file):
                with open(port_file) as fh:
                    text = fh.read().strip()
                if text:
                    return int(text)
            rq.check(proc.poll() is None, "auth server exited with %r" % proc.returncode)
            time.sleep(0.05)
        raise AssertionError("auth server did not start")

    def set_mode(self, mode):
        """Replaces the mode file atomically (a request never reads it half written)."""
        with open(self.mode_file + ".tmp", "w") as fh:
            fh.write(mode)
        os.replace(self.mode_file + ".tmp", self.mode_file)

    def stats(self, timeout=10):
        """The server's GET /_stats counters (needs stats=True)."""
        ctx = ssl.create_default_context(cafile=self.ca.cert)
        with urllib.request.urlopen(self.url + "/_stats", context=ctx, timeout=timeout) as r:
            return json.loads(r.read())

    def ca_configmap(self, name="auth-ca"):
        """The ConfigMap YAML with the CA that signed the server (custom_method's ca_configmap)."""
        return certs.configmap_yaml(name, {"ca.crt": self.ca.pem})
