#!/usr/bin/python3
"""21 before CONNECT: what a peer that has not identified itself can make the broker hold.
A first packet that is not CONNECT (PUBLISH, SUBSCRIBE, a PROXY protocol header, a TLS
handshake, an HTTP request) is closed at its first byte, not held for the connect timeout; many
slow, unfinished first packets hold at most spec.ringmq.preConnectLimit.bytes (memory measured
as the broker's VmRSS) and the ones over it are closed at once; at most
preConnectLimit.connections connections wait for their CONNECT (more are closed at accept),
while connected clients do not count; ordinary clients, and a large CONNECT that arrives
slowly, still connect. ringmq only (mosquitto has no such limits)."""

import os
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402

ONLY = "limits before CONNECT"
MIB = 1 << 20


def broker(ringmq=None, measure_rss=False):
    """Broker defaults (connect timeout 10 s, no packet size limit) unless ringmq says.
    measure_rss: under AddressSanitizer, freed memory sits in its quarantine (256 MB) and would
    count as held: that broker runs without one."""
    if not measure_rss or not asan_build():
        return rq.start_broker(rq.broker_yaml(ringmq=ringmq))
    saved = os.environ.get("ASAN_OPTIONS")
    os.environ["ASAN_OPTIONS"] = (saved + ":" if saved else "") + "quarantine_size_mb=0"
    try:
        return rq.start_broker(rq.broker_yaml(ringmq=ringmq))
    finally:
        if saved is None:
            del os.environ["ASAN_OPTIONS"]
        else:
            os.environ["ASAN_OPTIONS"] = saved


def asan_build():
    with open(rq.broker_bin(), "rb") as f:
        return b"__asan_init" in f.read()


def tsan_build():
    """ThreadSanitizer's allocator does not give freed memory back promptly and maps shadow
    memory: RSS bounds are not checked under it (races are what that build is for)."""
    with open(rq.broker_bin(), "rb") as f:
        return b"__tsan_init" in f.read()


def check_rss(ok, what):
    if tsan_build():
        rq.log("RSS bound not checked under ThreadSanitizer: " + what)
    else:
        check(ok, what)


def raw(port):
    s = socket.create_connection((rq.HOST, port), timeout=5)
    rq.on_cleanup(s.close)
    return s


def send_quietly(s, data):
    """Sends data; the broker closing the socket meanwhile is not an error here."""
    try:
        s.sendall(data)
        return True
    except OSError:
        return False


def wait_closed(socks, timeout):
    """Waits until the broker has closed every socket in socks or timeout passes. Returns the
    set of those closed (EOF or reset); data the broker sends first is read and ignored."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    closed = set()
    deadline = time.monotonic() + timeout
    while len(closed) < len(socks) and time.monotonic() < deadline:
        for key, _ in sel.select(max(0.0, deadline - time.monotonic())):
            try:
                data = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                closed.add(key.fileobj)
                sel.unregister(key.fileobj)
    sel.close()
    return closed


def varint(n):
    out = bytearray()
    while True:
        d, n = n % 128, n // 128
        out.append(d | (0x80 if n else 0))
        if not n:
            return bytes(out)


def count(b, pattern):
    return len(rq.re.findall(pattern, b.log()))


FIRST_BYTES = [
    ("PUBLISH", bytes.fromhex("30c0843d") + b"t" * 100),
    ("SUBSCRIBE", bytes.fromhex("82e807") + b"\x00\x01"),
    ("PROXY v1", b"PROXY TCP4 192.0.2.1 192.0.2.2 40000 1883\r\n"),
    ("PROXY v2", b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c"),
    ("TLS ClientHello", bytes.fromhex("16030100a5010000a10303")),
    ("HTTP", b"GET /mqtt HTTP/1.1\r\nHost: x\r\n"),
    ("PINGREQ", bytes.fromhex("c000")),
    ("CONNECT with reserved flags", bytes.fromhex("12ff7f")),
]


@case(ringmq_only=ONLY)
def first_packet_not_connect_closed_at_once():
    """[MQTT-3.1.0-1]: each is closed within 3 s (the connect timeout is 10 s), with a line
    saying why, and the broker keeps serving."""
    with broker() as b:
        for what, data in FIRST_BYTES:
            mark = b.log_mark()
            s = raw(b.port)
            t0 = time.monotonic()
            send_quietly(s, data)
            closed = wait_closed([s], 3.0)
            check(closed, "first packet %s: connection still open after 3 s" % what)
            rq.log("%s: closed after %.2f s" % (what, time.monotonic() - t0))
            check(b.wait_log(r"first packet is not CONNECT", mark, 3),
                  "first packet %s: no log line saying why" % what)
        check(b.wait_log(r"PROXY protocol header", 0, 1), "no line naming the PROXY header")
        check(b.wait_log(r"TLS handshake on a plain MQTT port", 0, 1),
              "no line naming the TLS handshake")
        rq.check_serves(b.port)


@case(ringmq_only=ONLY)
def many_non_connect_first_packets():
    """200 connections whose first packet announces a 1 MB PUBLISH and sends 64 KiB of it: all
    closed promptly, the broker's memory barely moves, clients still connect."""
    with broker(measure_rss=True) as b:
        time.sleep(0.3)
        rss0 = b.rss_kb()
        socks = [raw(b.port) for _ in range(200)]
        t0 = time.monotonic()
        for s in socks:
            send_quietly(s, bytes.fromhex("30c0843d") + b"\x00" * 65536)
        closed = wait_closed(socks, 5.0)
        rq.log("%d of %d closed after %.1f s; RSS %d -> %d kB" % (
            len(closed), len(socks), time.monotonic() - t0, rss0, b.rss_kb()))
        check_eq(len(closed), len(socks), "connections closed within 5 s")
        check_rss(b.rss_kb() - rss0 < 20 * 1024, "RSS grew by %d kB" % (b.rss_kb() - rss0))
        rq.check_serves(b.port)


