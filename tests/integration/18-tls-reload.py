#!/usr/bin/python3
"""18 TLS certificate reload: the server certificate lives in a mounted Secret directory
(<config dir>/secrets/server-cert/tls.crt, tls.key). Replacing the files makes the broker serve
the new certificate within a few seconds (it polls every 2 s) without dropping a connected
client; SIGHUP does the same at once; a broken new certificate (key not matching) is refused
with a log line and the old certificate stays in use; a reload that also adds a port that
cannot be bound is refused as a whole. ringmq only."""

import os
import signal
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402
import certs  # noqa: E402

ONLY = "certificate reload is a ringmq listener feature"


class Pki:
    def __init__(self):
        f = certs.CertFactory()
        self.root = f.ca("/CN=ringmq Reload Test Root", name="reload-root")
        self.first = f.server(self.root, name="srv-first")
        self.second = f.server(self.root, name="srv-second")


_pki = None


def pki():
    global _pki
    if _pki is None:
        _pki = Pki()
    return _pki


def serving_serial(port):
    """The serial number of the certificate the broker presents now (hex string)."""
    ctx = rq.tls_context(cafile=pki().root.cert)
    c = rq.RawClient(port, tls=ctx, server_hostname="localhost")
    der = c.sock.getpeercert(binary_form=True)
    c.close()
    return der_serial(der)


def der_serial(der):
    # Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version, serialNumber INTEGER ...
    def tlv(b, i):
        tag, n = b[i], b[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(b[i:i + k], "big")
            i += k
        return tag, i, n
    _, i, _ = tlv(der, 0)        # Certificate
    _, i, _ = tlv(der, i)        # tbsCertificate
    tag, j, n = tlv(der, i)
    if tag == 0xA0:              # explicit version
        i = j + n
    tag, j, n = tlv(der, i)
    check_eq(tag, 0x02, "serialNumber tag")
    return der[j:j + n].hex()


def cert_serial(cert):
    with open(cert.cert, "rb") as fh:
        pem = fh.read().decode()
    body = "".join(l for l in pem.splitlines() if "-----" not in l)
    import base64
    return der_serial(base64.b64decode(body))


def write_secret(b, cert_pem, key_pem):
    d = os.path.join(b.workdir, "secrets", "server-cert")
    # write new files next to the old ones, then rename: what a Pod's volume update looks like
    for name, text in (("tls.crt", cert_pem), ("tls.key", key_pem)):
        tmp = os.path.join(d, "." + name + ".new")
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, os.path.join(d, name))


def wait_serial(port, want, timeout=5.0):
    """The serial the port serves once it is `want`, or what it still serves after timeout."""
    deadline = time.monotonic() + timeout
    got = serving_serial(port)
    while got != want and time.monotonic() < deadline:
        time.sleep(0.2)
        got = serving_serial(port)
    return got


def reload_to(b, leaf, what):
    """Write leaf's chain and key as the port's secret, SIGHUP, and check the port serves it."""
    write_secret(b, leaf.chain_pem, leaf.key_pem)
    b.signal(signal.SIGHUP)
    check_eq(wait_serial(b.tls_port, cert_serial(leaf)), cert_serial(leaf), what)


def fixture():
    p = pki()
    port = rq.free_port()
    y = rq.broker_yaml(port=port, ringmq={"connectTimeoutSeconds": 2})
    y = y.replace("bindAddress: 127.0.0.1", "bindAddress: 127.0.0.1\n    tls: {mode: Manual, "
                  "manual: {secretRef: server-cert}}", 1)
    b = rq.start_broker(y, files={"secrets/server-cert/tls.crt": p.first.chain_pem,
                                  "secrets/server-cert/tls.key": p.first.key_pem})
    b.tls_port = port
    return b


@case(ringmq_only=ONLY)
def reload_on_file_change_keeps_clients(b):
    p = pki()
    port = b.tls_port
    reload_to(b, p.first, "serial before the change")
    # a client connected with the old certificate
    c = rq.RawClient(port, tls=rq.tls_context(cafile=p.root.cert), server_hostname="localhost")
    check_eq(c.connect(client_id=rq.uniq("keep")).rc, 0, "CONNACK")
    mark = b.log_mark()
    write_secret(b, p.second.chain_pem, p.second.key_pem)
    check_eq(wait_serial(port, cert_serial(p.second), timeout=6), cert_serial(p.second),
             "serial after the files changed")
    check(b.wait_log(r"reload: port %d now serves the certificate" % port, mark, timeout=3),
          "the new certificate is logged")
    # the old connection is still up and working
    c.ping(3)
    c.disconnect()


@case(ringmq_only=ONLY)
def broken_certificate_refused_old_stays(b):
    p = pki()
    port = b.tls_port
    reload_to(b, p.second, "serial before the broken change")
    mark = b.log_mark()
    write_secret(b, p.first.chain_pem, p.second.key_pem)  # certificate and key do not match
    b.signal(signal.SIGHUP)
    check(b.wait_log(r"new certificate refused, keeping the old one: .*does not match", mark,
                     timeout=3), "the refusal is logged with its cause")
    check_eq(serving_serial(port), cert_serial(p.second), "serial after a refused change")
    # a good certificate afterwards is taken again
    reload_to(b, p.first, "serial after a good change")
    check(b.alive(), "broker still running")


@case(ringmq_only=ONLY)
def listener_change_refuses_the_whole_reload(b):
    """A reload is all or nothing: when the configuration also adds a port that cannot be bound
    (another program holds it), the new certificate is not taken either; once the port is free
    the same files apply. (Turning the TLS port plain is a listener change that applies live:
    27-reload-all.py.)"""
    import socket
    p = pki()
    port = b.tls_port
    reload_to(b, p.first, "serial before")
    path = os.path.join(b.workdir, "ringmq.yaml")
    with open(path) as fh:
        yaml = fh.read()
    taken = rq.free_port()
    holder = socket.socket()
    holder.bind(("127.0.0.1", taken))
    holder.listen(1)
    rq.on_cleanup(holder.close)
    mark = b.log_mark()
    with open(path, "w") as fh:
        fh.write(yaml + "  - port: %d\n    bindAddress: 127.0.0.1\n" % taken)
    write_secret(b, p.second.chain_pem, p.second.key_pem)
    b.signal(signal.SIGHUP)
    check(b.wait_log(r"reload refused, the running configuration stays: port %d: cannot listen "
                     r"on 127\.0\.0\.1:%d" % (taken, taken), mark, timeout=5),
          "the refused reload is logged")
    check_eq(serving_serial(port), cert_serial(p.first), "serial after the refused reload")
    holder.close()
    b.signal(signal.SIGHUP)
    check_eq(wait_serial(port, cert_serial(p.second)), cert_serial(p.second),
             "serial once the port is free")
    with open(path, "w") as fh:
        fh.write(yaml)
    b.signal(signal.SIGHUP)


if __name__ == "__main__":
    if not certs.openssl_available():
        print("SKIP all: the openssl command line tool is missing (certificates are made with it)")
        sys.exit(rq.SKIP_RC)
    rq.run(fixture, timeout=120)
