#!/usr/bin/python3
"""29 placement (spec.ringmq.placement): a connected publisher whose messages all go to the
subscribers of one other shard moves there with its session (socket, TLS/WebSocket state,
unparsed input, principal, topic aliases, keep-alive, QoS 2 ids). The broker logs
`moving to shard N` / `moved here from shard N` (debug) and counts
ringmq_shard_clients_moved_in_total; ringmq_shard_connections says where the TCP connections
are. Races with moves are in 29-placement-races.py; helpers in lib/placement.py. Cases:
- fan-in with 2 and 4 shards: every client ends on the subscriber's shard, per-publisher order
  holds and QoS 1 arrives exactly once across the moves, PUBACKs keep coming;
- no move when disabled, with maxMovesPerSecond 0, with one shard, for fan-out, 50/50 traffic,
  and for a publisher that has a subscription itself;
- a QoS 2 flow open across the move (DUP re-send, PUBREL on the new shard), a topic alias set
  before and used after, No Local after, keep-alive and the will after a move, TLS/WebSocket/WSS
  publishers (the rest of the record or frame that decided the move goes along unparsed);
- maxMovesPerSecond 1 spreads moves over seconds; re-authentication (AUTH 0x19) after and
  during a move, permissions (BrokerAuthorization) enforced on the new shard;
- gauges (connected sessions, sessions, wills, subscriptions, connections per shard) right after
  moves and back to zero after, a moved persistent session resumed with its QoS 2 ids, a move
  back only after minResidentSeconds.
Every case that claims a move waits for the broker's log line of that client's move, so it
fails on a broker with placement off: RQ_PLACEMENT_OFF=1 runs every broker so (each case must
then fail but no_move_for_fanout_split_traffic_or_subscribers, which claims no move).
ringmq only."""

import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402
import fixtures  # noqa: E402
import placement as pl  # noqa: E402


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


def fanin(threads):
    b = pl.start(threads=threads)
    with b:
        root = rq.uniq("fanin")
        sub, home = pl.subscriber(b, root + "/#", qos=1)
        col = pl.Collector(sub)
        # at least half the publishers start elsewhere; the rest wherever the kernel puts them
        cs = [pl.on_shard(b, pl.elsewhere(b, home), pl.plain(b)) for _ in range(3)]
        cs += [pl.plain(b)() for _ in range(3)]
        starts = {c.client_id: pl.shard_of(b, c.client_id) for c in cs}
        pubs = [Publisher(c, "%s/%d" % (root, i)) for i, c in enumerate(cs)]
        for p in pubs:
            p.start()
        deadline = time.monotonic() + pl.MOVE_TIMEOUT
        while True:
            conns, moved = pl.metrics(b)
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
        moved_cids = [c.client_id for c in cs if pl.moves_of(b, c.client_id)]
        check(moved_cids, "no publisher's move in the log")
        for c in cs:
            if starts[c.client_id] != home:
                check_eq(pl.moves_of(b, c.client_id), [(starts[c.client_id], home)],
                         "moves of %s" % c.client_id)
            else:
                check_eq(pl.moves_of(b, c.client_id), [], "moves of %s (started at home)"
                         % c.client_id)
        rq.log("%d threads: %d of 6 publishers moved to shard %d, %d messages, %d QoS 1"
               % (threads, len(moved_cids), home, len(col.got), want_q1))
        for c in cs + [sub]:
            c.disconnect()


@case(ringmq_only=pl.ONLY)
def fanin_moves_publishers_two_shards():
    fanin(2)


@case(ringmq_only=pl.ONLY)
def fanin_moves_publishers_four_shards():
    fanin(4)


# ---- 2 no move ---------------------------------------------------------------------------------
@case(ringmq_only=pl.ONLY)
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
        with pl.start(rq._merge({"placement": {"maxTargetBusyPercent": 100}}, ringmq),
                   threads=threads) as b:
            t = rq.uniq("nm")
            s, home = pl.drained_sub(b, t)
            others = pl.elsewhere(b, home) or {home}
            p = pl.on_shard(b, others, pl.plain(b))
            pl.traffic(p, [t])
            if name == "default":
                check_eq(pl.moves_of(b, p.client_id), [(1 - home, home)],
                         "default settings: the publisher's move")
                check_eq(sum(pl.metrics(b)[1].values()), 1, "default settings: moved_in_total")
            else:
                pl.no_moves(b, [p.client_id], name)
            p.disconnect()
            s.disconnect()


