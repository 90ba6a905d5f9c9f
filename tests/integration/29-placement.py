#!/usr/bin/python3
"""29 placement (spec.ringmq.placement): a connected publisher whose messages all go to the
subscribers of one other shard moves there with its session (socket, TLS/WebSocket state,
unparsed input, principal, topic aliases, keep-alive, QoS 2 ids). The broker logs
`moving to shard N` / `moved here from shard N` (debug) and counts
ringmq_shard_clients_moved_in_total; ringmq_shard_connections says where the TCP connections
are. Cases:
- fan-in with 2 and 4 shards: every client ends on the subscriber's shard, per-publisher order
  holds and QoS 1 arrives exactly once across the moves, PUBACKs keep coming;
- no move when disabled, with maxMovesPerSecond 0, with one shard, for fan-out, 50/50 traffic,
  and for a publisher that has a subscription itself;
- a QoS 2 flow open across the move (DUP re-send, PUBREL on the new shard), a topic alias set
  before and used after, No Local after, keep-alive and the will after a move, TLS/WebSocket/WSS
  publishers (the rest of the record or frame that decided the move goes along unparsed);
- races: CONNECT takeovers (clean start and resume) while the publisher moves (CONNACK 0x00 or
  0x89 Server busy, then a retry succeeds; one connection survives), a reload closing the port
  of moving clients, SIGTERM while moves happen (exit 0), re-authentication (AUTH 0x19) after
  and during a move, permissions (BrokerAuthorization) enforced on the new shard;
- gauges (connected sessions, sessions, wills, subscriptions, connections per shard) right after
  moves and back to zero after, a moved persistent session resumed with its QoS 2 ids, a move
  back only after minResidentSeconds, maxMovesPerSecond 1 spreading moves over seconds, order
  toward a third shard (3 shards);
- the same races made certain: the target shard stalled (test hook RINGMQ_TEST_STALL_MS) while
  a move is in flight: takeover CONNECTs get Server busy, a reload removing the port closes the
  client once it lands, SIGTERM exits 0.
RQ_PLACEMENT_OFF=1 runs every broker with placement disabled: each case claiming a move must
then fail (no_move_for_fanout_split_traffic_or_subscribers, which claims none, passes).
Every case that claims a move waits for the broker's log line of that client's move, so it
fails on a broker with placement off. ringmq only."""

import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402
import fixtures  # noqa: E402

ONLY = "connection placement is a ringmq feature"
MOVE_TIMEOUT = 15.0   # generous bound for a move (two windows of 256 messages or 0.5 s each)


# ---- broker ------------------------------------------------------------------------------------

def start(ringmq=None, threads=2, ports=None, extra_yaml="", clients=None, env=None):
    """A broker with its metrics endpoint (b.mport) and the given listener ports
    ({name: "YAML flow mapping without the port"}; default one plain MQTT port "tcp"). b.ports
    maps the names to port numbers; b.port is the first."""
    ports = ports or {"tcp": "bindAddress: 127.0.0.1, protocol: Mqtt"}
    if os.environ.get("RQ_PLACEMENT_OFF"):  # to check that the cases claiming a move fail
        ringmq = rq._merge(ringmq or {}, {"placement": {"enabled": False}})
    nums = {k: rq.free_port() for k in ports}
    mport = rq.free_port()
    extra = {"diagnostics": {"logs": {"level": "debug"}, "metrics": {"prometheusPort": mport}}}
    cl = rq._merge(rq.STD_CLIENTS, {"subscriberQueueLimit": {"length": 10000,
                                                             "strategy": "None"}})
    y = rq.broker_yaml(port=nums[next(iter(nums))], clients=rq._merge(cl, clients),
                       ringmq=rq._merge(rq.STD_RINGMQ, ringmq), extra_spec=extra)
    head = y[:y.index("---\napiVersion: mqttbroker.iotoperations.azure.com/v1\n"
                      "kind: BrokerListener")] + extra_yaml
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        b = fixtures.start_listening(head + listeners_yaml(ports, nums), nums, threads=threads)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    b.port = nums[next(iter(nums))]
    b.ports = nums
    b.mport = mport
    b.head = head
    b.threads = threads
    return b


def listeners_yaml(ports, nums):
    y = ("---\napiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\n"
         "metadata: {name: listeners}\nspec:\n  ports:\n")
    for k, spec in ports.items():
        y += "  - {port: %d, %s}\n" % (nums[k], spec)
    return y


def metrics(b):
    """({shard: TCP connections}, {shard: clients moved in}) from /metrics."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % b.mport, timeout=5) as r:
        text = r.read().decode()
    conns = {int(s): int(v) for s, v in
             re.findall(r'^ringmq_shard_connections\{shard="(\d+)"\} (\d+)', text, re.M)}
    moved = {int(s): int(v) for s, v in
             re.findall(r'^ringmq_shard_clients_moved_in_total\{shard="(\d+)"\} (\d+)', text,
                        re.M)}
    check(conns and moved, "per-shard gauges missing from /metrics")
    return conns, moved


def shard_of(b, cid, timeout=3.0):
    """The shard the log last put cid on (its CONNECT or a move), waited for up to timeout."""
    rx = re.compile(r'\[shard (\d+)\][^\n]*client="%s" \(session\) (?:connected|moved here)'
                    % re.escape(cid))
    deadline = time.monotonic() + timeout
    while True:
        found = rx.findall(b.log())
        if found or time.monotonic() > deadline:
            check(found, "no log line says where %s is" % cid)
            return int(found[-1])
        time.sleep(0.02)


def moves_of(b, cid):
    """[(from, to)] of every move of cid the log shows."""
    rx = r'\[shard (\d+)\][^\n]*client="%s" \(session\) moved here from shard (\d+)' % \
        re.escape(cid)
    return [(int(f), int(t)) for t, f in re.findall(rx, b.log())]


def on_shard(b, want, make, tries=40):
    """make() connects a client (with .client_id); returns the first one the broker put on a
    shard in want (a set), disconnecting the others (DISCONNECT 0x00: no will) and ending
    their sessions (v5: expiry 0 at DISCONNECT; 3.1.1: a clean-session CONNECT)."""
    for _ in range(tries):
        c = make()
        if shard_of(b, c.client_id) in want:
            return c
        port = c.sock.getpeername()[1]
        if c.version == 5:
            c.disconnect(props={"session_expiry_interval": 0})
        else:
            c.disconnect()
            rq.connected(port, client_id=c.client_id, version=4).disconnect()
    raise AssertionError("no connection landed on shards %r in %d tries" % (sorted(want), tries))


def plain(b, port="tcp", version=5, **kw):
    return lambda: rq.connected(b.ports[port], client_id=rq.uniq("p"), version=version, **kw)


def subscriber(b, topic, qos=1, port="tcp", version=5):
    """A subscriber of topic and its shard."""
    s = rq.connected(b.ports[port], client_id=rq.uniq("sub"), version=version)
    s.subscribe(topic, qos=qos)
    return s, shard_of(b, s.client_id)


def elsewhere(b, shard):
    return set(range(b.threads)) - {shard}


BURST, BURST_GAP = 32, 0.02  # about 1600 msg/s: a target flooded faster counts as busy


def drive_until_moved(b, c, topic, timeout=MOVE_TIMEOUT, qos=0):
    """c publishes to topic (subscribers elsewhere) in bursts until the log says it moved;
    returns (from, to). A broker that never moves it fails the case."""
    deadline = time.monotonic() + timeout
    n = 0
    while True:
        for _ in range(BURST):
            c.publish(topic, b"drive-%d" % n, qos=qos, wait=False)
            n += 1
        mv = moves_of(b, c.client_id)
        if mv:
            return mv[-1]
        check(time.monotonic() < deadline, "%s did not move after %d messages in %.0f s"
              % (c.client_id, n, timeout))
        time.sleep(BURST_GAP)  # pacing (placement refuses a target busier than 50 %)


class Drain(threading.Thread):
    """Reads and discards everything a socket receives (a QoS 0 subscriber that never falls
    behind), until stopped or closed."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.c = c
        self.stopped = threading.Event()
        self.bytes = 0
        self.start()
        rq.on_cleanup(self.stop)

    def run(self):
        self.c.sock.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                data = self.c.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            self.bytes += len(data)

    def stop(self):
        self.stopped.set()
        self.join(2)


