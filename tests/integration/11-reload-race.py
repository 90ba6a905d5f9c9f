#!/usr/bin/python3
"""11 reload races: the running configuration is one generation (ports, TLS contexts,
authentication chains) that a reload replaces as a whole, while connections keep the generation
they were accepted under.

- Thousands of reloads, hundreds of them certificate swaps (the mounted Secret alternates, a
  SIGHUP every few ms) while two loops connect and close on the TLS port: the broker keeps serving, and under the sanitizer
  build no heap-use-after-free (a context freed by the reload while a shard starts a connection
  with it).
- A reload that changes a port's trusted client CA applies to the TLS handshake and to the X509
  method together: a client of the new CA is let in (not refused at CONNECT by the old chain),
  a client of the old CA is refused at the handshake.
- tls mode Automatic renewing every few seconds: new certificates served, an old connection
  keeps working.
- While the trusted CA alternates between two roots under SIGHUPs, a client whose handshake
  passed is never refused at CONNECT: its TLS policy and its chain come from the same generation.
ringmq only."""

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402
import fixtures  # noqa: E402
import certs  # noqa: E402

ONLY = "configuration reload is a ringmq feature"
SWAPS = 2000          # reloads (generation swaps) the first case aims at, half of them or so
CERT_SWAPS = 1000     # replacing the TLS context (about 15 s under ASan on an idle machine),
SWAP_BUDGET_S = 40    # stopping after this long on a loaded machine, where
MIN_SWAPS = 300       # at least this many reloads
MIN_CERT_SWAPS = 100  # and certificate swaps must have happened


# Alternates the Secret's files (rename over, as a volume update does) and sends SIGHUP every
# millisecond or so; prints how many SIGHUPs it sent when killed.
SWAPPER = r"""
import os, signal, sys, time
pid, d = int(sys.argv[1]), sys.argv[2]
pems = [[open(f).read() for f in sys.argv[3:5]], [open(f).read() for f in sys.argv[5:7]]]
n = 0
def done(*_):
    print(n, flush=True)
    os._exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    for name, text in zip(("tls.crt", "tls.key"), pems[n % 2]):
        tmp = os.path.join(d, "." + name + ".new")
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, os.path.join(d, name))
    os.kill(pid, signal.SIGHUP)
    n += 1
    time.sleep(0.001)
"""


class Pki:
    def __init__(self):
        f = certs.CertFactory()
        self.srv_root = f.ca("/CN=ringmq Race Test Server Root", name="race-srv-root")
        self.first = f.server(self.srv_root, name="race-srv-first")
        self.second = f.server(self.srv_root, name="race-srv-second")
        self.root_a = f.ca("/CN=Race Client Root A", name="race-root-a")
        self.root_b = f.ca("/CN=Race Client Root B", name="race-root-b")
        self.dev_a = f.client("/CN=device-a", self.root_a, name="race-dev-a")
        self.dev_b = f.client("/CN=device-b", self.root_b, name="race-dev-b")


pki = fixtures.once(Pki)


def replace_file(path, text):
    """Write next to the old file, then rename: what a Pod's volume update looks like."""
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".new")
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_secret(b, leaf):
    d = os.path.join(b.workdir, "secrets", "server-cert")
    replace_file(os.path.join(d, "tls.crt"), leaf.chain_pem)
    replace_file(os.path.join(d, "tls.key"), leaf.key_pem)


def write_client_ca(b, root):
    replace_file(os.path.join(b.workdir, "configmaps", "client-ca", "ca.crt"), root.pem)


def tls_yaml(port, x509):
    y = rq.broker_yaml(port=port, ringmq={"connectTimeoutSeconds": 2}, log_level="info")
    tls = "\n    tls: {mode: Manual, manual: {secretRef: server-cert}}"
    if x509:
        tls += "\n    authenticationRef: devices"
    y = y.replace("bindAddress: 127.0.0.1", "bindAddress: 127.0.0.1" + tls, 1)
    if x509:
        y += """---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {name: devices}
spec:
  authenticationMethods:
  - method: X509
    x509Settings:
      trustedClientCaCert: client-ca
      authorizationAttributes:
        fleet-a: {subject: "CN = Race Client Root A", attributes: {fleet: a}}
        fleet-b: {subject: "CN = Race Client Root B", attributes: {fleet: b}}
"""
    return y


def start(x509=False):
    p = pki()
    port = rq.free_port()
    files = {"secrets/server-cert/tls.crt": p.first.chain_pem,
             "secrets/server-cert/tls.key": p.first.key_pem}
    if x509:
        files["configmaps/client-ca/ca.crt"] = p.root_a.pem
    b = rq.start_broker(tls_yaml(port, x509), files=files)
    b.tls_port = port
    return b


def client_ctx(dev):
    return rq.tls_context(cafile=pki().srv_root.cert, cert=dev.chain, key=dev.key)