@case(ringmq_only=pl.ONLY)
def no_move_for_fanout_split_traffic_or_subscribers():
    """Fan-out to both shards, traffic split 50/50 between this shard and the other, and a
    publisher that has a subscription itself: none of them moves."""
    with pl.start() as b:
        t = rq.uniq("fan")
        s0, _ = pl.drained_sub(b, t, {0})
        s1, _ = pl.drained_sub(b, t, {1})
        fan = pl.plain(b)()
        pl.traffic(fan, [t])
        # 50/50: one topic's subscriber on the publisher's shard, the other's elsewhere
        ta, tb = rq.uniq("half"), rq.uniq("half")
        sa, ha = pl.drained_sub(b, ta)
        sb, _ = pl.drained_sub(b, tb, pl.elsewhere(b, ha))
        half = pl.on_shard(b, {ha}, pl.plain(b))
        pl.traffic(half, [ta, tb])
        # a publisher with a subscription: all its messages go elsewhere, it stays
        tc = rq.uniq("own")
        sc, hc = pl.drained_sub(b, tc)
        own = pl.on_shard(b, pl.elsewhere(b, hc), pl.plain(b))
        own.subscribe(rq.uniq("unrelated"), qos=1)
        pl.traffic(own, [tc])
        pl.no_moves(b, [fan.client_id, half.client_id, own.client_id], "fan-out, 50/50, subscriber")
        for c in (fan, half, own, s0, s1, sa, sb, sc):
            c.disconnect()


# ---- 3 QoS 2, 4 topic alias --------------------------------------------------------------------
@case(ringmq_only=pl.ONLY)
def qos2_flow_open_across_the_move():
    """PUBLISH QoS 2 (PUBREC) before the move; after it, the same packet id re-sent with DUP
    gets PUBREC and is not delivered again; PUBREL on the new shard gets PUBCOMP."""
    with pl.start() as b:
        root = rq.uniq("q2")
        sub, home = pl.subscriber(b, root + "/#", qos=2)
        col = pl.Collector(sub)
        for version in (5, 4):
            p = pl.pub_elsewhere(b, home, version=version)
            topic = "%s/v%d" % (root, version)
            p.send_raw(rq.enc_publish(version, topic, b"once", qos=2, pid=7))
            rec = p.wait_for(rq.PUBREC, pid=7)
            check(rec.rc < 0x80, "PUBREC before the move: %r" % rec)
            start_shard, to = pl.drive_until_moved(b, p, root + "/drive")
            check_eq(to, home, "moved to the subscriber's shard")
            p.send_raw(rq.enc_publish(version, topic, b"once", qos=2, pid=7, dup=True))
            rec = p.wait_for(rq.PUBREC, pid=7)
            check(rec.rc < 0x80, "PUBREC of the DUP re-send after the move: %r" % rec)
            p.send_raw(rq.enc_ack(rq.PUBREL, version, 7))
            comp = p.wait_for(rq.PUBCOMP, pid=7)
            check_eq(comp.rc, 0, "PUBCOMP after the move")
            comp = p.publish(topic, b"after", qos=2, pid=8)
            check_eq((comp.type, comp.rc), (rq.PUBCOMP, 0), "a whole QoS 2 flow after the move")
            pl.wait_got(col, lambda g: g[0] == topic and g[1] == b"after", "message after the move")
            once = [g for g in col.got if g[0] == topic and g[1] == b"once"]
            check_eq(len(once), 1, "v%d: deliveries of the QoS 2 message open across the move"
                     % version)
            p.disconnect()
        sub.disconnect()


@case(ringmq_only=pl.ONLY)
def topic_alias_set_before_used_after():
    """A topic alias set before the move, used after it (empty topic): delivered with its topic;
    a No Local subscription made after the move does not get the client's own messages."""
    with pl.start() as b:
        root = rq.uniq("al")
        sub, home = pl.subscriber(b, root + "/#", qos=1)
        col = pl.Collector(sub)
        p = pl.pub_elsewhere(b, home)
        topic = root + "/aliased"
        p.publish(topic, b"set", qos=1, props={"topic_alias": 3})
        p.publish("", b"before", qos=1, props={"topic_alias": 3})
        pl.drive_until_moved(b, p, root + "/drive")
        ack = p.publish("", b"after", qos=1, props={"topic_alias": 3})
        check_eq((ack.type, ack.rc), (rq.PUBACK, 0), "PUBACK of the aliased PUBLISH after the move")
        pl.wait_got(col, lambda g: g[1] == b"after", "aliased message after the move")
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
        pl.wait_got(col, lambda g: g[1] == b"not-to-me", "No Local message at the other subscriber")
        p.disconnect()
        sub.disconnect()


# ---- 5 keep-alive and will ---------------------------------------------------------------------