# ---- 1 fan-in ----------------------------------------------------------------------------------

class Publisher(threading.Thread):
    """Publishes per-publisher sequence numbers (even QoS 0, odd QoS 1) at about `rate` per
    second until stopped; counts PUBACKs (.acks, with the time of each)."""

    def __init__(self, c, topic, rate=150):
        super().__init__(daemon=True)
        self.c, self.topic, self.rate = c, topic, rate
        self.sent = 0
        self.acks = []
        self.outstanding = set()
        self.error = None
        self.stopping = threading.Event()

    def run(self):
        try:
            t0 = time.monotonic()
            while not self.stopping.is_set():
                qos = self.sent % 2
                pid = self.c.publish(self.topic, b"%d" % self.sent, qos=qos, wait=False)
                if qos:
                    self.outstanding.add(pid)
                self.sent += 1
                self.read_acks(0.001)
                ahead = t0 + self.sent / self.rate - time.monotonic()
                if ahead > 0:  # pacing, not waiting for a condition
                    self.read_acks(ahead)
            deadline = time.monotonic() + 15
            while self.outstanding and time.monotonic() < deadline:
                self.read_acks(0.2)
        except Exception as e:  # reported by the case
            self.error = e

    def read_acks(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            p = self.c.recv_packet(max(0.001, deadline - time.monotonic()))
            if p is None:
                return
            check(p.type == rq.PUBACK, "%s: unexpected %r" % (self.c.client_id, p))
            check(p.pid in self.outstanding, "%s: PUBACK for pid %s not outstanding"
                  % (self.c.client_id, p.pid))
            check(p.rc is None or p.rc < 0x80, "%s: PUBACK rc 0x%02x" % (self.c.client_id, p.rc))
            self.outstanding.discard(p.pid)
            self.acks.append(time.monotonic())
            if time.monotonic() >= deadline:
                return


class Collector(threading.Thread):
    """A QoS 1 subscriber's reader: acknowledges and records (topic, payload, qos)."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.c = c
        self.got = []
        self.error = None
        self.stopping = threading.Event()
        self.start()
        rq.on_cleanup(self.stopping.set)

    def run(self):
        try:
            while not self.stopping.is_set():
                p = self.c.recv_packet(0.2)
                if p is None:
                    continue
                check(p.type == rq.PUBLISH, "subscriber: unexpected %r" % p)
                self.c.ack(p)
                self.got.append((p.topic, p.payload, p.qos))
        except Exception as e:
            self.error = e


def fanin(threads):
    b = start(threads=threads)
    with b:
        root = rq.uniq("fanin")
        sub, home = subscriber(b, root + "/#", qos=1)
        col = Collector(sub)
        # at least half the publishers start elsewhere; the rest wherever the kernel puts them
        cs = [on_shard(b, elsewhere(b, home), plain(b)) for _ in range(3)]
        cs += [plain(b)() for _ in range(3)]
        starts = {c.client_id: shard_of(b, c.client_id) for c in cs}
        pubs = [Publisher(c, "%s/%d" % (root, i)) for i, c in enumerate(cs)]
        for p in pubs:
            p.start()
        deadline = time.monotonic() + MOVE_TIMEOUT
        while True:
            conns, moved = metrics(b)
            if conns.get(home) == 7 and sum(conns.values()) == 7 and sum(moved.values()) >= 1:
                break
            check(time.monotonic() < deadline and all(p.error is None for p in pubs),
                  "not all on shard %d: connections %r, moved in %r, publisher errors %r"
                  % (home, conns, moved, [p.error for p in pubs if p.error]))
            time.sleep(0.1)
        t_moved = time.monotonic()
        for p in pubs:  # PUBACKs keep coming after the move: wait (bounded) for 20 more each
            while len([a for a in p.acks if a > t_moved]) < 20:
                check(p.error is None and time.monotonic() < t_moved + 10,
                      "%s: no PUBACKs after the move (%r)" % (p.c.client_id, p.error))
                time.sleep(0.05)
        for p in pubs:
            p.stopping.set()
        for p in pubs:
            p.join(20)
            check(p.error is None, "%s: %r" % (p.c.client_id, p.error))
            check(not p.outstanding, "%s: PUBACKs missing for %d messages"
                  % (p.c.client_id, len(p.outstanding)))
        want_q1 = sum(p.sent // 2 for p in pubs)
        deadline = time.monotonic() + 10
        while sum(1 for g in col.got if g[2] == 1) < want_q1 and time.monotonic() < deadline:
            time.sleep(0.05)
        col.stopping.set()
        col.join(2)
        check(col.error is None, "subscriber: %r" % col.error)
        for i, p in enumerate(pubs):
            seq = [(int(pl), q) for t, pl, q in col.got if t == "%s/%d" % (root, i)]
            nums = [n for n, _ in seq]
            check(all(a < b_ for a, b_ in zip(nums, nums[1:])),
                  "publisher %d: order broken or duplicate: %r" % (i, nums))
            q1 = [n for n, q in seq if q == 1]
            check_eq(q1, list(range(1, p.sent, 2)), "publisher %d: its QoS 1 messages" % i)
            check(all(n % 2 == q for n, q in seq), "publisher %d: QoS of delivery" % i)
        moved_cids = [c.client_id for c in cs if moves_of(b, c.client_id)]
        check(moved_cids, "no publisher's move in the log")
        for c in cs:
            if starts[c.client_id] != home:
                check_eq(moves_of(b, c.client_id), [(starts[c.client_id], home)],
                         "moves of %s" % c.client_id)
            else:
                check_eq(moves_of(b, c.client_id), [], "moves of %s (started at home)"
                         % c.client_id)
        rq.log("%d threads: %d of 6 publishers moved to shard %d, %d messages, %d QoS 1"
               % (threads, len(moved_cids), home, len(col.got), want_q1))
        for c in cs + [sub]:
            c.disconnect()


@case(ringmq_only=ONLY)
def fanin_moves_publishers_two_shards():
    fanin(2)


@case(ringmq_only=ONLY)
def fanin_moves_publishers_four_shards():
    fanin(4)


# ---- 2 no move ---------------------------------------------------------------------------------

def traffic(c, topics, n=1280):
    """n QoS 0 messages over topics (round robin; 5 windows of the rule), paced as
    drive_until_moved does, then one QoS 1 whose PUBACK says the broker parsed them all (after
    a move: on the new shard, so the move is in the log by then)."""
    for i in range(n):
        c.publish(topics[i % len(topics)], b"x%d" % i, qos=0, wait=False)
        if i % BURST == BURST - 1:
            time.sleep(BURST_GAP)  # pacing
    ack = c.publish(topics[0], b"last", qos=1)
    check(ack.type == rq.PUBACK and ack.rc < 0x80, "%s: PUBACK %r" % (c.client_id, ack))


def drained_sub(b, topic, want=None, port="tcp"):
    """A QoS 0 subscriber of topic on a shard in want (any when None), read by a Drain."""
    s = on_shard(b, want if want is not None else set(range(b.threads)), plain(b, port))
    s.subscribe(topic, qos=0)
    Drain(s)
    return s, shard_of(b, s.client_id)


def no_moves(b, cids, what):
    conns, moved = metrics(b)
    check_eq(sum(moved.values()), 0, "%s: ringmq_shard_clients_moved_in_total" % what)
    for cid in cids:
        check(not re.search(r'client="%s" \(session\) mov' % re.escape(cid), b.log()),
              "%s: %s moved" % (what, cid))


@case(ringmq_only=ONLY)
def no_move_when_disabled_or_limited():
    """The traffic that moves a publisher with the default settings (checked first, on that
    broker) moves none with enabled: false, with maxMovesPerSecond: 0, or with one shard (the
    target's busy limit lifted on all four)."""
    for name, ringmq, threads in (("default", None, 2),
                                  ("enabled: false", {"placement": {"enabled": False}}, 2),
                                  ("maxMovesPerSecond: 0", {"placement": {"maxMovesPerSecond": 0}},
                                   2),
                                  ("one shard", None, 1)):
        # a loaded machine can make the target look busy: that limit is not what is checked
        with start(rq._merge({"placement": {"maxTargetBusyPercent": 100}}, ringmq),
                   threads=threads) as b:
            t = rq.uniq("nm")
            s, home = drained_sub(b, t)
            others = elsewhere(b, home) or {home}
            p = on_shard(b, others, plain(b))
            traffic(p, [t])
            if name == "default":
                check_eq(moves_of(b, p.client_id), [(1 - home, home)],
                         "default settings: the publisher's move")
                check_eq(sum(metrics(b)[1].values()), 1, "default settings: moved_in_total")
            else:
                no_moves(b, [p.client_id], name)
            p.disconnect()
            s.disconnect()


@case(ringmq_only=ONLY)
def no_move_for_fanout_split_traffic_or_subscribers():
    """Fan-out to both shards, traffic split 50/50 between this shard and the other, and a
    publisher that has a subscription itself: none of them moves."""
    with start() as b:
        t = rq.uniq("fan")
        s0, _ = drained_sub(b, t, {0})
        s1, _ = drained_sub(b, t, {1})
        fan = plain(b)()
        traffic(fan, [t])
        # 50/50: one topic's subscriber on the publisher's shard, the other's elsewhere
        ta, tb = rq.uniq("half"), rq.uniq("half")
        sa, ha = drained_sub(b, ta)
        sb, _ = drained_sub(b, tb, elsewhere(b, ha))
        half = on_shard(b, {ha}, plain(b))
        traffic(half, [ta, tb])
        # a publisher with a subscription: all its messages go elsewhere, it stays
        tc = rq.uniq("own")
        sc, hc = drained_sub(b, tc)
        own = on_shard(b, elsewhere(b, hc), plain(b))
        own.subscribe(rq.uniq("unrelated"), qos=1)
        traffic(own, [tc])
        no_moves(b, [fan.client_id, half.client_id, own.client_id], "fan-out, 50/50, subscriber")
        for c in (fan, half, own, s0, s1, sa, sb, sc):
            c.disconnect()


# ---- 3 QoS 2, 4 topic alias --------------------------------------------------------------------

def pub_elsewhere(b, home, port="tcp", version=5, **kw):
    return on_shard(b, elsewhere(b, home), plain(b, port, version, **kw))


def wait_got(col, pred, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        found = [g for g in col.got if pred(g)]
        if found:
            return found
        check(col.error is None, "subscriber: %r" % col.error)
        check(time.monotonic() < deadline, "%s: not received" % what)
        time.sleep(0.02)


@case(ringmq_only=ONLY)
def qos2_flow_open_across_the_move():
    """PUBLISH QoS 2 (PUBREC) before the move; after it, the same packet id re-sent with DUP
    gets PUBREC and is not delivered again; PUBREL on the new shard gets PUBCOMP."""
    with start() as b:
        root = rq.uniq("q2")
        sub, home = subscriber(b, root + "/#", qos=2)
        col = Collector(sub)
        for version in (5, 4):
            p = pub_elsewhere(b, home, version=version)
            topic = "%s/v%d" % (root, version)
            p.send_raw(rq.enc_publish(version, topic, b"once", qos=2, pid=7))
            rec = p.wait_for(rq.PUBREC, pid=7)
            check(rec.rc < 0x80, "PUBREC before the move: %r" % rec)
            start_shard, to = drive_until_moved(b, p, root + "/drive")
            check_eq(to, home, "moved to the subscriber's shard")
            p.send_raw(rq.enc_publish(version, topic, b"once", qos=2, pid=7, dup=True))
            rec = p.wait_for(rq.PUBREC, pid=7)
            check(rec.rc < 0x80, "PUBREC of the DUP re-send after the move: %r" % rec)
            p.send_raw(rq.enc_ack(rq.PUBREL, version, 7))
            comp = p.wait_for(rq.PUBCOMP, pid=7)
            check_eq(comp.rc, 0, "PUBCOMP after the move")
            comp = p.publish(topic, b"after", qos=2, pid=8)
            check_eq((comp.type, comp.rc), (rq.PUBCOMP, 0), "a whole QoS 2 flow after the move")
            wait_got(col, lambda g: g[0] == topic and g[1] == b"after", "message after the move")
            once = [g for g in col.got if g[0] == topic and g[1] == b"once"]
            check_eq(len(once), 1, "v%d: deliveries of the QoS 2 message open across the move"
                     % version)
            p.disconnect()
        sub.disconnect()


@case(ringmq_only=ONLY)
def topic_alias_set_before_used_after():
    """A topic alias set before the move, used after it (empty topic): delivered with its topic;
    a No Local subscription made after the move does not get the client's own messages."""
    with start() as b:
        root = rq.uniq("al")
        sub, home = subscriber(b, root + "/#", qos=1)
        col = Collector(sub)
        p = pub_elsewhere(b, home)
        topic = root + "/aliased"
        p.publish(topic, b"set", qos=1, props={"topic_alias": 3})
        p.publish("", b"before", qos=1, props={"topic_alias": 3})
        drive_until_moved(b, p, root + "/drive")
        ack = p.publish("", b"after", qos=1, props={"topic_alias": 3})
        check_eq((ack.type, ack.rc), (rq.PUBACK, 0), "PUBACK of the aliased PUBLISH after the move")
        wait_got(col, lambda g: g[1] == b"after", "aliased message after the move")
        got = [(g[0], g[1]) for g in col.got if g[1] in (b"set", b"before", b"after")]
        check_eq(got, [(topic, b"set"), (topic, b"before"), (topic, b"after")],
                 "aliased messages, in order, with the alias's topic")
        # No Local after the move: its messages carry the session's new id
        check_eq(p.subscribe([(root + "/nl", rq.sub_opts(1, no_local=True)),
                              (root + "/ll", rq.sub_opts(1))]).codes, [1, 1], "SUBACK")
        p.publish(root + "/nl", b"not-to-me", qos=1)
        p.publish(root + "/ll", b"to-me", qos=1)
        got = p.recv_publish(5)  # a No Local failure would come first (same route, in order)
        check_eq((got.topic, got.payload), (root + "/ll", b"to-me"),
                 "first own message back: the one without No Local")
        wait_got(col, lambda g: g[1] == b"not-to-me", "No Local message at the other subscriber")
        p.disconnect()
        sub.disconnect()


# ---- 5 keep-alive and will ---------------------------------------------------------------------

@case(ringmq_only=ONLY)
def keepalive_and_will_after_a_move():
    """After a move, a silent client with keep-alive 2 s is closed (within 1.5 x 2 s plus slack)
    and its will published; an abrupt close publishes the will, one with a Will Delay Interval
    of 1 s after that delay; DISCONNECT 0x00 does not."""
    with start() as b:
        root = rq.uniq("kw")
        sub, home = subscriber(b, root + "/#", qos=1)
        col = Collector(sub)

        def willing(n, keepalive=60):
            return pub_elsewhere(b, home, keepalive=keepalive,
                                 will={"topic": "%s/will%d" % (root, n), "payload": b"w%d" % n})

        silent = willing(1, keepalive=2)
        drive_until_moved(b, silent, root + "/drive")
        t0 = time.monotonic()
        res = silent.expect_closed(1.5 * 2 + 5)
        took = time.monotonic() - t0
        check(res, "a silent moved client with keep-alive 2 s still open after %.1f s" % took)
        check(took >= 2.0, "closed %.1f s after its last packet (keep-alive 2 s)" % took)
        check(res.rc in (None, 0x8D), "keep-alive DISCONNECT reason: %r" % res)
        wait_got(col, lambda g: g[1] == b"w1", "will after keep-alive expiry on the new shard")

        lost = willing(2)
        drive_until_moved(b, lost, root + "/drive")
        lost.close()
        wait_got(col, lambda g: g[1] == b"w2", "will after the moved client's connection dropped")

        delayed = pub_elsewhere(b, home, clean=False, props={"session_expiry_interval": 60},
                                will={"topic": root + "/will4", "payload": b"w4",
                                      "props": {"will_delay_interval": 1}})
        drive_until_moved(b, delayed, root + "/drive")
        delayed.close()
        t0 = time.monotonic()
        wait_got(col, lambda g: g[1] == b"w4", "delayed will (1 s) of a moved client")
        check(time.monotonic() - t0 >= 0.8, "the will came %.2f s after the loss, before its"
              " 1 s delay" % (time.monotonic() - t0))
        rq.connected(b.port, client_id=delayed.client_id, clean=True).disconnect()  # its session

        polite = willing(3)
        drive_until_moved(b, polite, root + "/drive")
        polite.disconnect(0)
        sub.publish(root + "/marker", b"marker")  # routed on home after the close
        wait_got(col, lambda g: g[1] == b"marker", "marker")
        check(not [g for g in col.got if g[1] == b"w3"], "will published after DISCONNECT 0x00")
        check_eq([g[0] for g in col.got if g[1] in (b"w1", b"w2")],
                 [root + "/will1", root + "/will2"], "will topics")
        sub.disconnect()


# ---- 6 TLS and WebSocket -----------------------------------------------------------------------

class Pki:
    def __init__(self):
        import certs
        f = certs.CertFactory()
        self.root = f.ca("/CN=ringmq Placement Test Root", name="root")
        self.srv = f.server(self.root, name="srv")
        self.secret = certs.secret_yaml("server-cert", self.srv.chain_pem, self.srv.key_pem)


pki = fixtures.once(Pki)
TLS = "tls: {mode: Manual, manual: {secretRef: server-cert}}"


@case(ringmq_only=ONLY)
def tls_and_websocket_publishers_move():
    """Publishers over TLS, WebSocket and WebSocket over TLS move (several packets per record or
    frame: the rest of the one that decided the move goes along unparsed), their messages
    arrive in order, and they keep working: PUBACKs, PINGRESP."""
    import certs
    if not certs.openssl_available():
        raise rq.Skip("openssl not installed")
    pk = pki()
    ports = {"tcp": "bindAddress: 127.0.0.1, protocol: Mqtt",
             "tls": "bindAddress: 127.0.0.1, protocol: Mqtt, " + TLS,
             "ws": "bindAddress: 127.0.0.1, protocol: WebSockets",
             "wss": "bindAddress: 127.0.0.1, protocol: WebSockets, " + TLS}
    ctx = rq.tls_context(pk.root.cert)

    def maker(kind):
        def make():
            tls = ctx if kind in ("tls", "wss") else None
            c = (rq.WsRawClient if kind.startswith("ws") else rq.RawClient)(b.ports[kind], tls=tls)
            c.client_id = rq.uniq(kind)
            check_eq(c.connect(client_id=c.client_id).rc, 0, "CONNACK over %s" % kind)
            return c
        return make

    with start(ports=ports, extra_yaml=pk.secret) as b:
        root = rq.uniq("tw")
        sub, home = subscriber(b, root + "/#", qos=1)
        col = Collector(sub)
        for kind in ("tls", "ws", "wss"):
            p = on_shard(b, elsewhere(b, home), maker(kind))
            # 32 PUBLISHes per write (one TLS record, one WebSocket frame): the one that decides
            # the move is followed by others already decoded, which move unparsed
            drive = "%s/%s/drive" % (root, kind)
            n, deadline = 0, time.monotonic() + MOVE_TIMEOUT
            while not moves_of(b, p.client_id):
                check(time.monotonic() < deadline, "%s: no move" % kind)
                p.send_raw(b"".join(rq.enc_publish(5, drive, b"%d" % k) for k in range(n, n + 32)))
                n += 32
                time.sleep(BURST_GAP)  # pacing
            wait_in_order(col, drive, n, kind)
            for i in range(20):
                ack = p.publish("%s/%s" % (root, kind), b"%s-%d" % (kind.encode(), i), qos=1)
                check_eq((ack.type, ack.rc), (rq.PUBACK, 0), "%s: PUBACK after the move" % kind)
            check(p.ping(5), "%s: PINGRESP after the move" % kind)
            wait_got(col, lambda g: g[1] == b"%s-19" % kind.encode(), "%s message" % kind)
            check_eq([g[1] for g in col.got if g[0] == "%s/%s" % (root, kind)],
                     [b"%s-%d" % (kind.encode(), i) for i in range(20)], "%s messages" % kind)
            p.disconnect()
        sub.disconnect()


def log_secs(b, rx):
    """Seconds of the day of every log line matching rx (its timestamp)."""
    return [int(h) * 3600 + int(m) * 60 + float(x) for h, m, x in
            re.findall(r"^\S+T(\d+):(\d+):([\d.]+)Z[^\n]*" + rx, b.log(), re.M)]


@case(ringmq_only=ONLY)
def max_moves_per_second_spreads_moves():
    """maxMovesPerSecond: 1 and three publishers of one shard ready to move at once: they move
    one per second (the first and the third more than a second apart); all of them in the end."""
    with start(rq._merge(NOT_BUSY, {"placement": {"maxMovesPerSecond": 1}})) as b:
        topic = rq.uniq("rate")
        _, home = drained_sub(b, topic + "/#")
        pubs = [pub_elsewhere(b, home) for _ in range(3)]
        floods = [Flood(p, topic + "/p") for p in pubs]
        deadline = time.monotonic() + MOVE_TIMEOUT
        while not all(moves_of(b, p.client_id) for p in pubs):
            check(time.monotonic() < deadline, "not all moved: %r"
                  % [moves_of(b, p.client_id) for p in pubs])
            time.sleep(0.05)
        for f in floods:
            f.stopping.set()
        secs = sorted(log_secs(b, r"moving to shard"))
        check_eq(len(secs), 3, "moves")
        # log stamps come a little after each decision: a tolerance of 0.1 s
        check(secs[2] - secs[0] > 0.9, "3 moves within %.3f s at 1 per second"
              % (secs[2] - secs[0]))
        for p in pubs:
            p.disconnect()

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


@case(ringmq_only=ONLY)
def takeover_while_moving():
    """A publisher about to move (the 2nd window of the rule closes around when the takeover's
    CONNECT comes) is taken over by a CONNECT with its client id on any shard, clean start and
    resume, v5 and 3.1.1: the CONNACK is 0x00, or Server busy and a retry gets 0x00; the old
    connection is closed, the new one serves, a resume finds the session. (The publisher
    sends unpaced: the target's busy limit is lifted, so that the move is decided on time.)"""
    with start(NOT_BUSY) as b:
        topic = rq.uniq("race")
        _, home = drained_sub(b, topic + "/#")
        stats = {"busy": 0, "moved": 0, "present": 0}
        for i in range(RACES):
            version = 4 if i % 4 == 3 else 5
            resume = i % 2 == 1
            props = {"session_expiry_interval": 60} if resume and version == 5 else None
            p = pub_elsewhere(b, home, version=version, clean=not resume, props=props)
            cid = p.client_id
            # the move is decided at the 512th message: before the CONNECT is sent in about
            # half the rounds (it races the move's completion), after it in the others
            lead = 2 * 256 - 22 + (i * 7) % 48
            data = b"".join(rq.enc_publish(version, topic + "/p", b"%d" % k)
                            for k in range(lead))
            p.send_raw(data)
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


# ---- 8 reload, 9 SIGTERM -----------------------------------------------------------------------

class Flood(threading.Thread):
    """Publishes QoS 0 to topic, paced like drive_until_moved, until stopped or the broker closes
    the connection (.closed)."""

    def __init__(self, c, topic):
        super().__init__(daemon=True)
        self.c, self.topic = c, topic
        self.closed = False
        self.stopping = threading.Event()
        self.start()
        rq.on_cleanup(self.stopping.set)

    def run(self):
        n = 0
        wire = [rq.enc_publish(self.c.version, self.topic, b"f%d" % k) for k in range(BURST)]
        try:
            while not self.stopping.is_set():
                self.c.sock.sendall(b"".join(wire))
                n += 1
                time.sleep(BURST_GAP)  # pacing
        except OSError:
            self.closed = True


def wait_moving(b, mark, count=1, timeout=MOVE_TIMEOUT):
    deadline = time.monotonic() + timeout
    while len(re.findall(r"moving to shard", b.log_since(mark))) < count:
        check(time.monotonic() < deadline, "fewer than %d moves began in %.0f s" % (count, timeout))
        time.sleep(0.01)


def reload_listeners(b, names):
    """Rewrites the broker's file with only the ports in names, SIGHUP, waits for the new
    generation."""
    path = os.path.join(b.workdir, "ringmq.yaml")
    with open(path + ".tmp", "w") as f:
        f.write(b.head + listeners_yaml({k: v for k, v in PORTS2.items() if k in names},
                                        b.ports))
    os.replace(path + ".tmp", path)
    mark = b.log_mark()
    b.signal(signal.SIGHUP)
    check(b.wait_log(r"reload: generation \d+ in use", mark, timeout=10),
          "the reload applied; log:\n%s" % b.log_since(mark)[-2000:])


# Four publishers flooding one shard can keep it busier than maxTargetBusyPercent (50) on a
# loaded machine (sanitizer build): moves would wait; races with moves lift the limit.
NOT_BUSY = {"placement": {"maxTargetBusyPercent": 100}}
PORTS2 = {"keep": "bindAddress: 127.0.0.1, protocol: Mqtt",
          "gone": "bindAddress: 127.0.0.1, protocol: Mqtt"}


@case(ringmq_only=ONLY)
def reload_closes_the_port_of_moving_clients():
    """Publishers on a port move to their subscriber's shard; while they do, a reload removes
    their port: every one of them is disconnected (moved, moving or not yet), the other port
    keeps serving. Three rounds (the port comes back between them)."""
    with start(NOT_BUSY, ports=PORTS2) as b:
        topic = rq.uniq("rl")
        sub, home = drained_sub(b, topic + "/#", port="keep")
        for r in range(3):
            if r:
                reload_listeners(b, {"keep", "gone"})
                check(rq.port_open(b.ports["gone"], 5), "the port came back")
            pubs = [on_shard(b, elsewhere(b, home), plain(b, "gone", version=5 - (i % 2)))
                    for i in range(4)]
            mark = b.log_mark()
            floods = [Flood(p, topic + "/p") for p in pubs]
            wait_moving(b, mark, count=1 + r)
            reload_listeners(b, {"keep"})
            deadline = time.monotonic() + 10
            for f in floods:
                f.join(max(0.1, deadline - time.monotonic()))
                check(f.closed, "round %d: a client of the removed port (%s, moves %r) still"
                      " served" % (r, f.c.client_id, moves_of(b, f.c.client_id)))
                check(f.c.expect_closed(5), "round %d: %s not closed" % (r, f.c.client_id))
            check(not rq.port_open(b.ports["gone"], 0.5), "the removed port still accepts")
            rq.log("round %d: %d moves began, %d completed" % (
                r, len(re.findall(r"moving to shard", b.log_since(mark))),
                len(re.findall(r"moved here from", b.log_since(mark)))))
        rq.check_serves(b.ports["keep"])
        sub.disconnect()


@case(ringmq_only=ONLY)
def sigterm_while_moving():
    """SIGTERM right after the 1st, 2nd, 3rd move began (publishers still flooding): exit 0
    (under the sanitizer build: no report, run() checks the log)."""
    for r in range(3):
        b = start(NOT_BUSY)
        topic = rq.uniq("st")
        _, home = drained_sub(b, topic + "/#")
        pubs = [on_shard(b, elsewhere(b, home), plain(b, version=5 - (i % 2))) for i in range(4)]
        mark = b.log_mark()
        for p in pubs:
            Flood(p, topic + "/p")
        wait_moving(b, mark, count=1 + r)
        check_eq(b.stop(), 0, "round %d: exit code after SIGTERM while moving" % r)


# ---- 10 re-authentication ----------------------------------------------------------------------

METHOD = "ringmq-userpass"
PASSWORD = "s3cret-Pa55word"


class AuthEnv:
    def __init__(self):
        import authsrv
        import certs
        if not certs.openssl_available():
            raise rq.Skip("openssl not installed")
        self.auth = authsrv.AuthServer(certs.CertFactory(),
                                       {"alice": authsrv.user(PASSWORD, {"group": "g1",
                                                                         "floor": "3"})},
                                       mode="users")
        self.yaml = (authsrv.authn("custom", authsrv.custom_method(self.auth.url)) +
                     self.auth.ca_configmap() + AUTHZ)


# group g1 may publish and subscribe on its floor only (10-authz's Custom rule, abridged)
AUTHZ = """---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata: {name: rules}
spec:
  authorizationPolicies:
    cache: Enabled
    rules:
    - principals:
        attributes:
        - {group: g1}
      brokerResources:
      - method: Connect
      - method: Publish
        topics: ["floors/{principal.attributes.floor}/#"]
      - method: Subscribe
        topics: ["floors/{principal.attributes.floor}/#"]
"""


auth_env = fixtures.once(AuthEnv)


def auth_packet(reason=0x19):
    return rq.packet(rq.AUTH, 0, bytes([reason]) + rq.enc_props(
        {"authentication_method": METHOD, "authentication_data": b"alice:" + PASSWORD.encode()}))


@case(ringmq_only=ONLY)
def reauthentication_after_and_during_a_move():
    """A client authenticated by Custom (enhanced authentication) and authorized by a
    BrokerAuthorization moves; AUTH 0x19 then, on the new shard, gets AUTH 0x00; its
    permissions hold on the new shard, before and after (PUBACK / SUBACK 0x87 off its floor,
    nothing routed). Another sends AUTH 0x19 right behind the messages that close the rule's
    second window (so it is among the bytes that move): AUTH 0x00 too."""
    e = auth_env()
    ports = {"tcp": "bindAddress: 127.0.0.1, protocol: Mqtt",
             "custom": "bindAddress: 127.0.0.1, protocol: Mqtt, authenticationRef: custom, "
                       "authorizationRef: rules"}
    ringmq = {"connectTimeoutSeconds": 10, "auth": {"requestTimeoutSeconds": 4}}

    def enhanced():
        c = rq.RawClient(b.ports["custom"], timeout=10.0)
        c.client_id = rq.uniq("re")
        ack = c.connect(client_id=c.client_id, props={
            "authentication_method": METHOD, "authentication_data": b"alice:" + PASSWORD.encode()})
        check_eq(ack.rc, 0, "CONNACK with enhanced authentication")
        return c

    with start(ringmq, ports=ports, extra_yaml=e.yaml) as b:
        tag = rq.uniq("ra")
        root = "floors/3/" + tag
        sub, home = subscriber(b, "floors/+/%s/#" % tag, qos=1)
        col = Collector(sub)
        after = on_shard(b, elsewhere(b, home), enhanced)
        drive_until_moved(b, after, root + "/drive")

        def permissions(c, what):
            ack = c.publish("floors/4/%s/x" % tag, b"denied-" + what.encode(), qos=1)
            check_eq((ack.type, ack.rc), (rq.PUBACK, 0x87), "%s: PUBLISH off its floor" % what)
            check_eq(c.subscribe("floors/4/#", qos=1).codes, [0x87], "%s: SUBSCRIBE off its floor"
                     % what)
            ack = c.publish(root + "/x", b"allowed-" + what.encode(), qos=1)
            check_eq((ack.type, ack.rc), (rq.PUBACK, 0), "%s: PUBLISH on its floor" % what)
            wait_got(col, lambda g: g[1] == b"allowed-" + what.encode(), what)
            check(not [g for g in col.got if g[1].startswith(b"denied")], "%s: a denied PUBLISH"
                  " was routed" % what)

        permissions(after, "after the move")
        mark = b.log_mark()
        after.send_raw(auth_packet())
        p = after.wait_for(rq.AUTH, timeout=10)
        check_eq(p.rc, 0x00, "AUTH reason after the move")
        check_eq(p.props.get("authentication_method"), METHOD, "AUTH names the method")
        fixtures.expect_log(b, mark, r'\[shard %d\][^\n]*client="%s"[^\n]*re-authenticated by '
                            r'Custom' % (home, re.escape(after.client_id)),
                            "re-authenticated on the new shard", timeout=10)
        permissions(after, "after the re-authentication")

        during = on_shard(b, elsewhere(b, home), enhanced)
        for k in range(2 * 256 - 16):
            during.publish(root + "/drive", b"d%d" % k)
            if k % BURST == BURST - 1:
                time.sleep(BURST_GAP)  # pacing
        during.send_raw(b"".join(rq.enc_publish(5, root + "/drive", b"e%d" % k)
                                 for k in range(32)) + auth_packet())
        p = during.wait_for(rq.AUTH, timeout=10)
        check_eq(p.rc, 0x00, "AUTH reason (sent with the bytes around the move)")
        drive_until_moved(b, during, root + "/drive")
        ack = during.publish(root + "/x", b"during-reauth", qos=1)
        check_eq((ack.type, ack.rc), (rq.PUBACK, 0), "PUBACK after the re-authentication")
        m = re.search(r'\[shard (\d+)\][^\n]*client="%s"[^\n]*re-authenticated'
                      % re.escape(during.client_id), b.log())
        rq.log("AUTH sent with the move's bytes: moves %r, re-authenticated on shard %s"
               % (moves_of(b, during.client_id), m and m.group(1)))
        for c in (after, during, sub):
            c.disconnect()


# ---- sessions and gauges across moves ----------------------------------------------------------

def metric(b, name):
    """The value of one sample (name with its labels, as exposed) from /metrics."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % b.mport, timeout=5) as r:
        text = r.read().decode()
    m = re.search(r"^%s (-?\d+)$" % re.escape(name), text, re.M)
    check(m, "no %s in /metrics" % name)
    return int(m.group(1))


def wait_gauges(b, want, what, timeout=10.0):
    """Polls /metrics until every sample in want has its value (per-shard connection gauges are
    set when a shard's loop turns: an idle shard's lags until its heartbeat)."""
    deadline = time.monotonic() + timeout
    while True:
        got = {k: metric(b, k) for k in want}
        conns = metrics(b)[0]
        if got == want:
            return conns
        check(time.monotonic() < deadline, "%s: gauges %r, want %r (connections per shard %r)"
              % (what, got, want, conns))
        time.sleep(0.1)


@case(ringmq_only=ONLY)
def gauges_and_sessions_consistent_after_moves():
    """Moved clients (v5 and 3.1.1, clean and persistent, with and without wills) count once in
    aio_broker_connected_sessions / total_sessions / store_will_messages and in their new
    shard's connections; after they leave every gauge is back to zero."""
    with start() as b:
        root = rq.uniq("gg")
        sub, home = subscriber(b, root + "/#", qos=1)
        col = Collector(sub)
        will = {"topic": root + "/will", "payload": b"w"}
        kinds = [dict(version=5, will=will), dict(version=4, will=will),
                 dict(version=5, clean=False, props={"session_expiry_interval": 60}),
                 dict(version=5, clean=False, props={"session_expiry_interval": 1}, will=will)]
        pubs = [pub_elsewhere(b, home, **k) for k in kinds]
        for p in pubs:
            drive_until_moved(b, p, root + "/drive")
        conns = wait_gauges(b, {"aio_broker_connected_sessions": 5,
                                'aio_broker_total_sessions{mqtt_version="v3"}': 1,
                                'aio_broker_total_sessions{mqtt_version="v5"}': 4,
                                "aio_broker_store_will_messages": 3,
                                "aio_broker_total_subscriptions": 1}, "after the moves")
        deadline = time.monotonic() + 10
        while conns != {home: 5, 1 - home: 0}:
            check(time.monotonic() < deadline, "connections per shard %r, want all 5 on %d"
                  % (conns, home))
            time.sleep(0.1)
            conns = metrics(b)[0]
        for p in pubs:
            p.disconnect()
        wait_gauges(b, {"aio_broker_connected_sessions": 1,
                        'aio_broker_total_sessions{mqtt_version="v3"}': 0,
                        'aio_broker_total_sessions{mqtt_version="v5"}': 2,  # sub, expiry 60
                        "aio_broker_store_will_messages": 0}, "after DISCONNECTs")
        back = rq.connected(b.port, client_id=pubs[2].client_id, clean=True)  # ends the session
        back.disconnect()
        sub.disconnect()
        wait_gauges(b, {"aio_broker_connected_sessions": 0,
                        'aio_broker_total_sessions{mqtt_version="v3"}': 0,
                        'aio_broker_total_sessions{mqtt_version="v5"}': 0,
                        "aio_broker_store_will_messages": 0,
                        "aio_broker_total_subscriptions": 0}, "after everyone left")
        deadline = time.monotonic() + 10
        while sum(metrics(b)[0].values()) != 0:
            check(time.monotonic() < deadline, "connections %r after everyone left"
                  % (metrics(b)[0],))
            time.sleep(0.1)
        check(not [g for g in col.got if g[1] == b"w"], "a will after DISCONNECT 0x00")


@case(ringmq_only=ONLY)
def session_resumed_after_a_move_keeps_its_qos2_ids():
    """A persistent session moved with its client; the client disconnects with a QoS 2 flow
    open (PUBREC, no PUBREL) and resumes from a new connection: session present, the DUP re-send
    is not delivered again, PUBREL gets PUBCOMP 0x00 (the packet id was kept: not 0x92)."""
    with start() as b:
        root = rq.uniq("rs")
        sub, home = subscriber(b, root + "/#", qos=2)
        col = Collector(sub)
        props = {"session_expiry_interval": 60}
        p = pub_elsewhere(b, home, clean=False, props=props)
        cid, topic = p.client_id, root + "/q2"
        drive_until_moved(b, p, root + "/drive")
        p.send_raw(rq.enc_publish(5, topic, b"once", qos=2, pid=9))
        check(p.wait_for(rq.PUBREC, pid=9).rc < 0x80, "PUBREC")
        p.disconnect()
        for _ in range(2):  # the kernel puts the resume on either shard; twice, to see both
            q = rq.connected(b.port, client_id=cid, clean=False, props=props)
            check(q.connack.session_present, "the moved session resumed (session present)")
            q.send_raw(rq.enc_publish(5, topic, b"once", qos=2, pid=9, dup=True))
            check(q.wait_for(rq.PUBREC, pid=9).rc < 0x80, "PUBREC of the DUP re-send")
            q.disconnect()
        q = rq.connected(b.port, client_id=cid, clean=False, props=props)
        q.send_raw(rq.enc_ack(rq.PUBREL, 5, 9))
        check_eq(q.wait_for(rq.PUBCOMP, pid=9).rc, 0, "PUBCOMP reason after resuming")
        q.publish(topic, b"after", qos=2)
        wait_got(col, lambda g: g[1] == b"after", "message after the resume")
        check_eq(len([g for g in col.got if g[1] == b"once"]), 1, "deliveries of the QoS 2 message")
        q.disconnect()
        sub.disconnect()


@case(ringmq_only=ONLY)
def moves_back_only_after_min_resident_seconds():
    """A publisher moved to its subscriber's shard; the subscriber goes, another subscribes on
    the publisher's first shard: with minResidentSeconds 1 it moves back (not within the first
    second after its move), with 3600 it stays."""
    for resident in (1, 3600):
        with start({"placement": {"minResidentSeconds": resident}}) as b:
            t = rq.uniq("mb")
            s1, home = drained_sub(b, t)
            p = pub_elsewhere(b, home)
            first = shard_of(b, p.client_id)
            drive_until_moved(b, p, t)
            s2, _ = drained_sub(b, t, {first})
            s1.disconnect()
            if resident == 1:
                while len(moves_of(b, p.client_id)) < 2:
                    drive_until_moved(b, p, t)
                check_eq(moves_of(b, p.client_id), [(first, home), (home, first)],
                         "moves there and back")
                secs = log_secs(b, r'client="%s" \(session\) moving to' % re.escape(p.client_id))
                # stamps of the log lines, written a little after each decision: 0.9 s
                check(secs[1] - secs[0] >= 0.9, "moved back %.3f s after its move"
                      % (secs[1] - secs[0]))
                ack = p.publish(t, b"x", qos=1)
                check_eq((ack.type, ack.rc), (rq.PUBACK, 0), "PUBACK after moving back")
            else:
                traffic(p, [t], n=2560)
                check_eq(moves_of(b, p.client_id), [(first, home)], "moves (residency 3600 s)")
            p.disconnect()
            s2.disconnect()


@case(ringmq_only=ONLY)
def order_kept_toward_a_third_shard():
    """3 shards, minSharePercent 50: a publisher on shard 1 sends 2/3 of its messages to a
    subscriber on shard 2 and 1/3 to one on shard 0, which is stalled while the publisher
    moves to shard 2: its messages routed before the move wait in shard 0's inbox, those after
    it come from shard 2; each subscriber gets its messages in order, none lost (QoS 1)."""
    with start({"placement": {"minSharePercent": 50, "maxTargetBusyPercent": 100}}, threads=3,
               env={"RINGMQ_TEST_STALL_MS": str(STALL_MS)}) as b:
        root = rq.uniq("tri")
        subs = {}
        for shard in (2, 0):
            c = on_shard(b, {shard}, plain(b))
            c.subscribe("%s/%d" % (root, shard), qos=1)
            subs[shard] = Collector(c)
        p = on_shard(b, {1}, plain(b))
        sent = {0: 0, 2: 0}

        def send(k, wait=False):
            shard = 0 if k % 3 == 2 else 2
            p.publish("%s/%d" % (root, shard), b"%d" % sent[shard], qos=1, wait=wait)
            sent[shard] += 1

        for k in range(480):
            send(k)
            if k % BURST == BURST - 1:
                time.sleep(BURST_GAP)  # pacing
        mark = b.log_mark()
        b.signal(signal.SIGUSR2)
        fixtures.expect_log(b, mark, r"shard 0: stalling", "shard 0 stalls")
        k = 480
        deadline = time.monotonic() + STALL_MS / 2000
        while not moves_of(b, p.client_id):
            check(time.monotonic() < deadline, "no move to shard 2 during the stall")
            for _ in range(BURST):
                send(k)
                k += 1
            time.sleep(BURST_GAP)  # pacing
        check_eq(moves_of(b, p.client_id), [(1, 2)], "the move")
        for _ in range(200):
            send(k)
            k += 1
        for shard, col in subs.items():
            wait_in_order(col, "%s/%d" % (root, shard), sent[shard],
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

# ---- a move held in flight: its target shard stalled (test hook) --------------------------------
# RINGMQ_TEST_STALL_MS + SIGUSR2 stop shard 0's loop for that long. A publisher on shard 1 whose
# messages go to shard 0 decides to move during the stall: its record waits in shard 0's inbox,
# its session is `moving` until the stall ends. What happens meanwhile is then certain, not a
# race: a takeover CONNECT on shard 1 gets Server busy, a reload or SIGTERM finds it in flight.

STALL_MS = 2500
STALLED = NOT_BUSY  # shard 0 was busy just before the stall


def stalled_broker(ringmq=None, ports=None):
    return start(rq._merge(STALLED, ringmq), ports=ports,
                 env={"RINGMQ_TEST_STALL_MS": str(STALL_MS)})


def stalled_move(b, p, topic, sub_col=None):
    """p (on shard 1) publishes sequence numbers to topic (its subscriber on shard 0): the first
    window of the rule, then SIGUSR2 stalls shard 0, then the messages that close the second
    window: the move begins during the stall. Returns the number of messages sent."""
    n = 0
    for n in range(480):
        p.publish(topic, b"%d" % n)
        if n % BURST == BURST - 1:
            time.sleep(BURST_GAP)  # pacing
    n += 1
    mark = b.log_mark()
    b.signal(signal.SIGUSR2)
    fixtures.expect_log(b, mark, r"shard 0: stalling", "shard 0 stalls")
    p.send_raw(b"".join(rq.enc_publish(p.version, topic, b"%d" % k) for k in range(n, n + 64)))
    n += 64
    fixtures.expect_log(b, mark, r'\[shard 1\][^\n]*client="%s" \(session\) moving to shard 0'
                        % re.escape(p.client_id), "the move began during the stall",
                        timeout=STALL_MS / 2000)
    check(not moves_of(b, p.client_id), "%s moved before the stall ended" % p.client_id)
    return n


def socket_on_shard1(b, nudge, tries=20):
    """A TCP connection (nothing sent yet) that shard 1 accepted. Shard 0 is stalled and accepts
    nothing; shard 1's connections gauge is set at the start of each loop turn, so nudge (a
    client on shard 1) pings to make it turn after the accept."""
    for _ in range(tries):
        before = metrics(b)[0][1]
        c = rq.RawClient(b.port)
        for _ in range(5):
            nudge.ping(5)
            if metrics(b)[0][1] > before:
                return c
        c.close()  # queued for the stalled shard 0, which will see it closed
    raise AssertionError("no connection accepted by shard 1 in %d tries" % tries)


def wait_in_order(col, topic, n, what):
    """The subscriber got the publisher's messages 0..n-1, in order."""
    deadline = time.monotonic() + 15
    while len([g for g in col.got if g[0] == topic]) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    got = [int(g[1]) for g in col.got if g[0] == topic]
    check_eq(got, list(range(n)), "%s: the publisher's messages across the move" % what)


@case(ringmq_only=ONLY)
def takeover_while_the_move_is_in_flight():
    """While the record of a move waits in the stalled target's inbox, a CONNECT with the
    client id on shard 1 gets CONNACK Server busy (v5 0x89, 3.1.1 3) and is closed, for clean
    start and resume; after the stall the client is on shard 0, its messages arrived in order,
    and a retry takes it over (a resume finds the session)."""
    with stalled_broker() as b:
        root = rq.uniq("tk")
        sub = on_shard(b, {0}, plain(b))
        sub.subscribe(root + "/#", qos=1)
        col = Collector(sub)
        nudge = on_shard(b, {1}, plain(b))
        for r, (version, resume) in enumerate(((5, False), (5, True), (4, True))):
            props = {"session_expiry_interval": 60} if resume and version == 5 else None
            p = on_shard(b, {1}, plain(b, version=version, clean=not resume, props=props))
            topic = "%s/%d" % (root, r)
            n = stalled_move(b, p, topic)
            probe = socket_on_shard1(b, nudge)
            ack = probe.connect(version=version, client_id=p.client_id, clean=not resume,
                                props=props, timeout=10)
            check_eq(ack.rc, BUSY[version], "round %d: CONNACK while the session moves" % r)
            check(probe.expect_closed(5), "round %d: the busy connection stays open" % r)
            deadline = time.monotonic() + STALL_MS / 1000 + 10
            while not moves_of(b, p.client_id):
                check(time.monotonic() < deadline, "round %d: the move did not complete" % r)
                time.sleep(0.05)
            check_eq(moves_of(b, p.client_id), [(1, 0)], "round %d: the move" % r)
            wait_in_order(col, topic, n, "round %d" % r)
            check(p.ping(5), "round %d: PINGRESP on the moved connection" % r)
            new, ack, busy = take_over(b, p.client_id, version, resume)
            check_eq(busy, 0, "round %d: Server busy after the move completed" % r)
            check_eq(bool(ack.session_present), resume, "round %d: session present" % r)
            check(p.expect_closed(5), "round %d: the moved connection not taken over" % r)
            ack = new.publish(topic, b"%d" % n, qos=1)
            check(ack.type == rq.PUBACK and ack.rc < 0x80, "round %d: PUBACK %r" % (r, ack))
            wait_in_order(col, topic, n + 1, "round %d, after the takeover" % r)
            new.disconnect()
        nudge.disconnect()
        sub.disconnect()


@case(ringmq_only=ONLY)
def reload_while_the_move_is_in_flight():
    """A reload removes the port of a client whose move waits in the stalled target's inbox:
    the client is disconnected once the target adopts it; the other port serves."""
    with stalled_broker(ports=PORTS2) as b:
        topic = rq.uniq("rf")
        sub = on_shard(b, {0}, plain(b, "keep"))
        sub.subscribe(topic, qos=1)
        col = Collector(sub)
        p = on_shard(b, {1}, plain(b, "gone"))
        n = stalled_move(b, p, topic)
        reload_listeners(b, {"keep"})
        res = p.expect_closed(STALL_MS / 1000 + 10)
        check(res, "the moving client of the removed port still open")
        check(res.rc in (None, 0x8B), "DISCONNECT reason %r" % res)
        # The messages parsed before the move arrive in order. Those behind the one that decided
        # the move wait unparsed for the target, which closes the client first (its port is
        # gone): they are lost, like bytes any client of a closed port sent too late.
        sub.publish(topic, b"marker")  # routed on shard 0 after the close: behind p's messages
        wait_got(col, lambda g: g[1] == b"marker", "marker")
        got = [int(g[1]) for g in col.got if g[0] == topic and g[1] != b"marker"]
        check(len(got) >= 512 and got == list(range(len(got))),
              "the moving client's messages: %d of %d, in order: %s"
              % (len(got), n, got == list(range(len(got)))))
        rq.log("%d of its %d messages delivered" % (len(got), n))
        check(not rq.port_open(b.ports["gone"], 0.5), "the removed port still accepts")
        rq.check_serves(b.ports["keep"])
        sub.disconnect()


@case(ringmq_only=ONLY)
def sigterm_while_the_move_is_in_flight():
    """SIGTERM while a move's record waits in the stalled target's inbox: exit 0 (the shard
    stopping with the record unread frees it; sanitizer build: no report)."""
    b = stalled_broker()
    topic = rq.uniq("sf")
    sub = on_shard(b, {0}, plain(b))
    sub.subscribe(topic, qos=0)
    Drain(sub)
    p = on_shard(b, {1}, plain(b, will={"topic": topic, "payload": b"will"}))
    stalled_move(b, p, topic)
    check_eq(b.stop(STALL_MS / 1000 + 10), 0, "exit code after SIGTERM with a move in flight")


@case(ringmq_only=ONLY)
def packets_sent_while_the_move_is_in_flight():
    """Four publishers start moving during one stall of their target. Meanwhile one sends
    SUBSCRIBE, PINGREQ, PUBLISH QoS 1 and 2: all answered after the stall, from the new shard,
    and its new subscription gets messages; one sends DISCONNECT 0x00 and closes: no will; one
    closes without DISCONNECT: its will; one (keep-alive 1 s) stays silent through the 2.5 s
    stall: closed by keep-alive once it lands, its will published."""
    with stalled_broker() as b:
        root = rq.uniq("pk")
        sub = on_shard(b, {0}, plain(b))
        sub.subscribe(root + "/#", qos=2)
        col = Collector(sub)

        def will(n):
            return {"topic": "%s/will%d" % (root, n), "payload": b"w%d" % n}

        ps = [on_shard(b, {1}, plain(b, will=will(i), keepalive=1 if i == 3 else 60))
              for i in range(4)]
        for k in range(480):
            for i, p in enumerate(ps):
                p.publish("%s/p%d" % (root, i), b"%d" % k)
            if k % BURST == BURST - 1:
                time.sleep(BURST_GAP)  # pacing
        mark = b.log_mark()
        b.signal(signal.SIGUSR2)
        fixtures.expect_log(b, mark, r"shard 0: stalling", "shard 0 stalls")
        for i, p in enumerate(ps):
            p.send_raw(b"".join(rq.enc_publish(5, "%s/p%d" % (root, i), b"%d" % k)
                                for k in range(480, 544)))
        for p in ps:
            fixtures.expect_log(b, mark, r'client="%s" \(session\) moving to shard 0'
                                % re.escape(p.client_id), "moves began during the stall",
                                timeout=STALL_MS / 2000)
        busy, polite, lost, silent = ps
        mine = rq.uniq("mine")
        busy.send_raw(rq.enc_subscribe(5, 100, [(mine, 1)]) + rq.packet(rq.PINGREQ, 0, b"") +
                      rq.enc_publish(5, root + "/p0", b"544", qos=1, pid=101) +
                      rq.enc_publish(5, root + "/p0", b"545", qos=2, pid=102))
        polite.send_raw(rq.enc_disconnect(5, 0))
        polite.close()
        lost.close()
        check(not moves_of(b, busy.client_id), "the moves completed during the stall")
        suback = busy.wait_for(rq.SUBACK, timeout=STALL_MS / 1000 + 10, pid=100)
        check_eq(suback.codes, [1], "SUBACK of the SUBSCRIBE sent while moving")
        busy.wait_for(rq.PINGRESP, timeout=5)
        check_eq(busy.wait_for(rq.PUBACK, pid=101, timeout=5).rc, 0, "PUBACK")
        check(busy.wait_for(rq.PUBREC, pid=102, timeout=5).rc < 0x80, "PUBREC")
        busy.send_raw(rq.enc_ack(rq.PUBREL, 5, 102))
        check_eq(busy.wait_for(rq.PUBCOMP, pid=102, timeout=5).rc, 0, "PUBCOMP")
        check_eq(moves_of(b, busy.client_id), [(1, 0)], "the move")
        other = on_shard(b, {1}, plain(b))
        other.publish(mine, b"to-the-moved", qos=1)
        got = busy.recv_publish(5)
        check_eq((got.topic, got.payload), (mine, b"to-the-moved"),
                 "message on the subscription made while moving")
        wait_in_order(col, root + "/p0", 546, "the publisher that kept sending")
        for i in (1, 2, 3):
            wait_in_order(col, "%s/p%d" % (root, i), 544, "publisher %d" % i)
        res = silent.expect_closed(10)
        check(res, "silent client (keep-alive 1 s) open after a 2.5 s move")
        wait_got(col, lambda g: g[1] == b"w3", "will of the client closed by keep-alive")
        wait_got(col, lambda g: g[1] == b"w2", "will of the client that closed while moving")
        sub.publish(root + "/marker", b"marker")  # behind any will (all on shard 0)
        wait_got(col, lambda g: g[1] == b"marker", "marker")
        check(not [g for g in col.got if g[1] in (b"w0", b"w1")],
              "will published: %r" % [g for g in col.got if g[1] in (b"w0", b"w1")])
        for c in (busy, other, sub):
            c.disconnect()


if __name__ == "__main__":
    rq.run(timeout=240)