@case(ringmq_only=ONLY)
def slow_first_packets_memory_bounded():
    """200 CONNECTs announcing ~1 MiB each, sent but for the last byte, with the default
    preConnectLimit.bytes (64 MiB): the broker's RSS grows by well under the 200 MB they sent
    (was +200 MB, held for the connect timeout); those over the budget are closed at once, with
    rate-limited log lines; an ordinary client connects meanwhile."""
    with broker(measure_rss=True) as b:
        time.sleep(0.3)
        rss0 = b.rss_kb()
        size = MIB - 1024
        head = b"\x10" + varint(size)
        body = b"\x00" * (size - 1)
        socks = [raw(b.port) for _ in range(200)]
        for s in socks:
            send_quietly(s, head + body)
        rss1 = 0
        for _ in range(20):  # the largest VmRSS while the broker reads what was sent
            rss1 = max(rss1, b.rss_kb())
            time.sleep(0.1)
        grown = rss1 - rss0
        rq.log("200 unfinished CONNECTs of 1 MiB: RSS %d -> %d kB (+%d MB)"
               % (rss0, rss1, grown // 1024))
        check_rss(grown < 100 * 1024, "RSS grew by %d MB with preConnectLimit.bytes 64 MiB"
              % (grown // 1024))
        closed = wait_closed(socks, 3.0)
        rq.log("%d connections over the budget closed" % len(closed))
        check(len(closed) >= 100, "only %d of 200 closed for the byte budget" % len(closed))
        lines = count(b, r"preConnectLimit\.bytes \(67108864\) reached")
        check(1 <= lines <= 4, "%d log lines about the byte budget (rate-limited: 1 per shard "
              "per 10 s)" % lines)
        c = rq.connected(b.port, client_id=rq.uniq("normal"))
        c.disconnect()
        for s in socks:
            s.close()
        rq.check_serves(b.port)


@case(ringmq_only=ONLY)
def byte_budget_configured():
    """preConnectLimit.bytes: 1 MiB: a second slow large CONNECT is closed at once while the
    first holds the budget; small ones still connect."""
    with broker(ringmq={"preConnectLimit": {"bytes": MIB}}) as b:
        head = b"\x10" + varint(800 * 1024)
        first = raw(b.port)
        send_quietly(first, head + b"\x00" * (700 * 1024))
        time.sleep(0.3)
        second = raw(b.port)
        send_quietly(second, head + b"\x00" * (700 * 1024))
        check(wait_closed([second], 3.0), "the second large unfinished CONNECT was not closed")
        check(b.wait_log(r"preConnectLimit\.bytes \(1048576\) reached", 0, 2),
              "no log line naming preConnectLimit.bytes")
        c = rq.connected(b.port, client_id=rq.uniq("small"))
        c.disconnect()
        check(not wait_closed([first], 0.2), "the first one (within the budget) was closed")


@case(ringmq_only=ONLY)
def preconnect_connection_limit():
    """preConnectLimit.connections: 20: of 60 connections that send nothing, the ones above 20
    are closed at accept (rate-limited lines); connected clients do not count: 30 connect once
    the silent ones are gone."""
    with broker(ringmq={"preConnectLimit": {"connections": 20}}) as b:
        time.sleep(0.3)  # the start-up probe connection is gone
        idle = [raw(b.port) for _ in range(60)]
        closed = wait_closed(idle, 3.0)
        rq.log("%d of 60 silent connections closed at accept" % len(closed))
        check(35 <= len(closed) <= 40, "%d of 60 closed with a limit of 20" % len(closed))
        lines = count(b, r"preConnectLimit\.connections \(20\)")
        check(1 <= lines <= 4, "%d log lines about the limit (rate-limited)" % lines)
        for s in idle:
            s.close()
        time.sleep(0.5)
        held = [rq.connected(b.port, client_id=rq.uniq("c%d" % i)) for i in range(30)]
        more = raw(b.port)
        check(not wait_closed([more], 0.5), "a new connection refused with 30 clients connected"
              " and none waiting for CONNECT")
        for c in held:
            c.disconnect()
        rq.check_serves(b.port)


@case(ringmq_only=ONLY)
def counts_released_on_every_path():
    """preConnectLimit.connections: 3, two shards. Connections that end every way a connection
    before CONNECT can end (connected then gone, a session resumed on the other shard, CONNECT
    refused, first packet not CONNECT, peer gone mid-CONNECT) give their place back: afterwards
    exactly 3 silent connections fit again and a 4th is refused."""
    with broker(ringmq={"preConnectLimit": {"connections": 3}}) as b:
        time.sleep(0.3)  # the start-up probe connection is gone
        cid = rq.uniq("resume")
        for i in range(30):
            c = rq.connected(b.port, client_id=cid, clean=False,
                             props={"session_expiry_interval": 60})
            c.disconnect()  # the next one may land on the other shard: handed over
            c = rq.RawClient(b.port)
            ack = c.connect(version=5, client_id=rq.uniq("bad"), level=6)  # unsupported level
            check(ack.rc != 0, "CONNECT with protocol level 6 accepted")
            c.expect_closed(3)
            s = raw(b.port)
            send_quietly(s, bytes.fromhex("c000"))
            check(wait_closed([s], 3), "PINGREQ first: not closed")
            s = raw(b.port)
            send_quietly(s, rq.enc_connect(client_id="x")[:5])
            s.close()
        time.sleep(0.5)
        idle = [raw(b.port) for _ in range(3)]
        time.sleep(0.3)
        check(not wait_closed(idle, 0.5), "3 silent connections with a limit of 3 after the "
              "loop: some refused (places not given back)")
        extra = raw(b.port)
        check(wait_closed([extra], 3), "a 4th silent connection was not refused")


@case(ringmq_only=ONLY)
def large_connect_trickled():
    """A CONNECT of ~190 KiB (password, will payload, user property of ~60 KiB each) sent in
    1 KiB pieces is accepted: a large CONNECT announced by its header may be held."""
    with broker() as b:
        big = b"p" * 60000
        data = rq.enc_connect(version=5, client_id=rq.uniq("big"), username="u", password=big,
                              will={"topic": "w", "payload": big},
                              props={"user_property": [("k", "v" * 60000)]})
        check(len(data) > 180000, "CONNECT is only %d bytes" % len(data))
        c = rq.RawClient(b.port)
        for i in range(0, len(data), 1024):
            c.send_raw(data[i:i + 1024])
            if i % (32 * 1024) == 0:
                time.sleep(0.01)
        p = c.recv_packet(5)
        check(p is not None and p.type == rq.CONNACK, "no CONNACK: %r" % (p,))
        check_eq(p.rc, 0, "CONNACK reason")
        c.disconnect()


if __name__ == "__main__":
    rq.run(timeout=180)