@case(ringmq_only=pl.ONLY)
def keepalive_and_will_after_a_move():
    """After a move, a silent client with keep-alive 2 s is closed (within 1.5 x 2 s plus slack)
    and its will published; an abrupt close publishes the will, one with a Will Delay Interval
    of 1 s after that delay; DISCONNECT 0x00 does not."""
    with pl.start() as b:
        root = rq.uniq("kw")
        sub, home = pl.subscriber(b, root + "/#", qos=1)
        col = pl.Collector(sub)

        def willing(n, keepalive=60):
            return pl.pub_elsewhere(b, home, keepalive=keepalive,
                                 will={"topic": "%s/will%d" % (root, n), "payload": b"w%d" % n})

        silent = willing(1, keepalive=2)
        pl.drive_until_moved(b, silent, root + "/drive")
        t0 = time.monotonic()
        res = silent.expect_closed(1.5 * 2 + 5)
        took = time.monotonic() - t0
        check(res, "a silent moved client with keep-alive 2 s still open after %.1f s" % took)
        check(took >= 2.0, "closed %.1f s after its last packet (keep-alive 2 s)" % took)
        check(res.rc in (None, 0x8D), "keep-alive DISCONNECT reason: %r" % res)
        pl.wait_got(col, lambda g: g[1] == b"w1", "will after keep-alive expiry on the new shard")

        lost = willing(2)
        pl.drive_until_moved(b, lost, root + "/drive")
        lost.close()
        pl.wait_got(col, lambda g: g[1] == b"w2", "will after the moved client's connection dropped")

        delayed = pl.pub_elsewhere(b, home, clean=False, props={"session_expiry_interval": 60},
                                will={"topic": root + "/will4", "payload": b"w4",
                                      "props": {"will_delay_interval": 1}})
        pl.drive_until_moved(b, delayed, root + "/drive")
        delayed.close()
        t0 = time.monotonic()
        pl.wait_got(col, lambda g: g[1] == b"w4", "delayed will (1 s) of a moved client")
        check(time.monotonic() - t0 >= 0.8, "the will came %.2f s after the loss, before its"
              " 1 s delay" % (time.monotonic() - t0))
        rq.connected(b.port, client_id=delayed.client_id, clean=True).disconnect()  # its session

        polite = willing(3)
        pl.drive_until_moved(b, polite, root + "/drive")
        polite.disconnect(0)
        sub.publish(root + "/marker", b"marker")  # routed on home after the close
        pl.wait_got(col, lambda g: g[1] == b"marker", "marker")
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


@case(ringmq_only=pl.ONLY)
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

    with pl.start(ports=ports, extra_yaml=pk.secret) as b:
        root = rq.uniq("tw")
        sub, home = pl.subscriber(b, root + "/#", qos=1)
        col = pl.Collector(sub)
        for kind in ("tls", "ws", "wss"):
            p = pl.on_shard(b, pl.elsewhere(b, home), maker(kind))
            # 32 PUBLISHes per write (one TLS record, one WebSocket frame): the one that decides
            # the move is followed by others already decoded, which move unparsed
            drive = "%s/%s/drive" % (root, kind)
            n, deadline = 0, time.monotonic() + pl.MOVE_TIMEOUT
            while not pl.moves_of(b, p.client_id):
                check(time.monotonic() < deadline, "%s: no move" % kind)
                p.send_raw(b"".join(rq.enc_publish(5, drive, b"%d" % k) for k in range(n, n + 32)))
                n += 32
                time.sleep(pl.BURST_GAP)  # pacing
            pl.wait_in_order(col, drive, n, kind)
            for i in range(20):
                ack = p.publish("%s/%s" % (root, kind), b"%s-%d" % (kind.encode(), i), qos=1)
                check_eq((ack.type, ack.rc), (rq.PUBACK, 0), "%s: PUBACK after the move" % kind)
            check(p.ping(5), "%s: PINGRESP after the move" % kind)
            pl.wait_got(col, lambda g: g[1] == b"%s-19" % kind.encode(), "%s message" % kind)
            check_eq([g[1] for g in col.got if g[0] == "%s/%s" % (root, kind)],
                     [b"%s-%d" % (kind.encode(), i) for i in range(20)], "%s messages" % kind)
            p.disconnect()
        sub.disconnect()