class Loops:
    """Background threads running fn(stop_event) until stop() (which re-raises their errors)."""

    def __init__(self, *fns):
        self.ev = threading.Event()
        self.errors = []
        self.threads = [threading.Thread(target=self._run, args=(fn,), daemon=True)
                        for fn in fns]
        for t in self.threads:
            t.start()
        rq.on_cleanup(self.ev.set)

    def _run(self, fn):
        try:
            while not self.ev.is_set():
                fn()
        except BaseException as e:  # noqa: B902 (reported by stop())
            self.errors.append(e)
            self.ev.set()

    def stop(self):
        self.ev.set()
        for t in self.threads:
            t.join(30)
        if self.errors:
            raise self.errors[0]


@case(ringmq_only=ONLY)
def certificate_swaps_while_connecting():
    """Connect/close loops (bare TCP connects, which create a TLS state at accept, and full
    handshakes) while the Secret alternates and SIGHUP comes every few ms."""
    p = pki()
    b = start()
    srv_ctx = rq.tls_context(cafile=p.srv_root.cert)
    counts = {"tcp": 0, "tls": 0}

    # A generous connect timeout: on a loaded 2-core machine the kernel can drop a SYN of these
    # thousands of connects per second (retried after 1 s, then 3 s), which is not what this
    # test is about (a crash or use-after-free during the swaps).
    def tcp_loop():
        s = socket.create_connection((rq.HOST, b.tls_port), timeout=30)
        s.close()
        counts["tcp"] += 1

    def tls_loop():
        s = socket.create_connection((rq.HOST, b.tls_port), timeout=30)
        try:
            t = srv_ctx.wrap_socket(s, server_hostname="localhost")
            t.close()
            counts["tls"] += 1
        except (ssl.SSLError, OSError):
            s.close()  # a handshake cut by nothing but the test ending is fine

    # The swaps run in their own process, so that the GIL of this one does not slow them down.
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(b.pid),
                                os.path.join(b.workdir, "secrets", "server-cert"),
                                p.first.chain, p.first.key, p.second.chain, p.second.key],
                               stdout=subprocess.PIPE, text=True)
    rq.on_cleanup(swapper.kill)
    loops = Loops(tcp_loop, tls_loop)
    rx_cert = "reload: port %d now serves the certificate" % b.tls_port
    rx_reload = re.compile(r"reload: (generation \d+ in use|\d+ certificates? replaced)")
    deadline = time.monotonic() + SWAP_BUDGET_S
    swaps = cert_swaps = 0
    while time.monotonic() < deadline and not loops.ev.is_set() and b.alive():
        time.sleep(0.5)
        log = b.log()
        swaps, cert_swaps = len(rx_reload.findall(log)), log.count(rx_cert)
        if swaps >= SWAPS and cert_swaps >= CERT_SWAPS:
            break
    swapper.terminate()
    sighups = swapper.communicate()[0].strip()
    loops.stop()
    b.check_alive()
    rq.log("%d reloads, %d of them replaced the certificate; %d TCP connects, %d TLS "
           "handshakes, %s SIGHUPs" % (swaps, cert_swaps, counts["tcp"], counts["tls"],
                                       sighups or "?"))
    check(swaps >= MIN_SWAPS and cert_swaps >= MIN_CERT_SWAPS, "only %d reloads (%d certificate "
          "swaps) within %d s" % (swaps, cert_swaps, SWAP_BUDGET_S))
    check(counts["tls"] > 0, "no TLS handshake completed during the swaps")
    # Every retired generation is freed once its connections have closed (the loops closed
    # theirs): a reload reports how many older ones are still in use.
    write_secret(b, p.first)  # the swapper may have stopped between tls.crt and tls.key
    held = None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and held != 0:
        mark = b.log_mark()
        b.signal(signal.SIGHUP)
        m = b.wait_log(r"(\d+) older generations? still in use", mark, 5)
        held = int(m.group(1)) if m else None
        time.sleep(0.3)
    check_eq(held, 0, "older generations still in use after the connections closed")
    # still serving: a handshake and an MQTT session on the certificate now installed
    c = rq.RawClient(b.tls_port, tls=srv_ctx, server_hostname="localhost")
    check_eq(c.connect(client_id=rq.uniq("after")).rc, 0, "CONNACK after the swaps")
    c.disconnect()
    check_eq(b.stop(), 0, "exit code after SIGTERM")


def try_connect(dev, port):
    """'handshake' when TLS refused the client, else the CONNACK reason code. (With TLS 1.3 the
    client finishes its handshake before the broker has checked its certificate: the refusal
    then shows up as an alert or a close instead of the CONNACK.)"""
    try:
        c = rq.RawClient(port, tls=client_ctx(dev), server_hostname="localhost")
    except (ssl.SSLError, OSError):
        return "handshake"
    try:
        c.send_connect(client_id=rq.uniq("dev"))
        p = c.recv_packet(5)
    except (rq.Closed, ssl.SSLError, OSError, AssertionError):
        return "handshake"
    finally:
        c.close()
    if p is None:
        return "no CONNACK"
    check_eq(p.type, rq.CONNACK, "first packet")
    return p.rc


ATTRS = r'authenticated by X509 as "%s": certificate CN=%s, %s'


