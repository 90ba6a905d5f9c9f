#!/usr/bin/python3
"""23 CONNECT states: the CONNECT state machine (pre-CONNECT, authenticating, attaching, handed
over, connected, closing) as seen from outside. A connection accepted on one shard whose session
lives on another is suspended and handed over with its input and its authenticated principal:
the owner shard never authenticates it again (one "authenticated by" line per connection), the
credentials' expiry travels with it, and packets the client pipelined behind its CONNECT are
processed there after CONNACK, in order. A refused CONNECT processes nothing that followed it
[MQTT-3.1.4-5]. (The asynchronous verdict path, with a plain thread posting verdicts, is tested
by tests/unit/net/test_post.c.) ringmq only: the log tells which shard a client is on."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402
import fixtures  # noqa: E402
import certs  # noqa: E402

ONLY = "the log lines that tell shards and phases are ringmq's"
SESS = {"session_expiry_interval": 300}


class Pki:
    def __init__(self):
        f = self.f = certs.CertFactory()
        self.srv_root = f.ca("/CN=ringmq Test Server Root", name="srv-root")
        self.srv = f.server(self.srv_root, name="srv")
        self.root = f.ca("/CN=States Root CA", name="root")
        self.leaf = f.client("/CN=states-device", self.root, name="leaf")
        # RSA leaf under an EC root: verifies in TLS, denied by X509 at CONNECT (0x87)
        self.mixed = f.client("/CN=states-mixed", self.root, alg="rsa", name="mixed")


pki = fixtures.once(Pki)


def yaml_for(p, plain, x509):
    return """---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: Broker
metadata: {name: default}
spec:
  diagnostics: {logs: {level: trace}}
  ringmq: {connectTimeoutSeconds: 5}
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: listeners}
spec:
  ports:
  - {port: %d, bindAddress: 127.0.0.1, protocol: Mqtt}
  - port: %d
    bindAddress: 127.0.0.1
    protocol: Mqtt
    authenticationRef: x509
    tls: {mode: Manual, manual: {secretRef: server-cert}}
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {name: x509}
spec:
  authenticationMethods:
  - method: X509
    x509Settings:
      trustedClientCaCert: client-ca
      authorizationAttributes:
        device: {subject: "CN = states-device", attributes: {building: "23"}}
