#!/usr/bin/python3
"""29 placement races: moves of connected publishers (spec.ringmq.placement, see 29-placement.py)
racing with other events; helpers in lib/placement.py.
- CONNECT takeovers (clean start and resume, v5 and 3.1.1) while the publisher moves: CONNACK
  0x00, or 0x89 Server busy (3.1.1: 3) and a retry succeeds; one connection survives;
- a reload removing the port of moving publishers: all disconnected; SIGTERM while moves
  happen: exit 0 (run() fails the file on any sanitizer line);
- the same made certain by holding a move in flight: the target shard stalled by the test hook
  (RINGMQ_TEST_STALL_MS + SIGUSR2): takeover CONNECTs get Server busy, a reload removing the
  port closes the client once it lands, SIGTERM exits 0, packets sent meanwhile (SUBSCRIBE,
  PINGREQ, PUBLISH, DISCONNECT, a close, silence past the keep-alive) are handled on the new
  shard; order toward a third shard (3 shards) with that shard stalled.
RQ_PLACEMENT_OFF=1 runs every broker with placement disabled: every case must then fail.
ringmq only."""

import os
import re
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402
import fixtures  # noqa: E402
import placement as pl  # noqa: E402
import unread  # noqa: E402


# ---- 7 takeover races --------------------------------------------------------------------------

RACES = int(os.environ.get("RQ_PLACEMENT_RACES", "100"))
BUSY = {5: 0x89, 4: 3}  # CONNACK Server busy / Server unavailable (3.1.1)


def take_over(b, cid, version, resume):
    """CONNECTs with cid until one is accepted (busy answers retried, bounded); returns
    (client, CONNACK, number of busy answers)."""
    props = {"session_expiry_interval": 60} if resume and version == 5 else None
    busy = 0
    for _ in range(200):
        c = rq.RawClient(b.port, version=version)
        ack = c.connect(client_id=cid, clean=not resume, props=props, timeout=10)
        if ack.rc == 0:
            c.client_id = cid
            return c, ack, busy
        check_eq(ack.rc, BUSY[version], "CONNACK of a takeover of %s (v%d)" % (cid, version))
        check(c.expect_closed(5), "a connection answered busy stays open")
        busy += 1
        time.sleep(0.005)  # a retry (bounded), not a condition
    raise AssertionError("%s: Server busy 200 times in a row" % cid)


def wait_delivered(sub, before, packets, what, timeout=10.0):
    """Until sub's Drain has read the bytes of packets since it had read before (QoS 0, v5: the
    broker sends them as encoded here)."""
    want = before + sum(len(x) for x in packets)
    deadline = time.monotonic() + timeout
    while sub.drain.bytes < want:
        check(time.monotonic() < deadline, "%s: %d of %d bytes delivered to the subscriber"
              % (what, sub.drain.bytes - before, want - before))
        time.sleep(0.001)