def reload_and_wait(b, root):
    mark = b.log_mark()
    write_client_ca(b, root)
    b.signal(signal.SIGHUP)
    check(b.wait_log(r"reload: .*certificates? replaced|reload: .*generation", mark, timeout=5),
          "reload not logged")


@case(ringmq_only=ONLY)
def trusted_ca_reload_applies_to_handshake_and_chain():
    p = pki()
    b = start(x509=True)
    check_eq(try_connect(p.dev_a, b.tls_port), 0, "client of root A before the reload")
    check_eq(try_connect(p.dev_b, b.tls_port), "handshake", "client of root B before the reload")
    check(b.wait_log(ATTRS % ("device-a", "device-a", "attributes from 'fleet-a'"), 0, 3),
          "device-a's attributes (from its root, completed by the X509 method's CAs)")
    reload_and_wait(b, p.root_b)
    mark = b.log_mark()
    check_eq(try_connect(p.dev_b, b.tls_port), 0, "client of root B after trusting root B")
    m = b.wait_log(ATTRS % ("device-b", "device-b", "([^\n]*)"), mark, 3)
    check(m is not None, "no authentication line for device-b")
    check_eq(m.group(1), "attributes from 'fleet-b'", "device-b's attributes: the X509 method "
             "of the generation whose TLS policy let it in")
    check_eq(try_connect(p.dev_a, b.tls_port), "handshake", "client of root A after the reload")
    check_eq(b.stop(), 0, "exit code after SIGTERM")


@case(ringmq_only=ONLY)
def trusted_ca_alternates_policy_and_chain_agree():
    p = pki()
    b = start(x509=True)
    seen = {}
    bad = []

    def dev_loop(dev):
        def fn():
            r = try_connect(dev, b.tls_port)
            seen[(dev.cn, r)] = seen.get((dev.cn, r), 0) + 1
            if r not in (0, "handshake"):
                bad.append((dev.cn, r))
        return fn

    flip = [0]

    def swap_loop():
        write_client_ca(b, p.root_b if flip[0] % 2 else p.root_a)
        flip[0] += 1
        b.signal(signal.SIGHUP)
        time.sleep(0.005)

    loops = Loops(dev_loop(p.dev_a), dev_loop(p.dev_b), swap_loop)
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and not loops.ev.is_set() and b.alive() and not bad:
        time.sleep(0.2)
    loops.stop()
    b.check_alive()
    rq.log("outcomes %s after %d SIGHUPs" % (sorted(seen.items(), key=str), flip[0]))
    check(not bad, "handshake passed but CONNECT refused (policy and chain of different "
          "generations): %s" % bad[:5])
    check(seen.get(("device-a", 0), 0) + seen.get(("device-b", 0), 0) > 0, "nobody got in")
    log = b.log()
    for cn, want in (("device-a", "fleet-a"), ("device-b", "fleet-b")):
        lines = re.findall(ATTRS % (cn, cn, "([^\n]*)"), log)
        wrong = [l for l in lines if l != "attributes from '%s'" % want]
        check(not wrong, "%s authenticated without its root's attributes (the X509 method of "
              "another generation than its handshake): %d of %d, e.g. %r"
              % (cn, len(wrong), len(lines), wrong[:1]))
    check_eq(b.stop(), 0, "exit code after SIGTERM")


AUTO_YAML = """---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: Broker
metadata: {name: default}
spec:
  diagnostics: {logs: {level: info}}
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: auto}
spec:
  ports:
  - port: %d
    bindAddress: 127.0.0.1
    protocol: Mqtt
    tls:
      mode: Automatic
      certManagerCertificateSpec:
        issuerRef: {kind: Issuer, name: local}
        duration: 12s
        renewBefore: 9s
"""


@case(ringmq_only=ONLY)
def automatic_renewals_while_connected():
    """tls mode Automatic with a certificate renewed every few seconds: each renewal publishes a
    generation; new handshakes get the new certificate, a client connected before keeps working
    on the generation it was accepted under."""
    port = rq.free_port()
    b = rq.start_broker(AUTO_YAML % port, extra_args=("--data-dir", "data"))
    ctx = rq.tls_context()  # the local CA is not what this case is about
    first = rq.RawClient(port, tls=ctx)
    check_eq(first.connect(client_id=rq.uniq("auto")).rc, 0, "CONNACK")
    served = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(served) < 3:
        c = rq.RawClient(port, tls=ctx)
        served.add(c.sock.getpeercert(binary_form=True))
        check_eq(c.connect(client_id=rq.uniq("auto")).rc, 0, "CONNACK")
        c.disconnect()
        time.sleep(0.2)
    check(len(served) >= 3, "only %d certificates served in 20 s of renewals" % len(served))
    check(b.wait_log(r"issued certificate \w+ \(renewal is due\)", 0, 1), "renewal logged")
    first.ping(3)
    first.disconnect()
    check_eq(b.stop(), 0, "exit code after SIGTERM")


if __name__ == "__main__":
    if not certs.openssl_available():
        print("SKIP all: the openssl command line tool is missing (certificates are made with it)")
        sys.exit(rq.SKIP_RC)
    rq.run(timeout=150)