""" % (plain, x509) + certs.secret_yaml("server-cert", p.srv.chain_pem, p.srv.key_pem) + \
        certs.configmap_yaml("client-ca", {"ca.pem": p.root.pem})


def fixture():
    p = pki()
    plain, x509 = rq.free_port(), rq.free_port()
    b = rq.start_broker(yaml_for(p, plain, x509), threads=2)
    check(rq.port_open(plain, 2.0) and rq.port_open(x509, 2.0), "ports not listening")
    b.plain, b.x509 = plain, x509
    return b


def tls_ctx(cert):
    p = pki()
    return rq.tls_context(p.srv_root.cert, cert.chain, cert.key)


def pipelined(cid, pid_sub=1, pid_pub=2, topic=None):
    """CONNECT (resuming cid's session), SUBSCRIBE, PUBLISH QoS 1 to that subscription, PINGREQ:
    one write."""
    topic = topic or "states/" + cid
    return (rq.enc_connect(5, cid, clean=False, props=SESS) +
            rq.enc_subscribe(5, pid_sub, [(topic, 1)]) +
            rq.enc_publish(5, topic, b"behind the CONNECT", qos=1, pid=pid_pub) +
            rq.packet(rq.PINGREQ, 0, b""))


def expect_in_order(c, what):
    """CONNACK 0x00, SUBACK, then the PUBACK and our own PUBLISH in either order (they come
    from two paths), then PINGRESP: the pipelined packets ran after CONNACK, in order."""
    got = []
    while len(got) < 5:
        pk = c.recv_packet(10)
        check(pk is not None, "%s: only %r arrived" % (what, got))
        got.append(pk)
        if pk.type == rq.PUBLISH:
            c.ack(pk)
    types = [pk.type for pk in got]
    check_eq(types[0], rq.CONNACK, "%s: first packet" % what)
    check_eq(got[0].rc, 0, "%s: CONNACK reason" % what)
    check_eq(types[1], rq.SUBACK, "%s: second packet" % what)
    check_eq(sorted(types[2:4]), sorted([rq.PUBACK, rq.PUBLISH]), "%s: then" % what)
    check_eq(types[4], rq.PINGRESP, "%s: last packet" % what)


def handed_over(b, mark, cid):
    return re.search(r'client="%s" \(connect\)[^\n]*handing the connection' % re.escape(cid),
                     b.log_since(mark)) is not None


def until_handed_over(b, first, make, prefix, what, tries=40):
    """Each attempt: first(cid) makes a session and leaves it, make(cid) returns a client that
    has sent its CONNECT resuming it; until the log says that connection was handed to the
    session's shard. A fresh client id per attempt, so nothing of an earlier attempt is queued
    in the session. Returns (client, its client id, log mark of that attempt)."""
    for _ in range(tries):
        cid = rq.uniq(prefix)
        first(cid)
        mark = b.log_mark()
        c = make(cid)
        if b.wait_log(r'client="%s" \((connect|session)\)[^\n]*(handing the connection|'
                      r'connected:)' % re.escape(cid), mark, 5.0) and handed_over(b, mark, cid):
            return c, cid, mark
        # landed on the session's own shard: drain and try again
        c.close()
        b.wait_log(r'client="%s"[^\n]*connection (closed|lost)' % re.escape(cid), mark, 3.0)
    raise AssertionError("%s: %d connections, none accepted on the other shard" % (what, tries))


@case(ringmq_only=ONLY)
def handover_pipelined_packets_in_order(b):
    def first(cid):
        rq.connected(b.plain, cid, clean=False, props=SESS).close()

    def make(cid):
        c = rq.RawClient(b.plain)
        c.send_raw(pipelined(cid))
        return c
    c, cid, mark = until_handed_over(b, first, make, "plainho", "plain")
    expect_in_order(c, "handed-over plain connection")
    expect_phases(b, mark, cid)
    c.disconnect(props={"session_expiry_interval": 0})


def expect_phases(b, mark, cid):
    """The log names each step: suspended for the hand-over, resumed on the owner shard."""
    log = b.log_since(mark)
    q = re.escape(cid)
    check(re.search(r'client="%s"[^\n]*phase attaching -> handed over' % q, log),
          "no 'attaching -> handed over' line:\n%s" % log[-2000:])
    check(re.search(r'client="%s"[^\n]*phase handed over -> attaching' % q, log),
          "no 'handed over -> attaching' line:\n%s" % log[-2000:])
    check(re.search(r'client="%s"[^\n]*phase attaching -> connected' % q, log),
          "no 'attaching -> connected' line:\n%s" % log[-2000:])


@case(ringmq_only=ONLY)
def handover_keeps_the_principal(b):
    """X509 on a TLS port: the connection is authenticated once, on the shard that accepted
    it; the owner shard takes its principal instead of running the chain again."""
    p = pki()
    def first(cid):
        c = rq.RawClient(b.x509, tls=tls_ctx(p.leaf))
        check_eq(c.connect(client_id=cid, clean=False, props=SESS).rc, 0, "first CONNACK")
        c.close()

    def make(cid):
        c = rq.RawClient(b.x509, tls=tls_ctx(p.leaf))
        c.send_raw(pipelined(cid))
        return c
    c, cid, mark = until_handed_over(b, first, make, "x509ho", "x509")
    expect_in_order(c, "handed-over X509 connection")
    lines = re.findall(r'client="%s"[^\n]*authenticated by X509[^\n]*' % re.escape(cid),
                       b.log_since(mark))
    check_eq(len(lines), 1, "'authenticated by' lines for the handed-over connection (%r)"
             % lines)
    expect_phases(b, mark, cid)
    c.disconnect(props={"session_expiry_interval": 0})


@case(ringmq_only=ONLY)
def handover_keeps_the_credentials_expiry(b):
    """The expiry (the leaf's notAfter) travels with the principal: the owner shard closes the
    handed-over connection when it passes, without DISCONNECT."""
    p = pki()
    leaf = p.f.client("/CN=states-short", p.root, not_after=time.time() + 12)
    def first(cid):
        c = rq.RawClient(b.x509, tls=tls_ctx(leaf))
        check_eq(c.connect(client_id=cid, clean=False, props=SESS).rc, 0, "first CONNACK")
        c.close()

    def make(cid):
        c = rq.RawClient(b.x509, tls=tls_ctx(leaf))
        c.send_raw(rq.enc_connect(5, cid, clean=False, props=SESS))
        return c
    c, cid, mark = until_handed_over(b, first, make, "expho", "expiry")
    check_eq(c.recv_packet(10).rc, 0, "CONNACK after the hand-over")
    left = leaf.not_after - time.time()
    if left < 1:
        raise rq.Skip("the machine was too slow: notAfter passed before the hand-over")
    res = c.expect_closed(left + 5)
    closed_at = time.time()
    check(res, "still connected %.1fs after notAfter" % (closed_at - leaf.not_after))
    check(res.disconnect is None, "got a DISCONNECT (%r), want a bare close" % (res,))
    check(closed_at >= leaf.not_after - 0.3, "closed %.2fs BEFORE notAfter"
          % (leaf.not_after - closed_at))
    m = b.wait_log(r'client="%s"[^\n]*credentials expired' % re.escape(cid), mark, 3.0)
    check(m is not None, "no 'credentials expired' line")


@case(ringmq_only=ONLY)
def refused_connect_processes_nothing_after_it(b):
    """[MQTT-3.1.4-5]: a CONNECT refused (an Authentication Method on a port without
    authentication: 0x8C; a chain of mixed key algorithms on the X509 port: 0x87) is answered and the
    connection closed; a retained PUBLISH pipelined behind it is never stored."""
    p = pki()
    topic = rq.uniq("states/refused")
    for port, tls, props, rc, what in (
            (b.plain, None, {"authentication_method": "X"}, 0x8C, "plain port"),
            (b.x509, tls_ctx(p.mixed), None, 0x87, "X509 port, mixed key algorithms")):
        c = rq.RawClient(port, tls=tls)
        c.send_raw(rq.enc_connect(5, rq.uniq("refused"), props=props) +
                   rq.enc_publish(5, topic, b"must not be stored", qos=1, retain=True, pid=1) +
                   rq.packet(rq.PINGREQ, 0, b""))
        res = c.expect_closed(10)
        check(res, "%s: connection not closed" % what)
        check_eq([pk.type for pk in res.packets], [rq.CONNACK],
                 "%s: packets before the close (only the refusing CONNACK)" % what)
        check_eq(res.packets[0].rc, rc, "%s: CONNACK reason" % what)
    s = rq.connected(b.plain)
    s.subscribe(topic, qos=1)
    s.expect_nothing(1.0, "retained message from a refused connection")
    s.disconnect()


if __name__ == "__main__":
    if not certs.openssl_available():
        print("SKIP all: the openssl command line tool is missing (certificates are made with it)")
        sys.exit(rq.SKIP_RC)
    rq.run(fixture, timeout=240)