@case(ringmq_only=pl.ONLY)
def takeover_while_moving():
    """A publisher about to move (the 2nd window of the rule closes around when the takeover's
    CONNECT comes) is taken over by a CONNECT with its client id on any shard, clean start and
    resume, v5 and 3.1.1: the CONNACK is 0x00, or Server busy and a retry gets 0x00; the old
    connection is closed, the new one serves, a resume finds the session. (The publisher
    sends unpaced: the target's busy limit is lifted, so that the move is decided on time.)"""
    with pl.start(pl.NOT_BUSY) as b:
        topic = rq.uniq("race")
        sub, home = pl.drained_sub(b, topic + "/#")
        stats = {"busy": 0, "moved": 0, "present": 0}
        for i in range(RACES):
            version = 4 if i % 4 == 3 else 5
            resume = i % 2 == 1
            props = {"session_expiry_interval": 60} if resume and version == 5 else None
            p = pl.pub_elsewhere(b, home, version=version, clean=not resume, props=props)
            cid = p.client_id
            # the move is decided at the 512th message: before the CONNECT is sent in about
            # half the rounds (it races the move's completion), after it in the others
            lead = 2 * 256 - 22 + (i * 7) % 48
            data = b"".join(rq.enc_publish(version, topic + "/p", b"%d" % k)
                            for k in range(lead))
            before = sub.drain.bytes
            p.send_raw(data)
            # the CONNECT goes once the publisher's shard has routed all but the last 8 of
            # them: on a loaded machine its shard may otherwise see the takeover first, and the
            # race is not run (CI: 2 moves of 100)
            wait_delivered(sub, before, [rq.enc_publish(5, topic + "/p", b"%d" % k)
                                         for k in range(lead - 8)], cid)
            n = rq.RawClient(b.port, version=version)
            n.send_connect(client_id=cid, clean=not resume, props=props)
            try:
                p.send_raw(b"".join(rq.enc_publish(version, topic + "/p", b"t%d" % k)
                                    for k in range(64)))
            except AssertionError:
                pass  # already taken over and closed
            ack = n.recv_packet(10)
            check(ack is not None and ack.type == rq.CONNACK, "%s: CONNACK %r" % (cid, ack))
            if ack.rc != 0:
                check_eq(ack.rc, BUSY[version], "CONNACK of a takeover of %s (v%d)"
                         % (cid, version))
                check(n.expect_closed(5), "a connection answered busy stays open")
                stats["busy"] += 1
                n, ack, busy = take_over(b, cid, version, resume)
                stats["busy"] += busy
            if resume:
                check(ack.session_present, "%s: the resume found no session (%r)" % (cid, ack))
            res = p.expect_closed(5)
            check(res, "%s: the old connection still open after the takeover" % cid)
            check(res.rc in (None, 0x8E), "%s: old connection's DISCONNECT %r" % (cid, res))
            check(n.ping(5), "%s: no PINGRESP on the new connection" % cid)
            ack = n.publish(topic + "/n", b"after", qos=1)
            check(ack.type == rq.PUBACK and ack.rc < 0x80, "%s: PUBACK %r" % (cid, ack))
            stats["moved"] += bool(re.search(r'client="%s" \(session\) moving' % re.escape(cid),
                                             b.log()))
            n.disconnect()
            b.check_alive()
        rq.log("%d takeovers: %d of the publishers had started moving, %d Server busy answers"
               % (RACES, stats["moved"], stats["busy"]))
        check(stats["moved"] >= RACES // 10, "only %d of %d publishers started moving: the race"
              " was not run" % (stats["moved"], RACES))
        rq.check_serves(b.port)
        check_eq(b.stop(), 0, "exit code after SIGTERM")


# ---- a move that waits for a peer that does not read ------------------------------------------
def stuck_publisher(b, home, none_topic, keepalive):
    """A v5 client on a shard other than home that publishes QoS 1 to none_topic (no
    subscriber: no shard chosen) without reading its PUBACKs, until the broker's socket buffer
    toward it is full (its send queue no longer grows while PUBACKs are still due): from then on
    the broker has a send in flight to it that does not end. Returns (client, last packet id)."""
    p = pl.on_shard(b, pl.elsewhere(b, home), pl.plain(b, keepalive=keepalive))
    p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # the kernel may let the broker queue 4 MiB (a million PUBACKs) before its send waits;
    # the broker stops reading a client at 2 MiB of answers held (then no move begins): steps
    # of 16,384 messages (64 KiB of PUBACKs), then of 1,024; packet ids in turn
    packets = [rq.enc_publish(5, none_topic, b"x", qos=1, pid=i) for i in range(1, 65536)]
    cycle = b"".join(packets)
    size = len(packets[0])  # all the same length
    at = [0]

    def send(n):
        end = at[0] + n * size
        p.send_raw(cycle[at[0]:end] + cycle[:max(0, end - len(cycle))])
        at[0] = end % len(cycle)

    unread.fill(b.port, p.sock, send, 16384, 1024)
    return p, at[0] // size


def start_stuck_move(b, p, pid, topic):
    """p publishes QoS 1 to topic (its subscriber on the home shard) until the rule moves it:
    the move begins (p is not read any more) but waits for the send in flight."""
    mark = b.log_mark()
    data = []
    for k in range(1024):
        pid = pid % 65535 + 1
        data.append(rq.enc_publish(5, topic, b"%d" % k, qos=1, pid=pid))
    p.send_raw(b"".join(data))
    check(b.wait_log(r'client="%s"[^\n]*not read any more: moves to shard' %
                     re.escape(p.client_id), mark, timeout=10),
          "%s: no move began (the case needs one waiting for its send)" % p.client_id)


