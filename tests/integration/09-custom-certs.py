#!/usr/bin/python3
"""09 Custom authentication, client certificates and connection reuse: on a TLS port whose chain
has Custom the broker asks for an optional client certificate and forwards what the client
presented in "certs" (PEM, leaf first): without X509 on the port as presented, unverified (a
self-signed certificate, or a chain from a CA the broker does not know, reaches the auth server);
with X509 verified against its CAs (an unknown certificate is refused in the handshake). A client
without a certificate still connects with username and password. A burst of CONNECTs with
distinct credentials through Custom makes a handful of TLS handshakes to the auth server
(connections kept alive by the pool), not one per CONNECT. ringmq only.

Auth server: tools/custom-auth-server.py with --stats (counters, the last "certs" received)."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402
import fixtures  # noqa: E402
import certs  # noqa: E402
import authsrv  # noqa: E402

ONLY = "Custom authentication is a ringmq feature"
PASSWORD = "s3cret-Pa55word"
POOL_THREADS = 2
PER_THREAD = 32  # transfers in flight per pool thread (net/authn_custom.c)
BURST = 300


class Env:
    def __init__(self):
        f = self.f = certs.CertFactory()
        self.auth = authsrv.AuthServer(f, {"alice": authsrv.user(PASSWORD)}, mode="users",
                                       stats=True, lifetime=280)
        self.srv_root = f.ca("/CN=ringmq Test Server Root", name="srv-root")
        self.srv = f.server(self.srv_root, name="srv")
        self.client_ca = f.ca("/CN=Client CA", name="client-ca")
        self.dev = f.client("/CN=device-1", self.client_ca, name="dev")
        # certificates the broker knows nothing about
        self.selfie = f.client("/CN=self-signed-device", None, name="selfie")
        self.other_root = f.ca("/CN=Unknown Root", name="other-root")
        self.other_int = f.ca("/CN=Unknown Intermediate", self.other_root, name="other-int")
        self.other_leaf = f.client("/CN=chained-device", self.other_int, name="other-leaf")
        self.dir = f.dir


env = fixtures.once(Env)


def fixture():
    e = env()
    ports = {k: rq.free_port() for k in ("plain", "custom_tls", "custom_x509", "custom")}
    custom = authsrv.custom_method(e.auth.url)
    x509 = "  - method: X509\n    x509Settings: {trustedClientCaCert: client-ca}\n"
    y = ("apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: Broker\nmetadata: {name: broker}\n"
         "spec:\n  diagnostics: {logs: {level: debug}}\n  ringmq:\n    connectTimeoutSeconds: 30\n"
         "    auth: {threads: %d, requestTimeoutSeconds: 20}\n" % POOL_THREADS)
    y += """---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: listeners}
spec:
  ports:
  - {port: %(plain)d, bindAddress: 127.0.0.1}
  - {port: %(custom)d, bindAddress: 127.0.0.1, authenticationRef: custom}
  - port: %(custom_tls)d
    bindAddress: 127.0.0.1
    authenticationRef: custom
    tls: {mode: Manual, manual: {secretRef: server-cert}}
  - port: %(custom_x509)d
    bindAddress: 127.0.0.1
    authenticationRef: custom-x509
    tls: {mode: Manual, manual: {secretRef: server-cert}}
