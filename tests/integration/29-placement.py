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
  before and used after, keep-alive and the will after a move, TLS/WebSocket/WSS publishers;
- races: CONNECT takeovers (clean start and resume) while the publisher moves (CONNACK 0x00 or
  0x89 Server busy, then a retry succeeds; one connection survives), a reload closing the port
  of moving clients, SIGTERM while moves happen (exit 0), re-authentication (AUTH 0x19) after
  and during a move.
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

def start(ringmq=None, threads=2, ports=None, extra_yaml="", clients=None):
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
    b = fixtures.start_listening(head + listeners_yaml(ports, nums), nums, threads=threads)
    b.port = nums[next(iter(nums))]
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
    shard in want (a set), closing the others."""
    for _ in range(tries):
        c = make()
        if shard_of(b, c.client_id) in want:
            return c
        c.close()
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
    broker) moves none with enabled: false, with maxMovesPerSecond: 0, or with one shard."""
    for name, ringmq, threads in (("default", None, 2),
                                  ("enabled: false", {"placement": {"enabled": False}}, 2),
                                  ("maxMovesPerSecond: 0", {"placement": {"maxMovesPerSecond": 0}},
                                   2),
                                  ("one shard", None, 1)):
        with start(ringmq, threads=threads) as b:
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
        p.disconnect()
        sub.disconnect()


# ---- 5 keep-alive and will ---------------------------------------------------------------------

@case(ringmq_only=ONLY)
def keepalive_and_will_after_a_move():
    """After a move, a silent client with keep-alive 2 s is closed (within 1.5 x 2 s plus slack)
    and its will published; an abrupt close publishes the will; DISCONNECT 0x00 does not."""
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
            drive_until_moved(b, p, "%s/%s/drive" % (root, kind))
            for i in range(20):
                ack = p.publish("%s/%s" % (root, kind), b"%s-%d" % (kind.encode(), i), qos=1)
                check_eq((ack.type, ack.rc), (rq.PUBACK, 0), "%s: PUBACK after the move" % kind)
            check(p.ping(5), "%s: PINGRESP after the move" % kind)
            wait_got(col, lambda g: g[1] == b"%s-19" % kind.encode(), "%s message" % kind)
            check_eq([g[1] for g in col.got if g[0] == "%s/%s" % (root, kind)],
                     [b"%s-%d" % (kind.encode(), i) for i in range(20)], "%s messages" % kind)
            p.disconnect()
        sub.disconnect()


if __name__ == "__main__":
    rq.run(timeout=240)
