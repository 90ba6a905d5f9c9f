#!/usr/bin/python3
"""20 slow readers: a subscriber that stops reading holds at most the output limit (1 MiB of
output, counted over every byte the broker keeps for the connection: MQTT bytes, TLS records,
WebSocket frames, the send in flight) plus its session queue (subscriberQueueLimit), on plain
TCP, TLS, WebSocket and WebSocket over TLS alike. Probe: 1500 x 64 KiB published while the
subscriber does not read; the broker's RSS (/proc/PID/status VmRSS) grows by a few MB, not by
the ~94 MB published. When the subscriber reads again, its connection still works. QoS 1
and QoS 2 messages beyond the limit wait in the session queue: none is lost. A client that floods
requests whose answers it does not read (PUBREL -> PUBCOMP; WebSocket ping -> pong) is not read
either once 2 MiB of answers wait for it, so its sending stalls (TCP flow control) and the
broker's memory stays bounded; once it reads, every answer arrives and the connection works.

Each case starts its own broker (--threads 1: the publisher and the subscriber on one shard, so
that each message is flushed on its own, the case in which the old test on the core buffer alone
never saw a backlog). The RSS bound is not checked under AddressSanitizer, whose quarantine
keeps freed memory; the number of messages held still is. ringmq only."""

import os
import select
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402
import fixtures  # noqa: E402
import certs  # noqa: E402

ONLY = "TLS and WebSocket listeners and their output accounting are ringmq's"
MSG = 64 * 1024
COUNT = 1500              # 94 MiB published in all
QUEUE = 10                # subscriberQueueLimit.length of the slow subscriber's session
RSS_BOUND_KB = 8 * 1024   # growth allowed while the subscriber does not read
# Messages still held for the subscriber when it reads again: the broker's (1 MiB output, the
# queue) and the kernel's socket buffers (a few MB on loopback). Far below COUNT.
HELD_BOUND = 400


class Pki:
    def __init__(self):
        f = certs.CertFactory()
        self.root = f.ca("/CN=ringmq slow reader Root", name="root")
        self.srv = f.server(self.root, name="srv")


pki = fixtures.once(Pki)


def broker(queue=QUEUE, threads=1):
    p = pki()
    ports = {k: rq.free_port() for k in ("tcp", "tls", "ws", "wss")}
    y = """---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: Broker
metadata: {name: default}
spec:
  advanced: {clients: {subscriberQueueLimit: {length: %(queue)d}}}
  diagnostics: {logs: {level: debug}}
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: listeners}
spec:
  ports:
  - {port: %(tcp)d, bindAddress: 127.0.0.1, protocol: Mqtt}
  - port: %(tls)d
    bindAddress: 127.0.0.1
    tls: {mode: Manual, manual: {secretRef: server-cert}}
  - {port: %(ws)d, bindAddress: 127.0.0.1, protocol: WebSockets}
  - port: %(wss)d
    bindAddress: 127.0.0.1
    protocol: WebSockets
    tls: {mode: Manual, manual: {secretRef: server-cert}}
""" % dict(ports, queue=queue)
    y += certs.secret_yaml("server-cert", p.srv.chain_pem, p.srv.key_pem)
    return fixtures.start_listening(y, ports, timeout=2.0, threads=threads)


def sanitized(b):
    """True when the broker runs under AddressSanitizer or ThreadSanitizer (their allocators
    keep freed memory and add shadow memory: RSS is not a measure then)."""
    try:
        with open("/proc/%d/maps" % b.pid) as f:
            maps = f.read()
            return "libasan" in maps or "libtsan" in maps
    except OSError:
        return False


def client(b, kind, version=5):
    tls = rq.tls_context(pki().root.cert) if kind in ("tls", "wss") else None
    if kind in ("ws", "wss"):
        return rq.WsRawClient(b.ports[kind], tls=tls, version=version, timeout=10)
    return rq.RawClient(b.ports[kind], tls=tls, version=version, timeout=10)


def settle_rss(b, timeout=3.0):
    """RSS once it has stopped moving (the broker is done with what it was sent)."""
    deadline = time.monotonic() + timeout
    last = b.rss_kb()
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = b.rss_kb()
        if abs(now - last) < 256:
            return now
        last = now
    return b.rss_kb()