@case(ringmq_only=pl.ONLY)
def max_moves_per_second_spreads_moves():
    """maxMovesPerSecond: 1 and three publishers of one shard ready to move at once: they move
    one per second (the first and the third more than a second apart); all of them in the end."""
    with pl.start(rq._merge(pl.NOT_BUSY, {"placement": {"maxMovesPerSecond": 1}})) as b:
        topic = rq.uniq("rate")
        _, home = pl.drained_sub(b, topic + "/#")
        pubs = [pl.pub_elsewhere(b, home) for _ in range(3)]
        floods = [pl.Flood(p, topic + "/p") for p in pubs]
        deadline = time.monotonic() + pl.MOVE_TIMEOUT
        while not all(pl.moves_of(b, p.client_id) for p in pubs):
            check(time.monotonic() < deadline, "not all moved: %r"
                  % [pl.moves_of(b, p.client_id) for p in pubs])
            time.sleep(0.05)
        for f in floods:
            f.stopping.set()
        secs = sorted(pl.log_secs(b, r"moving to shard"))
        check_eq(len(secs), 3, "moves")
        # log stamps come a little after each decision: a tolerance of 0.1 s
        check(secs[2] - secs[0] > 0.9, "3 moves within %.3f s at 1 per second"
              % (secs[2] - secs[0]))
        for p in pubs:
            p.disconnect()

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


@case(ringmq_only=pl.ONLY)
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

    with pl.start(ringmq, ports=ports, extra_yaml=e.yaml) as b:
        tag = rq.uniq("ra")
        root = "floors/3/" + tag
        sub, home = pl.subscriber(b, "floors/+/%s/#" % tag, qos=1)
        col = pl.Collector(sub)
        after = pl.on_shard(b, pl.elsewhere(b, home), enhanced)
        pl.drive_until_moved(b, after, root + "/drive")

        def permissions(c, what):
            ack = c.publish("floors/4/%s/x" % tag, b"denied-" + what.encode(), qos=1)
            check_eq((ack.type, ack.rc), (rq.PUBACK, 0x87), "%s: PUBLISH off its floor" % what)
            check_eq(c.subscribe("floors/4/#", qos=1).codes, [0x87], "%s: SUBSCRIBE off its floor"
                     % what)
            ack = c.publish(root + "/x", b"allowed-" + what.encode(), qos=1)
            check_eq((ack.type, ack.rc), (rq.PUBACK, 0), "%s: PUBLISH on its floor" % what)
            pl.wait_got(col, lambda g: g[1] == b"allowed-" + what.encode(), what)
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

        during = pl.on_shard(b, pl.elsewhere(b, home), enhanced)
        for k in range(2 * 256 - 16):
            during.publish(root + "/drive", b"d%d" % k)
            if k % pl.BURST == pl.BURST - 1:
                time.sleep(pl.BURST_GAP)  # pacing
        during.send_raw(b"".join(rq.enc_publish(5, root + "/drive", b"e%d" % k)
                                 for k in range(32)) + auth_packet())
        p = during.wait_for(rq.AUTH, timeout=10)
        check_eq(p.rc, 0x00, "AUTH reason (sent with the bytes around the move)")
        pl.drive_until_moved(b, during, root + "/drive")
        ack = during.publish(root + "/x", b"during-reauth", qos=1)
        check_eq((ack.type, ack.rc), (rq.PUBACK, 0), "PUBACK after the re-authentication")
        m = re.search(r'\[shard (\d+)\][^\n]*client="%s"[^\n]*re-authenticated'
                      % re.escape(during.client_id), b.log())
        rq.log("AUTH sent with the move's bytes: moves %r, re-authenticated on shard %s"
               % (pl.moves_of(b, during.client_id), m and m.group(1)))
        for c in (after, during, sub):
            c.disconnect()