def wait_connections(b, want, what, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        conns, _ = pl.metrics(b)
        if sum(conns.values()) == want:
            return
        check(time.monotonic() < deadline, "%s: %d TCP connections, not %d (%r)"
              % (what, sum(conns.values()), want, conns))
        time.sleep(0.1)


@case(ringmq_only=pl.ONLY)
def move_waiting_for_a_peer_that_does_not_read():
    """A publisher whose PUBACKs are not read (the broker's send to it cannot end) when the
    rule moves it: the move waits for the send, and meanwhile the client is still bound by its
    keep-alive (2 s: closed after 3 s without a packet) and by a takeover of its client id
    (the old connection closed within the close linger, the new one serves). Before, the move
    stopped the client's timer and waited for the send for ever: the connection stayed open
    and unread as long as the peer kept it."""
    with pl.start(pl.NOT_BUSY) as b:
        topic = rq.uniq("stuck")
        sub, home = pl.drained_sub(b, topic + "/#")
        # keep-alive
        p, pid = stuck_publisher(b, home, topic + "-none", keepalive=2)
        cid = p.client_id
        start_stuck_move(b, p, pid, topic + "/p")
        check(b.wait_log(r'client="%s"[^\n]*keep alive timeout' % re.escape(cid), timeout=15),
              "%s: its keep-alive did not close it while its move waited" % cid)
        wait_connections(b, 1, "after the keep-alive closed the waiting client")
        check(not re.search(r'client="%s"[^\n]*moving to shard' % re.escape(cid), b.log()),
              "%s moved although it was closed" % cid)
        p.close()
        # takeover
        p, pid = stuck_publisher(b, home, topic + "-none2", keepalive=60)
        cid = p.client_id
        start_stuck_move(b, p, pid, topic + "/q")
        n = rq.RawClient(b.port, version=5)
        ack = n.connect(client_id=cid, clean=True, timeout=10)
        check_eq(ack.rc, 0, "CONNACK of the takeover of %s" % cid)
        wait_connections(b, 2, "after the takeover of the waiting client")
        check(n.ping(5), "no PINGRESP on the new connection")
        ack = n.publish(topic + "/n", b"after", qos=1)
        check(ack.type == rq.PUBACK and ack.rc < 0x80, "PUBACK %r" % (ack,))
        check(not re.search(r'client="%s"[^\n]*keep alive timeout' % re.escape(cid), b.log()),
              "the old connection of %s timed out instead of being taken over" % cid)
        n.disconnect()
        p.close()
        b.check_alive()
        rq.check_serves(b.port)
        check_eq(b.stop(), 0, "exit code after SIGTERM")


# ---- 8 reload, 9 SIGTERM -----------------------------------------------------------------------
@case(ringmq_only=pl.ONLY)
def reload_closes_the_port_of_moving_clients():
    """Publishers on a port move to their subscriber's shard; while they do, a reload removes
    their port: every one of them is disconnected (moved, moving or not yet), the other port
    keeps serving. Three rounds (the port comes back between them)."""
    with pl.start(pl.NOT_BUSY, ports=pl.PORTS2) as b:
        topic = rq.uniq("rl")
        sub, home = pl.drained_sub(b, topic + "/#", port="keep")
        for r in range(3):
            if r:
                pl.reload_listeners(b, {"keep", "gone"})
                check(rq.port_open(b.ports["gone"], 5), "the port came back")
            pubs = [pl.on_shard(b, pl.elsewhere(b, home), pl.plain(b, "gone", version=5 - (i % 2)))
                    for i in range(4)]
            mark = b.log_mark()
            floods = [pl.Flood(p, topic + "/p") for p in pubs]
            pl.wait_moving(b, mark, count=1 + r)
            pl.reload_listeners(b, {"keep"})
            deadline = time.monotonic() + 10
            for f in floods:
                f.join(max(0.1, deadline - time.monotonic()))
                check(f.closed, "round %d: a client of the removed port (%s, moves %r) still"
                      " served" % (r, f.c.client_id, pl.moves_of(b, f.c.client_id)))
                check(f.c.expect_closed(5), "round %d: %s not closed" % (r, f.c.client_id))
            check(not rq.port_open(b.ports["gone"], 0.5), "the removed port still accepts")
            rq.log("round %d: %d moves began, %d completed" % (
                r, len(re.findall(r"moving to shard", b.log_since(mark))),
                len(re.findall(r"moved here from", b.log_since(mark)))))
        rq.check_serves(b.ports["keep"])
        sub.disconnect()


@case(ringmq_only=pl.ONLY)
def sigterm_while_moving():
    """SIGTERM right after the 1st, 2nd, 3rd move began (publishers still flooding): exit 0
    (under the sanitizer build: no report, run() checks the log)."""
    for r in range(3):
        b = pl.start(pl.NOT_BUSY)
        topic = rq.uniq("st")
        sub, home = pl.drained_sub(b, topic + "/#")
        pubs = [pl.on_shard(b, pl.elsewhere(b, home), pl.plain(b, version=5 - (i % 2))) for i in range(4)]
        mark = b.log_mark()
        for p in pubs:
            pl.Flood(p, topic + "/p")
        pl.wait_moving(b, mark, count=1 + r)
        check_eq(b.stop(), 0, "round %d: exit code after SIGTERM while moving" % r)


@case(ringmq_only=pl.ONLY)
def order_kept_toward_a_third_shard():
    """3 shards, minSharePercent 50: a publisher on shard 1 sends 2/3 of its messages to a
    subscriber on shard 2 and 1/3 to one on shard 0, which is stalled while the publisher
    moves to shard 2: its messages routed before the move wait in shard 0's inbox, those after
    it come from shard 2; each subscriber gets its messages in order, none lost (QoS 1)."""
    with pl.start({"placement": {"minSharePercent": 50, "maxTargetBusyPercent": 100}}, threads=3,
               env={"RINGMQ_TEST_STALL_MS": str(pl.STALL_MS)}) as b:
        root = rq.uniq("tri")
        subs = {}
        for shard in (2, 0):
            c = pl.on_shard(b, {shard}, pl.plain(b))
            c.subscribe("%s/%d" % (root, shard), qos=1)
            subs[shard] = pl.Collector(c)
        p = pl.on_shard(b, {1}, pl.plain(b))
        sent = {0: 0, 2: 0}

        def send(k, wait=False):
            shard = 0 if k % 3 == 2 else 2
            p.publish("%s/%d" % (root, shard), b"%d" % sent[shard], qos=1, wait=wait)
            sent[shard] += 1

        for k in range(480):
            send(k)
            if k % pl.BURST == pl.BURST - 1:
                time.sleep(pl.BURST_GAP)  # pacing
        mark = b.log_mark()
        b.signal(signal.SIGUSR2)
        fixtures.expect_log(b, mark, r"shard 0: stalling", "shard 0 stalls")
        k = 480
        deadline = time.monotonic() + pl.STALL_MS / 2000
        while not pl.moves_of(b, p.client_id):
            check(time.monotonic() < deadline, "no move to shard 2 during the stall")
            for _ in range(pl.BURST):
                send(k)
                k += 1
            time.sleep(pl.BURST_GAP)  # pacing
        check_eq(pl.moves_of(b, p.client_id), [(1, 2)], "the move")
        for _ in range(200):
            send(k)
            k += 1
        for shard, col in subs.items():
            pl.wait_in_order(col, "%s/%d" % (root, shard), sent[shard],
                          "subscriber on shard %d" % shard)
        n = 0
        while True:  # every PUBACK came (the PUBLISHes were QoS 1)
            pk = p.recv_packet(5)
            check(pk is not None, "PUBACKs: %d of %d" % (n, k))
            check_eq(pk.type, rq.PUBACK, "packet to the publisher")
            n += 1
            if n == k:
                break
        p.disconnect()

@case(ringmq_only=pl.ONLY)
def takeover_while_the_move_is_in_flight():
    """While the record of a move waits in the stalled target's inbox, a CONNECT with the
    client id on shard 1 gets CONNACK Server busy (v5 0x89, 3.1.1 3) and is closed, for clean
    start and resume; after the stall the client is on shard 0, its messages arrived in order,
    and a retry takes it over (a resume finds the session)."""
    with pl.stalled_broker() as b:
        root = rq.uniq("tk")
        sub = pl.on_shard(b, {0}, pl.plain(b))
        sub.subscribe(root + "/#", qos=1)
        col = pl.Collector(sub)
        nudge = pl.on_shard(b, {1}, pl.plain(b))
        for r, (version, resume) in enumerate(((5, False), (5, True), (4, True))):
            props = {"session_expiry_interval": 60} if resume and version == 5 else None
            p = pl.on_shard(b, {1}, pl.plain(b, version=version, clean=not resume, props=props))
            topic = "%s/%d" % (root, r)
            n = pl.stalled_move(b, p, topic)
            probe = pl.socket_on_shard1(b, nudge)
            ack = probe.connect(version=version, client_id=p.client_id, clean=not resume,
                                props=props, timeout=10)
            check_eq(ack.rc, BUSY[version], "round %d: CONNACK while the session moves" % r)
            check(probe.expect_closed(5), "round %d: the busy connection stays open" % r)
            deadline = time.monotonic() + pl.STALL_MS / 1000 + 10
            while not pl.moves_of(b, p.client_id):
                check(time.monotonic() < deadline, "round %d: the move did not complete" % r)
                time.sleep(0.05)
            check_eq(pl.moves_of(b, p.client_id), [(1, 0)], "round %d: the move" % r)
            pl.wait_in_order(col, topic, n, "round %d" % r)
            check(p.ping(5), "round %d: PINGRESP on the moved connection" % r)
            new, ack, busy = take_over(b, p.client_id, version, resume)
            check_eq(busy, 0, "round %d: Server busy after the move completed" % r)
            check_eq(bool(ack.session_present), resume, "round %d: session present" % r)
            check(p.expect_closed(5), "round %d: the moved connection not taken over" % r)
            ack = new.publish(topic, b"%d" % n, qos=1)
            check(ack.type == rq.PUBACK and ack.rc < 0x80, "round %d: PUBACK %r" % (r, ack))
            pl.wait_in_order(col, topic, n + 1, "round %d, after the takeover" % r)
            new.disconnect()
        nudge.disconnect()
        sub.disconnect()


@case(ringmq_only=pl.ONLY)
def reload_while_the_move_is_in_flight():
    """A reload removes the port of a client whose move waits in the stalled target's inbox:
    the client is disconnected once the target adopts it; the other port serves."""
    with pl.stalled_broker(ports=pl.PORTS2) as b:
        topic = rq.uniq("rf")
        sub = pl.on_shard(b, {0}, pl.plain(b, "keep"))
        sub.subscribe(topic, qos=1)
        col = pl.Collector(sub)
        p = pl.on_shard(b, {1}, pl.plain(b, "gone"))
        n = pl.stalled_move(b, p, topic)
        pl.reload_listeners(b, {"keep"})
        res = p.expect_closed(pl.STALL_MS / 1000 + 10)
        check(res, "the moving client of the removed port still open")
        check(res.rc in (None, 0x8B), "DISCONNECT reason %r" % res)
        # The messages parsed before the move arrive in order. Those behind the one that decided
        # the move wait unparsed for the target, which closes the client first (its port is
        # gone): they are lost, like bytes any client of a closed port sent too late.
        sub.publish(topic, b"marker")  # routed on shard 0 after the close: behind p's messages
        pl.wait_got(col, lambda g: g[1] == b"marker", "marker")
        got = [int(g[1]) for g in col.got if g[0] == topic and g[1] != b"marker"]
        check(len(got) >= 512 and got == list(range(len(got))),
              "the moving client's messages: %d of %d, in order: %s"
              % (len(got), n, got == list(range(len(got)))))
        rq.log("%d of its %d messages delivered" % (len(got), n))
        check(not rq.port_open(b.ports["gone"], 0.5), "the removed port still accepts")
        rq.check_serves(b.ports["keep"])
        sub.disconnect()


@case(ringmq_only=pl.ONLY)
def sigterm_while_the_move_is_in_flight():
    """SIGTERM while a move's record waits in the stalled target's inbox: exit 0 (the shard
    stopping with the record unread frees it; sanitizer build: no report)."""
    b = pl.stalled_broker()
    topic = rq.uniq("sf")
    sub = pl.on_shard(b, {0}, pl.plain(b))
    sub.subscribe(topic, qos=0)
    pl.Drain(sub)
    p = pl.on_shard(b, {1}, pl.plain(b, will={"topic": topic, "payload": b"will"}))
    pl.stalled_move(b, p, topic)
    check_eq(b.stop(pl.STALL_MS / 1000 + 10), 0, "exit code after SIGTERM with a move in flight")


@case(ringmq_only=pl.ONLY)
def packets_sent_while_the_move_is_in_flight():
    """Four publishers start moving during one stall of their target. Meanwhile one sends
    SUBSCRIBE, PINGREQ, PUBLISH QoS 1 and 2: all answered after the stall, from the new shard,
    and its new subscription gets messages; one sends DISCONNECT 0x00 and closes: no will; one
    closes without DISCONNECT: its will; one (keep-alive 1 s) stays silent through the 2.5 s
    stall: closed by keep-alive once it lands, its will published."""
    with pl.stalled_broker() as b:
        root = rq.uniq("pk")
        sub = pl.on_shard(b, {0}, pl.plain(b))
        sub.subscribe(root + "/#", qos=2)
        col = pl.Collector(sub)

        def will(n):
            return {"topic": "%s/will%d" % (root, n), "payload": b"w%d" % n}

        ps = [pl.on_shard(b, {1}, pl.plain(b, will=will(i), keepalive=1 if i == 3 else 60))
              for i in range(4)]
        for k in range(480):
            for i, p in enumerate(ps):
                p.publish("%s/p%d" % (root, i), b"%d" % k)
            if k % pl.BURST == pl.BURST - 1:
                time.sleep(pl.BURST_GAP)  # pacing
        mark = b.log_mark()
        b.signal(signal.SIGUSR2)
        fixtures.expect_log(b, mark, r"shard 0: stalling", "shard 0 stalls")
        for i, p in enumerate(ps):
            p.send_raw(b"".join(rq.enc_publish(5, "%s/p%d" % (root, i), b"%d" % k)
                                for k in range(480, 544)))
        for p in ps:
            fixtures.expect_log(b, mark, r'client="%s" \(session\) moving to shard 0'
                                % re.escape(p.client_id), "moves began during the stall",
                                timeout=pl.STALL_MS / 2000)
        busy, polite, lost, silent = ps
        mine = rq.uniq("mine")
        busy.send_raw(rq.enc_subscribe(5, 100, [(mine, 1)]) + rq.packet(rq.PINGREQ, 0, b"") +
                      rq.enc_publish(5, root + "/p0", b"544", qos=1, pid=101) +
                      rq.enc_publish(5, root + "/p0", b"545", qos=2, pid=102))
        polite.send_raw(rq.enc_disconnect(5, 0))
        polite.close()
        lost.close()
        check(not pl.moves_of(b, busy.client_id), "the moves completed during the stall")
        suback = busy.wait_for(rq.SUBACK, timeout=pl.STALL_MS / 1000 + 10, pid=100)
        check_eq(suback.codes, [1], "SUBACK of the SUBSCRIBE sent while moving")
        busy.wait_for(rq.PINGRESP, timeout=5)
        check_eq(busy.wait_for(rq.PUBACK, pid=101, timeout=5).rc, 0, "PUBACK")
        check(busy.wait_for(rq.PUBREC, pid=102, timeout=5).rc < 0x80, "PUBREC")
        busy.send_raw(rq.enc_ack(rq.PUBREL, 5, 102))
        check_eq(busy.wait_for(rq.PUBCOMP, pid=102, timeout=5).rc, 0, "PUBCOMP")
        check_eq(pl.moves_of(b, busy.client_id), [(1, 0)], "the move")
        other = pl.on_shard(b, {1}, pl.plain(b))
        other.publish(mine, b"to-the-moved", qos=1)
        got = busy.recv_publish(5)
        check_eq((got.topic, got.payload), (mine, b"to-the-moved"),
                 "message on the subscription made while moving")
        pl.wait_in_order(col, root + "/p0", 546, "the publisher that kept sending")
        for i in (1, 2, 3):
            pl.wait_in_order(col, "%s/p%d" % (root, i), 544, "publisher %d" % i)
        res = silent.expect_closed(10)
        check(res, "silent client (keep-alive 1 s) open after a 2.5 s move")
        pl.wait_got(col, lambda g: g[1] == b"w3", "will of the client closed by keep-alive")
        pl.wait_got(col, lambda g: g[1] == b"w2", "will of the client that closed while moving")
        sub.publish(root + "/marker", b"marker")  # behind any will (all on shard 0)
        pl.wait_got(col, lambda g: g[1] == b"marker", "marker")
        check(not [g for g in col.got if g[1] in (b"w0", b"w1")],
              "will published: %r" % [g for g in col.got if g[1] in (b"w0", b"w1")])
        for c in (busy, other, sub):
            c.disconnect()

if __name__ == "__main__":
    rq.run(timeout=240)