def flood_slow_subscriber(b, kind, sub_qos, count, pub_qos=1):
    """A subscriber on `kind` that stops reading; `count` messages of MSG bytes published to it
    from plain TCP at QoS pub_qos > 0 (each acknowledged before the next, so each reaches the
    subscriber's connection on its own). Returns (subscriber, topic, RSS before, RSS after) in
    kB."""
    sub = client(b, kind)
    t = rq.uniq("slow")
    check_eq(sub.connect(client_id=t).rc, 0, "%s subscriber CONNACK" % kind)
    sub.subscribe(t, qos=sub_qos)
    pub = rq.connected(b.ports["tcp"])
    pub.ping(5)
    rss0 = settle_rss(b)
    payload = b"s" * MSG
    for i in range(count):
        ack = pub.publish(t, payload[:-4] + i.to_bytes(4, "big"), qos=pub_qos)
        check(ack.rc in (0, 0x10), "ack of publish %d: rc 0x%02x" % (i, ack.rc))
    pub.ping(10)
    rss1 = settle_rss(b)
    pub.disconnect()
    return sub, t, rss0, rss1


def read_again(sub, timeout=5.0, count=None):
    """The subscriber reads again: the sequence numbers of what it gets (acknowledged), until
    `count` arrived or nothing came for `timeout` s."""
    got = []
    while count is None or len(got) < count:
        p = sub.recv_packet(timeout)
        if p is None:
            return got
        if p.type == rq.PUBLISH:
            check_eq(len(p.payload), MSG, "payload size")
            got.append(int.from_bytes(p.payload[-4:], "big"))
            if p.qos:
                sub.ack(p)
    return got


def still_usable(b, sub, topic, kind):
    sub.ping(5)
    pub = rq.connected(b.ports["tcp"])
    pub.publish(topic, b"after", qos=1)
    p = sub.recv_publish(5)
    check_eq(p.payload, b"after", "%s: a publish after the subscriber read again" % kind)
    pub.disconnect()
    sub.disconnect()


def slow_qos0(kind):
    with broker() as b:
        sub, t, rss0, rss1 = flood_slow_subscriber(b, kind, 0, COUNT)
        grew = rss1 - rss0
        rq.log("%s: RSS %d -> %d kB (+%d kB) while the subscriber did not read"
               % (kind, rss0, rss1, grew))
        if sanitized(b):
            rq.log("%s: RSS bound not checked under a sanitizer" % kind)
        else:
            check(grew < RSS_BOUND_KB, "%s: broker RSS grew by %d kB (bound %d kB) while a"
                  " subscriber did not read" % (kind, grew, RSS_BOUND_KB))
        got = read_again(sub)
        rq.log("%s: %d of %d messages delivered once it read again" % (kind, len(got), COUNT))
        check(got == sorted(got), "%s: messages out of order" % kind)
        check(0 < len(got) <= HELD_BOUND,
              "%s: %d of %d QoS 0 messages were held for a subscriber that did not read"
              " (bound %d: 1 MiB of output, %d queued, the socket buffers)"
              % (kind, len(got), COUNT, HELD_BOUND, QUEUE))
        still_usable(b, sub, t, kind)


@case(ringmq_only=ONLY)
def slow_reader_tcp_bounded():
    slow_qos0("tcp")


@case(ringmq_only=ONLY)
def slow_reader_tls_bounded():
    slow_qos0("tls")


@case(ringmq_only=ONLY)
def slow_reader_ws_bounded():
    slow_qos0("ws")


@case(ringmq_only=ONLY)
def slow_reader_wss_bounded():
    slow_qos0("wss")


# ---------------------------------------------------------------------------------------------
# QoS 1: what is over the output limit waits in the session queue, nothing acknowledged is lost.

def slow_qos1(kind, qos=1):
    n = 200
    with broker(queue=1000) as b:
        sub, t, _, _ = flood_slow_subscriber(b, kind, qos, n, pub_qos=qos)
        got = read_again(sub, count=n)
        check_eq(got, list(range(n)), "%s: QoS %d messages after the subscriber read again"
                 % (kind, qos))
        still_usable(b, sub, t, kind)


@case(ringmq_only=ONLY)
def slow_reader_qos1_nothing_lost_tls():
    slow_qos1("tls")


@case(ringmq_only=ONLY)
def slow_reader_qos1_nothing_lost_wss():
    slow_qos1("wss")


@case(ringmq_only=ONLY)
def slow_reader_qos1_nothing_lost_ws():
    slow_qos1("ws")


@case(ringmq_only=ONLY)
def slow_reader_qos1_nothing_lost_tcp():
    slow_qos1("tcp")


@case(ringmq_only=ONLY)
def slow_reader_qos2_nothing_lost_tls():
    slow_qos1("tls", qos=2)