""" % ports
    y += authsrv.authn("custom", custom)
    y += authsrv.authn("custom-x509", custom + x509)
    y += certs.secret_yaml("server-cert", e.srv.chain_pem, e.srv.key_pem)
    y += e.auth.ca_configmap()
    y += certs.configmap_yaml("client-ca", {"ca.crt": e.client_ca.pem})
    return fixtures.start_listening(y, ports)


def pem_blocks(text):
    """The certificates of a PEM text, normalised (one string per certificate)."""
    out, cur = [], None
    for line in (text or "").splitlines():
        line = line.strip()
        if line == "-----BEGIN CERTIFICATE-----":
            cur = []
        elif line == "-----END CERTIFICATE-----" and cur is not None:
            out.append("".join(cur))
            cur = None
        elif cur is not None:
            cur.append(line)
    return out


def mosq_pub(e, port, cert=None, password=PASSWORD):
    extra = ["--cafile", e.srv_root.cert, "-u", "alice", "-P", password, "-i", rq.uniq("mp")]
    if cert is not None:
        extra += ["--cert", cert.chain, "--key", cert.key]
    return rq.mosq_pub(port, "t/certs", "hi", extra=extra, timeout=20)


def connect_and_certs(b, port, cert, what):
    """mosquitto_pub through a Custom port; returns the "certs" the auth server received."""
    e = env()
    before = e.auth.stats()["with_certs"]
    r = mosq_pub(e, port, cert)
    check_eq(r.returncode, 0, "%s: mosquitto_pub exit code (%r)" % (what, r.stderr))
    st = e.auth.stats()
    if cert is None:
        check_eq(st["with_certs"], before, "%s: requests with certs" % what)
        return None
    check_eq(st["with_certs"], before + 1, "%s: requests with certs" % what)
    return st["last_certs"]


# ---------------------------------------------------------------------------------------------

@case(ringmq_only=ONLY)
def self_signed_certificate_forwarded_unverified(b):
    e = env()
    e.auth.set_mode("users")
    got = connect_and_certs(b, b.ports["custom_tls"], e.selfie, "self-signed")
    check_eq(pem_blocks(got), pem_blocks(e.selfie.pem), "certs received (the leaf)")


@case(ringmq_only=ONLY)
def presented_chain_forwarded_leaf_first(b):
    """Leaf + intermediate from a CA the broker does not know: both, in the order presented."""
    e = env()
    e.auth.set_mode("users")
    got = connect_and_certs(b, b.ports["custom_tls"], e.other_leaf, "unknown chain")
    check_eq(pem_blocks(got), pem_blocks(e.other_leaf.chain_pem), "certs received (leaf first)")
    check_eq(len(pem_blocks(got)), 2, "certificates in certs")


@case(ringmq_only=ONLY)
def the_auth_server_decides(b):
    """A certificate does not replace the credentials: the server denies a wrong password that
    comes with a certificate (CONNACK 0x86 from its reason 134, not a TLS failure), and the
    request carried the certificate."""
    e = env()
    e.auth.set_mode("users")
    before = e.auth.stats()["with_certs"]
    ctx = rq.tls_context(e.srv_root.cert, cert=e.selfie.cert, key=e.selfie.key)
    c = rq.RawClient(b.ports["custom_tls"], version=5, tls=ctx, timeout=20)
    check_eq(c.connect(client_id=rq.uniq("deny"), username="alice", password="wrong").rc, 0x86,
             "CONNACK for a wrong password with a certificate")
    c.expect_closed()
    st = e.auth.stats()
    check_eq(st["with_certs"], before + 1, "requests with certs")
    check_eq(pem_blocks(st["last_certs"]), pem_blocks(e.selfie.pem), "certs received")


@case(ringmq_only=ONLY)
def certificate_over_tls12_and_tls13(b):
    e = env()
    e.auth.set_mode("users")
    for v in ("1.2", "1.3"):
        before = e.auth.stats()["with_certs"]
        ctx = rq.tls_context(e.srv_root.cert, cert=e.other_leaf.chain, key=e.other_leaf.key,
                             version=v)
        c = rq.RawClient(b.ports["custom_tls"], version=5, tls=ctx, timeout=20)
        check_eq(c.sock.version(), "TLSv" + v, "negotiated version")
        check_eq(c.connect(client_id=rq.uniq("v"), username="alice", password=PASSWORD).rc, 0,
                 "TLS %s CONNACK" % v)
        c.close()
        st = e.auth.stats()
        check_eq(st["with_certs"], before + 1, "TLS %s: requests with certs" % v)
        check_eq(pem_blocks(st["last_certs"]), pem_blocks(e.other_leaf.chain_pem),
                 "TLS %s: certs received" % v)


@case(ringmq_only=ONLY)
def no_certificate_username_password(b):
    e = env()
    e.auth.set_mode("users")
    check_eq(connect_and_certs(b, b.ports["custom_tls"], None, "no certificate"), None,
             "certs without a certificate")
    # Python's ssl client (no certificate) over the same port, v3.1.1 and v5
    ctx = rq.tls_context(e.srv_root.cert)
    for v in (4, 5):
        c = rq.RawClient(b.ports["custom_tls"], version=v, tls=ctx, timeout=20)
        check_eq(c.connect(client_id=rq.uniq("nc"), username="alice", password=PASSWORD).rc, 0,
                 "v%d CONNACK without a certificate" % v)
        c.close()


@case(ringmq_only=ONLY)
def with_x509_on_the_port_certificates_are_verified(b):
    e = env()
    e.auth.set_mode("users")
    got = connect_and_certs(b, b.ports["custom_x509"], e.dev, "trusted certificate")
    # Custom runs first and gets the verified path (leaf, then the trusted client CA)
    check_eq(pem_blocks(got)[:1], pem_blocks(e.dev.pem), "certs received (the leaf first)")
    before = e.auth.stats()["requests"]
    r = mosq_pub(e, b.ports["custom_x509"], e.selfie)
    check(r.returncode != 0, "an unverifiable certificate passed the handshake of an X509 port")
    check_eq(e.auth.stats()["requests"], before, "requests to the auth server")


@case(ringmq_only=ONLY)
def burst_reuses_connections_to_the_auth_server(b):
    """BURST CONNECTs, distinct credentials (no caching: the server sends no Cache-Control),
    from 10 clients at a time: the pool's TLS handshakes to the auth server stay within its
    connections (threads x transfers in flight), not one per CONNECT."""
    e = env()
    e.auth.set_mode("pass")
    st = e.auth.stats()
    hs0, rq0 = st["handshakes"], st["requests"]
    errors = []
    counter = iter(range(BURST))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            try:
                c = rq.RawClient(b.ports["custom"], version=5 if i % 2 else 4, timeout=30)
                rc = c.connect(client_id="burst-%d" % i, username="user-%d" % i,
                               password="pw-%d" % i).rc
                c.close()
                if rc != 0:
                    errors.append("CONNECT %d: rc %d" % (i, rc))
            except Exception as ex:  # noqa: BLE001 (reported below)
                errors.append("CONNECT %d: %r" % (i, ex))

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    took = time.monotonic() - t0
    e.auth.set_mode("users")
    check_eq(errors[:5], [], "CONNECT errors")
    st = e.auth.stats()
    # minus one: this /_stats call is a connection (and handshake) of its own; it is no POST
    hs, reqs = st["handshakes"] - hs0 - 1, st["requests"] - rq0
    rq.log("burst: %d CONNECTs in %.1f s, %d requests, %d TLS handshakes to the auth server"
           % (BURST, took, reqs, hs))
    print("burst: %d CONNECTs in %.1f s: %d requests to the auth server, %d TLS handshakes"
          % (BURST, took, reqs, hs))
    check_eq(reqs, BURST, "requests to the auth server")
    check(1 <= hs <= POOL_THREADS * PER_THREAD,
          "%d TLS handshakes for %d CONNECTs (at most %d)" % (hs, BURST, POOL_THREADS * PER_THREAD))
    check(hs <= BURST // 10, "%d handshakes for %d CONNECTs is not a handful" % (hs, BURST))


if __name__ == "__main__":
    rq.run(fixture=fixture, timeout=280)