# ---- sessions and gauges across moves ----------------------------------------------------------
@case(ringmq_only=pl.ONLY)
def gauges_and_sessions_consistent_after_moves():
    """Moved clients (v5 and 3.1.1, clean and persistent, with and without wills) count once in
    aio_broker_connected_sessions / total_sessions / store_will_messages and in their new
    shard's connections; after they leave every gauge is back to zero."""
    with pl.start() as b:
        root = rq.uniq("gg")
        sub, home = pl.subscriber(b, root + "/#", qos=1)
        col = pl.Collector(sub)
        will = {"topic": root + "/will", "payload": b"w"}
        kinds = [dict(version=5, will=will), dict(version=4, will=will),
                 dict(version=5, clean=False, props={"session_expiry_interval": 60}),
                 dict(version=5, clean=False, props={"session_expiry_interval": 1}, will=will)]
        pubs = [pl.pub_elsewhere(b, home, **k) for k in kinds]
        for p in pubs:
            pl.drive_until_moved(b, p, root + "/drive")
        conns = pl.wait_gauges(b, {"aio_broker_connected_sessions": 5,
                                'aio_broker_total_sessions{mqtt_version="v3"}': 1,
                                'aio_broker_total_sessions{mqtt_version="v5"}': 4,
                                "aio_broker_store_will_messages": 3,
                                "aio_broker_total_subscriptions": 1}, "after the moves")
        deadline = time.monotonic() + 10
        while conns != {home: 5, 1 - home: 0}:
            check(time.monotonic() < deadline, "connections per shard %r, want all 5 on %d"
                  % (conns, home))
            time.sleep(0.1)
            conns = pl.metrics(b)[0]
        for p in pubs:
            p.disconnect()
        pl.wait_gauges(b, {"aio_broker_connected_sessions": 1,
                        'aio_broker_total_sessions{mqtt_version="v3"}': 0,
                        'aio_broker_total_sessions{mqtt_version="v5"}': 2,  # sub, expiry 60
                        "aio_broker_store_will_messages": 0}, "after DISCONNECTs")
        back = rq.connected(b.port, client_id=pubs[2].client_id, clean=True)  # ends the session
        back.disconnect()
        sub.disconnect()
        pl.wait_gauges(b, {"aio_broker_connected_sessions": 0,
                        'aio_broker_total_sessions{mqtt_version="v3"}': 0,
                        'aio_broker_total_sessions{mqtt_version="v5"}': 0,
                        "aio_broker_store_will_messages": 0,
                        "aio_broker_total_subscriptions": 0}, "after everyone left")
        deadline = time.monotonic() + 10
        while sum(pl.metrics(b)[0].values()) != 0:
            check(time.monotonic() < deadline, "connections %r after everyone left"
                  % (pl.metrics(b)[0],))
            time.sleep(0.1)
        check(not [g for g in col.got if g[1] == b"w"], "a will after DISCONNECT 0x00")


@case(ringmq_only=pl.ONLY)
def session_resumed_after_a_move_keeps_its_qos2_ids():
    """A persistent session moved with its client; the client disconnects with a QoS 2 flow
    open (PUBREC, no PUBREL) and resumes from a new connection: session present, the DUP re-send
    is not delivered again, PUBREL gets PUBCOMP 0x00 (the packet id was kept: not 0x92)."""
    with pl.start() as b:
        root = rq.uniq("rs")
        sub, home = pl.subscriber(b, root + "/#", qos=2)
        col = pl.Collector(sub)
        props = {"session_expiry_interval": 60}
        p = pl.pub_elsewhere(b, home, clean=False, props=props)
        cid, topic = p.client_id, root + "/q2"
        pl.drive_until_moved(b, p, root + "/drive")
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
        pl.wait_got(col, lambda g: g[1] == b"after", "message after the resume")
        check_eq(len([g for g in col.got if g[1] == b"once"]), 1, "deliveries of the QoS 2 message")
        q.disconnect()
        sub.disconnect()


@case(ringmq_only=pl.ONLY)
def moves_back_only_after_min_resident_seconds():
    """A publisher moved to its subscriber's shard; the subscriber goes, another subscribes on
    the publisher's first shard: with minResidentSeconds 1 it moves back (not within the first
    second after its move), with 3600 it stays."""
    for resident in (1, 3600):
        with pl.start({"placement": {"minResidentSeconds": resident}}) as b:
            t = rq.uniq("mb")
            s1, home = pl.drained_sub(b, t)
            p = pl.pub_elsewhere(b, home)
            first = pl.shard_of(b, p.client_id)
            pl.drive_until_moved(b, p, t)
            s2, _ = pl.drained_sub(b, t, {first})
            s1.disconnect()
            if resident == 1:
                while len(pl.moves_of(b, p.client_id)) < 2:
                    pl.drive_until_moved(b, p, t)
                check_eq(pl.moves_of(b, p.client_id), [(first, home), (home, first)],
                         "moves there and back")
                secs = pl.log_secs(b, r'client="%s" \(session\) moving to' % re.escape(p.client_id))
                # stamps of the log lines, written a little after each decision: 0.9 s
                check(secs[1] - secs[0] >= 0.9, "moved back %.3f s after its move"
                      % (secs[1] - secs[0]))
                ack = p.publish(t, b"x", qos=1)
                check_eq((ack.type, ack.rc), (rq.PUBACK, 0), "PUBACK after moving back")
            else:
                pl.traffic(p, [t], n=2560)
                check_eq(pl.moves_of(b, p.client_id), [(first, home)], "moves (residency 3600 s)")
            p.disconnect()
            s2.disconnect()

if __name__ == "__main__":
    rq.run(timeout=240)