# ---------------------------------------------------------------------------------------------
# Requests whose answers the client does not read.

FLOOD = 32 << 20  # bytes of requests; as many bytes of answers
# 2 MiB of answers held, what the input already received produced beyond that, and the heap
# left behind by buffers growing to that size (a few MB measured; ~30 MB before the fix).
FLOOD_RSS_BOUND_KB = 12 * 1024
WOULD_BLOCK = (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError)


def flood_units(kind):
    """(request, its answer): a v3.1.1 PUBREL and its PUBCOMP, or over WebSocket a ping frame
    (masked with the zero key, which leaves the payload as it is) and its pong."""
    if kind in ("ws", "wss"):
        return bytes([0x89, 0x80 | 125]) + b"\0\0\0\0" + b"p" * 125, bytes([0x8A, 125]) + b"p" * 125
    return b"\x62\x02\x00\x01", b"\x70\x02\x00\x01"


def send_some(sock, data, off):
    """One non-blocking send of at most 16 KiB (a TLS write retried after WANT_WRITE must offer
    the same bytes again: it does, from the same offset). Returns the new offset."""
    try:
        return off + sock.send(data[off:off + 16384])
    except WOULD_BLOCK:
        return off


def send_unread(sock, data, stall=2.0):
    """Sends without reading until all is sent or nothing more went for `stall` s."""
    off, last = 0, time.monotonic()
    while off < len(data) and time.monotonic() - last < stall:
        _, w, _ = select.select([], [sock], [], 0.2)
        if w:
            n = send_some(sock, data, off)
            if n > off:
                off, last = n, time.monotonic()
    return off


def finish_reading(sock, data, off, answer, count, timeout=120.0):
    """Sends the rest while reading every answer; checks each byte of them."""
    want = answer * (65536 // len(answer) + 2)
    got, deadline = 0, time.monotonic() + timeout
    while got < count * len(answer) or off < len(data):
        check(time.monotonic() < deadline, "answers: %d of %d bytes within %.0f s"
              % (got, count * len(answer), timeout))
        r, w, _ = select.select([sock], [sock] if off < len(data) else [], [], 1.0)
        if w:
            off = send_some(sock, data, off)
        if not r:
            continue
        try:
            while True:
                chunk = sock.recv(65536)
                check(chunk, "connection closed after %d bytes of answers" % got)
                k = got % len(answer)
                check(chunk == want[k:k + len(chunk)], "answer bytes differ at %d" % got)
                got += len(chunk)
        except WOULD_BLOCK:
            pass
    check_eq(got, count * len(answer), "bytes of answers")


def flood_unread(kind):
    with broker() as b:
        c = client(b, kind, version=4)
        check_eq(c.connect(client_id=rq.uniq("flood")).rc, 0, "CONNACK")
        request, answer = flood_units(kind)
        count = FLOOD // len(request)
        data = memoryview(request * count)
        mark = b.log_mark()
        c.sock.setblocking(False)
        rss0 = settle_rss(b)
        sent = send_unread(c.sock, data)
        rss1 = settle_rss(b)
        grew = rss1 - rss0
        rq.log("%s: %d of %d bytes of requests taken before the broker stopped reading; RSS"
               " +%d kB" % (kind, sent, len(data), grew))
        if sanitized(b):
            rq.log("%s: RSS bound not checked under a sanitizer" % kind)
        else:
            check(grew < FLOOD_RSS_BOUND_KB, "%s: broker RSS grew by %d kB (bound %d kB) for a"
                  " client that does not read its answers" % (kind, grew, FLOOD_RSS_BOUND_KB))
        check(sent < len(data), "%s: the broker took all %d bytes of requests whose answers"
              " were not read" % (kind, len(data)))
        check(b.wait_log(r"not reading it until they are", mark) is not None,
              "%s: no log line says why the client is not read" % kind)
        finish_reading(c.sock, data, sent, answer, count)
        c.sock.setblocking(True)
        c.ping(10)
        c.disconnect()


@case(ringmq_only=ONLY)
def unread_pubcomps_tcp_bounded():
    flood_unread("tcp")


@case(ringmq_only=ONLY)
def unread_pubcomps_tls_bounded():
    flood_unread("tls")


@case(ringmq_only=ONLY)
def unread_pongs_ws_bounded():
    flood_unread("ws")


@case(ringmq_only=ONLY)
def unread_pongs_wss_bounded():
    flood_unread("wss")


if __name__ == "__main__":
    rq.run(timeout=280)
